//! The garbage collector: objects whose owners (ownerReferences) are all gone are deleted —
//! with the propagation their own finalizers ask for, background otherwise — after a live read
//! confirms each owner is absent (or has another uid); references to absent owners are removed
//! from objects that still have a live owner. Foreground deletion (an owner with the
//! `foregroundDeletion` finalizer) deletes the dependents, then lifts the finalizer once no
//! dependent with blockOwnerDeletion remains; orphaning (the `orphan` finalizer) removes the
//! owner's references from its dependents, then lifts the finalizer. The workload kinds come
//! from the shared informers, every other deletable kind from discovery and a periodic relist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use super::informer::{Informer, Informers, uid_of};
use super::runner::Reconciler;
use crate::common::client::{ApiClient, PatchType};
use crate::logf;

const NAME: &str = "garbage-collector-controller";
const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";
/// How often the kinds without an informer are listed again.
const RELIST: Duration = Duration::from_secs(20);
/// How often discovery is read again (CRDs add kinds).
const REDISCOVER: Duration = Duration::from_secs(60);

/// Where a kind lives in the API.
#[derive(Debug, Clone)]
struct Resource {
    /// `/api/v1` or `/apis/<group>/<version>`.
    base: String,
    plural: String,
    namespaced: bool,
    deletable: bool,
}

pub struct GarbageCollector {
    watched: Vec<Arc<Informer>>,
    lister: ApiClient,
    /// (group, kind) → resource.
    resources: HashMap<(String, String), Resource>,
    discovered: Option<Instant>,
    others: Vec<Value>,
    relisted: Option<Instant>,
    absent: BTreeSet<String>,
}

impl GarbageCollector {
    /// `lister` is the controller-manager's own client (it may list every kind).
    pub fn new(informers: &Informers, lister: ApiClient) -> GarbageCollector {
        GarbageCollector {
            watched: vec![
                informers.pods(),
                informers.nodes(),
                informers.services(),
                informers.replica_sets(),
                informers.deployments(),
                informers.daemon_sets(),
                informers.controller_revisions(),
                informers.endpoint_slices(),
            ],
            lister,
            resources: HashMap::new(),
            discovered: None,
            others: Vec::new(),
            relisted: None,
            absent: BTreeSet::new(),
        }
    }
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

fn deleting_dependents(obj: &Value) -> bool {
    is_deleting(obj) && finalizers(obj).iter().any(|f| f == FOREGROUND)
}

fn owner_refs(obj: &Value) -> Vec<Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What became of one object's owners.
#[derive(Debug, Default, PartialEq, Eq)]
struct Owners {
    solid: Vec<String>,
    dangling: Vec<String>,
    waiting: Vec<String>,
}

/// What the collector does with one dependent (attemptToDeleteItem's three cases).
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Keep,
    /// Remove the references to these owner uids.
    Unlink(Vec<String>),
    /// Delete with this propagation policy.
    Delete(&'static str),
}

fn decide(dependent: &Value, owners: &Owners, has_dependents: bool) -> Action {
    if !owners.solid.is_empty() {
        let gone: Vec<String> = owners
            .dangling
            .iter()
            .chain(&owners.waiting)
            .cloned()
            .collect();
        return if gone.is_empty() {
            Action::Keep
        } else {
            Action::Unlink(gone)
        };
    }
    if owners.dangling.is_empty() && owners.waiting.is_empty() {
        return Action::Keep;
    }
    if !owners.waiting.is_empty() && has_dependents {
        return Action::Delete("Foreground");
    }
    let own = finalizers(dependent);
    if own.iter().any(|f| f == ORPHAN) {
        Action::Delete("Orphan")
    } else if own.iter().any(|f| f == FOREGROUND) {
        Action::Delete("Foreground")
    } else {
        Action::Delete("Background")
    }
}

impl GarbageCollector {
    async fn discover(&mut self) -> Result<()> {
        let mut resources = HashMap::new();
        let mut bases = vec!["/api/v1".to_string()];
        let groups = self.lister.get("/apis").await?;
        for group in groups["groups"].as_array().into_iter().flatten() {
            if let Some(gv) = group["preferredVersion"]["groupVersion"].as_str() {
                bases.push(format!("/apis/{gv}"));
            }
        }
        for base in bases {
            let list = match self.lister.get(&base).await {
                Ok(l) => l,
                Err(e) => {
                    logf!(super::COMPONENT, "{NAME}: discovery of {base}: {e}");
                    continue;
                }
            };
            let group = group_of(list["groupVersion"].as_str().unwrap_or_default()).to_string();
            for r in list["resources"].as_array().into_iter().flatten() {
                let plural = r["name"].as_str().unwrap_or_default();
                if plural.contains('/') {
                    continue;
                }
                let verbs: Vec<&str> = r["verbs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let deletable = ["delete", "list", "watch"]
                    .iter()
                    .all(|v| verbs.contains(v))
                    && !(plural == "events" && (group.is_empty() || group == "events.k8s.io"));
                resources.insert(
                    (
                        group.clone(),
                        r["kind"].as_str().unwrap_or_default().to_string(),
                    ),
                    Resource {
                        base: base.clone(),
                        plural: plural.to_string(),
                        namespaced: r["namespaced"].as_bool() == Some(true),
                        deletable,
                    },
                );
            }
        }
        self.resources = resources;
        self.discovered = Some(Instant::now());
        Ok(())
    }

    /// Lists every deletable kind the informers do not cover.
    async fn relist(&mut self) {
        let watched: BTreeSet<String> = self.watched.iter().map(|i| i.path.clone()).collect();
        let mut others = Vec::new();
        let mut paths: Vec<String> = self
            .resources
            .values()
            .filter(|r| r.deletable)
            .map(|r| format!("{}/{}", r.base, r.plural))
            .filter(|p| !watched.contains(p))
            .collect();
        paths.sort();
        paths.dedup();
        for path in paths {
            match self.lister.get(&path).await {
                Ok(list) => {
                    let api_version = list["apiVersion"].clone();
                    let kind = list["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_end_matches("List")
                        .to_string();
                    for mut item in list["items"].as_array().cloned().unwrap_or_default() {
                        if item["apiVersion"].is_null() {
                            item["apiVersion"] = api_version.clone();
                        }
                        if item["kind"].is_null() {
                            item["kind"] = json!(kind);
                        }
                        others.push(item);
                    }
                }
                Err(e) => logf!(super::COMPONENT, "{NAME}: list {path}: {e}"),
            }
        }
        self.others = others;
        self.relisted = Some(Instant::now());
    }

    /// The API path of an object (None for a kind discovery does not know).
    fn path_of(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<String> {
        let r = self
            .resources
            .get(&(group_of(api_version).to_string(), kind.to_string()))?;
        let base = if r.base == "/api/v1" || api_version.is_empty() {
            r.base.clone()
        } else if api_version == "v1" {
            "/api/v1".to_string()
        } else {
            format!("/apis/{api_version}")
        };
        Some(match (r.namespaced, namespace) {
            (true, Some(ns)) => format!("{base}/namespaces/{ns}/{}/{name}", r.plural),
            (true, None) => return None,
            (false, _) => format!("{base}/{}/{name}", r.plural),
        })
    }

    fn object_path(&self, obj: &Value) -> Option<String> {
        self.path_of(
            obj["apiVersion"].as_str().unwrap_or_default(),
            obj["kind"].as_str().unwrap_or_default(),
            obj["metadata"]["namespace"]
                .as_str()
                .filter(|n| !n.is_empty()),
            obj["metadata"]["name"].as_str().unwrap_or_default(),
        )
    }

    /// Classifies a dependent's owners: from the caches, then a live read for the rest.
    async fn owners(
        &mut self,
        client: &ApiClient,
        dependent: &Value,
        known: &HashMap<String, Value>,
    ) -> Owners {
        let mut owners = Owners::default();
        let namespace = dependent["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty());
        for r in owner_refs(dependent) {
            let uid = r["uid"].as_str().unwrap_or_default().to_string();
            if let Some(owner) = known.get(&uid) {
                if deleting_dependents(owner) {
                    owners.waiting.push(uid);
                } else {
                    owners.solid.push(uid);
                }
                continue;
            }
            if self.absent.contains(&uid) {
                owners.dangling.push(uid);
                continue;
            }
            let api_version = r["apiVersion"].as_str().unwrap_or_default();
            let kind = r["kind"].as_str().unwrap_or_default();
            let Some(resource) = self
                .resources
                .get(&(group_of(api_version).to_string(), kind.to_string()))
                .cloned()
            else {
                // A kind discovery does not serve cannot be judged; keep the dependent.
                owners.solid.push(uid);
                continue;
            };
            if resource.namespaced && namespace.is_none() {
                // A cluster-scoped object cannot be owned by a namespaced one.
                owners.dangling.push(uid);
                continue;
            }
            let Some(path) = self.path_of(
                api_version,
                kind,
                namespace,
                r["name"].as_str().unwrap_or_default(),
            ) else {
                owners.solid.push(uid);
                continue;
            };
            match client.get(&path).await {
                Ok(owner) if owner["metadata"]["uid"].as_str() == Some(uid.as_str()) => {
                    if deleting_dependents(&owner) {
                        owners.waiting.push(uid);
                    } else {
                        owners.solid.push(uid);
                    }
                }
                Ok(_) => {
                    self.absent.insert(uid.clone());
                    owners.dangling.push(uid);
                }
                Err(e) if e.is_not_found() => {
                    self.absent.insert(uid.clone());
                    owners.dangling.push(uid);
                }
                Err(e) => {
                    logf!(super::COMPONENT, "{NAME}: reading owner {path}: {e}");
                    owners.solid.push(uid);
                }
            }
        }
        owners
    }

    /// Removes the references to `uids` from an object (a merge patch guarded by its version).
    async fn unlink(&self, client: &ApiClient, obj: &Value, uids: &[String]) -> Result<()> {
        let Some(path) = self.object_path(obj) else {
            return Ok(());
        };
        let remaining: Vec<Value> = owner_refs(obj)
            .into_iter()
            .filter(|r| !uids.iter().any(|u| r["uid"].as_str() == Some(u)))
            .collect();
        let patch = json!({"metadata": {"ownerReferences": remaining, "resourceVersion": obj["metadata"]["resourceVersion"]}});
        match client.patch(&path, PatchType::Merge, &patch).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Lifts one of the collector's finalizers from an object being deleted.
    async fn finish(&self, client: &ApiClient, obj: &Value, finalizer: &str) -> Result<()> {
        let Some(path) = self.object_path(obj) else {
            return Ok(());
        };
        let remaining: Vec<String> = finalizers(obj)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let patch = json!({"metadata": {"finalizers": remaining, "resourceVersion": obj["metadata"]["resourceVersion"]}});
        match client.patch(&path, PatchType::Merge, &patch).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, client: &ApiClient, obj: &Value, policy: &str) -> Result<()> {
        let Some(path) = self.object_path(obj) else {
            return Ok(());
        };
        let options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy, "preconditions": {"uid": uid_of(obj)}});
        match client.delete_with(&path, &options).await {
            Ok(_) => {
                logf!(
                    super::COMPONENT,
                    "{NAME}: deleted {path} ({policy}): its owners are gone"
                );
                Ok(())
            }
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Reconciler for GarbageCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn informers(&self) -> Vec<Arc<Informer>> {
        self.watched.clone()
    }

    async fn reconcile(&mut self, client: &ApiClient) -> Result<Option<Duration>> {
        if self.discovered.is_none_or(|t| t.elapsed() > REDISCOVER) {
            self.discover().await?;
        }
        if self.relisted.is_none_or(|t| t.elapsed() > RELIST) {
            self.relist().await;
        }
        let mut objects: Vec<Value> = self
            .watched
            .iter()
            .flat_map(|i| i.list())
            .map(|o| (*o).clone())
            .collect();
        objects.extend(self.others.iter().cloned());
        let known: HashMap<String, Value> = objects
            .iter()
            .map(|o| (uid_of(o).to_string(), o.clone()))
            .collect();
        // owner uid → its dependents' (uid, blockOwnerDeletion)
        let mut dependents: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
        for obj in &objects {
            for r in owner_refs(obj) {
                if let Some(owner) = r["uid"].as_str() {
                    dependents.entry(owner.to_string()).or_default().push((
                        uid_of(obj).to_string(),
                        r["blockOwnerDeletion"].as_bool() == Some(true),
                    ));
                }
            }
        }
        for obj in &objects {
            let uid = uid_of(obj);
            if is_deleting(obj) {
                let own = finalizers(obj);
                if own.iter().any(|f| f == ORPHAN) {
                    for (dependent, _) in dependents.get(uid).into_iter().flatten() {
                        if let Some(d) = known.get(dependent) {
                            self.unlink(client, d, &[uid.to_string()]).await?;
                        }
                    }
                    self.finish(client, obj, ORPHAN).await?;
                } else if own.iter().any(|f| f == FOREGROUND) {
                    let blocking = dependents
                        .get(uid)
                        .into_iter()
                        .flatten()
                        .any(|(d, block)| *block && known.contains_key(d));
                    if !blocking {
                        self.finish(client, obj, FOREGROUND).await?;
                    }
                }
                if !deleting_dependents(obj) {
                    continue;
                }
            }
            if owner_refs(obj).is_empty() {
                continue;
            }
            let owners = self.owners(client, obj, &known).await;
            match decide(obj, &owners, dependents.contains_key(uid)) {
                Action::Keep => {}
                Action::Unlink(gone) => self.unlink(client, obj, &gone).await?,
                Action::Delete(policy) => {
                    if !is_deleting(obj) {
                        self.delete(client, obj, policy).await?;
                    }
                }
            }
        }
        Ok(self.relisted.map(|t| RELIST.saturating_sub(t.elapsed())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(solid: &[&str], dangling: &[&str], waiting: &[&str]) -> Owners {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Owners {
            solid: v(solid),
            dangling: v(dangling),
            waiting: v(waiting),
        }
    }

    #[test]
    fn dependents_of_gone_owners_are_deleted_as_their_finalizers_say() {
        let plain = json!({"metadata": {}});
        assert_eq!(
            decide(&plain, &owners(&[], &["a"], &[]), false),
            Action::Delete("Background")
        );
        let orphaning = json!({"metadata": {"finalizers": ["orphan"]}});
        assert_eq!(
            decide(&orphaning, &owners(&[], &["a"], &[]), false),
            Action::Delete("Orphan")
        );
        let foreground = json!({"metadata": {"finalizers": ["foregroundDeletion"]}});
        assert_eq!(
            decide(&foreground, &owners(&[], &["a"], &[]), false),
            Action::Delete("Foreground")
        );
        assert_eq!(
            decide(&plain, &owners(&[], &[], &["a"]), true),
            Action::Delete("Foreground")
        );
        assert_eq!(
            decide(&plain, &owners(&[], &[], &["a"]), false),
            Action::Delete("Background")
        );
    }

    #[test]
    fn a_live_owner_keeps_its_dependent_and_dangling_references_go() {
        let plain = json!({"metadata": {}});
        assert_eq!(
            decide(&plain, &owners(&["a"], &[], &[]), false),
            Action::Keep
        );
        assert_eq!(
            decide(&plain, &owners(&["a"], &["b"], &["c"]), false),
            Action::Unlink(vec!["b".into(), "c".into()])
        );
        assert_eq!(decide(&plain, &owners(&[], &[], &[]), false), Action::Keep);
    }

    #[test]
    fn paths_follow_discovery() {
        let mut gc_resources = HashMap::new();
        gc_resources.insert(
            ("apps".to_string(), "ReplicaSet".to_string()),
            Resource {
                base: "/apis/apps/v1".into(),
                plural: "replicasets".into(),
                namespaced: true,
                deletable: true,
            },
        );
        gc_resources.insert(
            ("".to_string(), "Node".to_string()),
            Resource {
                base: "/api/v1".into(),
                plural: "nodes".into(),
                namespaced: false,
                deletable: true,
            },
        );
        let gc = GarbageCollector {
            watched: Vec::new(),
            lister: ApiClient::new(&crate::common::kubeconfig::ClientConfig {
                server: "https://127.0.0.1:1".into(),
                ca_pem: None,
                insecure: true,
                tls_server_name: None,
                client_cert_pem: None,
                client_key_pem: None,
                token: None,
            })
            .unwrap(),
            resources: gc_resources,
            discovered: None,
            others: Vec::new(),
            relisted: None,
            absent: BTreeSet::new(),
        };
        assert_eq!(
            gc.path_of("apps/v1", "ReplicaSet", Some("default"), "web-1")
                .as_deref(),
            Some("/apis/apps/v1/namespaces/default/replicasets/web-1")
        );
        assert_eq!(
            gc.path_of("v1", "Node", Some("default"), "node1")
                .as_deref(),
            Some("/api/v1/nodes/node1")
        );
        assert_eq!(gc.path_of("apps/v1", "ReplicaSet", None, "web-1"), None);
        assert_eq!(gc.path_of("example.com/v1", "Widget", Some("x"), "w"), None);
    }
}
