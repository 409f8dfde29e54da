//! The main job on a machine without a cluster: a three-node testbed cluster brought up from what
//! kubestrap writes, listed with the real kubectl, then reset with `kubestrap reset` and torn down.
//!
//! node1 runs the real `kubestrap init`, every phase, with no preflight check ignored; node2 and node3
//! run the real `kubestrap join` with the command init printed. The pod network is init's default
//! addon, flannel (the testbed's flanneld and flannel CNI plugin doubles build a real vxlan datapath):
//! init waits for it on node1, the joined nodes get their flannel pods from its DaemonSet, CoreDNS
//! and kube-proxy come up on it, and `kubestrap verify network` checks it from every node.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, ADMIN};
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
    let mut settings = ClusterSettings::for_node(cp);
    // Node IPAM hands each node a podCIDR from it (flannel's lease; kube-proxy's cluster CIDR).
    settings.pod_subnet = Some("10.244.0.0/16".into());

    step("node1: kubestrap init");
    cp.write_file(
        "/root/kubestrap.yaml",
        scenario::kubestrap_config(&settings)?.as_bytes(),
        0o600,
    )?;
    let init = cp.kubestrap(&["init", "--config=/root/kubestrap.yaml"])?;
    show(&init.stdout);
    show(&init.stderr);
    let init = init.check("kubestrap init on node1")?;
    let command =
        scenario::printed_join_command(&init.stdout).context("the join command init printed")?;

    for name in ["node2", "node3"] {
        step(&format!("{name}: {command}"));
        let joined = scenario::run_join_command(cluster.node(name)?, &command)?;
        show(&joined.stdout);
        show(&joined.stderr);
        joined.check(&format!("kubestrap join on {name}"))?;
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

    step("flannel on every node (its DaemonSet), then CoreDNS");
    let flannel = cp.kubectl(&[
        "-n",
        "kube-flannel",
        "rollout",
        "status",
        "daemonset/kube-flannel-ds",
        "--timeout=90s",
    ])?;
    show(&flannel.stdout);
    flannel
        .check("flannel rollout")
        .with_context(|| cluster.diagnostics())?;
    let rollout = cp.kubectl(&[
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment/coredns",
        "--timeout=90s",
    ])?;
    show(&rollout.stdout);
    rollout
        .check("CoreDNS rollout")
        .with_context(|| cluster.diagnostics())?;

    step("node1: kubestrap verify network");
    let verify = cp.kubestrap(&["verify", "network", "--timeout=90s"])?;
    show(&verify.stdout);
    show(&verify.stderr);
    verify.check("kubestrap verify network on node1")?;

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
