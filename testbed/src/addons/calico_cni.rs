//! calico's CNI plugins, as calico/cni installs them into /opt/cni/bin. `calico` wires a pod as
//! calico does: a veth whose host side is `cali<11 hex>` (MAC ee:ee:ee:ee:ee:ee, proxy ARP, no
//! address) with a /32 route to the pod, and in the pod `eth0` with the pod's /32 and a default
//! route via 169.254.1.1 (answered by the host side's proxy ARP). `calico-ipam` finds the block
//! affine to this node (`IPAMBlock` through the plugin's kubeconfig, as calico-ipam reads its
//! datastore) and delegates the per-address bookkeeping inside that block to the real host-local
//! plugin (state in /var/lib/cni/networks/<network>), where calico keeps it in the IPAMBlock's
//! `allocations`. The host side's name hashes `<namespace>.<pod>` with SHA-256 (calico: SHA-1).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::run;
use crate::common::client::ApiClient;

const GATEWAY: &str = "169.254.1.1";
const HOST_MAC: &str = "ee:ee:ee:ee:ee:ee";
const NODENAME_FILE: &str = "/var/lib/calico/nodename";

/// calico's host-side interface name for a pod: `cali` and 11 hex characters of a hash of
/// `<namespace>.<pod>`.
pub fn host_veth(namespace: &str, pod: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}.{pod}").as_bytes());
    format!("cali{}", &hex::encode(digest)[..11])
}

/// A CNI error result on stdout and exit code 1.
fn fail(version: &str, message: &str) -> i32 {
    let out = json!({"cniVersion": version, "code": 100, "msg": message});
    println!("{out}");
    1
}

fn cni_arg(name: &str) -> Option<String> {
    std::env::var("CNI_ARGS").ok()?.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn read_stdin() -> Result<Value> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    serde_json::from_str(&text).context("parse the network configuration")
}

fn version_reply() -> i32 {
    println!(
        "{}",
        json!({"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]})
    );
    0
}

/// Runs the plugin `kind` from CNI_PATH with `conf` on stdin (libcni's delegation) for this
/// process's CNI_COMMAND, or `command`; its result.
fn delegate_as(kind: &str, conf: &Value, command: Option<&str>) -> Result<Value> {
    let path = std::env::var("CNI_PATH").unwrap_or_else(|_| "/opt/cni/bin".into());
    let binary = path
        .split(':')
        .map(|d| Path::new(d).join(kind))
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("failed to find plugin {kind:?} in path [{path}]"))?;
    let mut child = Command::new(&binary);
    if let Some(command) = command {
        child.env("CNI_COMMAND", command);
    }
    let mut child = child
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", binary.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(conf.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["msg"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{text}{}", String::from_utf8_lossy(&out.stderr)));
        bail!("{kind}: {message}");
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{kind}'s result"))
}

fn delegate(kind: &str, conf: &Value) -> Result<Value> {
    delegate_as(kind, conf, None)
}

/// `/opt/cni/bin/calico`.
pub fn plugin_main(_args: &[String]) -> i32 {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    if command == "VERSION" {
        return version_reply();
    }
    let conf = match read_stdin() {
        Ok(c) => c,
        Err(e) => return fail("0.3.1", &format!("{e:#}")),
    };
    let version = conf["cniVersion"].as_str().unwrap_or("0.3.1").to_string();
    let result = match command.as_str() {
        "ADD" => add(&conf).map(|r| println!("{r}")),
        "DEL" => del(&conf),
        "CHECK" => Ok(()),
        other => Err(anyhow!("unknown CNI_COMMAND {other:?}")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => fail(&version, &format!("{e:#}")),
    }
}

fn netns_name(netns: &str) -> Result<String> {
    let path = Path::new(netns);
    let in_run = path
        .parent()
        .is_some_and(|p| p == Path::new("/var/run/netns") || p == Path::new("/run/netns"));
    if !in_run {
        bail!("the testbed's calico plugin needs a named network namespace, not {netns}");
    }
    Ok(path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string())
}

fn add(conf: &Value) -> Result<Value> {
    let netns = std::env::var("CNI_NETNS").context("CNI_NETNS is required")?;
    let ifname = std::env::var("CNI_IFNAME").unwrap_or_else(|_| "eth0".into());
    let (namespace, pod) = (
        cni_arg("K8S_POD_NAMESPACE").unwrap_or_default(),
        cni_arg("K8S_POD_NAME").unwrap_or_default(),
    );
    if pod.is_empty() {
        bail!("K8S_POD_NAME is missing from CNI_ARGS: the calico plugin wires Kubernetes pods");
    }
    let ipam_type = conf["ipam"]["type"].as_str().unwrap_or("calico-ipam");
    let ipam = delegate(ipam_type, conf)?;
    let address: Ipv4Net = ipam["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("{ipam_type} returned no IPv4 address: {ipam}"))?;
    let ip = address.addr();
    let host = host_veth(&namespace, &pod);
    let name = netns_name(&netns)?;
    let mtu = conf["mtu"].as_u64().unwrap_or(1500).to_string();
    let _ = run("ip", &["link", "del", &host]);
    let wire = || -> Result<()> {
        run(
            "ip",
            &[
                "link", "add", &host, "mtu", &mtu, "type", "veth", "peer", "name", &ifname, "mtu",
                &mtu, "netns", &name,
            ],
        )?;
        run("ip", &["link", "set", &host, "address", HOST_MAC])?;
        for (path, value) in [
            (format!("/proc/sys/net/ipv4/conf/{host}/proxy_arp"), "1"),
            (format!("/proc/sys/net/ipv4/neigh/{host}/proxy_delay"), "0"),
            (format!("/proc/sys/net/ipv4/conf/{host}/forwarding"), "1"),
        ] {
            std::fs::write(&path, value).with_context(|| format!("write {path}"))?;
        }
        run("ip", &["link", "set", &host, "up"])?;
        run("ip", &["-n", &name, "link", "set", &ifname, "up"])?;
        run(
            "ip",
            &[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ip}/32"),
                "dev",
                &ifname,
            ],
        )?;
        run(
            "ip",
            &[
                "-n", &name, "route", "add", GATEWAY, "dev", &ifname, "scope", "link",
            ],
        )?;
        run(
            "ip",
            &[
                "-n", &name, "route", "add", "default", "via", GATEWAY, "dev", &ifname,
            ],
        )?;
        run(
            "ip",
            &[
                "route",
                "replace",
                &format!("{ip}/32"),
                "dev",
                &host,
                "scope",
                "link",
            ],
        )?;
        Ok(())
    };
    if let Err(e) = wire() {
        let _ = run("ip", &["link", "del", &host]);
        let _ = delegate_as(ipam_type, conf, Some("DEL"));
        return Err(e);
    }
    let mac = |args: &[&str]| -> String {
        run("ip", args)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v[0]["address"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let pod_mac = mac(&["-n", &name, "-j", "link", "show", &ifname]);
    Ok(json!({
        "cniVersion": conf["cniVersion"],
        "interfaces": [
            {"name": host, "mac": HOST_MAC},
            {"name": ifname, "mac": pod_mac, "sandbox": netns},
        ],
        "ips": [{"version": "4", "address": format!("{ip}/32"), "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    }))
}

fn del(conf: &Value) -> Result<()> {
    let ipam_type = conf["ipam"]["type"].as_str().unwrap_or("calico-ipam");
    let mut del_conf = conf.clone();
    del_conf["prevResult"] = Value::Null;
    // The address is released even when the namespace is gone (a DEL may come after a restart).
    let released = delegate(ipam_type, &del_conf);
    let (namespace, pod) = (
        cni_arg("K8S_POD_NAMESPACE").unwrap_or_default(),
        cni_arg("K8S_POD_NAME").unwrap_or_default(),
    );
    if !pod.is_empty() {
        let host = host_veth(&namespace, &pod);
        if run("ip", &["link", "show", &host]).is_ok() {
            run("ip", &["link", "del", &host])?;
        }
    }
    released.map(|_| ())
}

/// `/opt/cni/bin/calico-ipam`: `-upgrade` (the upgrade-ipam init container) or the IPAM plugin.
pub fn ipam_main(args: &[String]) -> i32 {
    if args.first().map(String::as_str) == Some("-upgrade") {
        return match upgrade() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("[ERROR] calico-ipam -upgrade: {e:#}");
                1
            }
        };
    }
    if let Some(flag) = args.first() {
        eprintln!("calico-ipam: flag provided but not defined: {flag}");
        return 2;
    }
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    if command == "VERSION" {
        return version_reply();
    }
    let conf = match read_stdin() {
        Ok(c) => c,
        Err(e) => return fail("0.3.1", &format!("{e:#}")),
    };
    let version = conf["cniVersion"].as_str().unwrap_or("0.3.1").to_string();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&version, &e.to_string()),
    };
    let result = match command.as_str() {
        "ADD" => runtime.block_on(ipam_add(&conf)).map(|r| println!("{r}")),
        "DEL" => ipam_del(&conf),
        "CHECK" => Ok(()),
        other => Err(anyhow!("unknown CNI_COMMAND {other:?}")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => fail(&version, &format!("{e:#}")),
    }
}

/// The upgrade-ipam init container: calico migrates host-local allocations of a previous
/// host-local install into its own IPAM. A fresh node has none; the node name must be known.
fn upgrade() -> Result<()> {
    let node = std::env::var("KUBERNETES_NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| anyhow!("KUBERNETES_NODE_NAME is not set"))?;
    let dir = Path::new("/var/lib/cni/networks/k8s-pod-network");
    if dir.is_dir() {
        eprintln!(
            "calico-ipam -upgrade: host-local allocations found on {node}; kept (this node's IPAM delegates to host-local)"
        );
    }
    Ok(())
}

fn node_name(conf: &Value) -> Result<String> {
    if let Some(n) = conf["nodename"]
        .as_str()
        .filter(|n| !n.is_empty() && !n.starts_with("__"))
    {
        return Ok(n.to_string());
    }
    Ok(std::fs::read_to_string(NODENAME_FILE)
        .with_context(|| format!("stat {NODENAME_FILE}: check that the calico/node container is running and has mounted /var/lib/calico/"))?
        .trim()
        .to_string())
}

fn data_dir(conf: &Value) -> PathBuf {
    Path::new("/var/lib/cni/networks").join(conf["name"].as_str().unwrap_or("k8s-pod-network"))
}

/// The host-local configuration for one block (the tunnel address, the block's first, excluded).
fn host_local_conf(conf: &Value, block: Ipv4Net) -> Value {
    let first = u32::from(block.network());
    json!({
        "cniVersion": conf["cniVersion"],
        "name": conf["name"],
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": block.to_string(), "gateway": block.network().to_string(),
                         "rangeStart": Ipv4Addr::from(first + 1).to_string()}]],
        }
    })
}

async fn ipam_add(conf: &Value) -> Result<Value> {
    let node = node_name(conf)?;
    let kubeconfig = conf["kubernetes"]["kubeconfig"]
        .as_str()
        .ok_or_else(|| anyhow!("no kubernetes.kubeconfig in the network configuration"))?;
    let api = ApiClient::from_kubeconfig(Path::new(kubeconfig))?;
    let list = api
        .get("/apis/crd.projectcalico.org/v1/ipamblocks")
        .await
        .map_err(|e| anyhow!("error getting IPAM blocks: {e}"))?;
    let affinity = format!("host:{node}");
    let block: Ipv4Net = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["spec"]["affinity"] == affinity.as_str())
        .and_then(|b| b["spec"]["cidr"].as_str()?.parse().ok())
        .ok_or_else(|| {
            anyhow!("no IPAM block is affine to host {node} yet (calico/node claims it at start)")
        })?;
    let result = delegate("host-local", &host_local_conf(conf, block))?;
    let address: Ipv4Net = result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("host-local returned no address: {result}"))?;
    Ok(json!({
        "cniVersion": conf["cniVersion"],
        "ips": [{"version": "4", "address": format!("{}/32", address.addr())}],
        "dns": {},
    }))
}

/// Releases the container's address: host-local releases by container id, so the block is the
/// one the recorded address is in (nothing recorded: nothing to release).
fn ipam_del(conf: &Value) -> Result<()> {
    let id = std::env::var("CNI_CONTAINERID").unwrap_or_default();
    let dir = data_dir(conf);
    let recorded: BTreeMap<String, String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((name, text))
        })
        .collect();
    let Some(ip) = recorded
        .iter()
        .find(|(name, text)| {
            name.parse::<Ipv4Addr>().is_ok()
                && text.lines().next().map(str::trim) == Some(id.as_str())
        })
        .and_then(|(name, _)| name.parse::<Ipv4Addr>().ok())
    else {
        return Ok(());
    };
    let block = Ipv4Net::new(ip, 26)?.trunc();
    delegate("host-local", &host_local_conf(conf, block)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_side_names_are_cali_and_eleven_hex_characters() {
        let name = host_veth("default", "web-0");
        assert!(name.starts_with("cali") && name.len() == 15, "{name}");
        assert_ne!(name, host_veth("default", "web-1"));
    }

    #[test]
    fn host_local_allocates_inside_the_block_after_the_tunnel_address() {
        let conf = json!({"cniVersion": "0.3.1", "name": "k8s-pod-network"});
        let c = host_local_conf(&conf, "10.244.0.64/26".parse().unwrap());
        assert_eq!(c["ipam"]["ranges"][0][0]["rangeStart"], "10.244.0.65");
        assert_eq!(c["ipam"]["ranges"][0][0]["gateway"], "10.244.0.64");
    }
}
