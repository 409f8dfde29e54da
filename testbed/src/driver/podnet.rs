//! A pod network for tests, laid out as a host-gw addon would: on every node a CNI config
//! (`10-testbed.conflist`: bridge `cni0` with host-local addresses from the node's podCIDRs,
//! no masquerade, so a server sees its client's pod IP) and a route to every other node's
//! podCIDRs through that node's address. Routes live in the node's namespace: a node restart
//! loses them and the test adds them again.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::cluster::{Cluster, Node, wait_until};
use super::scenario::ADMIN;

/// The file every node gets: lexically first in /etc/cni/net.d, so the runtime uses it.
pub const CONFIG_FILE: &str = "/etc/cni/net.d/10-testbed.conflist";

/// Node name → podCIDRs, once every node of the cluster has them.
pub fn pod_cidrs(cluster: &Cluster) -> Result<BTreeMap<String, Vec<String>>> {
    let cp = &cluster.nodes[0];
    let mut found = BTreeMap::new();
    wait_until(
        "pod CIDRs on every node",
        std::time::Duration::from_secs(60),
        || {
            let out = cp
                .kubectl_with(ADMIN, &["get", "nodes", "-o", "json"])?
                .check("kubectl get nodes")?;
            let list: Value = serde_json::from_str(&out.stdout)?;
            found = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| {
                    let cidrs: Vec<String> = n["spec"]["podCIDRs"]
                        .as_array()?
                        .iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect();
                    Some((n["metadata"]["name"].as_str()?.to_string(), cidrs))
                })
                .filter(|(_, c)| !c.is_empty())
                .collect();
            Ok(cluster.nodes.iter().all(|n| found.contains_key(&n.name)))
        },
    )?;
    Ok(found)
}

/// The bridge + host-local network of a node with these podCIDRs.
pub fn bridge_conflist(cidrs: &[String]) -> String {
    let ranges: Vec<Value> = cidrs.iter().map(|c| json!([{"subnet": c}])).collect();
    let routes: Vec<Value> = cidrs
        .iter()
        .map(|c| json!({"dst": if c.contains(':') { "::/0" } else { "0.0.0.0/0" }}))
        .collect();
    json!({
        "cniVersion": "1.0.0",
        "name": "testbed",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
             "ipam": {"type": "host-local", "ranges": ranges, "routes": routes}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    })
    .to_string()
}

/// `ip route replace <cidr> via <node ip>` on `node` for every other node's IPv4 podCIDRs.
pub fn add_routes(
    cluster: &Cluster,
    cidrs: &BTreeMap<String, Vec<String>>,
    node: &Node,
) -> Result<()> {
    for other in cluster.nodes.iter().filter(|o| o.name != node.name) {
        for cidr in cidrs.get(&other.name).into_iter().flatten() {
            if cidr.contains(':') {
                continue;
            }
            node.exec(&["ip", "route", "replace", cidr, "via", &other.ip])?
                .check(&format!("route {cidr} via {} on {}", other.ip, node.name))?;
        }
    }
    Ok(())
}

/// Writes every node's CNI config and its routes.
pub fn install(cluster: &Cluster) -> Result<BTreeMap<String, Vec<String>>> {
    let cidrs = pod_cidrs(cluster)?;
    for node in &cluster.nodes {
        let mine = cidrs
            .get(&node.name)
            .with_context(|| format!("{} has no podCIDRs", node.name))?;
        if mine.is_empty() {
            bail!("{} has no podCIDRs", node.name);
        }
        node.write_file(CONFIG_FILE, bridge_conflist(mine).as_bytes(), 0o644)?;
        add_routes(cluster, &cidrs, node)?;
    }
    Ok(cidrs)
}
