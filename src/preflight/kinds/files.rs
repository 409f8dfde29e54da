//! Checks of state files under `--root` (files that must not exist, directories that must be empty,
//! files the configuration points at) and of the host's /etc/machine-id (a host fact).

use super::super::Outcome;
use super::super::context::Probe;
use super::summarize;
use crate::host::paths::NodePath;

/// `FileAvailable-…`: the file does not exist yet.
pub fn file_absent(probe: &Probe, path: &NodePath) -> anyhow::Result<Outcome> {
    Ok(if probe.host.exists(path) {
        Outcome::Fail(format!("{path} already exists"))
    } else {
        Outcome::Pass(format!("{path} does not exist"))
    })
}

/// `DirAvailable-…`: the directory is absent or empty.
pub fn dir_empty(probe: &Probe, path: &NodePath) -> anyhow::Result<Outcome> {
    if probe.host.dir_is_empty_or_absent(path)? {
        return Ok(Outcome::Pass(format!("{path} is absent or empty")));
    }
    let mut names: Vec<String> = std::fs::read_dir(probe.host.disk(path))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let holds = if names.is_empty() {
        String::new()
    } else {
        format!(" (it holds {})", summarize(&names, 5))
    };
    Ok(Outcome::Fail(format!("{path} is not empty{holds}")))
}

/// `MachineID`: /etc/machine-id holds 32 hexadecimal characters.
pub fn machine_id(probe: &Probe) -> anyhow::Result<Outcome> {
    let path = "/etc/machine-id";
    let Some(bytes) = probe.facts().read_host_file(path)? else {
        return Ok(Outcome::Fail(format!("{path} does not exist")));
    };
    let text = String::from_utf8_lossy(&bytes);
    let id = text.trim();
    Ok(if id.is_empty() {
        Outcome::Fail(format!("{path} is empty"))
    } else if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Outcome::Fail(format!(
            "{path} holds {id:?}, not a machine id of 32 hexadecimal characters"
        ))
    } else {
        Outcome::Pass(format!("{path} holds a machine id"))
    })
}

/// `ExternalEtcdClientCertificates`: caFile, certFile and keyFile of the external etcd exist.
pub fn external_etcd_files(probe: &Probe) -> anyhow::Result<Outcome> {
    let missing: Vec<String> = probe
        .node
        .external_etcd_files()
        .iter()
        .filter(|p| !probe.host.exists(p))
        .map(NodePath::display_str)
        .collect();
    Ok(if missing.is_empty() {
        Outcome::Pass(format!(
            "{} external etcd client file(s) present",
            probe.node.external_etcd_files().len()
        ))
    } else {
        Outcome::Fail(format!("{} doesn't exist", missing.join(", ")))
    })
}
