//! `kubestrap reset` on testbed nodes: a worker holding admin credentials deletes its own Node object
//! through the API double, and the control-plane node is returned to a clean host.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, ADMIN, SUPER_ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, wait_until};
use serde_json::Value;

fn report(stdout: &str) -> Result<Value> {
    serde_json::from_str(stdout).with_context(|| format!("reset -o json printed: {stdout}"))
}

fn removed_targets(report: &Value, kind: &str) -> Vec<String> {
    report["removed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["kind"] == kind)
        .filter_map(|i| i["target"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn reset_deletes_the_node_object_and_cleans_the_control_plane_node() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(2))?;
    let cp = cluster.node("node1")?;
    let worker = cluster.node("node2")?;
    let settings = ClusterSettings::for_node(cp);
    cp.write_file(
        "/root/kubestrap.yaml",
        scenario::kubestrap_config(&settings)?.as_bytes(),
        0o600,
    )?;
    let init = cp
        .kubestrap(&["init", "--config=/root/kubestrap.yaml"])?
        .check("kubestrap init")?;
    scenario::start_kubelet(cp, &settings)?;
    scenario::wait_for_api(cp, SUPER_ADMIN, Duration::from_secs(90))?;
    scenario::bind_cluster_admins(cp)?;
    let command =
        scenario::printed_join_command(&init.stdout).context("the printed worker join command")?;
    scenario::run_join_command(worker, &command)?.check("kubestrap join on node2")?;
    wait_until("two registered nodes", Duration::from_secs(90), || {
        Ok(scenario::node_names(cp, ADMIN)?.len() == 2)
    })
    .with_context(|| cluster.diagnostics())?;

    // An admin copied admin.conf to the worker: its reset deletes the worker's own Node object.
    worker.write_file(ADMIN, &cp.read_file(ADMIN)?, 0o600)?;
    let out = worker
        .kubestrap(&["reset", "--force", "-o", "json"])?
        .check("reset on node2")?;
    let worker_report = report(&out.stdout)?;
    ensure!(
        worker_report["left"] == serde_json::json!([]),
        "{worker_report}"
    );
    ensure!(
        scenario::node_names(cp, ADMIN)? == ["node1"],
        "node2's Node object is still listed"
    );
    ensure!(
        removed_targets(&worker_report, "api-object") == ["v1 Node node2"],
        "the Node's deletion through the cluster gateway is reported: {worker_report}"
    );
    ensure!(
        !worker.exists("/etc/kubernetes/kubelet.conf")?,
        "kubelet.conf left on node2"
    );

    // The control-plane node: the last etcd member is backed up, not removed; everything else goes.
    let out = cp
        .kubestrap(&["reset", "--force", "-o", "json"])?
        .check("reset on node1")?;
    let cp_report = report(&out.stdout)?;
    ensure!(cp_report["left"] == serde_json::json!([]), "{cp_report}");
    ensure!(cp_report["reboot_required"] == false, "{cp_report}");
    let files = removed_targets(&cp_report, "path");
    ensure!(
        files
            .iter()
            .any(|f| f.ends_with("/etc/kubernetes/manifests/kube-apiserver.yaml")),
        "{files:?}"
    );
    // The static pods went through the node's CRI runtime: their sandboxes are in the report.
    let pods = removed_targets(&cp_report, "container");
    for pod in ["etcd-node1", "kube-apiserver-node1", "kube-scheduler-node1"] {
        ensure!(
            pods.iter()
                .any(|p| p.ends_with(&format!("kube-system/{pod}"))),
            "{pod} not removed through the CRI: {pods:?}"
        );
    }
    // Empty directories may stay (kubeadm keeps them too; a fresh init accepts them).
    let left = cp.sh(
        "find /etc/kubernetes /var/lib/etcd /var/lib/kubelet -mindepth 1 ! -type d 2>/dev/null",
    )?;
    ensure!(
        left.stdout.trim().is_empty(),
        "left on node1:\n{}",
        left.stdout
    );
    let backup = cp.sh(
        "ls -d /var/lib/kubestrap/backup-*/etcd-snapshot.db /var/lib/kubestrap/backup-*/pki/ca.key",
    )?;
    ensure!(
        backup.stdout.lines().count() == 2,
        "backup: {}",
        backup.stdout
    );
    // pgrep without a shell around it: `sh -c "pgrep -f …"` would match its own shell.
    let running = cp.exec(&["pgrep", "-a", "-f", "kube-apiserver|etcd --"])?;
    ensure!(
        running.stdout.trim().is_empty(),
        "still running after reset: {}",
        running.stdout
    );

    // A second reset is a clean no-op.
    let again = report(
        &cp.kubestrap(&["reset", "--force", "-o", "json"])?
            .check("second reset")?
            .stdout,
    )?;
    ensure!(again["removed"] == serde_json::json!([]), "{again}");
    cluster.teardown()?;
    Ok(())
}
