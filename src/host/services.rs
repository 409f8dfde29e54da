//! System services (the kubelet, and the discovery endpoint's `kubestrap-discovery.service`): which
//! init system runs the node, whether a unit is active, and stopping and starting it through systemd
//! (or the service manager that answers `systemctl` as PID 1) — otherwise saying that there is none. A
//! command that stops or starts a unit journals it (`service` entries) so a rollback brings the unit
//! back to how it was (a unit kubestrap launched is disabled and stopped), and removes the pods a
//! kubelet it started had begun.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::command;
use super::facts::Facts;
use super::inventory::{Found, Kind, Outcome, Owner};
use super::journal::Entry;
use super::runtime::{DEFAULT_GRACE, cri, socket_path};
use super::{Host, Undone};

/// The journal entry kind of a unit this tool stopped or started.
pub const JOURNAL_KIND: &str = "service";

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

/// What a journaled service change did, for its undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum ServiceChange {
    /// The unit was stopped; `was_active` says whether it ran before.
    Stopped { was_active: bool },
    /// The unit (a kubelet) was started; the pod sandboxes the runtime at `cri_socket` had before
    /// are kept by the undo, the others are the started kubelet's and are removed, and so are the
    /// files it and its pods made in the state directories (what is not in their snapshots).
    /// A unit kubestrap installed (the discovery endpoint's) was enabled and (re)started: the undo
    /// disables and stops it.
    Launched,
    Started {
        cri_socket: String,
        sandboxes_before: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        state: Vec<StateSnapshot>,
    },
}

/// The entries of a directory (relative paths) before a kubelet started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub dir: super::NodePath,
    pub before: Vec<String>,
}

/// Why a unit could not be managed: no systemd, or systemctl failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("PID 1 is {0}, not systemd: there is no service manager to run the kubelet")]
    NoServiceManager(String),
    #[error("systemctl {verb} {unit} failed: {complaint}")]
    Failed {
        verb: String,
        unit: String,
        complaint: String,
    },
}

fn systemctl(verb: &str, unit: &str) -> anyhow::Result<()> {
    let args: Vec<&str> = if unit.is_empty() {
        vec![verb]
    } else {
        vec![verb, unit]
    };
    let out = command::run("systemctl", &args, None)?;
    if !out.success {
        return Err(ServiceError::Failed {
            verb: verb.to_string(),
            unit: unit.to_string(),
            complaint: out.complaint(),
        }
        .into());
    }
    Ok(())
}

fn require_systemd(facts: &Facts) -> Result<(), ServiceError> {
    match init_system(facts) {
        InitSystem::Systemd => Ok(()),
        InitSystem::Other(pid1) => Err(ServiceError::NoServiceManager(pid1)),
    }
}

/// The main PID of an active unit (`systemctl show -p MainPID`), `None` when inactive or unknown.
pub fn main_pid(facts: &Facts, unit: &str) -> Option<u32> {
    if init_system(facts) != InitSystem::Systemd {
        return None;
    }
    let out = command::run(
        "systemctl",
        &["show", "-p", "MainPID", "--value", unit],
        None,
    )
    .ok()?;
    out.stdout
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|pid| *pid != 0)
}

/// Stops a unit, journaling whether it ran so a rollback starts it again. In a dry run only says so.
pub fn stop_journaled(host: &Host, unit: &str) -> anyhow::Result<()> {
    let facts = host.facts();
    require_systemd(facts)?;
    let was_active = is_active(facts, unit) == Some(true);
    if host.dry_run() {
        if was_active {
            host.ui()
                .line(format!("[dry-run] Would stop the {unit} service"));
        }
        return Ok(());
    }
    journal_change(host, unit, &ServiceChange::Stopped { was_active })?;
    if was_active {
        systemctl("stop", unit)?;
    }
    Ok(())
}

/// Re-reads unit files (after a drop-in was written) and starts a kubelet unit, journaling the pod
/// sandboxes the runtime already has and the entries of `state_dirs` (the kubelet's, a local etcd's
/// data), so a rollback removes only the pods and files this kubelet and its pods made.
pub fn start_kubelet_journaled(
    host: &Host,
    unit: &str,
    cri_socket: &str,
    state_dirs: &[super::NodePath],
) -> anyhow::Result<()> {
    let facts = host.facts();
    require_systemd(facts)?;
    if host.dry_run() {
        host.ui().line(format!(
            "[dry-run] Would reload systemd and start the {unit} service"
        ));
        return Ok(());
    }
    let sandboxes_before = if std::path::Path::new(socket_path(cri_socket)).exists() {
        cri::scan(cri_socket)
            .map(|(sandboxes, _)| sandboxes.into_iter().map(|s| s.id).collect())
            .with_context(|| format!("listing the pods of the runtime at {cri_socket}"))?
    } else {
        Vec::new()
    };
    let state = state_dirs
        .iter()
        .map(|dir| StateSnapshot {
            dir: dir.clone(),
            before: entries(&host.disk(dir))
                .into_iter()
                .map(|(relative, _)| relative)
                .collect(),
        })
        .collect();
    journal_change(
        host,
        unit,
        &ServiceChange::Started {
            cri_socket: cri_socket.to_string(),
            sandboxes_before,
            state,
        },
    )?;
    systemctl("daemon-reload", "")?;
    systemctl("restart", unit)
}

/// Enables and (re)starts a unit kubestrap installed, journaled so a rollback disables and stops it.
/// A dry run plans it (`reason` says what the unit is).
pub fn launch_journaled(host: &Host, unit: &str, reason: &str) -> anyhow::Result<()> {
    require_systemd(host.facts())?;
    if host.dry_run() {
        host.plan_step(
            super::plan::Verb::Start,
            super::plan::Item::new(super::plan::Kind::Service, unit, reason),
        );
        return Ok(());
    }
    journal_change(host, unit, &ServiceChange::Launched)?;
    systemctl("daemon-reload", "")?;
    systemctl("enable", unit)?;
    systemctl("restart", unit)
}

/// Disables and stops a unit kubestrap installed (reset). Without systemd the item is kept with that
/// reason; a unit systemd does not know is already gone.
pub fn disable_now(facts: &Facts, unit: &str) -> Outcome {
    let found = Found::new(Kind::Service, unit, Owner::Kubestrap);
    match init_system(facts) {
        InitSystem::Other(pid1) => found.kept(format!(
            "PID 1 is {pid1}, not systemd: there is no {unit} service to stop"
        )),
        InitSystem::Systemd => match command::run("systemctl", &["disable", "--now", unit], None) {
            Ok(out) if out.success => Outcome::Removed(found.item("stopped and disabled")),
            Ok(out)
                if out.complaint().contains("not loaded")
                    || out.complaint().contains("does not exist") =>
            {
                Outcome::Removed(found.item("not loaded"))
            }
            Ok(out) => found.left(
                format!("systemctl disable --now failed: {}", out.complaint()),
                false,
            ),
            Err(e) => found.left(e.to_string(), false),
        },
    }
}

/// Restarts a running unit (a no-op for a unit that is not active, or without systemd).
pub fn try_restart(facts: &Facts, unit: &str) -> anyhow::Result<()> {
    if init_system(facts) != InitSystem::Systemd {
        return Ok(());
    }
    systemctl("try-restart", unit)
}

/// Every entry under `dir` (relative path, is a directory), parents before children, not crossing
/// into other file systems (a pod's tmpfs volumes) nor following symlinks.
fn entries(dir: &std::path::Path) -> Vec<(String, bool)> {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &std::path::Path, prefix: &str, device: u64, out: &mut Vec<(String, bool)>) {
        let Ok(listing) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in listing.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let is_dir = meta.is_dir();
            out.push((relative.clone(), is_dir));
            if is_dir && meta.dev() == device {
                walk(&entry.path(), &relative, device, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(meta) = std::fs::metadata(dir) {
        walk(dir, "", meta.dev(), &mut out);
    }
    out.sort();
    out
}

/// Removes the files and (then empty) directories under `dir` that are not in `before`. A directory
/// that still holds something (a mount point, a file of someone else) is left.
fn remove_new_entries(dir: &std::path::Path, before: &[String]) -> anyhow::Result<()> {
    let mut new: Vec<(String, bool)> = entries(dir)
        .into_iter()
        .filter(|(relative, _)| !before.contains(relative))
        .collect();
    // Children before their parents.
    new.sort_by(|a, b| b.0.cmp(&a.0));
    for (relative, is_dir) in new {
        let path = dir.join(&relative);
        let removed = if is_dir {
            std::fs::remove_dir(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) if is_dir => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    Ok(())
}

fn journal_change(host: &Host, unit: &str, change: &ServiceChange) -> anyhow::Result<()> {
    host.journal(Entry::Artefact {
        kind: JOURNAL_KIND.to_string(),
        target: unit.to_string(),
        detail: serde_json::to_value(change)?,
    })
}

/// Undoes a `service` entry: a stopped unit that ran is started again (one that did not stays
/// stopped); a started kubelet is stopped and the pod sandboxes it made are removed. `None` for
/// other entries.
pub fn undo(host: &Host, entry: &Entry) -> Option<anyhow::Result<Undone>> {
    let (target, detail) = entry.artefact(JOURNAL_KIND)?;
    Some(undo_change(host, target, detail))
}

fn undo_change(host: &Host, unit: &str, detail: &serde_json::Value) -> anyhow::Result<Undone> {
    let change: ServiceChange = serde_json::from_value(detail.clone())
        .with_context(|| format!("reading the journaled change of {unit}"))?;
    let facts = host.facts();
    let what = format!("{JOURNAL_KIND} {unit}");
    if let Err(no_manager) = require_systemd(facts) {
        return Ok(Undone::ObjectKept(what, no_manager.to_string()));
    }
    match change {
        ServiceChange::Stopped { was_active: false } => {
            if is_active(facts, unit) == Some(true) {
                systemctl("stop", unit)?;
            }
            Ok(Undone::Nothing)
        }
        ServiceChange::Stopped { was_active: true } => {
            systemctl("daemon-reload", "")?;
            systemctl("restart", unit)?;
            host.ui().debug(
                1,
                format!("[rollback] started {unit} again, as it ran before"),
            );
            Ok(Undone::Reverted(what))
        }
        ServiceChange::Launched => {
            let out = command::run("systemctl", &["disable", "--now", unit], None)?;
            if !out.success
                && !out.complaint().contains("not loaded")
                && !out.complaint().contains("does not exist")
            {
                return Err(ServiceError::Failed {
                    verb: "disable --now".to_string(),
                    unit: unit.to_string(),
                    complaint: out.complaint(),
                }
                .into());
            }
            Ok(Undone::Reverted(what))
        }
        ServiceChange::Started {
            cri_socket,
            sandboxes_before,
            state,
        } => {
            if is_active(facts, unit) == Some(true) {
                systemctl("stop", unit)?;
            }
            if std::path::Path::new(socket_path(&cri_socket)).exists() {
                let (sandboxes, containers) = cri::scan(&cri_socket)?;
                let new: Vec<cri::Sandbox> = sandboxes
                    .into_iter()
                    .filter(|s| !sandboxes_before.contains(&s.id))
                    .collect();
                let ids: Vec<&str> = new.iter().map(|s| s.id.as_str()).collect();
                let theirs: Vec<cri::Container> = containers
                    .into_iter()
                    .filter(|c| ids.contains(&c.sandbox_id.as_str()))
                    .collect();
                let grace = DEFAULT_GRACE.min(Duration::from_secs(5));
                for outcome in cri::remove_all(&cri_socket, &new, &theirs, grace)? {
                    if let Outcome::Left { item, .. } = outcome {
                        host.ui().warn(format!(
                            "[rollback] could not remove {}: {}",
                            item.target, item.reason
                        ));
                    }
                }
            }
            for snapshot in state {
                remove_new_entries(&host.disk(&snapshot.dir), &snapshot.before)
                    .with_context(|| format!("removing what {unit} made in {}", snapshot.dir))?;
            }
            Ok(Undone::Reverted(what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journaled_service_change_round_trips_and_is_kept_without_a_service_manager() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/1")).unwrap();
        std::fs::write(dir.path().join("proc/1/comm"), "tini\n").unwrap();
        let facts = Facts::with_roots(dir.path().join("proc"), "/sys");
        let host = Host::new(
            super::super::Root::new(dir.path().join("root")),
            facts,
            false,
            crate::output::Ui::default(),
        );
        let err = stop_journaled(&host, "kubelet.service").unwrap_err();
        assert!(err.to_string().contains("PID 1 is tini"), "{err}");
        let change = ServiceChange::Started {
            cri_socket: "unix:///run/containerd/containerd.sock".into(),
            sandboxes_before: vec!["abc".into()],
            state: Vec::new(),
        };
        let entry = Entry::Artefact {
            kind: JOURNAL_KIND.into(),
            target: "kubelet.service".into(),
            detail: serde_json::to_value(&change).unwrap(),
        };
        let line = serde_json::to_string(&entry).unwrap();
        assert!(line.contains(r#""action":"started""#), "{line}");
        let back: Entry = serde_json::from_str(&line).unwrap();
        match undo(&host, &back) {
            Some(Ok(Undone::ObjectKept(what, why))) => {
                assert_eq!(what, "service kubelet.service");
                assert!(why.contains("not systemd"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let sysctl = Entry::Artefact {
            kind: "sysctl".into(),
            target: "net.ipv4.ip_forward".into(),
            detail: serde_json::Value::Null,
        };
        assert!(undo(&host, &sysctl).is_none());
    }

    #[test]
    fn only_what_appeared_in_the_state_directory_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("pki")).unwrap();
        std::fs::write(root.join("config.yaml"), "x").unwrap();
        let before: Vec<String> = entries(root).into_iter().map(|(r, _)| r).collect();
        assert_eq!(before, ["config.yaml", "pki"]);
        std::fs::write(root.join("pki/kubelet-client-1.pem"), "x").unwrap();
        std::os::unix::fs::symlink(
            "kubelet-client-1.pem",
            root.join("pki/kubelet-client-current.pem"),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("pods/uid/volumes")).unwrap();
        remove_new_entries(root, &before).unwrap();
        let after: Vec<String> = entries(root).into_iter().map(|(r, _)| r).collect();
        assert_eq!(after, before);
    }

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
