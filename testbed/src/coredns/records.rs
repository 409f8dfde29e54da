//! The `kubernetes` plugin's answers, from cached Services, EndpointSlices and Pods (Kubernetes'
//! DNS specification as CoreDNS implements it): `<svc>.<ns>.svc.<zone>` A/AAAA (cluster IP, or the
//! ready endpoints of a headless Service), `<endpoint>.<svc>.<ns>.svc.<zone>` for headless endpoints,
//! `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV, ExternalName CNAMEs, `<a-b-c-d>.<ns>.pod.<zone>` per
//! the `pods` mode, and PTRs in the reverse zones. Pure: the server turns answers into messages.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::corefile::{Kubernetes, PodsMode};

/// The query types the plugin answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    A,
    Aaaa,
    Srv,
    Ptr,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Ptr(String),
    Cname(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Answers (and additional records for SRV targets).
    Found {
        answers: Vec<Rr>,
        additional: Vec<Rr>,
    },
    /// The name exists, not with this type.
    NoData {
        zone: String,
    },
    NxDomain {
        zone: String,
    },
    /// Not this plugin's: the next plugin answers (a name outside its zones, or fallthrough).
    Next,
}

/// What the plugin's informers hold.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub services: Vec<Value>,
    pub slices: Vec<Value>,
    pub pods: Vec<Value>,
}

fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

/// The zone of `k` that `name` falls in (longest first).
pub fn zone_of<'a>(k: &'a Kubernetes, name: &str) -> Option<&'a str> {
    k.zones
        .iter()
        .filter(|z| z.as_str() == "." || name == z.as_str() || name.ends_with(&format!(".{z}")))
        .max_by_key(|z| z.len())
        .map(String::as_str)
}

fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

fn undashed(label: &str) -> Option<IpAddr> {
    label
        .replace('-', ".")
        .parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .ok()
        .or_else(|| {
            label
                .replace('-', ":")
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })
}

struct Endpoint {
    ip: IpAddr,
    name: String,
    ports: Vec<(String, String, u16)>,
}

impl Snapshot {
    fn service(&self, ns: &str, name: &str) -> Option<&Value> {
        self.services
            .iter()
            .find(|s| meta(s, "namespace") == ns && meta(s, "name") == name)
    }

    fn endpoints(&self, k: &Kubernetes, ns: &str, svc: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for slice in &self.slices {
            if meta(slice, "namespace") != ns
                || slice["metadata"]["labels"]["kubernetes.io/service-name"].as_str() != Some(svc)
            {
                continue;
            }
            let ports: Vec<(String, String, u16)> = slice["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["protocol"].as_str().unwrap_or("TCP").to_lowercase(),
                        p["port"].as_u64()? as u16,
                    ))
                })
                .collect();
            for ep in slice["endpoints"].as_array().into_iter().flatten() {
                if ep["conditions"]["ready"].as_bool() == Some(false) {
                    continue;
                }
                for addr in ep["addresses"].as_array().into_iter().flatten() {
                    let Some(ip) = addr.as_str().and_then(|a| a.parse::<IpAddr>().ok()) else {
                        continue;
                    };
                    if !seen.insert(ip) {
                        continue;
                    }
                    let name = ep["hostname"]
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| {
                            k.endpoint_pod_names
                                .then(|| ep["targetRef"]["name"].as_str().map(str::to_string))
                                .flatten()
                        })
                        .unwrap_or_else(|| dashed(&ip));
                    out.push(Endpoint {
                        ip,
                        name,
                        ports: ports.clone(),
                    });
                }
            }
        }
        out.sort_by_key(|e| e.ip);
        out
    }
}

fn address(name: &str, ttl: u32, ip: IpAddr, qtype: QType) -> Option<Rr> {
    match (ip, qtype) {
        (IpAddr::V4(v4), QType::A) => Some(Rr {
            name: name.into(),
            ttl,
            data: Data::A(v4),
        }),
        (IpAddr::V6(v6), QType::Aaaa) => Some(Rr {
            name: name.into(),
            ttl,
            data: Data::Aaaa(v6),
        }),
        _ => None,
    }
}

fn cluster_ips(svc: &Value) -> Vec<IpAddr> {
    let spec = &svc["spec"];
    let list: Vec<&str> = match spec["clusterIPs"].as_array() {
        Some(a) => a.iter().filter_map(Value::as_str).collect(),
        None => spec["clusterIP"].as_str().into_iter().collect(),
    };
    list.iter().filter_map(|s| s.parse().ok()).collect()
}

fn headless(svc: &Value) -> bool {
    svc["spec"]["clusterIP"].as_str() == Some("None")
}

/// Answers `qname` (lower case, fully qualified) for `qtype`.
pub fn lookup(snapshot: &Snapshot, k: &Kubernetes, qname: &str, qtype: QType) -> Lookup {
    let Some(zone) = zone_of(k, qname) else {
        return Lookup::Next;
    };
    let zone = zone.to_string();
    let fall = |zone: &str| {
        k.fallthrough
            .as_ref()
            .is_some_and(|f| f.is_empty() || f.iter().any(|z| z == zone))
    };
    let miss = |zone: String| {
        if fall(&zone) {
            Lookup::Next
        } else {
            Lookup::NxDomain { zone }
        }
    };
    if zone.ends_with("in-addr.arpa.") || zone.ends_with("ip6.arpa.") {
        return reverse(snapshot, k, qname, qtype, &zone).unwrap_or_else(|| miss(zone));
    }
    let prefix = if qname == zone {
        ""
    } else {
        &qname[..qname.len() - zone.len() - 1]
    };
    let labels: Vec<&str> = if prefix.is_empty() {
        Vec::new()
    } else {
        prefix.split('.').collect()
    };
    let ns_allowed = |ns: &str| k.namespaces.is_empty() || k.namespaces.iter().any(|n| n == ns);
    let ttl = k.ttl;
    match labels.as_slice() {
        [] => Lookup::NoData { zone },
        ["svc"] | ["pod"] => Lookup::NoData { zone },
        [ns, "svc"] | [ns, "pod"] => {
            let known = ns_allowed(ns)
                && snapshot
                    .services
                    .iter()
                    .any(|s| meta(s, "namespace") == *ns);
            if known {
                Lookup::NoData { zone }
            } else {
                miss(zone)
            }
        }
        [ip, ns, "pod"] => {
            if k.pods == PodsMode::Disabled || !ns_allowed(ns) {
                return miss(zone);
            }
            let Some(addr) = undashed(ip) else {
                return miss(zone);
            };
            if k.pods == PodsMode::Verified
                && !snapshot.pods.iter().any(|p| {
                    meta(p, "namespace") == *ns
                        && p["status"]["podIPs"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|i| {
                                i["ip"].as_str().and_then(|s| s.parse::<IpAddr>().ok())
                                    == Some(addr)
                            })
                })
            {
                return miss(zone);
            }
            match address(qname, ttl, addr, qtype) {
                Some(rr) => Lookup::Found {
                    answers: vec![rr],
                    additional: vec![],
                },
                None => Lookup::NoData { zone },
            }
        }
        [svc, ns, "svc"] => {
            let Some(service) = snapshot.service(ns, svc).filter(|_| ns_allowed(ns)) else {
                return miss(zone);
            };
            service_answer(snapshot, k, service, qname, qtype, &zone)
        }
        [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            let Some(service) = snapshot.service(ns, svc).filter(|_| ns_allowed(ns)) else {
                return miss(zone);
            };
            let base = format!("{svc}.{ns}.svc.{zone}");
            let wanted = |name: &str, protocol: &str| {
                (port == &"_*" || port[1..] == *name) && (proto == &"_*" || proto[1..] == *protocol)
            };
            srv_answer(snapshot, k, service, &base, qname, qtype, &zone, &wanted)
        }
        [endpoint, svc, ns, "svc"] => {
            let Some(service) = snapshot
                .service(ns, svc)
                .filter(|_| ns_allowed(ns) && !k.noendpoints)
            else {
                return miss(zone);
            };
            let _ = service;
            let found: Vec<Rr> = snapshot
                .endpoints(k, ns, svc)
                .into_iter()
                .filter(|e| e.name == *endpoint)
                .filter_map(|e| address(qname, ttl, e.ip, qtype))
                .collect();
            if !found.is_empty() {
                Lookup::Found {
                    answers: found,
                    additional: vec![],
                }
            } else if snapshot
                .endpoints(k, ns, svc)
                .iter()
                .any(|e| e.name == *endpoint)
            {
                Lookup::NoData { zone }
            } else {
                miss(zone)
            }
        }
        _ => miss(zone),
    }
}

fn service_answer(
    snapshot: &Snapshot,
    k: &Kubernetes,
    service: &Value,
    qname: &str,
    qtype: QType,
    zone: &str,
) -> Lookup {
    let ttl = k.ttl;
    if service["spec"]["type"].as_str() == Some("ExternalName") {
        let target = service["spec"]["externalName"].as_str().unwrap_or_default();
        let target = format!("{}.", target.trim_end_matches('.'));
        return Lookup::Found {
            answers: vec![Rr {
                name: qname.into(),
                ttl,
                data: Data::Cname(target),
            }],
            additional: vec![],
        };
    }
    let ns = meta(service, "namespace");
    let name = meta(service, "name");
    if qtype == QType::Srv {
        let base = qname.to_string();
        return srv_answer(snapshot, k, service, &base, qname, qtype, zone, &|_, _| {
            true
        });
    }
    let ips: Vec<IpAddr> = if headless(service) {
        if k.noendpoints {
            vec![]
        } else {
            snapshot
                .endpoints(k, ns, name)
                .iter()
                .map(|e| e.ip)
                .collect()
        }
    } else {
        cluster_ips(service)
    };
    let answers: Vec<Rr> = ips
        .into_iter()
        .filter_map(|ip| address(qname, ttl, ip, qtype))
        .collect();
    if answers.is_empty() {
        Lookup::NoData { zone: zone.into() }
    } else {
        Lookup::Found {
            answers,
            additional: vec![],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn srv_answer(
    snapshot: &Snapshot,
    k: &Kubernetes,
    service: &Value,
    base: &str,
    qname: &str,
    qtype: QType,
    zone: &str,
    wanted: &dyn Fn(&str, &str) -> bool,
) -> Lookup {
    let ttl = k.ttl;
    if qtype != QType::Srv {
        return Lookup::NoData { zone: zone.into() };
    }
    let ns = meta(service, "namespace");
    let name = meta(service, "name");
    let mut answers = Vec::new();
    let mut additional = Vec::new();
    if headless(service) {
        let endpoints = snapshot.endpoints(k, ns, name);
        let n = endpoints.len().max(1) as u16;
        for e in &endpoints {
            let target = format!("{}.{base}", e.name);
            let mut matched = false;
            for (pname, proto, port) in &e.ports {
                if wanted(pname, proto) {
                    matched = true;
                    answers.push(Rr {
                        name: qname.into(),
                        ttl,
                        data: Data::Srv {
                            priority: 0,
                            weight: 100 / n,
                            port: *port,
                            target: target.clone(),
                        },
                    });
                }
            }
            if matched {
                additional.extend(address(
                    &target,
                    ttl,
                    e.ip,
                    if e.ip.is_ipv4() {
                        QType::A
                    } else {
                        QType::Aaaa
                    },
                ));
            }
        }
    } else {
        for p in service["spec"]["ports"].as_array().into_iter().flatten() {
            let pname = p["name"].as_str().unwrap_or_default();
            let proto = p["protocol"].as_str().unwrap_or("TCP").to_lowercase();
            if pname.is_empty() || !wanted(pname, &proto) {
                continue;
            }
            answers.push(Rr {
                name: qname.into(),
                ttl,
                data: Data::Srv {
                    priority: 0,
                    weight: 100,
                    port: p["port"].as_u64().unwrap_or_default() as u16,
                    target: base.into(),
                },
            });
        }
        if !answers.is_empty() {
            for ip in cluster_ips(service) {
                additional.extend(address(
                    base,
                    ttl,
                    ip,
                    if ip.is_ipv4() { QType::A } else { QType::Aaaa },
                ));
            }
        }
    }
    if answers.is_empty() {
        Lookup::NxDomain { zone: zone.into() }
    } else {
        Lookup::Found {
            answers,
            additional,
        }
    }
}

/// The address a reverse name stands for (`4.3.2.1.in-addr.arpa.`, nibbles in ip6.arpa).
pub fn reverse_ip(qname: &str) -> Option<IpAddr> {
    if let Some(rest) = qname.strip_suffix(".in-addr.arpa.") {
        let mut parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 4 {
            return None;
        }
        parts.reverse();
        return parts.join(".").parse().ok();
    }
    let rest = qname.strip_suffix(".ip6.arpa.")?;
    let nibbles: Vec<&str> = rest.split('.').collect();
    if nibbles.len() != 32 {
        return None;
    }
    let hex: String = nibbles.iter().rev().copied().collect();
    let groups: Vec<String> = (0..8).map(|i| hex[i * 4..i * 4 + 4].to_string()).collect();
    groups.join(":").parse().ok()
}

fn reverse(
    snapshot: &Snapshot,
    k: &Kubernetes,
    qname: &str,
    qtype: QType,
    zone: &str,
) -> Option<Lookup> {
    let ip = reverse_ip(qname)?;
    let cluster = k
        .zones
        .iter()
        .find(|z| !z.ends_with(".arpa.") && z.as_str() != ".")?;
    let mut names = Vec::new();
    for svc in &snapshot.services {
        let (ns, name) = (meta(svc, "namespace"), meta(svc, "name"));
        if !(k.namespaces.is_empty() || k.namespaces.iter().any(|n| n == ns)) {
            continue;
        }
        if cluster_ips(svc).contains(&ip) {
            names.push(format!("{name}.{ns}.svc.{cluster}"));
        }
        if headless(svc) && !k.noendpoints {
            for e in snapshot.endpoints(k, ns, name) {
                if e.ip == ip {
                    names.push(format!("{}.{name}.{ns}.svc.{cluster}", e.name));
                }
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    if qtype != QType::Ptr {
        return Some(Lookup::NoData { zone: zone.into() });
    }
    Some(Lookup::Found {
        answers: names
            .into_iter()
            .map(|n| Rr {
                name: qname.into(),
                ttl: k.ttl,
                data: Data::Ptr(n),
            })
            .collect(),
        additional: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coredns::corefile;
    use serde_json::json;

    fn plugin() -> Kubernetes {
        let servers = corefile::parse("Corefile", ".:53 {\n kubernetes cluster.local in-addr.arpa ip6.arpa {\n  pods insecure\n  fallthrough in-addr.arpa ip6.arpa\n  ttl 30\n }\n}\n").unwrap();
        servers[0].kubernetes.clone().unwrap()
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            services: vec![
                json!({"metadata": {"namespace": "default", "name": "web"}, "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
                json!({"metadata": {"namespace": "default", "name": "db"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}}),
                json!({"metadata": {"namespace": "default", "name": "out"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}),
            ],
            slices: vec![
                json!({"metadata": {"namespace": "default", "name": "db-x", "labels": {"kubernetes.io/service-name": "db"}}, "addressType": "IPv4",
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.244.1.4"], "hostname": "db-0", "conditions": {"ready": true}},
                              {"addresses": ["10.244.2.5"], "conditions": {"ready": true}},
                              {"addresses": ["10.244.2.6"], "conditions": {"ready": false}}]}),
            ],
            pods: vec![],
        }
    }

    fn ips(l: &Lookup) -> Vec<String> {
        match l {
            Lookup::Found { answers, .. } => answers
                .iter()
                .map(|r| match &r.data {
                    Data::A(a) => a.to_string(),
                    Data::Aaaa(a) => a.to_string(),
                    Data::Cname(c) | Data::Ptr(c) => c.clone(),
                    Data::Srv { port, target, .. } => format!("{port} {target}"),
                })
                .collect(),
            other => vec![format!("{other:?}")],
        }
    }

    #[test]
    fn services_headless_endpoints_and_external_names() {
        let (s, k) = (snapshot(), plugin());
        assert_eq!(
            ips(&lookup(&s, &k, "web.default.svc.cluster.local.", QType::A)),
            vec!["10.96.0.20"]
        );
        assert_eq!(
            lookup(&s, &k, "web.default.svc.cluster.local.", QType::Aaaa),
            Lookup::NoData {
                zone: "cluster.local.".into()
            }
        );
        assert_eq!(
            ips(&lookup(&s, &k, "db.default.svc.cluster.local.", QType::A)),
            vec!["10.244.1.4", "10.244.2.5"]
        );
        assert_eq!(
            ips(&lookup(
                &s,
                &k,
                "db-0.db.default.svc.cluster.local.",
                QType::A
            )),
            vec!["10.244.1.4"]
        );
        assert_eq!(
            ips(&lookup(
                &s,
                &k,
                "10-244-2-5.db.default.svc.cluster.local.",
                QType::A
            )),
            vec!["10.244.2.5"]
        );
        assert_eq!(
            ips(&lookup(&s, &k, "out.default.svc.cluster.local.", QType::A)),
            vec!["example.com."]
        );
        assert_eq!(
            lookup(&s, &k, "gone.default.svc.cluster.local.", QType::A),
            Lookup::NxDomain {
                zone: "cluster.local.".into()
            }
        );
        assert_eq!(lookup(&s, &k, "example.org.", QType::A), Lookup::Next);
        let Lookup::Found { answers, .. } =
            lookup(&s, &k, "web.default.svc.cluster.local.", QType::A)
        else {
            panic!()
        };
        assert_eq!(answers[0].ttl, 30);
    }

    #[test]
    fn srv_pods_and_reverse() {
        let (s, k) = (snapshot(), plugin());
        assert_eq!(
            ips(&lookup(
                &s,
                &k,
                "_http._tcp.web.default.svc.cluster.local.",
                QType::Srv
            )),
            vec!["80 web.default.svc.cluster.local."]
        );
        let Lookup::Found {
            answers,
            additional,
        } = lookup(&s, &k, "_pg._tcp.db.default.svc.cluster.local.", QType::Srv)
        else {
            panic!()
        };
        assert_eq!(answers.len(), 2);
        assert_eq!(additional.len(), 2);
        assert!(matches!(
            lookup(
                &s,
                &k,
                "_nope._tcp.web.default.svc.cluster.local.",
                QType::Srv
            ),
            Lookup::NxDomain { .. }
        ));
        assert_eq!(
            ips(&lookup(
                &s,
                &k,
                "10-244-9-9.default.pod.cluster.local.",
                QType::A
            )),
            vec!["10.244.9.9"]
        );
        let mut verified = k.clone();
        verified.pods = PodsMode::Verified;
        assert!(matches!(
            lookup(
                &s,
                &verified,
                "10-244-9-9.default.pod.cluster.local.",
                QType::A
            ),
            Lookup::NxDomain { .. }
        ));
        verified.pods = PodsMode::Disabled;
        assert!(matches!(
            lookup(
                &s,
                &verified,
                "10-244-9-9.default.pod.cluster.local.",
                QType::A
            ),
            Lookup::NxDomain { .. }
        ));
        assert_eq!(
            ips(&lookup(&s, &k, "20.0.96.10.in-addr.arpa.", QType::Ptr)),
            vec!["web.default.svc.cluster.local."]
        );
        assert_eq!(
            ips(&lookup(&s, &k, "4.1.244.10.in-addr.arpa.", QType::Ptr)),
            vec!["db-0.db.default.svc.cluster.local."]
        );
        // Not a cluster address: fallthrough to the next plugin.
        assert_eq!(
            lookup(&s, &k, "1.0.0.127.in-addr.arpa.", QType::Ptr),
            Lookup::Next
        );
        assert_eq!(
            reverse_ip("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."),
            Some("fd00::1".parse().unwrap())
        );
    }
}
