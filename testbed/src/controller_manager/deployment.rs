//! The Deployment controller: one ReplicaSet per pod template (`<deployment>-<pod-template-hash>`,
//! the hash in its selector, labels and template), RollingUpdate within maxSurge/maxUnavailable
//! (new ReplicaSet scaled up, old ones down, unhealthy old pods first) or Recreate, proportional
//! scaling of the active ReplicaSets, the revision annotations, revisionHistoryLimit cleanup,
//! pause, and status: replicas, updated/ready/available/unavailableReplicas, observedGeneration,
//! collisionCount and the Available and Progressing conditions (with progressDeadlineSeconds).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::informer::{Informer, Informers, key_of};
use super::podutil::{self, claim, is_deleting, scaled_value};
use super::replicaset::{omit_zeros, update_status};
use super::runner::Reconciler;
use crate::common::client::ApiClient;
use crate::common::events::{self, EventType};
use crate::common::time;
use crate::logf;

const NAME: &str = "deployment-controller";
const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";

pub struct DeploymentController {
    deployments: Arc<Informer>,
    replica_sets: Arc<Informer>,
    pods: Arc<Informer>,
}

impl DeploymentController {
    pub fn new(informers: &Informers) -> DeploymentController {
        DeploymentController {
            deployments: informers.deployments(),
            replica_sets: informers.replica_sets(),
            pods: informers.pods(),
        }
    }
}

impl Reconciler for DeploymentController {
    fn name(&self) -> &'static str {
        NAME
    }

    fn informers(&self) -> Vec<Arc<Informer>> {
        vec![
            self.deployments.clone(),
            self.replica_sets.clone(),
            self.pods.clone(),
        ]
    }

    async fn reconcile(&mut self, client: &ApiClient) -> Result<Option<Duration>> {
        let mut requeue: Option<Duration> = None;
        for d in self.deployments.list() {
            match self.sync(client, &d).await {
                Ok(Some(w)) => requeue = Some(requeue.map_or(w, |r| r.min(w))),
                Ok(None) => {}
                Err(e) => logf!(super::COMPONENT, "{NAME}: sync {}: {e:#}", key_of(&d)),
            }
        }
        Ok(requeue)
    }
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn status_int(obj: &Value, field: &str) -> i64 {
    obj["status"][field].as_i64().unwrap_or(0)
}

fn annotation_int(obj: &Value, key: &str) -> Option<i64> {
    obj["metadata"]["annotations"][key]
        .as_str()
        .and_then(|v| v.parse().ok())
}

fn is_rolling(d: &Value) -> bool {
    d["spec"]["strategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// ResolveFenceposts: (maxSurge rounded up, maxUnavailable rounded down), never both zero.
fn fenceposts(d: &Value) -> (i64, i64) {
    let rolling = &d["spec"]["strategy"]["rollingUpdate"];
    let desired = replicas(d);
    let surge = scaled_value(&rolling["maxSurge"], desired, true);
    let unavailable = scaled_value(&rolling["maxUnavailable"], desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn max_surge(d: &Value) -> i64 {
    if is_rolling(d) { fenceposts(d).0 } else { 0 }
}

fn max_unavailable(d: &Value) -> i64 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// A template with the pod-template-hash label removed (EqualIgnoreHash).
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            t["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    t
}

fn sum(sets: &[Arc<Value>], f: impl Fn(&Value) -> i64) -> i64 {
    sets.iter().map(|rs| f(rs)).sum()
}

/// NewRSNewReplicas for a rolling update: up to maxSurge over the desired count in total.
fn new_rs_replicas(d: &Value, all: &[Arc<Value>], new_rs_replicas: i64) -> i64 {
    if !is_rolling(d) {
        return replicas(d);
    }
    let current = sum(all, replicas);
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return new_rs_replicas;
    }
    let up = (max_total - current).min(replicas(d) - new_rs_replicas);
    new_rs_replicas + up.max(0)
}

/// A deployment condition, keeping the transition time when the status does not change
/// (SetDeploymentCondition); unchanged when status and reason are the same.
fn set_condition(status: &mut Value, kind: &str, value: &str, reason: &str, message: &str) {
    let mut conditions: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let now = time::now();
    let mut transition = json!(now);
    if let Some(current) = conditions.iter().find(|c| c["type"] == kind) {
        if current["status"] == value && current["reason"] == reason {
            return;
        }
        if current["status"] == value {
            transition = current["lastTransitionTime"].clone();
        }
    }
    conditions.retain(|c| c["type"] != kind);
    conditions.push(json!({"type": kind, "status": value, "lastUpdateTime": now, "lastTransitionTime": transition, "reason": reason, "message": message}));
    status["conditions"] = json!(conditions);
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// calculateStatus plus syncRolloutStatus's Progressing condition; also how long until the
/// progress deadline would pass.
fn rollout_status(
    d: &Value,
    all: &[Arc<Value>],
    new_rs: Option<&Arc<Value>>,
) -> (Value, Option<Duration>) {
    let available = sum(all, |rs| status_int(rs, "availableReplicas"));
    let total = sum(all, replicas);
    let mut status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": sum(all, |rs| status_int(rs, "replicas")),
        "updatedReplicas": new_rs.map_or(0, |rs| status_int(rs, "replicas")),
        "readyReplicas": sum(all, |rs| status_int(rs, "readyReplicas")),
        "availableReplicas": available,
        "unavailableReplicas": (total - available).max(0),
    });
    if !d["status"]["collisionCount"].is_null() {
        status["collisionCount"] = d["status"]["collisionCount"].clone();
    }
    if let Some(c) = d["status"]["conditions"].as_array() {
        status["conditions"] = json!(c);
    }
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        );
    } else {
        set_condition(
            &mut status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        );
    }
    omit_zeros(&mut status, &[]);
    let deadline = d["spec"]["progressDeadlineSeconds"].as_i64();
    let mut requeue = None;
    let current = condition(&d["status"], "Progressing").cloned();
    let complete_before = status["replicas"] == status["updatedReplicas"]
        && current
            .as_ref()
            .is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
    if let (Some(deadline), false) = (deadline, complete_before) {
        let want = replicas(d);
        let subject = match new_rs {
            Some(rs) => format!(
                "ReplicaSet {:?}",
                rs["metadata"]["name"].as_str().unwrap_or_default()
            ),
            None => format!(
                "Deployment {:?}",
                d["metadata"]["name"].as_str().unwrap_or_default()
            ),
        };
        let count = |s: &Value, field: &str| s[field].as_i64().unwrap_or(0);
        let old_replicas = |s: &Value| count(s, "replicas") - count(s, "updatedReplicas");
        let complete = count(&status, "updatedReplicas") == want
            && count(&status, "replicas") == want
            && available == want;
        let progressing = count(&status, "updatedReplicas")
            > count(&d["status"], "updatedReplicas")
            || old_replicas(&status) < old_replicas(&d["status"])
            || count(&status, "readyReplicas") > count(&d["status"], "readyReplicas")
            || available > count(&d["status"], "availableReplicas");
        if complete {
            set_condition(
                &mut status,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("{subject} has successfully progressed."),
            );
        } else if progressing {
            let transition = current
                .as_ref()
                .filter(|c| c["status"] == "True")
                .map(|c| c["lastTransitionTime"].clone())
                .unwrap_or_else(|| json!(time::now()));
            let mut conditions: Vec<Value> =
                status["conditions"].as_array().cloned().unwrap_or_default();
            conditions.retain(|c| c["type"] != "Progressing");
            conditions.push(json!({"type": "Progressing", "status": "True", "lastUpdateTime": time::now(), "lastTransitionTime": transition, "reason": "ReplicaSetUpdated", "message": format!("{subject} is progressing.")}));
            status["conditions"] = json!(conditions);
            requeue = Some(Duration::from_secs(u64::try_from(deadline).unwrap_or(600)));
        } else if let Some(c) = current
            .as_ref()
            .filter(|c| c["reason"] != "ProgressDeadlineExceeded")
        {
            let since = c["lastUpdateTime"]
                .as_str()
                .and_then(time::parse)
                .map(|t| t.unix_timestamp())
                .unwrap_or(0);
            let left = since + deadline - time::unix_now();
            if left < 0 {
                set_condition(
                    &mut status,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    &format!("{subject} has timed out progressing."),
                );
            } else {
                requeue = Some(Duration::from_secs(u64::try_from(left).unwrap_or(0) + 1));
            }
        }
    } else if deadline.is_none() {
        let mut conditions: Vec<Value> =
            status["conditions"].as_array().cloned().unwrap_or_default();
        conditions.retain(|c| c["type"] != "Progressing");
        status["conditions"] = json!(conditions);
    }
    (status, requeue)
}

/// Replica counts per ReplicaSet for a scaling event with several active ReplicaSets: the
/// allowed total (replicas + maxSurge) distributed in proportion to each one's max-replicas
/// annotation, leftovers to the first (the largest; newer first when growing).
fn proportions(d: &Value, active: &[Arc<Value>]) -> Vec<(String, i64)> {
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - sum(active, replicas);
    let mut sets: Vec<&Arc<Value>> = active.iter().collect();
    let created = |rs: &Value| {
        rs["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    if to_add > 0 {
        sets.sort_by(|a, b| {
            replicas(b)
                .cmp(&replicas(a))
                .then(created(b).cmp(&created(a)))
        });
    } else {
        sets.sort_by(|a, b| {
            replicas(b)
                .cmp(&replicas(a))
                .then(created(a).cmp(&created(b)))
        });
    }
    let mut added = 0;
    let mut sizes: Vec<(String, i64)> = Vec::new();
    for rs in &sets {
        let current = replicas(rs);
        let mut proportion = 0;
        if to_add != 0 && current != 0 && to_add != added {
            let fraction = if replicas(d) == 0 {
                -current
            } else {
                let annotated = annotation_int(rs, MAX)
                    .unwrap_or_else(|| status_int(d, "replicas"))
                    .max(1);
                let target = (current * (replicas(d) + max_surge(d))) as f64 / annotated as f64;
                target.round() as i64 - current
            };
            let left = to_add - added;
            proportion = if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            };
        }
        added += proportion;
        sizes.push((
            rs["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            current + proportion,
        ));
    }
    if let Some(first) = sizes.first_mut()
        && to_add != 0
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    sizes
}

impl DeploymentController {
    async fn sync(&mut self, client: &ApiClient, d: &Value) -> Result<Option<Duration>> {
        if is_deleting(d) {
            return Ok(None);
        }
        let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let rs_path = format!("/apis/apps/v1/namespaces/{ns}/replicasets");
        let owner_ref = podutil::owner_reference(d, "apps/v1", "Deployment");
        let candidates = self.replica_sets.list_namespace(ns);
        let mut all = claim(
            client,
            d,
            &owner_ref,
            &d["spec"]["selector"],
            &candidates,
            &rs_path,
        )
        .await;
        all.sort_by_key(|rs| {
            rs["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        let template = without_hash(&d["spec"]["template"]);
        let mut new_rs = all
            .iter()
            .find(|rs| without_hash(&rs["spec"]["template"]) == template)
            .cloned();
        let mut d = d.clone();
        let d_path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");

        self.paused_conditions(client, &mut d, &d_path).await?;
        if d["spec"]["paused"].as_bool() == Some(true) {
            return self
                .scale_and_status(client, &d, &all, new_rs.as_ref())
                .await;
        }
        let active_desired_differs = all
            .iter()
            .filter(|rs| replicas(rs) > 0)
            .any(|rs| annotation_int(rs, DESIRED).is_some_and(|desired| desired != replicas(&d)));
        if active_desired_differs {
            return self
                .scale_and_status(client, &d, &all, new_rs.as_ref())
                .await;
        }
        if new_rs.is_none() {
            match self.create_new_rs(client, &mut d, &all, &owner_ref).await? {
                Some(rs) => {
                    all.push(rs.clone());
                    new_rs = Some(rs);
                }
                None => return Ok(Some(Duration::from_secs(1))),
            }
        }
        let Some(new_rs) = new_rs else {
            return Ok(None);
        };
        let new_rs = self
            .sync_revision(client, &mut d, &all, new_rs, &d_path)
            .await?;
        let old: Vec<Arc<Value>> = all
            .iter()
            .filter(|rs| rs["metadata"]["uid"] != new_rs["metadata"]["uid"])
            .cloned()
            .collect();
        let all: Vec<Arc<Value>> = old
            .iter()
            .cloned()
            .chain(std::iter::once(new_rs.clone()))
            .collect();
        let changed = if is_rolling(&d) {
            self.rolling(client, &d, &all, &new_rs, &old).await?
        } else {
            self.recreate(client, &d, &new_rs, &old).await?
        };
        if !changed
            && status_int(&d, "updatedReplicas") == replicas(&d)
            && status_int(&d, "availableReplicas") == replicas(&d)
        {
            self.cleanup(client, &d, &old).await;
        }
        let (status, requeue) = rollout_status(&d, &all, Some(&new_rs));
        update_status(client, &d_path, &d, status).await?;
        Ok(requeue)
    }

    /// checkPausedConditions: Progressing=Unknown DeploymentPaused while paused, and
    /// DeploymentResumed when resumed.
    async fn paused_conditions(&self, client: &ApiClient, d: &mut Value, path: &str) -> Result<()> {
        if d["spec"]["progressDeadlineSeconds"].is_null() {
            return Ok(());
        }
        let paused = d["spec"]["paused"].as_bool() == Some(true);
        let reason = condition(&d["status"], "Progressing")
            .and_then(|c| c["reason"].as_str())
            .map(str::to_string);
        let mut status = d["status"].clone();
        if paused && reason.as_deref() != Some("DeploymentPaused") {
            set_condition(
                &mut status,
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused",
            );
        } else if !paused && reason.as_deref() == Some("DeploymentPaused") {
            set_condition(
                &mut status,
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed",
            );
        } else {
            return Ok(());
        }
        match update_status(client, path, d, status.clone()).await? {
            Some(stored) => *d = stored,
            None => d["status"] = status,
        }
        Ok(())
    }

    /// The `sync` path: scaling events and paused deployments scale without rolling out.
    async fn scale_and_status(
        &self,
        client: &ApiClient,
        d: &Value,
        all: &[Arc<Value>],
        new_rs: Option<&Arc<Value>>,
    ) -> Result<Option<Duration>> {
        let active: Vec<Arc<Value>> = all.iter().filter(|rs| replicas(rs) > 0).cloned().collect();
        let targets: Vec<(String, i64)> = match active.len() {
            0 => new_rs
                .or(all.last())
                .map(|rs| {
                    vec![(
                        rs["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        replicas(d),
                    )]
                })
                .unwrap_or_default(),
            1 => vec![(
                active[0]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                replicas(d),
            )],
            _ => {
                let saturated = new_rs.is_some_and(|rs| {
                    replicas(rs) == replicas(d)
                        && status_int(rs, "availableReplicas") == replicas(d)
                });
                if saturated {
                    active
                        .iter()
                        .filter(|rs| {
                            Some(rs["metadata"]["uid"].clone())
                                != new_rs.map(|n| n["metadata"]["uid"].clone())
                        })
                        .map(|rs| {
                            (
                                rs["metadata"]["name"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_string(),
                                0,
                            )
                        })
                        .collect()
                } else if is_rolling(d) {
                    proportions(d, &active)
                } else {
                    Vec::new()
                }
            }
        };
        for (name, size) in targets {
            if let Some(rs) = all
                .iter()
                .find(|rs| rs["metadata"]["name"] == name.as_str())
            {
                self.scale(client, d, rs, size).await?;
            }
        }
        if d["spec"]["paused"].as_bool() == Some(true) {
            let old: Vec<Arc<Value>> = all
                .iter()
                .filter(|rs| {
                    Some(rs["metadata"]["uid"].clone())
                        != new_rs.map(|n| n["metadata"]["uid"].clone())
                })
                .cloned()
                .collect();
            self.cleanup(client, d, &old).await;
        }
        let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let (mut status, _) = rollout_status(d, all, new_rs);
        if let Some(c) = d["status"]["conditions"].as_array() {
            // The sync path recomputes only the Available condition.
            let progressing = c.iter().find(|c| c["type"] == "Progressing").cloned();
            let mut conditions: Vec<Value> =
                status["conditions"].as_array().cloned().unwrap_or_default();
            conditions.retain(|c| c["type"] != "Progressing");
            conditions.extend(progressing);
            status["conditions"] = json!(conditions);
        }
        update_status(
            client,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
            d,
            status,
        )
        .await?;
        Ok(None)
    }

    /// Sets a ReplicaSet's replicas (and its desired/max-replicas annotations) with an event.
    async fn scale(&self, client: &ApiClient, d: &Value, rs: &Value, size: i64) -> Result<bool> {
        let desired = replicas(d).to_string();
        let max = (replicas(d) + max_surge(d)).to_string();
        let annotations = &rs["metadata"]["annotations"];
        let current = replicas(rs);
        if current == size
            && annotations[DESIRED].as_str() == Some(desired.as_str())
            && annotations[MAX].as_str() == Some(max.as_str())
        {
            return Ok(false);
        }
        let mut updated = rs.clone();
        updated["spec"]["replicas"] = json!(size);
        updated["metadata"]["annotations"][DESIRED] = json!(desired);
        updated["metadata"]["annotations"][MAX] = json!(max);
        let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = rs["metadata"]["name"].as_str().unwrap_or_default();
        client
            .replace(
                &format!("/apis/apps/v1/namespaces/{ns}/replicasets/{name}"),
                &updated,
            )
            .await?;
        if current != size {
            let direction = if size > current { "up" } else { "down" };
            events::record(
                client,
                NAME,
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled {direction} replica set {name} from {current} to {size}"),
            )
            .await;
        }
        Ok(current != size)
    }

    /// Creates the ReplicaSet of the current template; None after a hash collision (the
    /// collision count was raised and the next pass tries again).
    async fn create_new_rs(
        &self,
        client: &ApiClient,
        d: &mut Value,
        all: &[Arc<Value>],
        owner_ref: &Value,
    ) -> Result<Option<Arc<Value>>> {
        let ns = d["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let collision = d["status"]["collisionCount"].as_i64();
        let hash = podutil::template_hash(&d["spec"]["template"], collision);
        let mut template = d["spec"]["template"].clone();
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let revision = all
            .iter()
            .filter_map(|rs| annotation_int(rs, REVISION))
            .max()
            .unwrap_or(0)
            + 1;
        let mut annotations = serde_json::Map::new();
        for (k, v) in d["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if k != "kubectl.kubernetes.io/last-applied-configuration"
                && !k.starts_with("deployment.kubernetes.io/")
            {
                annotations.insert(k.clone(), v.clone());
            }
        }
        annotations.insert(REVISION.into(), json!(revision.to_string()));
        annotations.insert(DESIRED.into(), json!(replicas(d).to_string()));
        annotations.insert(MAX.into(), json!((replicas(d) + max_surge(d)).to_string()));
        let size = new_rs_replicas(d, all, 0);
        let rs_name = format!("{name}-{hash}");
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": ns, "labels": template["metadata"]["labels"], "annotations": annotations, "ownerReferences": [owner_ref]},
            "spec": {"replicas": size, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0), "selector": selector, "template": template},
        });
        let d_path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
        let created = match client
            .create(&format!("/apis/apps/v1/namespaces/{ns}/replicasets"), &rs)
            .await
        {
            Ok(created) => created,
            Err(e) if e.is_conflict() => {
                let existing = client
                    .get(&format!(
                        "/apis/apps/v1/namespaces/{ns}/replicasets/{rs_name}"
                    ))
                    .await?;
                let ours = podutil::controller_ref(&existing)
                    .is_some_and(|r| r["uid"] == d["metadata"]["uid"]);
                if ours
                    && without_hash(&existing["spec"]["template"])
                        == without_hash(&d["spec"]["template"])
                {
                    return Ok(Some(Arc::new(existing)));
                }
                let mut status = d["status"].clone();
                status["collisionCount"] = json!(collision.unwrap_or(0) + 1);
                update_status(client, &d_path, d, status).await?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        if size > 0 {
            events::record(
                client,
                NAME,
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled up replica set {rs_name} from 0 to {size}"),
            )
            .await;
        }
        let mut status = d["status"].clone();
        set_condition(
            &mut status,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set {rs_name:?}"),
        );
        match update_status(client, &d_path, d, status.clone()).await? {
            Some(stored) => *d = stored,
            None => d["status"] = status,
        }
        Ok(Some(Arc::new(created)))
    }

    /// The new ReplicaSet's revision is above every old one's; the deployment carries it.
    async fn sync_revision(
        &self,
        client: &ApiClient,
        d: &mut Value,
        all: &[Arc<Value>],
        new_rs: Arc<Value>,
        d_path: &str,
    ) -> Result<Arc<Value>> {
        let old_max = all
            .iter()
            .filter(|rs| rs["metadata"]["uid"] != new_rs["metadata"]["uid"])
            .filter_map(|rs| annotation_int(rs, REVISION))
            .max()
            .unwrap_or(0);
        let mut new_rs = new_rs;
        let current = annotation_int(&new_rs, REVISION).unwrap_or(0);
        if current <= old_max {
            let mut updated = (*new_rs).clone();
            updated["metadata"]["annotations"][REVISION] = json!((old_max + 1).to_string());
            let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = new_rs["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let stored = client
                .replace(
                    &format!("/apis/apps/v1/namespaces/{ns}/replicasets/{name}"),
                    &updated,
                )
                .await?;
            new_rs = Arc::new(stored);
            if condition(&d["status"], "Progressing").is_none() {
                let mut status = d["status"].clone();
                set_condition(
                    &mut status,
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    &format!("Found new replica set {name:?}"),
                );
                match update_status(client, d_path, d, status.clone()).await? {
                    Some(stored) => *d = stored,
                    None => d["status"] = status,
                }
            }
        }
        let revision = annotation_int(&new_rs, REVISION).unwrap_or(1).to_string();
        if d["metadata"]["annotations"][REVISION].as_str() != Some(revision.as_str()) {
            let mut updated = d.clone();
            updated["metadata"]["annotations"][REVISION] = json!(revision);
            let stored = client.replace(d_path, &updated).await?;
            d["metadata"] = stored["metadata"].clone();
        }
        Ok(new_rs)
    }

    /// rolloutRolling: scale the new ReplicaSet up within maxSurge, or the old ones down within
    /// maxUnavailable (unhealthy replicas first). True when something was scaled.
    async fn rolling(
        &self,
        client: &ApiClient,
        d: &Value,
        all: &[Arc<Value>],
        new_rs: &Arc<Value>,
        old: &[Arc<Value>],
    ) -> Result<bool> {
        let want = replicas(d);
        let new_size = replicas(new_rs);
        if new_size > want {
            return self.scale(client, d, new_rs, want).await;
        }
        if new_size < want {
            let size = new_rs_replicas(d, all, new_size);
            if self.scale(client, d, new_rs, size).await? {
                return Ok(true);
            }
        } else {
            self.scale(client, d, new_rs, want).await?;
        }
        let old_active: Vec<Arc<Value>> =
            old.iter().filter(|rs| replicas(rs) > 0).cloned().collect();
        if sum(&old_active, replicas) == 0 {
            return Ok(false);
        }
        let all_pods = sum(all, replicas);
        let min_available = want - max_unavailable(d);
        let new_unavailable = replicas(new_rs) - status_int(new_rs, "availableReplicas");
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let mut scaled = false;
        let mut cleaned = 0;
        let mut sizes: Vec<(Arc<Value>, i64)> = old_active
            .iter()
            .map(|rs| (rs.clone(), replicas(rs)))
            .collect();
        for (rs, size) in sizes.iter_mut() {
            if cleaned >= max_scaled_down {
                break;
            }
            let unhealthy = *size - status_int(rs, "availableReplicas");
            if unhealthy <= 0 {
                continue;
            }
            let down = unhealthy.min(max_scaled_down - cleaned);
            *size -= down;
            cleaned += down;
            scaled |= self.scale(client, d, rs, *size).await?;
        }
        let available: i64 = sizes
            .iter()
            .map(|(rs, _)| status_int(rs, "availableReplicas"))
            .sum::<i64>()
            + status_int(new_rs, "availableReplicas");
        if available > min_available {
            let mut to_remove = available - min_available;
            for (rs, size) in sizes.iter_mut() {
                if to_remove <= 0 {
                    break;
                }
                if *size == 0 {
                    continue;
                }
                let down = (*size).min(to_remove);
                *size -= down;
                to_remove -= down;
                scaled |= self.scale(client, d, rs, *size).await?;
            }
        }
        Ok(scaled)
    }

    /// rolloutRecreate: old ReplicaSets to zero, wait until their pods are gone, then the new one.
    async fn recreate(
        &self,
        client: &ApiClient,
        d: &Value,
        new_rs: &Arc<Value>,
        old: &[Arc<Value>],
    ) -> Result<bool> {
        let mut scaled = false;
        for rs in old.iter().filter(|rs| replicas(rs) > 0) {
            scaled |= self.scale(client, d, rs, 0).await?;
        }
        if scaled {
            return Ok(true);
        }
        let old_uids: Vec<&Value> = old.iter().map(|rs| &rs["metadata"]["uid"]).collect();
        let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
        let old_pods_running = self.pods.list_namespace(ns).iter().any(|p| {
            podutil::controller_ref(p).is_some_and(|r| old_uids.contains(&&r["uid"]))
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        });
        if old_pods_running {
            return Ok(false);
        }
        self.scale(client, d, new_rs, replicas(d)).await
    }

    /// cleanupDeployment: old ReplicaSets beyond revisionHistoryLimit, oldest revision first,
    /// only those scaled to zero with no pods left.
    async fn cleanup(&self, client: &ApiClient, d: &Value, old: &[Arc<Value>]) {
        let Some(limit) = d["spec"]["revisionHistoryLimit"].as_i64() else {
            return;
        };
        let mut alive: Vec<&Arc<Value>> = old.iter().filter(|rs| !is_deleting(rs)).collect();
        let excess = alive.len() as i64 - limit;
        if excess <= 0 {
            return;
        }
        alive.sort_by_key(|rs| annotation_int(rs, REVISION).unwrap_or(0));
        for rs in alive.into_iter().take(excess as usize) {
            if status_int(rs, "replicas") != 0
                || replicas(rs) != 0
                || rs["metadata"]["generation"].as_i64()
                    > rs["status"]["observedGeneration"].as_i64()
            {
                continue;
            }
            let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = rs["metadata"]["name"].as_str().unwrap_or_default();
            if let Err(e) = client
                .delete(&format!("/apis/apps/v1/namespaces/{ns}/replicasets/{name}"))
                .await
            {
                logf!(
                    super::COMPONENT,
                    "{NAME}: delete old replica set {ns}/{name}: {e}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, surge: Value, unavailable: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": 1}, "spec": {"replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "progressDeadlineSeconds": 600}})
    }

    fn rs(name: &str, replicas: i64, available: i64, created: &str) -> Arc<Value> {
        Arc::new(
            json!({"metadata": {"name": name, "creationTimestamp": created, "annotations": {MAX: "4"}},
            "spec": {"replicas": replicas}, "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available}}),
        )
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailability_down() {
        let d = deployment(3, json!("25%"), json!("25%"));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
        let d = deployment(10, json!(0), json!("0%"));
        assert_eq!(max_unavailable(&d), 1);
        let d = deployment(2, json!(1), json!(5));
        assert_eq!(max_unavailable(&d), 2);
    }

    #[test]
    fn a_new_replica_set_grows_within_max_surge() {
        let d = deployment(3, json!("25%"), json!("25%"));
        let old = rs("web-old", 3, 3, "2024-01-01T00:00:00Z");
        assert_eq!(new_rs_replicas(&d, std::slice::from_ref(&old), 0), 1);
        let new = rs("web-new", 1, 0, "2024-01-02T00:00:00Z");
        assert_eq!(new_rs_replicas(&d, &[old, new], 1), 1);
        assert_eq!(new_rs_replicas(&d, &[], 0), 3);
    }

    #[test]
    fn scaling_splits_in_proportion_to_each_replica_set() {
        let d = deployment(6, json!(1), json!(0));
        let active = vec![
            rs("web-old", 2, 2, "2024-01-01T00:00:00Z"),
            rs("web-new", 2, 0, "2024-01-02T00:00:00Z"),
        ];
        let sizes = proportions(&d, &active);
        assert_eq!(sizes.iter().map(|(_, s)| s).sum::<i64>(), 7, "{sizes:?}");
        assert_eq!(sizes[0].0, "web-new", "newer first when growing");
    }

    #[test]
    fn status_sums_replica_sets_and_reports_availability() {
        let d = deployment(3, json!("25%"), json!("25%"));
        let new = rs("web-new", 3, 3, "2024-01-02T00:00:00Z");
        let (status, _) = rollout_status(&d, std::slice::from_ref(&new), Some(&new));
        assert_eq!(status["replicas"], 3);
        assert_eq!(status["updatedReplicas"], 3);
        assert_eq!(status["availableReplicas"], 3);
        assert!(
            status["unavailableReplicas"].is_null(),
            "zero counts are omitted"
        );
        let available = condition(&status, "Available").unwrap();
        assert_eq!(available["reason"], "MinimumReplicasAvailable");
        let progressing = condition(&status, "Progressing").unwrap();
        assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
        assert_eq!(
            progressing["message"],
            "ReplicaSet \"web-new\" has successfully progressed."
        );
        let starting = rs("web-new", 3, 0, "2024-01-02T00:00:00Z");
        let (status, _) = rollout_status(&d, std::slice::from_ref(&starting), Some(&starting));
        assert_eq!(condition(&status, "Available").unwrap()["status"], "False");
        assert_eq!(status["unavailableReplicas"], 3);
    }
}
