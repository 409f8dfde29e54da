//! CIDR parsing and arithmetic: lists of subnets (dual-stack), nth host addresses, overlap and sizes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses one CIDR in network form (no host bits set), e.g. `10.96.0.0/12` or `fd00:10:96::/112`.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text
        .trim()
        .parse()
        .map_err(|_| "not a valid CIDR (expected address/prefix, e.g. 10.96.0.0/12)".to_string())?;
    if net.trunc() != net {
        return Err(format!("host bits are set; the network is {}", net.trunc()));
    }
    Ok(net)
}

/// Parses a comma-separated list: one subnet, or two of different families (dual-stack). Spaces are
/// refused, as kubeadm's parser refuses them: `10.244.0.0/16, fd00::/56` is not a list of two subnets.
pub fn parse_cidr_list(text: &str) -> Result<Vec<IpNet>, String> {
    if text.chars().any(char::is_whitespace) {
        return Err(
            "a subnet list is comma-separated without spaces (e.g. 10.244.0.0/16,fd00:10:244::/56)"
                .to_string(),
        );
    }
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() > 2 {
        return Err("at most two subnets (one IPv4 and one IPv6) may be given".to_string());
    }
    // In a list, name the entry at fault; a single value is already named by the message's value.
    let nets = parts
        .iter()
        .map(|p| {
            parse_cidr(p).map_err(|e| {
                if parts.len() > 1 {
                    format!("{p:?}: {e}")
                } else {
                    e
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let [a, b] = nets.as_slice()
        && is_ipv4(a) == is_ipv4(b)
    {
        return Err("a dual-stack list needs one IPv4 and one IPv6 subnet".to_string());
    }
    Ok(nets)
}

/// A parsed list of subnets (empty, one, or one per family): written as `a,b` wherever a component
/// takes a list (`--cluster-cidr`, `--service-cluster-ip-range`), and as a YAML/JSON list of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CidrList(Vec<IpNet>);

impl CidrList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        CidrList(nets)
    }

    /// Parses `a` or `a,b` (see [`parse_cidr_list`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_cidr_list(text).map(CidrList)
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `n`th address of each subnet that has one (1: the API VIPs; 10: the DNS addresses).
    pub fn nth_addresses(&self, n: u128) -> Vec<IpAddr> {
        self.0
            .iter()
            .filter_map(|net| nth_address(net, n))
            .collect()
    }
}

impl fmt::Display for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a CidrList {
    type Item = &'a IpNet;
    type IntoIter = std::slice::Iter<'a, IpNet>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for CidrList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for CidrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        if texts.len() > 2 {
            return Err(serde::de::Error::custom(
                "at most two subnets (one IPv4 and one IPv6) may be given",
            ));
        }
        texts
            .iter()
            .map(|t| parse_cidr(t).map_err(|e| serde::de::Error::custom(format!("{t:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()
            .map(CidrList)
    }
}

pub fn is_ipv4(net: &IpNet) -> bool {
    matches!(net, IpNet::V4(_))
}

/// The `n`th address after the network address (n = 1 is the first host: the API server VIP;
/// n = 10 is the cluster DNS address). `None` when the subnet is too small.
pub fn nth_address(net: &IpNet, n: u128) -> Option<IpAddr> {
    if n >= address_count(net) {
        return None;
    }
    match net {
        IpNet::V4(v4) => {
            let base = u32::from(v4.network()) as u128;
            Some(IpAddr::V4(Ipv4Addr::from(u32::try_from(base + n).ok()?)))
        }
        IpNet::V6(v6) => {
            let base = u128::from(v6.network());
            Some(IpAddr::V6(Ipv6Addr::from(base.checked_add(n)?)))
        }
    }
}

/// Number of addresses in the subnet (saturating at u128::MAX for a /0 IPv6 net).
pub fn address_count(net: &IpNet) -> u128 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

/// True when the two subnets share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kubeadm_defaults() {
        let svc = parse_cidr("10.96.0.0/12").unwrap();
        assert_eq!(nth_address(&svc, 1).unwrap().to_string(), "10.96.0.1");
        assert_eq!(nth_address(&svc, 10).unwrap().to_string(), "10.96.0.10");
        let v6 = parse_cidr("fd00:10:96::/112").unwrap();
        assert_eq!(nth_address(&v6, 10).unwrap().to_string(), "fd00:10:96::a");
    }

    #[test]
    fn parse_rejects_host_bits_and_bad_lists() {
        assert!(
            parse_cidr("10.96.0.1/12")
                .unwrap_err()
                .contains("10.96.0.0/12")
        );
        assert!(parse_cidr("10.96.0.0/33").is_err());
        assert!(parse_cidr("banana").is_err());
        assert!(parse_cidr_list("10.0.0.0/16,10.1.0.0/16").is_err());
        assert!(parse_cidr_list("10.0.0.0/16,fd00::/64,fd01::/64").is_err());
        assert_eq!(
            parse_cidr_list("10.244.0.0/16,fd00:10:244::/56")
                .unwrap()
                .len(),
            2
        );
        let spaced = parse_cidr_list("10.244.0.0/16, fd00:10:244::/56").unwrap_err();
        assert!(spaced.contains("without spaces"), "{spaced}");
        assert!(parse_cidr_list(" 10.244.0.0/16").is_err());
    }

    #[test]
    fn a_list_renders_comma_joined_and_round_trips_as_strings() {
        let list = CidrList::parse("10.244.0.0/16,fd00:10:244::/56").unwrap();
        assert_eq!(list.to_string(), "10.244.0.0/16,fd00:10:244::/56");
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#"["10.244.0.0/16","fd00:10:244::/56"]"#);
        assert_eq!(serde_json::from_str::<CidrList>(&json).unwrap(), list);
        assert!(serde_json::from_str::<CidrList>(r#"["10.0.0.1/8"]"#).is_err());
        assert_eq!(CidrList::default().to_string(), "");
    }

    #[test]
    fn tiny_subnet_has_no_tenth_address() {
        let net = parse_cidr("10.0.0.0/29").unwrap();
        assert!(nth_address(&net, 7).is_some());
        assert!(nth_address(&net, 10).is_none());
    }

    fn v4_net() -> impl Strategy<Value = IpNet> {
        (any::<u32>(), 0u8..=32).prop_map(|(addr, len)| {
            IpNet::V4(
                ipnet::Ipv4Net::new(Ipv4Addr::from(addr), len)
                    .unwrap()
                    .trunc(),
            )
        })
    }

    fn v6_net() -> impl Strategy<Value = IpNet> {
        (any::<u128>(), 0u8..=128).prop_map(|(addr, len)| {
            IpNet::V6(
                ipnet::Ipv6Net::new(Ipv6Addr::from(addr), len)
                    .unwrap()
                    .trunc(),
            )
        })
    }

    proptest! {
        #[test]
        fn nth_address_stays_inside_and_counts_up(net in prop_oneof![v4_net(), v6_net()], n in 0u128..1024) {
            match nth_address(&net, n) {
                Some(ip) => {
                    prop_assert!(net.contains(&ip));
                    prop_assert!(n < address_count(&net));
                    if n > 0 {
                        let prev = nth_address(&net, n - 1).unwrap();
                        prop_assert!(prev < ip);
                    }
                }
                None => prop_assert!(n >= address_count(&net)),
            }
        }

        #[test]
        fn first_host_is_network_plus_one(net in prop_oneof![v4_net(), v6_net()]) {
            prop_assume!(address_count(&net) >= 2);
            let first = nth_address(&net, 1).unwrap();
            match (first, net.network()) {
                (IpAddr::V4(f), IpAddr::V4(n)) => prop_assert_eq!(u32::from(f), u32::from(n) + 1),
                (IpAddr::V6(f), IpAddr::V6(n)) => prop_assert_eq!(u128::from(f), u128::from(n) + 1),
                _ => prop_assert!(false, "family changed"),
            }
        }

        #[test]
        fn overlap_is_symmetric_and_matches_brute_force(a in v4_net(), b in v4_net()) {
            prop_assert_eq!(overlaps(&a, &b), overlaps(&b, &a));
            let shares = a.contains(&b.network()) || a.contains(&b.broadcast()) || b.contains(&a.network());
            prop_assert_eq!(overlaps(&a, &b), shares);
            prop_assert!(overlaps(&a, &a));
        }

        #[test]
        fn a_subnet_overlaps_its_supernet(a in v4_net(), shrink in 0u8..8) {
            prop_assume!(a.prefix_len() >= shrink);
            let sup = IpNet::V4(ipnet::Ipv4Net::new(match a.network() { IpAddr::V4(v) => v, _ => unreachable!() }, a.prefix_len() - shrink).unwrap().trunc());
            prop_assert!(overlaps(&a, &sup));
        }

        #[test]
        fn parse_round_trips_display(net in prop_oneof![v4_net(), v6_net()]) {
            prop_assert_eq!(parse_cidr(&net.to_string()).unwrap(), net);
        }
    }
}
