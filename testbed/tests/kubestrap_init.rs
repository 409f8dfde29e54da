//! `kubestrap init` on a fresh testbed node, with nothing written by the testbed: preflight takes the
//! kubelet package's standalone kubelet as a warning and a foreign listener on 10250 as an error;
//! kubelet-start configures and starts the kubelet through the node's service manager;
//! wait-control-plane reports each component healthy — or names the one that never is, with its
//! log, and the run is rolled back to the node it found (the standalone kubelet running again).
//! One node serves the whole sequence (CI budget). `bench_init_own_time` (ignored; run by
//! scripts/bench-init.sh) measures kubestrap's own time up to a healthy control plane.

mod support;

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, ensure};
use kubestrap::host::runtime::cri;
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::SUPER_ADMIN;
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::{Value, json};
use support::{line_at, since, timed_lines};

/// init's configuration for the node with short health deadlines; `scheduler_args` go to the
/// scheduler's extraArgs.
fn config(
    settings: &ClusterSettings,
    components_timeout: &str,
    scheduler_args: Value,
) -> Result<String> {
    let init = json!({
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": settings.advertise_address, "bindPort": 6443},
        "nodeRegistration": {"name": settings.node_name},
        "timeouts": {"kubeletHealthCheck": "40s", "controlPlaneComponentHealthCheck": components_timeout},
    });
    let cluster = json!({
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "kubernetesVersion": settings.kubernetes_version,
        "etcd": {"local": {"imageTag": settings.etcd_tag}},
        "networking": {"serviceSubnet": settings.service_cidr, "dnsDomain": settings.dns_domain},
        "scheduler": {"extraArgs": scheduler_args},
    });
    kubestrap::yaml::to_documents(&[init, cluster])
}

fn preflight_check(report: &Value, id: &str) -> Result<Value> {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == id)
        .cloned()
        .with_context(|| format!("no {id} check in {report}"))
}

fn kubelet_command_line(node: &Node) -> Result<String> {
    let pid = node.read_string("/run/kubelet.pid")?;
    Ok(node
        .read_string(&format!("/proc/{}/cmdline", pid.trim()))?
        .replace('\0', " "))
}

fn cri_endpoint(node: &Node) -> Result<String> {
    Ok(format!(
        "unix://{}",
        node.host_path(kubestrap_testbed::cri::SOCKET)?.display()
    ))
}

#[test]
fn init_starts_the_kubelet_and_waits_for_a_healthy_control_plane_or_rolls_back() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
    let node = cluster.node("node1")?;
    let settings = ClusterSettings::for_node(node);
    node.write_file(
        "/root/good.yaml",
        config(&settings, "60s", json!([]))?.as_bytes(),
        0o600,
    )?;
    wait_until(
        "the standalone kubelet on 10250",
        Duration::from_secs(20),
        || node.exists("/var/lib/kubelet/pki/kubelet.crt"),
    )?;

    // A foreign listener on 10250 is an error naming it.
    node.systemctl(&["stop", "kubelet"])?
        .check("stop the kubelet")?;
    let foreign_pid = node
        .sh("setsid busybox httpd -f -p 10250 -h /tmp >/dev/null 2>&1 & echo $!")?
        .check("start a foreign listener")?
        .stdout
        .trim()
        .to_string();
    wait_until("the foreign listener", Duration::from_secs(10), || {
        Ok(node
            .sh("grep -qi ':280A ' /proc/net/tcp6 /proc/net/tcp")?
            .ok())
    })?;
    let foreign = node.kubestrap(&[
        "init",
        "phase",
        "preflight",
        "--config=/root/good.yaml",
        "-o",
        "json",
    ])?;
    ensure!(foreign.code == 1, "{foreign:?}");
    let report: Value = serde_json::from_str(&foreign.stdout).context(foreign.stdout.clone())?;
    let port = preflight_check(&report, "Port-10250")?;
    ensure!(
        port["severity"] == "error"
            && port["status"] == "fail"
            && port["message"]
                .as_str()
                .is_some_and(|m| m.contains("busybox")),
        "{port}"
    );
    node.exec(&["kill", &foreign_pid])?
        .check("stop the foreign listener")?;
    node.systemctl(&["start", "kubelet"])?
        .check("start the kubelet")?;

    // The package's standalone kubelet is a warning, and so are its self-generated files.
    wait_until(
        "the standalone kubelet listening",
        Duration::from_secs(20),
        || {
            Ok(node
                .sh("grep -qi ':280A ' /proc/net/tcp6 /proc/net/tcp")?
                .ok())
        },
    )?;
    let out = node
        .kubestrap(&[
            "init",
            "phase",
            "preflight",
            "--config=/root/good.yaml",
            "-o",
            "json",
        ])?
        .check("preflight with the standalone kubelet")?;
    let report: Value = serde_json::from_str(&out.stdout)?;
    for id in ["Port-10250", "DirAvailable--var-lib-kubelet"] {
        let check = preflight_check(&report, id)?;
        ensure!(check["severity"] == "warning", "{check}");
    }
    let port = preflight_check(&report, "Port-10250")?;
    ensure!(
        port["message"]
            .as_str()
            .is_some_and(|m| m.contains("without a configuration")),
        "{port}"
    );

    // A component that never becomes healthy fails init by name, with its log, and the run is
    // rolled back: the node is again the fresh node with its standalone kubelet.
    node.write_file(
        "/root/bad.yaml",
        config(
            &settings,
            "15s",
            json!([{"name": "kubestrap-test-unknown-flag", "value": "1"}]),
        )?
        .as_bytes(),
        0o600,
    )?;
    let failed = node.kubestrap(&["init", "--config=/root/bad.yaml"])?;
    ensure!(failed.code == 1, "{failed:?}");
    ensure!(
        failed
            .stderr
            .contains("kube-scheduler check failed at https://127.0.0.1:10259/livez")
            && failed
                .stderr
                .contains("/var/log/pods/kube-system_kube-scheduler-node1_"),
        "{failed:?}"
    );
    ensure!(
        !failed.stderr.contains("kube-apiserver check failed"),
        "only the scheduler fails: {failed:?}"
    );
    ensure!(failed.stdout.contains("[rollback] Undid"), "{failed:?}");
    for gone in [
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/kubeadm-flags.env",
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "/etc/kubernetes/kubelet.conf",
    ] {
        ensure!(!node.exists(gone)?, "{gone} is left after the rollback");
    }
    ensure!(
        node.exists("/var/lib/kubelet/pki/kubelet.crt")?,
        "the standalone kubelet's certificate is restored"
    );
    ensure!(
        node.systemctl(&["is-active", "kubelet"])?.ok(),
        "the standalone kubelet runs again"
    );
    let command_line = kubelet_command_line(node)?;
    ensure!(!command_line.contains("--config"), "{command_line}");
    let (sandboxes, _) = cri::scan(&cri_endpoint(node)?)?;
    ensure!(
        sandboxes.is_empty(),
        "pods left after the rollback: {sandboxes:?}"
    );

    // An init killed (SIGKILL) while it waits for the control plane: its kubelet runs configured and
    // its pods run; the next init reports the unfinished run and rolls it back before its preflight.
    let killed = node.sh(
        "kubestrap init --config=/root/good.yaml > /tmp/killed.log 2>&1 & pid=$!; \
         for i in $(seq 1 600); do grep -q 'Waiting for healthy control plane' /tmp/killed.log && break; sleep 0.05; done; \
         kill -9 $pid; cat /tmp/killed.log",
    )?;
    ensure!(
        killed
            .stdout
            .contains("[control-plane-check] Waiting for healthy control plane components"),
        "the first run did not reach wait-control-plane: {killed:?}"
    );

    // The real run: kubestrap's own kubelet files, the kubelet started by the service manager, every
    // component healthy, the node registered, kubelet.conf on the rotating certificate.
    let out = node.kubestrap(&["init", "--config=/root/good.yaml"])?;
    ensure!(out.ok(), "{out:?}\n{}", cluster.diagnostics());
    ensure!(
        out.stdout
            .contains("[recover] An earlier run ('kubestrap init'")
            && out.stdout.contains("rolling back its changes first"),
        "{}",
        out.stdout
    );
    for line in [
        "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"",
        "[kubelet-start] Starting the kubelet",
        "[kubelet-check] The kubelet is healthy after",
        "[control-plane-check] etcd is healthy after",
        "[control-plane-check] kube-apiserver is healthy after",
        "[control-plane-check] kube-controller-manager is healthy after",
        "[control-plane-check] kube-scheduler is healthy after",
        "[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\"",
    ] {
        ensure!(
            out.stdout.contains(line),
            "missing {line:?} in {}",
            out.stdout
        );
    }
    ensure!(
        out.stdout
            .contains("[kubelet-start] Removing the standalone kubelet's self-generated files"),
        "{}",
        out.stdout
    );
    let drop_in = node.read_string("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf")?;
    ensure!(drop_in.contains("Written by kubestrap"), "{drop_in}");
    let command_line = kubelet_command_line(node)?;
    ensure!(
        command_line.contains("--config=/var/lib/kubelet/config.yaml")
            && command_line.contains("--kubeconfig=/etc/kubernetes/kubelet.conf"),
        "{command_line}"
    );
    let config = node.read_string("/var/lib/kubelet/config.yaml")?;
    ensure!(
        config.contains("cgroupDriver: systemd")
            && config
                .contains("containerRuntimeEndpoint: unix:///var/run/containerd/containerd.sock"),
        "{config}"
    );
    let kubelet_conf = node.read_string("/etc/kubernetes/kubelet.conf")?;
    ensure!(
        kubelet_conf
            .contains("client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem")
            && !kubelet_conf.contains("client-certificate-data"),
        "{kubelet_conf}"
    );
    wait_until("node1 registered", Duration::from_secs(30), || {
        let nodes = node.kubectl_with(SUPER_ADMIN, &["get", "nodes", "-o", "name"])?;
        Ok(nodes.ok() && nodes.stdout.contains("node/node1"))
    })
    .with_context(|| cluster.diagnostics())?;
    // Now the kubelet on 10250 is a configured one: preflight says so as an error.
    let again = node.kubestrap(&[
        "init",
        "phase",
        "preflight",
        "--config=/root/good.yaml",
        "-o",
        "json",
    ])?;
    let report: Value = serde_json::from_str(&again.stdout).context(again.stdout.clone())?;
    let port = preflight_check(&report, "Port-10250")?;
    ensure!(
        port["severity"] == "error"
            && port["message"]
                .as_str()
                .is_some_and(|m| m.contains("configured kubelet") && m.contains("it runs with --")),
        "{port}"
    );
    cluster.teardown()?;
    Ok(())
}

/// Time from `kubestrap init` to "control plane healthy", split into kubestrap's own time (every
/// phase up to the kubelet's start, and the lag of its health polls) and the components' start-up
/// (from the kubelet's start until the last component answers healthy). `docker exec`'s own cost is
/// measured and subtracted. RUNS (default 3) runs, each on a fresh node.
#[test]
#[ignore = "benchmark: scripts/bench-init.sh"]
fn bench_init_own_time() -> Result<()> {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut own = Vec::new();
    for run in 0..runs {
        let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
        let node = cluster.node("node1")?;
        let settings = ClusterSettings::for_node(node);
        node.write_file(
            "/root/good.yaml",
            config(&settings, "60s", json!([]))?.as_bytes(),
            0o600,
        )?;
        wait_until("the standalone kubelet", Duration::from_secs(20), || {
            node.exists("/var/lib/kubelet/pki/kubelet.crt")
        })?;
        let exec_started = Instant::now();
        node.exec(&["true"])?;
        let exec_cost = exec_started.elapsed();
        let started = SystemTime::now();
        let (lines, ok) = timed_lines(node, &["init", "--config=/root/good.yaml"])?;
        let at = |prefix: &str| line_at(&lines, prefix).map(|t| since(t, started));
        ensure!(ok, "init failed: {lines:?}");
        let kubelet_started = at("[kubelet-start] Starting the kubelet")?;
        let kubelet_healthy = at("[kubelet-check] The kubelet is healthy")?;
        let components_wait = at("[control-plane-check] Waiting for healthy")?;
        let healthy = lines
            .iter()
            .filter(|(_, l)| {
                l.starts_with("[control-plane-check]") && l.contains("is healthy after")
            })
            .map(|(t, _)| since(*t, started))
            .max()
            .context("no component healthy")?;
        let before_kubelet = kubelet_started.saturating_sub(exec_cost);
        let between_waits = components_wait.saturating_sub(kubelet_healthy);
        let components = healthy.saturating_sub(kubelet_started) - between_waits;
        let mine = before_kubelet + between_waits;
        eprintln!(
            "run {run}: init→healthy {:.3}s, kubestrap's own {:.3}s (phases before the kubelet {:.3}s, between waits {:.3}s), \
             components' start-up {:.3}s, docker exec {:.3}s",
            healthy.as_secs_f64(),
            mine.as_secs_f64(),
            before_kubelet.as_secs_f64(),
            between_waits.as_secs_f64(),
            components.as_secs_f64(),
            exec_cost.as_secs_f64()
        );
        own.push(mine);
        cluster.teardown()?;
    }
    own.sort();
    let median = own[own.len() / 2];
    println!(
        "kubestrap's own time to a healthy control plane: median {:.3}s of {runs} runs (target <= 2s)",
        median.as_secs_f64()
    );
    Ok(())
}
