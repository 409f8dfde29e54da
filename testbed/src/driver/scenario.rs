//! Scenario steps tests share: write a control plane (with kubestrap's phases or the kubeadm
//! fixture), start kubelets the way systemd would, wait for the API, admit and join workers.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::cluster::{Cluster, Node, wait_until};
use super::fixture::{self, ClusterSettings};

/// The default node token group kubeadm binds its bootstrap RBAC to.
pub const TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
pub const SUPER_ADMIN: &str = "/etc/kubernetes/super-admin.conf";
pub const ADMIN: &str = "/etc/kubernetes/admin.conf";
/// kubestrap init's phases that use the API server (after wait-control-plane), and the discovery
/// endpoint that serves what they publish.
pub const INIT_API_PHASES: &str = "upload-config,upload-certs,mark-control-plane,bootstrap-token,kubelet-finalize,addon,discovery,show-join-command";
/// kubestrap init's phases up to a running control plane.
pub const INIT_FILE_PHASES: &str =
    "preflight,certs,kubeconfig,etcd,control-plane,kubelet-start,wait-control-plane";
/// `kubestrap`'s configuration for a single control-plane node of the testbed: the node's
/// address and name, and an etcd tag the installed etcd (3.4) can run.
pub fn kubestrap_config(s: &ClusterSettings) -> Result<String> {
    let init = json!({
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": s.advertise_address, "bindPort": 6443},
        "nodeRegistration": {"name": s.node_name},
    });
    let mut cluster = json!({
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "kubernetesVersion": s.kubernetes_version,
        "etcd": {"local": {"imageTag": s.etcd_tag}},
        "networking": {"serviceSubnet": s.service_cidr, "dnsDomain": s.dns_domain},
    });
    if let Some(pods) = &s.pod_subnet {
        cluster["networking"]["podSubnet"] = json!(pods);
    }
    kubestrap::yaml::to_documents(&[init, cluster])
}

/// Runs `kubestrap init phase <phase> <sub> --config …` for each entry on the node.
pub fn kubestrap_init_phases(
    node: &Node,
    settings: &ClusterSettings,
    phases: &[&str],
) -> Result<()> {
    node.write_file(
        "/root/kubestrap.yaml",
        kubestrap_config(settings)?.as_bytes(),
        0o600,
    )?;
    for phase in phases {
        let mut args = vec!["init", "phase"];
        args.extend(phase.split_whitespace());
        args.push("--config=/root/kubestrap.yaml");
        node.kubestrap(&args)?
            .check(&format!("kubestrap init phase {phase} on {}", node.name))?;
    }
    Ok(())
}

/// Writes the kubelet's config and flags as kubeadm's kubelet-start would, installs the kubeadm
/// drop-in and (re)starts the kubelet unit through the node's service manager.
pub fn start_kubelet(node: &Node, settings: &ClusterSettings) -> Result<()> {
    fixture::write_all(node, &fixture::kubelet_files(settings)?)?;
    node.install_kubeadm_dropin()?;
    node.systemctl(&["daemon-reload"])?
        .check("systemctl daemon-reload")?;
    node.systemctl(&["restart", "kubelet"])?
        .check("systemctl restart kubelet")?;
    Ok(())
}

/// Waits for the API server to answer /readyz with a kubeconfig of the node; returns how long.
pub fn wait_for_api(node: &Node, kubeconfig: &str, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    wait_until(&format!("the API server on {}", node.name), timeout, || {
        Ok(node
            .kubectl_with(kubeconfig, &["get", "--raw", "/readyz"])?
            .ok())
    })
    .with_context(|| {
        format!(
            "kubelet log of {}:\n{}",
            node.name,
            node.service_log("kubelet")
        )
    })?;
    Ok(started.elapsed())
}

/// `kubectl apply` of objects, as a v1 List, with a kubeconfig of the node.
pub fn apply(node: &Node, kubeconfig: &str, objects: &[Value]) -> Result<String> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let path = format!("/tmp/apply-{}.json", crate::apiserver::store::name_suffix());
    node.write_file(&path, list.to_string().as_bytes(), 0o600)?;
    let out = node.kubectl_with(kubeconfig, &["apply", "-f", &path])?;
    let _ = node.remove_file(&path);
    Ok(out.check("kubectl apply")?.stdout)
}

/// The bootstrap token Secret and the RBAC kubeadm's bootstrap-token phase would create, so that
/// kubelets holding `token` can TLS-bootstrap.
pub fn admit_token(node: &Node, token: &str) -> Result<()> {
    let (id, secret) = token.split_once('.').unwrap_or((token, ""));
    let mut objects = vec![fixture::bootstrap_token_secret(
        id,
        secret,
        TOKEN_GROUP,
        &["authentication", "signing"],
    )];
    objects.extend(fixture::bootstrap_rbac(TOKEN_GROUP));
    apply(node, SUPER_ADMIN, &objects).map(|_| ())
}

/// Makes admin.conf's group cluster-admin, as kubeadm does with super-admin.conf.
pub fn bind_cluster_admins(node: &Node) -> Result<()> {
    apply(node, SUPER_ADMIN, &[fixture::cluster_admins_binding()]).map(|_| ())
}

/// Gives a worker the CA, a bootstrap kubeconfig for `token` and the kubelet files, then starts
/// its kubelet: what `kubeadm join`'s kubelet-start does before the TLS bootstrap.
pub fn join_worker(
    node: &Node,
    settings: &ClusterSettings,
    ca_pem: &str,
    token: &str,
) -> Result<()> {
    fixture::write_all(node, &fixture::worker_files(settings, ca_pem, token)?)?;
    node.install_kubeadm_dropin()?;
    node.systemctl(&["restart", "kubelet"])?
        .check("systemctl restart kubelet")?;
    Ok(())
}

/// The worker join command `kubestrap init` printed (its continuation lines joined), if any.
pub fn printed_join_command(init_stdout: &str) -> Option<String> {
    printed_join_commands(init_stdout)
        .into_iter()
        .find(|c| !c.contains("--control-plane"))
}

/// The control-plane join command `kubestrap init --upload-certs` printed (with
/// `--control-plane --certificate-key`), if any.
pub fn printed_control_plane_join_command(init_stdout: &str) -> Option<String> {
    printed_join_commands(init_stdout)
        .into_iter()
        .find(|c| c.contains("--control-plane"))
}

/// Every `kubestrap join` command in init's output, continuation lines joined.
fn printed_join_commands(init_stdout: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current: Option<String> = None;
    for line in init_stdout.lines() {
        let text = line.trim();
        match current.as_mut() {
            Some(command) => command.push_str(text.trim_end_matches('\\')),
            None if text.starts_with("kubestrap join ") => {
                current = Some(text.trim_end_matches('\\').to_string());
            }
            None => continue,
        }
        if !text.ends_with('\\') {
            commands.extend(current.take());
        } else if let Some(command) = current.as_mut() {
            command.push(' ');
        }
    }
    commands
        .into_iter()
        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// A flag's value in a printed command (`--token` → the token).
pub fn command_flag(command: &str, flag: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let at = words.iter().position(|w| *w == flag)?;
    words.get(at + 1).map(|w| w.to_string())
}

/// Runs a printed `kubestrap join …` command on `node` as it is (words split on whitespace).
pub fn run_join_command(node: &Node, command: &str) -> Result<crate::driver::docker::Finished> {
    let words: Vec<&str> = command.split_whitespace().collect();
    anyhow::ensure!(
        words.first() == Some(&"kubestrap") && words.get(1) == Some(&"join"),
        "not a kubestrap join command: {command}"
    );
    node.kubestrap(&words[1..])
}

/// The Node names the API server lists.
pub fn node_names(node: &Node, kubeconfig: &str) -> Result<Vec<String>> {
    let out = node
        .kubectl_with(kubeconfig, &["get", "nodes", "-o", "name"])?
        .check("kubectl get nodes")?;
    Ok(out
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("node/").to_string())
        .collect())
}

/// Where node1's control-plane files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `kubestrap init phase certs/kubeconfig/etcd/control-plane`.
    Kubestrap,
    /// kubestrap's certs and kubeconfigs, the fixture's static-pod manifests.
    KubestrapPki,
    /// The testbed's own kubeadm-layout fixture.
    Fixture,
}

/// Writes node1's control-plane files from `source` and starts its kubelet.
pub fn write_control_plane(node: &Node, settings: &ClusterSettings, source: Source) -> Result<()> {
    match source {
        Source::Kubestrap => kubestrap_init_phases(
            node,
            settings,
            &[
                "certs all",
                "kubeconfig all",
                "etcd local",
                "control-plane all",
            ],
        )?,
        Source::KubestrapPki => {
            kubestrap_init_phases(node, settings, &["certs all", "kubeconfig all"])?;
            fixture::write_all(node, &fixture::manifests(settings)?)?;
        }
        Source::Fixture => fixture::ControlPlane::generate(settings.clone())?.write_to(node)?,
    }
    start_kubelet(node, settings)
}

/// Timings of the three-node scenario.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub nodes_started: Duration,
    pub files_written: Duration,
    pub api_ready: Duration,
    pub all_nodes_registered: Duration,
}

/// Node 1's control plane from `source`; with [`Source::Kubestrap`] nodes 2 and 3 run the real
/// `kubestrap join` (after `init phase upload-config` and `bootstrap-token` on node 1, with the
/// command `kubestrap token create --print-join-command` prints), otherwise they are
/// TLS-bootstrapped from the fixture's worker files with a token the test admits itself; returns when
/// `kubectl get nodes` with admin.conf lists three nodes.
pub fn three_node_cluster(
    cluster: &Cluster,
    source: Source,
    timings: &mut Timings,
    started: Instant,
) -> Result<()> {
    let settings = ClusterSettings::for_node(cluster.node("node1")?);
    three_node_cluster_with(cluster, source, &settings, timings, started)
}

/// [`three_node_cluster`] with node 1's settings given (e.g. a pod subnet).
pub fn three_node_cluster_with(
    cluster: &Cluster,
    source: Source,
    settings: &ClusterSettings,
    timings: &mut Timings,
    started: Instant,
) -> Result<()> {
    let cp = cluster.node("node1")?;
    write_control_plane(cp, settings, source)?;
    timings.files_written = started.elapsed();
    wait_for_api(cp, SUPER_ADMIN, Duration::from_secs(90))?;
    timings.api_ready = started.elapsed();
    bind_cluster_admins(cp)?;
    if source == Source::Kubestrap {
        // What a joining node reads (kubeadm-config, kubelet-config, cluster-info and its
        // signature) from kubestrap's own phases; the workers run the real `kubestrap join`.
        kubestrap_init_phases(cp, settings, &["upload-config all", "bootstrap-token"])?;
        let printed = cp
            .kubestrap(&["token", "create", "--print-join-command"])?
            .check("kubestrap token create --print-join-command")?;
        let command = printed_join_command(&printed.stdout)
            .with_context(|| format!("a join command in: {}", printed.stdout))?;
        for name in ["node2", "node3"] {
            run_join_command(cluster.node(name)?, &command)?
                .check(&format!("kubestrap join on {name}"))?;
        }
    } else {
        let token = "abcdef.0123456789abcdef";
        admit_token(cp, token)?;
        let ca = cp.read_string("/etc/kubernetes/pki/ca.crt")?;
        for name in ["node2", "node3"] {
            join_worker(cluster.node(name)?, settings, &ca, token)?;
        }
    }
    wait_until("three registered nodes", Duration::from_secs(90), || {
        Ok(node_names(cp, ADMIN)?.len() == 3)
    })
    .with_context(|| cluster.diagnostics())?;
    timings.all_nodes_registered = started.elapsed();
    let names = node_names(cp, ADMIN)?;
    if names != ["node1", "node2", "node3"] {
        bail!("unexpected nodes {names:?}");
    }
    Ok(())
}
