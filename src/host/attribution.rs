//! Attribution rules as data: which names (devices, chains, ipsets, nft tables, CNI networks) belong to
//! Kubernetes or a supported addon, and the cluster's scope (pod/service CIDRs, CNI networks) on this node.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::inventory::{Addon, Owner};

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
const FLANNEL: Owner = Owner::Addon(Addon::Flannel);
const CALICO: Owner = Owner::Addon(Addon::Calico);
const WEAVE: Owner = Owner::Addon(Addon::Weave);
const KUBE_PROXY: Owner = Owner::Addon(Addon::KubeProxy);
const KUBE_ROUTER: Owner = Owner::Addon(Addon::KubeRouter);
const DOCKER: Owner = Owner::Foreign("Docker");
const PODMAN: Owner = Owner::Foreign("podman");

/// Network devices. Pod veths are attributed through the bridge they are enslaved to.
pub const LINK_RULES: &[NameRule] = &[
    exact("cni0", FLANNEL),
    prefix("flannel.", FLANNEL),
    prefix("flannel-v6.", FLANNEL),
    prefix("flannel-wg", FLANNEL),
    exact("vxlan.calico", CALICO),
    exact("vxlan-v6.calico", CALICO),
    exact("tunl0", CALICO),
    prefix("cali", CALICO),
    exact("weave", WEAVE),
    exact("datapath", WEAVE),
    prefix("vethwe", WEAVE),
    exact("vxlan-6784", WEAVE),
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
pub const CHAIN_RULES: &[NameRule] = &[
    prefix("KUBE-ROUTER-", KUBE_ROUTER),
    prefix("KUBE-", K8S),
    prefix("FLANNEL", FLANNEL),
    prefix("cali-", CALICO),
    prefix("WEAVE", WEAVE),
    prefix("DOCKER", DOCKER),
    prefix("NETAVARK", PODMAN),
];

/// Rule comments that name their maker (for rules in built-in or foreign chains).
pub const COMMENT_RULES: &[NameRule] = &[
    prefix("cali:", CALICO),
    prefix("flanneld masq", FLANNEL),
    prefix("kubernetes ", K8S),
    prefix("kube-router ", KUBE_ROUTER),
];

/// ipsets.
pub const IPSET_RULES: &[NameRule] = &[
    prefix("kube-router-", KUBE_ROUTER),
    prefix("KUBE-", K8S),
    prefix("felix-", CALICO),
    prefix("cali40", CALICO),
    prefix("cali60", CALICO),
    prefix("weave-", WEAVE),
];

/// nft tables (by name, any family). iptables-nft's own tables (filter, nat, …) are never listed here.
pub const NFT_TABLE_RULES: &[NameRule] = &[
    exact("kube-proxy", KUBE_PROXY),
    prefix("kube-router", KUBE_ROUTER),
    prefix("calico", CALICO),
    prefix("flannel", FLANNEL),
    prefix("weave", WEAVE),
];

/// CNI network names of the supported addons.
pub const CNI_NETWORK_RULES: &[NameRule] = &[
    exact("cbr0", FLANNEL),
    exact("k8s-pod-network", CALICO),
    exact("weave", WEAVE),
    exact("podman", PODMAN),
];

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
        let cni_networks = CNI_NETWORK_RULES
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
        match match_name(CNI_NETWORK_RULES, name) {
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

    #[test]
    fn most_specific_rule_wins() {
        assert_eq!(owner_of(CHAIN_RULES, "KUBE-ROUTER-INPUT"), KUBE_ROUTER);
        assert_eq!(owner_of(CHAIN_RULES, "KUBE-SERVICES"), K8S);
        assert_eq!(
            owner_of(CHAIN_RULES, "CNI-abc"),
            Owner::Foreign("the user or the OS")
        );
        assert_eq!(owner_of(LINK_RULES, "flannel.1"), FLANNEL);
        assert_eq!(owner_of(LINK_RULES, "cali12ab"), CALICO);
        assert_eq!(owner_of(LINK_RULES, "vethwe-bridge"), WEAVE);
        assert_eq!(owner_of(LINK_RULES, "docker0"), DOCKER);
        assert_eq!(
            owner_of(LINK_RULES, "eth0"),
            Owner::Foreign("the user or the OS")
        );
        assert_eq!(owner_of(IPSET_RULES, "felix-calico-hosts-4"), CALICO);
        assert_eq!(
            owner_of(IPSET_RULES, "kube-router-pod-subnets"),
            KUBE_ROUTER
        );
        assert!(!owner_of(IPSET_RULES, "user-blocklist").is_cluster());
        assert_eq!(owner_of(NFT_TABLE_RULES, "kube-proxy"), KUBE_PROXY);
        assert!(!owner_of(NFT_TABLE_RULES, "kube-proxy-not").is_cluster());
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
