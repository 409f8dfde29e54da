//! `kubestrap init phase addon pod-network --pod-network-manifest FILE` against a testbed control plane
//! (one node): a manifest the API server rejects part-way (its DaemonSet's selector does not match its
//! template, a 422) fails the phase and the rollback removes the objects that run had already applied;
//! upstream's manifest (the hand-written flannel fixture) is then applied with the pod CIDR, MTU and
//! interface kubestrap set, visible with kubectl.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, SUPER_ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node};
use serde_json::Value;

const CONFIG: &str = "/root/kubestrap.yaml";
const MANIFEST: &str = "/root/kube-flannel.yml";
const REJECTED: &str = "/root/kube-flannel-rejected.yml";
const FLANNEL: &str = include_str!("../../tests/fixtures/pod-network/kube-flannel.yml");

/// `kubectl get <args> -o json`.
fn kubectl_json(node: &Node, args: &[&str]) -> Result<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    let out = node
        .kubectl_with(SUPER_ADMIN, &all)?
        .check(&format!("kubectl get {}", args.join(" ")))?;
    Ok(serde_json::from_str(&out.stdout)?)
}

fn exists(node: &Node, args: &[&str]) -> Result<bool> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let out = node.kubectl_with(SUPER_ADMIN, &all)?;
    if out.ok() {
        return Ok(true);
    }
    ensure!(
        out.stderr.contains("NotFound") || out.stderr.contains("not found"),
        "kubectl get {args:?}: {}",
        out.stderr
    );
    Ok(false)
}

#[test]
fn an_upstream_manifest_is_edited_applied_and_rolled_back() -> Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
    eprintln!("cluster started: {:.1}s", started.elapsed().as_secs_f32());
    let result = run(&cluster);
    if result.is_err() {
        eprintln!("{}", cluster.diagnostics());
    }
    cluster.teardown()?;
    result
}

fn run(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    let mut settings = ClusterSettings::for_node(cp);
    settings.pod_subnet = Some("10.200.0.0/16".into());
    cp.write_file(
        CONFIG,
        scenario::kubestrap_config(&settings)?.as_bytes(),
        0o600,
    )?;
    cp.write_file(MANIFEST, FLANNEL.as_bytes(), 0o644)?;
    let rejected = FLANNEL.replace(
        "  selector:\n    matchLabels:\n      app: flannel\n",
        "  selector:\n    matchLabels:\n      app: not-flannel\n",
    );
    ensure!(rejected != FLANNEL, "the selector was replaced");
    cp.write_file(REJECTED, rejected.as_bytes(), 0o644)?;
    let started = Instant::now();
    cp.kubestrap(&[
        "init",
        &format!("--config={CONFIG}"),
        &format!("--skip-phases={}", scenario::INIT_API_PHASES),
    ])?
    .check("kubestrap init (up to the running control plane)")?;
    scenario::wait_for_api(cp, SUPER_ADMIN, Duration::from_secs(90))?;
    eprintln!("control plane up: {:.1}s", started.elapsed().as_secs_f32());

    let phase = |manifest: &str| {
        cp.kubestrap(&[
            "init",
            "phase",
            "addon",
            "pod-network",
            &format!("--config={CONFIG}"),
            &format!("--pod-network-manifest={manifest}"),
        ])
    };
    let applied_before_the_daemonset: [&[&str]; 5] = [
        &["namespace", "kube-flannel"],
        &["clusterrole", "flannel"],
        &["clusterrolebinding", "flannel"],
        &["serviceaccount", "-n", "kube-flannel", "flannel"],
        &["configmap", "-n", "kube-flannel", "kube-flannel-cfg"],
    ];

    // The API server refuses the DaemonSet: the phase fails and what it applied before is removed.
    let step = Instant::now();
    let failed = phase(REJECTED)?;
    eprintln!("rejected run: {:.1}s", step.elapsed().as_secs_f32());
    ensure!(failed.code == 1, "the rejected manifest fails: {failed:?}");
    ensure!(
        failed
            .stderr
            .contains("error execution phase addon/pod-network")
            && failed.stderr.contains("kube-flannel-ds"),
        "the error names the phase and the DaemonSet: {}",
        failed.stderr
    );
    ensure!(
        failed.stderr.contains(
            "[addons] --pod-network-manifest: set ConfigMap kube-flannel/kube-flannel-cfg"
        ),
        "the edit is said on stderr: {}",
        failed.stderr
    );
    for object in applied_before_the_daemonset {
        let present = exists(cp, object)?;
        // A namespace being deleted may linger as Terminating.
        let terminating = object[0] == "namespace"
            && present
            && kubectl_json(cp, object)?["status"]["phase"] == "Terminating";
        ensure!(
            !present || terminating,
            "{object:?} was rolled back\n{}",
            failed.stdout
        );
    }

    // Upstream's manifest, with the cluster's pod CIDR, the node's MTU and interface.
    let step = Instant::now();
    let run = phase(MANIFEST)?.check("kubestrap init phase addon pod-network")?;
    eprintln!("applied run: {:.1}s", step.elapsed().as_secs_f32());
    ensure!(
        run.stderr
            .contains("data[\"net-conf.json\"].Network: \"10.244.0.0/16\" → \"10.200.0.0/16\""),
        "{}",
        run.stderr
    );
    let config_map = kubectl_json(cp, &["configmap", "-n", "kube-flannel", "kube-flannel-cfg"])?;
    let json_of = |key: &str| -> Result<Value> {
        let text = config_map["data"][key]
            .as_str()
            .with_context(|| format!("data[{key}]"))?;
        Ok(serde_json::from_str(text)?)
    };
    let net_conf = json_of("net-conf.json")?;
    ensure!(net_conf["Network"] == "10.200.0.0/16", "{net_conf}");
    ensure!(net_conf["Backend"]["Type"] == "vxlan", "{net_conf}");
    let address = &settings.advertise_address;
    let interface_mtu: u64 = cp
        .sh(&format!(
            "cat /sys/class/net/$(ip -o -4 addr show | awk '$4 ~ \"^{address}/\" {{print $2}}')/mtu"
        ))?
        .check("the advertise interface's MTU")?
        .stdout
        .trim()
        .parse()?;
    let delegate = &json_of("cni-conf.json")?["plugins"][0]["delegate"];
    ensure!(
        delegate["mtu"].as_u64() == Some(interface_mtu - 50),
        "{delegate} for an interface MTU of {interface_mtu}"
    );
    let daemonset = kubectl_json(cp, &["daemonset", "-n", "kube-flannel", "kube-flannel-ds"])?;
    let args = &daemonset["spec"]["template"]["spec"]["containers"][0]["args"];
    let first_octet = address.split('.').next().unwrap_or_default();
    ensure!(
        args[0] == "--ip-masq"
            && args[1] == "--kube-subnet-mgr"
            && args[2]
                .as_str()
                .is_some_and(|a| a.starts_with(&format!("--iface-regex=^{first_octet}\\."))),
        "{args}"
    );
    Ok(())
}
