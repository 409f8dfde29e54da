//! What the model publishes in the cluster for other nodes and tools: kubeadm's ClusterConfiguration
//! (`kube-system/kubeadm-config`) and the cluster-wide KubeletConfiguration (`kube-system/kubelet-config`),
//! both rendered from the [`ClusterSpec`] alone.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::cluster::{ClusterSpec, EtcdSpec};
use crate::config::types::{
    ApiServer, ClusterConfiguration, ControlPlaneComponent, Dns, Etcd, ExternalEtcd, LocalEtcd,
    Networking, Proxy,
};
use crate::host::well_known::MANIFESTS_DIR;

/// The kubeadm-config ConfigMap's name and data key.
pub const KUBEADM_CONFIG: &str = "kubeadm-config";
pub const KUBEADM_CONFIG_KEY: &str = "ClusterConfiguration";
/// The kubelet-config ConfigMap's name and data key.
pub const KUBELET_CONFIG: &str = "kubelet-config";
pub const KUBELET_CONFIG_KEY: &str = "kubelet";
/// Set on kubelet-config when kubestrap generated its content (no user KubeletConfiguration), so an
/// upgrade can tell a user's edit from its own defaults, as kubeadm's annotation does.
pub const COMPONENT_CONFIG_HASH: &str = "kubeadm.kubernetes.io/component-config.hash";

fn some_vec<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    (!items.is_empty()).then(|| items.to_vec())
}

/// The cluster's `kubeadm.k8s.io/v1beta4` ClusterConfiguration. Values equal to what the defaults
/// would give again (the etcd and CoreDNS images of the Kubernetes version) are left out, as kubeadm
/// leaves out what the user did not set, so an upgrade moves them with the version.
pub fn cluster_configuration(cluster: &ClusterSpec) -> ClusterConfiguration {
    let table = cluster.kubernetes_version.components();
    let etcd = match &cluster.etcd {
        EtcdSpec::Local(local) => Etcd {
            local: Some(LocalEtcd {
                image_repository: (local.image.repository != cluster.image_repository)
                    .then(|| local.image.repository.clone()),
                image_tag: (Some(local.image.tag.as_str()) != table.map(|t| t.etcd))
                    .then(|| local.image.tag.clone()),
                data_dir: Some(local.data_dir.display_str()),
                extra_args: some_vec(&local.extra_args),
                extra_envs: some_vec(&local.extra_envs),
                server_cert_sans: some_vec(&local.server_cert_sans),
                peer_cert_sans: some_vec(&local.peer_cert_sans),
            }),
            external: None,
        },
        EtcdSpec::External(external) => {
            let file = |f: &Option<crate::host::NodePath>| {
                f.as_ref().map(|p| p.display_str()).unwrap_or_default()
            };
            Etcd {
                local: None,
                external: Some(ExternalEtcd {
                    endpoints: external.endpoints.clone(),
                    ca_file: file(&external.ca_file),
                    cert_file: file(&external.cert_file),
                    key_file: file(&external.key_file),
                }),
            }
        }
    };
    let default_dns_repository = format!("{}/coredns", cluster.image_repository);
    let component = |c: &super::ComponentSpec| ControlPlaneComponent {
        extra_args: some_vec(&c.extra_args),
        extra_volumes: some_vec(&c.extra_volumes),
        extra_envs: some_vec(&c.extra_envs),
    };
    let net = &cluster.networking;
    ClusterConfiguration {
        api_version: Some(crate::config::types::API_VERSION.to_string()),
        kind: Some("ClusterConfiguration".to_string()),
        etcd,
        networking: Networking {
            service_subnet: Some(net.service_subnets.to_string()),
            pod_subnet: (!net.pod_subnets.is_empty()).then(|| net.pod_subnets.to_string()),
            dns_domain: Some(net.dns_domain.clone()),
        },
        kubernetes_version: Some(cluster.kubernetes_version.to_string()),
        control_plane_endpoint: cluster
            .control_plane_endpoint
            .as_ref()
            .map(|e| e.to_string()),
        api_server: ApiServer {
            extra_args: some_vec(&cluster.api_server.extra_args),
            extra_volumes: some_vec(&cluster.api_server.extra_volumes),
            extra_envs: some_vec(&cluster.api_server.extra_envs),
            cert_sans: some_vec(&cluster.api_server.cert_sans),
        },
        controller_manager: component(&cluster.controller_manager),
        scheduler: component(&cluster.scheduler),
        dns: Dns {
            image_repository: (cluster.dns.image.repository != default_dns_repository)
                .then(|| cluster.dns.image.repository.clone()),
            image_tag: (Some(cluster.dns.image.tag.as_str()) != table.map(|t| t.coredns))
                .then(|| cluster.dns.image.tag.clone()),
            disabled: cluster.dns.disabled.then_some(true),
        },
        proxy: Proxy {
            disabled: cluster.proxy.disabled.then_some(true),
        },
        certificates_dir: Some(cluster.certificates.dir.display_str()),
        image_repository: Some(cluster.image_repository.clone()),
        feature_gates: (!cluster.feature_gates.is_empty()).then(|| cluster.feature_gates.clone()),
        cluster_name: Some(cluster.cluster_name.clone()),
        encryption_algorithm: Some(cluster.certificates.encryption_algorithm.to_string()),
        certificate_validity_period: Some(cluster.certificates.validity_period),
        ca_certificate_validity_period: Some(cluster.certificates.ca_validity_period),
    }
}

/// kubeadm-config's `ClusterConfiguration` text (keys sorted, as kubeadm writes it).
pub fn cluster_configuration_text(cluster: &ClusterSpec) -> anyhow::Result<String> {
    crate::yaml::to_string(&cluster_configuration(cluster))
}

/// The KubeletConfiguration every node of the cluster starts from: kubeadm's defaults (webhook
/// authentication and authorization, the cluster CA, cluster DNS on the 10th service address, the
/// health endpoint, certificate rotation, the static-pod directory, the cgroup driver) under the
/// user's KubeletConfiguration document, whose fields win.
pub fn kubelet_configuration(cluster: &ClusterSpec) -> Value {
    let dns: Vec<String> = cluster
        .networking
        .dns_service_ips()
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut doc = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": cluster.certificates.dir.join("ca.crt").display_str()},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": cluster.kubelet.cgroup_driver,
        "clusterDNS": dns,
        "clusterDomain": cluster.networking.dns_domain,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "rotateCertificates": true,
        "staticPodPath": MANIFESTS_DIR,
    });
    if let Some(user) = &cluster.kubelet.configuration {
        overlay(&mut doc, user);
    }
    doc
}

/// The kubelet-config text and, when kubestrap generated it, the `sha256:<hex>` hash of it.
pub fn kubelet_configuration_text(
    cluster: &ClusterSpec,
) -> anyhow::Result<(String, Option<String>)> {
    let text = crate::yaml::to_string(&kubelet_configuration(cluster))?;
    let hash = cluster
        .kubelet
        .configuration
        .is_none()
        .then(|| format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes()))));
    Ok((text, hash))
}

/// `overlay`'s fields over `base`, objects merged key by key, anything else replaced.
pub fn overlay(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => overlay(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::resolve::{ClusterChoices, ClusterDocuments};
    use crate::model::testing::control_plane_model;

    /// What a joining node resolves from kubeadm-config (and the kubestrap ConfigMap) is the
    /// cluster init had.
    fn round_trips(extra: &str) {
        let model = control_plane_model(extra);
        let text = cluster_configuration_text(&model.cluster).unwrap();
        let file = crate::config::load::parse(&text).unwrap();
        let choices = ClusterChoices {
            pod_network: model.cluster.pod_network.addon,
            discovery_port: model.cluster.discovery.port,
        };
        let docs = ClusterDocuments {
            cluster: file.cluster.unwrap(),
            kubelet: model.cluster.kubelet.configuration.clone(),
            kube_proxy: model.cluster.proxy.configuration.clone(),
        };
        let (mut notices, mut errors) = (Vec::new(), Vec::new());
        let back =
            crate::model::resolve::cluster_spec(docs, choices, 6443, &mut notices, &mut errors);
        assert!(errors.is_empty(), "{errors:?}\n{text}");
        assert_eq!(back.as_ref(), Some(&model.cluster), "{text}");
    }

    #[test]
    fn defaults_round_trip_and_read_like_kubeadms() {
        round_trips("");
        let text = cluster_configuration_text(&control_plane_model("").cluster).unwrap();
        for line in [
            "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\n",
            "caCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrollerManager: {}\n",
            "dns: {}\nencryptionAlgorithm: ECDSA-P256\netcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.3\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\nproxy: {}\nscheduler: {}\n",
        ] {
            assert!(text.contains(line), "{line}\nnot in\n{text}");
        }
    }

    #[test]
    fn every_setting_round_trips() {
        round_trips(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: prod\n\
             controlPlaneEndpoint: lb.example:7443\nimageRepository: reg.example:5000/k8s\n\
             etcd:\n  local:\n    imageTag: 3.5.24-0\n    dataDir: /data/etcd\n    serverCertSANs: [etcd.example]\n    extraArgs: [{name: quota-backend-bytes, value: \"8589934592\"}]\n\
             dns:\n  imageRepository: other.example/dns\n  imageTag: v1.12.0\n\
             proxy: {disabled: true}\n\
             apiServer:\n  certSANs: [api.example, 10.0.0.9]\n  extraArgs: [{name: audit-log-maxage, value: \"3\"}]\n\
             controllerManager:\n  extraArgs: [{name: node-cidr-mask-size-ipv4, value: \"25\"}]\n\
             networking: {serviceSubnet: \"10.96.0.0/16,fd00:10:96::/112\", podSubnet: \"10.200.0.0/16,fd00:10:200::/56\", dnsDomain: corp.local}\n\
             featureGates: {ControlPlaneKubeletLocalMode: true}\n\
             certificateValidityPeriod: 720h0m0s\n",
        );
        round_trips(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
             etcd:\n  external:\n    endpoints: [https://10.0.0.5:2379]\n    caFile: /etc/etcd/ca.crt\n    certFile: /etc/etcd/c.crt\n    keyFile: /etc/etcd/c.key\n",
        );
    }

    #[test]
    fn kubelet_configuration_is_kubeadms_with_the_users_fields_winning() {
        let model = control_plane_model("");
        let (text, hash) = kubelet_configuration_text(&model.cluster).unwrap();
        assert_eq!(
            text,
            "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: true\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\nauthorization:\n  mode: Webhook\ncgroupDriver: systemd\nclusterDNS:\n- \"10.96.0.10\"\nclusterDomain: cluster.local\nhealthzBindAddress: \"127.0.0.1\"\nhealthzPort: 10248\nkind: KubeletConfiguration\nrotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\n"
        );
        assert!(hash.unwrap().starts_with("sha256:"));
        let user = control_plane_model(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: cgroupfs\nauthentication:\n  webhook:\n    cacheTTL: 1m0s\nmaxPods: 50\n",
        );
        let (doc, hash) = (
            kubelet_configuration(&user.cluster),
            kubelet_configuration_text(&user.cluster).unwrap().1,
        );
        assert_eq!(hash, None);
        assert_eq!(doc["cgroupDriver"], "cgroupfs");
        assert_eq!(doc["maxPods"], 50);
        assert_eq!(
            doc["authentication"]["webhook"],
            json!({"enabled": true, "cacheTTL": "1m0s"})
        );
        assert_eq!(doc["clusterDNS"], json!(["10.96.0.10"]));
    }
}
