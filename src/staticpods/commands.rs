//! The arguments of the four control-plane binaries (kubeadm-behaviour.md §4.3–4.5).
//!
//! Paths written here are canonical node paths (`--root` never appears inside a manifest).

use std::net::IpAddr;

use super::args::{BaseArgs, last_value};
use crate::config::init::{InitSettings, join_host_port};
use crate::config::types::Arg;
use crate::host::well_known::KUBERNETES_DIR;

pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
pub const ETCD_METRICS_PORT: u16 = 2381;

/// `127.0.0.1`, or `::1` when the node advertises an IPv6 address (kubeadm keeps one family).
pub fn loopback(settings: &InitSettings) -> &'static str {
    if settings.is_ipv6() {
        "::1"
    } else {
        "127.0.0.1"
    }
}

/// `https://<ip>:<port>` with IPv6 in brackets.
pub fn https_url(ip: &str, port: u16) -> String {
    format!("https://{}", join_host_port(ip, port))
}

fn advertise(settings: &InitSettings) -> String {
    settings.advertise_address.to_string()
}

fn cert(settings: &InitSettings, file: &str) -> String {
    settings.cert_dir.join(file).display_str()
}

fn kubeconfig(file: &str) -> String {
    format!("{KUBERNETES_DIR}/{file}")
}

/// `etcd.local.extraArgs` (empty for external etcd).
pub fn etcd_extra_args(settings: &InitSettings) -> &[Arg] {
    settings
        .cluster
        .etcd
        .local
        .as_ref()
        .and_then(|l| l.extra_args.as_deref())
        .unwrap_or(&[])
}

/// etcd's flags for a first (single) member, in the form the etcd version in use accepts:
/// 3.6 replaced `--experimental-initial-corrupt-check` and `--experimental-watch-progress-notify-interval`.
pub fn etcd(settings: &InitSettings) -> Vec<String> {
    let ip = advertise(settings);
    let local = loopback(settings);
    let client_url = https_url(&ip, ETCD_CLIENT_PORT);
    let peer_url = https_url(&ip, ETCD_PEER_PORT);
    let mut base = BaseArgs::new(&[
        ("name", &settings.node_name),
        (
            "listen-client-urls",
            &format!("{},{client_url}", https_url(local, ETCD_CLIENT_PORT)),
        ),
        ("advertise-client-urls", &client_url),
        ("listen-peer-urls", &peer_url),
        ("initial-advertise-peer-urls", &peer_url),
        ("data-dir", &settings.etcd_data_dir.display_str()),
        ("cert-file", &cert(settings, "etcd/server.crt")),
        ("key-file", &cert(settings, "etcd/server.key")),
        ("trusted-ca-file", &cert(settings, "etcd/ca.crt")),
        ("client-cert-auth", "true"),
        ("peer-cert-file", &cert(settings, "etcd/peer.crt")),
        ("peer-key-file", &cert(settings, "etcd/peer.key")),
        ("peer-trusted-ca-file", &cert(settings, "etcd/ca.crt")),
        ("peer-client-cert-auth", "true"),
        ("snapshot-count", "10000"),
        (
            "listen-metrics-urls",
            &format!("http://{}", join_host_port(local, ETCD_METRICS_PORT)),
        ),
    ]);
    if settings.etcd_version.has_v36_flags() {
        base.set("feature-gates", "InitialCorruptCheck=true");
        base.set("watch-progress-notify-interval", "5s");
    } else {
        base.set("experimental-initial-corrupt-check", "true");
        base.set("experimental-watch-progress-notify-interval", "5s");
    }
    base.set(
        "initial-cluster",
        format!("{}={peer_url}", settings.node_name),
    );
    base.to_command(etcd_extra_args(settings))
}

pub fn apiserver(settings: &InitSettings) -> Vec<String> {
    let extra = settings
        .cluster
        .api_server
        .extra_args
        .as_deref()
        .unwrap_or(&[]);
    let mut base = BaseArgs::new(&[
        ("advertise-address", &advertise(settings)),
        ("enable-admission-plugins", "NodeRestriction"),
        ("service-cluster-ip-range", &service_subnet(settings)),
        ("service-account-key-file", &cert(settings, "sa.pub")),
        (
            "service-account-signing-key-file",
            &cert(settings, "sa.key"),
        ),
        (
            "service-account-issuer",
            &format!("https://kubernetes.default.svc.{}", settings.dns_domain),
        ),
        ("client-ca-file", &cert(settings, "ca.crt")),
        ("tls-cert-file", &cert(settings, "apiserver.crt")),
        ("tls-private-key-file", &cert(settings, "apiserver.key")),
        (
            "kubelet-client-certificate",
            &cert(settings, "apiserver-kubelet-client.crt"),
        ),
        (
            "kubelet-client-key",
            &cert(settings, "apiserver-kubelet-client.key"),
        ),
        ("enable-bootstrap-token-auth", "true"),
        ("secure-port", &settings.bind_port.to_string()),
        ("allow-privileged", "true"),
        (
            "kubelet-preferred-address-types",
            "InternalIP,ExternalIP,Hostname",
        ),
        ("requestheader-username-headers", "X-Remote-User"),
        ("requestheader-group-headers", "X-Remote-Group"),
        ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        (
            "requestheader-client-ca-file",
            &cert(settings, "front-proxy-ca.crt"),
        ),
        ("requestheader-allowed-names", "front-proxy-client"),
        (
            "proxy-client-cert-file",
            &cert(settings, "front-proxy-client.crt"),
        ),
        (
            "proxy-client-key-file",
            &cert(settings, "front-proxy-client.key"),
        ),
    ]);
    match &settings.cluster.etcd.external {
        Some(external) => {
            base.set("etcd-servers", external.endpoints.join(","));
            if !external.ca_file.is_empty() {
                base.set("etcd-cafile", &external.ca_file);
            }
            if !external.cert_file.is_empty() && !external.key_file.is_empty() {
                base.set("etcd-certfile", &external.cert_file);
                base.set("etcd-keyfile", &external.key_file);
            }
        }
        None => {
            let servers = last_value(etcd_extra_args(settings), "advertise-client-urls")
                .map(str::to_string)
                .unwrap_or_else(|| https_url(loopback(settings), ETCD_CLIENT_PORT));
            base.set("etcd-servers", servers);
            base.set("etcd-cafile", cert(settings, "etcd/ca.crt"));
            base.set("etcd-certfile", cert(settings, "apiserver-etcd-client.crt"));
            base.set("etcd-keyfile", cert(settings, "apiserver-etcd-client.key"));
        }
    }
    // A structured authorization configuration replaces the mode list; an extra
    // authorization-mode replaces the default through the override rule.
    if last_value(extra, "authorization-config").is_none() {
        base.set("authorization-mode", "Node,RBAC");
    }
    base.to_command(extra)
}

/// The controller manager; `external_ca` blanks the signing files so the CSR signer stays off
/// when only `ca.crt` is on the node (kubeadm's external-CA mode).
pub fn controller_manager(settings: &InitSettings, external_ca: bool) -> Vec<String> {
    let config = kubeconfig("controller-manager.conf");
    let ca = cert(settings, "ca.crt");
    let mut base = BaseArgs::new(&[
        ("bind-address", "127.0.0.1"),
        ("leader-elect", "true"),
        ("kubeconfig", &config),
        ("authentication-kubeconfig", &config),
        ("authorization-kubeconfig", &config),
        ("client-ca-file", &ca),
        (
            "requestheader-client-ca-file",
            &cert(settings, "front-proxy-ca.crt"),
        ),
        ("root-ca-file", &ca),
        (
            "service-account-private-key-file",
            &cert(settings, "sa.key"),
        ),
        ("cluster-signing-cert-file", &ca),
        ("cluster-signing-key-file", &cert(settings, "ca.key")),
        ("use-service-account-credentials", "true"),
        ("controllers", "*,bootstrapsigner,tokencleaner"),
    ]);
    if external_ca {
        base.set("cluster-signing-key-file", "");
        base.set("cluster-signing-cert-file", "");
    }
    if let Some(pod_subnet) = pod_subnet(settings) {
        base.set("allocate-node-cidrs", "true");
        base.set("cluster-cidr", pod_subnet);
        let services = service_subnet(settings);
        if !services.is_empty() {
            base.set("service-cluster-ip-range", services);
        }
    }
    if !settings.cluster_name.is_empty() {
        base.set("cluster-name", &settings.cluster_name);
    }
    let extra = settings
        .cluster
        .controller_manager
        .extra_args
        .as_deref()
        .unwrap_or(&[]);
    base.to_command(extra)
}

pub fn scheduler(settings: &InitSettings) -> Vec<String> {
    let config = kubeconfig("scheduler.conf");
    let base = BaseArgs::new(&[
        ("bind-address", "127.0.0.1"),
        ("leader-elect", "true"),
        ("kubeconfig", &config),
        ("authentication-kubeconfig", &config),
        ("authorization-kubeconfig", &config),
    ]);
    let extra = settings
        .cluster
        .scheduler
        .extra_args
        .as_deref()
        .unwrap_or(&[]);
    base.to_command(extra)
}

/// `networking.serviceSubnet` as configured (a comma list when dual-stack).
fn service_subnet(settings: &InitSettings) -> String {
    settings
        .cluster
        .networking
        .service_subnet
        .clone()
        .unwrap_or_default()
}

/// `networking.podSubnet` as configured, when set.
fn pod_subnet(settings: &InitSettings) -> Option<String> {
    settings
        .cluster
        .networking
        .pod_subnet
        .clone()
        .filter(|s| !s.is_empty())
}

/// The address kubeadm probes a component on, from its `bind-address`: an unspecified address
/// (`0.0.0.0`, `::`) gives no host, so the kubelet probes the pod IP.
pub fn probe_host_from_bind_address(extra: &[Arg]) -> Option<String> {
    match last_value(extra, "bind-address") {
        None => Some("127.0.0.1".to_string()),
        Some(addr) => probe_host(addr),
    }
}

/// A host for an HTTP probe: none for an unspecified address.
pub fn probe_host(addr: &str) -> Option<String> {
    match addr.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => None,
        _ if addr.is_empty() => None,
        _ => Some(addr.to_string()),
    }
}
