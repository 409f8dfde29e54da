//! Benchmark: a three-node testbed cluster (kubestrap's control-plane files, node IPAM, the
//! test pod network of `driver::podnet`) running 30 pods — a DaemonSet (3) and a Deployment (27)
//! of agnhost netexec with readiness probes — until every pod is Ready, then teardown.
//!
//! `cargo bench -p kubestrap-testbed --bench pods` (target: pods Ready + teardown under 60 s;
//! the cluster's own start is measured by the `cluster` bench and printed here for context).
//! `TESTBED_BENCH_RUNS=<n>` sets the number of runs (default 1).

use std::time::{Duration, Instant};

use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, Source, Timings};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, podnet, wait_until};
use serde_json::{Value, json};

const PODS: usize = 30;

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn template(app: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}}, "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
        "name": "netexec", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
        "command": ["agnhost", "netexec", "--http-port=8080"],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
    }]}})
}

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("pods benchmark: run with `cargo bench -p kubestrap-testbed --bench pods`");
        return Ok(());
    }
    let runs: usize = std::env::var("TESTBED_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let binaries = kubestrap_testbed::binaries!();
    println!(
        "three-node testbed cluster, {PODS} pods (DaemonSet 3 + Deployment 27), {runs} run(s)"
    );
    println!(
        "{:>4} {:>14} {:>14} {:>10} {:>18}",
        "run", "cluster up", "pods ready", "teardown", "ready + teardown"
    );
    for run in 1..=runs {
        let started = Instant::now();
        let cluster = Cluster::start(&binaries, &ClusterSpec::nodes(3))?;
        let cp = cluster.node("node1")?;
        let mut settings = ClusterSettings::for_node(cp);
        settings.pod_subnet = Some("10.244.0.0/16".into());
        scenario::three_node_cluster_with(
            &cluster,
            Source::Kubestrap,
            &settings,
            &mut Timings::default(),
            started,
        )?;
        podnet::install(&cluster)?;
        let cluster_up = started.elapsed();
        let t = Instant::now();
        scenario::apply(
            cp,
            scenario::ADMIN,
            &[
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "bench-ds", "namespace": "default"},
                       "spec": {"selector": {"matchLabels": {"app": "bench-ds"}}, "template": template("bench-ds")}}),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench", "namespace": "default"},
                       "spec": {"replicas": PODS - 3, "selector": {"matchLabels": {"app": "bench"}}, "template": template("bench")}}),
            ],
        )?;
        wait_until("30 ready pods", Duration::from_secs(300), || {
            let out = cp
                .kubectl(&["get", "pods", "-o", "json"])?
                .check("kubectl get pods")?;
            let list: Value = serde_json::from_str(&out.stdout)?;
            let ready = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .count();
            Ok(ready == PODS)
        })?;
        let pods_ready = t.elapsed();
        let teardown = cluster.teardown()?.duration;
        println!(
            "{run:>4} {:>14} {:>14} {:>10} {:>18}",
            seconds(cluster_up),
            seconds(pods_ready),
            seconds(teardown),
            seconds(pods_ready + teardown)
        );
    }
    Ok(())
}
