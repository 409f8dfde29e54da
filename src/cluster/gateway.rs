//! The gateway object phases use: typed and dynamic calls that, in a real run, journal each change
//! (with a copy of what it replaces) before sending it, and in a dry run send nothing and record the
//! plan as `{kind: api-object, target, reason}` items.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::calls::{self, Patch};
use super::client::Client;
use super::conditions::{self, Check};
use super::discovery::Discovery;
use super::error::ClusterError;
use super::object::{Identity, ObjectRef, Typed};
use super::wait;
use crate::host::Host;
use crate::host::journal::{ApiChange, Entry};
use crate::host::plan::{Item, Kind, Verb as PlanVerb};

/// How many `pods/proxy` requests [`Gateway::pod_proxy_get_all`] has in flight at once.
pub const PROXY_CONCURRENCY: usize = 128;

/// One GET through `pods/proxy`: `path` (with its query) on `pod`'s `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProxyGet {
    pub namespace: String,
    pub pod: String,
    pub port: u16,
    pub path: String,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// There was no such object.
    Absent,
    /// Dry run: planned, not sent.
    Planned,
}

/// A change the gateway makes, as plans and messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Create,
    Apply,
    Patch(&'static str),
    Delete,
}

impl Verb {
    fn reason(self) -> String {
        match self {
            Verb::Create => "create".to_string(),
            Verb::Apply => format!("server-side apply (field manager {})", super::FIELD_MANAGER),
            Verb::Patch(kind) => kind.to_string(),
            Verb::Delete => "delete".to_string(),
        }
    }

    fn plan_verb(self) -> PlanVerb {
        match self {
            Verb::Create => PlanVerb::Create,
            Verb::Apply => PlanVerb::Apply,
            Verb::Patch(_) => PlanVerb::Patch,
            Verb::Delete => PlanVerb::Delete,
        }
    }
}

/// The cluster gateway for one command run on one host (journal, dry-run flag and output are the host's).
pub struct Gateway<'h> {
    host: &'h Host,
    client: Option<Client>,
    pub(crate) discovery: Discovery,
    plan: Mutex<Vec<Item>>,
}

impl std::fmt::Debug for Gateway<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("client", &self.client)
            .field("dry_run", &self.host.dry_run())
            .finish()
    }
}

impl<'h> Gateway<'h> {
    /// A gateway that talks to the API server through `client`. Undoing its journaled changes is the
    /// workflow's rollback's (`workflow::cluster_undo`), which a workflow's phases make gateways through.
    pub fn new(host: &'h Host, client: Client) -> Gateway<'h> {
        Gateway {
            host,
            client: Some(client),
            discovery: Discovery::default(),
            plan: Mutex::new(Vec::new()),
        }
    }

    /// A dry-run gateway without a server (`init --dry-run` runs before any API server exists):
    /// changes are planned, reads find nothing, waits return at once.
    pub fn planning(host: &'h Host) -> Result<Gateway<'h>, ClusterError> {
        if !host.dry_run() {
            return Err(ClusterError::Invalid(
                "a cluster gateway without an API server can only plan a dry run".into(),
            ));
        }
        Ok(Gateway {
            host,
            client: None,
            discovery: Discovery::default(),
            plan: Mutex::new(Vec::new()),
        })
    }

    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    pub fn dry_run(&self) -> bool {
        self.host.dry_run()
    }

    /// The changes planned so far (dry run).
    pub fn plan(&self) -> Vec<Item> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn connected(&self) -> Result<&Client, ClusterError> {
        self.client.as_ref().ok_or_else(|| {
            ClusterError::Invalid("this dry-run cluster gateway has no API server".into())
        })
    }

    fn journaling(&self) -> bool {
        !self.host.dry_run() && self.host.run_id().is_some()
    }

    /// Plans a change: printed and kept in the host's plan (the one plan format), and in this
    /// gateway's own list.
    fn record_plan(&self, verb: Verb, target: String) {
        let item = Item::new(Kind::ApiObject, target, verb.reason());
        self.host.plan_step(verb.plan_verb(), item.clone());
        self.plan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(item);
    }

    // ---- reading ----

    /// The object, or None when it does not exist (or, in a dry run without a server, always).
    pub fn get<K: Typed>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<K>, ClusterError> {
        let at = ObjectRef::of::<K>(namespace, name)?;
        let Some(client) = &self.client else {
            return Ok(None);
        };
        client
            .block_on(calls::get(client, &at))??
            .map(|v| typed(v, &at))
            .transpose()
    }

    /// Objects of a type in one namespace (or all), optionally by label selector.
    pub fn list<K: Typed>(
        &self,
        namespace: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Vec<K>, ClusterError> {
        let Some(client) = &self.client else {
            return Ok(Vec::new());
        };
        let api: kube::Api<K> = super::object::typed_api(client.kube(), namespace);
        let mut params = kube::api::ListParams::default();
        if let Some(selector) = labels {
            params = params.labels(selector);
        }
        let what = format!(
            "listing {}{} at {}",
            K::kind(&()),
            namespace.map(|ns| format!(" in {ns}")).unwrap_or_default(),
            client.server()
        );
        let list = client.block_on(super::retry::retrying(client.retry(), &what, || {
            api.list(&params)
        }))??;
        Ok(list.items)
    }

    // ---- changing (typed) ----

    /// Creates the object; an existing one is an error (409 AlreadyExists). In a dry run, returns the
    /// object as it would be sent.
    pub fn create<K: Typed>(&self, object: &K) -> Result<K, ClusterError> {
        let at = typed_ref(object)?;
        let body = untyped(object, &at)?;
        match self.change(Verb::Create, &at, &body, None)? {
            Some(v) => typed(v, &at),
            None => Ok(object.clone()),
        }
    }

    /// Creates or updates the object by server-side apply (field manager `kubestrap`).
    pub fn apply<K: Typed>(&self, object: &K) -> Result<K, ClusterError> {
        let at = typed_ref(object)?;
        let body = untyped(object, &at)?;
        match self.change(Verb::Apply, &at, &body, None)? {
            Some(v) => typed(v, &at),
            None => Ok(object.clone()),
        }
    }

    /// Patches an existing object; None in a dry run.
    pub fn patch<K: Typed>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
    ) -> Result<Option<K>, ClusterError> {
        let at = ObjectRef::of::<K>(namespace, name)?;
        self.change(Verb::Patch(patch.name()), &at, &Value::Null, Some(patch))?
            .map(|v| typed(v, &at))
            .transpose()
    }

    pub fn delete<K: Typed>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Deletion, ClusterError> {
        let at = ObjectRef::of::<K>(namespace, name)?;
        self.delete_at(&at)
    }

    // ---- changing (any kind, through discovery) ----

    /// Server-side applies an object of any kind (the server must serve its apiVersion and kind).
    pub fn apply_object(&self, object: &Value) -> Result<Value, ClusterError> {
        let identity = Identity::of(object)?;
        if self.client.is_none() || self.host.dry_run() {
            self.record_plan(Verb::Apply, identity.target());
            return Ok(object.clone());
        }
        let at = self.locate(&identity)?;
        Ok(self
            .change(Verb::Apply, &at, &normalised(object, &at), None)?
            .unwrap_or_else(|| object.clone()))
    }

    /// Deletes an object of any kind.
    pub fn delete_object(&self, identity: &Identity) -> Result<Deletion, ClusterError> {
        if self.client.is_none() || self.host.dry_run() {
            self.record_plan(Verb::Delete, identity.target());
            return Ok(Deletion::Planned);
        }
        let at = self.locate(identity)?;
        self.delete_at(&at)
    }

    pub(crate) fn locate(&self, identity: &Identity) -> Result<ObjectRef, ClusterError> {
        let client = self.connected()?;
        client.block_on(self.discovery.locate(client, identity))?
    }

    // ---- the journaled change ----

    /// Plans (dry run) or journals then sends one change. Returns the server's object, None when
    /// only planned.
    fn change(
        &self,
        verb: Verb,
        at: &ObjectRef,
        body: &Value,
        patch: Option<&Patch>,
    ) -> Result<Option<Value>, ClusterError> {
        if self.host.dry_run() {
            self.record_plan(verb, at.target());
            return Ok(None);
        }
        let client = self.connected()?;
        client.block_on(async {
            if self.journaling() {
                let prior = calls::get(client, at).await?;
                if verb == Verb::Create && prior.is_some() {
                    return Err(ClusterError::Api {
                        what: format!("creating {} at {}", at.describe(), client.server()),
                        code: 409,
                        reason: "AlreadyExists".into(),
                        message: format!("{} already exists", at.describe()),
                    });
                }
                let change = match &prior {
                    None if patch.is_some() => None,
                    None => Some(ApiChange::Created),
                    Some(object) => Some(ApiChange::Updated {
                        backup: self.back_up(at, object)?,
                    }),
                };
                if let Some(change) = change {
                    self.journal(at, change)?;
                }
            }
            let sent = match (verb, patch) {
                (_, Some(p)) => calls::patch(client, at, p).await?,
                (Verb::Create, None) => calls::create(client, at, body).await?,
                _ => calls::apply(client, at, body).await?,
            };
            Ok(Some(sent))
        })?
    }

    fn delete_at(&self, at: &ObjectRef) -> Result<Deletion, ClusterError> {
        if self.host.dry_run() {
            self.record_plan(Verb::Delete, at.target());
            return Ok(Deletion::Planned);
        }
        let client = self.connected()?;
        client.block_on(async {
            if self.journaling() {
                let Some(prior) = calls::get(client, at).await? else {
                    return Ok(Deletion::Absent);
                };
                let backup = self.back_up(at, &prior)?;
                self.journal(at, ApiChange::Deleted { backup })?;
            }
            Ok(if calls::delete(client, at).await? {
                Deletion::Deleted
            } else {
                Deletion::Absent
            })
        })?
    }

    fn journal(&self, at: &ObjectRef, change: ApiChange) -> Result<(), ClusterError> {
        self.host
            .journal(Entry::ApiObject {
                api_version: at.resource.api_version.clone(),
                kind: at.resource.kind.clone(),
                namespace: at.namespace.clone(),
                name: at.name.clone(),
                change,
            })
            .map_err(|e| {
                ClusterError::Journal(format!("journaling a change of {}: {e:#}", at.describe()))
            })
    }

    /// Saves the object as it is before a change (0600: it may be a Secret).
    fn back_up(
        &self,
        at: &ObjectRef,
        object: &Value,
    ) -> Result<crate::host::NodePath, ClusterError> {
        let group = if at.resource.group.is_empty() {
            "core"
        } else {
            &at.resource.group
        };
        let relative = format!(
            "api/{group}/{}/{}/{}{}.json",
            at.resource.version,
            at.resource.plural,
            at.namespace
                .as_ref()
                .map(|ns| format!("{ns}/"))
                .unwrap_or_default(),
            at.name
        );
        let bytes = serde_json::to_vec_pretty(object)
            .map_err(|e| ClusterError::Invalid(format!("copying {}: {e}", at.describe())))?;
        self.host
            .save_backup(&relative, &bytes)
            .map_err(|e| ClusterError::Journal(format!("backing up {}: {e:#}", at.describe())))
    }

    // ---- pods/proxy ----

    /// GETs every request's path from its pod through the API server's `pods/proxy` subresource,
    /// [`PROXY_CONCURRENCY`] at a time, each bounded by `timeout`: each answer's body, or why there was none. Nothing is
    /// retried (the caller decides). Empty in a dry run without a server.
    pub fn pod_proxy_get_all(
        &self,
        requests: &[PodProxyGet],
        timeout: Duration,
    ) -> Result<Vec<Result<String, ClusterError>>, ClusterError> {
        let client = self.connected()?;
        let kube = client.kube();
        let calls = requests.iter().map(|r| {
            let kube = kube.clone();
            async move {
                let what = format!(
                    "GET {} through pods/proxy of {}/{}:{}",
                    r.path, r.namespace, r.pod, r.port
                );
                let uri = format!(
                    "/api/v1/namespaces/{}/pods/{}:{}/proxy{}",
                    r.namespace, r.pod, r.port, r.path
                );
                let request = http::Request::get(uri)
                    .body(Vec::new())
                    .map_err(|e| ClusterError::Invalid(format!("{what}: {e}")))?;
                match tokio::time::timeout(timeout, kube.request_text(request)).await {
                    Err(_) => Err(ClusterError::Transport {
                        what,
                        detail: format!("no answer within {}s", timeout.as_secs()),
                        attempts: 1,
                        elapsed: timeout,
                    }),
                    Ok(Err(e)) => Err(super::retry::describe(&what, e, 1, Duration::ZERO)),
                    Ok(Ok(body)) => Ok(body),
                }
            }
        });
        use futures_util::StreamExt as _;
        client.block_on(
            futures_util::stream::iter(calls)
                .buffered(PROXY_CONCURRENCY)
                .collect::<Vec<_>>(),
        )
    }

    // ---- waiting ----

    /// Waits until `check` holds for the object (watching it), at most `timeout`; `what` names the
    /// wait in messages ("DaemonSet kube-system/kube-proxy to be ready"). None in a dry run, and when
    /// the check was met by the object's absence.
    pub fn wait_for<K, C>(
        &self,
        namespace: Option<&str>,
        name: &str,
        what: &str,
        timeout: Duration,
        check: C,
    ) -> Result<Option<K>, ClusterError>
    where
        K: Typed,
        C: Fn(Option<&K>) -> Check + Send + Sync + 'static,
    {
        let at = ObjectRef::of::<K>(namespace, name)?;
        if self.host.dry_run() {
            self.host
                .ui()
                .line(format!("[dry-run] Would wait for {what}"));
            return Ok(None);
        }
        let client = self.connected()?;
        client.block_on(wait::until(client, &at, what, timeout, check))?
    }

    /// Waits for a ConfigMap to hold `key`; returns its value (None in a dry run).
    pub fn wait_for_configmap_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<String>, ClusterError> {
        let what = format!("ConfigMap \"{namespace}/{name}\" to have the key {key:?}");
        let found = self.wait_for::<k8s_openapi::api::core::v1::ConfigMap, _>(
            Some(namespace),
            name,
            &what,
            timeout,
            conditions::configmap_has_key(key),
        )?;
        Ok(found.and_then(|cm| cm.data.and_then(|mut d| d.remove(key))))
    }

    pub fn wait_for_daemonset_ready(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let what = format!("DaemonSet \"{namespace}/{name}\" to be rolled out");
        self.wait_for::<k8s_openapi::api::apps::v1::DaemonSet, _>(
            Some(namespace),
            name,
            &what,
            timeout,
            conditions::daemonset_ready,
        )
        .map(|_| ())
    }

    pub fn wait_for_node_ready(&self, name: &str, timeout: Duration) -> Result<(), ClusterError> {
        let what = format!("Node {name:?} to be Ready");
        self.wait_for::<k8s_openapi::api::core::v1::Node, _>(
            None,
            name,
            &what,
            timeout,
            conditions::node_ready,
        )
        .map(|_| ())
    }

    pub fn wait_for_crd_established(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let what = format!("CustomResourceDefinition {name:?} to be established");
        self.wait_for::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition, _>(
            None,
            name,
            &what,
            timeout,
            conditions::crd_established,
        )
        .map(|_| ())
    }
}

fn typed_ref<K: Typed>(object: &K) -> Result<ObjectRef, ClusterError> {
    let meta = object.meta();
    ObjectRef::of::<K>(
        meta.namespace.as_deref(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

fn untyped<K: Typed>(object: &K, at: &ObjectRef) -> Result<Value, ClusterError> {
    let mut body = serde_json::to_value(object)
        .map_err(|e| ClusterError::Invalid(format!("{} does not serialise: {e}", at.describe())))?;
    // k8s-openapi writes apiVersion and kind; set them anyway so every body names its type.
    body["apiVersion"] = Value::String(at.resource.api_version.clone());
    body["kind"] = Value::String(at.resource.kind.clone());
    Ok(body)
}

fn typed<K: Typed>(value: Value, at: &ObjectRef) -> Result<K, ClusterError> {
    serde_json::from_value(value).map_err(|e| {
        ClusterError::Invalid(format!(
            "the server's {} does not parse: {e}",
            at.describe()
        ))
    })
}

/// The object with the namespace discovery settled on (added when defaulted, dropped when the kind is
/// cluster-scoped).
fn normalised(object: &Value, at: &ObjectRef) -> Value {
    let mut body = object.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        match &at.namespace {
            Some(ns) => {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            None => {
                meta.remove("namespace");
            }
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Facts, Root};
    use crate::output::Ui;
    use k8s_openapi::api::core::v1::{ConfigMap, Node};
    use serde_json::json;

    fn host(dir: &std::path::Path, dry_run: bool) -> Host {
        Host::new(Root::new(dir), Facts::default(), dry_run, Ui::default())
    }

    #[test]
    fn a_dry_run_without_a_server_plans_every_change_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), true);
        assert_eq!(h.start_journal("init").unwrap(), None);
        let gateway = Gateway::planning(&h).unwrap();
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "kubeadm-config", "namespace": "kube-system"}, "data": {"k": "v"}})).unwrap();
        let echoed = gateway.create(&cm).unwrap();
        assert_eq!(echoed, cm);
        gateway.apply(&cm).unwrap();
        assert_eq!(
            gateway
                .patch::<ConfigMap>(
                    Some("kube-system"),
                    "kubeadm-config",
                    &Patch::Json(json!([]))
                )
                .unwrap(),
            None
        );
        assert_eq!(
            gateway.delete::<Node>(None, "n1").unwrap(),
            Deletion::Planned
        );
        let manifest = "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-flannel}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: kube-flannel-ds, namespace: kube-flannel}\n";
        assert_eq!(
            gateway.apply_manifest(manifest).unwrap(),
            vec![
                "v1 Namespace kube-flannel",
                "apps/v1 DaemonSet kube-flannel/kube-flannel-ds"
            ]
        );
        assert_eq!(
            gateway
                .get::<ConfigMap>(Some("kube-system"), "kubeadm-config")
                .unwrap(),
            None
        );
        let started = std::time::Instant::now();
        gateway
            .wait_for_node_ready("n1", Duration::from_secs(60))
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        let plan: Vec<(String, String)> = gateway
            .plan()
            .into_iter()
            .map(|i| {
                assert_eq!(i.kind, Kind::ApiObject);
                (i.target, i.reason)
            })
            .collect();
        let apply = "server-side apply (field manager kubestrap)".to_string();
        assert_eq!(
            plan,
            vec![
                (
                    "v1 ConfigMap kube-system/kubeadm-config".to_string(),
                    "create".to_string()
                ),
                (
                    "v1 ConfigMap kube-system/kubeadm-config".to_string(),
                    apply.clone()
                ),
                (
                    "v1 ConfigMap kube-system/kubeadm-config".to_string(),
                    "JSON patch".to_string()
                ),
                ("v1 Node n1".to_string(), "delete".to_string()),
                ("v1 Namespace kube-flannel".to_string(), apply.clone()),
                (
                    "apps/v1 DaemonSet kube-flannel/kube-flannel-ds".to_string(),
                    apply
                ),
            ]
        );
        let json = serde_json::to_value(&gateway.plan()[3]).unwrap();
        assert_eq!(
            json,
            json!({"kind": "api-object", "target": "v1 Node n1", "reason": "delete"})
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "a dry run writes nothing"
        );
    }

    #[test]
    fn only_a_dry_run_may_go_without_a_server() {
        let dir = tempfile::tempdir().unwrap();
        let real = host(dir.path(), false);
        assert!(Gateway::planning(&real).is_err());
    }

    #[test]
    fn typed_objects_need_their_namespace_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), true);
        let gateway = Gateway::planning(&h).unwrap();
        let nameless = ConfigMap::default();
        assert!(gateway.create(&nameless).is_err());
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        let err = gateway.apply(&cm).unwrap_err().to_string();
        assert!(err.contains("namespaced but no namespace"), "{err}");
        assert!(gateway.plan().is_empty());
    }
}
