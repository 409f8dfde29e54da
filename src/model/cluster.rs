//! `ClusterSpec`: everything cluster-wide, fully resolved and typed (versions, images, endpoints,
//! networking, etcd, certificates, component overrides, the kubelet's and kube-proxy's settings, and
//! kubestrap's own choices: the pod network and the discovery port).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::config::EncryptionAlgorithm;
use crate::config::duration::GoDuration;
use crate::config::flags::PodNetwork;
use crate::config::types::{Arg, EnvVar, HostPathMount};
use crate::config::versions::{EtcdVersion, KubeVersion};
use crate::host::NodePath;
use crate::net::cidr::CidrList;

/// The cluster as every node of it sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    pub cluster_name: String,
    pub kubernetes_version: KubeVersion,
    /// Where the control-plane images come from (`registry.k8s.io`).
    pub image_repository: String,
    /// `controlPlaneEndpoint`: the stable address of the control plane, when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<Endpoint>,
    pub networking: NetworkingSpec,
    pub etcd: EtcdSpec,
    pub certificates: CertificatesSpec,
    pub api_server: ApiServerSpec,
    pub controller_manager: ComponentSpec,
    pub scheduler: ComponentSpec,
    pub dns: DnsSpec,
    pub proxy: ProxySpec,
    /// The sandbox image of the Kubernetes minor in use.
    pub pause_image: Image,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    pub kubelet: KubeletSpec,
    pub pod_network: PodNetworkSpec,
    pub discovery: DiscoverySpec,
}

/// A `host:port` endpoint (IPv6 hosts without brackets; [`fmt::Display`] adds them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    /// `https://host:port`.
    pub fn https_url(&self) -> String {
        format!("https://{self}")
    }

    /// The host when it is an IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_host_port(&self.host, self.port))
    }
}

/// `host:port`, with IPv6 hosts in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkingSpec {
    /// One range, or one per family (dual-stack).
    pub service_subnets: CidrList,
    /// Empty when no pod range is configured (`--pod-network none` without `--pod-network-cidr`).
    pub pod_subnets: CidrList,
    pub dns_domain: String,
    /// The size of each node's pod range (the controller manager's `node-cidr-mask-size*`).
    pub node_cidr_mask_sizes: NodeCidrMaskSizes,
}

impl NetworkingSpec {
    /// The `kubernetes` Service VIPs: the first address of each service subnet.
    pub fn api_service_ips(&self) -> Vec<IpAddr> {
        self.service_subnets.nth_addresses(1)
    }

    /// The cluster DNS addresses: the tenth address of each service subnet.
    pub fn dns_service_ips(&self) -> Vec<IpAddr> {
        self.service_subnets.nth_addresses(10)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCidrMaskSizes {
    pub ipv4: u8,
    pub ipv6: u8,
}

impl Default for NodeCidrMaskSizes {
    fn default() -> Self {
        NodeCidrMaskSizes { ipv4: 24, ipv6: 64 }
    }
}

/// A container image `repository/name:tag`, written as that string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub repository: String,
    pub name: String,
    pub tag: String,
}

impl Image {
    pub fn new(
        repository: impl Into<String>,
        name: impl Into<String>,
        tag: impl Into<String>,
    ) -> Self {
        Image {
            repository: repository.into(),
            name: name.into(),
            tag: tag.into(),
        }
    }

    /// Splits `repository/name:tag` (the repository may hold a `host:port`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an image reference of the form repository/name:tag");
        let (repository, rest) = text.rsplit_once('/').ok_or_else(bad)?;
        let (name, tag) = rest.split_once(':').ok_or_else(bad)?;
        if repository.is_empty() || name.is_empty() || tag.is_empty() {
            return Err(bad());
        }
        Ok(Image::new(repository, name, tag))
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.repository, self.name, self.tag)
    }
}

impl Serialize for Image {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Image {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Image::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Where the cluster's etcd runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum EtcdSpec {
    /// A static-pod member on every control-plane node (stacked etcd).
    Local(LocalEtcdSpec),
    External(ExternalEtcdSpec),
}

impl EtcdSpec {
    pub fn local(&self) -> Option<&LocalEtcdSpec> {
        match self {
            EtcdSpec::Local(local) => Some(local),
            EtcdSpec::External(_) => None,
        }
    }

    pub fn external(&self) -> Option<&ExternalEtcdSpec> {
        match self {
            EtcdSpec::External(external) => Some(external),
            EtcdSpec::Local(_) => None,
        }
    }

    pub fn is_external(&self) -> bool {
        matches!(self, EtcdSpec::External(_))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalEtcdSpec {
    pub image: Image,
    /// The etcd version of the image's tag: it decides which flags etcd is given.
    #[serde(with = "etcd_version")]
    pub version: EtcdVersion,
    pub data_dir: NodePath,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
    #[serde(
        default,
        rename = "serverCertSANs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub server_cert_sans: Vec<String>,
    #[serde(
        default,
        rename = "peerCertSANs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub peer_cert_sans: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalEtcdSpec {
    /// Client URLs (`https://10.0.0.5:2379`).
    pub endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<NodePath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<NodePath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<NodePath>,
}

impl ExternalEtcdSpec {
    /// The client TLS files the API server is given.
    pub fn files(&self) -> Vec<&NodePath> {
        [&self.ca_file, &self.cert_file, &self.key_file]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// `EtcdVersion` as `3.6.5`.
mod etcd_version {
    use super::*;

    pub fn serialize<S: Serializer>(v: &EtcdVersion, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EtcdVersion, D::Error> {
        let text = String::deserialize(d)?;
        EtcdVersion::from_tag(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificatesSpec {
    /// `certificatesDir`.
    pub dir: NodePath,
    pub encryption_algorithm: EncryptionAlgorithm,
    pub validity_period: GoDuration,
    pub ca_validity_period: GoDuration,
}

/// The overrides of the API server: those of every component plus extra certificate SANs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiServerSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_volumes: Vec<HostPathMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
    /// Valid `certSANs` (IPs and DNS names); invalid ones were dropped with a warning.
    #[serde(default, rename = "certSANs", skip_serializing_if = "Vec::is_empty")]
    pub cert_sans: Vec<String>,
}

/// `extraArgs`, `extraVolumes` and `extraEnvs` of the controller manager or the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_volumes: Vec<HostPathMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsSpec {
    /// `dns.disabled`: no CoreDNS addon.
    pub disabled: bool,
    pub image: Image,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxySpec {
    /// `proxy.disabled`: no kube-proxy addon.
    pub disabled: bool,
    /// The KubeProxyConfiguration document given with the configuration, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Value>,
}

/// The kubelet's cluster-wide settings that kubestrap reads (from a KubeletConfiguration, else kubeadm's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeletSpec {
    /// `cgroupDriver` (kubeadm defaults it to `systemd`). Only a driver the configuration sets is the
    /// user's choice: without one, kubelet-start uses the runtime's (`crate::kubelet::cgroup`).
    pub cgroup_driver: String,
    /// `resolvConf`: the file whose nameservers pods (and CoreDNS) inherit.
    pub resolv_conf: NodePath,
    /// `failSwapOn` (the kubelet refuses to start with swap on unless false).
    pub fail_swap_on: bool,
    /// `failCgroupV1` when set (kubelet 1.35+ defaults it to true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_cgroup_v1: Option<bool>,
    /// The KubeletConfiguration document given with the configuration, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Value>,
}

impl Default for KubeletSpec {
    fn default() -> Self {
        KubeletSpec::from_document(None)
    }
}

impl KubeletSpec {
    /// Reads the fields that matter from a `kubelet.config.k8s.io/v1beta1` KubeletConfiguration.
    pub fn from_document(doc: Option<Value>) -> Self {
        let field = |name: &str| doc.as_ref().and_then(|d| d.get(name));
        KubeletSpec {
            cgroup_driver: field("cgroupDriver")
                .and_then(Value::as_str)
                .unwrap_or("systemd")
                .to_string(),
            resolv_conf: NodePath::new(
                field("resolvConf")
                    .and_then(Value::as_str)
                    .unwrap_or("/etc/resolv.conf"),
            ),
            fail_swap_on: field("failSwapOn").and_then(Value::as_bool).unwrap_or(true),
            fail_cgroup_v1: field("failCgroupV1").and_then(Value::as_bool),
            configuration: doc,
        }
    }
}

/// kubestrap's pod-network choice (a cluster-wide setting kubeadm's ClusterConfiguration cannot hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodNetworkSpec {
    pub addon: PodNetwork,
}

/// kubestrap's token-signed discovery endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoverySpec {
    pub port: u16,
}

impl ClusterSpec {
    /// `repository/name:version` of a Kubernetes component image (kube-apiserver, kube-proxy, …).
    pub fn kubernetes_image(&self, name: &str) -> Image {
        Image::new(
            &self.image_repository,
            name,
            self.kubernetes_version.to_string(),
        )
    }

    /// The images a control-plane node needs, as `config images list` prints them: kube-apiserver,
    /// kube-controller-manager, kube-scheduler, kube-proxy, coredns, pause, etcd — minus what the
    /// configuration disables (external etcd, `dns.disabled`, `proxy.disabled`).
    pub fn required_images(&self) -> Vec<String> {
        let mut images = vec![
            self.kubernetes_image("kube-apiserver"),
            self.kubernetes_image("kube-controller-manager"),
            self.kubernetes_image("kube-scheduler"),
        ];
        if !self.proxy.disabled {
            images.push(self.kubernetes_image("kube-proxy"));
        }
        if !self.dns.disabled {
            images.push(self.dns.image.clone());
        }
        images.push(self.pause_image.clone());
        if let EtcdSpec::Local(local) = &self.etcd {
            images.push(local.image.clone());
        }
        images.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_and_join_with_a_registry_port() {
        let image = Image::parse("registry.example:5000/k8s/coredns/coredns:v1.12.1").unwrap();
        assert_eq!(image.repository, "registry.example:5000/k8s/coredns");
        assert_eq!(image.name, "coredns");
        assert_eq!(image.tag, "v1.12.1");
        assert_eq!(
            image.to_string(),
            "registry.example:5000/k8s/coredns/coredns:v1.12.1"
        );
        assert!(Image::parse("coredns").is_err());
        assert!(Image::parse("registry.k8s.io/pause").is_err());
    }

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(
            Endpoint::new("fd00::1", 6443).https_url(),
            "https://[fd00::1]:6443"
        );
        assert_eq!(
            Endpoint::new("lb.example", 443).to_string(),
            "lb.example:443"
        );
    }

    #[test]
    fn kubelet_settings_come_from_the_document_or_kubeadms_defaults() {
        let default = KubeletSpec::default();
        assert_eq!(default.cgroup_driver, "systemd");
        assert!(default.fail_swap_on);
        let doc = serde_json::json!({"cgroupDriver": "cgroupfs", "failSwapOn": false, "resolvConf": "/run/r.conf"});
        let spec = KubeletSpec::from_document(Some(doc));
        assert_eq!(spec.cgroup_driver, "cgroupfs");
        assert!(!spec.fail_swap_on);
        assert_eq!(spec.resolv_conf, NodePath::new("/run/r.conf"));
    }
}
