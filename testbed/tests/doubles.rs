//! The testbed's own tests: the doubles on Docker nodes behave as the real components do towards
//! kubectl, RBAC, TLS bootstrap and static-pod changes. Control planes come from the kubeadm
//! fixture so that these tests do not depend on kubestrap's phases.

use std::time::Duration;

use anyhow::{Result, ensure};
use kubestrap_testbed::driver::fixture::{self, ClusterSettings, ControlPlane};
use kubestrap_testbed::driver::scenario::{self, ADMIN, SUPER_ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::{Value, json};

/// One control-plane node from the fixture, up and answering.
fn control_plane(cluster: &Cluster) -> Result<(&Node, ControlPlane)> {
    let node = cluster.node("node1")?;
    let cp = ControlPlane::generate(ClusterSettings::for_node(node))?;
    cp.write_to(node)?;
    scenario::start_kubelet(node, &cp.settings)?;
    scenario::wait_for_api(node, SUPER_ADMIN, Duration::from_secs(60))?;
    Ok((node, cp))
}

fn json_of(node: &Node, kubeconfig: &str, args: &[&str]) -> Result<Value> {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    let out = node.kubectl_with(kubeconfig, &full)?.check("kubectl get")?;
    Ok(serde_json::from_str(&out.stdout)?)
}

#[test]
fn kubectl_and_rbac_against_the_api_server_double() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
    let (node, cp) = control_plane(&cluster)?;

    let before = node.kubectl(&["get", "nodes"])?;
    ensure!(
        before.stderr.contains("User \"kubernetes-admin\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "admin.conf must be forbidden until kubeadm:cluster-admins is bound: {before:?}"
    );
    scenario::bind_cluster_admins(node)?;

    let objects = [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"}, "data": {"mode": "one"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}}),
    ];
    let created = scenario::apply(node, ADMIN, &objects)?;
    ensure!(
        created.contains("configmap/settings created")
            && created.contains("deployment.apps/web created"),
        "{created}"
    );
    let mut changed = objects.clone();
    changed[0]["data"]["mode"] = json!("two");
    changed[1]["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let configured = scenario::apply(node, ADMIN, &changed)?;
    ensure!(
        configured.contains("configmap/settings configured"),
        "{configured}"
    );
    let web = json_of(node, ADMIN, &["get", "deployment", "web"])?;
    ensure!(
        web["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2",
        "{web}"
    );
    ensure!(
        web["metadata"]["generation"] == 2,
        "a spec change bumps the generation: {web}"
    );
    let settings = json_of(node, ADMIN, &["get", "configmap", "settings"])?;
    ensure!(settings["data"]["mode"] == "two", "{settings}");
    let create = node.kubectl(&["create", "configmap", "typed", "--from-literal=a=b"])?;
    ensure!(
        create.ok(),
        "kubectl's protobuf bodies are understood: {create:?}"
    );
    let who = node.kubectl(&["auth", "whoami"])?.check("whoami")?;
    ensure!(
        who.stdout.contains("kubernetes-admin") && who.stdout.contains("kubeadm:cluster-admins"),
        "{}",
        who.stdout
    );

    let (cert, key) = cp.ca.leaf(
        "intruder",
        &["developers"],
        &[],
        &[rcgen::ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    let intruder = fixture::kubeconfig(
        &cp.settings.server(),
        &cp.ca.cert_pem,
        "intruder",
        json!({"client-certificate-data": b64(&cert), "client-key-data": b64(&key)}),
    )?;
    node.write_file("/root/intruder.conf", intruder.as_bytes(), 0o600)?;
    let denied = node.kubectl_with(
        "/root/intruder.conf",
        &["get", "secrets", "-n", "kube-system"],
    )?;
    ensure!(
        denied.stderr.contains("secrets is forbidden: User \"intruder\" cannot list resource \"secrets\" in API group \"\" in the namespace \"kube-system\""),
        "a user without a binding is denied: {denied:?}"
    );
    let can = node.kubectl_with(
        "/root/intruder.conf",
        &["auth", "can-i", "create", "configmaps"],
    )?;
    ensure!(can.stdout.trim() == "no" && can.code == 1, "{can:?}");
    // A binding counts from the moment it is made and stops when it is deleted (the double keeps
    // the roles and bindings it read until their etcd fingerprint moves).
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "intruder-view", "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "intruder"}]});
    scenario::apply(node, ADMIN, &[binding])?;
    let viewer = node.kubectl_with(
        "/root/intruder.conf",
        &["get", "configmaps", "-n", "kube-system"],
    )?;
    ensure!(viewer.ok(), "the new binding counts at once: {viewer:?}");
    node.kubectl(&[
        "delete",
        "rolebinding",
        "intruder-view",
        "-n",
        "kube-system",
    ])?
    .check("delete the binding")?;
    let unbound = node.kubectl_with(
        "/root/intruder.conf",
        &["get", "configmaps", "-n", "kube-system"],
    )?;
    ensure!(
        unbound
            .stderr
            .contains("configmaps is forbidden: User \"intruder\""),
        "the deleted binding stops counting at once: {unbound:?}"
    );

    scenario::admit_token(node, "abcdef.0123456789abcdef")?;
    let other_group = fixture::bootstrap_token_secret(
        "zzzzzz",
        "0123456789zzzzzz",
        "system:bootstrappers:other",
        &["authentication"],
    );
    scenario::apply(node, SUPER_ADMIN, &[other_group])?;
    for (token, can_create_csr) in [
        ("abcdef.0123456789abcdef", "yes"),
        ("zzzzzz.0123456789zzzzzz", "no"),
    ] {
        let conf = fixture::bootstrap_kubeconfig(&cp.settings.server(), &cp.ca.cert_pem, token)?;
        node.write_file("/root/token.conf", conf.as_bytes(), 0o600)?;
        let csr = node.kubectl_with(
            "/root/token.conf",
            &[
                "auth",
                "can-i",
                "create",
                "certificatesigningrequests.certificates.k8s.io",
            ],
        )?;
        ensure!(
            csr.stdout.trim() == can_create_csr,
            "token {token}: {csr:?}"
        );
        let secrets =
            node.kubectl_with("/root/token.conf", &["get", "secrets", "-n", "kube-system"])?;
        let id = token.split('.').next().unwrap_or_default();
        ensure!(
            secrets.stderr.contains(&format!(
                "User \"system:bootstrap:{id}\" cannot list resource \"secrets\""
            )),
            "a bootstrap token is limited to its groups: {secrets:?}"
        );
    }
    let conf = fixture::bootstrap_kubeconfig(
        &cp.settings.server(),
        &cp.ca.cert_pem,
        "abcdef.ffffffffffffffff",
    )?;
    node.write_file("/root/token.conf", conf.as_bytes(), 0o600)?;
    let wrong = node.kubectl_with("/root/token.conf", &["get", "--raw", "/version"])?;
    ensure!(
        wrong.stderr.contains("Unauthorized"),
        "a wrong token secret is rejected: {wrong:?}"
    );

    cluster.teardown()?;
    Ok(())
}

#[test]
fn kubelet_tls_bootstrap_waits_for_the_autoapprove_binding() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(2))?;
    let (cp_node, cp) = control_plane(&cluster)?;
    scenario::bind_cluster_admins(cp_node)?;
    let token = "abcdef.0123456789abcdef";
    let (id, secret) = token.split_once('.').unwrap_or_default();
    let rbac = fixture::bootstrap_rbac(scenario::TOKEN_GROUP);
    let (autoapprove, rest): (Vec<Value>, Vec<Value>) = rbac
        .into_iter()
        .partition(|o| o["metadata"]["name"] == "kubeadm:node-autoapprove-bootstrap");
    let mut objects = vec![fixture::bootstrap_token_secret(
        id,
        secret,
        scenario::TOKEN_GROUP,
        &["authentication", "signing"],
    )];
    objects.extend(rest);
    scenario::apply(cp_node, SUPER_ADMIN, &objects)?;

    let worker = cluster.node("node2")?;
    scenario::join_worker(worker, &cp.settings, &cp.ca.cert_pem, token)?;
    wait_until("the kubelet's CSR", Duration::from_secs(30), || {
        Ok(json_of(cp_node, ADMIN, &["get", "csr"])?["items"]
            .as_array()
            .is_some_and(|i| !i.is_empty()))
    })?;
    std::thread::sleep(Duration::from_secs(3));
    let pending = json_of(cp_node, ADMIN, &["get", "csr"])?;
    ensure!(
        pending["items"][0]["status"]["conditions"].is_null(),
        "without the nodeclient binding the CSR stays pending: {pending}"
    );
    ensure!(
        !worker.exists("/etc/kubernetes/kubelet.conf")?,
        "no kubelet.conf before the certificate is issued"
    );

    scenario::apply(cp_node, SUPER_ADMIN, &autoapprove)?;
    wait_until("kubelet.conf on node2", Duration::from_secs(30), || {
        worker.exists("/etc/kubernetes/kubelet.conf")
    })?;
    let kubelet_conf: Value =
        serde_saphyr::from_str(&worker.read_string("/etc/kubernetes/kubelet.conf")?)?;
    ensure!(
        kubelet_conf["users"][0]["user"]["client-certificate"]
            == "/var/lib/kubelet/pki/kubelet-client-current.pem",
        "{kubelet_conf}"
    );
    ensure!(
        kubelet_conf["clusters"][0]["cluster"]["server"] == cp.settings.server().as_str(),
        "{kubelet_conf}"
    );
    let pem = worker.read_file("/var/lib/kubelet/pki/kubelet-client-current.pem")?;
    let chain = kubestrap_testbed::common::tls::certs_from_pem(&pem)?;
    let ca = kubestrap_testbed::common::tls::certs_from_pem(cp.ca.cert_pem.as_bytes())?;
    ensure!(
        kubestrap_testbed::common::tls::signed_by_any(&chain[0], &ca),
        "the node certificate is signed by the cluster CA"
    );
    let (cn, orgs) = kubestrap_testbed::common::tls::subject_of(&chain[0])?;
    ensure!(
        cn == "system:node:node2" && orgs == ["system:nodes"],
        "{cn} {orgs:?}"
    );
    let csr = json_of(cp_node, ADMIN, &["get", "csr"])?;
    let approved = &csr["items"][0]["status"]["conditions"][0];
    ensure!(
        approved["type"] == "Approved" && approved["reason"] == "AutoApproved",
        "{csr}"
    );
    ensure!(
        !worker.exists("/var/lib/kubelet/pki/kubelet-client.key.tmp")?,
        "the temporary key is gone"
    );
    wait_until("node2 registered", Duration::from_secs(30), || {
        Ok(scenario::node_names(cp_node, ADMIN)?.contains(&"node2".to_string()))
    })?;
    let node2 = json_of(cp_node, ADMIN, &["get", "node", "node2"])?;
    ensure!(
        node2["status"]["nodeInfo"]["kubeletVersion"]
            == kubestrap_testbed::DEFAULT_KUBERNETES_VERSION,
        "{node2}"
    );
    let lease = json_of(
        cp_node,
        ADMIN,
        &["get", "lease", "-n", "kube-node-lease", "node2"],
    )?;
    ensure!(lease["spec"]["holderIdentity"] == "node2", "{lease}");
    cluster.teardown()?;
    Ok(())
}

fn scheduler_pid(node: &Node) -> Result<Option<String>> {
    let out = node.exec(&["pgrep", "-x", "kube-scheduler"])?;
    Ok(out.stdout.split_whitespace().next().map(str::to_string))
}

#[test]
fn static_pod_manifest_changes_restart_and_stop_components() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
    let (node, _) = control_plane(&cluster)?;
    scenario::bind_cluster_admins(node)?;
    let manifest = "/etc/kubernetes/manifests/kube-scheduler.yaml";
    wait_until(
        "the scheduler's mirror pod",
        Duration::from_secs(30),
        || {
            Ok(node
                .kubectl(&["get", "pod", "-n", "kube-system", "kube-scheduler-node1"])?
                .ok())
        },
    )?;
    let first_pid =
        scheduler_pid(node)?.ok_or_else(|| anyhow::anyhow!("the scheduler is not running"))?;
    let hash = |n: &Node| -> Result<Value> {
        Ok(json_of(
            n,
            ADMIN,
            &["get", "pod", "-n", "kube-system", "kube-scheduler-node1"],
        )?["metadata"]["annotations"]["kubernetes.io/config.mirror"]
            .clone())
    };
    let first_hash = hash(node)?;

    let original = node.read_string(manifest)?;
    let changed = original.replace(
        "- --leader-elect=true",
        "- --leader-elect=true\n    - --v=2",
    );
    ensure!(changed != original, "the manifest has the expected layout");
    node.write_file(manifest, changed.as_bytes(), 0o600)?;
    wait_until("a restarted scheduler", Duration::from_secs(30), || {
        Ok(scheduler_pid(node)?.is_some_and(|p| p != first_pid))
    })?;
    wait_until("a new mirror pod", Duration::from_secs(30), || {
        Ok(hash(node).is_ok_and(|h| h != first_hash && !h.is_null()))
    })?;

    let broken = original.replace(
        "- --leader-elect=true",
        "- --leader-elect=true\n    - --bogus-flag=1",
    );
    node.write_file(manifest, broken.as_bytes(), 0o600)?;
    wait_until(
        "the broken scheduler's error in its log",
        Duration::from_secs(30),
        || {
            Ok(node
                .pod_log("kube-scheduler", "kube-scheduler")
                .contains("unknown flag: --bogus-flag"))
        },
    )?;
    wait_until("a restart count", Duration::from_secs(30), || {
        let pod = json_of(
            node,
            ADMIN,
            &["get", "pod", "-n", "kube-system", "kube-scheduler-node1"],
        )?;
        Ok(pod["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1)
    })?;

    node.remove_file(manifest)?;
    wait_until("the scheduler to stop", Duration::from_secs(30), || {
        Ok(scheduler_pid(node)?.is_none())
    })?;
    wait_until("its mirror pod to go", Duration::from_secs(30), || {
        Ok(!node
            .kubectl(&["get", "pod", "-n", "kube-system", "kube-scheduler-node1"])?
            .ok())
    })?;
    cluster.teardown()?;
    Ok(())
}

#[test]
fn a_restarted_node_keeps_its_etcd_state_and_control_plane() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
    let (node, _) = control_plane(&cluster)?;
    scenario::bind_cluster_admins(node)?;
    node.kubectl(&["create", "configmap", "survivor", "--from-literal=k=v"])?
        .check("create configmap")?;
    node.stop()?;
    ensure!(!node.exec(&["true"])?.ok(), "a stopped node runs nothing");
    node.start()?;
    scenario::wait_for_api(node, ADMIN, Duration::from_secs(60))?;
    let survivor = json_of(node, ADMIN, &["get", "configmap", "survivor"])?;
    ensure!(survivor["data"]["k"] == "v", "{survivor}");
    let active = node.systemctl(&["is-active", "kubelet"])?;
    ensure!(
        active.stdout.trim() == "active",
        "the enabled kubelet starts at boot: {active:?}"
    );
    cluster.teardown()?;
    Ok(())
}

#[test]
fn a_partitioned_worker_goes_unknown_and_recovers() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(2))?;
    let cp_node = cluster.node("node1")?;
    let mut cp = ControlPlane::generate(ClusterSettings::for_node(cp_node))?;
    let kcm = "/etc/kubernetes/manifests/kube-controller-manager.yaml";
    if let Some((text, _)) = cp.files.get_mut(kcm) {
        let fast = String::from_utf8_lossy(text).replace(
            "- --leader-elect=true",
            "- --leader-elect=true\n    - --node-monitor-grace-period=6s",
        );
        *text = fast.into_bytes();
    }
    cp.write_to(cp_node)?;
    scenario::start_kubelet(cp_node, &cp.settings)?;
    scenario::wait_for_api(cp_node, SUPER_ADMIN, Duration::from_secs(60))?;
    scenario::bind_cluster_admins(cp_node)?;
    let token = "abcdef.0123456789abcdef";
    scenario::admit_token(cp_node, token)?;
    let worker = cluster.node("node2")?;
    let mut files = fixture::worker_files(&cp.settings, &cp.ca.cert_pem, token)?;
    if let Some((text, _)) = files.get_mut("/var/lib/kubelet/config.yaml") {
        text.extend_from_slice(b"nodeLeaseDurationSeconds: 8\n");
    }
    fixture::write_all(worker, &files)?;
    worker.install_kubeadm_dropin()?;
    worker
        .systemctl(&["restart", "kubelet"])?
        .check("restart kubelet")?;
    let ready_status = |n: &Node| -> Result<String> {
        let node = json_of(n, ADMIN, &["get", "node", "node2"])?;
        let ready = node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap_or_default();
        Ok(ready["status"].as_str().unwrap_or_default().to_string())
    };
    wait_until("node2 to post its status", Duration::from_secs(30), || {
        Ok(ready_status(cp_node).is_ok_and(|s| s == "False"))
    })?;
    worker.partition()?;
    wait_until("node2 to go Unknown", Duration::from_secs(30), || {
        Ok(ready_status(cp_node)? == "Unknown")
    })?;
    let node2 = json_of(cp_node, ADMIN, &["get", "node", "node2"])?;
    ensure!(
        node2["spec"]["taints"].as_array().is_some_and(|t| t
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable")),
        "an unreachable node is tainted: {node2}"
    );
    worker.heal()?;
    wait_until("node2 to report again", Duration::from_secs(30), || {
        Ok(ready_status(cp_node)? == "False")
    })?;
    cluster.teardown()?;
    Ok(())
}
