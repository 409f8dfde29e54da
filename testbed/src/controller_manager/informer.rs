//! Shared informers: one list-then-watch per resource type, made with the controller-manager's
//! own credentials (as its shared informer factory is), an in-memory cache every controller
//! reads, and a change signal that wakes the controllers watching that type. Controllers then
//! reconcile from the caches (level-triggered passes) and write with their own credentials.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::common::client::ApiClient;
use crate::logf;

use super::COMPONENT;

/// `namespace/name` (or `name` for cluster-scoped objects).
pub fn key_of(obj: &Value) -> String {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    match meta["namespace"].as_str().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

pub fn uid_of(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

fn revision_of(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[derive(Default)]
struct Cache {
    synced: bool,
    objects: BTreeMap<String, Arc<Value>>,
}

/// One resource type's list+watch and cache.
pub struct Informer {
    /// The list path, e.g. `/api/v1/pods` or `/apis/apps/v1/daemonsets`.
    pub path: String,
    /// The component whose log the informer's errors go to.
    component: &'static str,
    cache: RwLock<Cache>,
    changed: watch::Sender<u64>,
}

impl Informer {
    /// Starts listing and watching `path` with `client` (the controller-manager's own identity).
    pub fn start(client: ApiClient, path: &str) -> Arc<Informer> {
        Informer::start_for(COMPONENT, client, path)
    }

    /// [`Informer::start`] for another component (kube-proxy, CoreDNS), which its errors name.
    pub fn start_for(component: &'static str, client: ApiClient, path: &str) -> Arc<Informer> {
        let (changed, _) = watch::channel(0);
        let informer = Arc::new(Informer {
            path: path.to_string(),
            component,
            cache: RwLock::new(Cache::default()),
            changed,
        });
        let running = informer.clone();
        tokio::spawn(async move { running.run(client).await });
        informer
    }

    fn signal(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn synced(&self) -> bool {
        self.cache.read().map(|c| c.synced).unwrap_or(false)
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<Value>> {
        self.cache
            .read()
            .map(|c| c.objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The cached objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<Value>> {
        let prefix = format!("{namespace}/");
        self.cache
            .read()
            .map(|c| {
                c.objects
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One cached object by `namespace/name` (or `name`).
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.cache.read().ok()?.objects.get(key).cloned()
    }

    /// Replaces the cache with a fresh list.
    fn replace(&self, items: &[Value]) {
        if let Ok(mut cache) = self.cache.write() {
            cache.objects = items
                .iter()
                .map(|o| (key_of(o), Arc::new(o.clone())))
                .collect();
            cache.synced = true;
        }
        self.signal();
    }

    /// Applies one watch event; false for an ERROR event (the watch must be re-established).
    fn apply(&self, event: &Value) -> bool {
        let object = &event["object"];
        let key = key_of(object);
        let Ok(mut cache) = self.cache.write() else {
            return false;
        };
        match event["type"].as_str() {
            Some("ADDED" | "MODIFIED") => {
                let newer = cache
                    .objects
                    .get(&key)
                    .is_none_or(|old| revision_of(old) <= revision_of(object));
                if newer {
                    cache.objects.insert(key, Arc::new(object.clone()));
                }
            }
            Some("DELETED") => {
                if cache
                    .objects
                    .get(&key)
                    .is_some_and(|old| uid_of(old) == uid_of(object))
                {
                    cache.objects.remove(&key);
                }
            }
            Some("BOOKMARK") => return true,
            _ => return false,
        }
        drop(cache);
        self.signal();
        true
    }

    async fn run(self: Arc<Self>, client: ApiClient) {
        let separator = if self.path.contains('?') { '&' } else { '?' };
        loop {
            let list = match client.get(&self.path).await {
                Ok(list) => list,
                Err(e) => {
                    logf!(self.component, "failed to list {}: {e}", self.path);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.replace(
                list["items"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            );
            let revision = list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let watch_path = format!(
                "{}{separator}watch=1&resourceVersion={revision}&timeoutSeconds=300",
                self.path
            );
            let mut stream = match client.watch(&watch_path, Duration::from_secs(330)).await {
                Ok(s) => s,
                Err(e) => {
                    logf!(self.component, "failed to watch {}: {e}", self.path);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                match stream.next().await {
                    Ok(Some(event)) => {
                        if !self.apply(&event) {
                            logf!(
                                self.component,
                                "watch of {} ended: {}",
                                self.path,
                                event["object"]["message"].as_str().unwrap_or_default()
                            );
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        logf!(self.component, "watch of {} failed: {e}", self.path);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                }
            }
        }
    }
}

/// The informers of the controller-manager, started on first use and shared by every controller.
pub struct Informers {
    client: ApiClient,
    started: RwLock<HashMap<String, Arc<Informer>>>,
}

impl Informers {
    pub fn new(client: ApiClient) -> Informers {
        Informers {
            client,
            started: RwLock::new(HashMap::new()),
        }
    }

    /// The informer of a list path, started if needed.
    pub fn of(&self, path: &str) -> Arc<Informer> {
        if let Some(i) = self.started.read().ok().and_then(|m| m.get(path).cloned()) {
            return i;
        }
        let Ok(mut map) = self.started.write() else {
            return Informer::start(self.client.clone(), path);
        };
        map.entry(path.to_string())
            .or_insert_with(|| Informer::start(self.client.clone(), path))
            .clone()
    }

    pub fn pods(&self) -> Arc<Informer> {
        self.of("/api/v1/pods")
    }
    pub fn nodes(&self) -> Arc<Informer> {
        self.of("/api/v1/nodes")
    }
    pub fn services(&self) -> Arc<Informer> {
        self.of("/api/v1/services")
    }
    pub fn endpoints(&self) -> Arc<Informer> {
        self.of("/api/v1/endpoints")
    }
    pub fn endpoint_slices(&self) -> Arc<Informer> {
        self.of("/apis/discovery.k8s.io/v1/endpointslices")
    }
    pub fn daemon_sets(&self) -> Arc<Informer> {
        self.of("/apis/apps/v1/daemonsets")
    }
    pub fn deployments(&self) -> Arc<Informer> {
        self.of("/apis/apps/v1/deployments")
    }
    pub fn replica_sets(&self) -> Arc<Informer> {
        self.of("/apis/apps/v1/replicasets")
    }
    pub fn controller_revisions(&self) -> Arc<Informer> {
        self.of("/apis/apps/v1/controllerrevisions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn informer() -> Informer {
        let (changed, _) = watch::channel(0);
        Informer {
            path: "/api/v1/pods".into(),
            component: COMPONENT,
            cache: RwLock::new(Cache::default()),
            changed,
        }
    }

    fn pod(name: &str, uid: &str, rv: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": rv}})
    }

    #[test]
    fn events_update_the_cache_and_stale_ones_are_ignored() {
        let i = informer();
        i.replace(&[pod("a", "1", "10")]);
        assert!(i.synced());
        assert!(i.apply(&json!({"type": "MODIFIED", "object": pod("a", "1", "12")})));
        assert!(i.apply(&json!({"type": "MODIFIED", "object": pod("a", "1", "11")})));
        assert_eq!(
            i.get("default/a").unwrap()["metadata"]["resourceVersion"],
            "12"
        );
        assert!(i.apply(&json!({"type": "ADDED", "object": pod("b", "2", "13")})));
        assert_eq!(i.list_namespace("default").len(), 2);
        assert!(i.list_namespace("kube-system").is_empty());
        // A delete of an older incarnation (another uid) leaves the new object alone.
        assert!(i.apply(&json!({"type": "DELETED", "object": pod("b", "old", "9")})));
        assert!(i.get("default/b").is_some());
        assert!(i.apply(&json!({"type": "DELETED", "object": pod("b", "2", "13")})));
        assert!(i.get("default/b").is_none());
        assert!(!i.apply(&json!({"type": "ERROR", "object": {"code": 410}})));
    }
}
