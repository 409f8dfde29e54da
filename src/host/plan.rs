//! The dry-run plan and report item both gateways use: `{"kind", "target", "reason"}`, the verb a plan
//! step applies to it, and the one line a planned step prints as.

use serde::Serialize;

/// The kinds of artefacts, as named in dry-run plans and the reset report: the host's, and objects
/// in the cluster (`api-object`, the cluster gateway's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Mount,
    Path,
    Link,
    Netns,
    Route,
    IptablesChain,
    IptablesRule,
    NftTable,
    Ipset,
    IpvsService,
    IpamReservation,
    Container,
    EtcdMember,
    Service,
    Sysctl,
    ApiObject,
}

/// A report line: `{"kind", "target", "reason"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Item {
    pub kind: Kind,
    pub target: String,
    pub reason: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reboot_required: bool,
}

impl Item {
    pub fn new(kind: Kind, target: impl Into<String>, reason: impl Into<String>) -> Self {
        Item {
            kind,
            target: target.into(),
            reason: reason.into(),
            reboot_required: false,
        }
    }
}

impl Kind {
    /// The kind as plans, reports and JSON name it (`path`, `iptables-chain`, `api-object`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mount => "mount",
            Kind::Path => "path",
            Kind::Link => "link",
            Kind::Netns => "netns",
            Kind::Route => "route",
            Kind::IptablesChain => "iptables-chain",
            Kind::IptablesRule => "iptables-rule",
            Kind::NftTable => "nft-table",
            Kind::Ipset => "ipset",
            Kind::IpvsService => "ipvs-service",
            Kind::IpamReservation => "ipam-reservation",
            Kind::Container => "container",
            Kind::EtcdMember => "etcd-member",
            Kind::Service => "service",
            Kind::Sysctl => "sysctl",
            Kind::ApiObject => "api-object",
        }
    }
}

/// What a planned step does to its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verb {
    /// A directory made; an API object created.
    Create,
    /// An API object applied server-side.
    Apply,
    /// An API object patched.
    Patch,
    /// An API object deleted.
    Delete,
    /// A file written (made, or replaced after a backup).
    Write,
    /// A live kernel value set.
    Set,
    /// A service (re)started.
    Start,
    /// A service stopped.
    Stop,
    /// Something of the cluster's removed (reset).
    Remove,
    /// A copy saved before something is wiped (reset's etcd snapshot and PKI backup).
    Save,
    /// A file put back to its version from before kubestrap (reset).
    Restore,
    /// Something found and left alone on purpose (reset: someone else's, or protected data).
    Keep,
}

impl Verb {
    pub fn phrase(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Apply => "apply",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::Write => "write",
            Verb::Set => "set",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Remove => "remove",
            Verb::Save => "save",
            Verb::Restore => "restore",
            Verb::Keep => "keep",
        }
    }
}

/// The one line every planned step prints as: `[dry-run] Would <verb> <kind> <target> (<reason>)`
/// (without the reason when it only repeats the verb).
pub fn line(verb: &str, item: &Item) -> String {
    if item.reason.is_empty() || item.reason == verb {
        format!(
            "[dry-run] Would {verb} {} {}",
            item.kind.name(),
            item.target
        )
    } else {
        format!(
            "[dry-run] Would {verb} {} {} ({})",
            item.kind.name(),
            item.target,
            item.reason
        )
    }
}

/// How plans, reports and the journal name an API object: `<apiVersion> <Kind> [<namespace>/]<name>`
/// (`v1 ConfigMap kube-system/kubeadm-config`, `v1 Node node2`).
pub fn api_object_target(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> String {
    match namespace {
        Some(ns) => format!("{api_version} {kind} {ns}/{name}"),
        None => format!("{api_version} {kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_their_json_names() {
        for kind in [
            Kind::Path,
            Kind::IptablesChain,
            Kind::ApiObject,
            Kind::IpamReservation,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }

    #[test]
    fn a_step_prints_as_one_line() {
        let item = Item::new(
            Kind::Path,
            "/r/etc/kubernetes/admin.conf",
            "mode 0600, 5 bytes",
        );
        assert_eq!(
            line(Verb::Write.phrase(), &item),
            "[dry-run] Would write path /r/etc/kubernetes/admin.conf (mode 0600, 5 bytes)"
        );
    }
}
