//! Network checks of the node itself: its name, its resolver, its advertise address (present, and
//! chosen knowingly among several), and the MTU of its interface.

use std::net::{IpAddr, ToSocketAddrs};

use super::super::Outcome;
use super::super::context::Probe;
use crate::config::validate::is_dns1123_subdomain;
use crate::host::facts::{InterfaceAddress, interface_addresses};

/// `Hostname`: the node name is a valid DNS-1123 subdomain (error) and resolves (warning).
pub fn hostname(probe: &Probe) -> anyhow::Result<Outcome> {
    let name = probe.node.node_name();
    if !is_dns1123_subdomain(name) {
        return Ok(Outcome::Fail(format!(
            "invalid node name format {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        )));
    }
    Ok(match (name, 0).to_socket_addrs() {
        Ok(addrs) => {
            let list: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            if list.is_empty() {
                Outcome::Warn(format!("hostname \"{name}\" could not be reached"))
            } else {
                Outcome::Pass(format!("{name} resolves to {}", list.join(", ")))
            }
        }
        Err(e) => Outcome::Warn(format!("hostname \"{name}\" could not be reached: {e}")),
    })
}

fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        // A scoped IPv6 server (fe80::1%eth0) keeps only the address.
        .filter_map(|addr| addr.split('%').next()?.parse().ok())
        .collect()
}

/// `ResolvConf`: the resolv.conf the kubelet hands to pods names no loopback server.
pub fn resolv_conf(probe: &Probe) -> anyhow::Result<Outcome> {
    // The host's resolver configuration: a host fact, not state under --root.
    let path = &probe.node.kubelet().resolv_conf;
    let Some(bytes) = probe.facts().read_host_file(path.canonical())? else {
        return Ok(Outcome::Warn(format!(
            "{path} does not exist: pods get no upstream DNS servers"
        )));
    };
    let servers = nameservers(&String::from_utf8_lossy(&bytes));
    if servers.is_empty() {
        return Ok(Outcome::Warn(format!(
            "{path} lists no nameserver: CoreDNS has nothing to forward to"
        )));
    }
    let loopback: Vec<String> = servers
        .iter()
        .filter(|ip| ip.is_loopback())
        .map(IpAddr::to_string)
        .collect();
    if loopback.is_empty() {
        let list: Vec<String> = servers.iter().map(IpAddr::to_string).collect();
        return Ok(Outcome::Pass(format!("{path} lists {}", list.join(", "))));
    }
    let resolved = "/run/systemd/resolve/resolv.conf";
    let hint = match probe.facts().read_host_file(resolved)? {
        Some(b)
            if nameservers(&String::from_utf8_lossy(&b))
                .iter()
                .any(|ip| !ip.is_loopback()) =>
        {
            format!("; {resolved} lists the real upstream servers")
        }
        _ => String::new(),
    };
    Ok(Outcome::Fail(format!(
        "{path} lists the loopback nameserver {}: CoreDNS would forward queries to its own pod and loop{hint}",
        loopback.join(", ")
    )))
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Interfaces made by container engines and pod networks, whose addresses are never advertised.
const CONTAINER_INTERFACE_PREFIXES: [&str; 14] = [
    "docker",
    "br-",
    "cni",
    "flannel",
    "cali",
    "tunl",
    "weave",
    "vxlan",
    "kube-ipvs",
    "veth",
    "virbr",
    "lxcbr",
    "lxdbr",
    "podman",
];

fn is_candidate(a: &InterfaceAddress) -> bool {
    !a.address.is_loopback()
        && !a.address.is_unspecified()
        && !is_link_local(&a.address)
        && !CONTAINER_INTERFACE_PREFIXES
            .iter()
            .any(|p| a.interface.starts_with(p))
        // and every device a pod-network addon's footprint names
        && crate::host::attribution::match_name(crate::host::attribution::link_rules(), &a.interface)
            .is_none_or(|owner| !owner.is_cluster())
}

/// `AdvertiseAddress`: the advertise address is assigned to an interface of this host.
pub fn advertise_address(probe: &Probe) -> anyhow::Result<Outcome> {
    let Some(ip) = probe.node.advertise_address() else {
        return Ok(Outcome::Skip("this node advertises no address".to_string()));
    };
    let addresses = interface_addresses()?;
    Ok(match addresses.iter().find(|a| a.address == ip) {
        Some(a) => Outcome::Pass(format!("{ip} is on {}", a.interface)),
        None => {
            let mine: Vec<String> = addresses
                .iter()
                .filter(|a| !a.address.is_loopback())
                .map(|a| format!("{} on {}", a.address, a.interface))
                .collect();
            let mine = if mine.is_empty() {
                "none but loopback".to_string()
            } else {
                mine.join(", ")
            };
            Outcome::Fail(format!(
                "the advertise address {ip} is not assigned to any interface of this host (it has {mine})"
            ))
        }
    })
}

/// `AdvertiseAddressChoice`: says which address is advertised and why, and warns when the host
/// has other candidates the user may have meant.
pub fn advertise_address_choice(probe: &Probe) -> anyhow::Result<Outcome> {
    let Some(ip) = probe.node.advertise_address() else {
        return Ok(Outcome::Skip("this node advertises no address".to_string()));
    };
    if !probe.node.advertise_address_detected {
        return Ok(Outcome::Pass(format!(
            "{ip} was given (--apiserver-advertise-address or localAPIEndpoint.advertiseAddress)"
        )));
    }
    let addresses = interface_addresses()?;
    let interface = addresses
        .iter()
        .find(|a| a.address == ip)
        .map(|a| a.interface.clone())
        .unwrap_or_else(|| "?".to_string());
    let others: Vec<String> = addresses
        .iter()
        .filter(|a| is_candidate(a) && a.address != ip)
        .map(|a| format!("{} on {}", a.address, a.interface))
        .collect();
    let chosen =
        format!("{ip} on {interface} is advertised because {interface} carries the default route");
    // VirtualBox/Vagrant NAT gives every VM this same address: other nodes cannot reach it.
    let nat = if ip == IpAddr::from([10, 0, 2, 15]) {
        "; 10.0.2.15 is the VirtualBox NAT address every such VM has, which other nodes cannot reach"
    } else {
        ""
    };
    Ok(if others.is_empty() && nat.is_empty() {
        Outcome::Pass(format!("{chosen}; it is the only candidate"))
    } else if others.is_empty() {
        Outcome::Warn(format!("{chosen}{nat}"))
    } else {
        Outcome::Warn(format!(
            "{chosen}; the host also has {}{nat}",
            others.join(", ")
        ))
    })
}

/// `InterfaceMTU`: the node's interface leaves pods at least `min_pod_mtu` after the pod network's encapsulation.
pub fn interface_mtu(probe: &Probe, min_pod_mtu: u32) -> anyhow::Result<Outcome> {
    let facts = probe.facts();
    let by_address = match probe.node.advertise_address() {
        Some(ip) => interface_addresses()?
            .into_iter()
            .find(|a| a.address == ip)
            .map(|a| a.interface),
        None => None,
    };
    let interface = match by_address {
        Some(i) => i,
        None => match facts.default_route_interface().ok().flatten() {
            Some(i) => i,
            None => {
                return Ok(Outcome::Skip(
                    "no interface holds the node address and there is no default route".to_string(),
                ));
            }
        },
    };
    let mtu: u32 = facts
        .read_sys(format!("class/net/{interface}/mtu"))?
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("cannot read the MTU of {interface}"))?;
    let (addon, cost) = match probe.node.pod_network().and_then(|p| p.addon()).map(|a| {
        let ipip = super::kernel::has_ipip(facts);
        (a.name, a.data.encapsulation_for(ipip).overhead)
    }) {
        Some(found) => found,
        None => {
            return Ok(Outcome::Pass(format!(
                "{interface} has MTU {mtu} (no pod-network encapsulation to account for)"
            )));
        }
    };
    let pod_mtu = mtu.saturating_sub(cost);
    Ok(if pod_mtu < min_pod_mtu {
        Outcome::Fail(format!(
            "{interface} has MTU {mtu}; {addon}'s encapsulation takes {cost} bytes, leaving pods {pod_mtu}, \
             below {min_pod_mtu} (the smallest MTU IPv6 allows)"
        ))
    } else {
        Outcome::Pass(format!(
            "{interface} has MTU {mtu}; pods get {pod_mtu} after {addon}'s {cost}-byte encapsulation"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MTU check's verdict for calico on a host whose default route is on `eth9` (MTU 1500), with
    /// `kernel_config` as its /proc/config.gz.
    fn calico_mtu_verdict(kernel_config: &str) -> String {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let (proc, sys) = (dir.path().join("proc"), dir.path().join("sys"));
        std::fs::create_dir_all(proc.join("net")).unwrap();
        std::fs::create_dir_all(sys.join("class/net/eth9")).unwrap();
        std::fs::write(
            proc.join("net/route"),
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
             eth9\t00000000\t0108A8C0\t0003\t0\t0\t0\t00000000\n",
        )
        .unwrap();
        std::fs::write(sys.join("class/net/eth9/mtu"), "1500\n").unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(proc.join("config.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(kernel_config.as_bytes()).unwrap();
        gz.finish().unwrap();
        let host = crate::host::Host::new(
            crate::host::Root::new(dir.path().join("root")),
            crate::host::Facts::with_roots(&proc, &sys),
            false,
            crate::output::Ui::default(),
        );
        let mut model = crate::model::testing::control_plane_model("");
        model.cluster.pod_network.addon =
            crate::config::flags::PodNetwork::named("calico").unwrap();
        let input = crate::preflight::PreflightInput::for_init(&model, false, &[], false);
        let env = crate::preflight::context::Environment::with(Vec::new(), &[]);
        format!(
            "{:?}",
            interface_mtu(&Probe::new(&host, &input, &env), 1280).unwrap()
        )
    }

    #[test]
    fn calico_is_sized_by_the_encapsulation_it_renders() {
        let with_ipip = calico_mtu_verdict("CONFIG_NET_IPIP=y\nCONFIG_VXLAN=y\n");
        assert!(
            with_ipip.contains("pods get 1480 after calico's 20-byte"),
            "{with_ipip}"
        );
        let without = calico_mtu_verdict("# CONFIG_NET_IPIP is not set\nCONFIG_VXLAN=y\n");
        assert!(
            without.contains("pods get 1450 after calico's 50-byte"),
            "{without}"
        );
    }

    #[test]
    fn nameserver_lines() {
        let text = "# comment\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nsearch x\nnameserver bogus\n";
        assert_eq!(
            nameservers(text),
            vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn container_bridges_are_not_candidates() {
        let a = |i: &str, ip: &str| InterfaceAddress {
            interface: i.to_string(),
            address: ip.parse().unwrap(),
            prefix_len: 24,
        };
        assert!(is_candidate(&a("eth1", "10.0.0.5")));
        assert!(!is_candidate(&a("docker0", "172.17.0.1")));
        assert!(!is_candidate(&a("cni0", "10.244.0.1")));
        // weave's `datapath` device, known from its folder's footprint
        assert!(!is_candidate(&a("datapath", "10.32.0.1")));
        assert!(!is_candidate(&a("eth0", "169.254.1.1")));
        assert!(!is_candidate(&a("lo", "127.0.0.1")));
    }
}
