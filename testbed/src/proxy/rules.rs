//! kube-proxy's iptables rules, generated from Services and EndpointSlices as its iptables proxier
//! writes them: the same chain names (KUBE-SERVICES, KUBE-SVC-<hash>, KUBE-SEP-<hash>, KUBE-EXT-<hash>,
//! KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-MARK-MASQ, KUBE-FORWARD, …), hashes, comments and jumps,
//! rendered as `iptables-restore --noflush` input. Pure: the proxier applies what this returns.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// An address family: `iptables` or `ip6tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }
    fn host_mask(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
    fn slice_type(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }
}

/// One port of one Service, with its ready endpoints of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    pub port_name: String,
    /// Lower case, as in the rules: `tcp`, `udp`, `sctp`.
    pub protocol: String,
    pub cluster_ip: IpAddr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `ip:port` for IPv4, `[ip]:port` for IPv6, sorted.
    pub endpoints: Vec<(IpAddr, u16)>,
}

impl ServicePort {
    /// `namespace/name:port` (`namespace/name` for an unnamed port), kube-proxy's ServicePortName.
    pub fn port_name_string(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }
    fn hash(&self) -> String {
        proto_hash(&format!("{}{}", self.port_name_string(), self.protocol))
    }
    pub fn svc_chain(&self) -> String {
        format!("KUBE-SVC-{}", self.hash())
    }
    pub fn ext_chain(&self) -> String {
        format!("KUBE-EXT-{}", self.hash())
    }
    pub fn sep_chain(&self, endpoint: &(IpAddr, u16)) -> String {
        let hash = proto_hash(&format!(
            "{}{}{}",
            self.port_name_string(),
            self.protocol,
            endpoint_string(endpoint)
        ));
        format!("KUBE-SEP-{hash}")
    }
}

fn endpoint_string((ip, port): &(IpAddr, u16)) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// The first 16 characters of the base32 SHA-256, as kube-proxy's portProtoHash.
fn proto_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    data_encoding::BASE32.encode(&digest)[..16].to_string()
}

/// The Service ports of one family with their ready endpoints, from the API objects.
pub fn service_ports(services: &[Value], slices: &[Value], family: Family) -> Vec<ServicePort> {
    let mut by_service: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for slice in slices {
        if slice["addressType"].as_str() != Some(family.slice_type()) {
            continue;
        }
        let Some(service) = slice["metadata"]["labels"]["kubernetes.io/service-name"].as_str()
        else {
            continue;
        };
        let ns = slice["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        by_service
            .entry((ns, service.to_string()))
            .or_default()
            .push(slice);
    }
    let mut out = Vec::new();
    for svc in services {
        let spec = &svc["spec"];
        if spec["type"].as_str() == Some("ExternalName") {
            continue;
        }
        let namespace = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        let ips: Vec<IpAddr> = spec["clusterIPs"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
            .unwrap_or_else(|| spec["clusterIP"].as_str().into_iter().collect())
            .into_iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let Some(cluster_ip) = ips.into_iter().find(|ip| Family::of(ip) == family) else {
            continue;
        };
        let node_ports = matches!(
            spec["type"].as_str(),
            Some("NodePort") | Some("LoadBalancer")
        );
        let slices = by_service
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default();
        for port in spec["ports"].as_array().into_iter().flatten() {
            let port_name = port["name"].as_str().unwrap_or_default().to_string();
            let protocol = port["protocol"].as_str().unwrap_or("TCP").to_string();
            let mut endpoints = BTreeSet::new();
            for slice in &slices {
                let Some(number) = slice["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| {
                        p["name"].as_str().unwrap_or_default() == port_name
                            && p["protocol"].as_str().unwrap_or("TCP") == protocol
                    })
                    .and_then(|p| p["port"].as_u64())
                else {
                    continue;
                };
                for ep in slice["endpoints"].as_array().into_iter().flatten() {
                    if ep["conditions"]["ready"].as_bool() == Some(false) {
                        continue;
                    }
                    if let Some(ip) = ep["addresses"][0]
                        .as_str()
                        .and_then(|a| a.parse::<IpAddr>().ok())
                    {
                        endpoints.insert((ip, number as u16));
                    }
                }
            }
            out.push(ServicePort {
                namespace: namespace.to_string(),
                name: name.to_string(),
                port_name,
                protocol: protocol.to_lowercase(),
                cluster_ip,
                port: port["port"].as_u64().unwrap_or_default() as u16,
                node_port: port["nodePort"]
                    .as_u64()
                    .filter(|_| node_ports)
                    .map(|p| p as u16),
                endpoints: endpoints.into_iter().collect(),
            });
        }
    }
    out
}

/// How the proxier decides which traffic to masquerade and where node ports listen.
#[derive(Debug, Clone)]
pub struct Options {
    pub family: Family,
    /// `0x4000`-style mark.
    pub mark: String,
    pub masquerade_all: bool,
    /// The "not local" match (`! -s 10.244.0.0/16`, `! -i cni0`, …); empty when no detector runs.
    pub not_local: Vec<String>,
    /// Node port CIDRs; empty means every local address.
    pub node_port_addresses: Vec<IpNet>,
    pub localhost_node_ports: bool,
}

/// The rules for one family: `iptables-restore --noflush` input for filter and nat, and the
/// per-service nat chains that exist now and are deleted by it.
pub struct Ruleset {
    pub restore: String,
    pub nat_chains: BTreeSet<String>,
}

/// The jumps from the built-in chains into kube-proxy's, ensured (prepended) before each restore:
/// (table, chain, rule args).
pub fn jumps(options: &Options) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut out = vec![
        (
            "filter",
            "INPUT",
            s(&[
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-m",
                "comment",
                "--comment",
                "kubernetes load balancer firewall",
                "-j",
                "KUBE-PROXY-FIREWALL",
            ]),
        ),
        (
            "filter",
            "INPUT",
            s(&[
                "-m",
                "comment",
                "--comment",
                "kubernetes health check service ports",
                "-j",
                "KUBE-NODEPORTS",
            ]),
        ),
        (
            "filter",
            "INPUT",
            s(&[
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-m",
                "comment",
                "--comment",
                "kubernetes externally-visible service portals",
                "-j",
                "KUBE-EXTERNAL-SERVICES",
            ]),
        ),
        (
            "filter",
            "FORWARD",
            s(&[
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-m",
                "comment",
                "--comment",
                "kubernetes load balancer firewall",
                "-j",
                "KUBE-PROXY-FIREWALL",
            ]),
        ),
        (
            "filter",
            "FORWARD",
            s(&[
                "-m",
                "comment",
                "--comment",
                "kubernetes forwarding rules",
                "-j",
                "KUBE-FORWARD",
            ]),
        ),
        (
            "filter",
            "FORWARD",
            s(&[
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-m",
                "comment",
                "--comment",
                "kubernetes service portals",
                "-j",
                "KUBE-SERVICES",
            ]),
        ),
        (
            "filter",
            "FORWARD",
            s(&[
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-m",
                "comment",
                "--comment",
                "kubernetes externally-visible service portals",
                "-j",
                "KUBE-EXTERNAL-SERVICES",
            ]),
        ),
        (
            "filter",
            "OUTPUT",
            s(&[
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-m",
                "comment",
                "--comment",
                "kubernetes load balancer firewall",
                "-j",
                "KUBE-PROXY-FIREWALL",
            ]),
        ),
        (
            "filter",
            "OUTPUT",
            s(&[
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-m",
                "comment",
                "--comment",
                "kubernetes service portals",
                "-j",
                "KUBE-SERVICES",
            ]),
        ),
        (
            "nat",
            "OUTPUT",
            s(&[
                "-m",
                "comment",
                "--comment",
                "kubernetes service portals",
                "-j",
                "KUBE-SERVICES",
            ]),
        ),
        (
            "nat",
            "PREROUTING",
            s(&[
                "-m",
                "comment",
                "--comment",
                "kubernetes service portals",
                "-j",
                "KUBE-SERVICES",
            ]),
        ),
        (
            "nat",
            "POSTROUTING",
            s(&[
                "-m",
                "comment",
                "--comment",
                "kubernetes postrouting rules",
                "-j",
                "KUBE-POSTROUTING",
            ]),
        ),
    ];
    if options.localhost_node_ports && options.family == Family::V4 {
        out.push(("filter", "INPUT", s(&["-j", "KUBE-FIREWALL"])));
        out.push(("filter", "OUTPUT", s(&["-j", "KUBE-FIREWALL"])));
    }
    out
}

/// The chains `jumps` and `render` own in each table (for the canary and clean-up).
pub fn base_chains(table: &str, options: &Options) -> Vec<&'static str> {
    match table {
        "nat" => vec![
            "KUBE-SERVICES",
            "KUBE-NODEPORTS",
            "KUBE-POSTROUTING",
            "KUBE-MARK-MASQ",
            "KUBE-PROXY-CANARY",
        ],
        "filter" => {
            let mut v = vec![
                "KUBE-SERVICES",
                "KUBE-EXTERNAL-SERVICES",
                "KUBE-FORWARD",
                "KUBE-NODEPORTS",
                "KUBE-PROXY-FIREWALL",
                "KUBE-PROXY-CANARY",
            ];
            if options.localhost_node_ports && options.family == Family::V4 {
                v.push("KUBE-FIREWALL");
            }
            v
        }
        "mangle" => vec!["KUBE-PROXY-CANARY"],
        _ => vec![],
    }
}

fn q(text: &str) -> String {
    if text.contains(' ') {
        format!("\"{text}\"")
    } else {
        text.to_string()
    }
}

/// Renders the whole ruleset; `existing` are the nat chains found now (stale per-service chains
/// among them are deleted).
pub fn render(ports: &[ServicePort], options: &Options, existing: &BTreeSet<String>) -> Ruleset {
    let mark = &options.mark;
    let mut filter: Vec<String> = Vec::new();
    let mut nat: Vec<String> = Vec::new();
    let mut chains: BTreeSet<String> = BTreeSet::new();

    nat.push(format!(
        "-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN"
    ));
    nat.push(format!("-A KUBE-POSTROUTING -j MARK --xor-mark {mark}"));
    nat.push("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully".into());
    nat.push(format!("-A KUBE-MARK-MASQ -j MARK --or-mark {mark}"));

    let mut sorted: Vec<&ServicePort> = ports.iter().collect();
    sorted.sort_by_key(|p| (p.port_name_string(), p.protocol.clone()));
    for sp in sorted {
        let name = sp.port_name_string();
        let proto = &sp.protocol;
        let dst = format!("{}/{}", sp.cluster_ip, options.family.host_mask());
        let match_svc = format!("-m {proto} -p {proto} -d {dst} --dport {}", sp.port);
        if sp.endpoints.is_empty() {
            filter.push(format!(
                "-A KUBE-SERVICES -m comment --comment {} {match_svc} -j REJECT",
                q(&format!("{name} has no endpoints"))
            ));
            if let Some(np) = sp.node_port {
                filter.push(format!(
                    "-A KUBE-EXTERNAL-SERVICES -m comment --comment {} -m addrtype --dst-type LOCAL -m {proto} -p {proto} --dport {np} -j REJECT",
                    q(&format!("{name} has no endpoints"))
                ));
            }
            continue;
        }
        let svc_chain = sp.svc_chain();
        chains.insert(svc_chain.clone());
        let cluster_comment = q(&format!("{name} cluster IP"));
        nat.push(format!(
            "-A KUBE-SERVICES -m comment --comment {cluster_comment} {match_svc} -j {svc_chain}"
        ));
        if options.masquerade_all {
            nat.push(format!(
                "-A {svc_chain} -m comment --comment {cluster_comment} {match_svc} -j KUBE-MARK-MASQ"
            ));
        } else if !options.not_local.is_empty() {
            nat.push(format!(
                "-A {svc_chain} -m comment --comment {cluster_comment} {match_svc} {} -j KUBE-MARK-MASQ",
                options.not_local.join(" ")
            ));
        }
        if let Some(np) = sp.node_port {
            let ext = sp.ext_chain();
            chains.insert(ext.clone());
            nat.push(format!(
                "-A KUBE-NODEPORTS -m comment --comment {} -m {proto} -p {proto} --dport {np} -j {ext}",
                q(&name)
            ));
            nat.push(format!(
                "-A {ext} -m comment --comment {} -j KUBE-MARK-MASQ",
                q(&format!(
                    "masquerade traffic for {name} external destinations"
                ))
            ));
            nat.push(format!("-A {ext} -j {svc_chain}"));
        }
        let n = sp.endpoints.len();
        for (i, ep) in sp.endpoints.iter().enumerate() {
            let sep = sp.sep_chain(ep);
            chains.insert(sep.clone());
            let comment = q(&format!("{name} -> {}", endpoint_string(ep)));
            if i + 1 < n {
                nat.push(format!(
                    "-A {svc_chain} -m comment --comment {comment} -m statistic --mode random --probability {:.10} -j {sep}",
                    1.0 / (n - i) as f64
                ));
            } else {
                nat.push(format!(
                    "-A {svc_chain} -m comment --comment {comment} -j {sep}"
                ));
            }
            nat.push(format!(
                "-A {sep} -m comment --comment {} -s {}/{} -j KUBE-MARK-MASQ",
                q(&name),
                ep.0,
                options.family.host_mask()
            ));
            nat.push(format!(
                "-A {sep} -m comment --comment {} -m {proto} -p {proto} -j DNAT --to-destination {}",
                q(&name),
                endpoint_string(ep)
            ));
        }
    }
    let last = "\"kubernetes service nodeports; NOTE: this must be the last rule in this chain\"";
    if options.node_port_addresses.is_empty() {
        if options.localhost_node_ports && options.family == Family::V4 {
            nat.push(format!(
                "-A KUBE-SERVICES -m comment --comment {last} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
            ));
        } else {
            nat.push(format!(
                "-A KUBE-SERVICES -m comment --comment {last} -m addrtype --dst-type LOCAL ! -d {} -j KUBE-NODEPORTS",
                options.family.loopback()
            ));
        }
    } else {
        for cidr in &options.node_port_addresses {
            nat.push(format!(
                "-A KUBE-SERVICES -m comment --comment {last} -d {cidr} -j KUBE-NODEPORTS"
            ));
        }
    }

    filter.push("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP".into());
    filter.push(format!(
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {mark}/{mark} -j ACCEPT"
    ));
    filter.push("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".into());
    if options.localhost_node_ports && options.family == Family::V4 {
        filter.push("-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP".into());
    }

    let mut out = String::new();
    out.push_str("*filter\n");
    for chain in base_chains("filter", options) {
        out.push_str(&format!(":{chain} - [0:0]\n"));
    }
    for rule in &filter {
        out.push_str(rule);
        out.push('\n');
    }
    out.push_str("COMMIT\n*nat\n");
    for chain in base_chains("nat", options) {
        out.push_str(&format!(":{chain} - [0:0]\n"));
    }
    let stale: Vec<&String> = existing.iter().filter(|c| !chains.contains(*c)).collect();
    for chain in chains.iter().chain(stale.iter().copied()) {
        out.push_str(&format!(":{chain} - [0:0]\n"));
    }
    for rule in &nat {
        out.push_str(rule);
        out.push('\n');
    }
    for chain in stale {
        out.push_str(&format!("-X {chain}\n"));
    }
    out.push_str("COMMIT\n");
    Ruleset {
        restore: out,
        nat_chains: chains,
    }
}

/// The per-service nat chains (`KUBE-SVC-*`, `KUBE-SEP-*`, `KUBE-EXT-*`, older `KUBE-FW-*`/`KUBE-XLB-*`)
/// in `iptables-save -t nat` output.
pub fn service_chains(save: &str) -> BTreeSet<String> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| {
            [
                "KUBE-SVC-",
                "KUBE-SEP-",
                "KUBE-EXT-",
                "KUBE-FW-",
                "KUBE-XLB-",
            ]
            .iter()
            .any(|p| c.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options() -> Options {
        Options {
            family: Family::V4,
            mark: "0x4000".into(),
            masquerade_all: false,
            not_local: vec!["!".into(), "-s".into(), "10.244.0.0/16".into()],
            node_port_addresses: vec![],
            localhost_node_ports: true,
        }
    }

    fn objects() -> (Vec<Value>, Vec<Value>) {
        let services = vec![
            json!({"metadata": {"namespace": "default", "name": "web"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]}}),
            json!({"metadata": {"namespace": "kube-system", "name": "kube-dns"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}),
            json!({"metadata": {"namespace": "default", "name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
            json!({"metadata": {"namespace": "default", "name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        ];
        let slices = vec![
            json!({"metadata": {"namespace": "default", "name": "web-abcde", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.244.1.5"], "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.7"], "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.9"], "conditions": {"ready": false}},
                    {"addresses": ["10.244.0.3"], "conditions": {}}]}),
            json!({"metadata": {"namespace": "default", "name": "web-v6", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv6",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": [{"addresses": ["fd00::5"]}]}),
        ];
        (services, slices)
    }

    #[test]
    fn ports_and_ready_endpoints_come_from_services_and_slices() {
        let (services, slices) = objects();
        let ports = service_ports(&services, &slices, Family::V4);
        assert_eq!(ports.len(), 3, "{ports:?}");
        let web = &ports[0];
        assert_eq!(web.port_name_string(), "default/web:http");
        assert_eq!(web.node_port, Some(30080));
        let eps: Vec<String> = web.endpoints.iter().map(endpoint_string).collect();
        assert_eq!(
            eps,
            vec!["10.244.0.3:8080", "10.244.1.5:8080", "10.244.2.7:8080"]
        );
        assert!(ports[1].endpoints.is_empty());
        assert_eq!(ports[1].protocol, "udp");
        assert!(service_ports(&services, &slices, Family::V6).is_empty());
    }

    #[test]
    fn chain_names_use_kube_proxys_hash() {
        let sp = ServicePort {
            namespace: "ns1".into(),
            name: "svc1".into(),
            port_name: "p80".into(),
            protocol: "tcp".into(),
            cluster_ip: "172.30.0.41".parse().unwrap(),
            port: 80,
            node_port: None,
            endpoints: vec![("10.180.0.1".parse().unwrap(), 80)],
        };
        // The values kube-proxy's own tests expect for this service port.
        assert_eq!(sp.svc_chain(), "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(sp.ext_chain(), "KUBE-EXT-XPGD46QRK7WJZT7O");
        assert_eq!(sp.sep_chain(&sp.endpoints[0]), "KUBE-SEP-SXIVWICOYRO3J4NJ");
    }

    #[test]
    fn renders_clusterip_nodeport_masquerade_and_rejects() {
        let (services, slices) = objects();
        let ports = service_ports(&services, &slices, Family::V4);
        let web = ports[0].clone();
        let stale: BTreeSet<String> = ["KUBE-SVC-GONEGONEGONEGONE".to_string()].into();
        let rs = render(&ports, &options(), &stale);
        let text = &rs.restore;
        let svc = web.svc_chain();
        let ext = web.ext_chain();
        for line in [
            format!("-A KUBE-SERVICES -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp -d 10.96.0.20/32 --dport 80 -j {svc}"),
            format!("-A {svc} -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp -d 10.96.0.20/32 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ"),
            format!("-A KUBE-NODEPORTS -m comment --comment default/web:http -m tcp -p tcp --dport 30080 -j {ext}"),
            format!("-A {ext} -j {svc}"),
            "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000".to_string(),
            "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN".to_string(),
            "-A KUBE-SERVICES -m comment --comment \"kube-system/kube-dns:dns has no endpoints\" -m udp -p udp -d 10.96.0.10/32 --dport 53 -j REJECT".to_string(),
            ":KUBE-SVC-GONEGONEGONEGONE - [0:0]".to_string(),
            "-X KUBE-SVC-GONEGONEGONEGONE".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let probabilities: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("-A {svc} ")) && l.contains("-> "))
            .map(|l| {
                l.split("--probability ")
                    .nth(1)
                    .map(|p| p.split(' ').next().unwrap_or(""))
                    .unwrap_or("last")
            })
            .collect();
        assert_eq!(probabilities, vec!["0.3333333333", "0.5000000000", "last"]);
        assert_eq!(text.matches("-j DNAT --to-destination").count(), 3);
        assert!(text.lines().last() == Some("COMMIT"));
        // The nodeports jump is the last rule of nat KUBE-SERVICES.
        let last_services = text
            .lines()
            .rfind(|l| l.starts_with("-A KUBE-SERVICES"))
            .unwrap();
        assert!(
            last_services.contains("-j KUBE-NODEPORTS"),
            "{last_services}"
        );

        let mut all = options();
        all.masquerade_all = true;
        let text = render(&ports, &all, &BTreeSet::new()).restore;
        assert!(text.contains(&format!("-A {svc} -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp -d 10.96.0.20/32 --dport 80 -j KUBE-MARK-MASQ")));
        let mut none = options();
        none.not_local.clear();
        let text = render(&ports, &none, &BTreeSet::new()).restore;
        assert!(
            !text.contains(&format!(
                "-A {svc} -m comment --comment \"default/web:http cluster IP\" -m tcp"
            )) || !text.contains("-j KUBE-MARK-MASQ\n-A KUBE-SVC")
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with(&format!("-A {svc}")) && l.ends_with("-j KUBE-MARK-MASQ"))
        );
    }

    #[test]
    fn finds_service_chains_in_iptables_save() {
        let save = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAA - [0:0]\n:KUBE-SEP-BBBB - [0:0]\n:KUBE-EXT-CCCC - [0:0]\n:CNI-xyz - [0:0]\nCOMMIT\n";
        let chains: Vec<String> = service_chains(save).into_iter().collect();
        assert_eq!(
            chains,
            vec!["KUBE-EXT-CCCC", "KUBE-SEP-BBBB", "KUBE-SVC-AAAA"]
        );
    }
}
