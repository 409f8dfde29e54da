//! flannel end to end on one three-node cluster: `kubestrap init` (the default pod network, flannel,
//! whose phase waits for its DaemonSet) and two joins → the DaemonSet Ready on every node, CoreDNS
//! and kube-proxy Ready, each node's `flannel.1` (VNI, port, MTU), subnet.env, CNI config and Node
//! annotations as flanneld makes them, and `kubestrap verify network` passes; flanneld refuses a bad
//! `net-conf.json` value with flannel's message; deleting node2's FDB entry for node3 makes verify
//! exit 1 naming exactly node2↔node3; `kubestrap reset` of every node leaves no flannel artefact
//! (`ip`, `bridge`, `iptables-save`, `ipset`, `nft`, `find`).

mod support;

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::{Cluster, Node};
use serde_json::Value;

const NS: &str = "kube-flannel";
const DS: &str = "kube-flannel-ds";
const ANNOTATION: &str = "flannel.alpha.coreos.com";

#[test]
fn flannel_from_init_carries_pod_traffic_and_reset_removes_it() -> Result<()> {
    let started = Instant::now();
    let (cluster, init) = support::cluster_with_flannel()?;
    let result = run(&cluster, &init, started);
    if result.is_err() {
        eprintln!("{}", cluster.diagnostics());
        if let Ok(cp) = cluster.node("node1")
            && let Ok(pods) = cp.kubectl(&["get", "pods", "-A", "-o", "wide"])
        {
            eprintln!("--- pods\n{}", pods.stdout);
        }
        if let Ok(cp) = cluster.node("node1")
            && let Ok(pods) = cp.kubectl(&[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=kube-dns",
                "-o",
                "json",
            ])
        {
            eprintln!("--- coredns\n{}", pods.stdout);
        }
    }
    cluster.teardown()?;
    result
}

fn elapsed(since: Instant) -> String {
    format!("{:.1}s", since.elapsed().as_secs_f64())
}

/// `kubestrap verify network -o json` on `node`: exit code, report, stderr.
fn verify(node: &Node, extra: &[&str]) -> Result<(i32, Value, String)> {
    let mut args = vec!["verify", "network", "-o", "json", "--timeout", "90s"];
    args.extend_from_slice(extra);
    let out = node.kubestrap(&args)?;
    let report: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("verify's stdout is not JSON: {out:?}"))?;
    Ok((out.code, report, out.stderr))
}

fn run(cluster: &Cluster, init: &str, started: Instant) -> Result<()> {
    let cp = cluster.node("node1")?;
    ensure!(
        init.contains(&format!(
            "[addons] DaemonSet {NS}/{DS} is ready on 1 node(s)"
        )),
        "init waits for flannel:\n{init}"
    );
    eprintln!(
        "init, joins, flannel, kube-proxy and CoreDNS Ready: {}",
        elapsed(started)
    );

    // What flanneld made on node2, and what it published.
    let node2 = cluster.node("node2")?;
    let node3 = cluster.node("node3")?;
    let link: Value = serde_json::from_str(
        &node2
            .exec(&["ip", "-d", "-j", "link", "show", "flannel.1"])?
            .check("flannel.1 on node2")?
            .stdout,
    )?;
    let vxlan = &link[0]["linkinfo"]["info_data"];
    ensure!(
        vxlan["id"] == 1 && vxlan["port"] == 8472 && link[0]["mtu"] == 1450,
        "flannel.1: {link}"
    );
    let nodes = support::get(cp, &["nodes"])?;
    let node_of = |name: &str| -> Result<Value> {
        nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["metadata"]["name"] == name)
            .cloned()
            .with_context(|| format!("Node {name}"))
    };
    let (n2, n3) = (node_of("node2")?, node_of("node3")?);
    let subnet2 = n2["spec"]["podCIDR"].as_str().context("node2 podCIDR")?;
    let env = node2.read_string("/run/flannel/subnet.env")?;
    let first = subnet2.replacen(".0/", ".1/", 1);
    ensure!(
        env == format!(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET={first}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
        ),
        "subnet.env: {env}"
    );
    ensure!(node2.exists("/etc/cni/net.d/10-flannel.conflist")?);
    let a3 = &n3["metadata"]["annotations"];
    ensure!(
        a3[format!("{ANNOTATION}/public-ip")] == node3.ip.as_str()
            && a3[format!("{ANNOTATION}/backend-type")] == "vxlan"
            && a3[format!("{ANNOTATION}/kube-subnet-manager")] == "true",
        "node3's annotations: {a3}"
    );
    let data: Value = serde_json::from_str(
        a3[format!("{ANNOTATION}/backend-data")]
            .as_str()
            .context("backend-data")?,
    )?;
    let mac3 = data["VtepMAC"].as_str().context("VtepMAC")?.to_string();
    let fdb = node2
        .exec(&["bridge", "fdb", "show", "dev", "flannel.1"])?
        .check("node2's FDB")?
        .stdout;
    ensure!(
        fdb.contains(&format!("{mac3} dst {}", node3.ip)),
        "node2's FDB has node3: {fdb}"
    );
    let subnet3 = n3["spec"]["podCIDR"].as_str().context("node3 podCIDR")?;
    let routes = node2.exec(&["ip", "route"])?.stdout;
    let gw3 = subnet3.replacen(".0/24", ".0", 1);
    ensure!(
        routes.contains(&format!("{subnet3} via {gw3} dev flannel.1 onlink")),
        "node2's route to node3's pods: {routes}"
    );

    bad_net_conf(cp)?;
    eprintln!("flanneld's refusals: {}", elapsed(started));

    let (code, report, stderr) = verify(cp, &[])?;
    ensure!(
        code == 0 && report["status"] == "pass",
        "verify on a healthy flannel cluster: {stderr}\n{report:#}"
    );
    eprintln!("verify passes: {}", elapsed(started));

    // node2 forgets where node3's VTEP is: only node2 ↔ node3 pod traffic breaks.
    node2
        .exec(&[
            "bridge",
            "fdb",
            "del",
            &mac3,
            "dev",
            "flannel.1",
            "dst",
            &node3.ip,
            "self",
        ])?
        .check("deleting node2's FDB entry for node3")?;
    let (code, report, stderr) = verify(cp, &["--host-port", "9080"])?;
    ensure!(code == 1 && report["status"] == "fail", "{code} {report:#}");
    ensure!(
        report["failing_pairs"] == serde_json::json!([["node2", "node3"]]),
        "exactly node2↔node3: {report:#}"
    );
    ensure!(stderr.contains("node2↔node3"), "{stderr}");
    eprintln!("verify names node2↔node3: {}", elapsed(started));

    for name in ["node3", "node2", "node1"] {
        let node = cluster.node(name)?;
        node.kubestrap(&["reset", "--force"])?
            .check(&format!("reset on {name}"))?;
        no_flannel_left(node)?;
    }
    eprintln!("reset leaves nothing: {}", elapsed(started));
    Ok(())
}

/// flanneld run by hand on node1 (the node's own flannel pod keeps running) with a bad value: it
/// exits as flanneld does, naming the value.
fn bad_net_conf(cp: &Node) -> Result<()> {
    let flanneld = |conf: &str| -> Result<(i32, String)> {
        cp.write_file("/tmp/net-conf.json", conf.as_bytes(), 0o644)?;
        let out = cp.exec(&[
            "env",
            "NODE_NAME=node1",
            "/opt/testbed/bin/tbnode",
            "flanneld",
            "--ip-masq",
            "--kube-subnet-mgr",
            "--kubeconfig-file=/etc/kubernetes/admin.conf",
            "--net-config-path=/tmp/net-conf.json",
        ])?;
        Ok((out.code, out.stderr))
    };
    let (code, stderr) = flanneld(r#"{"Network": "10.244.0.0/33", "Backend": {"Type": "vxlan"}}"#)?;
    ensure!(
        code == 1
            && stderr.contains(
                "Failed to create SubnetManager: error parsing subnet config: invalid CIDR address: 10.244.0.0/33"
            ),
        "{code}: {stderr}"
    );
    let (code, stderr) =
        flanneld(r#"{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": "one"}}"#)?;
    ensure!(
        code == 1
            && stderr.contains(
                "Error registering network: error decoding VXLAN backend config: json: cannot unmarshal string into Go struct field .VNI of type int"
            ),
        "{code}: {stderr}"
    );
    let (code, stderr) = flanneld(r#"{"Network": "10.96.0.0/16", "Backend": {"Type": "vxlan"}}"#)?;
    ensure!(
        code == 1
            && stderr.contains("doesn't contain")
            && stderr.contains("PodCIDR of the \"node1\" node"),
        "{code}: {stderr}"
    );
    Ok(())
}

/// Nothing of flannel's on the node: devices, routes through them, FDB, chains and rules, sets,
/// nft tables, files.
fn no_flannel_left(node: &Node) -> Result<()> {
    let show = |script: &str| -> Result<String> { Ok(node.sh(script)?.stdout) };
    let links = show("ip -o link show")?;
    ensure!(
        !links.contains("flannel") && !links.contains("cni0"),
        "{}: links left: {links}",
        node.name
    );
    let routes = show("ip route show; ip neigh show")?;
    ensure!(
        !routes.contains("flannel") && !routes.contains("cni0"),
        "{}: routes left: {routes}",
        node.name
    );
    let rules = show("iptables-save; ip6tables-save")?;
    ensure!(
        !rules.contains("FLANNEL") && !rules.contains("flanneld"),
        "{}: rules left: {rules}",
        node.name
    );
    let sets = show("ipset list -n 2>/dev/null; nft list ruleset")?;
    ensure!(
        !sets.to_lowercase().contains("flannel"),
        "{}: sets or tables left: {sets}",
        node.name
    );
    let files = show(
        "find /etc/cni/net.d /var/lib/cni /run/flannel -mindepth 1 2>/dev/null | grep -E 'flannel|cbr0' || true",
    )?;
    ensure!(
        files.trim().is_empty(),
        "{}: files left: {files}",
        node.name
    );
    Ok(())
}
