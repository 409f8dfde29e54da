//! Finding the cluster's scope on a node before anything is deleted: our CNI networks (the addons' and
//! those of CNI configs kubestrap wrote), pod CIDRs and service CIDRs. The ranges come from the node
//! record (`cluster.yaml`); on a node without one (made by kubeadm or by hand) they are read from the
//! static-pod manifests instead. Flannel's subnet.env and our CNI configs add what the addons use;
//! without any source the service CIDR is kubeadm's 10.96.0.0/12.

use std::collections::BTreeSet;
use std::fmt;

use ipnet::IpNet;

use crate::config::defaults::DEFAULT_SERVICE_SUBNET;
use crate::host::attribution::ClusterScope;
use crate::host::cni;
use crate::host::{Host, NodePath, well_known};
use crate::model::Model;

/// Where the cluster's ranges were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeSource {
    /// The node record kubestrap wrote at init.
    Record,
    /// The static-pod manifests' flags (a kubeadm-made node).
    Manifests,
}

impl fmt::Display for ScopeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeSource::Record => write!(f, "the node record {}", crate::model::record::path()),
            ScopeSource::Manifests => write!(
                f,
                "the static-pod manifests in {}",
                well_known::MANIFESTS_DIR
            ),
        }
    }
}

/// Values of `--flag=a,b` in a manifest or env file.
pub fn flag_values(text: &str, flag: &str) -> Vec<String> {
    let needle = format!("{flag}=");
    text.match_indices(&needle)
        .flat_map(|(at, _)| {
            let rest = &text[at + needle.len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                .unwrap_or(rest.len());
            rest[..end]
                .split(',')
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

fn nets(values: Vec<String>) -> impl Iterator<Item = IpNet> {
    values.into_iter().filter_map(|v| v.parse().ok())
}

/// Every `"subnet"` value in a CNI config (host-local ranges).
fn cni_subnets(value: &serde_json::Value, out: &mut Vec<IpNet>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                if key == "subnet"
                    && let Some(net) = v.as_str().and_then(|s| s.parse().ok())
                {
                    out.push(net);
                }
                cni_subnets(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| cni_subnets(v, out)),
        _ => {}
    }
}

/// The cluster's scope: from the record when there is one, else from the manifests.
pub fn discover(
    host: &Host,
    record: Option<&Model>,
    journal_files: &BTreeSet<NodePath>,
) -> (ClusterScope, ScopeSource) {
    let mut scope = ClusterScope::with_addon_networks();
    let read = |p: &NodePath| host.read_string(p).unwrap_or_default();
    let source = match record {
        Some(model) => {
            let networking = &model.cluster.networking;
            for net in &networking.pod_subnets {
                scope.add_pod_cidr(*net);
            }
            for net in &networking.service_subnets {
                scope.add_service_cidr(*net);
            }
            ScopeSource::Record
        }
        None => {
            let manifests = NodePath::new(well_known::MANIFESTS_DIR);
            let cm = read(&manifests.join("kube-controller-manager.yaml"));
            let api = read(&manifests.join("kube-apiserver.yaml"));
            for net in nets(flag_values(&cm, "--cluster-cidr")) {
                scope.add_pod_cidr(net);
            }
            for net in nets(flag_values(&api, "--service-cluster-ip-range"))
                .chain(nets(flag_values(&cm, "--service-cluster-ip-range")))
            {
                scope.add_service_cidr(net);
            }
            ScopeSource::Manifests
        }
    };
    // The pod ranges the addons recorded (`cidr-files` of each folder's footprint).
    for addon in crate::podnet::all() {
        for file in &addon.data.footprint.cidr_files {
            let text = read(&NodePath::new(&file.path));
            for net in nets(flag_values(&text, &file.key)) {
                scope.add_pod_cidr(net);
            }
        }
    }
    if scope.service_cidrs.is_empty()
        && let Ok(net) = DEFAULT_SERVICE_SUBNET.parse()
    {
        scope.add_service_cidr(net);
    }
    let state = cni::scan(host.root());
    for conf in &state.conf_files {
        let Some(network) = &conf.network else {
            continue;
        };
        let ours =
            journal_files.contains(&conf.path) || scope.cni_network_owner(network).is_cluster();
        if !ours {
            continue;
        }
        scope.cni_networks.insert(network.clone());
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&read(&conf.path)) {
            let mut subnets = Vec::new();
            cni_subnets(&value, &mut subnets);
            for net in subnets {
                scope.add_pod_cidr(net.trunc());
            }
        }
    }
    (scope, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Facts, Root};
    use crate::output::Ui;

    #[test]
    fn finds_networks_and_ranges_from_manifests_and_cni_configs() {
        assert_eq!(
            flag_values(
                "- --cluster-cidr=10.244.0.0/16,fd00::/56\n",
                "--cluster-cidr"
            ),
            vec!["10.244.0.0/16", "fd00::/56"]
        );
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let write = |p: &str, t: &str| {
            let d = root.disk(&NodePath::new(p));
            std::fs::create_dir_all(d.parent().unwrap()).unwrap();
            std::fs::write(d, t).unwrap();
        };
        write(
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "    - --service-cluster-ip-range=10.100.0.0/16\n",
        );
        write(
            "/run/flannel/subnet.env",
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.0.1/24\n",
        );
        write(
            "/etc/cni/net.d/10-mine.conflist",
            r#"{"name":"mynet","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.250.1.0/24"}]]}}]}"#,
        );
        write(
            "/etc/cni/net.d/87-podman.conflist",
            r#"{"name":"podman","plugins":[{"ipam":{"ranges":[[{"subnet":"10.88.0.0/16"}]]}}]}"#,
        );
        let host = Host::new(root, Facts::default(), false, Ui::default());
        let journal: BTreeSet<NodePath> = [NodePath::new("/etc/cni/net.d/10-mine.conflist")].into();
        let (scope, source) = discover(&host, None, &journal);
        assert_eq!(source, ScopeSource::Manifests);
        assert!(scope.cni_networks.contains("mynet"));
        assert!(scope.cni_networks.contains("cbr0"));
        assert!(!scope.cni_networks.contains("podman"));
        assert_eq!(
            scope.service_cidrs,
            vec!["10.100.0.0/16".parse::<IpNet>().unwrap()]
        );
        assert!(scope.pod_cidrs.contains(&"10.244.0.0/16".parse().unwrap()));
        assert!(scope.pod_cidrs.contains(&"10.250.1.0/24".parse().unwrap()));
        assert!(!scope.pod_cidrs.contains(&"10.88.0.0/16".parse().unwrap()));
    }

    #[test]
    fn the_record_wins_over_the_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let manifest = root.disk(&NodePath::new(
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
        ));
        std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
        std::fs::write(
            &manifest,
            "    - --service-cluster-ip-range=10.100.0.0/16\n",
        )
        .unwrap();
        let host = Host::new(root, Facts::default(), false, Ui::default());
        let model = crate::model::testing::control_plane_model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  serviceSubnet: 10.112.0.0/12,fd00:10:96::/112\n  podSubnet: 10.32.0.0/12,fd00:10:32::/56\n",
        );
        let (scope, source) = discover(&host, Some(&model), &BTreeSet::new());
        assert_eq!(source, ScopeSource::Record);
        let text = |nets: &[IpNet]| nets.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            text(&scope.service_cidrs),
            ["10.112.0.0/12", "fd00:10:96::/112"]
        );
        assert_eq!(text(&scope.pod_cidrs), ["10.32.0.0/12", "fd00:10:32::/56"]);
    }
}
