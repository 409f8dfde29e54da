//! `init phase certs`: the cluster PKI (kubeadm-behaviour.md §2).

use super::InitData;
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    let names = [
        ("ca", "Generate the self-signed Kubernetes CA"),
        ("apiserver", "Generate the API server serving certificate"),
        (
            "apiserver-kubelet-client",
            "Generate the certificate the API server uses to reach kubelets",
        ),
        (
            "front-proxy-ca",
            "Generate the self-signed CA for the front proxy",
        ),
        (
            "front-proxy-client",
            "Generate the front-proxy client certificate",
        ),
        ("etcd-ca", "Generate the self-signed etcd CA"),
        ("etcd-server", "Generate the etcd serving certificate"),
        ("etcd-peer", "Generate the etcd peer certificate"),
        (
            "etcd-healthcheck-client",
            "Generate the certificate for etcd health checks",
        ),
        (
            "apiserver-etcd-client",
            "Generate the certificate the API server uses to reach etcd",
        ),
        ("sa", "Generate the service-account signing key pair"),
    ];
    let _ = names;
    Phase::group("certs", "Certificate generation", None, Vec::new())
}
