//! flannel end to end on one three-node cluster: `kubestrap init` (the default pod network, flannel,
//! whose phase waits for its DaemonSet) and two joins → the DaemonSet Ready on every node, CoreDNS
//! and kube-proxy Ready, each node's `flannel.1` (VNI, port, MTU), subnet.env, CNI config and Node
//! annotations as flanneld makes them, and `kubestrap verify network` passes; flanneld refuses a bad
//! `net-conf.json` value with flannel's message; deleting node2's FDB entry for node3 makes verify
//! exit 1 naming exactly node2↔node3; `kubestrap reset` of every node leaves no flannel artefact
//! (`ip`, `bridge`, `iptables-save`, `ipset`, `nft`, `find`). `kubestrap verify network` on the same
//! cluster: its healthy report (36 checks, every DNS endpoint answering), its clean-up, SIGINT (it
//! cleans up and exits 130), an unpullable checker image (it names each node's waiting checker at
//! `--timeout` and exits 1), and node1's paths unaffected by the broken node2↔node3 pair.

mod support;

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::{Cluster, Node, wait_until};
use serde_json::Value;
use support::WAIT;

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

    let took = Instant::now();
    let (code, report, stderr) = support::verify(cp, &[])?;
    eprintln!(
        "healthy: verify took {:.1}s (report: {}s, checkers ready after {}s), {} probes",
        took.elapsed().as_secs_f64(),
        report["elapsed_seconds"],
        report["ready_seconds"],
        report["probes"]
    );
    ensure!(
        code == 0 && report["status"] == "pass",
        "verify on a healthy flannel cluster: {stderr}\n{report:#}"
    );
    ensure!(report["nodes"] == serde_json::json!(["node1", "node2", "node3"]));
    let checks = checks_of(&report);
    // 9 pod → pod, 9 node → pod, 9 NodePort, 3 ClusterIP, 3 DNS, 3 kubernetes Service.
    ensure!(checks.len() == 36, "{} checks", checks.len());
    let service = checks
        .iter()
        .find(|c| c["kind"] == "service-dns")
        .context("a DNS check")?;
    ensure!(
        service["answered"].as_array().map(Vec::len) == Some(6),
        "every endpoint answers by name: {service}"
    );
    cleaned_up(cp, &report)?;
    eprintln!("verify passes and cleans up: {}", elapsed(started));
    interrupted(cp)?;
    unpullable(cp)?;
    eprintln!(
        "verify interrupted, and with an unpullable image: {}",
        elapsed(started)
    );

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
    // Another host-network port: node1's node → pod and NodePort checks pass through it.
    let (code, report, stderr) = support::verify(cp, &["--host-port", "9080"])?;
    for c in checks_of(&report).iter().filter(|c| c["ok"] == false) {
        eprintln!(
            "  {} {} → {}: {} probes, {}",
            c["kind"], c["from"], c["to"], c["probes"], c["error"]
        );
    }
    ensure!(code == 1 && report["status"] == "fail", "{code} {report:#}");
    ensure!(
        report["failing_pairs"] == serde_json::json!([["node2", "node3"]]),
        "exactly node2↔node3: {report:#}"
    );
    ensure!(
        stderr.contains("between node2↔node3"),
        "the error names the pair: {stderr}"
    );
    for c in checks_of(&report) {
        let touches = |n: &str| c["from"] == n || c["to"] == n;
        if c["kind"] != "service-ip" && c["kind"] != "service-dns" && touches("node1") {
            ensure!(c["ok"] == true, "node1's paths are unaffected: {c}");
        }
    }
    cleaned_up(cp, &report)?;
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

/// The run's namespace is gone (or, where nothing finalizes namespaces, being deleted) and holds
/// no DaemonSet, Service or pod: verify deletes its objects, then the namespace.
fn cleaned_up(cp: &Node, report: &Value) -> Result<()> {
    let name = support::text(report, "/namespace").to_string();
    ensure!(name.starts_with("kubestrap-verify-"), "{report}");
    wait_until(
        &format!("namespace {name} and its pods to go"),
        WAIT,
        || {
            let ns = cp.kubectl(&["get", "namespace", &name, "-o", "json"])?;
            let terminating = ns.code == 0
                && !serde_json::from_str::<Value>(&ns.stdout)?["metadata"]["deletionTimestamp"]
                    .is_null();
            let empty = support::items(cp, &["daemonsets,services,pods", "-n", &name])?.is_empty();
            Ok((ns.code != 0 || terminating) && empty)
        },
    )
}

/// Ctrl-C while verify waits for its checkers: it deletes its namespace and objects and exits 130.
fn interrupted(cp: &Node) -> Result<()> {
    let before: Vec<String> = namespaces(cp)?;
    cp.sh(
        "(kubestrap verify network --timeout 60s >/tmp/verify.out 2>&1 & echo $! >/tmp/verify.pid; \
         wait $!; echo $? >/tmp/verify.code) >/dev/null 2>&1 &",
    )?
    .check("starting verify in the background")?;
    let mut created = String::new();
    wait_until("verify's namespace", WAIT, || {
        created = namespaces(cp)?
            .into_iter()
            .find(|n| !before.contains(n))
            .unwrap_or_default();
        Ok(!created.is_empty())
    })?;
    cp.sh("kill -INT $(cat /tmp/verify.pid)")?
        .check("SIGINT to verify")?;
    wait_until("verify to exit", WAIT, || {
        Ok(cp.sh("test -s /tmp/verify.code")?.code == 0)
    })?;
    let code = cp.read_string("/tmp/verify.code")?;
    let out = cp.read_string("/tmp/verify.out")?;
    ensure!(code.trim() == "130", "exit {code}: {out}");
    ensure!(
        out.contains(&format!("interrupted: deleting namespace {created}")),
        "{out}"
    );
    cleaned_up(cp, &serde_json::json!({ "namespace": created }))
}

/// Checkers whose image cannot be pulled: at `--timeout` verify names each node's waiting pod and
/// why, cleans up and exits 1.
fn unpullable(cp: &Node) -> Result<()> {
    let before = namespaces(cp)?;
    let out = cp.kubestrap(&[
        "verify",
        "network",
        "--image",
        "registry.example/agnhost-missing:1",
        "--timeout",
        "6s",
    ])?;
    ensure!(out.code == 1, "{out:?}");
    ensure!(
        out.stderr
            .contains("timed out waiting for the checker pods")
            && out.stderr.contains("pod-a on node3 (Pending, ErrImagePull")
            && out.stderr.contains("host on node1"),
        "{}",
        out.stderr
    );
    let created = namespaces(cp)?
        .into_iter()
        .find(|n| !before.contains(n))
        .unwrap_or_default();
    if created.is_empty() {
        return Ok(()); // already gone
    }
    cleaned_up(cp, &serde_json::json!({ "namespace": created }))
}

/// The names of verify's namespaces.
fn namespaces(cp: &Node) -> Result<Vec<String>> {
    Ok(support::items(
        cp,
        &[
            "namespaces",
            "-l",
            "app.kubernetes.io/managed-by=kubestrap-verify",
        ],
    )?
    .iter()
    .map(|n| support::text(n, "/metadata/name").to_string())
    .collect())
}

fn checks_of(report: &Value) -> Vec<Value> {
    report["checks"].as_array().cloned().unwrap_or_default()
}
