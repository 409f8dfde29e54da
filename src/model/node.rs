//! `NodeSpec`: this node, fully resolved: its name, role, API endpoint (control planes), CRI socket,
//! taints, labels, kubelet arguments, timeouts and how its static pods are rendered.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::cluster::{Endpoint, join_host_port};
use crate::config::defaults;
use crate::config::duration::GoDuration;
use crate::config::types::{Arg, Taint, Timeouts};

/// The label every control-plane Node carries (kubeadm's mark-control-plane).
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// Keeps external load balancers from sending traffic to control-plane Nodes (kubeadm sets it too).
pub const EXCLUDE_FROM_LOAD_BALANCERS_LABEL: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    ControlPlane,
    Worker,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// The Node name and every certificate CN of this node (a lowercase RFC 1123 subdomain).
    pub name: String,
    pub role: NodeRole,
    /// Where this node's API server listens (control planes only).
    #[serde(
        default,
        rename = "localAPIEndpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_api_endpoint: Option<LocalApiEndpoint>,
    /// `unix:///…` socket of the container runtime.
    pub cri_socket: String,
    pub image_pull_policy: String,
    pub image_pull_serial: bool,
    /// Taints the Node gets when it registers (an empty list: none).
    pub taints: Vec<Taint>,
    /// Labels the Node gets (control planes: kubeadm's role labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet_extra_args: Vec<Arg>,
    pub timeouts: NodeTimeouts,
    /// kubestrap's `--mount-host-localtime`: the static pods mount the host's /etc/localtime.
    #[serde(default)]
    pub mount_host_localtime: bool,
}

/// What the pod-network renderer needs of the interface that carries the advertise address, found on
/// the host by each init run ([`crate::model::resolve::init::pod_interface`]); never recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodInterface {
    /// Its MTU (the pod MTU is this minus the addon's encapsulation); None when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub selection: InterfaceSelection,
    /// Whether the kernel has IP-in-IP (`CONFIG_NET_IPIP` in its configuration); None when the
    /// configuration is unreadable. An addon whose encapsulation needs it falls back to its
    /// `fallback-encapsulation` when it is Some(false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip: Option<bool>,
}

/// An interface selection that holds on every node, not node 1's interface name: the interface whose
/// address is in the node network's subnet, or the one that routes to an address every node reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum InterfaceSelection {
    Cidr(ipnet::IpNet),
    CanReach(std::net::IpAddr),
}

impl NodeSpec {
    pub fn is_control_plane(&self) -> bool {
        self.role == NodeRole::ControlPlane
    }

    /// kubeadm's labels of a control-plane Node.
    pub fn control_plane_labels() -> BTreeMap<String, String> {
        [CONTROL_PLANE_LABEL, EXCLUDE_FROM_LOAD_BALANCERS_LABEL]
            .into_iter()
            .map(|key| (key.to_string(), String::new()))
            .collect()
    }
}

/// A control-plane node's API server address and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalApiEndpoint {
    pub advertise_address: IpAddr,
    pub bind_port: u16,
}

impl LocalApiEndpoint {
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.advertise_address.to_string(), self.bind_port)
    }

    /// `advertiseAddress:bindPort` with IPv6 in brackets.
    pub fn host_port(&self) -> String {
        join_host_port(&self.advertise_address.to_string(), self.bind_port)
    }
}

/// How long this node's steps may take (kubeadm's `timeouts`, defaulted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeTimeouts {
    pub control_plane_component_health_check: GoDuration,
    pub kubelet_health_check: GoDuration,
    #[serde(rename = "kubernetesAPICall")]
    pub kubernetes_api_call: GoDuration,
    #[serde(rename = "etcdAPICall")]
    pub etcd_api_call: GoDuration,
    pub tls_bootstrap: GoDuration,
    pub discovery: GoDuration,
    pub upgrade_manifests: GoDuration,
}

impl NodeTimeouts {
    /// The given `timeouts` with kubeadm's defaults for what is not set.
    pub fn from_config(given: Option<&Timeouts>) -> Self {
        let mut t = given.cloned().unwrap_or_default();
        defaults::timeouts(&mut t);
        let get = |d: Option<GoDuration>| d.unwrap_or_default();
        NodeTimeouts {
            control_plane_component_health_check: get(t.control_plane_component_health_check),
            kubelet_health_check: get(t.kubelet_health_check),
            kubernetes_api_call: get(t.kubernetes_api_call),
            etcd_api_call: get(t.etcd_api_call),
            tls_bootstrap: get(t.tls_bootstrap),
            discovery: get(t.discovery),
            upgrade_manifests: get(t.upgrade_manifests),
        }
    }
}

impl Default for NodeTimeouts {
    /// kubeadm's defaults.
    fn default() -> Self {
        NodeTimeouts::from_config(None)
    }
}
