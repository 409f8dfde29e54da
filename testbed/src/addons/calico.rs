//! The calico/node double (`calico-node`, the calico-node DaemonSet's container on the node's
//! network) and calico/cni's installer (`/opt/cni/bin/install`). The daemon reads its environment as
//! calico-node's startup does and exits 1 on a bad value; it creates the default IPv4 IPPool, claims
//! a /26 block for its node as an IPAMBlock + BlockAffinity through the API (calico's Kubernetes
//! datastore), records the node's address and VXLAN tunnel in the Node's `projectcalico.org/`
//! annotations, and programs what felix programs in VXLAN mode: `vxlan.calico` (VNI 4096, port 4789)
//! with FDB, neighbour and `onlink` routes to every other node's blocks, a blackhole for its own
//! block, the `cali40*` ipsets and `cali-` chains with `cali:` rule comments. Felix's health is
//! served on 127.0.0.1:9099 (`-felix-ready`/`-felix-live` ask it). BIRD is not here: with
//! `CALICO_NETWORKING_BACKEND=bird` the `-bird-ready`/`-bird-live` probes fail as BIRD's absent
//! socket makes them fail, and an IP-in-IP pool is refused by the kernel (no tunl0).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{run, run_with_input};
use crate::common::client::ApiClient;
use crate::common::kubeconfig::ClientConfig;
use crate::logf;

const COMPONENT: &str = "calico-node";
/// Felix's VXLAN device, VNI and port (its defaults).
pub const VXLAN_DEVICE: &str = "vxlan.calico";
const VXLAN_VNI: &str = "4096";
const VXLAN_PORT: &str = "4789";
/// The routing protocol number felix marks its routes with.
const FELIX_PROTO: &str = "80";
const HEALTH: &str = "127.0.0.1:9099";
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const CALICO_API: &str = "/apis/crd.projectcalico.org/v1";
const BLOCK_PREFIX: u8 = 26;
const POOL_NAME: &str = "default-ipv4-ippool";

/// calico-node's configuration, from its environment as the rendered DaemonSet sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub nodename: String,
    pub backend: String,
    pub pool: Option<Ipv4Net>,
    pub vxlan: bool,
    pub ipip: bool,
    pub autodetect: Autodetect,
    /// FELIX_VXLANMTU; 0 or unset: the interface's MTU minus 50.
    pub vxlan_mtu: u32,
}

/// `IP_AUTODETECTION_METHOD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Autodetect {
    FirstFound,
    Cidrs(Vec<ipnet::IpNet>),
    CanReach(String),
    Interface(String),
    KubernetesInternalIp,
}

/// The error calico-node's startup logs before it terminates.
fn fatal(message: String) -> anyhow::Error {
    anyhow!("[ERROR][1] startup/startup.go: {message}")
}

fn encapsulation_mode(name: &str, value: Option<&str>) -> Result<bool> {
    match value.unwrap_or("Never") {
        "Never" | "never" | "Off" | "off" | "" => Ok(false),
        "Always" | "always" | "CrossSubnet" | "cross-subnet" => Ok(true),
        other => Err(fatal(format!(
            "Unrecognized {} mode specified in {name} '{other}'",
            if name.ends_with("IPIP") {
                "IPIP"
            } else {
                "VXLAN"
            }
        ))),
    }
}

/// Reads calico-node's environment (`env`), refusing what calico-node's startup refuses.
pub fn config(env: &BTreeMap<String, String>) -> Result<NodeConfig> {
    let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let nodename = get("NODENAME")
        .map(str::to_string)
        .or_else(|| get("HOSTNAME").map(str::to_string))
        .ok_or_else(|| fatal("Unable to determine the node name (NODENAME)".into()))?;
    let backend = get("CALICO_NETWORKING_BACKEND")
        .unwrap_or("bird")
        .to_string();
    if !matches!(backend.as_str(), "bird" | "vxlan" | "none") {
        bail!(fatal(format!(
            "Invalid CALICO_NETWORKING_BACKEND '{backend}': must be one of bird, vxlan, none"
        )));
    }
    let pool = match (get("IP"), get("CALICO_IPV4POOL_CIDR")) {
        (Some("none"), _) => None,
        (_, None) => Some(
            "192.168.0.0/16"
                .parse()
                .map_err(|_| anyhow!("default pool"))?,
        ),
        (_, Some(text)) => Some(text.parse::<Ipv4Net>().map_err(|_| {
            fatal(format!(
                "Invalid CIDR specified in CALICO_IPV4POOL_CIDR '{text}'"
            ))
        })?),
    };
    if let Some(pool) = pool
        && pool.prefix_len() > BLOCK_PREFIX
    {
        bail!(fatal(format!(
            "Invalid CIDR specified in CALICO_IPV4POOL_CIDR '{pool}': smaller than the block size /{BLOCK_PREFIX}"
        )));
    }
    if let Some(pool) = pool
        && pool.trunc() != pool
    {
        bail!(fatal(format!(
            "Invalid CIDR specified in CALICO_IPV4POOL_CIDR '{pool}': host bits set (the network is {})",
            pool.trunc()
        )));
    }
    let vxlan = encapsulation_mode("CALICO_IPV4POOL_VXLAN", get("CALICO_IPV4POOL_VXLAN"))?;
    let ipip = encapsulation_mode("CALICO_IPV4POOL_IPIP", get("CALICO_IPV4POOL_IPIP"))?;
    if vxlan && ipip {
        bail!(fatal(
            "Invalid IPPool: IPIP and VXLAN modes cannot both be enabled (CALICO_IPV4POOL_IPIP, CALICO_IPV4POOL_VXLAN)"
                .into()
        ));
    }
    let method = get("IP_AUTODETECTION_METHOD").unwrap_or("first-found");
    let autodetect = autodetect(method)?;
    let vxlan_mtu = match get("FELIX_VXLANMTU") {
        None => 0,
        Some(text) => text.parse::<u32>().map_err(|_| {
            anyhow!(
                "[ERROR][1] felix/config_params.go: Failed to parse config parameter VXLANMTU: invalid int '{text}'"
            )
        })?,
    };
    Ok(NodeConfig {
        nodename,
        backend,
        pool,
        vxlan,
        ipip,
        autodetect,
        vxlan_mtu,
    })
}

fn autodetect(method: &str) -> Result<Autodetect> {
    let invalid = || fatal(format!("Invalid IP autodetection method: {method}"));
    if method == "first-found" {
        return Ok(Autodetect::FirstFound);
    }
    if method == "kubernetes-internal-ip" {
        return Ok(Autodetect::KubernetesInternalIp);
    }
    let (kind, value) = method.split_once('=').ok_or_else(invalid)?;
    match kind {
        "cidr" => value
            .split(',')
            .map(|c| c.trim().parse::<ipnet::IpNet>())
            .collect::<Result<Vec<_>, _>>()
            .map(Autodetect::Cidrs)
            .map_err(|_| invalid()),
        "can-reach" if !value.is_empty() => Ok(Autodetect::CanReach(value.to_string())),
        "interface" if !value.is_empty() => Ok(Autodetect::Interface(value.to_string())),
        _ => Err(invalid()),
    }
}

/// An interface's IPv4 address (`ip -j -4 addr`).
#[derive(Debug, Clone)]
struct Address {
    interface: String,
    net: Ipv4Net,
}

fn addresses() -> Result<Vec<Address>> {
    let text = run("ip", &["-j", "-4", "addr", "show"])?;
    let links: Value = serde_json::from_str(&text)?;
    let mut found = Vec::new();
    for link in links.as_array().into_iter().flatten() {
        let name = link["ifname"].as_str().unwrap_or_default();
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let (Some(ip), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) else {
                continue;
            };
            if let (Ok(ip), Ok(len)) = (ip.parse::<Ipv4Addr>(), u8::try_from(len))
                && let Ok(net) = Ipv4Net::new(ip, len)
            {
                found.push(Address {
                    interface: name.to_string(),
                    net,
                });
            }
        }
    }
    Ok(found)
}

/// Interfaces calico's `first-found` skips (its default exclusions).
fn excluded(name: &str) -> bool {
    [
        "lo",
        "docker",
        "cbr",
        "dummy",
        "virbr",
        "lxcbr",
        "veth",
        "cali",
        "tunl",
        "flannel",
        "weave",
        "cni",
        "vxlan",
        "kube-ipvs",
        "wireguard",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// The node's address by the autodetection method (`internal_ip`: the Node's InternalIP).
fn detect(method: &Autodetect, internal_ip: Option<Ipv4Addr>) -> Result<Address> {
    let all = addresses()?;
    let found = match method {
        Autodetect::FirstFound => all.into_iter().find(|a| !excluded(&a.interface)),
        Autodetect::Cidrs(cidrs) => all
            .into_iter()
            .find(|a| cidrs.iter().any(|c| c.contains(&IpAddr::V4(a.net.addr())))),
        Autodetect::CanReach(target) => {
            let text = run("ip", &["-j", "-4", "route", "get", target])?;
            let routes: Value = serde_json::from_str(&text)?;
            let source = routes[0]["prefsrc"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            all.into_iter().find(|a| a.net.addr().to_string() == source)
        }
        Autodetect::Interface(pattern) => {
            let re = regex_lite(pattern);
            all.into_iter().find(|a| re(&a.interface))
        }
        Autodetect::KubernetesInternalIp => {
            all.into_iter().find(|a| Some(a.net.addr()) == internal_ip)
        }
    };
    found.ok_or_else(|| {
        fatal(format!(
            "Couldn't autodetect an IPv4 address. If auto-detecting, choose a different autodetection method. Otherwise provide an explicit address. (method {method:?})"
        ))
    })
}

/// A name matcher for `interface=`: alternatives of literal prefixes ending in `.*` or exact names.
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool + '_ {
    move |name: &str| {
        pattern.split('|').any(|p| {
            let p = p.trim_start_matches('^').trim_end_matches('$');
            match p.strip_suffix(".*") {
                Some(prefix) => name.starts_with(prefix),
                None => name == p,
            }
        })
    }
}

/// The in-cluster API client (the pod's service account).
pub(crate) fn in_cluster() -> Result<ApiClient> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST")
        .map_err(|_| anyhow!("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"))?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let token = std::fs::read_to_string(format!("{SA_DIR}/token"))
        .context("read the service account token")?;
    ApiClient::new(&ClientConfig {
        server: format!("https://{host}:{port}"),
        ca_pem: Some(std::fs::read(format!("{SA_DIR}/ca.crt"))?),
        insecure: false,
        tls_server_name: None,
        client_cert_pem: None,
        client_key_pem: None,
        token: Some(token.trim().to_string()),
    })
}

/// `10.244.0.0/26` → `10-244-0-0-26`, calico's object name for a block.
pub fn block_name(block: &Ipv4Net) -> String {
    block.to_string().replace(['.', '/'], "-")
}

/// The IPAMBlocks' (cidr, affinity) pairs.
async fn blocks(api: &ApiClient) -> Result<Vec<(Ipv4Net, String)>> {
    let list = api.get(&format!("{CALICO_API}/ipamblocks")).await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            Some((
                b["spec"]["cidr"].as_str()?.parse().ok()?,
                b["spec"]["affinity"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ))
        })
        .collect())
}

/// This node's block: the one already affine to it, else the first free /26 of the pool, claimed
/// by creating its IPAMBlock (a conflict means another node claimed it first).
async fn claim_block(api: &ApiClient, pool: Ipv4Net, node: &str) -> Result<Ipv4Net> {
    let affinity = format!("host:{node}");
    let existing = blocks(api).await?;
    if let Some((cidr, _)) = existing.iter().find(|(_, a)| *a == affinity) {
        return Ok(*cidr);
    }
    let taken: BTreeSet<Ipv4Net> = existing.iter().map(|(c, _)| *c).collect();
    let candidates = pool
        .subnets(BLOCK_PREFIX)
        .map_err(|e| anyhow!("split {pool}: {e}"))?;
    for block in candidates.filter(|b| !taken.contains(b)) {
        let name = block_name(&block);
        let size = 1usize << (32 - BLOCK_PREFIX);
        let mut allocations = vec![Value::Null; size];
        allocations[0] = json!(0);
        let body = json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock",
            "metadata": {"name": name},
            "spec": {
                "cidr": block.to_string(), "affinity": affinity, "strictAffinity": false,
                "allocations": allocations,
                "unallocated": (1..size).collect::<Vec<_>>(),
                "attributes": [{"handle_id": format!("vxlan-tunnel-addr-{node}"),
                                "secondary": {"node": node, "type": "vxlanTunnelAddress"}}],
                "deleted": false,
            }
        });
        match api.create(&format!("{CALICO_API}/ipamblocks"), &body).await {
            Ok(_) => {}
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
        let affinity_body = json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "BlockAffinity",
            "metadata": {"name": format!("{node}-{name}")},
            "spec": {"node": node, "cidr": block.to_string(), "state": "confirmed", "deleted": "false"}
        });
        match api
            .create(&format!("{CALICO_API}/blockaffinities"), &affinity_body)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(block);
    }
    bail!("[ERROR][1] ipam/ipam.go: no more free affine blocks in pool {pool} for host {node}")
}

/// Creates the default pool and ClusterInformation when missing, as calico-node's startup does.
async fn ensure_pool(api: &ApiClient, config: &NodeConfig, pool: Ipv4Net) -> Result<()> {
    let body = json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": POOL_NAME},
        "spec": {
            "cidr": pool.to_string(), "blockSize": BLOCK_PREFIX,
            "ipipMode": if config.ipip {"Always"} else {"Never"},
            "vxlanMode": if config.vxlan {"Always"} else {"Never"},
            "natOutgoing": true, "nodeSelector": "all()",
        }
    });
    match api.create(&format!("{CALICO_API}/ippools"), &body).await {
        Ok(_) => logf!(COMPONENT, "Created default IPv4 pool ({pool})"),
        Err(e) if e.is_conflict() => {}
        Err(e) => return Err(e.into()),
    }
    let info = json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "ClusterInformation",
        "metadata": {"name": "default"},
        "spec": {"datastoreReady": true, "calicoVersion": "v3.30.0", "clusterType": "k8s,bgp"}
    });
    match api
        .create(&format!("{CALICO_API}/clusterinformations"), &info)
        .await
    {
        Ok(_) | Err(_) => Ok(()),
    }
}

/// A rule comment as felix writes it: `cali:` and a 16-character hash of the chain and rule.
pub fn rule_id(chain: &str, rule: &str) -> String {
    let digest = Sha256::digest(format!("{chain}\0{rule}").as_bytes());
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    format!("cali:{}", &text[..16])
}

fn rule(chain: &str, spec: &str) -> String {
    format!(
        "-A {chain} -m comment --comment \"{}\" {spec}",
        rule_id(chain, spec)
    )
}

/// The iptables-restore input for felix's chains (filter and nat), with the hooks into the
/// built-in chains inserted first.
fn iptables_rules() -> String {
    let mut out = String::new();
    let filter_chains = [
        "cali-INPUT",
        "cali-FORWARD",
        "cali-OUTPUT",
        "cali-from-wl-dispatch",
        "cali-to-wl-dispatch",
    ];
    out.push_str("*filter\n");
    for c in filter_chains {
        out.push_str(&format!(":{c} - [0:0]\n"));
    }
    for (builtin, chain) in [
        ("INPUT", "cali-INPUT"),
        ("FORWARD", "cali-FORWARD"),
        ("OUTPUT", "cali-OUTPUT"),
    ] {
        out.push_str(&format!(
            "-I {builtin} 1 -m comment --comment \"{}\" -j {chain}\n",
            rule_id(builtin, chain)
        ));
    }
    for (chain, spec) in [
        ("cali-FORWARD", "-i cali+ -j cali-from-wl-dispatch"),
        ("cali-FORWARD", "-o cali+ -j cali-to-wl-dispatch"),
        (
            "cali-FORWARD",
            "-m set --match-set cali40all-ipam-pools src -j ACCEPT",
        ),
        (
            "cali-FORWARD",
            "-m set --match-set cali40all-ipam-pools dst -j ACCEPT",
        ),
        ("cali-from-wl-dispatch", "-j ACCEPT"),
        ("cali-to-wl-dispatch", "-j ACCEPT"),
        (
            "cali-INPUT",
            "-p udp -m udp --dport 4789 -m set --match-set cali40all-vxlan-net src -m addrtype --dst-type LOCAL -j ACCEPT",
        ),
        ("cali-INPUT", "-i cali+ -j ACCEPT"),
        ("cali-OUTPUT", "-o cali+ -j ACCEPT"),
    ] {
        out.push_str(&rule(chain, spec));
        out.push('\n');
    }
    out.push_str("COMMIT\n*nat\n");
    for c in ["cali-PREROUTING", "cali-POSTROUTING", "cali-nat-outgoing"] {
        out.push_str(&format!(":{c} - [0:0]\n"));
    }
    for (builtin, chain) in [
        ("PREROUTING", "cali-PREROUTING"),
        ("POSTROUTING", "cali-POSTROUTING"),
    ] {
        out.push_str(&format!(
            "-I {builtin} 1 -m comment --comment \"{}\" -j {chain}\n",
            rule_id(builtin, chain)
        ));
    }
    out.push_str(&rule("cali-POSTROUTING", "-j cali-nat-outgoing"));
    out.push('\n');
    out.push_str(&rule(
        "cali-nat-outgoing",
        "-m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst -j MASQUERADE",
    ));
    out.push_str("\nCOMMIT\n");
    out
}

/// Felix's ipsets: the pools (all, and those that masquerade), the other nodes' VXLAN addresses
/// and this host's addresses.
fn program_ipsets(pool: Ipv4Net, peers: &[Ipv4Addr], own: &[Ipv4Addr]) -> Result<()> {
    let mut input = String::new();
    for (name, kind) in [
        ("cali40all-ipam-pools", "hash:net"),
        ("cali40masq-ipam-pools", "hash:net"),
        ("cali40all-vxlan-net", "hash:net"),
        ("cali40this-host", "hash:ip"),
    ] {
        input.push_str(&format!(
            "create {name} {kind} family inet -exist\nflush {name}\n"
        ));
    }
    input.push_str(&format!(
        "add cali40all-ipam-pools {pool}\nadd cali40masq-ipam-pools {pool}\n"
    ));
    for p in peers {
        input.push_str(&format!("add cali40all-vxlan-net {p}/32 -exist\n"));
    }
    for a in own {
        input.push_str(&format!("add cali40this-host {a} -exist\n"));
    }
    run_with_input("ipset", &["restore"], &input)
}

/// Whether felix's hook into FORWARD is in place (the chains are programmed once).
fn chains_present() -> bool {
    run("iptables-nft", &["-w", "5", "-S", "cali-FORWARD"]).is_ok()
}

/// One other node, as its Node annotations and IPAMBlocks describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    address: Ipv4Addr,
    tunnel: Ipv4Addr,
    mac: String,
    blocks: Vec<Ipv4Net>,
}

async fn peers(api: &ApiClient, me: &str) -> Result<BTreeMap<String, Peer>> {
    let nodes = api.get("/api/v1/nodes").await?;
    let all_blocks = blocks(api).await?;
    let mut found = BTreeMap::new();
    for node in nodes["items"].as_array().into_iter().flatten() {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        if name == me {
            continue;
        }
        let a = &node["metadata"]["annotations"];
        let address = a["projectcalico.org/IPv4Address"]
            .as_str()
            .and_then(|s| s.split('/').next())
            .and_then(|s| s.parse().ok());
        let tunnel = a["projectcalico.org/IPv4VXLANTunnelAddr"]
            .as_str()
            .and_then(|s| s.parse().ok());
        let mac = a["projectcalico.org/VXLANTunnelMACAddr"].as_str();
        if let (Some(address), Some(tunnel), Some(mac)) = (address, tunnel, mac) {
            let affinity = format!("host:{name}");
            found.insert(
                name.to_string(),
                Peer {
                    address,
                    tunnel,
                    mac: mac.to_string(),
                    blocks: all_blocks
                        .iter()
                        .filter(|(_, a)| *a == affinity)
                        .map(|(c, _)| *c)
                        .collect(),
                },
            );
        }
    }
    Ok(found)
}

/// Creates `vxlan.calico` on `local`'s interface with the tunnel address; returns its MAC.
fn ensure_vxlan(local: &Address, tunnel: Ipv4Addr, mtu: u32) -> Result<String> {
    if run("ip", &["link", "show", VXLAN_DEVICE]).is_err() {
        run(
            "ip",
            &[
                "link",
                "add",
                VXLAN_DEVICE,
                "type",
                "vxlan",
                "id",
                VXLAN_VNI,
                "local",
                &local.net.addr().to_string(),
                "dev",
                &local.interface,
                "dstport",
                VXLAN_PORT,
                "nolearning",
            ],
        )?;
    }
    run(
        "ip",
        &["link", "set", VXLAN_DEVICE, "mtu", &mtu.to_string()],
    )?;
    run(
        "ip",
        &[
            "addr",
            "replace",
            &format!("{tunnel}/32"),
            "dev",
            VXLAN_DEVICE,
        ],
    )?;
    run("ip", &["link", "set", VXLAN_DEVICE, "up"])?;
    let text = run("ip", &["-j", "link", "show", VXLAN_DEVICE])?;
    let link: Value = serde_json::from_str(&text)?;
    link[0]["address"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no MAC address on {VXLAN_DEVICE}"))
}

/// Routes, neighbours and FDB entries for every peer; stale ones are removed.
fn program_peers(peers: &BTreeMap<String, Peer>, previous: &BTreeMap<String, Peer>) {
    for (name, old) in previous {
        if peers.get(name) == Some(old) {
            continue;
        }
        for block in &old.blocks {
            let _ = run(
                "ip",
                &["route", "del", &block.to_string(), "dev", VXLAN_DEVICE],
            );
        }
        let _ = run(
            "ip",
            &["neigh", "del", &old.tunnel.to_string(), "dev", VXLAN_DEVICE],
        );
        let _ = run("bridge", &["fdb", "del", &old.mac, "dev", VXLAN_DEVICE]);
    }
    for (name, peer) in peers {
        if previous.get(name) == Some(peer) {
            continue;
        }
        let steps: Vec<Vec<String>> = [
            vec![
                "ip",
                "neigh",
                "replace",
                &peer.tunnel.to_string(),
                "lladdr",
                &peer.mac,
                "dev",
                VXLAN_DEVICE,
                "nud",
                "permanent",
            ],
            vec![
                "bridge",
                "fdb",
                "replace",
                &peer.mac,
                "dev",
                VXLAN_DEVICE,
                "dst",
                &peer.address.to_string(),
            ],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(str::to_string).collect())
        .chain(peer.blocks.iter().map(|b| {
            [
                "ip",
                "route",
                "replace",
                &b.to_string(),
                "via",
                &peer.tunnel.to_string(),
                "dev",
                VXLAN_DEVICE,
                "onlink",
                "proto",
                FELIX_PROTO,
            ]
            .into_iter()
            .map(str::to_string)
            .collect()
        }))
        .collect();
        for step in steps {
            let args: Vec<&str> = step[1..].iter().map(String::as_str).collect();
            if let Err(e) = run(&step[0], &args) {
                logf!(
                    COMPONENT,
                    "[WARNING][felix] route_table.go: programming {name}: {e:#}"
                );
            }
        }
    }
}

/// Serves felix's health endpoints (`/readiness`, `/liveness`) on 127.0.0.1:9099.
async fn serve_health(ready: Arc<AtomicBool>) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(HEALTH)
        .await
        .with_context(|| format!("felix health: listen on {HEALTH}"))?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        let ready = ready.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let live = request.starts_with("GET /liveness");
            let ok = live || ready.load(Ordering::SeqCst);
            let status = if ok {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = stream
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        });
    }
}

/// `calico-node [flags]`: the daemon (no flags), or one of the image's helper modes.
pub fn main(args: &[String]) -> i32 {
    let flags: Vec<&str> = args.iter().map(String::as_str).collect();
    match flags.as_slice() {
        [] => crate::run_component(COMPONENT, args, |_| daemon()),
        ["-init", ..] => {
            // mount-bpffs: the BPF filesystem for the eBPF dataplane; best effort, as upstream
            // continues without it when the iptables dataplane is used.
            0
        }
        ["-shutdown"] => 0,
        probe
            if probe
                .iter()
                .all(|f| f.starts_with("-felix-") || f.starts_with("-bird")) =>
        {
            probe_main(probe)
        }
        other => {
            eprintln!(
                "calico-node: flag provided but not defined: {}",
                other.join(" ")
            );
            2
        }
    }
}

/// The liveness/readiness probe modes: felix's health endpoint; BIRD's control socket.
fn probe_main(flags: &[&str]) -> i32 {
    for flag in flags {
        let result = match *flag {
            "-felix-ready" | "-felix-live" => {
                let path = if *flag == "-felix-ready" {
                    "readiness"
                } else {
                    "liveness"
                };
                felix_health(path)
            }
            "-bird-ready" | "-bird-live" | "-bird6-ready" | "-bird6-live" => {
                let socket = if flag.contains('6') {
                    "bird6.ctl"
                } else {
                    "bird.ctl"
                };
                if Path::new("/var/run/calico").join(socket).exists() {
                    Ok(())
                } else {
                    Err(anyhow!(
                        "BIRD is not ready: Error querying BIRD: unable to connect to BIRDv4 socket: dial unix /var/run/calico/{socket}: connect: no such file or directory"
                    ))
                }
            }
            other => Err(anyhow!("flag provided but not defined: {other}")),
        };
        if let Err(e) = result {
            let what = if flag.ends_with("live") {
                "live"
            } else {
                "ready"
            };
            eprintln!("calico/node is not {what}: {e:#}");
            return 1;
        }
    }
    0
}

fn felix_health(path: &str) -> Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&HEALTH.parse()?, Duration::from_secs(2))
        .map_err(|e| {
            anyhow!(
                "felix is not {}: Get \"http://localhost:9099/{path}\": {e}",
                if path == "readiness" { "ready" } else { "live" }
            )
        })?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("GET /{path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())?;
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    if reply.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        bail!("felix is not ready: readiness probe reporting 503")
    }
}

async fn daemon() -> Result<()> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let config = config(&env)?;
    logf!(
        COMPONENT,
        "Starting calico/node (testbed double) for {} (backend {})",
        config.nodename,
        config.backend
    );
    let api = in_cluster()?;
    let node = api
        .get(&format!("/api/v1/nodes/{}", config.nodename))
        .await
        .map_err(|e| {
            fatal(format!(
                "Unable to get node resource {}: {e}",
                config.nodename
            ))
        })?;
    let internal = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str()?.parse().ok());
    let local = detect(&config.autodetect, internal)?;
    logf!(
        COMPONENT,
        "Using autodetected IPv4 address on interface {}: {}",
        local.interface,
        local.net
    );
    std::fs::create_dir_all("/var/lib/calico")?;
    std::fs::write("/var/lib/calico/nodename", &config.nodename)?;
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(serve_health(ready.clone()));
    let Some(pool) = config.pool else {
        logf!(COMPONENT, "IP=none: no IPv4 networking");
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    };
    ensure_pool(&api, &config, pool).await?;
    if config.ipip {
        // felix creates tunl0 for an IP-in-IP pool; this kernel has no ipip: it fails, as felix's
        // dataplane does, and the node never becomes ready.
        if let Err(e) = run("ip", &["link", "add", "tunl0", "type", "ipip"]) {
            logf!(
                COMPONENT,
                "[ERROR][felix] ipip_mgr.go: Failed to configure IPIP tunnel device, retrying... error={e:#}"
            );
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
    }
    let block = claim_block(&api, pool, &config.nodename).await?;
    let tunnel = block.network();
    logf!(
        COMPONENT,
        "Claimed block {block} for {}; VXLAN tunnel address {tunnel}",
        config.nodename
    );
    let mtu = match config.vxlan_mtu {
        0 => {
            let text = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", local.interface))
                .unwrap_or_else(|_| "1500".into());
            text.trim()
                .parse::<u32>()
                .unwrap_or(1500)
                .saturating_sub(50)
        }
        m => m,
    };
    let mac = ensure_vxlan(&local, tunnel, mtu)?;
    let _ = run(
        "ip",
        &[
            "route",
            "replace",
            "blackhole",
            &block.to_string(),
            "proto",
            FELIX_PROTO,
        ],
    );
    // calico's Kubernetes datastore writes the Node's annotations through its status (its RBAC
    // grants nodes/status, not nodes).
    api.patch(
        &format!("/api/v1/nodes/{}/status", config.nodename),
        crate::common::client::PatchType::Merge,
        &json!({"metadata": {"annotations": {
            "projectcalico.org/IPv4Address": local.net.to_string(),
            "projectcalico.org/IPv4VXLANTunnelAddr": tunnel.to_string(),
            "projectcalico.org/VXLANTunnelMACAddr": mac,
        }}}),
    )
    .await?;
    let own: Vec<Ipv4Addr> = addresses()?.iter().map(|a| a.net.addr()).collect();
    let mut previous: BTreeMap<String, Peer> = BTreeMap::new();
    loop {
        match peers(&api, &config.nodename).await {
            Ok(now) => {
                program_peers(&now, &previous);
                let addresses: Vec<Ipv4Addr> = now.values().map(|p| p.address).collect();
                let programmed = program_ipsets(pool, &addresses, &own).and_then(|()| {
                    if chains_present() {
                        Ok(())
                    } else {
                        run_with_input(
                            "iptables-nft-restore",
                            &["-w", "5", "--noflush"],
                            &iptables_rules(),
                        )
                    }
                });
                match programmed {
                    Ok(()) => {
                        if !ready.swap(true, Ordering::SeqCst) {
                            logf!(
                                COMPONENT,
                                "Felix in sync: dataplane programmed for {} peers",
                                now.len()
                            );
                        }
                    }
                    Err(e) => logf!(COMPONENT, "[ERROR][felix] int_dataplane.go: {e:#}"),
                }
                previous = now;
            }
            Err(e) => logf!(COMPONENT, "[WARNING][felix] syncer: {e:#}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `/opt/cni/bin/install` (the install-cni init container): calico's CNI binaries into the host's
/// /opt/cni/bin (links to the testbed's binary), `calico-kubeconfig` with a token of the
/// calico-cni-plugin service account, and the network config from `CNI_NETWORK_CONFIG` with its
/// placeholders filled, written as `CNI_CONF_NAME`.
pub fn install_main(args: &[String]) -> i32 {
    crate::run_component("install-cni", args, |_| install())
}

async fn install() -> Result<()> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let name = env("CNI_CONF_NAME").unwrap_or_else(|| "10-calico.conflist".into());
    let template = env("CNI_NETWORK_CONFIG")
        .ok_or_else(|| anyhow!("CNI_NETWORK_CONFIG is not set: no network config to install"))?;
    let node =
        env("KUBERNETES_NODE_NAME").ok_or_else(|| anyhow!("KUBERNETES_NODE_NAME is not set"))?;
    let mtu = env("CNI_MTU").unwrap_or_else(|| "1500".into());
    mtu.parse::<u32>()
        .map_err(|_| anyhow!("Failed to parse CNI_MTU {mtu:?}: not an integer"))?;
    let bin = Path::new("/host/opt/cni/bin");
    if !bin.is_dir() {
        bail!("/host/opt/cni/bin is not mounted: cannot install the CNI binaries");
    }
    for plugin in ["calico", "calico-ipam"] {
        let target = bin.join(plugin);
        let _ = std::fs::remove_file(&target);
        std::os::unix::fs::symlink("/opt/testbed/bin/tbnode", &target)
            .with_context(|| format!("install {}", target.display()))?;
    }
    let api = in_cluster()?;
    let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"audiences": [], "expirationSeconds": 86400}});
    let path = "/api/v1/namespaces/kube-system/serviceaccounts/calico-cni-plugin/token";
    // The Service address answers once kube-proxy runs on this node: retried for a while
    // (upstream's installer exits at once and the kubelet restarts it with back-off).
    let mut attempts = 0;
    let token = loop {
        match api.create(path, &request).await {
            Ok(token) => break token,
            Err(e) if e.status == 0 && attempts < 40 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context("request a token for the calico-cni-plugin service account"));
            }
        }
    };
    let token = token["status"]["token"]
        .as_str()
        .ok_or_else(|| anyhow!("the TokenRequest returned no token"))?;
    let ca = std::fs::read(format!("{SA_DIR}/ca.crt"))?;
    let host = std::env::var("KUBERNETES_SERVICE_HOST")?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let kubeconfig = format!(
        "# Kubeconfig file for the Calico CNI plugin. Installed by calico/node.\napiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://{host}:{port}\n    certificate-authority-data: \"{}\"\nusers:\n- name: calico\n  user:\n    token: {token}\ncontexts:\n- name: calico-context\n  context:\n    cluster: local\n    user: calico\ncurrent-context: calico-context\n",
        base64::engine::general_purpose::STANDARD.encode(ca)
    );
    let net_d = Path::new("/host/etc/cni/net.d");
    std::fs::create_dir_all(net_d)?;
    write_private(&net_d.join("calico-kubeconfig"), &kubeconfig)?;
    let conf = template
        .replace("__KUBERNETES_NODE_NAME__", &node)
        .replace("__CNI_MTU__", &mtu)
        .replace(
            "__KUBECONFIG_FILEPATH__",
            "/etc/cni/net.d/calico-kubeconfig",
        );
    serde_json::from_str::<Value>(&conf)
        .map_err(|e| anyhow!("CNI_NETWORK_CONFIG is not valid JSON after substitution: {e}"))?;
    write_private(&net_d.join(&name), &conf)?;
    logf!(
        "install-cni",
        "Created /host/etc/cni/net.d/{name}; CNI plugin installed"
    );
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_rendered_vxlan_environment_is_read() {
        let c = config(&env(&[
            ("NODENAME", "node1"),
            ("CALICO_NETWORKING_BACKEND", "vxlan"),
            ("CALICO_IPV4POOL_CIDR", "10.244.0.0/16"),
            ("CALICO_IPV4POOL_VXLAN", "Always"),
            ("CALICO_IPV4POOL_IPIP", "Never"),
            ("IP_AUTODETECTION_METHOD", "cidr=172.18.0.0/16"),
            ("FELIX_VXLANMTU", "1450"),
        ]))
        .unwrap();
        assert_eq!(c.pool, Some("10.244.0.0/16".parse().unwrap()));
        assert!(c.vxlan && !c.ipip);
        assert_eq!(c.vxlan_mtu, 1450);
        assert_eq!(
            c.autodetect,
            Autodetect::Cidrs(vec!["172.18.0.0/16".parse().unwrap()])
        );
    }

    #[test]
    fn bad_values_are_refused_as_calico_node_refuses_them() {
        let bad = |k: &str, v: &str| {
            config(&env(&[("NODENAME", "n"), (k, v)]))
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad("CALICO_IPV4POOL_CIDR", "10.244.0.0/33")
                .contains("Invalid CIDR specified in CALICO_IPV4POOL_CIDR '10.244.0.0/33'")
        );
        assert!(bad("CALICO_IPV4POOL_CIDR", "10.244.1.0/16").contains("host bits"));
        assert!(
            bad("IP_AUTODETECTION_METHOD", "magic")
                .contains("Invalid IP autodetection method: magic")
        );
        assert!(bad("CALICO_IPV4POOL_VXLAN", "Sometimes").contains("Unrecognized VXLAN mode"));
        assert!(bad("FELIX_VXLANMTU", "big").contains("VXLANMTU"));
    }

    #[test]
    fn rule_comments_are_cali_hashes() {
        let id = rule_id("cali-FORWARD", "-j ACCEPT");
        assert!(id.starts_with("cali:") && id.len() == 21, "{id}");
        assert!(iptables_rules().contains("-A cali-nat-outgoing -m comment --comment \"cali:"));
        assert_eq!(
            block_name(&"10.244.0.64/26".parse().unwrap()),
            "10-244-0-64-26"
        );
    }
}
