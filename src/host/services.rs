//! System services (the kubelet): which init system runs the node, whether a unit is active, and
//! stopping it through systemd when PID 1 is systemd — otherwise saying that there is no systemd.

use super::command;
use super::facts::Facts;
use super::inventory::{Found, Kind, Outcome, Owner};

/// The node's init system, from /proc/1/comm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitSystem {
    Systemd,
    /// PID 1 is something else (a container's init, a VM agent); its name.
    Other(String),
}

pub fn init_system(facts: &Facts) -> InitSystem {
    match facts.read_proc("1/comm") {
        Ok(comm) if comm.trim() == "systemd" => InitSystem::Systemd,
        Ok(comm) => InitSystem::Other(comm.trim().to_string()),
        Err(_) => InitSystem::Other("unknown".to_string()),
    }
}

/// Whether a unit is active (`systemctl is-active`); `None` without systemd.
pub fn is_active(facts: &Facts, unit: &str) -> Option<bool> {
    if init_system(facts) != InitSystem::Systemd {
        return None;
    }
    command::run("systemctl", &["is-active", "--quiet", unit], None)
        .ok()
        .map(|o| o.success)
}

/// Stops a unit. Without systemd nothing can be stopped: the item is kept with that reason.
pub fn stop(facts: &Facts, unit: &str) -> Outcome {
    let found = Found::new(Kind::Service, unit, Owner::Kubernetes);
    match init_system(facts) {
        InitSystem::Other(pid1) => found.kept(format!(
            "PID 1 is {pid1}, not systemd: there is no {unit} service to stop"
        )),
        InitSystem::Systemd => match command::run("systemctl", &["stop", unit], None) {
            Ok(out) if out.success => Outcome::Removed(found.item("stopped")),
            Ok(out) if out.complaint().contains("not loaded") => {
                found.kept(format!("no {unit} unit is installed"))
            }
            Ok(out) => found.left(format!("systemctl stop failed: {}", out.complaint()), false),
            Err(e) => found.left(e.to_string(), false),
        },
    }
}

/// Makes systemd re-read unit files after drop-ins were removed (no-op without systemd).
pub fn daemon_reload(facts: &Facts) -> anyhow::Result<()> {
    if init_system(facts) == InitSystem::Systemd {
        command::run_ok("systemctl", &["daemon-reload"])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_systemd_the_kubelet_is_not_stopped_and_that_is_said() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("1")).unwrap();
        std::fs::write(dir.path().join("1/comm"), "process_api\n").unwrap();
        let facts = Facts::with_roots(dir.path(), "/sys");
        assert_eq!(init_system(&facts), InitSystem::Other("process_api".into()));
        assert_eq!(is_active(&facts, "kubelet"), None);
        match stop(&facts, "kubelet") {
            Outcome::Kept(item) => assert!(item.reason.contains("not systemd"), "{}", item.reason),
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join("1/comm"), "systemd\n").unwrap();
        assert_eq!(init_system(&facts), InitSystem::Systemd);
    }
}
