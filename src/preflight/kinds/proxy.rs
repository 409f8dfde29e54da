//! `HTTPProxy` and `HTTPProxyCIDR`: whether the proxy variables would send the node's connections to
//! the API server, pods or services through a proxy (Go's rules: HTTPS_PROXY, NO_PROXY; loopback never).

use std::net::IpAddr;

use ipnet::IpNet;

use super::super::Outcome;
use super::super::context::{Environment, Probe};
use crate::model::join_host_port;
use crate::net::cidr;

/// The proxy an HTTPS connection to `host` would use, if any.
pub fn https_proxy_for(env: &Environment, host: &str) -> Option<String> {
    let proxy = env.var(&["HTTPS_PROXY", "https_proxy"])?;
    let ip = host.parse::<IpAddr>().ok();
    if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return None;
    }
    let no_proxy = env.var(&["NO_PROXY", "no_proxy"]).unwrap_or("");
    let excluded = no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| no_proxy_matches(entry, host, ip));
    (!excluded).then(|| proxy.to_string())
}

fn no_proxy_matches(entry: &str, host: &str, ip: Option<IpAddr>) -> bool {
    if entry == "*" {
        return true;
    }
    // Entries may carry a port ("10.0.0.1:6443"); the host part decides.
    let entry_host = match entry.parse::<IpAddr>() {
        Ok(_) => entry,
        Err(_) => match entry.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => entry,
        },
    };
    if let Some(ip) = ip {
        if let Ok(net) = entry_host.parse::<IpNet>() {
            return net.contains(&ip);
        }
        return entry_host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|e| e == ip);
    }
    let domain = entry_host.trim_start_matches('*').trim_start_matches('.');
    let host = host.to_ascii_lowercase();
    let domain = domain.to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// `HTTPProxy`: HTTPS to this node's API server (or, joining, the cluster's) goes direct.
pub fn api_server(probe: &Probe) -> anyhow::Result<Outcome> {
    let node = probe.node;
    let host = match (&node.api_endpoint, node.advertise_address()) {
        (Some((host, _)), _) if node.role.is_join() => host.clone(),
        (_, Some(ip)) => ip.to_string(),
        (Some((host, _)), None) => host.clone(),
        (None, None) => return Ok(Outcome::Skip("no API server address is known".to_string())),
    };
    let url = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("https://{}", join_host_port(&host, 1234)),
        _ => format!("https://{host}"),
    };
    Ok(match https_proxy_for(probe.env, &host) {
        Some(proxy) => Outcome::Fail(format!(
            "Connection to \"{url}\" uses proxy \"{proxy}\". If that is not intended, adjust your proxy settings"
        )),
        None => Outcome::Pass(format!("{url} is reached directly")),
    })
}

/// `HTTPProxyCIDR`: connections to the first address of each pod and service range go direct.
pub fn cluster_ranges(probe: &Probe) -> anyhow::Result<Outcome> {
    let ranges: Vec<&IpNet> = probe
        .node
        .service_subnets()
        .iter()
        .chain(probe.node.pod_subnets())
        .collect();
    if ranges.is_empty() {
        return Ok(Outcome::Skip(
            "the pod and service ranges are not known yet".to_string(),
        ));
    }
    let proxied: Vec<String> = ranges
        .iter()
        .filter_map(|net| {
            let first = cidr::nth_address(net, 1)?;
            https_proxy_for(probe.env, &first.to_string())
                .map(|proxy| format!("connection to \"{net}\" uses proxy \"{proxy}\""))
        })
        .collect();
    Ok(if proxied.is_empty() {
        let list: Vec<String> = ranges.iter().map(ToString::to_string).collect();
        Outcome::Pass(format!("{} are reached directly", list.join(", ")))
    } else {
        Outcome::Fail(format!(
            "{}. This may lead to malfunctional cluster setup. Make sure that Pod and Services IP ranges specified correctly as exceptions in proxy configuration",
            proxied.join("; ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(no_proxy: &str) -> Environment {
        Environment::with(
            vec![],
            &[("https_proxy", "http://proxy:3128"), ("no_proxy", no_proxy)],
        )
    }

    #[test]
    fn go_proxy_rules() {
        assert_eq!(
            https_proxy_for(&env(""), "10.0.0.5").as_deref(),
            Some("http://proxy:3128")
        );
        assert_eq!(https_proxy_for(&env(""), "127.0.0.1"), None);
        assert_eq!(https_proxy_for(&env(""), "localhost"), None);
        assert_eq!(https_proxy_for(&env("10.0.0.0/8"), "10.0.0.5"), None);
        assert_eq!(https_proxy_for(&env("10.0.0.5"), "10.0.0.5"), None);
        assert!(https_proxy_for(&env("10.0.0.6"), "10.0.0.5").is_some());
        assert_eq!(
            https_proxy_for(&env(".example.com"), "cp.example.com"),
            None
        );
        assert_eq!(https_proxy_for(&env("example.com"), "example.com"), None);
        assert!(https_proxy_for(&env("example.com"), "badexample.com").is_some());
        assert_eq!(https_proxy_for(&env("*"), "anything"), None);
        assert_eq!(https_proxy_for(&env("10.0.0.5:6443"), "10.0.0.5"), None);
        let none = Environment::with(vec![], &[]);
        assert_eq!(https_proxy_for(&none, "10.0.0.5"), None);
    }
}
