//! The container images a control-plane node needs, per kubeadm's naming and the pinned component table.

use crate::config::init::InitSettings;

/// kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, coredns, pause, etcd —
/// minus what the configuration disables (external etcd, `dns.disabled`, `proxy.disabled`).
pub fn required_images(s: &InitSettings) -> Vec<String> {
    let version = s.kubernetes_version.to_string();
    let mut images = vec![
        s.image("kube-apiserver", &version),
        s.image("kube-controller-manager", &version),
        s.image("kube-scheduler", &version),
    ];
    if s.cluster.proxy.disabled != Some(true) {
        images.push(s.image("kube-proxy", &version));
    }
    if s.cluster.dns.disabled != Some(true) {
        let repo = s
            .cluster
            .dns
            .image_repository
            .clone()
            .unwrap_or_else(|| format!("{}/coredns", s.image_repository));
        let tag = s
            .cluster
            .dns
            .image_tag
            .clone()
            .unwrap_or_else(|| s.components.coredns.to_string());
        images.push(format!("{repo}/coredns:{tag}"));
    }
    images.push(s.image("pause", s.components.pause));
    if !s.external_etcd {
        images.push(etcd_image(s));
    }
    images
}

/// The etcd image, honouring `etcd.local.imageRepository` and `imageTag`.
pub fn etcd_image(s: &InitSettings) -> String {
    let repo = s
        .cluster
        .etcd
        .local
        .as_ref()
        .and_then(|l| l.image_repository.clone())
        .unwrap_or_else(|| s.image_repository.clone());
    format!("{repo}/etcd:{}", s.etcd_image_tag)
}
