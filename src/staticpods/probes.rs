//! Where and how the kubelet probes each component, per component and version.

use serde::Serialize;

use super::Component;
use super::args::last_value;
use super::commands;
use crate::config::versions::EtcdVersion;
use crate::model::ControlPlane;
use crate::model::ETCD_METRICS_PORT;

/// The first etcd release that serves `/livez` and `/readyz` (etcd CHANGELOG-3.5, v3.5.11).
const ETCD_LIVEZ_SINCE: EtcdVersion = EtcdVersion {
    major: 3,
    minor: 5,
    patch: 11,
};

/// The first Kubernetes minor whose kubeadm names the probe port `probe-port` (PR #132776).
const NAMED_PROBE_PORT_SINCE_MINOR: u32 = 34;

/// Everything the container template needs to write the three probes and the probe port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeValues {
    /// `None`: no host, the kubelet probes the pod IP (component bound to all addresses).
    pub host: Option<String>,
    pub port: u16,
    /// Whether the container declares `probe-port` and the probes refer to it by name.
    pub named_port: bool,
    /// What `httpGet.port` holds: `"probe-port"` or the number.
    pub target: serde_json::Value,
    pub scheme: &'static str,
    pub liveness_path: &'static str,
    pub readiness_path: Option<&'static str>,
    pub startup_path: &'static str,
    /// `ceil(controlPlaneComponentHealthCheck / 10s)`: 24 for the default 4m.
    pub startup_failure_threshold: u64,
}

pub fn probe(component: Component, cp: &ControlPlane) -> ProbeValues {
    let (host, port, scheme, paths) = match component {
        Component::KubeApiServer => (
            commands::probe_host(&cp.advertise_address().to_string()),
            cp.api.bind_port,
            "HTTPS",
            ("/livez", Some("/readyz"), "/livez"),
        ),
        Component::KubeControllerManager => (
            commands::probe_host_from_bind_address(&cp.cluster.controller_manager.extra_args),
            10257,
            "HTTPS",
            ("/healthz", None, "/healthz"),
        ),
        Component::KubeScheduler => (
            commands::probe_host_from_bind_address(&cp.cluster.scheduler.extra_args),
            10259,
            "HTTPS",
            ("/livez", Some("/readyz"), "/livez"),
        ),
        Component::Etcd => {
            let (host, port, scheme) = etcd_endpoint(cp);
            let version = cp.cluster.etcd.local().map(|l| l.version);
            let paths = if version.is_none_or(|v| v >= ETCD_LIVEZ_SINCE) {
                ("/livez", Some("/readyz"), "/readyz")
            } else {
                // What kubeadm rendered before it required etcd 3.5.11; older etcd answers 404 on /livez.
                (
                    "/health?exclude=NOSPACE&serializable=true",
                    None,
                    "/health?serializable=false",
                )
            };
            (Some(host), port, scheme, paths)
        }
    };
    let named_port = cp.cluster.kubernetes_version.minor >= NAMED_PROBE_PORT_SINCE_MINOR;
    let target = if named_port {
        serde_json::Value::from("probe-port")
    } else {
        serde_json::Value::from(port)
    };
    ProbeValues {
        host,
        port,
        named_port,
        target,
        scheme,
        liveness_path: paths.0,
        readiness_path: paths.1,
        startup_path: paths.2,
        startup_failure_threshold: startup_failure_threshold(cp),
    }
}

/// The etcd metrics endpoint: the first URL of a user `listen-metrics-urls`, else `http://<loopback>:2381`.
fn etcd_endpoint(cp: &ControlPlane) -> (String, u16, &'static str) {
    let local = cp.loopback().to_string();
    let Some(urls) = last_value(commands::etcd_extra_args(cp), "listen-metrics-urls") else {
        return (local, ETCD_METRICS_PORT, "HTTP");
    };
    let first = urls.split(',').next().unwrap_or_default();
    let (scheme, rest) = match first.split_once("://") {
        Some(("https", rest)) => ("HTTPS", rest),
        Some((_, rest)) => ("HTTP", rest),
        None => return (local, ETCD_METRICS_PORT, "HTTP"),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = split_authority(authority);
    let host = host.filter(|h| !h.is_empty()).unwrap_or(local);
    let port = port.unwrap_or(ETCD_METRICS_PORT);
    (host, port, scheme)
}

/// `host[:port]` / `[v6][:port]` into parts (a bad port counts as absent, as in kubeadm).
fn split_authority(authority: &str) -> (Option<String>, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (Some(host.to_string()), port);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (Some(host.to_string()), port.parse().ok()),
        None => (Some(authority.to_string()), None),
    }
}

fn startup_failure_threshold(cp: &ControlPlane) -> u64 {
    let timeout = cp.node.timeouts.control_plane_component_health_check.0;
    (timeout.as_secs_f64() / 10.0).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_like_go_urls() {
        assert_eq!(
            split_authority("10.0.0.1:9000"),
            (Some("10.0.0.1".into()), Some(9000))
        );
        assert_eq!(
            split_authority("[::1]:2381"),
            (Some("::1".into()), Some(2381))
        );
        assert_eq!(split_authority("[fd00::1]"), (Some("fd00::1".into()), None));
        assert_eq!(split_authority("host"), (Some("host".into()), None));
    }
}
