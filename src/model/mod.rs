//! The resolved cluster model: [`ClusterSpec`] (cluster-wide) + [`NodeSpec`] (this node), built once per
//! command and the only input of every renderer (PKI, kubeconfigs, static pods, preflight settings).
//!
//! Init resolves it from `--config` + flags + defaults + host facts ([`resolve::init`]); join resolves
//! the node part from its JoinConfiguration ([`resolve::join`]); reset and the certs commands read the
//! copy the node recorded ([`record`]). The kubeadm v1beta4 documents are only the input format: no
//! renderer reads them.

pub mod cluster;
pub mod configmap;
pub mod node;
pub mod published;
pub mod record;
pub mod resolve;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use cluster::{
    ApiServerSpec, CertificatesSpec, ClusterSpec, ComponentSpec, DiscoverySpec, DnsSpec, Endpoint,
    EtcdSpec, ExternalEtcdSpec, Image, KubeletSpec, LocalEtcdSpec, NetworkingSpec,
    NodeCidrMaskSizes, PodNetworkSpec, ProxySpec, join_host_port,
};
pub use node::{
    InterfaceSelection, LocalApiEndpoint, NodeRole, NodeSpec, NodeTimeouts, PodInterface,
};

use crate::config::types::last_value;
use crate::host::NodePath;

pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
pub const ETCD_METRICS_PORT: u16 = 2381;

/// The cluster and this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Model {
    pub cluster: ClusterSpec,
    pub node: NodeSpec,
}

impl Model {
    /// The control-plane view of this node; an error for a worker.
    pub fn control_plane(&self) -> Result<ControlPlane<'_>, NotAControlPlane> {
        ControlPlane::new(&self.cluster, &self.node)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node {0:?} is not a control-plane node: it has no local API endpoint")]
pub struct NotAControlPlane(pub String);

/// A control-plane node of the cluster: what the PKI, kubeconfig and static-pod renderers read.
#[derive(Debug, Clone, Copy)]
pub struct ControlPlane<'a> {
    pub cluster: &'a ClusterSpec,
    pub node: &'a NodeSpec,
    pub api: &'a LocalApiEndpoint,
}

impl<'a> ControlPlane<'a> {
    pub fn new(cluster: &'a ClusterSpec, node: &'a NodeSpec) -> Result<Self, NotAControlPlane> {
        let api = node
            .local_api_endpoint
            .as_ref()
            .filter(|_| node.is_control_plane())
            .ok_or_else(|| NotAControlPlane(node.name.clone()))?;
        Ok(ControlPlane { cluster, node, api })
    }

    pub fn advertise_address(&self) -> IpAddr {
        self.api.advertise_address
    }

    /// `https://` the control-plane endpoint, else this node's API server.
    pub fn control_plane_url(&self) -> String {
        match &self.cluster.control_plane_endpoint {
            Some(endpoint) => endpoint.https_url(),
            None => self.local_api_url(),
        }
    }

    /// `https://advertiseAddress:bindPort`.
    pub fn local_api_url(&self) -> String {
        self.api.endpoint().https_url()
    }

    /// kubeadm keeps the node's components on the advertise address's family.
    pub fn is_ipv6(&self) -> bool {
        self.api.advertise_address.is_ipv6()
    }

    /// `127.0.0.1`, or `::1` for an IPv6 node.
    pub fn loopback(&self) -> &'static str {
        if self.is_ipv6() { "::1" } else { "127.0.0.1" }
    }

    pub fn cert_dir(&self) -> &'a NodePath {
        &self.cluster.certificates.dir
    }

    /// This node's local etcd member as its static pod runs it (`extraArgs` override the defaults).
    pub fn etcd_member(&self) -> Option<EtcdMember> {
        let local = self.cluster.etcd.local()?;
        let advertise = self.advertise_address().to_string();
        let first = |name: &str| {
            last_value(&local.extra_args, name)
                .and_then(|v| v.split(',').next())
                .map(str::to_string)
        };
        Some(EtcdMember {
            name: first("name").unwrap_or_else(|| self.node.name.clone()),
            client_url: first("advertise-client-urls")
                .unwrap_or_else(|| Endpoint::new(&advertise, ETCD_CLIENT_PORT).https_url()),
            peer_url: first("initial-advertise-peer-urls")
                .unwrap_or_else(|| Endpoint::new(&advertise, ETCD_PEER_PORT).https_url()),
            data_dir: first("data-dir")
                .map(NodePath::new)
                .unwrap_or_else(|| local.data_dir.clone()),
        })
    }
}

/// A local etcd member: what `reset` needs to leave the etcd cluster and wipe the member's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: NodePath,
}

/// Models for unit tests across the crate.
#[cfg(test)]
pub(crate) mod testing {
    use super::Model;
    use crate::config::flags::InitFlags;
    use crate::host::Facts;

    /// The model of node `cp1` at 192.168.8.201, v1.34.3, pod CIDR 10.244.0.0/16, plus `extra` config
    /// YAML (a ClusterConfiguration/InitConfiguration stream; empty for none).
    pub fn control_plane_model(extra: &str) -> Model {
        let base = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n\
                    nodeRegistration: {name: cp1}\nlocalAPIEndpoint: {advertiseAddress: 192.168.8.201}\n";
        let text = if extra.contains("kind: InitConfiguration") {
            extra.to_string()
        } else if extra.is_empty() {
            base.to_string()
        } else {
            format!("{base}---\n{extra}")
        };
        let file = crate::config::load::parse(&text).expect("test configuration parses");
        super::resolve::init::resolve_file(file, &InitFlags::default(), &Facts::default(), &[])
            .expect("test configuration is valid")
            .model
    }
}
