//! The dry-run plan and report item both gateways use: `{"kind", "target", "reason"}`.

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
