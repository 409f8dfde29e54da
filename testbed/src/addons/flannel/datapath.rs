//! The node's side of flannel's vxlan backend, made with iproute2 in the node's own network
//! namespace: the external interface flanneld picks (`--iface`, `--iface-regex`,
//! `--iface-can-reach`, else the default route's), the `flannel.<VNI>` device, and per peer node the
//! neighbour entry, FDB entry and onlink route flanneld installs; plus the `FLANNEL-POSTRTG` masquerade
//! and `FLANNEL-FWD` forward chains of `--ip-masq` and `--iptables-forward-rules`.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use ipnet::Ipv4Net;
use serde_json::Value;
use tokio::process::Command;

use super::netconf::Vxlan;

/// Bytes the vxlan encapsulation adds over IPv4 (Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8).
pub const VXLAN_OVERHEAD: u32 = 50;

async fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn ip_json(args: &[&str]) -> Result<Value> {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    let text = run("ip", &all).await?;
    Ok(serde_json::from_str(text.trim()).unwrap_or(Value::Array(vec![])))
}

/// The interface flanneld sends encapsulated traffic through, and its address.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtIface {
    pub name: String,
    pub addr: Ipv4Addr,
    pub mtu: u32,
}

/// Every interface with its IPv4 addresses (`ip -j addr`).
async fn interfaces() -> Result<Vec<(String, u32, Vec<Ipv4Addr>)>> {
    let list = ip_json(&["addr", "show"]).await?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let name = l["ifname"].as_str().unwrap_or_default().to_string();
            let mtu = l["mtu"].as_u64().unwrap_or(0) as u32;
            let addrs = l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["family"] == "inet")
                .filter_map(|a| a["local"].as_str()?.parse().ok())
                .collect();
            (name, mtu, addrs)
        })
        .collect())
}

fn with_addr(name: &str, mtu: u32, addrs: &[Ipv4Addr]) -> Result<ExtIface, String> {
    let addr = addrs
        .first()
        .copied()
        .ok_or_else(|| format!("failed to find IPv4 address for interface {name}"))?;
    Ok(ExtIface {
        name: name.to_string(),
        addr,
        mtu,
    })
}

/// `--iface` (an address or a name).
pub async fn by_iface(wanted: &str) -> Result<ExtIface, String> {
    let all = interfaces().await.map_err(|e| e.to_string())?;
    if let Ok(ip) = wanted.parse::<Ipv4Addr>() {
        return all
            .iter()
            .find(|(_, _, a)| a.contains(&ip))
            .map(|(n, m, _)| ExtIface {
                name: n.clone(),
                addr: ip,
                mtu: *m,
            })
            .ok_or_else(|| {
                format!("error looking up interface {wanted}: no interface with given IP found")
            });
    }
    let (name, mtu, addrs) = all.iter().find(|(n, _, _)| n == wanted).ok_or_else(|| {
        format!("error looking up interface {wanted}: route ip+net: no such network interface")
    })?;
    with_addr(name, *mtu, addrs)
}

/// `--iface-regex`: first an interface whose IPv4 address matches, then one whose name matches,
/// as flannel checks them (Go's regexp syntax is RE2, which the `regex` crate shares).
pub async fn by_regex(pattern: &str) -> Result<ExtIface, String> {
    let re = regex::Regex::new(pattern)
        .map_err(|e| format!("unable to compile regex {pattern:?}: {e}"))?;
    let all = interfaces().await.map_err(|e| e.to_string())?;
    for (name, mtu, addrs) in &all {
        if let Some(ip) = addrs.iter().find(|a| re.is_match(&a.to_string())) {
            return Ok(ExtIface {
                name: name.clone(),
                addr: *ip,
                mtu: *mtu,
            });
        }
    }
    for (name, mtu, addrs) in &all {
        if re.is_match(name) {
            return with_addr(name, *mtu, addrs);
        }
    }
    Err(format!("no interface matched the regex {pattern:?}"))
}

/// `--iface-can-reach`: the interface and source address `ip route get <address>` names.
pub async fn by_reach(address: &str) -> Result<ExtIface, String> {
    let target: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("invalid IP address {address:?}"))?;
    let routes = ip_json(&["route", "get", &target.to_string()])
        .await
        .map_err(|e| e.to_string())?;
    let route = routes
        .as_array()
        .and_then(|r| r.first())
        .ok_or_else(|| format!("no route to {address}"))?;
    let dev = route["dev"].as_str().unwrap_or_default().to_string();
    let all = interfaces().await.map_err(|e| e.to_string())?;
    let (name, mtu, addrs) = all
        .iter()
        .find(|(n, _, _)| *n == dev)
        .ok_or_else(|| format!("no interface {dev:?} for the route to {address}"))?;
    match route["prefsrc"].as_str().and_then(|s| s.parse().ok()) {
        Some(src) => Ok(ExtIface {
            name: name.clone(),
            addr: src,
            mtu: *mtu,
        }),
        None => with_addr(name, *mtu, addrs),
    }
}

/// No selection flag: the default route's interface.
pub async fn by_default_route() -> Result<ExtIface, String> {
    let routes = ip_json(&["route", "show", "default"])
        .await
        .map_err(|e| e.to_string())?;
    let dev = routes
        .as_array()
        .and_then(|r| r.first())
        .and_then(|r| r["dev"].as_str())
        .ok_or_else(|| "failed to get default interface: unable to find default route".to_string())?
        .to_string();
    by_iface(&dev).await
}

/// The device's attributes as the kernel holds them: (VNI, local address, port), if it exists.
async fn existing(device: &str) -> Option<(u64, String, u64)> {
    let list = ip_json(&["-d", "link", "show", device]).await.ok()?;
    let link = list.as_array()?.first()?;
    let data = &link["linkinfo"]["info_data"];
    Some((
        data["id"].as_u64()?,
        data["local"].as_str().unwrap_or_default().to_string(),
        data["port"].as_u64().unwrap_or(0),
    ))
}

/// Creates (or keeps a matching) `flannel.<VNI>` on the external interface, with nolearning unless
/// `Learning`, the MTU of the interface minus the encapsulation; returns its MAC (the VtepMAC).
pub async fn ensure_device(vx: &Vxlan, ext: &ExtIface) -> Result<String> {
    let device = vx.device();
    let port = vx.dst_port();
    let local = ext.addr.to_string();
    match existing(&device).await {
        Some((id, l, p)) if id == u64::from(vx.vni) && l == local && p == u64::from(port) => {}
        Some(_) => {
            crate::logf!(
                super::COMPONENT,
                "{device} exists but is incompatible with the configuration; recreating it"
            );
            run("ip", &["link", "delete", &device]).await?;
            create(vx, ext).await?;
        }
        None => create(vx, ext).await?,
    }
    let mtu = (ext.mtu - VXLAN_OVERHEAD).to_string();
    run("ip", &["link", "set", &device, "mtu", &mtu]).await?;
    let list = ip_json(&["link", "show", &device]).await?;
    list.as_array()
        .and_then(|l| l.first())
        .and_then(|l| l["address"].as_str())
        .map(str::to_string)
        .with_context(|| format!("read the MAC address of {device}"))
}

async fn create(vx: &Vxlan, ext: &ExtIface) -> Result<()> {
    let (device, id, port) = (vx.device(), vx.vni.to_string(), vx.dst_port().to_string());
    let local = ext.addr.to_string();
    let mut args = vec![
        "link", "add", &device, "type", "vxlan", "id", &id, "local", &local, "dev", &ext.name,
        "dstport", &port,
    ];
    args.push(if vx.learning {
        "learning"
    } else {
        "nolearning"
    });
    if vx.gbp {
        args.push("gbp");
    }
    run("ip", &args)
        .await
        .with_context(|| format!("failed to create VXLAN device {device}"))?;
    Ok(())
}

/// Gives the device only the /32 of the lease's network address and brings it up.
pub async fn configure(device: &str, lease: &Ipv4Net) -> Result<()> {
    let wanted = format!("{}/32", lease.network());
    let list = ip_json(&["addr", "show", "dev", device]).await?;
    let mut present = false;
    for a in list
        .as_array()
        .and_then(|l| l.first())
        .and_then(|l| l["addr_info"].as_array())
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet")
    {
        let have = format!(
            "{}/{}",
            a["local"].as_str().unwrap_or_default(),
            a["prefixlen"].as_u64().unwrap_or(0)
        );
        if have == wanted {
            present = true;
        } else {
            run("ip", &["addr", "del", &have, "dev", device]).await?;
        }
    }
    if !present {
        run("ip", &["addr", "add", &wanted, "dev", device]).await?;
    }
    run("ip", &["link", "set", device, "up"]).await?;
    Ok(())
}

/// A peer node as its lease (node annotations + podCIDR) describes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    pub node: String,
    pub subnet: Ipv4Net,
    pub public_ip: Ipv4Addr,
    pub vtep_mac: String,
}

/// The neighbour entry, FDB entry and onlink route of one peer (or, with DirectRouting and the peer
/// on the external interface's subnet, a plain route through its public address).
pub async fn add_peer(device: &str, ext: &ExtIface, direct: bool, peer: &Peer) -> Result<()> {
    let subnet = peer.subnet.to_string();
    let gateway = peer.subnet.network().to_string();
    let public = peer.public_ip.to_string();
    if direct && same_subnet(ext, peer.public_ip).await {
        run(
            "ip",
            &[
                "route", "replace", &subnet, "via", &public, "dev", &ext.name,
            ],
        )
        .await?;
        return Ok(());
    }
    run(
        "ip",
        &[
            "neigh",
            "replace",
            &gateway,
            "lladdr",
            &peer.vtep_mac,
            "dev",
            device,
            "nud",
            "permanent",
        ],
    )
    .await?;
    run(
        "bridge",
        &[
            "fdb",
            "replace",
            &peer.vtep_mac,
            "dev",
            device,
            "dst",
            &public,
            "self",
            "permanent",
        ],
    )
    .await?;
    run(
        "ip",
        &[
            "route", "replace", &subnet, "via", &gateway, "dev", device, "onlink",
        ],
    )
    .await?;
    Ok(())
}

/// Removes what [`add_peer`] made; entries already gone are not an error.
pub async fn remove_peer(device: &str, peer: &Peer) {
    let subnet = peer.subnet.to_string();
    let gateway = peer.subnet.network().to_string();
    let public = peer.public_ip.to_string();
    let _ = run("ip", &["route", "del", &subnet]).await;
    let _ = run("ip", &["neigh", "del", &gateway, "dev", device]).await;
    let _ = run(
        "bridge",
        &[
            "fdb",
            "del",
            &peer.vtep_mac,
            "dev",
            device,
            "dst",
            &public,
            "self",
        ],
    )
    .await;
}

async fn same_subnet(ext: &ExtIface, other: Ipv4Addr) -> bool {
    let Ok(list) = ip_json(&["addr", "show", "dev", &ext.name]).await else {
        return false;
    };
    list.as_array()
        .and_then(|l| l.first())
        .and_then(|l| l["addr_info"].as_array())
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet")
        .filter_map(|a| {
            let ip: Ipv4Addr = a["local"].as_str()?.parse().ok()?;
            Ipv4Net::new(ip, a["prefixlen"].as_u64()? as u8).ok()
        })
        .any(|net| net.trunc().contains(&other))
}

/// One iptables rule: table, chain, and its specification.
pub type Rule = (&'static str, &'static str, Vec<String>);

const MASQ: &str = "flanneld masq";
const FORWARD: &str = "flanneld forward";
/// kube-proxy's masquerade mark: traffic it marks is left to its own MASQUERADE.
const KUBE_PROXY_MARK: &str = "0x4000/0x4000";

fn spec(parts: &[&str], comment: &str, target: &[&str]) -> Vec<String> {
    parts
        .iter()
        .copied()
        .chain(["-m", "comment", "--comment", comment, "-j"])
        .chain(target.iter().copied())
        .map(str::to_string)
        .collect()
}

/// `--ip-masq`: the jump from nat POSTROUTING and FLANNEL-POSTRTG's rules (pod traffic within the
/// network untouched, pod traffic leaving it and host traffic into it masqueraded).
pub fn masq_rules(network: &Ipv4Net, lease: &Ipv4Net) -> Vec<Rule> {
    let (n, sn) = (network.to_string(), lease.to_string());
    let chain = "FLANNEL-POSTRTG";
    vec![
        ("nat", "POSTROUTING", spec(&[], MASQ, &[chain])),
        (
            "nat",
            chain,
            spec(
                &["-m", "mark", "--mark", KUBE_PROXY_MARK],
                MASQ,
                &["RETURN"],
            ),
        ),
        ("nat", chain, spec(&["-s", &n, "-d", &n], MASQ, &["RETURN"])),
        (
            "nat",
            chain,
            spec(
                &["-s", &n, "!", "-d", "224.0.0.0/4"],
                MASQ,
                &["MASQUERADE", "--random-fully"],
            ),
        ),
        (
            "nat",
            chain,
            spec(&["!", "-s", &n, "-d", &sn], MASQ, &["RETURN"]),
        ),
        (
            "nat",
            chain,
            spec(
                &["!", "-s", &n, "-d", &n],
                MASQ,
                &["MASQUERADE", "--random-fully"],
            ),
        ),
    ]
}

/// `--iptables-forward-rules`: forwarding to and from the pod network accepted.
pub fn forward_rules(network: &Ipv4Net) -> Vec<Rule> {
    let n = network.to_string();
    let chain = "FLANNEL-FWD";
    vec![
        ("filter", "FORWARD", spec(&[], FORWARD, &[chain])),
        ("filter", chain, spec(&["-s", &n], FORWARD, &["ACCEPT"])),
        ("filter", chain, spec(&["-d", &n], FORWARD, &["ACCEPT"])),
    ]
}

async fn iptables(args: &[&str]) -> Result<String> {
    let mut all = vec!["-w", "5"];
    all.extend_from_slice(args);
    run("iptables-nft", &all).await
}

/// Makes sure every rule is in place (chains created first); when one is missing, the chain's
/// rules are laid down again in order, as flannel's periodic check does.
pub async fn ensure_rules(rules: &[Rule]) -> Result<()> {
    let mut missing = false;
    for (table, chain, spec) in rules {
        let mut args = vec!["-t", *table, "-C", *chain];
        args.extend(spec.iter().map(String::as_str));
        if iptables(&args).await.is_err() {
            missing = true;
            break;
        }
    }
    if !missing {
        return Ok(());
    }
    for (table, chain, _) in rules {
        if chain.starts_with("FLANNEL") {
            // -N fails when the chain exists; -F then empties it.
            let _ = iptables(&["-t", table, "-N", chain]).await;
            iptables(&["-t", table, "-F", chain]).await?;
        }
    }
    for (table, chain, spec) in rules {
        let mut check = vec!["-t", *table, "-C", *chain];
        check.extend(spec.iter().map(String::as_str));
        if iptables(&check).await.is_ok() {
            continue;
        }
        // The jump goes first in POSTROUTING, so flannel's decisions come before other chains'.
        let mut args = if *chain == "POSTROUTING" {
            vec!["-t", *table, "-I", *chain, "1"]
        } else {
            vec!["-t", *table, "-A", *chain]
        };
        args.extend(spec.iter().map(String::as_str));
        iptables(&args).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_keeps_pod_to_pod_traffic_and_masks_the_rest() {
        let rules = masq_rules(
            &"10.244.0.0/16".parse().unwrap(),
            &"10.244.1.0/24".parse().unwrap(),
        );
        let text: Vec<String> = rules
            .iter()
            .map(|(t, c, s)| format!("{t} {c} {}", s.join(" ")))
            .collect();
        assert_eq!(
            text[0],
            "nat POSTROUTING -m comment --comment flanneld masq -j FLANNEL-POSTRTG"
        );
        assert_eq!(
            text[2],
            "nat FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment flanneld masq -j RETURN"
        );
        assert_eq!(
            text[4],
            "nat FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment flanneld masq -j RETURN"
        );
        assert_eq!(forward_rules(&"10.244.0.0/16".parse().unwrap()).len(), 3);
    }
}
