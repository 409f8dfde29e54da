//! What the checks need to know about the node being set up, taken from init's, join's or reset's
//! resolved configuration.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::catalogue::Role;
use crate::config::defaults;
use crate::config::flags::PodNetwork;
use crate::config::init::InitSettings;
use crate::config::join::JoinSettings;
use crate::config::versions::KubeVersion;
use crate::host::paths::{NodePath, well_known};

/// The kubelet settings that decide some checks (from a KubeletConfiguration document, else kubeadm's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletSettings {
    /// `cgroupDriver` (kubeadm defaults it to `systemd`).
    pub cgroup_driver: String,
    /// `resolvConf`: the file whose nameservers pods (and CoreDNS) inherit.
    pub resolv_conf: NodePath,
    /// `failSwapOn` (default true: the kubelet refuses to start with swap on).
    pub fail_swap_on: bool,
    /// `failCgroupV1` when set (kubelet 1.35+ defaults it to true).
    pub fail_cgroup_v1: Option<bool>,
}

impl Default for KubeletSettings {
    fn default() -> Self {
        KubeletSettings {
            cgroup_driver: "systemd".to_string(),
            resolv_conf: NodePath::new("/etc/resolv.conf"),
            fail_swap_on: true,
            fail_cgroup_v1: None,
        }
    }
}

impl KubeletSettings {
    /// Reads the fields that matter from a `kubelet.config.k8s.io/v1beta1` KubeletConfiguration.
    pub fn from_document(doc: Option<&Value>) -> Self {
        let mut settings = KubeletSettings::default();
        let Some(doc) = doc else {
            return settings;
        };
        if let Some(driver) = doc.get("cgroupDriver").and_then(Value::as_str) {
            settings.cgroup_driver = driver.to_string();
        }
        if let Some(path) = doc.get("resolvConf").and_then(Value::as_str) {
            settings.resolv_conf = NodePath::new(path);
        }
        if let Some(fail) = doc.get("failSwapOn").and_then(Value::as_bool) {
            settings.fail_swap_on = fail;
        }
        settings.fail_cgroup_v1 = doc.get("failCgroupV1").and_then(Value::as_bool);
        settings
    }
}

/// Everything a check may read about the node, for one role.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub role: Role,
    pub node_name: String,
    /// The API server's advertise address (control planes), when known.
    pub advertise_address: Option<IpAddr>,
    /// True when the advertise address was picked from the host rather than given.
    pub advertise_address_detected: bool,
    pub bind_port: u16,
    pub discovery_port: u16,
    /// A joining node's API server endpoint (host, port).
    pub api_endpoint: Option<(String, u16)>,
    /// The Kubernetes version of the control plane, when known (not before join's discovery).
    pub kubernetes_version: Option<KubeVersion>,
    pub local_etcd: bool,
    pub external_etcd: bool,
    /// caFile, certFile and keyFile of an external etcd.
    pub external_etcd_files: Vec<NodePath>,
    pub etcd_data_dir: NodePath,
    pub cert_dir: NodePath,
    pub pod_subnets: Vec<IpNet>,
    pub service_subnets: Vec<IpNet>,
    /// The pod-network addon, when known (a joining node learns it from the cluster).
    pub pod_network: Option<PodNetwork>,
    pub cri_socket: String,
    pub kubelet: KubeletSettings,
    /// The images a control plane needs (`config images list`).
    pub images: Vec<String>,
    pub image_pull_policy: String,
    /// `--ignore-preflight-errors` and `nodeRegistration.ignorePreflightErrors`, as given.
    pub ignore_errors: Vec<String>,
    /// `--fix`: apply the safe fixes.
    pub fix: bool,
}

impl NodeSettings {
    /// A node with kubeadm's defaults and nothing known about the cluster; the constructors below fill it in.
    pub fn defaults(role: Role, node_name: impl Into<String>) -> Self {
        NodeSettings {
            role,
            node_name: node_name.into(),
            advertise_address: None,
            advertise_address_detected: false,
            bind_port: 6443,
            discovery_port: defaults::DEFAULT_DISCOVERY_PORT,
            api_endpoint: None,
            kubernetes_version: None,
            local_etcd: role.is_control_plane(),
            external_etcd: false,
            external_etcd_files: Vec::new(),
            etcd_data_dir: NodePath::new(well_known::ETCD_DATA_DIR),
            cert_dir: NodePath::new(well_known::DEFAULT_CERT_DIR),
            pod_subnets: Vec::new(),
            service_subnets: Vec::new(),
            pod_network: None,
            cri_socket: defaults::DEFAULT_CRI_SOCKET.to_string(),
            kubelet: KubeletSettings::default(),
            images: Vec::new(),
            image_pull_policy: "IfNotPresent".to_string(),
            ignore_errors: Vec::new(),
            fix: false,
        }
    }

    /// The settings of an init run.
    pub fn for_init(s: &InitSettings) -> Self {
        let mut node = NodeSettings::defaults(Role::Init, &s.node_name);
        node.advertise_address = Some(s.advertise_address);
        node.advertise_address_detected = s.advertise_address_detected;
        node.bind_port = s.bind_port;
        node.discovery_port = s.discovery_port;
        node.kubernetes_version = Some(s.kubernetes_version.clone());
        node.local_etcd = !s.external_etcd;
        node.external_etcd = s.external_etcd;
        if let Some(ext) = &s.cluster.etcd.external {
            node.external_etcd_files = [&ext.ca_file, &ext.cert_file, &ext.key_file]
                .into_iter()
                .filter(|f| !f.is_empty())
                .map(NodePath::new)
                .collect();
        }
        node.etcd_data_dir = s.etcd_data_dir.clone();
        node.cert_dir = s.cert_dir.clone();
        node.pod_subnets = s.pod_subnets.clone();
        node.service_subnets = s.service_subnets.clone();
        node.pod_network = Some(s.pod_network);
        if let Some(socket) = &s.init.node_registration.cri_socket {
            node.cri_socket = socket.clone();
        }
        node.kubelet = KubeletSettings::from_document(s.kubelet.as_ref());
        node.images = crate::images::required_images(s);
        if let Some(policy) = &s.init.node_registration.image_pull_policy {
            node.image_pull_policy = policy.clone();
        }
        node.ignore_errors = s.ignore_preflight_errors.clone();
        node.fix = s.fix;
        node
    }

    /// The settings of a join run. What the cluster decides (its version, pod network, subnets,
    /// kubelet configuration) is unknown before discovery: checks that need it are skipped.
    pub fn for_join(s: &JoinSettings) -> Self {
        let role = if s.control_plane {
            Role::JoinControlPlane
        } else {
            Role::JoinWorker
        };
        let mut node = NodeSettings::defaults(role, &s.node_name);
        node.advertise_address = s.advertise_address;
        node.advertise_address_detected = s.advertise_address_detected;
        node.bind_port = s.bind_port;
        node.api_endpoint = s.api_endpoint.clone();
        node.cri_socket = s.cri_socket.clone();
        node.ignore_errors = s.ignore_preflight_errors.clone();
        node.fix = s.fix;
        node
    }

    /// The settings of reset's preflight: the CRI socket and the ignore list matter.
    pub fn for_reset(node_name: &str, cri_socket: &str, ignore_errors: &[String]) -> Self {
        let mut node = NodeSettings::defaults(Role::Reset, node_name);
        node.local_etcd = false;
        node.cri_socket = cri_socket.to_string();
        node.ignore_errors = ignore_errors.to_vec();
        node
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
        if let Some(ip) = self.advertise_address {
            note(ip.is_ipv4());
        }
        if let Some((host, _)) = &self.api_endpoint {
            match host.parse::<IpAddr>() {
                Ok(ip) => note(ip.is_ipv4()),
                // A DNS name: assume IPv4, the common case (kubeadm checks nothing then).
                Err(_) => note(true),
            }
        }
        for net in self.pod_subnets.iter().chain(&self.service_subnets) {
            note(matches!(net, IpNet::V4(_)));
        }
        if !v4 && !v6 {
            v4 = true;
        }
        (v4, v6)
    }

    /// True when the kubelet's container runtime is a Docker engine (through cri-dockerd).
    pub fn runtime_is_docker(&self) -> bool {
        self.cri_socket.contains("cri-dockerd")
    }
}
