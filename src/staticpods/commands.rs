//! The arguments of the four control-plane binaries.
//!
//! Paths written here are canonical node paths (`--root` never appears inside a manifest).

use std::net::IpAddr;

use super::args::{BaseArgs, last_value};
use crate::config::types::Arg;
use crate::host::well_known::KUBERNETES_DIR;
use crate::model::{
    ControlPlane, ETCD_CLIENT_PORT, ETCD_METRICS_PORT, ETCD_PEER_PORT, LocalEtcdSpec,
    join_host_port,
};

/// `https://<ip>:<port>` with IPv6 in brackets.
pub fn https_url(ip: &str, port: u16) -> String {
    format!("https://{}", join_host_port(ip, port))
}

fn advertise(cp: &ControlPlane) -> String {
    cp.advertise_address().to_string()
}

fn cert(cp: &ControlPlane, file: &str) -> String {
    cp.cert_dir().join(file).display_str()
}

fn kubeconfig(file: &str) -> String {
    format!("{KUBERNETES_DIR}/{file}")
}

/// `etcd.local.extraArgs` (empty for external etcd).
pub fn etcd_extra_args<'a>(cp: &ControlPlane<'a>) -> &'a [Arg] {
    cp.cluster
        .etcd
        .local()
        .map(|l| l.extra_args.as_slice())
        .unwrap_or(&[])
}

/// etcd's flags for a first (single) member, in the form the etcd version in use accepts:
/// 3.6 replaced `--experimental-initial-corrupt-check` and `--experimental-watch-progress-notify-interval`.
pub fn etcd(cp: &ControlPlane, etcd: &LocalEtcdSpec) -> Vec<String> {
    let ip = advertise(cp);
    let local = cp.loopback();
    let client_url = https_url(&ip, ETCD_CLIENT_PORT);
    let peer_url = https_url(&ip, ETCD_PEER_PORT);
    let mut base = BaseArgs::new(&[
        ("name", &cp.node.name),
        (
            "listen-client-urls",
            &format!("{},{client_url}", https_url(local, ETCD_CLIENT_PORT)),
        ),
        ("advertise-client-urls", &client_url),
        ("listen-peer-urls", &peer_url),
        ("initial-advertise-peer-urls", &peer_url),
        ("data-dir", &etcd.data_dir.display_str()),
        ("cert-file", &cert(cp, "etcd/server.crt")),
        ("key-file", &cert(cp, "etcd/server.key")),
        ("trusted-ca-file", &cert(cp, "etcd/ca.crt")),
        ("client-cert-auth", "true"),
        ("peer-cert-file", &cert(cp, "etcd/peer.crt")),
        ("peer-key-file", &cert(cp, "etcd/peer.key")),
        ("peer-trusted-ca-file", &cert(cp, "etcd/ca.crt")),
        ("peer-client-cert-auth", "true"),
        ("snapshot-count", "10000"),
        (
            "listen-metrics-urls",
            &format!("http://{}", join_host_port(local, ETCD_METRICS_PORT)),
        ),
    ]);
    if etcd.version.has_v36_flags() {
        base.set("feature-gates", "InitialCorruptCheck=true");
        base.set("watch-progress-notify-interval", "5s");
    } else {
        base.set("experimental-initial-corrupt-check", "true");
        base.set("experimental-watch-progress-notify-interval", "5s");
    }
    base.set("initial-cluster", format!("{}={peer_url}", cp.node.name));
    base.to_command(&etcd.extra_args)
}

pub fn apiserver(cp: &ControlPlane) -> Vec<String> {
    let extra = &cp.cluster.api_server.extra_args;
    let services = cp.cluster.networking.service_subnets.to_string();
    let mut base = BaseArgs::new(&[
        ("advertise-address", &advertise(cp)),
        ("enable-admission-plugins", "NodeRestriction"),
        ("service-cluster-ip-range", &services),
        ("service-account-key-file", &cert(cp, "sa.pub")),
        ("service-account-signing-key-file", &cert(cp, "sa.key")),
        (
            "service-account-issuer",
            &format!(
                "https://kubernetes.default.svc.{}",
                cp.cluster.networking.dns_domain
            ),
        ),
        ("client-ca-file", &cert(cp, "ca.crt")),
        ("tls-cert-file", &cert(cp, "apiserver.crt")),
        ("tls-private-key-file", &cert(cp, "apiserver.key")),
        (
            "kubelet-client-certificate",
            &cert(cp, "apiserver-kubelet-client.crt"),
        ),
        (
            "kubelet-client-key",
            &cert(cp, "apiserver-kubelet-client.key"),
        ),
        ("enable-bootstrap-token-auth", "true"),
        ("secure-port", &cp.api.bind_port.to_string()),
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
            &cert(cp, "front-proxy-ca.crt"),
        ),
        ("requestheader-allowed-names", "front-proxy-client"),
        (
            "proxy-client-cert-file",
            &cert(cp, "front-proxy-client.crt"),
        ),
        ("proxy-client-key-file", &cert(cp, "front-proxy-client.key")),
    ]);
    match cp.cluster.etcd.external() {
        Some(external) => {
            base.set("etcd-servers", external.endpoints.join(","));
            if let Some(ca) = &external.ca_file {
                base.set("etcd-cafile", ca.display_str());
            }
            if let (Some(cert), Some(key)) = (&external.cert_file, &external.key_file) {
                base.set("etcd-certfile", cert.display_str());
                base.set("etcd-keyfile", key.display_str());
            }
        }
        None => {
            let servers = last_value(etcd_extra_args(cp), "advertise-client-urls")
                .map(str::to_string)
                .unwrap_or_else(|| https_url(cp.loopback(), ETCD_CLIENT_PORT));
            base.set("etcd-servers", servers);
            base.set("etcd-cafile", cert(cp, "etcd/ca.crt"));
            base.set("etcd-certfile", cert(cp, "apiserver-etcd-client.crt"));
            base.set("etcd-keyfile", cert(cp, "apiserver-etcd-client.key"));
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
pub fn controller_manager(cp: &ControlPlane, external_ca: bool) -> Vec<String> {
    let config = kubeconfig("controller-manager.conf");
    let ca = cert(cp, "ca.crt");
    let networking = &cp.cluster.networking;
    let mut base = BaseArgs::new(&[
        ("bind-address", "127.0.0.1"),
        ("leader-elect", "true"),
        ("kubeconfig", &config),
        ("authentication-kubeconfig", &config),
        ("authorization-kubeconfig", &config),
        ("client-ca-file", &ca),
        (
            "requestheader-client-ca-file",
            &cert(cp, "front-proxy-ca.crt"),
        ),
        ("root-ca-file", &ca),
        ("service-account-private-key-file", &cert(cp, "sa.key")),
        ("cluster-signing-cert-file", &ca),
        ("cluster-signing-key-file", &cert(cp, "ca.key")),
        ("use-service-account-credentials", "true"),
        ("controllers", "*,bootstrapsigner,tokencleaner"),
    ]);
    if external_ca {
        base.set("cluster-signing-key-file", "");
        base.set("cluster-signing-cert-file", "");
    }
    if !networking.pod_subnets.is_empty() {
        base.set("allocate-node-cidrs", "true");
        base.set("cluster-cidr", networking.pod_subnets.to_string());
        if !networking.service_subnets.is_empty() {
            base.set(
                "service-cluster-ip-range",
                networking.service_subnets.to_string(),
            );
        }
    }
    if !cp.cluster.cluster_name.is_empty() {
        base.set("cluster-name", &cp.cluster.cluster_name);
    }
    base.to_command(&cp.cluster.controller_manager.extra_args)
}

pub fn scheduler(cp: &ControlPlane) -> Vec<String> {
    let config = kubeconfig("scheduler.conf");
    let base = BaseArgs::new(&[
        ("bind-address", "127.0.0.1"),
        ("leader-elect", "true"),
        ("kubeconfig", &config),
        ("authentication-kubeconfig", &config),
        ("authorization-kubeconfig", &config),
    ]);
    base.to_command(&cp.cluster.scheduler.extra_args)
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
