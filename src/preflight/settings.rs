//! What the checks read: the model of the node being set up (its [`NodeSpec`], and the [`ClusterSpec`]
//! when it is known — a joining node learns it only after discovery) and the preflight run's options.

use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;

use super::catalogue::Role;
use crate::config::defaults;
use crate::config::flags::PodNetwork;
use crate::config::versions::KubeVersion;
use crate::host::paths::{NodePath, well_known};
use crate::model::{ClusterSpec, KubeletSpec, Model, NodeRole, NodeSpec, NodeTimeouts};

/// The kubelet settings assumed while the cluster's are unknown: kubeadm's defaults.
static DEFAULT_KUBELET: LazyLock<KubeletSpec> = LazyLock::new(KubeletSpec::default);

/// Everything a check may read about the node, for one role.
#[derive(Debug, Clone)]
pub struct PreflightInput {
    pub role: Role,
    pub node: NodeSpec,
    /// The cluster, when known; checks that need it are skipped (or use kubeadm's defaults) without it.
    pub cluster: Option<ClusterSpec>,
    /// True when the advertise address was picked from the host rather than given.
    pub advertise_address_detected: bool,
    /// A joining node's API server endpoint (host, port).
    pub api_endpoint: Option<(String, u16)>,
    /// The images a control plane needs (the cluster's `config images list`).
    pub images: Vec<String>,
    /// `--ignore-preflight-errors` and `nodeRegistration.ignorePreflightErrors`, as given.
    pub ignore_errors: Vec<String>,
    /// `--fix`: apply the safe fixes.
    pub fix: bool,
}

impl PreflightInput {
    /// A node with kubeadm's defaults and nothing known about the cluster.
    pub fn defaults(role: Role, node_name: impl Into<String>) -> Self {
        PreflightInput {
            role,
            node: NodeSpec {
                name: node_name.into(),
                role: if role.is_control_plane() {
                    NodeRole::ControlPlane
                } else {
                    NodeRole::Worker
                },
                local_api_endpoint: None,
                cri_socket: defaults::DEFAULT_CRI_SOCKET.to_string(),
                image_pull_policy: "IfNotPresent".to_string(),
                image_pull_serial: true,
                taints: Vec::new(),
                labels: Default::default(),
                kubelet_extra_args: Vec::new(),
                timeouts: NodeTimeouts::default(),
                mount_host_localtime: false,
            },
            cluster: None,
            advertise_address_detected: false,
            api_endpoint: None,
            images: Vec::new(),
            ignore_errors: Vec::new(),
            fix: false,
        }
    }

    /// The input of init's preflight: the whole model.
    pub fn for_init(
        model: &Model,
        advertise_address_detected: bool,
        ignore_errors: &[String],
        fix: bool,
    ) -> Self {
        PreflightInput {
            role: Role::Init,
            node: model.node.clone(),
            images: model.cluster.required_images(),
            cluster: Some(model.cluster.clone()),
            advertise_address_detected,
            api_endpoint: None,
            ignore_errors: ignore_errors.to_vec(),
            fix,
        }
    }

    /// The input of join's preflight: this node, and the API endpoint discovery goes through. What the
    /// cluster decides (its version, pod network, subnets, kubelet configuration) is unknown before
    /// discovery: checks that need it are skipped.
    pub fn for_join(
        node: &NodeSpec,
        api_endpoint: Option<(String, u16)>,
        advertise_address_detected: bool,
        ignore_errors: &[String],
        fix: bool,
    ) -> Self {
        let role = if node.is_control_plane() {
            Role::JoinControlPlane
        } else {
            Role::JoinWorker
        };
        let mut input = PreflightInput::defaults(role, &node.name);
        input.node = node.clone();
        input.api_endpoint = api_endpoint;
        input.advertise_address_detected = advertise_address_detected;
        input.ignore_errors = ignore_errors.to_vec();
        input.fix = fix;
        input
    }

    /// The input of reset's preflight: the CRI socket and the ignore list matter.
    pub fn for_reset(node_name: &str, cri_socket: &str, ignore_errors: &[String]) -> Self {
        let mut input = PreflightInput::defaults(Role::Reset, node_name);
        input.node.cri_socket = cri_socket.to_string();
        input.ignore_errors = ignore_errors.to_vec();
        input
    }

    pub fn node_name(&self) -> &str {
        &self.node.name
    }

    /// The API server's advertise address (control planes).
    pub fn advertise_address(&self) -> Option<IpAddr> {
        self.node
            .local_api_endpoint
            .as_ref()
            .map(|api| api.advertise_address)
    }

    /// The API server's port (kubeadm's 6443 when unknown).
    pub fn bind_port(&self) -> u16 {
        self.node
            .local_api_endpoint
            .as_ref()
            .map(|api| api.bind_port)
            .unwrap_or(6443)
    }

    pub fn discovery_port(&self) -> u16 {
        self.cluster
            .as_ref()
            .map(|c| c.discovery.port)
            .unwrap_or(defaults::DEFAULT_DISCOVERY_PORT)
    }

    /// The control plane's Kubernetes version, when known.
    pub fn kubernetes_version(&self) -> Option<&KubeVersion> {
        self.cluster.as_ref().map(|c| &c.kubernetes_version)
    }

    /// A local etcd member will run here: a control plane of a cluster with stacked etcd (assumed for a
    /// control plane while the cluster is unknown, as kubeadm's default).
    pub fn local_etcd(&self) -> bool {
        self.role.is_control_plane()
            && self
                .cluster
                .as_ref()
                .is_none_or(|c| c.etcd.local().is_some())
    }

    pub fn external_etcd(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.etcd.is_external())
    }

    /// caFile, certFile and keyFile of an external etcd.
    pub fn external_etcd_files(&self) -> Vec<NodePath> {
        self.cluster
            .as_ref()
            .and_then(|c| c.etcd.external())
            .map(|e| e.files().into_iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn etcd_data_dir(&self) -> NodePath {
        self.cluster
            .as_ref()
            .and_then(|c| c.etcd.local())
            .map(|l| l.data_dir.clone())
            .unwrap_or_else(|| NodePath::new(well_known::ETCD_DATA_DIR))
    }

    pub fn cert_dir(&self) -> NodePath {
        self.cluster
            .as_ref()
            .map(|c| c.certificates.dir.clone())
            .unwrap_or_else(|| NodePath::new(well_known::DEFAULT_CERT_DIR))
    }

    pub fn pod_subnets(&self) -> &[IpNet] {
        self.cluster
            .as_ref()
            .map(|c| c.networking.pod_subnets.nets())
            .unwrap_or_default()
    }

    pub fn service_subnets(&self) -> &[IpNet] {
        self.cluster
            .as_ref()
            .map(|c| c.networking.service_subnets.nets())
            .unwrap_or_default()
    }

    /// The pod-network addon, when known (a joining node learns it from the cluster).
    pub fn pod_network(&self) -> Option<PodNetwork> {
        self.cluster.as_ref().map(|c| c.pod_network.addon)
    }

    /// The kubelet's settings: the cluster's, else kubeadm's defaults.
    pub fn kubelet(&self) -> &KubeletSpec {
        self.cluster
            .as_ref()
            .map(|c| &c.kubelet)
            .unwrap_or(&DEFAULT_KUBELET)
    }

    /// Whether IPv4 and IPv6 are in play: the advertise address or endpoint and the subnets.
    pub fn ip_families(&self) -> (bool, bool) {
        let mut v4 = false;
        let mut v6 = false;
        let mut note = |is_v4: bool| {
            if is_v4 {
                v4 = true;
            } else {
                v6 = true;
            }
        };
        if let Some(ip) = self.advertise_address() {
            note(ip.is_ipv4());
        }
        if let Some((host, _)) = &self.api_endpoint {
            match host.parse::<IpAddr>() {
                Ok(ip) => note(ip.is_ipv4()),
                // A DNS name: assume IPv4, the common case (kubeadm checks nothing then).
                Err(_) => note(true),
            }
        }
        for net in self.pod_subnets().iter().chain(self.service_subnets()) {
            note(matches!(net, IpNet::V4(_)));
        }
        if !v4 && !v6 {
            v4 = true;
        }
        (v4, v6)
    }

    /// True when the kubelet's container runtime is a Docker engine (through cri-dockerd).
    pub fn runtime_is_docker(&self) -> bool {
        self.node.cri_socket.contains("cri-dockerd")
    }
}
