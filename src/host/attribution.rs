//! Attribution rules as data: which names (devices, chains, ipsets, nft tables, CNI networks) belong to
//! Kubernetes or a supported addon — the pod-network addons' from their folders' footprints
//! (`addons/<name>/addon.yaml`) — and the cluster's scope (pod/service CIDRs, CNI networks) on this node.

use std::collections::BTreeSet;

use ipnet::IpNet;

use std::sync::LazyLock;

use super::inventory::{Addon, Owner};
use crate::podnet::{self, Footprint, Names};

/// How a rule matches a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Exact(&'static str),
    Prefix(&'static str),
}

impl Pattern {
    pub fn matches(self, name: &str) -> bool {
        match self {
            Pattern::Exact(e) => name == e,
            Pattern::Prefix(p) => name.starts_with(p),
        }
    }

    fn specificity(self) -> usize {
        match self {
            Pattern::Exact(e) => usize::MAX - (64 - e.len().min(64)),
            Pattern::Prefix(p) => p.len(),
        }
    }
}

/// One name rule: names matching `pattern` are made by `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRule {
    pub pattern: Pattern,
    pub owner: Owner,
}

const fn exact(name: &'static str, owner: Owner) -> NameRule {
    NameRule {
        pattern: Pattern::Exact(name),
        owner,
    }
}

const fn prefix(p: &'static str, owner: Owner) -> NameRule {
    NameRule {
        pattern: Pattern::Prefix(p),
        owner,
    }
}

const K8S: Owner = Owner::Kubernetes;
const KUBE_PROXY: Owner = Owner::Addon(Addon::KUBE_PROXY);
const KUBE_ROUTER: Owner = Owner::Addon(Addon::KUBE_ROUTER);
const DOCKER: Owner = Owner::Foreign("Docker");
const PODMAN: Owner = Owner::Foreign("podman");

/// Network devices of Kubernetes and the non-pod-network addons, and known foreign ones. Pod veths
/// are attributed through the bridge they are enslaved to.
const BASE_LINK_RULES: &[NameRule] = &[
    exact("kube-ipvs0", KUBE_PROXY),
    exact("kube-bridge", KUBE_ROUTER),
    exact("kube-dummy-if", KUBE_ROUTER),
    exact("nodelocaldns", K8S),
    // known foreign devices, named so the report says whose they are
    exact("docker0", DOCKER),
    prefix("br-", DOCKER),
    prefix("cni-podman", PODMAN),
    exact("podman0", PODMAN),
];

/// iptables chains (legacy and nft, v4 and v6). `CNI-` chains are attributed by their rules' comments instead.
const BASE_CHAIN_RULES: &[NameRule] = &[
    prefix("KUBE-ROUTER-", KUBE_ROUTER),
    prefix("KUBE-", K8S),
    prefix("DOCKER", DOCKER),
    prefix("NETAVARK", PODMAN),
];

/// Rule comments that name their maker (for rules in built-in or foreign chains).
const BASE_COMMENT_RULES: &[NameRule] = &[
    prefix("kubernetes ", K8S),
    prefix("kube-router ", KUBE_ROUTER),
];

const BASE_IPSET_RULES: &[NameRule] = &[prefix("kube-router-", KUBE_ROUTER), prefix("KUBE-", K8S)];

/// nft tables (by name, any family). iptables-nft's own tables (filter, nat, …) are never listed here.
const BASE_NFT_TABLE_RULES: &[NameRule] = &[
    exact("kube-proxy", KUBE_PROXY),
    prefix("kube-router", KUBE_ROUTER),
];

const BASE_CNI_NETWORK_RULES: &[NameRule] = &[exact("podman", PODMAN)];

/// The base rules plus, for each pod-network addon, the names its footprint lists.
fn with_footprints(
    base: &[NameRule],
    names: impl Fn(&'static Footprint) -> Vec<(bool, &'static str)>,
) -> Vec<NameRule> {
    let mut rules = base.to_vec();
    for addon in podnet::all() {
        let owner = Owner::Addon(Addon(addon.name));
        for (is_prefix, name) in names(&addon.data.footprint) {
            rules.push(if is_prefix {
                prefix(name, owner)
            } else {
                exact(name, owner)
            });
        }
    }
    rules
}

fn names(n: &'static Names) -> Vec<(bool, &'static str)> {
    n.exact
        .iter()
        .map(|e| (false, e.as_str()))
        .chain(n.prefix.iter().map(|p| (true, p.as_str())))
        .collect()
}

static LINK_RULES: LazyLock<Vec<NameRule>> =
    LazyLock::new(|| with_footprints(BASE_LINK_RULES, |f| names(&f.devices)));
static CHAIN_RULES: LazyLock<Vec<NameRule>> =
    LazyLock::new(|| with_footprints(BASE_CHAIN_RULES, |f| names(&f.chains)));
static COMMENT_RULES: LazyLock<Vec<NameRule>> =
    LazyLock::new(|| with_footprints(BASE_COMMENT_RULES, |f| names(&f.rule_comments)));
static IPSET_RULES: LazyLock<Vec<NameRule>> =
    LazyLock::new(|| with_footprints(BASE_IPSET_RULES, |f| names(&f.ipsets)));
static NFT_TABLE_RULES: LazyLock<Vec<NameRule>> =
    LazyLock::new(|| with_footprints(BASE_NFT_TABLE_RULES, |f| names(&f.nft_tables)));
static CNI_NETWORK_RULES: LazyLock<Vec<NameRule>> = LazyLock::new(|| {
    with_footprints(BASE_CNI_NETWORK_RULES, |f| {
        vec![(false, f.cni_network.as_str())]
    })
});

/// Network devices: Kubernetes', the addons' footprints (`devices`), known foreign ones.
pub fn link_rules() -> &'static [NameRule] {
    &LINK_RULES
}

/// iptables chains: `KUBE-`, the addons' footprints (`chains`), known foreign ones.
pub fn chain_rules() -> &'static [NameRule] {
    &CHAIN_RULES
}

/// Rule comments naming their maker (the addons' `rule-comments`).
pub fn comment_rules() -> &'static [NameRule] {
    &COMMENT_RULES
}

/// ipsets (the addons' `ipsets`).
pub fn ipset_rules() -> &'static [NameRule] {
    &IPSET_RULES
}

/// nft tables (the addons' `nft-tables`).
pub fn nft_table_rules() -> &'static [NameRule] {
    &NFT_TABLE_RULES
}

/// CNI network names (the addons' `cni-network`).
pub fn cni_network_rules() -> &'static [NameRule] {
    &CNI_NETWORK_RULES
}

/// The addon whose footprint lists the routing protocol (`route-protocols`, e.g. calico's `bird`).
pub fn route_protocol_owner(proto: &str) -> Option<Owner> {
    podnet::all()
        .iter()
        .find(|a| a.data.footprint.route_protocols.iter().any(|p| p == proto))
        .map(|a| Owner::Addon(Addon(a.name)))
}

/// The most specific rule matching `name`.
pub fn match_name(rules: &[NameRule], name: &str) -> Option<Owner> {
    rules
        .iter()
        .filter(|r| r.pattern.matches(name))
        .max_by_key(|r| r.pattern.specificity())
        .map(|r| r.owner)
}

/// Owner of a name under `rules`, defaulting to "the user or the OS".
pub fn owner_of(rules: &[NameRule], name: &str) -> Owner {
    match_name(rules, name).unwrap_or(Owner::Foreign("the user or the OS"))
}

/// What the node's cluster covers: its CNI networks and address ranges, gathered from the journal,
/// the manifests and the addons' state files (see `scope` in the reset phases).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterScope {
    /// CNI network names whose state (IPAM, results, `CNI-` rules) is ours.
    pub cni_networks: BTreeSet<String>,
    pub pod_cidrs: Vec<IpNet>,
    pub service_cidrs: Vec<IpNet>,
}

impl ClusterScope {
    /// A scope with the supported addons' CNI networks.
    pub fn with_addon_networks() -> Self {
        let cni_networks = cni_network_rules()
            .iter()
            .filter(|r| r.owner.is_cluster())
            .filter_map(|r| match r.pattern {
                Pattern::Exact(n) => Some(n.to_string()),
                Pattern::Prefix(_) => None,
            })
            .collect();
        ClusterScope {
            cni_networks,
            ..Default::default()
        }
    }

    /// Owner of a CNI network by its name.
    pub fn cni_network_owner(&self, name: &str) -> Owner {
        match match_name(cni_network_rules(), name) {
            Some(owner) => owner,
            None if self.cni_networks.contains(name) => Owner::Kubestrap,
            None => Owner::Foreign("another CNI user"),
        }
    }

    pub fn add_pod_cidr(&mut self, net: IpNet) {
        if !self.pod_cidrs.contains(&net) {
            self.pod_cidrs.push(net);
        }
    }

    pub fn add_service_cidr(&mut self, net: IpNet) {
        if !self.service_cidrs.contains(&net) {
            self.service_cidrs.push(net);
        }
    }

    pub fn in_pod_cidr(&self, net: &IpNet) -> bool {
        self.pod_cidrs.iter().any(|p| p.contains(net))
    }

    pub fn in_service_cidr(&self, ip: &std::net::IpAddr) -> bool {
        self.service_cidrs.iter().any(|s| s.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLANNEL: Owner = Owner::Addon(Addon("flannel"));
    const CALICO: Owner = Owner::Addon(Addon("calico"));
    const WEAVE: Owner = Owner::Addon(Addon("weave"));

    #[test]
    fn most_specific_rule_wins() {
        assert_eq!(owner_of(chain_rules(), "KUBE-ROUTER-INPUT"), KUBE_ROUTER);
        assert_eq!(owner_of(chain_rules(), "KUBE-SERVICES"), K8S);
        assert_eq!(
            owner_of(chain_rules(), "CNI-abc"),
            Owner::Foreign("the user or the OS")
        );
        assert_eq!(owner_of(link_rules(), "flannel.1"), FLANNEL);
        assert_eq!(owner_of(link_rules(), "cali12ab"), CALICO);
        assert_eq!(owner_of(link_rules(), "vethwe-bridge"), WEAVE);
        assert_eq!(owner_of(link_rules(), "docker0"), DOCKER);
        assert_eq!(
            owner_of(link_rules(), "eth0"),
            Owner::Foreign("the user or the OS")
        );
        assert_eq!(owner_of(ipset_rules(), "felix-calico-hosts-4"), CALICO);
        assert_eq!(
            owner_of(ipset_rules(), "kube-router-pod-subnets"),
            KUBE_ROUTER
        );
        assert!(!owner_of(ipset_rules(), "user-blocklist").is_cluster());
        assert_eq!(owner_of(nft_table_rules(), "kube-proxy"), KUBE_PROXY);
        assert!(!owner_of(nft_table_rules(), "kube-proxy-not").is_cluster());
    }

    #[test]
    fn cni_networks_by_name_not_by_prefix() {
        let mut scope = ClusterScope::with_addon_networks();
        assert!(scope.cni_networks.contains("cbr0"));
        assert!(!scope.cni_networks.contains("podman"));
        assert_eq!(scope.cni_network_owner("k8s-pod-network"), CALICO);
        assert_eq!(scope.cni_network_owner("podman"), PODMAN);
        assert!(!scope.cni_network_owner("mynet").is_cluster());
        scope.cni_networks.insert("mynet".into());
        assert_eq!(scope.cni_network_owner("mynet"), Owner::Kubestrap);
    }
}
