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

/// `KubeletCgroupDriver`: the `systemd` driver needs systemd as PID 1; `cgroupfs` under systemd
/// gives one cgroup tree two managers.
pub fn cgroup_driver(probe: &Probe) -> anyhow::Result<Outcome> {
    let init = init_process(probe.facts())?;
    let driver = probe.node.kubelet().cgroup_driver.as_str();
    Ok(match (driver, init == "systemd") {
        ("systemd", false) => Outcome::Fail(format!(
            "the kubelet's cgroupDriver is systemd, but PID 1 is {init}, not systemd: the kubelet cannot create its cgroups through systemd and will not start"
        )),
        ("cgroupfs", true) => Outcome::Warn(
            "the kubelet's cgroupDriver is cgroupfs on a systemd host: systemd and the kubelet then both manage the cgroup tree, which becomes unstable under resource pressure".to_string(),
        ),
        ("systemd" | "cgroupfs", _) => Outcome::Pass(format!(
            "the kubelet's cgroupDriver {driver} suits PID 1 ({init})"
        )),
        (other, _) => Outcome::Fail(format!(
            "the kubelet's cgroupDriver {other:?} is neither systemd nor cgroupfs"
        )),
    })
}
