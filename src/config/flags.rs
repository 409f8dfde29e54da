//! Command-line flags of `kubestrap init` that feed the configuration, and how they mix with `--config`.

use std::path::PathBuf;

use clap::Args;

/// The pod-network addon installed by init (ours; `none` leaves it to the admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PodNetwork {
    #[default]
    Flannel,
    Calico,
    Weave,
    None,
}

/// Flags of `kubestrap init` (global within `init`, so `init phase X` accepts them too).
#[derive(Debug, Clone, Default, Args)]
pub struct InitFlags {
    /// kubeadm.k8s.io/v1beta4 InitConfiguration + ClusterConfiguration (+ KubeletConfiguration, KubeProxyConfiguration)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The IP address the API server advertises (default: the address of the default-route interface)
    #[arg(long, global = true, value_name = "IP")]
    pub apiserver_advertise_address: Option<String>,
    /// Port the API server binds to
    #[arg(long, global = true, value_name = "PORT")]
    pub apiserver_bind_port: Option<String>,
    /// Extra Subject Alternative Names (IPs or DNS names) for the API server certificate, comma-separated
    #[arg(long, global = true, value_delimiter = ',', value_name = "SANS")]
    pub apiserver_cert_extra_sans: Option<Vec<String>>,
    /// A stable address for the control plane: host or host:port (needed for more control-plane nodes)
    #[arg(long, global = true, value_name = "ENDPOINT")]
    pub control_plane_endpoint: Option<String>,
    /// Pod network range(s), comma-separated for dual-stack (default 10.244.0.0/16 unless --pod-network none)
    #[arg(long, global = true, value_name = "CIDR")]
    pub pod_network_cidr: Option<String>,
    /// Service VIP range(s), comma-separated for dual-stack
    #[arg(long, global = true, value_name = "CIDR")]
    pub service_cidr: Option<String>,
    /// DNS domain for services
    #[arg(long, global = true, value_name = "DOMAIN")]
    pub service_dns_domain: Option<String>,
    /// The node name (default: the host name, lowercased)
    #[arg(long, global = true, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Kubernetes version to deploy (v1.33 to v1.36)
    #[arg(long, global = true, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Registry to pull the control-plane images from
    #[arg(long, global = true, value_name = "REPO")]
    pub image_repository: Option<String>,
    /// CRI socket to use (unix:///path)
    #[arg(long, global = true, value_name = "SOCKET")]
    pub cri_socket: Option<String>,
    /// Bootstrap token to create ([a-z0-9]{6}.[a-z0-9]{16}); random by default
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Lifetime of the bootstrap token (Go duration; 0 = never expires)
    #[arg(long, global = true, value_name = "DURATION")]
    pub token_ttl: Option<String>,
    /// Where certificates are stored
    #[arg(long, global = true, value_name = "DIR")]
    pub cert_dir: Option<String>,
    /// Upload the control-plane certificates to the kubeadm-certs Secret
    #[arg(long, global = true)]
    pub upload_certs: bool,
    /// Key (64 hex characters) that encrypts the uploaded certificates
    #[arg(long, global = true, value_name = "KEY")]
    pub certificate_key: Option<String>,
    /// Directory with patches for the static-pod manifests (kubeadm's patch file naming)
    #[arg(long, global = true, value_name = "DIR")]
    pub patches: Option<String>,
    /// Phases to skip: phase or phase/sub-phase, comma-separated
    #[arg(long, global = true, value_delimiter = ',', value_name = "PHASES")]
    pub skip_phases: Option<Vec<String>>,
    /// Preflight check ids whose errors become warnings (case-insensitive), or "all"
    #[arg(long, global = true, value_delimiter = ',', value_name = "IDS")]
    pub ignore_preflight_errors: Option<Vec<String>>,
    /// Do not print the bootstrap token at the end
    #[arg(long, global = true)]
    pub skip_token_print: bool,
    /// Pod-network addon to install
    #[arg(long, global = true, value_enum, value_name = "ADDON")]
    pub pod_network: Option<PodNetwork>,
    /// Leave the control-plane node schedulable (no NoSchedule taint)
    #[arg(long, global = true)]
    pub schedule_on_control_plane: bool,
    /// Port of the token-signed discovery endpoint
    #[arg(long, global = true, value_name = "PORT")]
    pub discovery_port: Option<String>,
    /// Apply safe preflight fixes (sysctls through an /etc/sysctl.d drop-in)
    #[arg(long, global = true)]
    pub fix: bool,
    /// Mount the host's /etc/localtime into the control-plane pods so they log in local time
    #[arg(long, global = true)]
    pub mount_host_localtime: bool,
}

impl InitFlags {
    /// Flags that kubeadm refuses to mix with `--config` (their values belong in the file).
    pub fn config_conflicts(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let mut check = |present: bool, name: &'static str| {
            if present {
                set.push(name);
            }
        };
        check(
            self.apiserver_advertise_address.is_some(),
            "apiserver-advertise-address",
        );
        check(self.apiserver_bind_port.is_some(), "apiserver-bind-port");
        check(
            self.apiserver_cert_extra_sans.is_some(),
            "apiserver-cert-extra-sans",
        );
        check(
            self.control_plane_endpoint.is_some(),
            "control-plane-endpoint",
        );
        check(self.pod_network_cidr.is_some(), "pod-network-cidr");
        check(self.service_cidr.is_some(), "service-cidr");
        check(self.service_dns_domain.is_some(), "service-dns-domain");
        check(self.kubernetes_version.is_some(), "kubernetes-version");
        check(self.image_repository.is_some(), "image-repository");
        check(self.cri_socket.is_some(), "cri-socket");
        check(self.token.is_some(), "token");
        check(self.token_ttl.is_some(), "token-ttl");
        check(self.cert_dir.is_some(), "cert-dir");
        check(self.certificate_key.is_some(), "certificate-key");
        check(self.patches.is_some(), "patches");
        set
    }
}
