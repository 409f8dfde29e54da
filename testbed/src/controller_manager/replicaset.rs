//! The ReplicaSet controller: keeps `spec.replicas` active pods per ReplicaSet (claiming pods by
//! selector and controller reference, creating from the template in slow-start batches, deleting
//! the least valuable pods first) and reports replicas, fullyLabeledReplicas, readyReplicas,
//! availableReplicas and observedGeneration in its status.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::informer::{Informer, Informers, key_of};
use super::podutil::{self, claim, is_active, is_available, is_deleting, is_ready};
use super::runner::{Expectations, Reconciler};
use crate::common::client::ApiClient;
use crate::common::events::{self, EventType};
use crate::common::labels;
use crate::logf;

const NAME: &str = "replicaset-controller";

pub struct ReplicaSetController {
    replica_sets: Arc<Informer>,
    pods: Arc<Informer>,
    expectations: Expectations,
}

impl ReplicaSetController {
    pub fn new(informers: &Informers) -> ReplicaSetController {
        ReplicaSetController {
            replica_sets: informers.replica_sets(),
            pods: informers.pods(),
            expectations: Expectations::default(),
        }
    }
}

impl Reconciler for ReplicaSetController {
    fn name(&self) -> &'static str {
        NAME
    }

    fn informers(&self) -> Vec<Arc<Informer>> {
        vec![self.replica_sets.clone(), self.pods.clone()]
    }

    async fn reconcile(&mut self, client: &ApiClient) -> Result<Option<Duration>> {
        let sets = self.replica_sets.list();
        let uids: Vec<&str> = sets
            .iter()
            .filter_map(|r| r["metadata"]["uid"].as_str())
            .collect();
        self.expectations.retain(&uids);
        let mut requeue: Option<Duration> = None;
        for rs in &sets {
            match self.sync(client, rs).await {
                Ok(Some(d)) => requeue = Some(requeue.map_or(d, |r| r.min(d))),
                Ok(None) => {}
                Err(e) => logf!(super::COMPONENT, "{NAME}: sync {}: {e:#}", key_of(rs)),
            }
        }
        Ok(requeue)
    }
}

/// The order in which pods go when a ReplicaSet shrinks (controller.ActivePods, simplified):
/// unscheduled, then pending/unknown before running, not ready before ready, ready for a shorter
/// time first, more restarts first, newer first.
type Rank = (
    bool,
    u8,
    bool,
    Reverse<String>,
    Reverse<i64>,
    Reverse<String>,
);

fn deletion_rank(pod: &Value) -> Rank {
    let assigned = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let phase = match pod["status"]["phase"].as_str() {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let ready = is_ready(pod);
    let ready_since = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or_default()
        .to_string();
    let restarts = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["restartCount"].as_i64())
        .max()
        .unwrap_or(0);
    let created = pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (
        assigned,
        phase,
        ready,
        Reverse(ready_since),
        Reverse(restarts),
        Reverse(created),
    )
}

/// A ReplicaSet's status from its active pods (calculateStatus).
pub fn status_of(rs: &Value, pods: &[Arc<Value>], failure: Option<&str>) -> Value {
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let template_labels = &rs["spec"]["template"]["metadata"]["labels"];
    let fully_labeled = pods
        .iter()
        .filter(|p| labels::map_matches(template_labels, &p["metadata"]["labels"]))
        .count();
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let available = pods.iter().filter(|p| is_available(p, min_ready)).count();
    let mut status = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"]["generation"],
    });
    let mut conditions: Vec<Value> = rs["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "ReplicaFailure")
        .collect();
    if let Some(message) = failure {
        let old = rs["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "ReplicaFailure" && c["message"] == message)
            .cloned();
        conditions.push(old.unwrap_or_else(|| json!({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": crate::common::time::now(), "reason": "FailedCreate", "message": message})));
    }
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    omit_zeros(&mut status, &["replicas"]);
    status
}

/// Drops zero counts that the API's `omitempty` fields leave out (all but `required`).
pub fn omit_zeros(status: &mut Value, required: &[&str]) {
    if let Some(obj) = status.as_object_mut() {
        obj.retain(|k, v| required.contains(&k.as_str()) || v.as_i64() != Some(0));
    }
}

/// Writes a workload's status through its status subresource (PUT, as the controllers' roles
/// allow only `update` there) when it changed; a stale cache is retried once with a fresh read.
/// The stored object when it was written.
pub async fn update_status(
    client: &ApiClient,
    path: &str,
    obj: &Value,
    status: Value,
) -> Result<Option<Value>> {
    if obj["status"] == status {
        return Ok(None);
    }
    let mut updated = obj.clone();
    updated["status"] = status.clone();
    match client.replace(&format!("{path}/status"), &updated).await {
        Ok(stored) => Ok(Some(stored)),
        Err(e) if e.is_conflict() => {
            let mut fresh = client.get(path).await?;
            if fresh["metadata"]["uid"] != obj["metadata"]["uid"] {
                return Ok(None);
            }
            // The status was computed from an older copy: never move observedGeneration back
            // past what a newer sync already recorded (a waiter would see a finished rollout undone).
            let mut status = status;
            let recorded = fresh["status"]["observedGeneration"].as_i64();
            if recorded > status["observedGeneration"].as_i64() {
                status["observedGeneration"] = fresh["status"]["observedGeneration"].clone();
            }
            fresh["status"] = status;
            Ok(Some(
                client.replace(&format!("{path}/status"), &fresh).await?,
            ))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl ReplicaSetController {
    async fn sync(&mut self, client: &ApiClient, rs: &Value) -> Result<Option<Duration>> {
        let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = rs["metadata"]["name"].as_str().unwrap_or_default();
        let uid = rs["metadata"]["uid"].as_str().unwrap_or_default();
        let pods_path = format!("/api/v1/namespaces/{ns}/pods");
        let active: Vec<Arc<Value>> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        let owner_ref = podutil::owner_reference(rs, "apps/v1", "ReplicaSet");
        let pods = claim(
            client,
            rs,
            &owner_ref,
            &rs["spec"]["selector"],
            &active,
            &pods_path,
        )
        .await;
        let mut failure = None;
        if self.expectations.satisfied(uid, &self.pods) && !is_deleting(rs) {
            failure = self.manage(client, rs, &pods, &owner_ref).await;
        }
        let path = format!("/apis/apps/v1/namespaces/{ns}/replicasets/{name}");
        update_status(client, &path, rs, status_of(rs, &pods, failure.as_deref())).await?;
        let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let refs: Vec<&Value> = pods.iter().map(|p| p.as_ref()).collect();
        Ok(podutil::next_availability(&refs, min_ready))
    }

    /// Creates or deletes pods towards spec.replicas; the error message of a failed create.
    async fn manage(
        &mut self,
        client: &ApiClient,
        rs: &Value,
        pods: &[Arc<Value>],
        owner_ref: &Value,
    ) -> Option<String> {
        let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = rs["metadata"]["name"].as_str().unwrap_or_default();
        let uid = rs["metadata"]["uid"].as_str().unwrap_or_default();
        let wanted = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        if pods.len() < wanted {
            let mut missing = wanted - pods.len();
            let mut batch = 1;
            while missing > 0 {
                let this_batch = batch.min(missing);
                for _ in 0..this_batch {
                    let pod = podutil::pod_from_template(
                        &rs["spec"]["template"],
                        owner_ref.clone(),
                        name,
                    );
                    match client
                        .create(&format!("/api/v1/namespaces/{ns}/pods"), &pod)
                        .await
                    {
                        Ok(created) => {
                            self.expectations.expect_creation(uid, key_of(&created));
                            let pod_name = created["metadata"]["name"].as_str().unwrap_or_default();
                            events::record(
                                client,
                                NAME,
                                rs,
                                EventType::Normal,
                                "SuccessfulCreate",
                                &format!("Created pod: {pod_name}"),
                            )
                            .await;
                        }
                        Err(e) => {
                            let message = e.message.clone();
                            events::record(
                                client,
                                NAME,
                                rs,
                                EventType::Warning,
                                "FailedCreate",
                                &format!("Error creating: {message}"),
                            )
                            .await;
                            return Some(message);
                        }
                    }
                }
                missing -= this_batch;
                batch *= 2;
            }
        } else if pods.len() > wanted {
            let mut ranked: Vec<&Arc<Value>> = pods.iter().collect();
            ranked.sort_by_key(|p| deletion_rank(p));
            for pod in ranked.into_iter().take(pods.len() - wanted) {
                let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
                match client
                    .delete(&format!("/api/v1/namespaces/{ns}/pods/{pod_name}"))
                    .await
                {
                    Ok(_) => {
                        self.expectations.expect_deletion(
                            uid,
                            key_of(pod),
                            pod["metadata"]["uid"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        );
                        events::record(
                            client,
                            NAME,
                            rs,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {pod_name}"),
                        )
                        .await;
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        logf!(super::COMPONENT, "{NAME}: delete pod {ns}/{pod_name}: {e}");
                        return None;
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: &str) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": created, "labels": {"app": "web"}},
               "spec": {"nodeName": node},
               "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn unscheduled_and_unready_pods_go_first_then_newer_ones() {
        let mut pods = [
            pod("running-old", "n1", "Running", true, "2024-01-01T00:00:00Z"),
            pod("running-new", "n1", "Running", true, "2024-01-02T00:00:00Z"),
            pod("unready", "n1", "Running", false, "2024-01-01T00:00:00Z"),
            pod("unscheduled", "", "Pending", false, "2024-01-01T00:00:00Z"),
            pod("pending", "n2", "Pending", false, "2024-01-01T00:00:00Z"),
        ];
        pods.sort_by_key(deletion_rank);
        let order: Vec<&str> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            order,
            [
                "unscheduled",
                "pending",
                "unready",
                "running-new",
                "running-old"
            ]
        );
    }

    #[test]
    fn status_counts_ready_available_and_fully_labeled_pods() {
        let rs = json!({"metadata": {"generation": 3}, "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web", "tier": "f"}}}}});
        let mut a = pod("a", "n1", "Running", true, "2024-01-01T00:00:00Z");
        a["metadata"]["labels"]["tier"] = json!("f");
        let pods = vec![
            Arc::new(a),
            Arc::new(pod("b", "n1", "Running", false, "2024-01-01T00:00:00Z")),
        ];
        let status = status_of(&rs, &pods, None);
        assert_eq!(
            status,
            json!({"replicas": 2, "fullyLabeledReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 3})
        );
        let empty = status_of(&rs, &[], None);
        assert_eq!(empty, json!({"replicas": 0, "observedGeneration": 3}));
        let failed = status_of(&rs, &pods, Some("quota exceeded"));
        assert_eq!(failed["conditions"][0]["reason"], "FailedCreate");
    }
}
