//! Benchmark of the milestone scenario: how long a three-node testbed cluster takes to start
//! (nodes up, control plane answering, three nodes registered) and to tear down.
//!
//! `cargo bench -p kubestrap-testbed --bench cluster` (target: start + teardown under 3 minutes).
//! `TESTBED_BENCH_RUNS=<n>` sets the number of runs (default 3); `TESTBED_BENCH_SOURCE=fixture`
//! uses the testbed's kubeadm fixture instead of kubestrap's phases for node 1's files.

use std::time::{Duration, Instant};

use kubestrap_testbed::driver::scenario::{self, Source, Timings};
use kubestrap_testbed::driver::{Cluster, ClusterSpec};

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench targets without `--bench`; the milestone test
    // already covers the scenario there, so only `cargo bench` measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("cluster benchmark: run with `cargo bench -p kubestrap-testbed --bench cluster`");
        return Ok(());
    }
    let runs: usize = std::env::var("TESTBED_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let source = match std::env::var("TESTBED_BENCH_SOURCE").as_deref() {
        Ok("fixture") => Source::Fixture,
        _ => Source::Kubestrap,
    };
    let binaries = kubestrap_testbed::binaries!();
    println!("three-node testbed cluster, node 1's files from {source:?}, {runs} run(s)");
    println!(
        "{:>4} {:>12} {:>12} {:>12} {:>14} {:>10} {:>8}",
        "run", "nodes up", "files", "api ready", "3 nodes ready", "teardown", "total"
    );
    let mut totals = Vec::new();
    for run in 1..=runs {
        let started = Instant::now();
        let cluster = Cluster::start(&binaries, &ClusterSpec::nodes(3))?;
        let mut timings = Timings {
            nodes_started: started.elapsed(),
            ..Default::default()
        };
        scenario::three_node_cluster(&cluster, source, &mut timings, started)?;
        let teardown = cluster.teardown()?.duration;
        let total = timings.all_nodes_registered + teardown;
        totals.push(total);
        println!(
            "{run:>4} {:>12} {:>12} {:>12} {:>14} {:>10} {:>8}",
            seconds(timings.nodes_started),
            seconds(timings.files_written),
            seconds(timings.api_ready),
            seconds(timings.all_nodes_registered),
            seconds(teardown),
            seconds(total)
        );
    }
    totals.sort();
    let median = totals[totals.len() / 2];
    println!(
        "median start + teardown: {} (target under 180s)",
        seconds(median)
    );
    Ok(())
}
