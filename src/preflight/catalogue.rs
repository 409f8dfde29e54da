//! The check catalogue: `preflight/checks.yaml`, embedded in the binary, parsed once, and rendered
//! per node (ids and parameters may name settings such as `{bindPort}` or `{etcdDataDir}`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use anyhow::anyhow;
use serde::{Deserialize, Serialize};

use super::kinds::Kind;
use super::settings::PreflightInput;

/// The catalogue source, as committed.
pub const CATALOGUE_YAML: &str = include_str!("../../preflight/checks.yaml");

/// Which command (and which kind of node) a check runs for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Init,
    JoinWorker,
    JoinControlPlane,
    Reset,
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Init => "init",
            Role::JoinWorker => "join-worker",
            Role::JoinControlPlane => "join-control-plane",
            Role::Reset => "reset",
        }
    }

    pub fn is_control_plane(&self) -> bool {
        matches!(self, Role::Init | Role::JoinControlPlane)
    }

    pub fn is_join(&self) -> bool {
        matches!(self, Role::JoinWorker | Role::JoinControlPlane)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a failing check counts: an error stops the command, a warning is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn name(&self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// When a check applies; every condition of an entry must hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Condition {
    /// etcd runs on this node as a static pod.
    LocalEtcd,
    /// The cluster uses an external etcd.
    ExternalEtcd,
    /// The node has IPv4 addresses in play (advertise address, endpoint or subnets).
    Ipv4,
    /// The node has IPv6 addresses in play.
    Ipv6,
    /// The chosen pod-network addon needs this kernel option (`kernel-config` in its `addon.yaml`).
    PodNetworkNeeds(String),
    /// A Docker engine runs on the node (or is the Kubernetes runtime through cri-dockerd).
    DockerEngine,
    /// The discovery endpoint is enabled (`--discovery-port` is not 0).
    DiscoveryEndpoint,
}

impl Condition {
    /// Words for the catalogue page and for "not applicable" messages.
    pub fn describe(&self) -> String {
        match self {
            Condition::LocalEtcd => "etcd runs on this node (local etcd)".to_string(),
            Condition::ExternalEtcd => "the cluster uses an external etcd".to_string(),
            Condition::Ipv4 => "the node uses IPv4".to_string(),
            Condition::Ipv6 => "the node uses IPv6".to_string(),
            Condition::PodNetworkNeeds(option) => {
                format!("the pod-network addon needs CONFIG_{option}")
            }
            Condition::DockerEngine => "a Docker engine runs on the node".to_string(),
            Condition::DiscoveryEndpoint => {
                "the discovery endpoint is enabled (--discovery-port is not 0)".to_string()
            }
        }
    }
}

/// One check of the catalogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Entry {
    /// The id as printed and matched by `--ignore-preflight-errors`; may hold `{setting}` placeholders.
    pub id: String,
    /// What the check verifies, in one line.
    pub title: String,
    /// The roles that run the check and the severity of a failure in each.
    pub roles: BTreeMap<Role, Severity>,
    #[serde(default)]
    pub when: Vec<Condition>,
    pub check: Kind,
    /// What to do when the check fails.
    pub remediation: String,
    /// A remedy that replaces `remediation` for one role, where that role's failure means something
    /// else (reset without a runtime cannot stop containers; init and join cannot start any).
    #[serde(default)]
    pub remediation_for: BTreeMap<Role, String>,
}

impl Entry {
    pub fn severity(&self, role: Role) -> Option<Severity> {
        self.roles.get(&role).copied()
    }

    /// What to do when the check fails for this role.
    pub fn remediation(&self, role: Role) -> &str {
        self.remediation_for.get(&role).unwrap_or(&self.remediation)
    }

    /// The id for this node: placeholders filled in, paths written with '-' for '/' (kubeadm's style).
    pub fn id_for(&self, node: &PreflightInput) -> String {
        render(&self.id, node, true)
    }
}

/// The setting placeholders catalogue text may use.
pub const PLACEHOLDERS: [&str; 4] = ["bindPort", "discoveryPort", "etcdDataDir", "certDir"];

/// Fills `{setting}` placeholders from the node's settings. In ids, '/' in a value becomes '-'.
pub fn render(template: &str, node: &PreflightInput, for_id: bool) -> String {
    let mut out = template.to_string();
    for name in PLACEHOLDERS {
        let key = format!("{{{name}}}");
        if !out.contains(&key) {
            continue;
        }
        let value = match name {
            "bindPort" => node.bind_port().to_string(),
            "discoveryPort" => node.discovery_port().to_string(),
            "etcdDataDir" => node.etcd_data_dir().display_str(),
            _ => node.cert_dir().display_str(),
        };
        let value = if for_id {
            value.replace('/', "-")
        } else {
            value
        };
        out = out.replace(&key, &value);
    }
    out
}

/// The parsed catalogue.
pub fn catalogue() -> anyhow::Result<&'static [Entry]> {
    static PARSED: OnceLock<Result<Vec<Entry>, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| parse(CATALOGUE_YAML))
        .as_deref()
        .map_err(|e| anyhow!("the built-in preflight catalogue is invalid: {e}"))
}

/// Parses catalogue text and checks it is well formed (unique ids, known placeholders, at least one role).
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let entries: Vec<Entry> = crate::yaml::from_str(text).map_err(|e| e.to_string())?;
    let mut seen = std::collections::BTreeSet::new();
    for entry in &entries {
        if !seen.insert(entry.id.to_lowercase()) {
            return Err(format!("duplicate check id {:?}", entry.id));
        }
        if entry.roles.is_empty() {
            return Err(format!("check {:?} names no role", entry.id));
        }
        for role in entry.remediation_for.keys() {
            if !entry.roles.contains_key(role) {
                return Err(format!(
                    "check {:?} has a remedy for {role}, a role it does not run for",
                    entry.id
                ));
            }
        }
        let texts = [&entry.id, &entry.title, &entry.remediation]
            .into_iter()
            .chain(entry.remediation_for.values());
        for text in texts {
            if let Some(unknown) = unknown_placeholder(text) {
                return Err(format!(
                    "check {:?} uses the unknown placeholder {{{unknown}}} (known: {})",
                    entry.id,
                    PLACEHOLDERS.join(", ")
                ));
            }
        }
        entry
            .check
            .validate()
            .map_err(|e| format!("check {:?}: {e}", entry.id))?;
    }
    Ok(entries)
}

fn unknown_placeholder(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let name = &after[..end];
        // Only `{identifier}` is a placeholder; other braces (JSON in a remedy) are text.
        let identifier = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric());
        if identifier && !PLACEHOLDERS.contains(&name) {
            return Some(name.to_string());
        }
        rest = &after[end + 1..];
    }
    None
}

/// The entries that run for a role, in catalogue order.
pub fn for_role(role: Role) -> anyhow::Result<Vec<&'static Entry>> {
    Ok(catalogue()?
        .iter()
        .filter(|e| e.roles.contains_key(&role))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalogue_parses() {
        let entries = catalogue().unwrap();
        assert!(entries.len() >= 40);
    }

    #[test]
    fn duplicate_ids_and_unknown_placeholders_are_refused() {
        let one =
            "- id: Swap\n  title: t\n  roles: {init: warning}\n  check: swap\n  remediation: r\n";
        assert!(parse(one).is_ok());
        let twice = format!("{one}{}", one.replace("Swap", "swap"));
        assert!(parse(&twice).unwrap_err().contains("duplicate"));
        let bad = one.replace("id: Swap", "id: Port-{apiPort}");
        assert!(parse(&bad).unwrap_err().contains("apiPort"));
        let json = one.replace(
            "remediation: r",
            "remediation: 'set {\"max-size\": \"1m\"}'",
        );
        assert!(parse(&json).is_ok());
        let no_role = one.replace("{init: warning}", "{}");
        assert!(parse(&no_role).unwrap_err().contains("no role"));
    }
}
