//! The Weave Net 2.8.1 doubles: `/home/weave/init.sh` (the weave-init container: the `weave-net` CNI
//! plugin and `10-weave.conflist`), `/home/weave/launch.sh` (the weave container: the router) and
//! `weave-npc`. The router reads `IPALLOC_RANGE` and `WEAVE_MTU` and exits 1 on a bad one as weave's
//! launch does; it joins the peer list kept in the `weave-net` ConfigMap's
//! `kube-peers.weave.works/peers` annotation (as weave's kube-peers does) and takes the slice of the
//! range its place in that list gives it (weave divides the range among peers by consensus; here
//! into 4 fixed slices); it creates the `weave` bridge (an address of its slice, the range's
//! prefix), and, standing in for weave's fastdp/sleeve, a VXLAN device `vxlan-6784` (UDP 6784)
//! enslaved to the bridge that floods to every other peer (`nolearning`: its FDB is what the router keeps) (a flat layer 2 across nodes, as weave's);
//! the `WEAVE` nat chain masquerades traffic entering or leaving the range, `WEAVE-FORWARD` accepts
//! bridge traffic, and `/status` on 127.0.0.1:6784 answers once it is set up. weave-npc keeps the
//! `weave-local-pods` ipset and its `WEAVE-NPC` chains (allowing everything: no policy).

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ipnet::Ipv4Net;
use serde_json::{Value, json};

use super::{run, run_with_input};
use crate::logf;

const COMPONENT: &str = "weave";
pub const BRIDGE: &str = "weave";
pub const VXLAN: &str = "vxlan-6784";
const PORT: &str = "6784";
const STATUS: &str = "127.0.0.1:6784";
/// The number of slices the range is divided into (one per peer).
const SLICES: u8 = 4;
const PEERS_ANNOTATION: &str = "kube-peers.weave.works/peers";
const CONFIGMAP: &str = "/api/v1/namespaces/kube-system/configmaps/weave-net";

/// The router's settings from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    pub node: String,
    pub range: Ipv4Net,
    pub mtu: u32,
}

/// Reads `HOSTNAME`, `IPALLOC_RANGE` and `WEAVE_MTU`, refusing what weave's launch refuses.
pub fn config(get: impl Fn(&str) -> Option<String>) -> Result<RouterConfig> {
    let node = get("HOSTNAME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOSTNAME is not set"))?;
    let text = get("IPALLOC_RANGE").unwrap_or_else(|| "10.32.0.0/12".into());
    let range: Ipv4Net = text.parse().map_err(|_| {
        anyhow!("weave: invalid --ipalloc-range {text:?}: invalid CIDR address: {text}")
    })?;
    if range.trunc() != range {
        bail!(
            "weave: invalid --ipalloc-range {text:?}: range {text} has host bits set; did you mean {}?",
            range.trunc()
        );
    }
    if range.prefix_len() > 32 - 2 - SLICES.trailing_zeros() as u8 {
        bail!(
            "weave: invalid --ipalloc-range {text:?}: the range is too small to divide among peers"
        );
    }
    let mtu = match get("WEAVE_MTU") {
        None => 1376,
        Some(m) => m
            .parse::<u32>()
            .ok()
            .filter(|m| (576..=65535).contains(m))
            .ok_or_else(|| {
                anyhow!("weave: invalid WEAVE_MTU {m:?}: must be a number between 576 and 65535")
            })?,
    };
    Ok(RouterConfig { node, range, mtu })
}

/// The slice of `range` for the peer at `index`.
pub fn slice(range: Ipv4Net, index: usize) -> Result<Ipv4Net> {
    let bits = SLICES.trailing_zeros() as u8;
    range
        .subnets(range.prefix_len() + bits)
        .map_err(|e| anyhow!("{e}"))?
        .nth(index)
        .ok_or_else(|| {
            anyhow!("no free part of {range} for another peer (the testbed divides it in {SLICES})")
        })
}

/// The weave-net CNI configuration weave-init writes.
pub const CNI_CONFIG: &str = r#"{
    "cniVersion": "0.3.0",
    "name": "weave",
    "plugins": [
        {"name": "weave", "type": "weave-net", "hairpinMode": true},
        {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
    ]
}
"#;

/// `/home/weave/init.sh`.
pub fn init_main(_args: &[String]) -> i32 {
    let result = (|| -> Result<()> {
        let bin = Path::new("/host/opt/cni/bin");
        std::fs::create_dir_all(bin)?;
        for plugin in ["weave-net", "weave-ipam"] {
            let target = bin.join(plugin);
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink("/opt/testbed/bin/tbnode", &target)
                .with_context(|| format!("install {}", target.display()))?;
        }
        let dir = Path::new("/host/etc/cni/net.d");
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("10-weave.conflist"), CNI_CONFIG)?;
        Ok(())
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("init.sh: {e:#}");
            1
        }
    }
}

/// The peers' node names in the order they joined, from the ConfigMap annotation.
fn peer_list(cm: &Value) -> Vec<String> {
    cm["metadata"]["annotations"][PEERS_ANNOTATION]
        .as_str()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| {
            v["Peers"].as_array().map(|a| {
                a.iter()
                    .filter_map(|p| p["NodeName"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Joins the peer list (compare-and-swap on the ConfigMap) and returns this node's place in it.
async fn join_peers(api: &crate::common::client::ApiClient, node: &str) -> Result<usize> {
    loop {
        let cm = match api.get(CONFIGMAP).await {
            Ok(cm) => cm,
            Err(e) if e.is_not_found() => {
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "weave-net", "namespace": "kube-system"}});
                match api
                    .create("/api/v1/namespaces/kube-system/configmaps", &body)
                    .await
                {
                    Ok(cm) => cm,
                    Err(e) if e.is_conflict() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let mut peers = peer_list(&cm);
        if let Some(at) = peers.iter().position(|p| p == node) {
            return Ok(at);
        }
        peers.push(node.to_string());
        let list: Vec<Value> = peers
            .iter()
            .map(|n| json!({"PeerName": n, "NodeName": n}))
            .collect();
        let mut updated = cm.clone();
        updated["metadata"]["annotations"][PEERS_ANNOTATION] =
            json!(json!({"Peers": list}).to_string());
        match api.replace(CONFIGMAP, &updated).await {
            Ok(_) => return Ok(peers.len() - 1),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn nat_rules(range: Ipv4Net) -> String {
    format!(
        "*nat\n:WEAVE - [0:0]\n-I POSTROUTING 1 -j WEAVE\n\
         -A WEAVE -m set --match-set weaver-no-masq-local dst -m comment --comment \"Prevent SNAT to locally running containers\" -j RETURN\n\
         -A WEAVE -s {range} -d 224.0.0.0/4 -j RETURN\n\
         -A WEAVE ! -s {range} -d {range} -j MASQUERADE\n\
         -A WEAVE -s {range} ! -d {range} -j MASQUERADE\nCOMMIT\n\
         *filter\n:WEAVE-FORWARD - [0:0]\n:WEAVE-NPC - [0:0]\n\
         -I FORWARD 1 -m comment --comment \"NOTE: this must go before '-j KUBE-FORWARD'\" -j WEAVE-FORWARD\n\
         -A WEAVE-FORWARD -i {BRIDGE} -o {BRIDGE} -j WEAVE-NPC\n\
         -A WEAVE-FORWARD -i {BRIDGE} ! -o {BRIDGE} -j ACCEPT\n\
         -A WEAVE-FORWARD -o {BRIDGE} -j ACCEPT\nCOMMIT\n"
    )
}

async fn serve_status(ready: Arc<AtomicBool>) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(STATUS)
        .await
        .context("listen on 127.0.0.1:6784")?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        let ready = ready.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let (status, body) = if ready.load(Ordering::SeqCst) {
                ("200 OK", "Status: ready\n")
            } else {
                (
                    "503 Service Unavailable",
                    "Status: waiting for IP range grant from peers\n",
                )
            };
            let _ = stream
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                .await;
        });
    }
}

/// `/home/weave/launch.sh`: the router.
pub fn launch_main(args: &[String]) -> i32 {
    crate::run_component(COMPONENT, args, |_| router())
}

async fn router() -> Result<()> {
    let config = config(|k| std::env::var(k).ok())?;
    let api = super::calico::in_cluster()?;
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(serve_status(ready.clone()));
    let index = join_peers(&api, &config.node).await?;
    let mine = slice(config.range, index)?;
    let bridge_ip = Ipv4Addr::from(u32::from(mine.network()) + 1);
    logf!(
        COMPONENT,
        "weave router (testbed double) on {}: peer {index}, allocating from {mine} of {}",
        config.node,
        config.range
    );
    std::fs::create_dir_all("/weavedb")?;
    std::fs::write(
        "/weavedb/weave-netdata.db",
        format!("{}\n{mine}\n", config.node),
    )?;
    if run("ip", &["link", "show", BRIDGE]).is_err() {
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    }
    run(
        "ip",
        &["link", "set", BRIDGE, "mtu", &config.mtu.to_string()],
    )?;
    run(
        "ip",
        &[
            "addr",
            "replace",
            &format!("{bridge_ip}/{}", config.range.prefix_len()),
            "dev",
            BRIDGE,
        ],
    )?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    // The range is on the bridge (a flat network across peers): a sink route of the same prefix
    // (a testbed node has an `unreachable` one for the pod range) would shadow the bridge's.
    let _ = run(
        "ip",
        &["route", "del", "unreachable", &config.range.to_string()],
    );
    let own = run("ip", &["-j", "-4", "route", "get", "1.1.1.1"])
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v[0]["prefsrc"].as_str().map(str::to_string))
        .unwrap_or_default();
    if run("ip", &["link", "show", VXLAN]).is_err() {
        run(
            "ip",
            &[
                "link",
                "add",
                VXLAN,
                "type",
                "vxlan",
                "id",
                "6784",
                "dstport",
                PORT,
                "local",
                &own,
                "nolearning",
            ],
        )?;
    }
    run(
        "ip",
        &[
            "link",
            "set",
            VXLAN,
            "mtu",
            &config.mtu.to_string(),
            "master",
            BRIDGE,
            "up",
        ],
    )?;
    run_with_input(
        "ipset",
        &["restore"],
        "create weaver-no-masq-local hash:ip -exist\n",
    )?;
    if run("iptables-nft", &["-w", "5", "-t", "nat", "-S", "WEAVE"]).is_err() {
        run_with_input(
            "iptables-nft-restore",
            &["-w", "5", "--noflush"],
            &nat_rules(config.range),
        )?;
    }
    let mut flooded: Vec<String> = Vec::new();
    loop {
        match api.get("/api/v1/nodes").await {
            Ok(nodes) => {
                let peers: Vec<String> = nodes["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| {
                        n["status"]["addresses"]
                            .as_array()?
                            .iter()
                            .find(|a| a["type"] == "InternalIP")?["address"]
                            .as_str()
                            .map(str::to_string)
                    })
                    .filter(|a| *a != own)
                    .collect();
                for gone in flooded.iter().filter(|p| !peers.contains(p)) {
                    let _ = run(
                        "bridge",
                        &["fdb", "del", "00:00:00:00:00:00", "dev", VXLAN, "dst", gone],
                    );
                }
                for peer in peers.iter().filter(|p| !flooded.contains(p)) {
                    if let Err(e) = run(
                        "bridge",
                        &[
                            "fdb",
                            "append",
                            "00:00:00:00:00:00",
                            "dev",
                            VXLAN,
                            "dst",
                            peer,
                        ],
                    ) {
                        logf!(COMPONENT, "ERROR: connection to {peer}: {e:#}");
                    }
                }
                flooded = peers;
                if !ready.swap(true, Ordering::SeqCst) {
                    logf!(COMPONENT, "weave router ready: {} peers", flooded.len());
                }
            }
            Err(e) => logf!(COMPONENT, "ERROR: kube-peers: {e:#}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `weave-npc`: the network policy controller's ipset and chains (no policy is enforced).
pub fn npc_main(args: &[String]) -> i32 {
    crate::run_component("weave-npc", args, |_| async {
        run_with_input(
            "ipset",
            &["restore"],
            "create weave-local-pods hash:ip -exist\ncreate weave-kube-test hash:ip -exist\n",
        )?;
        if run("iptables-nft", &["-w", "5", "-S", "WEAVE-NPC-INGRESS"]).is_err() {
            run_with_input(
                "iptables-nft-restore",
                &["-w", "5", "--noflush"],
                "*filter\n:WEAVE-NPC - [0:0]\n:WEAVE-NPC-INGRESS - [0:0]\n:WEAVE-NPC-DEFAULT - [0:0]\n:WEAVE-NPC-EGRESS - [0:0]\n\
                 -A WEAVE-NPC -m state --state RELATED,ESTABLISHED -j ACCEPT\n-A WEAVE-NPC -j WEAVE-NPC-DEFAULT\n\
                 -A WEAVE-NPC-DEFAULT -m comment --comment \"no policy: allow\" -j ACCEPT\nCOMMIT\n",
            )?;
        }
        logf!(
            "weave-npc",
            "weave-npc (testbed double) started: no network policy is enforced"
        );
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    })
}

/// weave's CNI plugin (`weave-net`): a `vethwepl…` pair whose host side joins the `weave` bridge,
/// the pod's address from this node's slice (host-local with the slice as its range, the range as
/// its subnet: pods are on one flat network) and a default route via the bridge.
pub fn plugin_main(_args: &[String]) -> i32 {
    use std::io::Read;
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    if command == "VERSION" {
        println!(
            "{}",
            json!({"cniVersion": "0.4.0", "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0"]})
        );
        return 0;
    }
    let mut text = String::new();
    let _ = std::io::stdin().read_to_string(&mut text);
    let result = serde_json::from_str::<Value>(&text)
        .context("parse the network configuration")
        .and_then(|conf| match command.as_str() {
            "ADD" => cni_add(&conf).map(|r| println!("{r}")),
            "DEL" => cni_del(&conf),
            "CHECK" => Ok(()),
            other => Err(anyhow!("unknown CNI_COMMAND {other:?}")),
        });
    match result {
        Ok(()) => 0,
        Err(e) => {
            println!(
                "{}",
                json!({"cniVersion": "0.3.0", "code": 100, "msg": format!("{e:#}")})
            );
            1
        }
    }
}

fn host_veth(container: &str) -> String {
    format!(
        "vethwepl{}",
        &container
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(7)
            .collect::<String>()
    )
}

/// The bridge's address (its prefix is the range's) and this node's slice, from the router.
fn allocation() -> Result<(Ipv4Net, Ipv4Net)> {
    let text = run("ip", &["-j", "-4", "addr", "show", "dev", BRIDGE]).map_err(|_| {
        anyhow!("unable to connect to the weave router: the weave bridge does not exist")
    })?;
    let v: Value = serde_json::from_str(&text)?;
    let a = &v[0]["addr_info"][0];
    let bridge: Ipv4Net = format!(
        "{}/{}",
        a["local"].as_str().unwrap_or_default(),
        a["prefixlen"]
    )
    .parse()
    .map_err(|_| anyhow!("the weave bridge has no address yet"))?;
    let db = std::fs::read_to_string("/var/lib/weave/weave-netdata.db")?;
    let slice: Ipv4Net = db
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| anyhow!("no IP range granted yet"))?;
    Ok((bridge, slice))
}

fn host_local(conf: &Value, bridge: Ipv4Net, slice: Ipv4Net, command: &str) -> Result<Value> {
    use std::io::Write;
    let ipam = json!({"cniVersion": conf["cniVersion"], "name": conf["name"], "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": bridge.trunc().to_string(), "gateway": bridge.addr().to_string(),
                     "rangeStart": Ipv4Addr::from(u32::from(slice.network()) + 2).to_string(),
                     "rangeEnd": Ipv4Addr::from(u32::from(slice.broadcast()) - 1).to_string()}]]}});
    let mut child = std::process::Command::new("/opt/cni/bin/host-local")
        .env("CNI_COMMAND", command)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ipam.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("host-local: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn cni_add(conf: &Value) -> Result<Value> {
    let netns = std::env::var("CNI_NETNS").context("CNI_NETNS is required")?;
    let id = std::env::var("CNI_CONTAINERID").context("CNI_CONTAINERID is required")?;
    let ifname = std::env::var("CNI_IFNAME").unwrap_or_else(|_| "eth0".into());
    let name = Path::new(&netns)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let (bridge, slice) = allocation()?;
    let result = host_local(conf, bridge, slice, "ADD")?;
    let address: Ipv4Net = result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("host-local returned no address: {result}"))?;
    let host = host_veth(&id);
    let _ = run("ip", &["link", "del", &host]);
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{BRIDGE}/mtu"))
        .unwrap_or_else(|_| "1376".into());
    let mtu = mtu.trim();
    let wire = || -> Result<()> {
        run(
            "ip",
            &[
                "link", "add", &host, "mtu", mtu, "type", "veth", "peer", "name", &ifname, "mtu",
                mtu, "netns", &name,
            ],
        )?;
        run("ip", &["link", "set", &host, "master", BRIDGE, "up"])?;
        if conf["hairpinMode"].as_bool() == Some(true) || conf["plugins"].is_null() {
            run(
                "ip",
                &[
                    "link",
                    "set",
                    &host,
                    "type",
                    "bridge_slave",
                    "hairpin",
                    "on",
                ],
            )?;
        }
        run(
            "ip",
            &[
                "-n",
                &name,
                "addr",
                "add",
                &address.to_string(),
                "dev",
                &ifname,
            ],
        )?;
        run("ip", &["-n", &name, "link", "set", &ifname, "up"])?;
        run(
            "ip",
            &[
                "-n",
                &name,
                "route",
                "add",
                "default",
                "via",
                &bridge.addr().to_string(),
                "dev",
                &ifname,
            ],
        )?;
        Ok(())
    };
    if let Err(e) = wire() {
        let _ = run("ip", &["link", "del", &host]);
        let _ = host_local(conf, bridge, slice, "DEL");
        return Err(e);
    }
    let _ = run(
        "ipset",
        &[
            "add",
            "weave-local-pods",
            &address.addr().to_string(),
            "-exist",
        ],
    );
    Ok(json!({"cniVersion": conf["cniVersion"],
        "interfaces": [{"name": host}, {"name": ifname, "sandbox": netns}],
        "ips": [{"version": "4", "address": address.to_string(), "gateway": bridge.addr().to_string(), "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": bridge.addr().to_string()}], "dns": {}}))
}

fn cni_del(conf: &Value) -> Result<()> {
    let id = std::env::var("CNI_CONTAINERID").unwrap_or_default();
    if let Ok((bridge, slice)) = allocation() {
        host_local(conf, bridge, slice, "DEL")?;
    }
    let host = host_veth(&id);
    if run("ip", &["link", "show", &host]).is_ok() {
        run("ip", &["link", "del", &host])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_range_is_read_and_bad_ones_refused() {
        let c = config(env(&[
            ("HOSTNAME", "n1"),
            ("IPALLOC_RANGE", "10.244.0.0/16"),
            ("WEAVE_MTU", "1376"),
        ]))
        .unwrap();
        assert_eq!(c.range, "10.244.0.0/16".parse().unwrap());
        assert_eq!(
            slice(c.range, 1).unwrap(),
            "10.244.64.0/18".parse().unwrap()
        );
        let bad = |v: &str| {
            config(env(&[("HOSTNAME", "n1"), ("IPALLOC_RANGE", v)]))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("10.244.0.0/33").contains("invalid --ipalloc-range"));
        assert!(bad("10.244.1.0/16").contains("host bits"));
        assert!(config(env(&[("HOSTNAME", "n1"), ("WEAVE_MTU", "big")])).is_err());
    }
}
