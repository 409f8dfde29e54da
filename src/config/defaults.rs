//! kubeadm's v1beta4 defaults, with kubestrap's stated differences:
//! ECDSA-P256 keys, a pinned default Kubernetes version, and a pod subnet whenever an addon is chosen.

use super::duration::GoDuration;
use super::flags::PodNetwork;
use super::types::*;
use super::versions::{DEFAULT_IMAGE_REPOSITORY, DEFAULT_KUBERNETES_VERSION};

pub const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
pub const DEFAULT_POD_SUBNET: &str = "10.244.0.0/16";
pub const DEFAULT_DNS_DOMAIN: &str = "cluster.local";
pub const DEFAULT_CERT_DIR: &str = "/etc/kubernetes/pki";
pub const DEFAULT_ETCD_DATA_DIR: &str = "/var/lib/etcd";
pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes";
pub const DEFAULT_ENCRYPTION_ALGORITHM: &str = "ECDSA-P256";
pub const DEFAULT_CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
pub const DEFAULT_BIND_PORT: i64 = 6443;
pub const DEFAULT_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
pub const DEFAULT_TOKEN_TTL: GoDuration = GoDuration::hours(24);
pub const DEFAULT_CERT_VALIDITY: GoDuration = GoDuration::hours(8760);
pub const DEFAULT_CA_VALIDITY: GoDuration = GoDuration::hours(87600);
pub const DEFAULT_DISCOVERY_PORT: u16 = 9898;
pub const PLACEHOLDER_TOKEN: &str = "abcdef.0123456789abcdef";

pub fn timeouts(t: &mut Timeouts) {
    let minutes = |m: u64| Some(GoDuration::from_secs(m * 60));
    t.control_plane_component_health_check
        .get_or_insert(GoDuration::from_secs(240));
    t.kubelet_health_check
        .get_or_insert(GoDuration::from_secs(240));
    t.kubernetes_api_call
        .get_or_insert(GoDuration::from_secs(60));
    t.etcd_api_call.get_or_insert(GoDuration::from_secs(120));
    if t.tls_bootstrap.is_none() {
        t.tls_bootstrap = minutes(5);
    }
    if t.discovery.is_none() {
        t.discovery = minutes(5);
    }
    if t.upgrade_manifests.is_none() {
        t.upgrade_manifests = minutes(5);
    }
}

pub fn bootstrap_token(t: &mut BootstrapToken) {
    t.ttl.get_or_insert(DEFAULT_TOKEN_TTL);
    t.usages
        .get_or_insert_with(|| vec!["signing".to_string(), "authentication".to_string()]);
    t.groups
        .get_or_insert_with(|| vec![DEFAULT_TOKEN_GROUP.to_string()]);
}

pub fn node_registration(n: &mut NodeRegistrationOptions, control_plane: bool) {
    n.cri_socket
        .get_or_insert_with(|| DEFAULT_CRI_SOCKET.to_string());
    n.image_pull_policy
        .get_or_insert_with(|| "IfNotPresent".to_string());
    n.image_pull_serial.get_or_insert(true);
    if n.taints.is_none() && control_plane {
        n.taints = Some(vec![Taint::control_plane()]);
    }
}

/// Defaults of an InitConfiguration. Node name and advertise address come from the host and are
/// filled by the resolver, not here.
pub fn init_configuration(c: &mut InitConfiguration) {
    c.api_version = Some(API_VERSION.to_string());
    c.kind = Some("InitConfiguration".to_string());
    let tokens = c
        .bootstrap_tokens
        .get_or_insert_with(|| vec![BootstrapToken::default()]);
    tokens.iter_mut().for_each(bootstrap_token);
    node_registration(&mut c.node_registration, true);
    c.local_api_endpoint
        .bind_port
        .get_or_insert(DEFAULT_BIND_PORT);
    timeouts(c.timeouts.get_or_insert_with(Timeouts::default));
}

pub fn cluster_configuration(c: &mut ClusterConfiguration, pod_network: PodNetwork) {
    c.api_version = Some(API_VERSION.to_string());
    c.kind = Some("ClusterConfiguration".to_string());
    if c.etcd.external.is_none() {
        let local = c.etcd.local.get_or_insert_with(LocalEtcd::default);
        local
            .data_dir
            .get_or_insert_with(|| DEFAULT_ETCD_DATA_DIR.to_string());
    }
    c.networking
        .service_subnet
        .get_or_insert_with(|| DEFAULT_SERVICE_SUBNET.to_string());
    c.networking
        .dns_domain
        .get_or_insert_with(|| DEFAULT_DNS_DOMAIN.to_string());
    if c.networking.pod_subnet.is_none() && !pod_network.is_none() {
        c.networking.pod_subnet = Some(DEFAULT_POD_SUBNET.to_string());
    }
    c.kubernetes_version
        .get_or_insert_with(|| DEFAULT_KUBERNETES_VERSION.to_string());
    c.certificates_dir
        .get_or_insert_with(|| DEFAULT_CERT_DIR.to_string());
    c.image_repository
        .get_or_insert_with(|| DEFAULT_IMAGE_REPOSITORY.to_string());
    c.cluster_name
        .get_or_insert_with(|| DEFAULT_CLUSTER_NAME.to_string());
    c.encryption_algorithm
        .get_or_insert_with(|| DEFAULT_ENCRYPTION_ALGORITHM.to_string());
    c.certificate_validity_period
        .get_or_insert(DEFAULT_CERT_VALIDITY);
    c.ca_certificate_validity_period
        .get_or_insert(DEFAULT_CA_VALIDITY);
}

/// `config print init-defaults`: kubeadm's placeholder values (token, address 1.2.3.4, node "node").
pub fn printable_init_defaults() -> (InitConfiguration, ClusterConfiguration) {
    let mut init = InitConfiguration {
        bootstrap_tokens: Some(vec![BootstrapToken {
            token: Some(PLACEHOLDER_TOKEN.to_string()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    init.local_api_endpoint.advertise_address = Some("1.2.3.4".to_string());
    init.node_registration.name = Some("node".to_string());
    init_configuration(&mut init);
    init.node_registration.taints = None;
    let mut cluster = ClusterConfiguration::default();
    cluster_configuration(&mut cluster, PodNetwork::default());
    (init, cluster)
}

pub fn join_configuration(c: &mut JoinConfiguration) {
    c.api_version = Some(API_VERSION.to_string());
    c.kind = Some("JoinConfiguration".to_string());
    c.ca_cert_path
        .get_or_insert_with(|| format!("{DEFAULT_CERT_DIR}/ca.crt"));
    node_registration(&mut c.node_registration, c.control_plane.is_some());
    if let Some(cp) = c.control_plane.as_mut() {
        cp.local_api_endpoint
            .bind_port
            .get_or_insert(DEFAULT_BIND_PORT);
    }
    if c.discovery.tls_bootstrap_token.is_none() {
        c.discovery.tls_bootstrap_token = c
            .discovery
            .bootstrap_token
            .as_ref()
            .and_then(|b| b.token.clone());
    }
    timeouts(c.timeouts.get_or_insert_with(Timeouts::default));
}

/// `config print join-defaults`.
pub fn printable_join_defaults() -> JoinConfiguration {
    let mut join = JoinConfiguration::default();
    join.node_registration.name = Some("node".to_string());
    join.discovery.bootstrap_token = Some(BootstrapTokenDiscovery {
        token: Some(PLACEHOLDER_TOKEN.to_string()),
        api_server_endpoint: Some("kube-apiserver:6443".to_string()),
        ca_cert_hashes: None,
        unsafe_skip_ca_verification: Some(true),
    });
    join_configuration(&mut join);
    join.node_registration.taints = None;
    join
}

pub fn reset_configuration(c: &mut ResetConfiguration) {
    c.api_version = Some(API_VERSION.to_string());
    c.kind = Some("ResetConfiguration".to_string());
    c.certificates_dir
        .get_or_insert_with(|| DEFAULT_CERT_DIR.to_string());
    c.cri_socket
        .get_or_insert_with(|| DEFAULT_CRI_SOCKET.to_string());
    c.cleanup_tmp_dir.get_or_insert(false);
    c.force.get_or_insert(false);
    timeouts(c.timeouts.get_or_insert_with(Timeouts::default));
}
