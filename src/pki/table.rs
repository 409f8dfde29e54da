//! kubeadm's certificate list as data: names, files, signer, identity, SANs.

use super::cert::{AltNames, LeafTemplate, Subject, Usage};
use crate::host::NodePath;
use crate::model::ControlPlane;

/// A certificate authority of the cluster PKI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaSpec {
    /// kubeadm's name (`ca`, `front-proxy-ca`, `etcd-ca`): phase and command-line name.
    pub name: &'static str,
    /// File name without extension, relative to the cert dir (`etcd/ca`).
    pub base_name: &'static str,
    pub common_name: &'static str,
    pub long_name: &'static str,
    /// The help of its `init phase certs` sub-phase.
    pub help: &'static str,
    /// True for the etcd CA, which external etcd does not need.
    pub etcd: bool,
}

/// Who a leaf certificate names as its subject CN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommonName {
    Fixed(&'static str),
    NodeName,
}

/// How a leaf's SANs are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanRule {
    None,
    ApiServer,
    EtcdServer,
    EtcdPeer,
    /// The discovery endpoint (`kubestrap discovery serve`): the names a joining node dials it by.
    Discovery,
}

/// A leaf certificate signed by one of the CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafSpec {
    pub name: &'static str,
    pub base_name: &'static str,
    pub long_name: &'static str,
    /// The help of its `init phase certs` sub-phase.
    pub help: &'static str,
    pub ca: &'static CaSpec,
    pub common_name: CommonName,
    pub usages: &'static [Usage],
    pub sans: SanRule,
}

pub const CA: CaSpec = CaSpec {
    name: "ca",
    base_name: "ca",
    common_name: "kubernetes",
    long_name: "self-signed Kubernetes CA to provision identities for other Kubernetes components",
    help: "Generate the self-signed Kubernetes CA to provision identities for other Kubernetes components",
    etcd: false,
};

pub const FRONT_PROXY_CA: CaSpec = CaSpec {
    name: "front-proxy-ca",
    base_name: "front-proxy-ca",
    common_name: "front-proxy-ca",
    long_name: "self-signed CA to provision identities for front proxy",
    help: "Generate the self-signed CA to provision identities for front proxy",
    etcd: false,
};

pub const ETCD_CA: CaSpec = CaSpec {
    name: "etcd-ca",
    base_name: "etcd/ca",
    common_name: "etcd-ca",
    long_name: "self-signed CA to provision identities for etcd",
    help: "Generate the self-signed CA to provision identities for etcd",
    etcd: true,
};

pub const APISERVER: LeafSpec = LeafSpec {
    name: "apiserver",
    base_name: "apiserver",
    long_name: "certificate for serving the Kubernetes API",
    help: "Generate the certificate for serving the Kubernetes API",
    ca: &CA,
    common_name: CommonName::Fixed("kube-apiserver"),
    usages: &[Usage::ServerAuth],
    sans: SanRule::ApiServer,
};

pub const APISERVER_KUBELET_CLIENT: LeafSpec = LeafSpec {
    name: "apiserver-kubelet-client",
    base_name: "apiserver-kubelet-client",
    long_name: "certificate for the API server to connect to kubelet",
    help: "Generate the certificate for the API server to connect to kubelet",
    ca: &CA,
    common_name: CommonName::Fixed("kube-apiserver-kubelet-client"),
    usages: &[Usage::ClientAuth],
    sans: SanRule::None,
};

pub const FRONT_PROXY_CLIENT: LeafSpec = LeafSpec {
    name: "front-proxy-client",
    base_name: "front-proxy-client",
    long_name: "certificate for the front proxy client",
    help: "Generate the certificate for the front proxy client",
    ca: &FRONT_PROXY_CA,
    common_name: CommonName::Fixed("front-proxy-client"),
    usages: &[Usage::ClientAuth],
    sans: SanRule::None,
};

pub const ETCD_SERVER: LeafSpec = LeafSpec {
    name: "etcd-server",
    base_name: "etcd/server",
    long_name: "certificate for serving etcd",
    help: "Generate the certificate for serving etcd",
    ca: &ETCD_CA,
    common_name: CommonName::NodeName,
    usages: &[Usage::ServerAuth, Usage::ClientAuth],
    sans: SanRule::EtcdServer,
};

pub const ETCD_PEER: LeafSpec = LeafSpec {
    name: "etcd-peer",
    base_name: "etcd/peer",
    long_name: "certificate for etcd nodes to communicate with each other",
    help: "Generate the certificate for etcd nodes to communicate with each other",
    ca: &ETCD_CA,
    common_name: CommonName::NodeName,
    usages: &[Usage::ServerAuth, Usage::ClientAuth],
    sans: SanRule::EtcdPeer,
};

pub const ETCD_HEALTHCHECK_CLIENT: LeafSpec = LeafSpec {
    name: "etcd-healthcheck-client",
    base_name: "etcd/healthcheck-client",
    long_name: "certificate for liveness probes to healthcheck etcd",
    help: "Generate the certificate for liveness probes to healthcheck etcd",
    ca: &ETCD_CA,
    common_name: CommonName::Fixed("kube-etcd-healthcheck-client"),
    usages: &[Usage::ClientAuth],
    sans: SanRule::None,
};

pub const APISERVER_ETCD_CLIENT: LeafSpec = LeafSpec {
    name: "apiserver-etcd-client",
    base_name: "apiserver-etcd-client",
    long_name: "certificate the apiserver uses to access etcd",
    help: "Generate the certificate the apiserver uses to access etcd",
    ca: &ETCD_CA,
    common_name: CommonName::Fixed("kube-apiserver-etcd-client"),
    usages: &[Usage::ClientAuth],
    sans: SanRule::None,
};

/// The serving certificate of `kubestrap discovery serve` (ours, not kubeadm's): made by init's
/// `discovery` phase or by the command itself, not by `init phase certs`, and covered by `certs renew` and
/// `certs check-expiration` where it exists.
pub const DISCOVERY_SERVING: LeafSpec = LeafSpec {
    name: "discovery-serving",
    base_name: "discovery-serving",
    long_name: "certificate for serving the token-signed discovery endpoint",
    help: "Generate the certificate for serving the token-signed discovery endpoint",
    ca: &CA,
    common_name: CommonName::Fixed("kubestrap-discovery"),
    usages: &[Usage::ServerAuth],
    sans: SanRule::Discovery,
};

/// The CAs, in kubeadm's generation order.
pub const CAS: [&CaSpec; 3] = [&CA, &FRONT_PROXY_CA, &ETCD_CA];

/// The leaves, in kubeadm's generation order.
pub const LEAVES: [&LeafSpec; 7] = [
    &APISERVER,
    &APISERVER_KUBELET_CLIENT,
    &FRONT_PROXY_CLIENT,
    &ETCD_SERVER,
    &ETCD_PEER,
    &ETCD_HEALTHCHECK_CLIENT,
    &APISERVER_ETCD_CLIENT,
];

/// The service-account key pair's base name (`sa.key`, `sa.pub`).
pub const SERVICE_ACCOUNT_BASE_NAME: &str = "sa";

/// The group `admin.conf` and (before 1.36.1) `apiserver-kubelet-client` belong to.
pub const CLUSTER_ADMINS_GROUP: &str = "kubeadm:cluster-admins";

impl CaSpec {
    pub fn cert_path(&self, cert_dir: &NodePath) -> NodePath {
        cert_dir.join(format!("{}.crt", self.base_name))
    }

    pub fn key_path(&self, cert_dir: &NodePath) -> NodePath {
        cert_dir.join(format!("{}.key", self.base_name))
    }

    /// The leaves this CA signs.
    pub fn leaves(&self) -> impl Iterator<Item = &'static LeafSpec> + '_ {
        LEAVES
            .into_iter()
            .filter(move |leaf| leaf.ca.name == self.name)
    }
}

impl LeafSpec {
    pub fn cert_path(&self, cert_dir: &NodePath) -> NodePath {
        cert_dir.join(format!("{}.crt", self.base_name))
    }

    pub fn key_path(&self, cert_dir: &NodePath) -> NodePath {
        cert_dir.join(format!("{}.key", self.base_name))
    }

    pub fn is_etcd(&self) -> bool {
        self.ca.etcd
    }

    /// The subject, usages and SANs this certificate gets for the given cluster.
    pub fn template(&self, cp: &ControlPlane) -> LeafTemplate {
        let common_name = match self.common_name {
            CommonName::Fixed(cn) => cn.to_string(),
            CommonName::NodeName => cp.node.name.clone(),
        };
        let organizations =
            if self.name == APISERVER_KUBELET_CLIENT.name && kubelet_client_has_admin_group(cp) {
                vec![CLUSTER_ADMINS_GROUP.to_string()]
            } else {
                Vec::new()
            };
        LeafTemplate {
            subject: Subject {
                common_name,
                organizations,
            },
            usages: self.usages.to_vec(),
            alt_names: alt_names(self.sans, cp),
        }
    }
}

/// `apiserver-kubelet-client` carries O=kubeadm:cluster-admins before Kubernetes 1.36.1 and no O from then on.
fn kubelet_client_has_admin_group(cp: &ControlPlane) -> bool {
    let v = &cp.cluster.kubernetes_version;
    (v.major, v.minor, v.patch) < (1, 36, 1)
}

fn alt_names(rule: SanRule, cp: &ControlPlane) -> AltNames {
    let local_etcd = cp.cluster.etcd.local();
    match rule {
        SanRule::None => AltNames::default(),
        SanRule::ApiServer => apiserver_alt_names(cp),
        SanRule::EtcdServer => etcd_alt_names(
            cp,
            local_etcd
                .map(|l| l.server_cert_sans.as_slice())
                .unwrap_or_default(),
        ),
        SanRule::EtcdPeer => etcd_alt_names(
            cp,
            local_etcd
                .map(|l| l.peer_cert_sans.as_slice())
                .unwrap_or_default(),
        ),
        SanRule::Discovery => discovery_alt_names(cp),
    }
}

/// The discovery endpoint's names: the node, the control-plane endpoint's host, the advertise address
/// and loopback.
pub fn discovery_alt_names(cp: &ControlPlane) -> AltNames {
    let mut names = AltNames::default();
    names.add_dns(cp.node.name.clone());
    names.add_dns("localhost");
    if let Some(endpoint) = cp.cluster.control_plane_endpoint.as_ref() {
        match endpoint.ip() {
            Some(ip) => names.add_ip(ip),
            None => names.add_dns(endpoint.host.as_str()),
        }
    }
    names.add_ip(cp.advertise_address());
    names.add_ip(std::net::IpAddr::from([127, 0, 0, 1]));
    names.add_ip(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
    names
}

/// kubeadm's `GetAPIServerAltNames`.
pub fn apiserver_alt_names(cp: &ControlPlane) -> AltNames {
    let mut names = AltNames::default();
    for dns in [
        cp.node.name.clone(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        format!(
            "kubernetes.default.svc.{}",
            cp.cluster.networking.dns_domain
        ),
    ] {
        names.add_dns(dns);
    }
    let endpoint = cp.cluster.control_plane_endpoint.as_ref();
    if let Some(endpoint) = endpoint
        && endpoint.ip().is_none()
    {
        names.add_dns(endpoint.host.as_str());
    }
    for ip in cp.cluster.networking.api_service_ips() {
        names.add_ip(ip);
    }
    names.add_ip(cp.advertise_address());
    if let Some(ip) = endpoint.and_then(|e| e.ip()) {
        names.add_ip(ip);
    }
    for san in &cp.cluster.api_server.cert_sans {
        names.add(san);
    }
    names
}

/// kubeadm's `GetEtcdAltNames` / `GetEtcdPeerAltNames`.
pub fn etcd_alt_names(cp: &ControlPlane, extra: &[String]) -> AltNames {
    let mut names = AltNames::default();
    names.add_dns(cp.node.name.clone());
    names.add_dns("localhost");
    names.add_ip(cp.advertise_address());
    names.add_ip(std::net::IpAddr::from([127, 0, 0, 1]));
    names.add_ip(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
    for san in extra {
        names.add(san);
    }
    names
}
