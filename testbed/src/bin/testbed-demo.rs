//! The main job on a machine without a cluster: a three-node testbed cluster brought up from what
//! kubestrap writes, listed with the real kubectl, then reset with `kubestrap reset` and torn down.
//!
//! Steps kubestrap does not do yet (kubelet-start, join) are done by the testbed the way kubeadm
//! would, and the output says so.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, ADMIN, SUPER_ADMIN};
use kubestrap_testbed::driver::{Binaries, Cluster, ClusterSpec, wait_until};

fn step(text: &str) {
    println!("\n== {text}");
}

fn show(out: &str) {
    for line in out.lines() {
        println!("   {line}");
    }
}

fn main() -> Result<()> {
    let started = Instant::now();
    let binaries = Binaries::beside_current_exe()?;
    step(
        "starting three testbed nodes (Docker containers on a private network, no registry needed)",
    );
    let cluster = Cluster::start(&binaries, &ClusterSpec::nodes(3))?;
    let result = run(&cluster);
    step("tearing the testbed down");
    let torn = cluster.teardown()?;
    println!(
        "   no container, network, volume, mount or process left ({:.1}s)",
        torn.duration.as_secs_f64()
    );
    result?;
    println!("\ndemo finished in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run(cluster: &Cluster) -> Result<()> {
    for node in &cluster.nodes {
        println!("   {} at {}", node.name, node.ip);
    }
    let cp = cluster.node("node1")?;
    let settings = ClusterSettings::for_node(cp);

    step("node1: kubestrap init, the phases that write the control plane's files");
    cp.write_file(
        "/root/kubestrap.yaml",
        scenario::kubestrap_config(&settings)?.as_bytes(),
        0o600,
    )?;
    let init = cp.kubestrap(&[
        "init",
        "--config=/root/kubestrap.yaml",
        "--ignore-preflight-errors=all",
        &format!("--skip-phases={}", scenario::INIT_API_PHASES),
    ])?;
    show(&init.stdout);
    init.check("kubestrap init on node1")?;

    step(
        "node1: kubelet started by the node's service manager (kubestrap's kubelet-start phase comes later)",
    );
    scenario::start_kubelet(cp, &settings)?;
    let waited = scenario::wait_for_api(cp, SUPER_ADMIN, Duration::from_secs(90))?;
    println!(
        "   the API server built from kubestrap's manifest answers after {:.1}s",
        waited.as_secs_f64()
    );

    step(
        "node1: kubestrap init, the phases that use the API server (upload-config … show-join-command)",
    );
    let init = cp.kubestrap(&[
        "init",
        "--config=/root/kubestrap.yaml",
        &format!("--skip-phases={}", scenario::INIT_FILE_PHASES),
    ])?;
    show(&init.stdout);
    let init = init.check("kubestrap init (API phases) on node1")?;
    let token = init
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("kubestrap join "))
        .and_then(|l| l.split_whitespace().nth(2))
        .context("the printed join command")?
        .to_string();

    step(
        "node2, node3: kubelets TLS-bootstrap with the printed token (stand-in for kubestrap join)",
    );
    let ca = cp.read_string("/etc/kubernetes/pki/ca.crt")?;
    for name in ["node2", "node3"] {
        scenario::join_worker(cluster.node(name)?, &settings, &ca, &token)?;
    }
    wait_until("three registered nodes", Duration::from_secs(90), || {
        Ok(scenario::node_names(cp, ADMIN)?.len() == 3)
    })
    .with_context(|| cluster.diagnostics())?;

    step("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide");
    let nodes = cp
        .kubectl(&["get", "nodes", "-o", "wide"])?
        .check("kubectl get nodes")?;
    show(&nodes.stdout);

    for node in cluster.nodes.iter().rev() {
        step(&format!("{}: kubestrap reset --force", node.name));
        let reset = node.kubestrap(&["reset", "--force"])?;
        show(&reset.stdout);
        show(&reset.stderr);
        reset.check(&format!("kubestrap reset on {}", node.name))?;
    }
    step("node1 after reset: /etc/kubernetes and /var/lib/etcd");
    let left = cp.sh("find /etc/kubernetes /var/lib/etcd /var/lib/kubestrap 2>/dev/null | sort")?;
    show(if left.stdout.trim().is_empty() {
        "(nothing)"
    } else {
        &left.stdout
    });
    Ok(())
}
