//! kube-apiserver's command line: every flag the real v1.35 binary has (so an unknown one fails as it
//! would), and the validated options the double uses.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use ipnet::IpNet;

use crate::common::flags::{COMMON_BOOL_FLAGS, COMMON_VALUE_FLAGS, FlagTable, Flags, leak_concat};

const VALUE_FLAGS: &[&str] = &[
    "admission-control",
    "admission-control-config-file",
    "advertise-address",
    "allow-metric-labels",
    "allow-metric-labels-manifest",
    "api-audiences",
    "audit-log-batch-buffer-size",
    "audit-log-batch-max-size",
    "audit-log-batch-max-wait",
    "audit-log-batch-throttle-burst",
    "audit-log-batch-throttle-qps",
    "audit-log-format",
    "audit-log-maxage",
    "audit-log-maxbackup",
    "audit-log-maxsize",
    "audit-log-mode",
    "audit-log-path",
    "audit-log-truncate-max-batch-size",
    "audit-log-truncate-max-event-size",
    "audit-log-version",
    "audit-policy-file",
    "audit-webhook-batch-buffer-size",
    "audit-webhook-batch-max-size",
    "audit-webhook-batch-max-wait",
    "audit-webhook-batch-throttle-burst",
    "audit-webhook-batch-throttle-qps",
    "audit-webhook-config-file",
    "audit-webhook-initial-backoff",
    "audit-webhook-mode",
    "audit-webhook-truncate-max-batch-size",
    "audit-webhook-truncate-max-event-size",
    "audit-webhook-version",
    "authentication-config",
    "authentication-token-webhook-cache-ttl",
    "authentication-token-webhook-config-file",
    "authentication-token-webhook-version",
    "authorization-config",
    "authorization-mode",
    "authorization-policy-file",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "authorization-webhook-config-file",
    "authorization-webhook-version",
    "bind-address",
    "cert-dir",
    "client-ca-file",
    "coordinated-leadership-lease-duration",
    "coordinated-leadership-renew-deadline",
    "coordinated-leadership-retry-period",
    "cors-allowed-origins",
    "debug-socket-path",
    "default-not-ready-toleration-seconds",
    "default-unreachable-toleration-seconds",
    "delete-collection-workers",
    "disable-admission-plugins",
    "disabled-metrics",
    "egress-selector-config-file",
    "emulated-version",
    "enable-admission-plugins",
    "encryption-provider-config",
    "endpoint-reconciler-type",
    "etcd-cafile",
    "etcd-certfile",
    "etcd-compaction-interval",
    "etcd-count-metric-poll-period",
    "etcd-db-metric-poll-interval",
    "etcd-healthcheck-timeout",
    "etcd-keyfile",
    "etcd-prefix",
    "etcd-readycheck-timeout",
    "etcd-servers",
    "etcd-servers-overrides",
    "event-ttl",
    "external-hostname",
    "feature-gates",
    "goaway-chance",
    "http2-max-streams-per-connection",
    "kubelet-certificate-authority",
    "kubelet-client-certificate",
    "kubelet-client-key",
    "kubelet-preferred-address-types",
    "kubelet-timeout",
    "kubernetes-service-node-port",
    "lease-reuse-duration-seconds",
    "livez-grace-period",
    "max-connection-bytes-per-sec",
    "max-mutating-requests-inflight",
    "max-requests-inflight",
    "min-compatibility-version",
    "min-request-timeout",
    "oidc-ca-file",
    "oidc-client-id",
    "oidc-groups-claim",
    "oidc-groups-prefix",
    "oidc-issuer-url",
    "oidc-required-claim",
    "oidc-signing-algs",
    "oidc-username-claim",
    "oidc-username-prefix",
    "peer-advertise-ip",
    "peer-advertise-port",
    "peer-ca-file",
    "proxy-client-cert-file",
    "proxy-client-key-file",
    "request-timeout",
    "requestheader-allowed-names",
    "requestheader-client-ca-file",
    "requestheader-extra-headers-prefix",
    "requestheader-group-headers",
    "requestheader-uid-headers",
    "requestheader-username-headers",
    "runtime-config",
    "secure-port",
    "service-account-issuer",
    "service-account-jwks-uri",
    "service-account-key-file",
    "service-account-max-token-expiration",
    "service-account-signing-endpoint",
    "service-account-signing-key-file",
    "service-cluster-ip-range",
    "service-node-port-range",
    "show-hidden-metrics-for-version",
    "shutdown-delay-duration",
    "shutdown-watch-termination-grace-period",
    "storage-backend",
    "storage-initialization-timeout",
    "storage-media-type",
    "strict-transport-security-directives",
    "tls-cert-file",
    "tls-cipher-suites",
    "tls-min-version",
    "tls-private-key-file",
    "tls-sni-cert-key",
    "token-auth-file",
    "tracing-config-file",
    "watch-cache-sizes",
];

const BOOL_FLAGS: &[&str] = &[
    "aggregator-reject-forwarding-redirect",
    "allow-privileged",
    "anonymous-auth",
    "audit-log-batch-throttle-enable",
    "audit-log-compress",
    "audit-log-truncate-enabled",
    "audit-webhook-batch-throttle-enable",
    "audit-webhook-truncate-enabled",
    "contention-profiling",
    "disable-http2-serving",
    "emulation-forward-compatible",
    "enable-aggregator-routing",
    "enable-bootstrap-token-auth",
    "enable-garbage-collector",
    "enable-logs-handler",
    "enable-priority-and-fairness",
    "encryption-provider-config-automatic-reload",
    "permit-address-sharing",
    "permit-port-sharing",
    "profiling",
    "runtime-config-emulation-forward-compatible",
    "service-account-extend-token-expiration",
    "service-account-lookup",
    "shutdown-send-retry-after",
    "watch-cache",
];

pub const ADMISSION_PLUGINS: &[&str] = &[
    "AlwaysAdmit",
    "AlwaysDeny",
    "AlwaysPullImages",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "ClusterTrustBundleAttest",
    "DefaultIngressClass",
    "DefaultStorageClass",
    "DefaultTolerationSeconds",
    "DenyServiceExternalIPs",
    "EventRateLimit",
    "ExtendedResourceToleration",
    "ImagePolicyWebhook",
    "LimitPodHardAntiAffinityTopology",
    "LimitRanger",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "NamespaceAutoProvision",
    "NamespaceExists",
    "NamespaceLifecycle",
    "NodeDeclaredFeatureValidator",
    "NodeRestriction",
    "OwnerReferencesPermissionEnforcement",
    "PersistentVolumeClaimResize",
    "PodNodeSelector",
    "PodSecurity",
    "PodTolerationRestriction",
    "PodTopologyLabels",
    "Priority",
    "ResourceQuota",
    "RuntimeClass",
    "ServiceAccount",
    "StorageObjectInUseProtection",
    "TaintNodesByCondition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
];

const DEFAULT_ADMISSION_PLUGINS: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "TaintNodesByCondition",
    "PodSecurity",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "PersistentVolumeClaimResize",
    "RuntimeClass",
    "CertificateApproval",
    "CertificateSigning",
    "ClusterTrustBundleAttest",
    "CertificateSubjectRestriction",
    "DefaultIngressClass",
    "PodTopologyLabels",
    "NodeDeclaredFeatureValidator",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
];

const AUTHORIZATION_MODES: &[&str] = &[
    "AlwaysAllow",
    "AlwaysDeny",
    "ABAC",
    "Webhook",
    "RBAC",
    "Node",
];
const NODE_ADDRESS_TYPES: &[&str] = &[
    "Hostname",
    "InternalDNS",
    "InternalIP",
    "ExternalDNS",
    "ExternalIP",
];

pub fn flag_table() -> FlagTable {
    FlagTable {
        component: "\"kube-apiserver\"",
        value_flags: leak_concat(VALUE_FLAGS, COMMON_VALUE_FLAGS),
        bool_flags: leak_concat(BOOL_FLAGS, COMMON_BOOL_FLAGS),
        shorthands: &[('v', "v"), ('h', "help")],
    }
}

/// The request-header (front proxy) authentication settings.
#[derive(Debug, Clone)]
pub struct RequestHeader {
    pub client_ca: PathBuf,
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_prefixes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub advertise_address: IpAddr,
    pub bind: SocketAddr,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub request_header: Option<RequestHeader>,
    pub anonymous_auth: bool,
    pub bootstrap_token_auth: bool,
    pub authorization_modes: Vec<String>,
    pub admission: Vec<String>,
    pub etcd_servers: Vec<String>,
    pub etcd_ca: Option<PathBuf>,
    pub etcd_cert: Option<PathBuf>,
    pub etcd_key: Option<PathBuf>,
    pub etcd_prefix: String,
    pub service_cidrs: Vec<IpNet>,
    pub node_port_range: (u16, u16),
    pub service_account_issuers: Vec<String>,
    pub api_audiences: Vec<String>,
    pub service_account_key_files: Vec<PathBuf>,
    pub service_account_signing_key: PathBuf,
    pub service_account_lookup: bool,
    pub kubelet_client_cert: Option<(PathBuf, PathBuf)>,
    pub proxy_client_cert: Option<(PathBuf, PathBuf)>,
    pub allow_privileged: bool,
}

impl Options {
    pub fn admission_enabled(&self, plugin: &str) -> bool {
        self.admission.iter().any(|p| p == plugin)
    }

    pub fn authorizes_with(&self, mode: &str) -> bool {
        self.authorization_modes.iter().any(|m| m == mode)
    }
}

/// Validates the parsed flags the way kube-apiserver's option validation does, for the flags the
/// double implements; features it does not implement are refused with a clear message rather
/// than silently ignored.
pub fn options(flags: &Flags) -> Result<Options> {
    let mut errors: Vec<String> = Vec::new();

    let etcd_servers = flags.list("etcd-servers");
    if etcd_servers.is_empty() {
        errors.push("--etcd-servers must be specified".into());
    }
    for server in &etcd_servers {
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            errors.push(format!(
                "--etcd-servers: {server:?} is not a URL with scheme http or https"
            ));
        }
    }
    if flags
        .non_empty("storage-backend")
        .is_some_and(|b| b != "etcd3")
    {
        errors.push("--storage-backend invalid, allowed values: etcd3".into());
    }

    let secure_port = flags.int("secure-port", 6443)?;
    if !(1..=65535).contains(&secure_port) {
        errors.push(format!(
            "--secure-port {secure_port} must be between 1 and 65535, inclusive. It cannot be turned off with 0"
        ));
    }
    let bind_ip = flags
        .ip("bind-address")?
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let advertise_address = match flags.ip("advertise-address")? {
        Some(ip) if ip.is_unspecified() => {
            errors.push("--advertise-address must not be an unspecified address".into());
            ip
        }
        Some(ip) => ip,
        None if !bind_ip.is_unspecified() => bind_ip,
        None => default_interface_ip().unwrap_or(IpAddr::from([127, 0, 0, 1])),
    };

    let mut authorization_modes = flags.list("authorization-mode");
    if flags.non_empty("authorization-config").is_some() {
        errors.push(
            "--authorization-config is not implemented by the testbed's API server double".into(),
        );
    }
    if authorization_modes.is_empty() {
        authorization_modes.push("AlwaysAllow".into());
    }
    for (i, mode) in authorization_modes.iter().enumerate() {
        if !AUTHORIZATION_MODES.contains(&mode.as_str()) {
            errors.push(format!("authorization-mode {mode:?} is not a valid mode"));
        } else if mode == "ABAC" || mode == "Webhook" {
            errors.push(format!(
                "authorization-mode {mode:?} is valid but not implemented by the testbed's API server double"
            ));
        }
        if authorization_modes[..i].contains(mode) {
            errors.push(format!(
                "authorization-mode {mode:?} has mode specified more than once"
            ));
        }
    }

    let enabled = flags.list("enable-admission-plugins");
    let disabled = flags.list("disable-admission-plugins");
    for (flag, list) in [
        ("enable-admission-plugins", &enabled),
        ("disable-admission-plugins", &disabled),
    ] {
        for plugin in list {
            if !ADMISSION_PLUGINS.contains(&plugin.as_str()) {
                errors.push(format!("{flag} plugin {plugin:?} is unknown"));
            }
        }
    }
    for plugin in &enabled {
        if disabled.contains(plugin) {
            errors.push(format!(
                "{plugin} in enable-admission-plugins and disable-admission-plugins overlapped"
            ));
        }
    }
    let mut admission: Vec<String> = DEFAULT_ADMISSION_PLUGINS
        .iter()
        .map(|s| s.to_string())
        .collect();
    admission.extend(enabled);
    admission.retain(|p| !disabled.contains(p));

    let service_cidrs: Vec<IpNet> = match flags.non_empty("service-cluster-ip-range") {
        None => vec!["10.0.0.0/24".parse()?],
        Some(value) => value
            .split(',')
            .map(|c| {
                c.trim()
                    .parse::<IpNet>()
                    .map_err(|_| anyhow!("service-cluster-ip-range[0] is not a valid cidr"))
            })
            .collect::<Result<_>>()?,
    };
    if service_cidrs.len() > 2 {
        errors.push("--service-cluster-ip-range may not have more than two CIDRs".into());
    }
    for cidr in &service_cidrs {
        let (min, bits) = match cidr {
            IpNet::V4(_) => (12, 32),
            IpNet::V6(_) => (108, 128),
        };
        if cidr.prefix_len() < min {
            errors.push(format!(
                "specified --service-cluster-ip-range is too large; for {bits}-bit addresses, the mask must be >= {min}"
            ));
        }
        if cidr.network() != cidr.addr() {
            errors.push(format!(
                "--service-cluster-ip-range {cidr} is not a network address"
            ));
        }
    }
    if service_cidrs.len() == 2
        && service_cidrs[0].addr().is_ipv4() == service_cidrs[1].addr().is_ipv4()
    {
        errors.push("--service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different IP family".into());
    }

    let node_port_range = parse_port_range(&flags.string("service-node-port-range", "30000-32767"))
        .ok_or_else(|| anyhow!("invalid argument for --service-node-port-range"))?;

    let issuers = flags.list("service-account-issuer");
    let signing_key = flags.non_empty("service-account-signing-key-file");
    if issuers.is_empty() {
        errors.push("service-account-issuer is a required flag".into());
    }
    if signing_key.is_none() {
        errors.push("service-account-signing-key-file is a required flag".into());
    }
    for issuer in &issuers {
        if issuer.contains(':') && !issuer.starts_with("https://") {
            errors.push(format!(
                "service-account-issuer {issuer:?} contained a ':' but was not a valid URL"
            ));
        }
    }
    let mut key_files: Vec<PathBuf> = flags
        .list("service-account-key-file")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    if key_files.is_empty() {
        match flags.non_empty("tls-private-key-file") {
            Some(k) => key_files.push(PathBuf::from(k)),
            None => errors.push("service-account-key-file is a required flag".into()),
        }
    }
    let mut api_audiences = flags.list("api-audiences");
    if api_audiences.is_empty() {
        api_audiences = issuers.clone();
    }

    for t in flags.list("kubelet-preferred-address-types") {
        if !NODE_ADDRESS_TYPES.contains(&t.as_str()) {
            errors.push(format!(
                "--kubelet-preferred-address-types: {t:?} is not a valid node address type"
            ));
        }
    }

    let pair = |cert: &str, key: &str, errors: &mut Vec<String>| match (
        flags.non_empty(cert),
        flags.non_empty(key),
    ) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        _ => {
            errors.push(format!("--{cert} and --{key} must be given together"));
            None
        }
    };
    let tls = pair("tls-cert-file", "tls-private-key-file", &mut errors);
    let kubelet_client_cert = pair(
        "kubelet-client-certificate",
        "kubelet-client-key",
        &mut errors,
    );
    let proxy_client_cert = pair(
        "proxy-client-cert-file",
        "proxy-client-key-file",
        &mut errors,
    );

    let request_header = flags
        .non_empty("requestheader-client-ca-file")
        .map(|ca| RequestHeader {
            client_ca: PathBuf::from(ca),
            allowed_names: flags.list("requestheader-allowed-names"),
            username_headers: flags.list("requestheader-username-headers"),
            group_headers: flags.list("requestheader-group-headers"),
            extra_prefixes: flags.list("requestheader-extra-headers-prefix"),
        });
    if request_header
        .as_ref()
        .is_some_and(|r| r.username_headers.is_empty())
    {
        errors.push(
            "--requestheader-username-headers must be set when --requestheader-client-ca-file is"
                .into(),
        );
    }

    for unsupported in [
        "authentication-config",
        "token-auth-file",
        "oidc-issuer-url",
        "encryption-provider-config",
    ] {
        if flags.non_empty(unsupported).is_some() {
            errors.push(format!(
                "--{unsupported} is not implemented by the testbed's API server double"
            ));
        }
    }

    if !errors.is_empty() {
        bail!("invalid options:\n  {}", errors.join("\n  "));
    }
    let signing_key = signing_key.unwrap_or_default();
    Ok(Options {
        advertise_address,
        bind: SocketAddr::new(bind_ip, u16::try_from(secure_port).unwrap_or(6443)),
        tls_cert_file: tls.as_ref().map(|(c, _)| c.clone()),
        tls_key_file: tls.map(|(_, k)| k),
        client_ca_file: flags.non_empty("client-ca-file").map(PathBuf::from),
        request_header,
        anonymous_auth: flags.bool("anonymous-auth", true)?,
        bootstrap_token_auth: flags.bool("enable-bootstrap-token-auth", false)?,
        authorization_modes,
        admission,
        etcd_servers,
        etcd_ca: flags.non_empty("etcd-cafile").map(PathBuf::from),
        etcd_cert: flags.non_empty("etcd-certfile").map(PathBuf::from),
        etcd_key: flags.non_empty("etcd-keyfile").map(PathBuf::from),
        etcd_prefix: flags
            .string("etcd-prefix", "/registry")
            .trim_end_matches('/')
            .to_string(),
        service_cidrs,
        node_port_range,
        service_account_issuers: issuers,
        api_audiences,
        service_account_key_files: key_files,
        service_account_signing_key: PathBuf::from(signing_key),
        service_account_lookup: flags.bool("service-account-lookup", true)?,
        kubelet_client_cert,
        proxy_client_cert,
        allow_privileged: flags.bool("allow-privileged", false)?,
    })
}

fn parse_port_range(value: &str) -> Option<(u16, u16)> {
    let (a, b) = value.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// The address of the interface that carries the default route (what the real server advertises
/// when neither --advertise-address nor --bind-address names one).
fn default_interface_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        options(&flag_table().parse(&args)?)
    }

    const BASE: &[&str] = &[
        "--advertise-address=10.1.0.5",
        "--etcd-servers=https://127.0.0.1:2379",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file=/p/sa.pub",
        "--service-account-signing-key-file=/p/sa.key",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--service-cluster-ip-range=10.96.0.0/12",
        "--secure-port=6443",
    ];

    #[test]
    fn kubeadm_style_command_line_is_accepted() {
        let o = parse(BASE).unwrap();
        assert_eq!(o.bind.port(), 6443);
        assert!(o.admission_enabled("NodeRestriction") && o.admission_enabled("Priority"));
        assert!(o.authorizes_with("Node") && o.authorizes_with("RBAC"));
        assert_eq!(
            o.api_audiences,
            vec!["https://kubernetes.default.svc.cluster.local"]
        );
    }

    #[test]
    fn unknown_flags_and_bad_values_fail() {
        let mut args = BASE.to_vec();
        args.push("--insecure-port=0");
        assert!(
            parse(&args)
                .unwrap_err()
                .to_string()
                .contains("unknown flag: --insecure-port")
        );
        let mut args = BASE.to_vec();
        args.push("--enable-admission-plugins=NodeRestrictions");
        assert!(
            parse(&args)
                .unwrap_err()
                .to_string()
                .contains("plugin \"NodeRestrictions\" is unknown")
        );
        let mut args = BASE.to_vec();
        args.push("--service-cluster-ip-range=10.0.0.0/8");
        assert!(
            parse(&args)
                .unwrap_err()
                .to_string()
                .contains("mask must be >= 12")
        );
        let args: Vec<&str> = BASE
            .iter()
            .copied()
            .filter(|a| !a.starts_with("--service-account-issuer"))
            .collect();
        assert!(
            parse(&args)
                .unwrap_err()
                .to_string()
                .contains("service-account-issuer is a required flag")
        );
    }
}
