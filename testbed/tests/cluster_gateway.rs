//! kubestrap's cluster gateway (`kubestrap::cluster`) called from the test process against a testbed
//! node's API-server double (over the test's own Docker network): the journaled changes of a run that
//! died undone by the next run's recovery, a dry run that plans and sends nothing, watch-based waits that time out naming what they awaited, and
//! retries that outlast an API server that starts late. One cluster serves every step.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kubestrap::cluster::{
    Client, ClusterError, Connection, Deletion, Gateway, Identity, Patch, Retry,
};
use kubestrap::host::journal::{self, ApiChange, Entry, Outcome};
use kubestrap::host::plan::Kind;
use kubestrap::host::{Facts, Host, NodePath, Root};
use kubestrap::output::Ui;
use kubestrap::workflow::cluster_undo::ClusterUndo;
use kubestrap::workflow::session::{Recovery, Session};
use kubestrap_testbed::driver::fixture::{self, ClusterSettings, ControlPlane};
use kubestrap_testbed::driver::scenario::{self, ADMIN, SUPER_ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node as TestbedNode, wait_until};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn typed<T: DeserializeOwned>(value: Value) -> Result<T> {
    Ok(serde_json::from_value(value)?)
}

/// A host whose `--root` is a temporary directory holding the node's admin.conf.
fn host_with_admin_conf(node: &TestbedNode, dir: &std::path::Path, dry_run: bool) -> Result<Host> {
    let host = Host::new(Root::new(dir), Facts::default(), dry_run, Ui::default());
    let admin = NodePath::new(ADMIN);
    let disk = host.disk(&admin);
    std::fs::create_dir_all(disk.parent().context("admin.conf has a parent")?)?;
    std::fs::write(&disk, node.read_file(ADMIN)?)?;
    Ok(host)
}

fn admin_connection(host: &Host) -> Result<Connection> {
    kubestrap::kubeconfig::connection::connection(host, &NodePath::new(ADMIN))?
        .context("admin.conf was written")
}

/// A second, unjournaled view of the cluster to judge by.
fn observer(node: &TestbedNode) -> Result<(tempfile::TempDir, Host)> {
    let dir = tempfile::tempdir()?;
    let host = host_with_admin_conf(node, dir.path(), false)?;
    Ok((dir, host))
}

const WIDGETS: &str = "\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gw-widget
  namespace: default
spec:
  size: 3
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

fn objects() -> Result<(ConfigMap, Secret, ClusterRole, RoleBinding, DaemonSet)> {
    Ok((
        typed(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "gw-config", "namespace": "default"}, "data": {"mode": "new"}}))?,
        typed(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "gw-secret", "namespace": "default"}, "type": "Opaque",
            "stringData": {"password": "s3cret"}}))?,
        typed(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "gw-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        )?,
        typed(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "gw-reader", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "gw-reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "gw-readers"}]}),
        )?,
        typed(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "gw-agent", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "gw-agent"}},
                     "template": {"metadata": {"labels": {"app": "gw-agent"}},
                                  "spec": {"containers": [{"name": "agent", "image": "registry.k8s.io/pause:3.10"}]}}}}))?,
    ))
}

/// One scenario on the shared cluster.
type Step = fn(&TestbedNode) -> Result<()>;

#[test]
fn the_cluster_gateway_against_the_api_server_double() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
    let node = cluster.node("node1")?;
    let cp = ControlPlane::generate(ClusterSettings::for_node(node))?;
    cp.write_to(node)?;
    scenario::start_kubelet(node, &cp.settings)?;
    scenario::wait_for_api(node, SUPER_ADMIN, Duration::from_secs(60))?;
    scenario::bind_cluster_admins(node)?;
    wait_until("node1 to register", Duration::from_secs(60), || {
        Ok(scenario::node_names(node, ADMIN)? == ["node1"])
    })?;

    let steps: [(&str, Step); 6] = [
        ("credentials", each_kubeconfig_is_its_own_user),
        (
            "watch from a resourceVersion",
            watches_start_from_the_revision_they_name,
        ),
        ("dry run", dry_run_plans_and_sends_nothing),
        (
            "recovery",
            a_dead_runs_changes_are_undone_by_the_next_runs_recovery,
        ),
        (
            "waits",
            waits_end_when_the_condition_holds_or_name_what_they_awaited,
        ),
        ("retries", retries_outlast_an_api_server_that_starts_late),
    ];
    for (name, step) in steps {
        let started = Instant::now();
        step(node).with_context(|| format!("step {name:?}\n{}", cluster.diagnostics()))?;
        eprintln!("step {name}: {:.1}s", started.elapsed().as_secs_f32());
    }
    cluster.teardown()?;
    Ok(())
}

/// kubelet.conf (a node's client certificate) and a bootstrap kubeconfig (a token) reach the server as
/// their own users; what RBAC forbids fails at once, without retries.
fn each_kubeconfig_is_its_own_user(node: &TestbedNode) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = host_with_admin_conf(node, dir.path(), false)?;
    let kubelet_conf = NodePath::new("/etc/kubernetes/kubelet.conf");
    std::fs::write(
        host.disk(&kubelet_conf),
        node.read_file("/etc/kubernetes/kubelet.conf")?,
    )?;
    let kubelet = kubestrap::kubeconfig::connection::connection(&host, &kubelet_conf)?
        .context("kubelet.conf was written")?;
    let as_node = Gateway::new(&host, Client::connect(&kubelet)?);
    ensure!(
        as_node.get::<Node>(None, "node1")?.is_some(),
        "a node reads its own Node"
    );
    let started = Instant::now();
    let denied = as_node
        .list::<Secret>(Some("kube-system"), None)
        .unwrap_err();
    ensure!(
        denied.code() == Some(403) && started.elapsed() < Duration::from_secs(2),
        "a forbidden call is final at once: {denied}"
    );

    let token = "gwtest.0123456789abcdef";
    scenario::admit_token(node, token)?;
    let text = fixture::bootstrap_kubeconfig(
        &cp_server(node),
        &node.read_string("/etc/kubernetes/pki/ca.crt")?,
        token,
    )?;
    let config = kubestrap::kubeconfig::KubeConfig::parse(&text)?;
    let bootstrap = kubestrap::kubeconfig::connection::from_config(
        &host,
        &NodePath::new("/etc/kubernetes/bootstrap-kubelet.conf"),
        &config,
    )?;
    let as_token = Gateway::new(&host, Client::connect(&bootstrap)?);
    as_token.list::<CertificateSigningRequest>(None, None)?;
    let err = as_token.get::<Node>(None, "node1").unwrap_err().to_string();
    ensure!(
        err.contains("system:bootstrap:gwtest") && err.contains("(HTTP 403, Forbidden)"),
        "{err}"
    );
    Ok(())
}

fn cp_server(node: &TestbedNode) -> String {
    ClusterSettings::for_node(node).server()
}

/// The double's watch from a resourceVersion streams what changed since that revision (kube's watcher
/// lists, then watches from the list's revision: a change in between must not be lost), and a compacted
/// revision is the real server's 410 Expired.
fn watches_start_from_the_revision_they_name(node: &TestbedNode) -> Result<()> {
    let (_keep, host) = observer(node)?;
    let gateway = Gateway::new(&host, Client::connect(&admin_connection(&host)?)?);
    let watched: ConfigMap = typed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "gw-watched", "namespace": "default"}, "data": {"n": "1"}}))?;
    let listed = gateway
        .create(&watched)?
        .metadata
        .resource_version
        .context("a created object has a resourceVersion")?;
    let changed = gateway
        .patch::<ConfigMap>(
            Some("default"),
            "gw-watched",
            &Patch::Merge(json!({"data": {"n": "2"}})),
        )?
        .and_then(|cm| cm.metadata.resource_version)
        .context("a patched object has a resourceVersion")?;
    let watch = |from: &str| -> Result<Vec<Value>> {
        let path = format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={from}&fieldSelector=metadata.name%3Dgw-watched&timeoutSeconds=1"
        );
        let out = node
            .kubectl_with(ADMIN, &["get", "--raw", &path])?
            .check("kubectl get --raw (watch)")?;
        out.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("a watch event: {l}")))
            .collect()
    };
    let events = watch(&listed)?;
    ensure!(
        events.len() == 1
            && events[0]["type"] == "MODIFIED"
            && events[0]["object"]["data"]["n"] == "2"
            && events[0]["object"]["metadata"]["resourceVersion"] == changed.as_str(),
        "a watch from the created revision sees the patch: {events:?}"
    );
    ensure!(
        watch(&changed)?.is_empty(),
        "nothing happened since the patch"
    );
    let pki = "/etc/kubernetes/pki/etcd";
    node.sh(&format!(
        "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={pki}/ca.crt --cert={pki}/healthcheck-client.crt --key={pki}/healthcheck-client.key compact {changed}"
    ))?
    .check("etcdctl compact")?;
    let expired = watch(&listed)?;
    ensure!(
        expired.len() == 1
            && expired[0]["type"] == "ERROR"
            && expired[0]["object"]["code"] == 410
            && expired[0]["object"]["reason"] == "Expired"
            && expired[0]["object"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("too old resource version: {listed} ("))),
        "{expired:?}"
    );
    gateway.delete::<ConfigMap>(Some("default"), "gw-watched")?;
    Ok(())
}

/// `--dry-run`: every change becomes a plan item; nothing reaches the server, with or without one.
fn dry_run_plans_and_sends_nothing(node: &TestbedNode) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = host_with_admin_conf(node, dir.path(), true)?;
    let (config, secret, ..) = objects()?;
    let offline = Gateway::planning(&host)?;
    let online = Gateway::new(&host, Client::connect(&admin_connection(&host)?)?);
    for gateway in [&offline, &online] {
        gateway.create(&config)?;
        gateway.apply(&secret)?;
        gateway.apply_manifest(WIDGETS)?;
        gateway.patch::<ConfigMap>(
            Some("default"),
            "gw-config",
            &Patch::Merge(json!({"data": {"x": "y"}})),
        )?;
        ensure!(gateway.delete::<Node>(None, "node1")? == Deletion::Planned);
        let plan: Vec<(Kind, String, String)> = gateway
            .plan()
            .into_iter()
            .map(|i| (i.kind, i.target, i.reason))
            .collect();
        let expected = [
            ("v1 ConfigMap default/gw-config", "create"),
            (
                "v1 Secret default/gw-secret",
                "server-side apply (field manager kubestrap)",
            ),
            (
                "example.com/v1 Widget default/gw-widget",
                "server-side apply (field manager kubestrap)",
            ),
            (
                "apiextensions.k8s.io/v1 CustomResourceDefinition widgets.example.com",
                "server-side apply (field manager kubestrap)",
            ),
            ("v1 ConfigMap default/gw-config", "merge patch"),
            ("v1 Node node1", "delete"),
        ]
        .map(|(t, r)| (Kind::ApiObject, t.to_string(), r.to_string()));
        ensure!(plan == expected, "plan: {plan:#?}");
    }
    let started = Instant::now();
    online.wait_for_node_ready("node1", Duration::from_secs(5))?;
    ensure!(
        started.elapsed() < Duration::from_secs(1),
        "a dry-run wait returns at once"
    );
    let (_keep, observer_host) = observer(node)?;
    let judge = Gateway::new(
        &observer_host,
        Client::connect(&admin_connection(&observer_host)?)?,
    );
    ensure!(
        judge
            .get::<ConfigMap>(Some("default"), "gw-config")?
            .is_none(),
        "the dry run created gw-config"
    );
    ensure!(
        judge.get::<Secret>(Some("default"), "gw-secret")?.is_none(),
        "the dry run created gw-secret"
    );
    ensure!(
        judge
            .get::<CustomResourceDefinition>(None, "widgets.example.com")?
            .is_none(),
        "the dry run created the CRD"
    );
    ensure!(
        judge.get::<Node>(None, "node1")?.is_some(),
        "the dry run deleted node1"
    );
    ensure!(
        !dir.path().join("var/lib/kubestrap").exists(),
        "a dry run journals nothing"
    );
    Ok(())
}

/// A journaled run creates, applies, patches and deletes — last of all the `kubeadm:cluster-admins`
/// binding that admin.conf's rights come from — and its process dies. The next init's recovery, with
/// only the node's kubeconfigs to go by, leaves the cluster as the run found it: created objects gone,
/// the patched object restored, the deleted ones back; refused with admin.conf (its binding is gone),
/// it goes on with super-admin.conf.
fn a_dead_runs_changes_are_undone_by_the_next_runs_recovery(node: &TestbedNode) -> Result<()> {
    let (_keep, observer_host) = observer(node)?;
    let judge = Gateway::new(
        &observer_host,
        Client::connect(&admin_connection(&observer_host)?)?,
    );
    let existing: ConfigMap = typed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "gw-existing", "namespace": "default", "labels": {"owner": "admin"}},
        "data": {"mode": "one"}}))?;
    judge.create(&existing)?;
    let doomed: Secret = typed(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gw-doomed", "namespace": "default"}, "data": {"k": "dmFsdWU="}}))?;
    judge.create(&doomed)?;

    let dir = tempfile::tempdir()?;
    let host = host_with_admin_conf(node, dir.path(), false)?;
    std::fs::write(
        host.disk(&NodePath::new(SUPER_ADMIN)),
        node.read_file(SUPER_ADMIN)?,
    )?;
    let run = host.start_journal("init")?.context("a journaled run")?;
    let gateway = Gateway::new(&host, Client::connect(&admin_connection(&host)?)?);
    let (config, secret, role, binding, daemonset) = objects()?;
    let created = gateway.create(&config)?;
    ensure!(
        created.metadata.uid.is_some(),
        "the server's object comes back: {created:?}"
    );
    gateway.apply(&secret)?;
    gateway.apply(&role)?;
    gateway.apply(&binding)?;
    gateway.apply(&daemonset)?;
    let applied = gateway.apply_manifest(WIDGETS)?;
    ensure!(
        applied
            == [
                "apiextensions.k8s.io/v1 CustomResourceDefinition widgets.example.com",
                "example.com/v1 Widget default/gw-widget",
            ],
        "the custom resource waits for its CRD, wherever it stands in the file: {applied:?}"
    );
    let patched = gateway
        .patch::<ConfigMap>(
            Some("default"),
            "gw-existing",
            &Patch::Strategic(json!({"data": {"mode": "two", "extra": "x"}})),
        )?
        .context("a real patch returns the object")?;
    ensure!(
        patched
            .data
            .as_ref()
            .and_then(|d| d.get("mode"))
            .map(String::as_str)
            == Some("two")
    );
    gateway.patch::<ConfigMap>(
        Some("default"),
        "gw-existing",
        &Patch::Json(json!([{"op": "add", "path": "/metadata/labels/patched", "value": "yes"}])),
    )?;
    ensure!(gateway.delete::<Secret>(Some("default"), "gw-doomed")? == Deletion::Deleted);
    let widget = Identity {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        namespace: Some("default".into()),
        name: "gw-widget".into(),
    };
    let live = judge
        .get::<ConfigMap>(Some("default"), "gw-config")?
        .context("gw-config was created")?;
    ensure!(live.data.and_then(|d| d.get("mode").cloned()).as_deref() == Some("new"));
    ensure!(
        judge
            .get::<DaemonSet>(Some("default"), "gw-agent")?
            .is_some()
    );
    ensure!(
        gateway.delete::<ClusterRoleBinding>(None, "kubeadm:cluster-admins")? == Deletion::Deleted
    );
    let refused = judge
        .get::<ConfigMap>(Some("default"), "gw-config")
        .unwrap_err();
    ensure!(
        refused.code() == Some(403),
        "admin.conf lost its rights with the binding: {refused}"
    );
    drop(gateway);

    // Every change was journaled before it was sent, with what undoing it takes.
    let records = journal::read(host.root())?;
    let changes: Vec<(String, ApiChange)> = journal::run_records(&records, &run)
        .into_iter()
        .filter_map(|r| match &r.entry {
            Entry::ApiObject {
                kind, name, change, ..
            } => Some((format!("{kind}/{name}"), change.clone())),
            _ => None,
        })
        .collect();
    let states: Vec<(&str, &str)> = changes
        .iter()
        .map(|(o, c)| {
            (
                o.as_str(),
                match c {
                    ApiChange::Created => "created",
                    ApiChange::Updated { .. } => "updated",
                    ApiChange::Deleted { .. } => "deleted",
                },
            )
        })
        .collect();
    ensure!(
        states
            == [
                ("ConfigMap/gw-config", "created"),
                ("Secret/gw-secret", "created"),
                ("ClusterRole/gw-reader", "created"),
                ("RoleBinding/gw-reader", "created"),
                ("DaemonSet/gw-agent", "created"),
                ("CustomResourceDefinition/widgets.example.com", "created"),
                ("Widget/gw-widget", "created"),
                ("ConfigMap/gw-existing", "updated"),
                ("ConfigMap/gw-existing", "updated"),
                ("Secret/gw-doomed", "deleted"),
                ("ClusterRoleBinding/kubeadm:cluster-admins", "deleted"),
            ],
        "{states:?}"
    );
    for (object, change) in &changes {
        if let ApiChange::Updated { backup } | ApiChange::Deleted { backup } = change {
            let meta = std::fs::metadata(host.disk(backup))?;
            ensure!(
                std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777 == 0o600,
                "the copy of {object} may hold secrets: 0600"
            );
        }
    }

    // The process died without ending its run; the next init recovers it.
    drop(host);
    let next = Host::new(
        Root::new(dir.path()),
        Facts::default(),
        false,
        Ui::default(),
    );
    let undo = ClusterUndo::default();
    let session = Session::begin(&next, "init", Recovery::RollBack, &[&next, &undo])?;
    let [(recovered, report)] = session.recovered() else {
        bail!("one run to recover: {:?}", session.recovered());
    };
    ensure!(recovered.run == run, "{recovered:?}");
    let report = report.clone();
    session.finish(&next, Ok(()), false, &[&next, &undo])?;
    ensure!(
        report.left.is_empty() && report.failed.is_empty(),
        "nothing may be left: {report:?}"
    );
    // Two updates and two deletes put back, six or seven objects deleted: the Widget may go with its
    // CRD before its own undo reaches it.
    ensure!((10..=11).contains(&report.undone), "{report:?}");
    ensure!(
        undo.kubeconfig() == Some("super-admin.conf"),
        "refused with admin.conf, the recovery went on with super-admin.conf: {:?}",
        undo.kubeconfig()
    );
    ensure!(
        judge
            .get::<ClusterRoleBinding>(None, "kubeadm:cluster-admins")?
            .is_some(),
        "the binding is back, and admin.conf with it"
    );

    for (kind, gone) in [
        (
            "ConfigMap gw-config",
            judge
                .get::<ConfigMap>(Some("default"), "gw-config")?
                .is_none(),
        ),
        (
            "Secret gw-secret",
            judge.get::<Secret>(Some("default"), "gw-secret")?.is_none(),
        ),
        (
            "ClusterRole gw-reader",
            judge.get::<ClusterRole>(None, "gw-reader")?.is_none(),
        ),
        (
            "RoleBinding gw-reader",
            judge
                .get::<RoleBinding>(Some("default"), "gw-reader")?
                .is_none(),
        ),
        (
            "DaemonSet gw-agent",
            judge
                .get::<DaemonSet>(Some("default"), "gw-agent")?
                .is_none(),
        ),
        (
            "CRD widgets.example.com",
            judge
                .get::<CustomResourceDefinition>(None, "widgets.example.com")?
                .is_none(),
        ),
    ] {
        ensure!(gone, "{kind} is still there after the rollback");
    }
    match judge.delete_object(&widget) {
        Err(ClusterError::UnknownKind { .. }) | Ok(Deletion::Absent) => {}
        other => bail!("the Widget kind or object outlived the rollback: {other:?}"),
    }
    let back = judge
        .get::<ConfigMap>(Some("default"), "gw-existing")?
        .context("gw-existing is still there")?;
    ensure!(
        back.data == existing.data && back.metadata.labels == existing.metadata.labels,
        "gw-existing is restored to what it was: {back:?}"
    );
    let secret = judge
        .get::<Secret>(Some("default"), "gw-doomed")?
        .context("the deleted Secret is re-created")?;
    ensure!(secret.data == doomed.data, "{secret:?}");
    let records = journal::read(next.root())?;
    ensure!(
        matches!(
            journal::run_records(&records, &run)
                .last()
                .map(|r| &r.entry),
            Some(Entry::RunEnd {
                outcome: Outcome::RolledBack
            })
        ),
        "the dead run ends rolled back"
    );
    judge.delete::<ConfigMap>(Some("default"), "gw-existing")?;
    judge.delete::<Secret>(Some("default"), "gw-doomed")?;
    Ok(())
}

/// Waits watch their object until the condition holds; a deadline that passes says what was awaited and
/// what was last seen.
fn waits_end_when_the_condition_holds_or_name_what_they_awaited(node: &TestbedNode) -> Result<()> {
    let (_keep, host) = observer(node)?;
    let gateway = Gateway::new(&host, Client::connect(&admin_connection(&host)?)?);

    let err = gateway
        .wait_for_configmap_key("default", "gw-signals", "ready", Duration::from_secs(2))
        .unwrap_err();
    ensure!(
        err.to_string()
            == "timed out after 2s waiting for ConfigMap \"default/gw-signals\" to have the key \"ready\" (last seen: the ConfigMap does not exist)",
        "{err}"
    );
    let signals: ConfigMap = typed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "gw-signals", "namespace": "default"}, "data": {"other": "1"}}))?;
    gateway.create(&signals)?;
    let connection = admin_connection(&host)?;
    let writer = std::thread::spawn(move || -> Result<()> {
        std::thread::sleep(Duration::from_millis(1500));
        let dir = tempfile::tempdir()?;
        let host = Host::new(
            Root::new(dir.path()),
            Facts::default(),
            false,
            Ui::default(),
        );
        let gateway = Gateway::new(&host, Client::connect(&connection)?);
        gateway.patch::<ConfigMap>(
            Some("default"),
            "gw-signals",
            &Patch::Merge(json!({"data": {"ready": "yes"}})),
        )?;
        Ok(())
    });
    let started = Instant::now();
    let value = gateway.wait_for_configmap_key(
        "default",
        "gw-signals",
        "ready",
        Duration::from_secs(30),
    )?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
    ensure!(value.as_deref() == Some("yes"), "{value:?}");
    ensure!(
        started.elapsed() >= Duration::from_millis(1400),
        "the wait ended before the key was written"
    );
    gateway.delete::<ConfigMap>(Some("default"), "gw-signals")?;

    // No CNI config on node1 yet: the kubelet double reports NetworkReady=false, so the Node is not Ready.
    let err = gateway
        .wait_for_node_ready("node1", Duration::from_secs(2))
        .unwrap_err()
        .to_string();
    ensure!(
        err.starts_with(
            "timed out after 2s waiting for Node \"node1\" to be Ready (last seen: Ready=False"
        ),
        "{err}"
    );
    node.write_file(
        "/etc/cni/net.d/10-gateway-test.conflist",
        br#"{"cniVersion": "1.0.0", "name": "gateway-test", "plugins": [{"type": "loopback"}]}"#,
        0o644,
    )?;
    gateway.wait_for_node_ready("node1", Duration::from_secs(60))?;

    // The controller manager's DaemonSet controller judges the rollout. The DaemonSet tolerates node1's
    // taint, so its pod is scheduled there, and its image is one no testbed node runs: it never becomes
    // available, and the wait times out.
    let rollout: DaemonSet = typed(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "gw-rollout", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "gw-rollout"}},
                 "template": {"metadata": {"labels": {"app": "gw-rollout"}},
                              "spec": {"tolerations": [{"operator": "Exists"}],
                                       "containers": [{"name": "agent", "image": "registry.k8s.io/kubestrap-test/never-pulled:1"}]}}}}))?;
    gateway.apply(&rollout)?;
    let err = gateway
        .wait_for_daemonset_ready("default", "gw-rollout", Duration::from_millis(1500))
        .unwrap_err()
        .to_string();
    ensure!(
        err.starts_with("timed out after 1.5s waiting for DaemonSet \"default/gw-rollout\" to be rolled out (last seen: "),
        "{err}"
    );
    // A second writer moves the DaemonSet onto no node: the controller sees the new generation, removes
    // the pod and reports nothing left to roll out, which ends the wait.
    let connection = admin_connection(&host)?;
    let writer = std::thread::spawn(move || -> Result<()> {
        std::thread::sleep(Duration::from_millis(1000));
        let dir = tempfile::tempdir()?;
        let host = Host::new(
            Root::new(dir.path()),
            Facts::default(),
            false,
            Ui::default(),
        );
        let gateway = Gateway::new(&host, Client::connect(&connection)?);
        gateway.patch::<DaemonSet>(
            Some("default"),
            "gw-rollout",
            &Patch::Merge(json!({"spec": {"template": {"spec": {"nodeSelector": {"kubestrap.test/nowhere": "true"}}}}})),
        )?;
        Ok(())
    });
    let started = Instant::now();
    gateway.wait_for_daemonset_ready("default", "gw-rollout", Duration::from_secs(30))?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the DaemonSet writer panicked"))??;
    ensure!(
        started.elapsed() >= Duration::from_millis(900),
        "the rollout wait ended before the DaemonSet could be rolled out"
    );
    let rolled = gateway
        .get::<DaemonSet>(Some("default"), "gw-rollout")?
        .and_then(|ds| ds.status)
        .context("the controller wrote the DaemonSet's status")?;
    ensure!(
        rolled.observed_generation == Some(2) && rolled.desired_number_scheduled == 0,
        "{rolled:?}"
    );
    gateway.delete::<DaemonSet>(Some("default"), "gw-rollout")?;
    Ok(())
}

/// The API server's static pod is taken away and put back: a call made while it is down succeeds once it
/// answers again; without retries the same call fails at once, naming the server.
fn retries_outlast_an_api_server_that_starts_late(node: &TestbedNode) -> Result<()> {
    let (_keep, host) = observer(node)?;
    let client = Client::connect(&admin_connection(&host)?)?;
    let manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml";
    let parked = "/root/kube-apiserver.yaml";
    node.sh(&format!("mv {manifest} {parked}"))?
        .check("park the API server's manifest")?;
    let once = Gateway::new(&host, client.with_retry(Retry::once()));
    wait_until("the API server to stop", Duration::from_secs(60), || {
        Ok(once.get::<Node>(None, "node1").is_err())
    })?;
    let down = once.get::<Node>(None, "node1").unwrap_err();
    ensure!(
        matches!(down, ClusterError::Transport { .. })
            && down.to_string().contains(client.server()),
        "a refused connection is a transport error naming the server: {down}"
    );
    let restorer = {
        let container = node.container.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            std::process::Command::new("docker")
                .args(["exec", &container, "mv", parked, manifest])
                .status()
        })
    };
    let patient = Gateway::new(
        &host,
        client.with_retry(Retry::within(Duration::from_secs(120))),
    );
    let started = Instant::now();
    let found = patient.get::<Node>(None, "node1");
    let restored = restorer
        .join()
        .map_err(|_| anyhow::anyhow!("the restorer panicked"))??;
    ensure!(restored.success(), "putting the manifest back failed");
    let found = found.context("the retried call outlasts the restart")?;
    ensure!(found.is_some(), "node1 is still registered");
    ensure!(
        started.elapsed() >= Duration::from_secs(3),
        "the call succeeded before the API server was back"
    );
    scenario::wait_for_api(node, SUPER_ADMIN, Duration::from_secs(60))?;
    Ok(())
}
