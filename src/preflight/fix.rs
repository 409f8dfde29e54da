//! `--fix`: the safe fixes. Sysctls go into one /etc/sysctl.d drop-in (so they survive a reboot) and
//! are set live, both through the Host gateway, which journals them: a rollback of the run removes the
//! drop-in and puts each live value back. `reset` removes the drop-in through the journal but leaves
//! live values alone (other software, such as Docker, relies on ip_forward).

use std::collections::BTreeMap;

use anyhow::Context;

use crate::host::paths::{NodePath, well_known};
use crate::host::{Host, SysctlSet};

/// The drop-in kubestrap owns.
pub fn drop_in() -> NodePath {
    NodePath::new(well_known::SYSCTL_DIR).join("99-kubestrap.conf")
}

const HEADER: &str = "# Written by kubestrap --fix: kernel parameters Kubernetes needs.\n\
                      # 'kubestrap reset' removes this file; it does not change the live values.\n";

/// Parses `key = value` lines (comments and blank lines are dropped).
fn parse_drop_in(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn render_drop_in(values: &BTreeMap<String, String>) -> String {
    let mut text = HEADER.to_string();
    for (key, value) in values {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text
}

/// What applying one sysctl did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Written to the drop-in and set live.
    Set,
    /// Dry run: the plan was printed, nothing changed.
    Planned,
    /// The drop-in was written but the live value could not be set (e.g. the file does not exist).
    LiveFailed(String),
}

/// Adds the sysctls to the drop-in and sets them live. Returns one result per key, in order.
pub fn apply_sysctls(host: &Host, sysctls: &[(String, String)]) -> anyhow::Result<Vec<Applied>> {
    if sysctls.is_empty() {
        return Ok(Vec::new());
    }
    let path = drop_in();
    let mut values = match host.read_optional(&path)? {
        Some(bytes) => parse_drop_in(&String::from_utf8_lossy(&bytes)),
        None => BTreeMap::new(),
    };
    let before = values.clone();
    for (key, value) in sysctls {
        values.insert(key.clone(), value.clone());
    }
    if values != before || !host.exists(&path) {
        host.write_file(&path, render_drop_in(&values).as_bytes(), 0o644)
            .with_context(|| format!("writing the sysctl drop-in {path}"))?;
    }
    let mut results = Vec::new();
    for (key, value) in sysctls {
        results.push(match host.set_sysctl(key, value)? {
            SysctlSet::Planned => Applied::Planned,
            SysctlSet::Set => {
                host.ui()
                    .line(format!("[preflight] Set {key} = {value} (and in {path})"));
                Applied::Set
            }
            SysctlSet::Failed(why) => Applied::LiveFailed(why),
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_in_round_trips_and_merges() {
        let mut values = parse_drop_in("# c\nnet.ipv4.ip_forward = 1\n\nvm.x=2\n");
        assert_eq!(values.len(), 2);
        values.insert("net.ipv4.ip_forward".into(), "1".into());
        let text = render_drop_in(&values);
        assert!(text.starts_with("# Written by kubestrap"));
        assert_eq!(parse_drop_in(&text), values);
    }
}
