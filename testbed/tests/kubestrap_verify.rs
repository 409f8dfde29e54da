//! `kubestrap verify network` run on node1 of a three-node testbed cluster made by `kubestrap init` and
//! two joins (its flannel pod network, kube-proxy and CoreDNS, on the testbed's doubles): it passes (exit 0, its JSON report parsed) and leaves no
//! workload behind; interrupted by SIGINT it cleans up and exits 130; with an image that cannot be
//! pulled it names each node's waiting checker at `--timeout` and exits 1; with node2's route to node3's pods deleted it exits 1 naming exactly the pair
//! node2↔node3.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::{Node, podnet, wait_until};
use serde_json::Value;
use support::WAIT;

/// Runs `kubestrap verify network -o json [extra…]` on `node`: exit code, parsed report, stderr,
/// wall time.
fn verify(node: &Node, extra: &[&str]) -> Result<(i32, Value, String, Duration)> {
    let started = Instant::now();
    let mut args = vec!["verify", "network", "-o", "json", "--timeout", "60s"];
    args.extend_from_slice(extra);
    let out = node.kubestrap(&args)?;
    let took = started.elapsed();
    let report: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("verify's stdout is not JSON: {out:?}"))?;
    Ok((out.code, report, out.stderr, took))
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

#[test]
fn verify_network_passes_then_names_the_broken_node_pair() -> Result<()> {
    let started = Instant::now();
    let (cluster, _) = support::cluster_with_flannel()?;
    let cp = cluster.node("node1")?;
    eprintln!(
        "cluster from kubestrap init + joins with flannel, kube-proxy and CoreDNS: {:?}",
        started.elapsed()
    );

    let (code, report, stderr, took) = verify(cp, &[])?;
    eprintln!(
        "healthy: verify took {took:?} (report: {}s, checkers ready after {}s), {} probes",
        report["elapsed_seconds"], report["ready_seconds"], report["probes"]
    );
    ensure!(
        code == 0 && report["status"] == "pass",
        "verify failed on a healthy cluster: {stderr}\n{report:#}\n{}",
        cluster.diagnostics()
    );
    ensure!(report["nodes"] == serde_json::json!(["node1", "node2", "node3"]));
    let checks = report["checks"].as_array().context("checks")?;
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
    interrupted(cp)?;
    unpullable(cp)?;

    // node2 loses flannel's route to node3's pods: node2 ↔ node3 pod traffic fails both ways. (Not a
    // route to node1's pods: the API server on node1 reaches the checkers from flannel.1's address, so
    // that would cut pods/proxy to node2's checkers too, as on a real flannel cluster.)
    let cidrs = podnet::pod_cidrs(&cluster)?;
    let node3_cidr = cidrs["node3"]
        .iter()
        .find(|c| c.contains('.'))
        .context("node3's IPv4 podCIDR")?;
    cluster
        .node("node2")?
        .exec(&["ip", "route", "del", node3_cidr])?
        .check("deleting node2's route to node3's pods")?;
    // Another host-network port: node1's node → pod and NodePort checks pass through it.
    let (code, report, stderr, took) = verify(cp, &["--host-port", "9080"])?;
    eprintln!(
        "broken: verify took {took:?} (checkers ready after {}s); {stderr}",
        report["ready_seconds"]
    );
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
    cluster.teardown()?;
    eprintln!("total {:?}", started.elapsed());
    Ok(())
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
