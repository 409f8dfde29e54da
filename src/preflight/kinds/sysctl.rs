//! `FileContent--proc-sys-…`: a kernel parameter has the value Kubernetes needs, read from /proc/sys
//! (per network namespace for net.*). `--fix` sets it (see [`crate::preflight::fix`]).

use std::path::PathBuf;

use super::super::Outcome;
use super::super::context::Probe;
use crate::host::Facts;

/// The /proc/sys file of a dotted key (`net.ipv4.ip_forward` → `<proc>/sys/net/ipv4/ip_forward`).
pub fn sysctl_path(facts: &Facts, key: &str) -> PathBuf {
    crate::host::sysctl::live_path(facts, key)
}

/// The canonical path shown in messages.
fn shown(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

pub fn has_value(probe: &Probe, key: &str, wanted: &str) -> anyhow::Result<Outcome> {
    let path = sysctl_path(probe.facts(), key);
    Ok(match std::fs::read_to_string(&path) {
        Ok(text) if text.trim() == wanted => Outcome::Pass(format!("{} is {wanted}", shown(key))),
        Ok(text) => Outcome::Fail(format!(
            "{} contents are not set to {wanted} (it is {})",
            shown(key),
            text.trim()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let why = if key.starts_with("net.bridge.") {
                " (bridge netfilter is not available: the br_netfilter module is not loaded)"
            } else {
                ""
            };
            Outcome::Fail(format!("{} does not exist{why}", shown(key)))
        }
        Err(e) => Outcome::Fail(format!("{} could not be read: {e}", shown(key))),
    })
}
