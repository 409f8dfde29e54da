//! The kube-proxy double's configuration: `kubeproxy.config.k8s.io/v1alpha1` KubeProxyConfiguration
//! decoded as kube-proxy decodes it (typed: a wrongly typed field fails; an unknown field is a
//! warning, as its lenient fallback), the v1alpha1 defaults, and kube-proxy's validation wording.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use kubestrap::config::duration::GoDuration;

pub const API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";
pub const KIND: &str = "KubeProxyConfiguration";

/// A Go duration field (`"30s"`); zero and absent mean "use the default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<GoDuration>()
            .map(|g| Dur(g.as_duration()))
            .map_err(|_| serde::de::Error::custom(format!("time: invalid duration {text:?}")))
    }
}

fn or(d: Option<Dur>, default: Duration) -> Duration {
    match d {
        Some(Dur(v)) if !v.is_zero() => v,
        _ => default,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClientConnection {
    kubeconfig: Option<String>,
    #[allow(dead_code)]
    accept_content_types: Option<String>,
    #[allow(dead_code)]
    content_type: Option<String>,
    #[allow(dead_code)]
    qps: Option<f64>,
    burst: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIptables {
    masquerade_all: Option<bool>,
    masquerade_bit: Option<i64>,
    sync_period: Option<Dur>,
    min_sync_period: Option<Dur>,
    localhost_node_ports: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConntrack {
    max_per_core: Option<i64>,
    min: Option<i64>,
    tcp_established_timeout: Option<Dur>,
    tcp_close_wait_timeout: Option<Dur>,
    #[allow(dead_code)]
    tcp_be_liberal: Option<bool>,
    #[allow(dead_code)]
    udp_timeout: Option<Dur>,
    #[allow(dead_code)]
    udp_stream_timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDetectLocal {
    bridge_interface: Option<String>,
    interface_name_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    bind_address: Option<String>,
    healthz_bind_address: Option<String>,
    metrics_bind_address: Option<String>,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: Option<String>,
    mode: Option<String>,
    hostname_override: Option<String>,
    /// The informers here re-list whenever a watch ends; a resync period has no effect to model.
    #[allow(dead_code)]
    config_sync_period: Option<Dur>,
    node_port_addresses: Option<Vec<String>>,
    oom_score_adj: Option<i64>,
    port_range: Option<String>,
    detect_local_mode: Option<String>,
    #[serde(default)]
    detect_local: RawDetectLocal,
    #[serde(default)]
    client_connection: RawClientConnection,
    #[serde(default)]
    iptables: RawIptables,
    #[serde(default)]
    conntrack: RawConntrack,
}

/// Top-level fields of v1alpha1 KubeProxyConfiguration (unknown ones are warned about).
const KNOWN_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "bindAddress",
    "bindAddressHardFail",
    "clientConnection",
    "clusterCIDR",
    "configSyncPeriod",
    "conntrack",
    "detectLocal",
    "detectLocalMode",
    "enableProfiling",
    "featureGates",
    "healthzBindAddress",
    "hostnameOverride",
    "iptables",
    "ipvs",
    "linux",
    "logging",
    "metricsBindAddress",
    "mode",
    "nftables",
    "nodePortAddresses",
    "oomScoreAdj",
    "portRange",
    "showHiddenMetricsForAlphaFeatures",
    "showHiddenMetricsForVersion",
    "windowsRunAsService",
    "winkernel",
];

/// How kube-proxy tells pod traffic (no masquerade) from other traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectLocal {
    /// No detector (no clusterCIDR): ClusterIP traffic is not masqueraded by source.
    None,
    ClusterCidr(Vec<IpNet>),
    /// The node's podCIDRs, read from its Node object.
    NodeCidr,
    BridgeInterface(String),
    InterfaceNamePrefix(String),
}

/// The resolved, validated configuration the proxier runs with.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub kubeconfig: String,
    pub cluster_cidrs: Vec<IpNet>,
    pub hostname_override: String,
    pub healthz_bind: Option<String>,
    pub metrics_bind: String,
    pub masquerade_all: bool,
    pub masquerade_bit: u32,
    pub sync_period: Duration,
    pub min_sync_period: Duration,
    pub localhost_node_ports: bool,
    pub node_port_addresses: Vec<IpNet>,
    pub detect_local: DetectLocal,
}

impl ProxyConfig {
    /// The fwmark that flags a packet for masquerading (`0x4000` for bit 14).
    pub fn masquerade_mark(&self) -> String {
        format!("{:#x}", 1u32 << self.masquerade_bit)
    }
}

/// Why a configuration is not run: decoding, validation, or a mode the double does not implement.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to decode kube-proxy config: {0}")]
    Decode(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "proxy mode {0:?} is not implemented by the testbed's kube-proxy double (only iptables is)"
    )]
    NotImplemented(String),
}

/// Decodes and validates the file's text. Returns the configuration and the warnings to log.
pub fn parse(text: &str) -> Result<(ProxyConfig, Vec<String>), ConfigError> {
    let value: Value =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Decode(e.to_string()))?;
    let map = value
        .as_object()
        .ok_or_else(|| ConfigError::Decode("not a mapping".into()))?;
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != KIND || api_version != API_VERSION {
        return Err(ConfigError::Decode(format!(
            "no kind {kind:?} is registered for version {api_version:?} in scheme \"pkg/proxy/apis/config/scheme/scheme.go:28\""
        )));
    }
    let warnings: Vec<String> = map
        .keys()
        .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        .map(|k| format!("strict decoding error: unknown field {k:?}"))
        .collect();
    let raw: Raw =
        serde_json::from_value(value.clone()).map_err(|e| ConfigError::Decode(e.to_string()))?;
    resolve(raw).map(|c| (c, warnings))
}

fn resolve(raw: Raw) -> Result<ProxyConfig, ConfigError> {
    let mut errs: Vec<String> = Vec::new();
    let mut invalid = |field: &str, value: &str, why: &str| {
        errs.push(format!(
            "KubeProxyConfiguration.{field}: Invalid value: {value}: {why}"
        ))
    };
    let q = |s: &str| format!("{s:?}");

    let mode = raw.mode.clone().unwrap_or_default();
    match mode.as_str() {
        "" | "iptables" | "ipvs" | "nftables" => {}
        other => invalid(
            "Mode",
            &q(other),
            "must be iptables,ipvs,nftables or blank (blank means the best-available proxy [currently iptables])",
        ),
    }
    let bind = raw.bind_address.clone().unwrap_or_else(|| "0.0.0.0".into());
    if bind.parse::<IpAddr>().is_err() {
        invalid(
            "BindAddress",
            &q(&bind),
            "not a valid textual representation of an IP address",
        );
    }
    let healthz = match raw.healthz_bind_address.as_deref() {
        None | Some("") => "0.0.0.0:10256".to_string(),
        Some(v) => v.to_string(),
    };
    let metrics = match raw.metrics_bind_address.as_deref() {
        None | Some("") => "127.0.0.1:10249".to_string(),
        Some(v) => v.to_string(),
    };
    for (field, value) in [
        ("HealthzBindAddress", &healthz),
        ("MetricsBindAddress", &metrics),
    ] {
        if let Some(why) = host_port_error(value) {
            invalid(field, &q(value), why);
        }
    }
    let mut cluster_cidrs = Vec::new();
    if let Some(cidr) = raw.cluster_cidr.as_deref().filter(|c| !c.is_empty()) {
        let parts: Vec<&str> = cidr.split(',').collect();
        let parsed: Vec<Option<IpNet>> = parts.iter().map(|p| p.trim().parse().ok()).collect();
        match parts.len() {
            1 => match parsed[0] {
                Some(net) => cluster_cidrs.push(net),
                None => invalid(
                    "ClusterCIDR",
                    &q(cidr),
                    "must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)",
                ),
            },
            2 => match (parsed[0], parsed[1]) {
                (Some(a), Some(b)) if matches!(a, IpNet::V4(_)) != matches!(b, IpNet::V4(_)) => {
                    cluster_cidrs.extend([a, b])
                }
                _ => invalid(
                    "ClusterCIDR",
                    &q(cidr),
                    "must be a valid DualStack CIDR (e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)",
                ),
            },
            _ => invalid(
                "ClusterCIDR",
                &q(cidr),
                "only one CIDR allowed or a valid DualStack CIDR (e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)",
            ),
        }
    }
    let masquerade_bit = raw.iptables.masquerade_bit.unwrap_or(14);
    if !(0..=31).contains(&masquerade_bit) {
        invalid(
            "KubeProxyIPTablesConfiguration.MasqueradeBit",
            &masquerade_bit.to_string(),
            "must be within the range [0, 31]",
        );
    }
    let sync_period = or(raw.iptables.sync_period, Duration::from_secs(30));
    let min_sync_period = or(raw.iptables.min_sync_period, Duration::from_secs(1));
    if min_sync_period > sync_period {
        invalid(
            "KubeProxyIPTablesConfiguration.SyncPeriod",
            &q(&format!("{}s", min_sync_period.as_secs())),
            "must be greater than or equal to KubeProxyConfiguration.KubeProxyIPTablesConfiguration.MinSyncPeriod",
        );
    }
    for (field, value) in [
        ("MaxPerCore", raw.conntrack.max_per_core),
        ("Min", raw.conntrack.min),
    ] {
        if let Some(v) = value.filter(|v| *v < 0) {
            invalid(
                &format!("KubeProxyConntrackConfiguration.{field}"),
                &v.to_string(),
                "must be greater than or equal to 0",
            );
        }
    }
    // Durations cannot be negative in this decoder (Go's can): `-1s` already failed to decode.
    let _ = (
        raw.conntrack.tcp_established_timeout,
        raw.conntrack.tcp_close_wait_timeout,
    );
    if let Some(v) = raw.oom_score_adj.filter(|v| !(-1000..=1000).contains(v)) {
        invalid(
            "OOMScoreAdj",
            &v.to_string(),
            "must be within the range [-1000, 1000]",
        );
    }
    if let Some(b) = raw.client_connection.burst.filter(|b| *b < 0) {
        invalid(
            "ClientConnection.Burst",
            &b.to_string(),
            "must be greater than or equal to 0",
        );
    }
    if let Some(range) = raw.port_range.as_deref().filter(|r| !r.is_empty())
        && !valid_port_range(range)
    {
        invalid(
            "PortRange",
            &q(range),
            "must be a valid port range (e.g. 300-2000)",
        );
    }
    let mut node_port_addresses = Vec::new();
    for a in raw.node_port_addresses.iter().flatten() {
        if a == "primary" {
            continue;
        }
        match a.parse::<IpNet>() {
            Ok(n) => node_port_addresses.push(n),
            Err(_) => {
                invalid(
                    "NodePortAddresses[0]",
                    &q(a),
                    "must be a valid CIDR or \"primary\"",
                );
                break;
            }
        }
    }
    let detect_mode = raw.detect_local_mode.clone().unwrap_or_default();
    let detect_local = match detect_mode.as_str() {
        "" | "ClusterCIDR" if cluster_cidrs.is_empty() => DetectLocal::None,
        "" | "ClusterCIDR" => DetectLocal::ClusterCidr(cluster_cidrs.clone()),
        "NodeCIDR" => DetectLocal::NodeCidr,
        "BridgeInterface" => {
            let name = raw
                .detect_local
                .bridge_interface
                .clone()
                .unwrap_or_default();
            if name.is_empty() {
                invalid("DetectLocal.BridgeInterface", "\"\"", "must not be empty");
            }
            DetectLocal::BridgeInterface(name)
        }
        "InterfaceNamePrefix" => {
            let name = raw
                .detect_local
                .interface_name_prefix
                .clone()
                .unwrap_or_default();
            if name.is_empty() {
                invalid(
                    "DetectLocal.InterfaceNamePrefix",
                    "\"\"",
                    "must not be empty",
                );
            }
            DetectLocal::InterfaceNamePrefix(name)
        }
        other => {
            invalid(
                "DetectLocalMode",
                &q(other),
                "must be one of ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix",
            );
            DetectLocal::None
        }
    };
    match errs.len() {
        0 => {}
        1 => return Err(ConfigError::Invalid(errs.remove(0))),
        _ => return Err(ConfigError::Invalid(format!("[{}]", errs.join(", ")))),
    }
    if mode == "ipvs" || mode == "nftables" {
        return Err(ConfigError::NotImplemented(mode));
    }
    Ok(ProxyConfig {
        kubeconfig: raw.client_connection.kubeconfig.unwrap_or_default(),
        cluster_cidrs,
        hostname_override: raw.hostname_override.unwrap_or_default(),
        healthz_bind: Some(healthz),
        metrics_bind: metrics,
        masquerade_all: raw.iptables.masquerade_all.unwrap_or(false),
        masquerade_bit: masquerade_bit as u32,
        sync_period,
        min_sync_period,
        localhost_node_ports: raw.iptables.localhost_node_ports.unwrap_or(true),
        node_port_addresses,
        detect_local,
    })
}

fn host_port_error(value: &str) -> Option<&'static str> {
    let Some((host, port)) = value.rsplit_once(':') else {
        return Some("must be IP:port");
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<IpAddr>().is_err() {
        return Some("must be a valid IP");
    }
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => None,
        _ => Some("must be a valid port"),
    }
}

fn valid_port_range(range: &str) -> bool {
    let (a, b) = match range.split_once('-') {
        Some((a, b)) => (a, b),
        None => match range.split_once('+') {
            Some((a, n)) => {
                return a.parse::<u16>().is_ok()
                    && n.parse::<u32>()
                        .ok()
                        .zip(a.parse::<u32>().ok())
                        .is_some_and(|(n, a)| a + n <= 65535);
            }
            None => (range, range),
        },
    };
    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= b)
}

/// Loads the file named by `--config`.
pub fn load(path: &str) -> Result<(ProxyConfig, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read config file {path:?}"))?;
    parse(&text).map_err(|e| anyhow!(e))
}

/// `--hostname-override`: trimmed and lower-cased; blank is an error, as in kube-proxy.
pub fn hostname_override(value: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        bail!("empty hostname-override is invalid");
    }
    Ok(trimmed.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What kubeadm renders for a cluster with podSubnet 10.244.0.0/16 (zero values kept).
    const KUBEADM: &str = r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: ""
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
"#;

    #[test]
    fn kubeadms_rendering_gets_the_defaults() {
        let (c, warnings) = parse(KUBEADM).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf");
        assert_eq!(c.cluster_cidrs, vec!["10.244.0.0/16".parse().unwrap()]);
        assert_eq!(c.masquerade_mark(), "0x4000");
        assert_eq!(c.sync_period, Duration::from_secs(30));
        assert_eq!(c.healthz_bind.as_deref(), Some("0.0.0.0:10256"));
        assert_eq!(c.metrics_bind, "127.0.0.1:10249");
        assert!(c.localhost_node_ports);
        assert_eq!(
            c.detect_local,
            DetectLocal::ClusterCidr(vec!["10.244.0.0/16".parse().unwrap()])
        );
    }

    fn with(field: &str, value: &str) -> String {
        KUBEADM
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{field}:")) {
                    format!("{field}: {value}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn bad_values_fail_with_kube_proxys_wording() {
        let err = parse(&with("clusterCIDR", "10.244.0.0/33")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KubeProxyConfiguration.ClusterCIDR: Invalid value: \"10.244.0.0/33\": must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)"
        );
        let err = parse(&with("mode", "userspace")).unwrap_err();
        assert!(
            err.to_string()
                .contains("KubeProxyConfiguration.Mode: Invalid value: \"userspace\": must be iptables,ipvs,nftables or blank"),
            "{err}"
        );
        let err = parse(&with("bindAddress", "0.0.0.0.0")).unwrap_err();
        assert!(err.to_string().contains("BindAddress"), "{err}");
        let err = parse(&with("metricsBindAddress", "127.0.0.1")).unwrap_err();
        assert!(err.to_string().contains("must be IP:port"), "{err}");
        let err = parse(&KUBEADM.replace(
            "  masqueradeBit: null\n  minSync",
            "  masqueradeBit: 32\n  minSync",
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("MasqueradeBit: Invalid value: 32: must be within the range [0, 31]"),
            "{err}"
        );
        // Two errors are listed together.
        let text = with("clusterCIDR", "x").replace("mode: \"\"", "mode: bogus");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with('[') && err.contains("Mode") && err.contains("ClusterCIDR"),
            "{err}"
        );
    }

    #[test]
    fn wrong_types_fail_and_unknown_fields_warn() {
        assert!(matches!(
            parse(&with("configSyncPeriod", "15 minutes")),
            Err(ConfigError::Decode(_))
        ));
        assert!(matches!(
            parse(&with(
                "bindAddressHardFail",
                "false\nclusterCIDRs: x\nmode: [a]"
            )),
            Err(ConfigError::Decode(_))
        ));
        let (_, warnings) = parse(&format!("{KUBEADM}extraField: 1\n")).unwrap();
        assert_eq!(
            warnings,
            vec!["strict decoding error: unknown field \"extraField\""]
        );
        assert!(matches!(
            parse(&KUBEADM.replace("kind: KubeProxyConfiguration", "kind: KubeletConfiguration")),
            Err(ConfigError::Decode(_))
        ));
    }

    #[test]
    fn ipvs_and_nftables_are_refused_loudly() {
        for mode in ["ipvs", "nftables"] {
            let err = parse(&with("mode", mode)).unwrap_err();
            assert!(matches!(err, ConfigError::NotImplemented(_)));
            assert!(
                err.to_string()
                    .contains("not implemented by the testbed's kube-proxy double")
            );
        }
        assert!(parse(&with("mode", "iptables")).is_ok());
    }

    #[test]
    fn dual_stack_cluster_cidr_and_detect_local_modes() {
        let (c, _) = parse(&with("clusterCIDR", "10.244.0.0/16,fd00:10:244::/56")).unwrap();
        assert_eq!(c.cluster_cidrs.len(), 2);
        assert!(parse(&with("clusterCIDR", "10.244.0.0/16,10.245.0.0/16")).is_err());
        let (c, _) = parse(&with("clusterCIDR", "\"\"")).unwrap();
        assert_eq!(c.detect_local, DetectLocal::None);
        let (c, _) = parse(&with("detectLocalMode", "NodeCIDR")).unwrap();
        assert_eq!(c.detect_local, DetectLocal::NodeCidr);
        assert!(parse(&with("detectLocalMode", "BridgeInterface")).is_err());
        assert!(parse(&with("detectLocalMode", "Nope")).is_err());
        assert_eq!(hostname_override(" Node1 ").unwrap(), "node1");
        assert!(hostname_override("  ").is_err());
    }
}
