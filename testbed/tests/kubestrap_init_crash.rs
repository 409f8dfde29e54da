//! `kubestrap init` killed with SIGKILL in the middle of a phase, then run again: the re-run reports
//! the unfinished run, rolls it back (files, the kubelet service, API objects) and converges to an
//! initialized control plane. CI runs three phases chosen by a seed it prints
//! (`KUBESTRAP_CRASH_SEED` replays one); `KUBESTRAP_CRASH_PHASES=all` (scripts/crash-matrix.sh) or a
//! comma-separated list runs those phases. Each phase gets a fresh testbed node.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, SUPER_ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node};

/// Every phase of init that changes something, with the first line it prints: the kill lands right
/// after it, inside the phase.
const PHASES: [(&str, &str); 12] = [
    ("certs", "[certs] Using certificateDir folder"),
    ("kubeconfig", "[kubeconfig] Using kubeconfig folder"),
    ("etcd", "[etcd] Creating static Pod manifest"),
    ("control-plane", "[control-plane] Using manifest folder"),
    ("kubelet-start", "[kubelet-start]"),
    ("wait-control-plane", "[wait-control-plane]"),
    ("upload-config", "[upload-config] Storing the configuration"),
    ("upload-certs", "[upload-certs] Storing the certificates"),
    (
        "mark-control-plane",
        "[mark-control-plane] Marking the node",
    ),
    (
        "bootstrap-token",
        "[bootstrap-token] Configuring bootstrap tokens",
    ),
    ("kubelet-finalize", "[kubelet-finalize]"),
    ("addon", "[addons] Applied essential addon: CoreDNS"),
];

const CONFIG: &str = "/root/kubestrap.yaml";

/// A small deterministic generator (splitmix64): the seed alone decides the sample.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn chosen_phases() -> Result<Vec<(&'static str, &'static str)>> {
    if let Ok(list) = std::env::var("KUBESTRAP_CRASH_PHASES") {
        if list == "all" {
            return Ok(PHASES.to_vec());
        }
        return list
            .split(',')
            .map(|name| {
                PHASES
                    .iter()
                    .find(|(p, _)| *p == name)
                    .copied()
                    .with_context(|| format!("unknown phase {name:?}"))
            })
            .collect();
    }
    let seed = match std::env::var("KUBESTRAP_CRASH_SEED") {
        Ok(text) => text.parse().context("KUBESTRAP_CRASH_SEED")?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    eprintln!("crash sample seed: {seed} (replay with KUBESTRAP_CRASH_SEED={seed})");
    let mut state = seed;
    let mut pool = PHASES.to_vec();
    let mut out = Vec::new();
    for _ in 0..3 {
        let at = (next(&mut state) % pool.len() as u64) as usize;
        out.push(pool.remove(at));
    }
    Ok(out)
}

fn init_command() -> String {
    format!("kubestrap init --config={CONFIG} --upload-certs")
}

/// Starts init on the node and SIGKILLs it as soon as `marker` is printed; returns its output.
fn kill_at(node: &Node, marker: &str) -> Result<String> {
    let script = format!(
        "rm -f /tmp/init.out; {} > /tmp/init.out 2>&1 & pid=$!; \
         while ! grep -qF '{marker}' /tmp/init.out; do \
           kill -0 $pid 2>/dev/null || {{ echo 'init ended before the marker'; cat /tmp/init.out; exit 3; }}; \
           sleep 0.005; \
         done; kill -9 $pid; wait $pid 2>/dev/null; cat /tmp/init.out",
        init_command()
    );
    Ok(node.sh(&script)?.check("init killed at the marker")?.stdout)
}

#[test]
fn init_killed_in_a_phase_is_rolled_back_by_the_next_init_which_converges() -> Result<()> {
    let phases = chosen_phases()?;
    let mut figures = Vec::new();
    let mut result = Ok(());
    for (phase, marker) in &phases {
        let started = Instant::now();
        let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
        let outcome = crash_and_recover(cluster.node("node1")?, phase, marker);
        match outcome {
            Ok(undone) => figures.push(format!(
                "{phase:<20} converged: {undone:>3} change(s) of the killed run undone, {:.1}s",
                started.elapsed().as_secs_f32()
            )),
            Err(e) => {
                figures.push(format!("{phase:<20} FAILED: {e:#}"));
                result = Err(e.context(format!("phase {phase}\n{}", cluster.diagnostics())));
            }
        }
        cluster.teardown()?;
        if result.is_err() {
            break;
        }
    }
    eprintln!("crash figures:\n{}\n", figures.join("\n"));
    result
}

fn crash_and_recover(node: &Node, phase: &str, marker: &str) -> Result<usize> {
    let mut settings = ClusterSettings::for_node(node);
    settings.pod_subnet = Some("10.244.0.0/16".into());
    node.write_file(
        CONFIG,
        scenario::kubestrap_config(&settings)?.as_bytes(),
        0o600,
    )?;
    let killed = kill_at(node, marker)?;
    ensure!(
        !killed.contains("initialized successfully"),
        "the kill landed after init finished:\n{killed}"
    );
    let rerun = node.sh(&init_command())?;
    let out = format!("{}{}", rerun.stdout, rerun.stderr);
    ensure!(
        rerun.ok(),
        "the re-run after a kill in {phase} failed:\n{out}"
    );
    ensure!(
        out.contains("[recover] An earlier run ('kubestrap init'"),
        "the re-run reports the unfinished run:\n{out}"
    );
    ensure!(
        out.contains("Your Kubernetes control-plane has initialized successfully!"),
        "{out}"
    );
    let undone = out
        .lines()
        .find_map(|l| l.strip_prefix("[recover] Undid "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    scenario::wait_for_api(node, SUPER_ADMIN, Duration::from_secs(30))?;
    let nodes = node
        .kubectl(&["get", "node", "node1", "-o", "jsonpath={.metadata.labels}"])?
        .check("kubectl get node")?;
    ensure!(
        nodes
            .stdout
            .contains("node-role.kubernetes.io/control-plane"),
        "{}",
        nodes.stdout
    );
    Ok(undone)
}
