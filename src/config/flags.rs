//! Command-line flags of `kubestrap init` that feed the configuration, and how they mix with `--config`.

use std::path::PathBuf;

use clap::Args;

use crate::error::FieldError;
use crate::podnet;

/// Reports each error found in a field a flag set under both names, `--service-cidr
/// (networking.serviceSubnet)`, so the message names what the user typed and where it went.
/// `sources` pairs a flag (as typed) with the configuration field it sets; an error belongs to a
/// field when it is that field or inside it (`field[0]`, `field.x`).
pub fn name_flags(errors: &mut [FieldError], sources: &[(&str, &str)]) {
    for error in errors {
        let source = sources.iter().find(|(_, field)| {
            error.field == *field
                || error
                    .field
                    .strip_prefix(field)
                    .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
        });
        if let Some((flag, _)) = source {
            error.field = format!("{flag} ({})", error.field);
        }
    }
}

/// The pod-network addon installed by init (ours; `none` leaves it to the admin): the name of a folder
/// under `addons/` (see [`crate::podnet`]), or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PodNetwork(&'static str);

impl PodNetwork {
    /// `--pod-network none`: init installs no pod network.
    pub const NONE: PodNetwork = PodNetwork(podnet::NONE);

    /// The choice named `name`: an addon of the catalogue or `none`.
    pub fn named(name: &str) -> Result<PodNetwork, String> {
        if name == podnet::NONE {
            return Ok(PodNetwork::NONE);
        }
        podnet::get(name)
            .map(|a| PodNetwork(a.name))
            .ok_or_else(|| {
                format!(
                    "unknown pod-network addon {name:?} (one of: {})",
                    podnet::choices().join(", ")
                )
            })
    }

    pub fn name(self) -> &'static str {
        self.0
    }

    /// The addon's folder data; None for `none`.
    pub fn addon(self) -> Option<&'static podnet::Addon> {
        podnet::get(self.0)
    }

    pub fn is_none(self) -> bool {
        self == PodNetwork::NONE
    }

    /// clap's parser: the catalogue's names (listed in `--help` and docs/cli.md).
    pub fn parser() -> impl clap::builder::TypedValueParser<Value = PodNetwork> {
        use clap::builder::TypedValueParser as _;
        clap::builder::PossibleValuesParser::new(podnet::choices())
            .try_map(|name| PodNetwork::named(&name))
    }
}

impl Default for PodNetwork {
    fn default() -> Self {
        PodNetwork(podnet::DEFAULT)
    }
}

impl std::fmt::Display for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl serde::Serialize for PodNetwork {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PodNetwork {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        PodNetwork::named(&name).map_err(serde::de::Error::custom)
    }
}

/// Flags of `kubestrap init` (global within `init`, so `init phase X` accepts them too). A value that
/// starts with `-` is taken as the value, as kubeadm's flag parser does (`--token-ttl -5m`).
#[derive(Debug, Clone, Default, Args)]
pub struct InitFlags {
    /// kubeadm.k8s.io/v1beta4 InitConfiguration + ClusterConfiguration (+ KubeletConfiguration, KubeProxyConfiguration)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The IP address the API server advertises (default: the address of the default-route interface)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "IP")]
    pub apiserver_advertise_address: Option<String>,
    /// Port the API server binds to
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "PORT")]
    pub apiserver_bind_port: Option<String>,
    /// Extra Subject Alternative Names (IPs or DNS names) for the API server certificate, comma-separated
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_delimiter = ',',
        value_name = "SANS"
    )]
    pub apiserver_cert_extra_sans: Option<Vec<String>>,
    /// A stable address for the control plane: host or host:port (needed for more control-plane nodes)
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_name = "ENDPOINT"
    )]
    pub control_plane_endpoint: Option<String>,
    /// Pod network range(s), comma-separated for dual-stack (default 10.244.0.0/16 unless --pod-network none)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "CIDR")]
    pub pod_network_cidr: Option<String>,
    /// Service VIP range(s), comma-separated for dual-stack
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "CIDR")]
    pub service_cidr: Option<String>,
    /// DNS domain for services
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "DOMAIN")]
    pub service_dns_domain: Option<String>,
    /// The node name (default: the host name, lowercased)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Kubernetes version to deploy (v1.33 to v1.36)
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_name = "VERSION"
    )]
    pub kubernetes_version: Option<String>,
    /// Registry to pull the control-plane images from
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "REPO")]
    pub image_repository: Option<String>,
    /// CRI socket to use (unix:///path)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "SOCKET")]
    pub cri_socket: Option<String>,
    /// Bootstrap token to create ([a-z0-9]{6}.[a-z0-9]{16}); random by default
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Lifetime of the bootstrap token (Go duration; 0 = never expires)
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_name = "DURATION"
    )]
    pub token_ttl: Option<String>,
    /// Where certificates are stored
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "DIR")]
    pub cert_dir: Option<String>,
    /// Upload the control-plane certificates to the kubeadm-certs Secret, encrypted with the
    /// certificate key (generated and printed once unless --certificate-key is given)
    #[arg(long, global = true)]
    pub upload_certs: bool,
    /// Key (64 hex characters) that encrypts the uploaded certificates
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "KEY")]
    pub certificate_key: Option<String>,
    /// Directory with patches for the static-pod manifests (kubeadm's patch file naming)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "DIR")]
    pub patches: Option<String>,
    /// Phases to skip: phase or phase/sub-phase, comma-separated
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_delimiter = ',',
        value_name = "PHASES"
    )]
    pub skip_phases: Option<Vec<String>>,
    /// Preflight check ids whose errors become warnings (case-insensitive), or "all"
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_delimiter = ',',
        value_name = "IDS"
    )]
    pub ignore_preflight_errors: Option<Vec<String>>,
    /// Do not print the bootstrap token in the join commands at the end (`<value withheld>`)
    #[arg(long, global = true)]
    pub skip_token_print: bool,
    /// Pod-network addon of the cluster (a folder under addons/): decides the default pod subnet,
    /// the preflight checks and what `init phase addon pod-network` installs
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_parser = PodNetwork::parser(),
        value_name = "ADDON"
    )]
    pub pod_network: Option<PodNetwork>,
    /// Apply this manifest (a file or an https:// URL; upstream's own) instead of the built-in one,
    /// with the pod CIDR, MTU and interface set at the fields its addon's addon.yaml names
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_name = "FILE|URL"
    )]
    pub pod_network_manifest: Option<String>,
    /// Leave the control-plane node schedulable: mark-control-plane adds no NoSchedule taint
    #[arg(long, global = true)]
    pub schedule_on_control_plane: bool,
    /// Port of the token-signed discovery endpoint (the kubestrap-discovery.service unit init installs;
    /// default 9898, 0 leaves the endpoint out): checked free by preflight
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "PORT")]
    pub discovery_port: Option<String>,
    /// Apply safe preflight fixes (sysctls through an /etc/sysctl.d drop-in)
    #[arg(long, global = true)]
    pub fix: bool,
    /// Mount the host's /etc/localtime into the control-plane pods so they log in local time
    #[arg(long, global = true)]
    pub mount_host_localtime: bool,
    /// Do not roll back a failed run: leave its effects for inspection ('kubestrap reset' removes them)
    #[arg(long, global = true)]
    pub keep_on_failure: bool,
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

    /// The configuration fields the given flags set, for [`name_flags`].
    pub fn sources(&self) -> Vec<(&'static str, &'static str)> {
        [
            (
                self.apiserver_advertise_address.is_some(),
                "--apiserver-advertise-address",
                "localAPIEndpoint.advertiseAddress",
            ),
            (
                self.apiserver_bind_port.is_some(),
                "--apiserver-bind-port",
                "localAPIEndpoint.bindPort",
            ),
            (
                self.apiserver_cert_extra_sans.is_some(),
                "--apiserver-cert-extra-sans",
                "apiServer.certSANs",
            ),
            (
                self.control_plane_endpoint.is_some(),
                "--control-plane-endpoint",
                "controlPlaneEndpoint",
            ),
            (
                self.pod_network_cidr.is_some(),
                "--pod-network-cidr",
                "networking.podSubnet",
            ),
            (
                self.service_cidr.is_some(),
                "--service-cidr",
                "networking.serviceSubnet",
            ),
            (
                self.service_dns_domain.is_some(),
                "--service-dns-domain",
                "networking.dnsDomain",
            ),
            (
                self.node_name.is_some(),
                "--node-name",
                "nodeRegistration.name",
            ),
            (
                self.kubernetes_version.is_some(),
                "--kubernetes-version",
                "kubernetesVersion",
            ),
            (
                self.image_repository.is_some(),
                "--image-repository",
                "imageRepository",
            ),
            (
                self.cri_socket.is_some(),
                "--cri-socket",
                "nodeRegistration.criSocket",
            ),
            (self.token.is_some(), "--token", "bootstrapTokens[0].token"),
            (self.cert_dir.is_some(), "--cert-dir", "certificatesDir"),
            (
                self.certificate_key.is_some(),
                "--certificate-key",
                "certificateKey",
            ),
            (self.patches.is_some(), "--patches", "patches.directory"),
        ]
        .into_iter()
        .filter_map(|(given, flag, field)| given.then_some((flag, field)))
        .collect()
    }
}

/// Flags of `kubestrap join` (global within `join`, so `join phase X` accepts them too).
#[derive(Debug, Clone, Default, Args)]
pub struct JoinFlags {
    /// kubeadm.k8s.io/v1beta4 JoinConfiguration
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Bootstrap token for both discovery and TLS bootstrap ([a-z0-9]{6}.[a-z0-9]{16})
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Token that validates the cluster information fetched from the API server
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "TOKEN")]
    pub discovery_token: Option<String>,
    /// Pin of the cluster CA's public key (sha256:<hex>)
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_name = "sha256:HEX"
    )]
    pub discovery_token_ca_cert_hash: Vec<String>,
    /// Trust the cluster information without pinning the CA (unsafe)
    #[arg(long, global = true)]
    pub discovery_token_unsafe_skip_ca_verification: bool,
    /// A kubeconfig file (or URL) with the cluster information, instead of token discovery
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_name = "FILE|URL"
    )]
    pub discovery_file: Option<String>,
    /// kubestrap's token-signed discovery endpoint, https://HOST:9898, instead of the API server's cluster-info
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "URL")]
    pub discovery_url: Option<String>,
    /// Token the kubelet uses for its TLS bootstrap
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "TOKEN")]
    pub tls_bootstrap_token: Option<String>,
    /// Make this node a new control-plane instance
    #[arg(long, global = true)]
    pub control_plane: bool,
    /// Key (64 hex characters) that decrypts the certificates uploaded by init --upload-certs
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "KEY")]
    pub certificate_key: Option<String>,
    /// The IP address this control-plane node's API server advertises (default: the default-route interface's)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "IP")]
    pub apiserver_advertise_address: Option<String>,
    /// Port this control-plane node's API server binds to
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "PORT")]
    pub apiserver_bind_port: Option<String>,
    /// The node name (default: the host name, lowercased)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "NAME")]
    pub node_name: Option<String>,
    /// CRI socket to use (unix:///path)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "SOCKET")]
    pub cri_socket: Option<String>,
    /// Directory with patches for the static-pod manifests (kubeadm's patch file naming)
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "DIR")]
    pub patches: Option<String>,
    /// Phases to skip: phase or phase/sub-phase, comma-separated
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_delimiter = ',',
        value_name = "PHASES"
    )]
    pub skip_phases: Option<Vec<String>>,
    /// Preflight check ids whose errors become warnings (case-insensitive), or "all"
    #[arg(
        long,
        global = true,
        allow_hyphen_values = true,
        value_delimiter = ',',
        value_name = "IDS"
    )]
    pub ignore_preflight_errors: Option<Vec<String>>,
    /// Apply safe preflight fixes (sysctls through an /etc/sysctl.d drop-in)
    #[arg(long, global = true)]
    pub fix: bool,
    /// Do not roll back a failed run: leave its effects for inspection
    #[arg(long, global = true)]
    pub keep_on_failure: bool,
}

impl JoinFlags {
    /// Flags whose values belong in the JoinConfiguration when `--config` is given.
    pub fn config_conflicts(&self, endpoint: Option<&str>) -> Vec<&'static str> {
        [
            (endpoint.is_some(), "api-server-endpoint"),
            (self.token.is_some(), "token"),
            (self.discovery_token.is_some(), "discovery-token"),
            (
                !self.discovery_token_ca_cert_hash.is_empty(),
                "discovery-token-ca-cert-hash",
            ),
            (
                self.discovery_token_unsafe_skip_ca_verification,
                "discovery-token-unsafe-skip-ca-verification",
            ),
            (self.discovery_file.is_some(), "discovery-file"),
            (self.discovery_url.is_some(), "discovery-url"),
            (self.tls_bootstrap_token.is_some(), "tls-bootstrap-token"),
            (self.control_plane, "control-plane"),
            (self.certificate_key.is_some(), "certificate-key"),
            (
                self.apiserver_advertise_address.is_some(),
                "apiserver-advertise-address",
            ),
            (self.apiserver_bind_port.is_some(), "apiserver-bind-port"),
            (self.node_name.is_some(), "node-name"),
            (self.cri_socket.is_some(), "cri-socket"),
            (self.patches.is_some(), "patches"),
        ]
        .into_iter()
        .filter_map(|(given, name)| given.then_some(name))
        .collect()
    }

    /// The configuration fields join's flags stand for, for [`name_flags`]. Without `--config` the
    /// flags are the only way to set these fields, so every one is named, given or not (a missing
    /// endpoint is reported under the argument that gives it).
    pub fn sources(&self) -> Vec<(&'static str, &'static str)> {
        if self.config.is_some() {
            return [
                (
                    self.node_name.is_some(),
                    "--node-name",
                    "nodeRegistration.name",
                ),
                (self.patches.is_some(), "--patches", "patches.directory"),
            ]
            .into_iter()
            .filter_map(|(given, flag, field)| given.then_some((flag, field)))
            .collect();
        }
        let discovery_token = if self.discovery_token.is_some() {
            "--discovery-token"
        } else {
            "--token"
        };
        let tls_token = if self.tls_bootstrap_token.is_some() {
            "--tls-bootstrap-token"
        } else {
            "--token"
        };
        vec![
            (
                "api-server-endpoint",
                "discovery.bootstrapToken.apiServerEndpoint",
            ),
            (discovery_token, "discovery.bootstrapToken.token"),
            (
                "--discovery-token-ca-cert-hash",
                "discovery.bootstrapToken.caCertHashes",
            ),
            (tls_token, "discovery.tlsBootstrapToken"),
            ("--discovery-file", "discovery.file.kubeConfigPath"),
            ("--certificate-key", "controlPlane.certificateKey"),
            (
                "--apiserver-advertise-address",
                "controlPlane.localAPIEndpoint.advertiseAddress",
            ),
            (
                "--apiserver-bind-port",
                "controlPlane.localAPIEndpoint.bindPort",
            ),
            ("--node-name", "nodeRegistration.name"),
            ("--cri-socket", "nodeRegistration.criSocket"),
            ("--patches", "patches.directory"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_a_flags_field_name_the_flag_too() {
        let mut errors = vec![
            FieldError::new("networking.serviceSubnet", "bad", "not a CIDR"),
            FieldError::new("bootstrapTokens[0].token", "x", "bad token"),
            FieldError::new("networking.serviceSubnetX", "y", "other field"),
        ];
        let flags = InitFlags {
            service_cidr: Some("bad".into()),
            token: Some("x".into()),
            ..Default::default()
        };
        name_flags(&mut errors, &flags.sources());
        assert_eq!(errors[0].field, "--service-cidr (networking.serviceSubnet)");
        assert_eq!(errors[1].field, "--token (bootstrapTokens[0].token)");
        assert_eq!(errors[2].field, "networking.serviceSubnetX");
    }
}
