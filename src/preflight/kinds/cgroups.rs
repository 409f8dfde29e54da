//! cgroup checks: which hierarchy the host runs (v1 or the unified v2) and whether the controllers
//! the kubelet needs are enabled.

use super::super::Outcome;
use super::super::context::Probe;
use crate::config::versions::KubeVersion;
use crate::host::Facts;

/// The first Kubernetes minor whose kubelet refuses cgroup v1 unless `failCgroupV1: false`.
const KUBELET_REFUSES_V1_FROM_MINOR: u32 = 35;

/// cgroup v2 when the unified hierarchy is mounted at /sys/fs/cgroup (it has `cgroup.controllers`).
pub fn is_v2(facts: &Facts) -> bool {
    facts.sys_path("fs/cgroup/cgroup.controllers").is_file()
}

/// `CgroupsVersion`: v2, or v1 with the kubelet allowed to run on it.
pub fn version(probe: &Probe) -> anyhow::Result<Outcome> {
    if is_v2(probe.facts()) {
        return Ok(Outcome::Pass("cgroup v2 (unified hierarchy)".to_string()));
    }
    let refuses = probe
        .node
        .kubernetes_version()
        .is_some_and(|v: &KubeVersion| v.minor >= KUBELET_REFUSES_V1_FROM_MINOR);
    let allowed = probe.node.kubelet().fail_cgroup_v1 == Some(false);
    let v1 = "the host runs cgroup v1: cgroups v1 support is in maintenance mode, please migrate to cgroups v2";
    Ok(if refuses && !allowed {
        Outcome::Fail(format!(
            "{v1}; the kubelet of Kubernetes v1.{KUBELET_REFUSES_V1_FROM_MINOR} and later refuses to start on cgroup v1 \
             unless its configuration sets failCgroupV1: false"
        ))
    } else {
        Outcome::Warn(format!(
            "{v1}; from Kubernetes v1.{KUBELET_REFUSES_V1_FROM_MINOR} the kubelet refuses cgroup v1 unless failCgroupV1: false, \
             and new kernel and runtime features (memory QoS, swap, PSI) are v2-only"
        ))
    })
}

/// The enabled controllers: /proc/cgroups on v1; cgroup.controllers (plus the implicit `devices`
/// and `freezer`) on v2.
fn enabled_controllers(facts: &Facts) -> anyhow::Result<Vec<String>> {
    if is_v2(facts) {
        let mut names: Vec<String> = facts
            .read_sys("fs/cgroup/cgroup.controllers")?
            .split_whitespace()
            .map(str::to_string)
            .collect();
        names.extend(["devices".to_string(), "freezer".to_string()]);
        return Ok(names);
    }
    Ok(facts
        .read_proc("cgroups")?
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.len() >= 4 && fields[3] != "0").then(|| fields[0].to_string())
        })
        .collect())
}

/// `CgroupControllers`: the controllers the kubelet needs for this hierarchy are enabled.
pub fn controllers(probe: &Probe, v1: &[String], v2: &[String]) -> anyhow::Result<Outcome> {
    let facts = probe.facts();
    let (hierarchy, required) = if is_v2(facts) { ("v2", v2) } else { ("v1", v1) };
    let enabled = enabled_controllers(facts)?;
    let missing: Vec<&str> = required
        .iter()
        .filter(|c| !enabled.contains(c))
        .map(String::as_str)
        .collect();
    Ok(if missing.is_empty() {
        Outcome::Pass(format!(
            "cgroup {hierarchy} controllers enabled: {}",
            required.join(" ")
        ))
    } else {
        Outcome::Fail(format!(
            "missing required cgroups: {} (cgroup {hierarchy})",
            missing.join(" ")
        ))
    })
}
