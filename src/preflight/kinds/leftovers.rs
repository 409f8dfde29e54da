//! What an earlier cluster or another pod network left on the node (devices, ipsets, CNI files and
//! IPAM state), host routes that overlap the cluster's ranges, and iptables rules split across
//! backends. Scanning and attribution are the host subsystems' (the same rules reset removes by), so
//! preflight and reset never disagree.

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde::Deserialize;

use super::super::Outcome;
use super::super::context::Probe;
use super::summarize;
use crate::host::attribution::ClusterScope;
use crate::host::inventory::Owner;
use crate::host::netfilter::{self, Backend};
use crate::host::{cni, command, ipsets, links, routes};
use crate::net::cidr;

/// Which of the cluster's ranges a check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterRange {
    Pod,
    Service,
}

fn default_route_device(probe: &Probe) -> Option<String> {
    probe.facts().default_route_interface().ok().flatten()
}

/// `CNILinks`: no device of Kubernetes or a pod network exists (cni0 outside the pod range named as such).
pub fn cni_links(probe: &Probe) -> anyhow::Result<Outcome> {
    let all = links::scan()?;
    let default_dev = default_route_device(probe);
    let pods = &probe.node.pod_subnets();
    let mut foreign = Vec::new();
    let mut ours = Vec::new();
    for (link, found) in links::attribute(&all, default_dev.as_deref()) {
        if !found.owner.is_cluster() {
            continue;
        }
        // With the ipip module loaded the kernel gives every namespace an idle tunl0; calico's has an address.
        if link.name == "tunl0" && link.addresses.is_empty() {
            continue;
        }
        let addresses: Vec<String> = link.addresses.iter().map(IpNet::to_string).collect();
        let outside_pod_range = !pods.is_empty()
            && !link.addresses.is_empty()
            && link
                .addresses
                .iter()
                .any(|a| !pods.iter().any(|p| cidr::overlaps(p, &a.trunc())));
        let described = if addresses.is_empty() {
            format!("{} ({})", link.name, found.owner)
        } else {
            format!("{} {} ({})", link.name, addresses.join(" "), found.owner)
        };
        if link.name == "cni0" && !outside_pod_range {
            ours.push(described);
        } else {
            foreign.push(described);
        }
    }
    Ok(if !foreign.is_empty() {
        let range = if pods.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = pods.iter().map(IpNet::to_string).collect();
            format!(" (the pod range is {})", list.join(", "))
        };
        Outcome::Fail(format!(
            "network devices of a pod network or an earlier cluster exist: {}{range}",
            foreign.join(", ")
        ))
    } else if !ours.is_empty() {
        Outcome::Warn(format!(
            "{} is left by an earlier cluster with this pod range; flannel fails if this node's pod range changes",
            ours.join(", ")
        ))
    } else {
        Outcome::Pass("no pod-network devices".to_string())
    })
}

/// `CNIIpsets`: no ipset of kube-proxy or a pod network exists.
pub fn cni_ipsets(_probe: &Probe) -> anyhow::Result<Outcome> {
    let sets = ipsets::scan()?;
    let leftovers: Vec<String> = sets
        .iter()
        .map(|set| (set, ipsets::attribute(set)))
        .filter(|(_, found)| found.owner.is_cluster())
        .map(|(set, found)| {
            format!(
                "{} ({}, {} reference{})",
                set.name,
                found.owner,
                set.references,
                if set.references == 1 { "" } else { "s" }
            )
        })
        .collect();
    Ok(if leftovers.is_empty() {
        Outcome::Pass(format!("{} ipsets, none a cluster's", sets.len()))
    } else {
        Outcome::Fail(format!(
            "ipsets of kube-proxy or a pod network exist: {}",
            summarize(&leftovers, 8)
        ))
    })
}

/// `CNIConfig`: /etc/cni/net.d holds no pod network's configuration (others are named).
pub fn cni_config(probe: &Probe) -> anyhow::Result<Outcome> {
    let state = cni::scan(probe.host.root());
    let scope = ClusterScope::with_addon_networks();
    let mut addon = Vec::new();
    let mut other = Vec::new();
    for conf in &state.conf_files {
        let name = conf.path.file_name().unwrap_or_default().to_string();
        match &conf.network {
            Some(network) => match scope.cni_network_owner(network) {
                owner @ Owner::Addon(_) => {
                    addon.push(format!("{name} (network {network}, {owner})"))
                }
                _ => other.push(format!("{name} (network {network})")),
            },
            None => other.push(name),
        }
    }
    Ok(if !addon.is_empty() {
        Outcome::Fail(format!(
            "/etc/cni/net.d holds a pod network's configuration: {}",
            addon.join(", ")
        ))
    } else if !other.is_empty() {
        Outcome::Warn(format!(
            "/etc/cni/net.d holds {}; the runtime uses the first configuration by name, so until the pod network \
             writes its own, pods would join that network",
            other.join(", ")
        ))
    } else {
        Outcome::Pass("/etc/cni/net.d is empty".to_string())
    })
}

/// `CNIState`: /var/lib/cni holds no IPAM reservations or cached results of a pod network.
pub fn cni_state(probe: &Probe) -> anyhow::Result<Outcome> {
    let root = probe.host.root();
    let state = cni::scan(root);
    let scope = ClusterScope::with_addon_networks();
    let reservations: Vec<String> = state
        .reservations
        .iter()
        .map(|r| cni::attribute_reservation(r, &scope))
        .filter(|f| f.owner.is_cluster())
        .map(|f| f.target)
        .collect();
    let networks: BTreeSet<String> = state
        .conf_files
        .iter()
        .filter_map(|c| c.network.clone())
        .chain(state.ipam_networks.iter().cloned())
        .collect();
    let cached = state
        .cached
        .iter()
        .map(|p| cni::attribute_cached(root, p, &scope, &networks))
        .filter(|f| f.owner.is_cluster())
        .count();
    Ok(if reservations.is_empty() && cached == 0 {
        Outcome::Pass("no pod network's IPAM state in /var/lib/cni".to_string())
    } else {
        let mut parts = Vec::new();
        if !reservations.is_empty() {
            parts.push(format!(
                "IP reservations in /var/lib/cni/networks: {}",
                summarize(&reservations, 6)
            ));
        }
        if cached > 0 {
            parts.push(format!("{cached} cached results in /var/lib/cni"));
        }
        Outcome::Fail(format!(
            "a pod network left state: {} (a full /24 of stale reservations ends in 'no IP addresses available')",
            parts.join("; ")
        ))
    })
}

/// Whether `route` (to `dst`) conflicts with the cluster range `net`: it overlaps it and is not an
/// `unreachable`/`blackhole` route covering all of it (admins and some pod networks add such a
/// route on purpose so that traffic no pod route handles fails at once; the more specific routes of
/// the pod network still win).
pub fn route_conflicts(route_type: &str, dst: &IpNet, net: &IpNet) -> bool {
    let sink = matches!(route_type, "unreachable" | "blackhole");
    cidr::overlaps(net, dst) && !(sink && dst.contains(net))
}

/// `PodSubnetRoutes` / `ServiceSubnetRoutes`: no host route overlaps the range (routes a cluster made
/// are leftovers, reported by the CNI checks; the default route overlaps everything and is ignored;
/// an unreachable or blackhole route covering the whole range is accepted, see `route_conflicts`).
pub fn route_overlap(probe: &Probe, range: ClusterRange) -> anyhow::Result<Outcome> {
    let (what, nets) = match range {
        ClusterRange::Pod => ("pod", probe.node.pod_subnets()),
        ClusterRange::Service => ("service", probe.node.service_subnets()),
    };
    if nets.is_empty() {
        return Ok(Outcome::Skip(format!(
            "no {what} range is known (it is the cluster's, known after discovery, or there is none)"
        )));
    }
    let default_devs: Vec<String> = default_route_device(probe).into_iter().collect();
    let attributed = links::attribute(&links::scan()?, default_devs.first().map(String::as_str));
    let cluster_links: BTreeSet<String> = attributed
        .iter()
        .filter(|(_, f)| f.owner.is_cluster())
        .map(|(l, _)| l.name.clone())
        .collect();
    let mut scope = ClusterScope::with_addon_networks();
    for net in probe.node.pod_subnets() {
        scope.add_pod_cidr(*net);
    }
    for net in probe.node.service_subnets() {
        scope.add_service_cidr(*net);
    }
    let mut conflicts = Vec::new();
    for route in routes::scan()? {
        if route.dst == "default" {
            continue;
        }
        let Some(dst) = route
            .dst
            .parse::<IpNet>()
            .ok()
            .or_else(|| route.dst.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        else {
            continue;
        };
        if routes::attribute(&route, &scope, &cluster_links, &default_devs)
            .owner
            .is_cluster()
        {
            continue;
        }
        for net in nets
            .iter()
            .filter(|n| route_conflicts(&route.route_type, &dst, n))
        {
            conflicts.push(format!("'{}' overlaps {net}", route.line));
        }
    }
    let list: Vec<String> = nets.iter().map(IpNet::to_string).collect();
    Ok(if conflicts.is_empty() {
        Outcome::Pass(format!(
            "no host route overlaps the {what} range {}",
            list.join(", ")
        ))
    } else {
        Outcome::Fail(format!(
            "host routes overlap the {what} range: {}",
            conflicts.join("; ")
        ))
    })
}

/// The backend the host's `iptables` command uses (`iptables v1.8.9 (nf_tables)` or `(legacy)`).
fn host_iptables_backend() -> Option<Backend> {
    let version = command::run_ok("iptables", &["--version"]).ok()?;
    if version.contains("nf_tables") {
        Some(Backend::Nft)
    } else if version.contains("legacy") {
        Some(Backend::Legacy)
    } else {
        None
    }
}

/// `IptablesBackends`: rules live in one iptables backend only (both apply; tools show one).
pub fn iptables_backends(probe: &Probe) -> anyhow::Result<Outcome> {
    let tables = netfilter::scan(probe.facts())?;
    let in_use = |backend: Backend| -> Vec<String> {
        tables
            .iter()
            .filter(|t| t.flavor.backend == backend)
            .filter(|t| !t.rules.is_empty() || t.chains.iter().any(|c| !c.builtin))
            .map(|t| format!("{}/{} ({} rules)", t.flavor.label(), t.name, t.rules.len()))
            .collect()
    };
    let legacy = in_use(Backend::Legacy);
    let nft = in_use(Backend::Nft);
    if legacy.is_empty() || nft.is_empty() {
        return Ok(Outcome::Pass(
            "iptables rules live in one backend only".to_string(),
        ));
    }
    let shown = match host_iptables_backend() {
        Some(Backend::Nft) => "; the host's iptables command shows only the nf_tables ones",
        Some(Backend::Legacy) => "; the host's iptables command shows only the legacy ones",
        None => "",
    };
    Ok(Outcome::Fail(format!(
        "iptables rules exist in both backends, and all of them apply: legacy {} and nf_tables {}{shown}",
        legacy.join(", "),
        nft.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_sink_route_covering_the_whole_range_is_no_conflict() {
        let pods = net("10.244.0.0/16");
        // An unreachable or blackhole route over all of the range is accepted…
        for kind in ["unreachable", "blackhole"] {
            assert!(!route_conflicts(kind, &net("10.244.0.0/16"), &pods));
            assert!(!route_conflicts(kind, &net("10.0.0.0/8"), &pods));
        }
        assert!(!route_conflicts(
            "unreachable",
            &net("fd00:10:244::/48"),
            &net("fd00:10:244::/56")
        ));
        // …but one over part of it, or any other kind of route, still overlaps.
        assert!(route_conflicts("unreachable", &net("10.244.1.0/24"), &pods));
        assert!(route_conflicts("blackhole", &net("10.244.0.0/17"), &pods));
        assert!(route_conflicts("unicast", &net("10.0.0.0/8"), &pods));
        assert!(route_conflicts("prohibit", &net("10.0.0.0/8"), &pods));
        assert!(!route_conflicts("unicast", &net("192.168.0.0/16"), &pods));
    }
}
