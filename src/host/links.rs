//! Network links: scan (`ip -json -details address show`), attribute by device name or by the bridge a
//! port is enslaved to, and delete (`ip link delete`), telling a kernel refusal apart from a vanished device.
//!
//! iproute2 rather than a netlink crate: it is on every node, its JSON is stable, it costs no build time,
//! and the reset report wants names and routes exactly as `ip` prints them.

use std::net::IpAddr;

use anyhow::Context;
use ipnet::IpNet;
use serde::Deserialize;

use super::attribution::{link_rules, owner_of};
use super::command;
use super::inventory::{Found, Kind, Outcome, Owner};

/// A network device as `ip -json -details address show` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    /// `bridge`, `vxlan`, `veth`, `tun`, … (empty for plain devices such as `lo` or `eth0`).
    pub kind: String,
    pub master: Option<String>,
    pub addresses: Vec<IpNet>,
}

#[derive(Deserialize)]
struct RawLink {
    ifname: String,
    ifindex: u32,
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    linkinfo: Option<RawLinkInfo>,
    #[serde(default)]
    addr_info: Vec<RawAddr>,
}

#[derive(Deserialize)]
struct RawLinkInfo {
    #[serde(default)]
    info_kind: Option<String>,
}

#[derive(Deserialize)]
struct RawAddr {
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    prefixlen: Option<u8>,
}

/// Parses `ip -json -details address show` output.
pub fn parse(json: &str) -> anyhow::Result<Vec<Link>> {
    let raw: Vec<RawLink> =
        serde_json::from_str(json).context("parsing `ip -json address show`")?;
    Ok(raw
        .into_iter()
        .map(|r| Link {
            addresses: r
                .addr_info
                .iter()
                .filter_map(|a| {
                    let ip: IpAddr = a.local.as_deref()?.parse().ok()?;
                    IpNet::new(ip, a.prefixlen?).ok()
                })
                .collect(),
            name: r.ifname,
            index: r.ifindex,
            kind: r.linkinfo.and_then(|i| i.info_kind).unwrap_or_default(),
            master: r.master,
        })
        .collect())
}

/// Every link of this network namespace.
pub fn scan() -> anyhow::Result<Vec<Link>> {
    parse(&command::run_ok(
        "ip",
        &["-json", "-details", "address", "show"],
    )?)
}

/// Who made each link: by name, or for a bridge port by its bridge's owner. The device carrying the
/// default route (and `lo`) is never attributed to the cluster.
pub fn attribute(links: &[Link], default_route_dev: Option<&str>) -> Vec<(Link, Found)> {
    links
        .iter()
        .map(|link| {
            let by_name = owner_of(link_rules(), &link.name);
            let owner = if link.name == "lo" || Some(link.name.as_str()) == default_route_dev {
                Owner::Foreign("the host (default route)")
            } else if by_name.is_cluster() {
                by_name
            } else if let Some(master) = &link.master {
                let bridge = owner_of(link_rules(), master);
                if bridge.is_cluster() && link.kind == "veth" {
                    bridge
                } else {
                    by_name
                }
            } else {
                by_name
            };
            (
                link.clone(),
                Found::new(Kind::Link, link.name.clone(), owner),
            )
        })
        .collect()
}

/// Removal order: bridge ports first (their pods' veths), then the other devices.
pub fn removal_order(mut owned: Vec<(Link, Found)>) -> Vec<(Link, Found)> {
    owned.sort_by_key(|(l, _)| (l.master.is_none(), l.kind == "bridge", l.name.clone()));
    owned
}

/// True when a link with this name exists now.
pub fn exists(name: &str) -> bool {
    command::run("ip", &["link", "show", "dev", name], None).is_ok_and(|o| o.success)
}

/// Deletes one link. A failed delete of a device that still exists means the kernel holds it
/// (ipip's tunl0 fallback device, for one): it is left with `reboot_required`.
pub fn remove(found: &Found) -> Outcome {
    if !found.owner.is_cluster() {
        return found.kept_foreign();
    }
    match command::run("ip", &["link", "delete", "dev", &found.target], None) {
        Ok(out) if out.success => found.removed(),
        Ok(out) => {
            if exists(&found.target) {
                found.left(
                    format!(
                        "the kernel refused to delete it ({}); a reboot removes it",
                        out.complaint()
                    ),
                    true,
                )
            } else {
                // Gone with its veth peer or its namespace.
                found.removed()
            }
        }
        Err(e) => found.left(e.to_string(), false),
    }
}

/// Deletes many links with one `ip -batch` run, then retries the survivors one by one so that each
/// failure carries the kernel's answer.
pub fn remove_many(founds: &[Found]) -> Vec<Outcome> {
    let ours: Vec<&Found> = founds.iter().filter(|f| f.owner.is_cluster()).collect();
    let mut outcomes: Vec<Outcome> = founds
        .iter()
        .filter(|f| !f.owner.is_cluster())
        .map(Found::kept_foreign)
        .collect();
    if ours.is_empty() {
        return outcomes;
    }
    let batch: String = ours
        .iter()
        .map(|f| format!("link delete dev {}\n", f.target))
        .collect();
    // Errors are expected here (a veth gone with its peer); survivors are found by the rescan.
    let _ = command::run("ip", &["-force", "-batch", "-"], Some(&batch));
    let remaining: std::collections::BTreeSet<String> = match scan() {
        Ok(links) => links.into_iter().map(|l| l.name).collect(),
        Err(_) => ours.iter().map(|f| f.target.clone()).collect(),
    };
    for found in ours {
        if remaining.contains(&found.target) {
            outcomes.push(remove(found));
        } else {
            outcomes.push(found.removed());
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[
 {"ifindex":1,"ifname":"lo","flags":["LOOPBACK"],"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
 {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24}]},
 {"ifindex":3,"ifname":"cni0","linkinfo":{"info_kind":"bridge"},"addr_info":[{"family":"inet","local":"10.244.0.1","prefixlen":24}]},
 {"ifindex":4,"ifname":"veth1a2b","master":"cni0","linkinfo":{"info_kind":"veth"},"addr_info":[]},
 {"ifindex":5,"ifname":"docker0","linkinfo":{"info_kind":"bridge"},"addr_info":[]},
 {"ifindex":6,"ifname":"veth9f","master":"docker0","linkinfo":{"info_kind":"veth"},"addr_info":[]},
 {"ifindex":7,"ifname":"flannel.1","linkinfo":{"info_kind":"vxlan"},"addr_info":[]}
]"#;

    #[test]
    fn parses_and_attributes_ports_through_their_bridge() {
        let links = parse(SAMPLE).unwrap();
        assert_eq!(
            links[2].addresses,
            vec!["10.244.0.1/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(links[3].master.as_deref(), Some("cni0"));
        let owned = attribute(&links, Some("eth0"));
        let owner = |n: &str| owned.iter().find(|(l, _)| l.name == n).unwrap().1.owner;
        assert!(owner("cni0").is_cluster());
        assert!(owner("veth1a2b").is_cluster());
        assert!(owner("flannel.1").is_cluster());
        assert_eq!(owner("docker0"), Owner::Foreign("Docker"));
        assert!(!owner("veth9f").is_cluster());
        assert!(!owner("eth0").is_cluster());
        assert!(!owner("lo").is_cluster());
    }

    #[test]
    fn ports_go_before_their_bridge() {
        let links = parse(SAMPLE).unwrap();
        let owned: Vec<_> = attribute(&links, None)
            .into_iter()
            .filter(|(_, f)| f.owner.is_cluster())
            .collect();
        let order: Vec<String> = removal_order(owned)
            .into_iter()
            .map(|(l, _)| l.name)
            .collect();
        assert_eq!(order, vec!["veth1a2b", "flannel.1", "cni0"]);
    }

    #[test]
    fn the_default_route_device_is_never_ours() {
        let links = parse(SAMPLE).unwrap();
        let owned = attribute(&links, Some("cni0"));
        assert!(!owned[2].1.owner.is_cluster());
    }
}
