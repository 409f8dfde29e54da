//! IPVS virtual servers inside the service CIDR (kube-proxy's IPVS mode) and conntrack entries for the
//! service CIDR. Where the kernel has no IPVS (no /proc/net/ip_vs) there is nothing to scan or remove.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::attribution::ClusterScope;
use super::command;
use super::facts::Facts;
use super::inventory::{Addon, Found, Kind, Outcome, Owner};

/// One virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub address: IpAddr,
    pub port: u16,
}

impl VirtualServer {
    /// `<proto> <vip>:<port>` as in the report.
    pub fn target(&self) -> String {
        match self.address {
            IpAddr::V4(a) => format!("{} {a}:{}", self.protocol, self.port),
            IpAddr::V6(a) => format!("{} [{a}]:{}", self.protocol, self.port),
        }
    }
}

fn parse_hex_address(text: &str) -> Option<(IpAddr, u16)> {
    if let Some(v6) = text.strip_prefix('[') {
        let (addr, port) = v6.split_once("]:")?;
        let ip: Ipv6Addr = addr.parse().ok()?;
        return Some((IpAddr::V6(ip), u16::from_str_radix(port, 16).ok()?));
    }
    let (addr, port) = text.split_once(':')?;
    let ip = Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?);
    Some((IpAddr::V4(ip), u16::from_str_radix(port, 16).ok()?))
}

/// Parses /proc/net/ip_vs (virtual services only; `FWM` services are skipped).
pub fn parse_proc(text: &str) -> Vec<VirtualServer> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let protocol = fields.next()?;
            if !matches!(protocol, "TCP" | "UDP" | "SCTP") {
                return None;
            }
            let (address, port) = parse_hex_address(fields.next()?)?;
            Some(VirtualServer {
                protocol: protocol.to_lowercase(),
                address,
                port,
            })
        })
        .collect()
}

/// The virtual servers, or `None` when this kernel has no IPVS.
pub fn scan(facts: &Facts) -> Option<Vec<VirtualServer>> {
    facts.read_proc("net/ip_vs").ok().map(|t| parse_proc(&t))
}

pub fn attribute(vs: &VirtualServer, scope: &ClusterScope) -> Found {
    let owner = if scope.in_service_cidr(&vs.address) {
        Owner::Addon(Addon::KUBE_PROXY)
    } else {
        Owner::Foreign("the user (IPVS outside the service CIDR)")
    };
    Found::new(Kind::IpvsService, vs.target(), owner)
}

pub fn remove(vs: &VirtualServer, found: &Found) -> Outcome {
    if !found.owner.is_cluster() {
        return found.kept_foreign();
    }
    let flag = match vs.protocol.as_str() {
        "udp" => "-u",
        "sctp" => "--sctp-service",
        _ => "-t",
    };
    let service = match vs.address {
        IpAddr::V4(a) => format!("{a}:{}", vs.port),
        IpAddr::V6(a) => format!("[{a}]:{}", vs.port),
    };
    match command::run("ipvsadm", &["-D", flag, &service], None) {
        Ok(out) if out.success => found.removed(),
        Ok(out) => found.left(format!("ipvsadm -D failed: {}", out.complaint()), false),
        Err(e) => found.left(e.to_string(), false),
    }
}

/// Deletes the conntrack entries whose original destination is inside `cidr`; returns how many went.
/// `None` when the conntrack tool is not installed.
pub fn flush_conntrack(cidr: &IpNet) -> anyhow::Result<Option<u64>> {
    if !command::available("conntrack") {
        return Ok(None);
    }
    let (family, addr, mask) = match cidr {
        IpNet::V4(n) => ("ipv4", n.network().to_string(), n.netmask().to_string()),
        IpNet::V6(n) => ("ipv6", n.network().to_string(), n.netmask().to_string()),
    };
    let out = command::run(
        "conntrack",
        &["-D", "-f", family, "--orig-dst", &addr, "--mask-dst", &mask],
        None,
    )?;
    // conntrack says "N flow entries have been deleted." on stderr, and exits 1 when N is 0.
    let count = out
        .stderr
        .lines()
        .find_map(|l| {
            let (_, tail) = l.split_once("): ")?;
            tail.split_whitespace().next()?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    if !out.success && count != 0 {
        anyhow::bail!("conntrack -D failed: {}", out.complaint());
    }
    Ok(Some(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_ip_vs_and_attributes_by_service_cidr() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\nTCP  0A60000A:0035 rr\n  -> 0AF40002:0035      Masq    1      0          0\nUDP  C0A80101:0035 rr\nTCP  [fd00:0000:0000:0000:0000:0000:0000:0001]:01BB rr\n";
        let vs = parse_proc(text);
        assert_eq!(vs.len(), 3);
        assert_eq!(vs[0].target(), "tcp 10.96.0.10:53");
        assert_eq!(vs[2].target(), "tcp [fd00::1]:443");
        let mut scope = ClusterScope::default();
        scope.add_service_cidr("10.96.0.0/12".parse().unwrap());
        assert!(attribute(&vs[0], &scope).owner.is_cluster());
        assert!(!attribute(&vs[1], &scope).owner.is_cluster());
    }
}
