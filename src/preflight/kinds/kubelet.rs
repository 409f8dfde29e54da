//! Kubelet checks: the binary's version against the control plane (skew), its systemd service, and
//! whether its cgroup driver can work under this host's init system.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::super::Outcome;
use super::super::context::Probe;
use crate::config::versions::{DEFAULT_KUBERNETES_VERSION, KubeVersion};
use crate::host::Facts;
use crate::host::paths::NodePath;
use crate::kubelet::{self, cgroup, standalone};

/// kubeadm's `MinimumKubeletVersion`: the kubelet may be up to three minor versions older.
const KUBELET_SKEW_MINORS: u32 = 3;
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a command and returns its standard output, killing it after `timeout`.
fn output_within(mut command: Command, timeout: Duration) -> anyhow::Result<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                stdout.read_to_string(&mut out)?;
            }
            anyhow::ensure!(status.success(), "exited with {status}");
            return Ok(out);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("did not answer within {}s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `KubeletVersion`: the kubelet in PATH is no newer than the control plane and at most three minors older.
pub fn version(probe: &Probe) -> anyhow::Result<Outcome> {
    let Some(kubelet) = probe.env.find_executable("kubelet") else {
        return Ok(Outcome::Fail(
            "kubelet not found in system path: couldn't get kubelet version".to_string(),
        ));
    };
    let mut command = Command::new(&kubelet);
    command.arg("--version");
    let text = match output_within(command, VERSION_TIMEOUT) {
        Ok(t) => t,
        Err(e) => {
            return Ok(Outcome::Fail(format!(
                "couldn't get kubelet version: {} --version {e:#}",
                kubelet.display()
            )));
        }
    };
    let Some(found) = text
        .split_whitespace()
        .find_map(|word| KubeVersion::parse(word).ok())
    else {
        return Ok(Outcome::Fail(format!(
            "couldn't get kubelet version: cannot read a version in {:?}",
            text.trim()
        )));
    };
    let control_plane = match probe.node.kubernetes_version() {
        Some(v) => v.clone(),
        None => KubeVersion::parse(DEFAULT_KUBERNETES_VERSION).map_err(anyhow::Error::msg)?,
    };
    let oldest_minor = control_plane.minor.saturating_sub(KUBELET_SKEW_MINORS);
    Ok(
        if found.major != control_plane.major || found.minor > control_plane.minor {
            Outcome::Fail(format!(
                "the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"{found}\" Control plane version: \"{control_plane}\""
            ))
        } else if found.minor < oldest_minor {
            Outcome::Fail(format!(
                "Kubelet version \"{found}\" is lower than kubeadm can support: a {control_plane} control plane needs v{}.{oldest_minor} or newer. Please upgrade kubelet",
                control_plane.major
            ))
        } else {
            Outcome::Pass(format!("kubelet {found} (control plane {control_plane})"))
        },
    )
}

/// The name of PID 1 (`systemd` on systemd hosts).
pub fn init_process(facts: &Facts) -> anyhow::Result<String> {
    Ok(facts.read_proc("1/comm")?.trim().to_string())
}

/// The node's own unit directory: state under `--root` (where an admin's or kubestrap's units go).
const LOCAL_UNIT_DIR: &str = "/etc/systemd/system";
/// Where packages install units: the host's, not state under `--root`.
const PACKAGED_UNIT_DIRS: [&str; 2] = ["/lib/systemd/system", "/usr/lib/systemd/system"];

/// `Service-Kubelet`: the kubelet unit exists and is enabled (a `*.wants/kubelet.service` link).
pub fn service(probe: &Probe) -> anyhow::Result<Outcome> {
    let init = init_process(probe.facts())?;
    if init != "systemd" {
        return Ok(Outcome::Skip(format!(
            "PID 1 is {init}, not systemd: there is no kubelet service to check"
        )));
    }
    let local = NodePath::new(LOCAL_UNIT_DIR).join("kubelet.service");
    let unit = if probe.host.exists(&local) {
        Some(local.display_str())
    } else {
        PACKAGED_UNIT_DIRS
            .iter()
            .map(|d| format!("{d}/kubelet.service"))
            .find(|p| probe.facts().host_file_exists(p))
    };
    let Some(unit) = unit else {
        return Ok(Outcome::Fail("kubelet service does not exist".to_string()));
    };
    let systemd_dir = probe.host.disk(&NodePath::new(LOCAL_UNIT_DIR));
    let enabled = std::fs::read_dir(&systemd_dir)
        .with_context(|| format!("listing {}", systemd_dir.display()))
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                e.file_name().to_string_lossy().ends_with(".wants")
                    && e.path().join("kubelet.service").symlink_metadata().is_ok()
            })
        })
        .unwrap_or(false);
    Ok(if enabled {
        Outcome::Pass(format!("{unit} is enabled"))
    } else {
        Outcome::Fail(
            "kubelet service is not enabled, please run 'systemctl enable kubelet.service'"
                .to_string(),
        )
    })
}

/// The kubelet's cgroup driver as kubelet-start chooses it: the configuration's, else the runtime's.
pub fn chosen_driver(probe: &Probe) -> cgroup::Choice {
    cgroup::choose(
        probe.node.kubelet(),
        probe.facts(),
        &probe.node.node.cri_socket,
    )
}

/// `KubeletCgroupDriver`: a driver the user chose is the runtime's; the `systemd` driver needs
/// systemd as PID 1; `cgroupfs` under systemd gives one cgroup tree two managers.
pub fn cgroup_driver(probe: &Probe) -> anyhow::Result<Outcome> {
    let init = init_process(probe.facts())?;
    let choice = chosen_driver(probe);
    if let Some(disagreement) = choice.disagreement() {
        return Ok(Outcome::Fail(disagreement));
    }
    let driver = choice.kubelet.name.as_str();
    Ok(match (driver, init == "systemd") {
        ("systemd", false) => Outcome::Fail(format!(
            "the kubelet's cgroupDriver is systemd, but PID 1 is {init}, not systemd: the kubelet cannot create its cgroups through systemd and will not start"
        )),
        ("cgroupfs", true) => Outcome::Warn(
            "the kubelet's cgroupDriver is cgroupfs on a systemd host: systemd and the kubelet then both manage the cgroup tree, which becomes unstable under resource pressure".to_string(),
        ),
        ("systemd" | "cgroupfs", _) => Outcome::Pass(format!(
            "the kubelet's cgroupDriver {driver} ({}) suits PID 1 ({init})",
            choice.kubelet.source.describe()
        )),
        (other, _) => Outcome::Fail(format!(
            "the kubelet's cgroupDriver {other:?} is neither systemd nor cgroupfs"
        )),
    })
}

/// `Port-10250`: free; the kubelet package's unconfigured service is a warning (kubelet-start takes
/// it over); a configured kubelet or another process is an error.
pub fn port(probe: &Probe) -> anyhow::Result<Outcome> {
    let holder = standalone::port_holder(probe.host, kubelet::PORT);
    let dir = standalone::kubelet_dir(probe.host)?;
    let in_use = format!("Port {} is in use", kubelet::PORT);
    Ok(match &holder {
        standalone::PortHolder::Free => Outcome::Pass(format!("port {} is free", kubelet::PORT)),
        standalone::PortHolder::StandaloneKubelet(listener) => {
            match standalone::takeover(&holder, &dir) {
                Some(plan) => Outcome::Warn(plan.message),
                None => Outcome::Fail(format!(
                    "{in_use} by the kubelet service (pid {}), which runs without a configuration but left files of an \
                     earlier configuration in {}",
                    listener.pid,
                    crate::host::well_known::KUBELET_DIR
                )),
            }
        }
        standalone::PortHolder::ConfiguredKubelet(listener, why) => Outcome::Fail(format!(
            "{in_use} by a configured kubelet (kubelet service, pid {}: {why})",
            listener.pid
        )),
        standalone::PortHolder::Foreign(Some(listener)) => Outcome::Fail(format!(
            "{in_use} by {} (pid {}), which is not the node's kubelet service",
            listener.name, listener.pid
        )),
        standalone::PortHolder::Foreign(None) => Outcome::Fail(in_use),
    })
}

/// `DirAvailable--var-lib-kubelet`: empty; only a standalone kubelet's own files is a warning (while
/// no configured kubelet holds the port); anything else an error.
pub fn dir(probe: &Probe) -> anyhow::Result<Outcome> {
    let path = crate::host::well_known::KUBELET_DIR;
    Ok(match standalone::kubelet_dir(probe.host)? {
        standalone::KubeletDir::Empty => Outcome::Pass(format!("{path} is absent or empty")),
        standalone::KubeletDir::SelfGenerated(files) => {
            let holder = standalone::port_holder(probe.host, kubelet::PORT);
            match standalone::takeover(
                &holder,
                &standalone::KubeletDir::SelfGenerated(files.clone()),
            ) {
                Some(_) => Outcome::Warn(format!(
                    "{path} holds only a standalone kubelet's self-generated files ({}): kubelet-start removes them \
                     before writing the kubelet's configuration",
                    files.join(", ")
                )),
                None => Outcome::Fail(format!(
                    "{path} is not empty (it holds {}) and port {} is held by a process that is not the standalone kubelet",
                    files.join(", "),
                    kubelet::PORT
                )),
            }
        }
        standalone::KubeletDir::Other(names) => {
            let shown: Vec<String> = names.iter().take(5).cloned().collect();
            let more = if names.len() > 5 { ", …" } else { "" };
            Outcome::Fail(format!(
                "{path} is not empty (it holds {}{more})",
                shown.join(", ")
            ))
        }
    })
}
