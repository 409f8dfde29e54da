//! Routes (IPv4 and IPv6, main table): scan as `ip route` prints them, attribute (calico's `proto bird`,
//! blackholes inside the pod CIDR, routes through cluster devices) and delete. The default route and the
//! device that carries it are never touched.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::attribution::ClusterScope;
use super::command;
use super::inventory::{Found, Kind, Outcome, Owner};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }
}

/// One route, with the fields reset needs and the line as `ip route` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub family: Family,
    pub line: String,
    /// `unicast` unless the line starts with a type (`blackhole`, `unreachable`, `prohibit`, …).
    pub route_type: String,
    /// `default` or a prefix.
    pub dst: String,
    pub dev: Option<String>,
    pub via: Option<String>,
    pub proto: Option<String>,
    pub metric: Option<String>,
}

const ROUTE_TYPES: &[&str] = &[
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "local",
    "broadcast",
    "multicast",
    "anycast",
    "unicast",
];

/// Parses one `ip route show` line (continuation lines of multipath routes are ignored).
pub fn parse_line(family: Family, line: &str) -> Option<Route> {
    if line.starts_with(char::is_whitespace) || line.trim().is_empty() {
        return None;
    }
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let mut i = 0;
    let route_type = if ROUTE_TYPES.contains(&tokens[0]) {
        i = 1;
        tokens[0].to_string()
    } else {
        "unicast".to_string()
    };
    let dst = tokens.get(i)?.to_string();
    let value_of = |key: &str| {
        tokens
            .windows(2)
            .find(|w| w[0] == key)
            .map(|w| w[1].to_string())
    };
    Some(Route {
        family,
        line: line.trim().to_string(),
        route_type,
        dst,
        dev: value_of("dev"),
        via: value_of("via"),
        proto: value_of("proto"),
        metric: value_of("metric"),
    })
}

pub fn parse(family: Family, text: &str) -> Vec<Route> {
    text.lines().filter_map(|l| parse_line(family, l)).collect()
}

/// Routes of the main table, IPv4 then IPv6.
pub fn scan() -> anyhow::Result<Vec<Route>> {
    let mut routes = parse(
        Family::V4,
        &command::run_ok("ip", &["-4", "route", "show"])?,
    );
    // A host without IPv6 answers with an error; that is no route.
    if let Ok(out) = command::run("ip", &["-6", "route", "show"], None)
        && out.success
    {
        routes.extend(parse(Family::V6, &out.stdout));
    }
    Ok(routes)
}

/// Who made a route. `cluster_links` are the names of devices attributed to the cluster.
pub fn attribute(
    route: &Route,
    scope: &ClusterScope,
    cluster_links: &BTreeSet<String>,
    default_route_devs: &[String],
) -> Found {
    let target = route.line.clone();
    let dst_net: Option<IpNet> = route
        .dst
        .parse()
        .ok()
        .or_else(|| route.dst.parse::<std::net::IpAddr>().ok().map(IpNet::from));
    let owner = if route.dst == "default"
        || route
            .dev
            .as_ref()
            .is_some_and(|d| default_route_devs.contains(d))
    {
        Owner::Foreign("the host (default route)")
    } else if let Some(owner) = route
        .proto
        .as_deref()
        .and_then(super::attribution::route_protocol_owner)
    {
        owner
    } else if (route.route_type == "blackhole" && dst_net.is_some_and(|n| scope.in_pod_cidr(&n)))
        || route
            .dev
            .as_ref()
            .is_some_and(|d| cluster_links.contains(d))
    {
        Owner::Kubernetes
    } else {
        Owner::Foreign("the user or the OS")
    };
    Found::new(Kind::Route, target, owner)
}

/// The `ip route del` arguments selecting exactly this route.
pub fn delete_args(route: &Route) -> Vec<String> {
    let mut args = vec![
        route.family.flag().to_string(),
        "route".into(),
        "del".into(),
    ];
    if route.route_type != "unicast" {
        args.push(route.route_type.clone());
    }
    args.push(route.dst.clone());
    for (key, value) in [
        ("via", &route.via),
        ("dev", &route.dev),
        ("proto", &route.proto),
        ("metric", &route.metric),
    ] {
        if let Some(v) = value {
            args.push(key.into());
            args.push(v.clone());
        }
    }
    args
}

/// Deletes one route (a route already gone with its device counts as removed).
pub fn remove(route: &Route, found: &Found) -> Outcome {
    if !found.owner.is_cluster() {
        return found.kept_foreign();
    }
    let args = delete_args(route);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match command::run("ip", &argv, None) {
        Ok(out) if out.success => found.removed(),
        Ok(out) if out.complaint().contains("No such process") => found.removed(),
        Ok(out) => found.left(format!("ip route del failed: {}", out.complaint()), false),
        Err(e) => found.left(e.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = "default via 192.0.2.1 dev eth0 onlink \n\
10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink \n\
blackhole 10.244.0.0/26 proto bird \n\
10.211.1.0/24 via 172.16.170.129 dev ens33 proto bird \n\
10.244.0.0/24 dev cni0 proto kernel scope link src 10.244.0.1 linkdown \n\
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2 \n\
172.16.0.0/12 via 10.0.0.1 dev eth1 \n";

    fn scope() -> ClusterScope {
        let mut s = ClusterScope::default();
        s.add_pod_cidr("10.244.0.0/16".parse().unwrap());
        s
    }

    #[test]
    fn parses_route_lines() {
        let r = parse(Family::V4, V4);
        assert_eq!(r.len(), 7);
        assert_eq!(r[2].route_type, "blackhole");
        assert_eq!(r[2].dst, "10.244.0.0/26");
        assert_eq!(r[2].proto.as_deref(), Some("bird"));
        assert_eq!(r[1].dev.as_deref(), Some("flannel.1"));
        assert_eq!(
            delete_args(&r[2]),
            vec![
                "-4",
                "route",
                "del",
                "blackhole",
                "10.244.0.0/26",
                "proto",
                "bird"
            ]
        );
    }

    #[test]
    fn attribution_protects_the_default_route_and_foreign_routes() {
        let routes = parse(Family::V4, V4);
        let links: BTreeSet<String> = ["flannel.1".to_string(), "cni0".to_string()].into();
        let owners: Vec<bool> = routes
            .iter()
            .map(|r| {
                attribute(r, &scope(), &links, &["eth0".into()])
                    .owner
                    .is_cluster()
            })
            .collect();
        assert_eq!(owners, vec![false, true, true, true, true, false, false]);
        // bird routes through the default-route device stay too
        let owners_ens33 = attribute(&routes[3], &scope(), &links, &["ens33".into()]);
        assert!(!owners_ens33.owner.is_cluster());
        // a blackhole outside the pod CIDR is not ours
        let other = parse_line(Family::V4, "blackhole 192.168.50.0/24").unwrap();
        assert!(!attribute(&other, &scope(), &links, &[]).owner.is_cluster());
    }
}
