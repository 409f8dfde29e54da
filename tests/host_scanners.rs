//! The host subsystems' scan + attribute halves against real kernel state in a private network namespace.

mod common;

use std::collections::BTreeSet;

use kubestrap::host::attribution::ClusterScope;
use kubestrap::host::facts::Facts;
use kubestrap::host::inventory::{Addon, Owner};
use kubestrap::host::{ipsets, links, netfilter, routes};

#[test]
fn scanners_attribute_a_seeded_node() {
    if !common::enter_sandbox("scanners_attribute_a_seeded_node") {
        return;
    }
    common::require(&["ip", "iptables-nft-save", "iptables-legacy", "nft", "ipset"]);
    common::sh(
        "ip link add cni0 type bridge; ip addr add 10.244.0.1/24 dev cni0; ip link set cni0 up
         ip link add vethpod1 type veth peer name eth0pod1; ip link set vethpod1 master cni0
         ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning dev lo
         ip tuntap add tunl0 mode tun; ip tuntap add kube-ipvs0 mode tap
         ip link add docker0 type bridge; ip link add dummyuser type bridge; ip link set dummyuser up
         ip addr add 192.0.2.2/24 dev dummyuser; ip route add default via 192.0.2.1 dev dummyuser
         ip route add blackhole 10.244.3.0/26 proto bird
         ip route add 198.51.100.0/24 via 192.0.2.1
         ipset create KUBE-CLUSTER-IP hash:ip; ipset create felix-calico-hosts-4 hash:ip; ipset create user-blocklist hash:ip
         iptables -t nat -N KUBE-SERVICES
         iptables -t nat -A PREROUTING -m comment --comment 'kubernetes service portals' -j KUBE-SERVICES
         iptables -N USER-FW; iptables -A INPUT -m set --match-set KUBE-CLUSTER-IP dst -j USER-FW
         ip6tables -N cali-INPUT; ip6tables -A INPUT -j cali-INPUT
         iptables-legacy -t nat -N FLANNEL-POSTRTG
         nft add table ip kube-proxy; nft add table inet userfw",
    );
    let facts = Facts::from_env();

    let all_links = links::scan().unwrap();
    let attributed = links::attribute(&all_links, Some("dummyuser"));
    let owner = |name: &str| {
        attributed
            .iter()
            .find(|(l, _)| l.name == name)
            .map(|(_, f)| f.owner)
    };
    assert_eq!(owner("cni0"), Some(Owner::Addon(Addon("flannel"))));
    assert_eq!(owner("vethpod1"), Some(Owner::Addon(Addon("flannel"))));
    assert_eq!(owner("flannel.1"), Some(Owner::Addon(Addon("flannel"))));
    assert_eq!(owner("tunl0"), Some(Owner::Addon(Addon("calico"))));
    assert_eq!(owner("kube-ipvs0"), Some(Owner::Addon(Addon::KUBE_PROXY)));
    assert!(!owner("docker0").unwrap().is_cluster());
    assert!(!owner("dummyuser").unwrap().is_cluster());
    let cni0 = all_links.iter().find(|l| l.name == "cni0").unwrap();
    assert!(cni0.addresses.contains(&"10.244.0.1/24".parse().unwrap()));
    assert_eq!(cni0.kind, "bridge");

    let mut scope = ClusterScope::with_addon_networks();
    scope.add_pod_cidr("10.244.0.0/16".parse().unwrap());
    let cluster_links: BTreeSet<String> = attributed
        .iter()
        .filter(|(_, f)| f.owner.is_cluster())
        .map(|(l, _)| l.name.clone())
        .collect();
    let rs = routes::scan().unwrap();
    let owned_routes: Vec<String> = rs
        .iter()
        .map(|r| routes::attribute(r, &scope, &cluster_links, &["dummyuser".into()]))
        .filter(|f| f.owner.is_cluster())
        .map(|f| f.target)
        .collect();
    assert!(
        owned_routes
            .iter()
            .any(|r| r.starts_with("blackhole 10.244.3.0/26 proto bird")),
        "{owned_routes:?}"
    );
    assert!(
        owned_routes
            .iter()
            .any(|r| r.starts_with("10.244.0.0/24 dev cni0")),
        "{owned_routes:?}"
    );
    assert!(
        !owned_routes
            .iter()
            .any(|r| r.starts_with("default") || r.contains("198.51.100.0"))
    );

    let sets = ipsets::scan().unwrap();
    let set = |n: &str| sets.iter().find(|s| s.name == n).unwrap();
    assert_eq!(set("KUBE-CLUSTER-IP").references, 1);
    assert!(
        ipsets::attribute(set("felix-calico-hosts-4"))
            .owner
            .is_cluster()
    );
    assert!(!ipsets::attribute(set("user-blocklist")).owner.is_cluster());

    let tables = netfilter::scan(&facts).unwrap();
    let mut owned_chains = Vec::new();
    let mut foreign_chains = Vec::new();
    for t in &tables {
        let plan = netfilter::attribute(t, &scope);
        owned_chains.extend(
            plan.chains
                .keys()
                .map(|c| format!("{}/{}/{c}", t.flavor.label(), t.name)),
        );
        foreign_chains.extend(
            plan.foreign_chains
                .iter()
                .map(|c| format!("{}/{}/{c}", t.flavor.label(), t.name)),
        );
    }
    assert!(
        owned_chains.contains(&"ipv4/nft/nat/KUBE-SERVICES".to_string()),
        "{owned_chains:?}"
    );
    assert!(
        owned_chains.contains(&"ipv6/nft/filter/cali-INPUT".to_string()),
        "{owned_chains:?}"
    );
    assert!(
        owned_chains.contains(&"ipv4/legacy/nat/FLANNEL-POSTRTG".to_string()),
        "{owned_chains:?}"
    );
    assert!(foreign_chains.contains(&"ipv4/nft/filter/USER-FW".to_string()));

    let nft: Vec<(String, bool)> = netfilter::scan_nft()
        .unwrap()
        .iter()
        .map(|t| {
            let f = netfilter::attribute_nft(t);
            (f.target, f.owner.is_cluster())
        })
        .collect();
    assert!(
        nft.contains(&("ip kube-proxy".to_string(), true)),
        "{nft:?}"
    );
    assert!(nft.contains(&("inet userfw".to_string(), false)), "{nft:?}");
    assert!(nft.contains(&("ip nat".to_string(), false)), "{nft:?}");
}
