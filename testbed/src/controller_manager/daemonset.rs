//! The DaemonSet controller: one pod per node that should run it (NodeShouldRunDaemonPod: the
//! template's nodeName, nodeSelector, required node affinity and the NoSchedule/NoExecute taints
//! it tolerates, with the tolerations the controller adds to every daemon pod), created with the
//! node pinned through `metadata.name` matchFields for the scheduler to bind, the revision hash
//! and template generation labels, a ControllerRevision per template; failed pods replaced,
//! pods on nodes that no longer fit removed, RollingUpdate within maxUnavailable/maxSurge (or
//! OnDelete); status desired/current/misscheduled/ready/available/updated/unavailable counts and
//! observedGeneration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::informer::{Informer, Informers, key_of};
use super::podutil::{self, claim, is_available, is_deleting, is_ready, scaled_value};
use super::replicaset::{omit_zeros, update_status};
use super::runner::{Expectations, Reconciler};
use crate::common::client::ApiClient;
use crate::common::events::{self, EventType};
use crate::common::scheduling;
use crate::logf;

const NAME: &str = "daemonset-controller";
const HASH_LABEL: &str = "controller-revision-hash";
const GENERATION_LABEL: &str = "pod-template-generation";
const GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// The tolerations AddOrUpdateDaemonPodTolerations gives every daemon pod.
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

pub struct DaemonSetController {
    daemon_sets: Arc<Informer>,
    nodes: Arc<Informer>,
    pods: Arc<Informer>,
    revisions: Arc<Informer>,
    expectations: Expectations,
}

impl DaemonSetController {
    pub fn new(informers: &Informers) -> DaemonSetController {
        DaemonSetController {
            daemon_sets: informers.daemon_sets(),
            nodes: informers.nodes(),
            pods: informers.pods(),
            revisions: informers.controller_revisions(),
            expectations: Expectations::default(),
        }
    }
}

impl Reconciler for DaemonSetController {
    fn name(&self) -> &'static str {
        NAME
    }

    fn informers(&self) -> Vec<Arc<Informer>> {
        vec![
            self.daemon_sets.clone(),
            self.nodes.clone(),
            self.pods.clone(),
            self.revisions.clone(),
        ]
    }

    async fn reconcile(&mut self, client: &ApiClient) -> Result<Option<Duration>> {
        let sets = self.daemon_sets.list();
        let uids: Vec<&str> = sets
            .iter()
            .filter_map(|d| d["metadata"]["uid"].as_str())
            .collect();
        self.expectations.retain(&uids);
        let nodes = self.nodes.list();
        let mut requeue: Option<Duration> = None;
        for ds in &sets {
            match self.sync(client, ds, &nodes).await {
                Ok(Some(d)) => requeue = Some(requeue.map_or(d, |r| r.min(d))),
                Ok(None) => {}
                Err(e) => logf!(super::COMPONENT, "{NAME}: sync {}: {e:#}", key_of(ds)),
            }
        }
        Ok(requeue)
    }
}

/// AddOrUpdateTolerationInPodSpec for each daemon toleration (network-unavailable too for
/// host-network pods): an identical toleration is replaced, otherwise it is appended.
pub fn add_daemon_tolerations(spec: &mut Value) {
    let mut tolerations: Vec<Value> = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let mut wanted: Vec<(&str, &str)> = DAEMON_TOLERATIONS.to_vec();
    if spec["hostNetwork"].as_bool() == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    for (key, effect) in wanted {
        let toleration = json!({"key": key, "operator": "Exists", "effect": effect});
        let same = |t: &Value| {
            t["key"] == key
                && t["effect"] == effect
                && t["operator"] == "Exists"
                && t["value"].as_str().unwrap_or_default().is_empty()
        };
        match tolerations.iter_mut().find(|t| same(t)) {
            Some(t) => *t = toleration,
            None => tolerations.push(toleration),
        }
    }
    spec["tolerations"] = json!(tolerations);
}

/// ReplaceDaemonSetPodNodeNameNodeAffinity: the pod's required node affinity becomes the one
/// term `metadata.name In [node]` (the controller already checked the DaemonSet's own terms).
pub fn pin_to_node(spec: &mut Value, node: &str) {
    let term =
        json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]});
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
        json!({"nodeSelectorTerms": [term]});
}

/// NodeShouldRunDaemonPod: (should run, should continue running) for a node.
pub fn node_should_run(ds: &Value, node: &Value) -> (bool, bool) {
    let mut spec = ds["spec"]["template"]["spec"].clone();
    add_daemon_tolerations(&mut spec);
    let node_name = node["metadata"]["name"].as_str().unwrap_or_default();
    if spec["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty() && n != node_name)
    {
        return (false, false);
    }
    if !scheduling::required_affinity_matches(&spec, node) {
        return (false, false);
    }
    let taints = &node["spec"]["taints"];
    if scheduling::untolerated_taint(taints, &spec["tolerations"], &["NoSchedule", "NoExecute"])
        .is_some()
    {
        let evicting =
            scheduling::untolerated_taint(taints, &spec["tolerations"], &["NoExecute"]).is_some();
        return (false, !evicting);
    }
    (true, true)
}

/// The node a daemon pod is for: its nodeName, or the node its matchFields pin it to.
fn target_node(pod: &Value) -> Option<String> {
    if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .as_array()?
        .iter()
        .flat_map(|t| t["matchFields"].as_array().cloned().unwrap_or_default())
        .find(|f| f["key"] == "metadata.name" && f["operator"] == "In")
        .and_then(|f| f["values"].as_array().and_then(|v| (v.len() == 1).then(|| v[0].clone())))
        .and_then(|v| v.as_str().map(str::to_string))
}

fn template_generation(ds: &Value) -> Option<String> {
    ds["metadata"]["annotations"][GENERATION_ANNOTATION]
        .as_str()
        .map(str::to_string)
}

/// IsPodUpdated: the pod carries the current revision hash or template generation.
fn is_updated(pod: &Value, hash: &str, generation: Option<&str>) -> bool {
    let labels = &pod["metadata"]["labels"];
    labels[HASH_LABEL].as_str() == Some(hash)
        || generation.is_some_and(|g| labels[GENERATION_LABEL].as_str() == Some(g))
}

/// Oldest first, running before pending before unknown (podByCreationTimestampAndPhase).
fn by_age(pods: &mut [Arc<Value>]) {
    pods.sort_by_key(|p| {
        (
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            match p["status"]["phase"].as_str() {
                Some("Running") => 0,
                Some("Pending") => 1,
                _ => 2,
            },
        )
    });
}

/// A node's daemon pod of the current revision and one of an older revision.
type NewAndOld = (Option<Arc<Value>>, Option<Arc<Value>>);

/// findUpdatedPodsOnNode: the node's (new pod, old pod), or None with more than one of either.
fn updated_and_old(pods: &[Arc<Value>], hash: &str, generation: Option<&str>) -> Option<NewAndOld> {
    let (mut new, mut old) = (None, None);
    for pod in pods.iter().filter(|p| !is_deleting(p)) {
        let slot = if is_updated(pod, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod.clone());
    }
    Some((new, old))
}

/// The status the DaemonSet reports (updateDaemonSetStatus).
fn status_of(
    ds: &Value,
    nodes: &[Arc<Value>],
    by_node: &BTreeMap<String, Vec<Arc<Value>>>,
    hash: &str,
    observed: bool,
) -> Value {
    let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let generation = template_generation(ds);
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
        (0, 0, 0, 0, 0, 0);
    for node in nodes {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let (should_run, _) = node_should_run(ds, node);
        let mut pods = by_node.get(name).cloned().unwrap_or_default();
        if should_run {
            desired += 1;
            if pods.is_empty() {
                continue;
            }
            current += 1;
            by_age(&mut pods);
            let pod = &pods[0];
            if is_ready(pod) {
                ready += 1;
                if is_available(pod, min_ready) {
                    available += 1;
                }
            }
            if is_updated(pod, hash, generation.as_deref()) {
                updated += 1;
            }
        } else if !pods.is_empty() {
            misscheduled += 1;
        }
    }
    let observed_generation = if observed {
        ds["metadata"]["generation"].clone()
    } else {
        ds["status"]["observedGeneration"].clone()
    };
    let mut status = json!({
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
    });
    if !observed_generation.is_null() {
        status["observedGeneration"] = observed_generation;
    }
    if !ds["status"]["collisionCount"].is_null() {
        status["collisionCount"] = ds["status"]["collisionCount"].clone();
    }
    omit_zeros(
        &mut status,
        &[
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
        ],
    );
    status
}

/// rollingUpdate's plan: (old pods to delete, nodes to create a new pod on). Without surge, old
/// pods are deleted within maxUnavailable (unavailable old pods at once) and manage recreates
/// them; with surge, new pods are created next to old ones within maxSurge and an old pod goes
/// once the new one is available.
fn rolling_plan(
    ds: &Value,
    nodes: &[Arc<Value>],
    by_node: &BTreeMap<String, Vec<Arc<Value>>>,
    hash: &str,
) -> (Vec<Arc<Value>>, Vec<String>) {
    let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let generation = template_generation(ds);
    let mut per_node = by_node.clone();
    let mut desired = 0;
    for node in nodes {
        if node_should_run(ds, node).0 {
            desired += 1;
            per_node
                .entry(
                    node["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
                .or_default();
        }
    }
    let rolling = &ds["spec"]["updateStrategy"]["rollingUpdate"];
    let mut max_unavailable = scaled_value(&rolling["maxUnavailable"], desired, true);
    let max_surge = scaled_value(&rolling["maxSurge"], desired, true);
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for pods in per_node.values() {
            let Some((new, old)) = updated_and_old(pods, hash, generation.as_deref()) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !is_available(&new, min_ready) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !is_available(&old, min_ready) {
                        replace.push(old);
                        unavailable += 1;
                    } else if unavailable < max_unavailable {
                        candidates.push(old);
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i64) as usize;
        replace.extend(candidates.into_iter().take(room));
        return (replace, Vec::new());
    }
    let mut delete = Vec::new();
    let mut should_not_run = Vec::new();
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    let (mut surging, mut available) = (0, 0);
    for (node_name, pods) in &per_node {
        let Some((new, old)) = updated_and_old(pods, hash, generation.as_deref()) else {
            surging += 1;
            continue;
        };
        if let Some(p) = old.as_ref().or(new.as_ref())
            && is_available(p, min_ready)
        {
            available += 1;
        }
        let node = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == node_name.as_str());
        let should_run = node.is_some_and(|n| node_should_run(ds, n).0);
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !is_available(&old, min_ready) {
                    if should_run {
                        allowed.push(node_name.clone());
                    } else {
                        delete.push(old);
                    }
                } else if !should_run {
                    should_not_run.push(old);
                } else if surging < max_surge {
                    candidates.push(node_name.clone());
                }
            }
            (Some(new), Some(old)) => {
                if is_available(&new, min_ready) {
                    delete.push(old);
                } else {
                    surging += 1;
                }
            }
        }
    }
    let deletable = (available - desired).clamp(0, should_not_run.len() as i64) as usize;
    delete.extend(should_not_run.into_iter().take(deletable));
    let room = (max_surge - surging).clamp(0, candidates.len() as i64) as usize;
    allowed.extend(candidates.into_iter().take(room));
    (delete, allowed)
}

impl DaemonSetController {
    async fn sync(
        &mut self,
        client: &ApiClient,
        ds: &Value,
        nodes: &[Arc<Value>],
    ) -> Result<Option<Duration>> {
        if is_deleting(ds) {
            return Ok(None);
        }
        let ns = ds["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = ds["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let uid = ds["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ds_path = format!("/apis/apps/v1/namespaces/{ns}/daemonsets/{name}");
        let Some(hash) = self.current_revision(client, ds, &ds_path).await? else {
            return Ok(Some(Duration::from_secs(1)));
        };
        let owner_ref = podutil::owner_reference(ds, "apps/v1", "DaemonSet");
        let candidates: Vec<Arc<Value>> = self.pods.list_namespace(&ns);
        let pods = claim(
            client,
            ds,
            &owner_ref,
            &ds["spec"]["selector"],
            &candidates,
            &format!("/api/v1/namespaces/{ns}/pods"),
        )
        .await;
        let mut by_node: BTreeMap<String, Vec<Arc<Value>>> = BTreeMap::new();
        for pod in &pods {
            if let Some(node) = target_node(pod) {
                by_node.entry(node).or_default().push(pod.clone());
            }
        }
        let satisfied = self.expectations.satisfied(&uid, &self.pods);
        if satisfied {
            self.manage(client, ds, nodes, &by_node, &hash, &owner_ref)
                .await?;
            if self.expectations.satisfied(&uid, &self.pods)
                && ds["spec"]["updateStrategy"]["type"]
                    .as_str()
                    .unwrap_or("RollingUpdate")
                    == "RollingUpdate"
            {
                self.rolling_update(client, ds, nodes, &by_node, &hash, &owner_ref)
                    .await?;
            }
            self.cleanup_history(client, ds, &pods, &hash).await;
        }
        update_status(
            client,
            &ds_path,
            ds,
            status_of(ds, nodes, &by_node, &hash, satisfied),
        )
        .await?;
        let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let refs: Vec<&Value> = pods.iter().map(|p| p.as_ref()).collect();
        Ok(podutil::next_availability(&refs, min_ready))
    }

    /// The hash of the current template's ControllerRevision, creating it (or raising its
    /// revision after a rollback) as constructHistory does; None after a hash collision.
    async fn current_revision(
        &self,
        client: &ApiClient,
        ds: &Value,
        ds_path: &str,
    ) -> Result<Option<String>> {
        let ns = ds["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = ds["metadata"]["name"].as_str().unwrap_or_default();
        let uid = &ds["metadata"]["uid"];
        let collision = ds["status"]["collisionCount"].as_i64();
        let hash = podutil::template_hash(&ds["spec"]["template"], collision);
        let mut template = ds["spec"]["template"].clone();
        template["$patch"] = json!("replace");
        let data = json!({"spec": {"template": template}});
        let history: Vec<Arc<Value>> = self
            .revisions
            .list_namespace(ns)
            .into_iter()
            .filter(|r| podutil::controller_ref(r).is_some_and(|o| o["uid"] == *uid))
            .collect();
        let newest = history
            .iter()
            .filter_map(|r| r["revision"].as_i64())
            .max()
            .unwrap_or(0);
        if let Some(current) = history
            .iter()
            .find(|r| r["metadata"]["labels"][HASH_LABEL].as_str() == Some(hash.as_str()))
        {
            if current["revision"].as_i64().unwrap_or(0) < newest {
                let mut updated = (**current).clone();
                updated["revision"] = json!(newest + 1);
                let cr_name = current["metadata"]["name"].as_str().unwrap_or_default();
                client
                    .replace(
                        &format!("/apis/apps/v1/namespaces/{ns}/controllerrevisions/{cr_name}"),
                        &updated,
                    )
                    .await?;
            }
            return Ok(Some(hash));
        }
        let mut labels = ds["spec"]["template"]["metadata"]["labels"].clone();
        labels[HASH_LABEL] = json!(hash);
        let mut metadata = json!({"name": format!("{name}-{hash}"), "namespace": ns, "labels": labels, "ownerReferences": [podutil::owner_reference(ds, "apps/v1", "DaemonSet")]});
        if ds["metadata"]["annotations"].is_object() {
            metadata["annotations"] = ds["metadata"]["annotations"].clone();
        }
        let revision = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": metadata, "data": data, "revision": newest + 1});
        match client
            .create(
                &format!("/apis/apps/v1/namespaces/{ns}/controllerrevisions"),
                &revision,
            )
            .await
        {
            Ok(_) => Ok(Some(hash)),
            Err(e) if e.is_conflict() => {
                let existing = client
                    .get(&format!(
                        "/apis/apps/v1/namespaces/{ns}/controllerrevisions/{name}-{hash}"
                    ))
                    .await?;
                if existing["data"] == revision["data"]
                    && podutil::controller_ref(&existing).is_some_and(|o| o["uid"] == *uid)
                {
                    return Ok(Some(hash));
                }
                let mut status = ds["status"].clone();
                status["collisionCount"] = json!(collision.unwrap_or(0) + 1);
                update_status(client, ds_path, ds, status).await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// manage: a pod for every node that should run one and has none, failed or surplus pods
    /// deleted, pods on nodes that no longer fit (or are gone, while unscheduled) deleted.
    async fn manage(
        &mut self,
        client: &ApiClient,
        ds: &Value,
        nodes: &[Arc<Value>],
        by_node: &BTreeMap<String, Vec<Arc<Value>>>,
        hash: &str,
        owner_ref: &Value,
    ) -> Result<()> {
        let surge = self.allows_surge(ds, nodes);
        let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let mut to_create: Vec<String> = Vec::new();
        let mut to_delete: Vec<Arc<Value>> = Vec::new();
        for node in nodes {
            let node_name = node["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (should_run, should_continue) = node_should_run(ds, node);
            let pods = by_node.get(&node_name).cloned().unwrap_or_default();
            if should_run && pods.is_empty() {
                to_create.push(node_name.clone());
            } else if should_continue {
                let mut running = Vec::new();
                for pod in pods.iter().filter(|p| !is_deleting(p)) {
                    match pod["status"]["phase"].as_str() {
                        Some(phase @ ("Failed" | "Succeeded")) => {
                            let reason = if phase == "Failed" {
                                "FailedDaemonPod"
                            } else {
                                "SucceededDaemonPod"
                            };
                            let message = format!(
                                "Found {} daemon pod {}/{} on node {node_name}, will try to kill it",
                                phase.to_lowercase(),
                                pod["metadata"]["namespace"].as_str().unwrap_or_default(),
                                pod["metadata"]["name"].as_str().unwrap_or_default()
                            );
                            events::record(client, NAME, ds, EventType::Warning, reason, &message)
                                .await;
                            to_delete.push(pod.clone());
                        }
                        _ => running.push(pod.clone()),
                    }
                }
                by_age(&mut running);
                if !surge {
                    to_delete.extend(running.iter().skip(1).cloned());
                } else if running.is_empty() {
                    if should_run {
                        to_create.push(node_name.clone());
                    }
                } else if running.len() > 1 {
                    let generation = template_generation(ds);
                    let (mut oldest_new, mut oldest_old) = (None, None);
                    for pod in &running {
                        let slot = if is_updated(pod, hash, generation.as_deref()) {
                            &mut oldest_new
                        } else {
                            &mut oldest_old
                        };
                        if slot.is_none() {
                            *slot = Some(pod.clone());
                        } else {
                            to_delete.push(pod.clone());
                        }
                    }
                    if let (Some(new), Some(old)) = (oldest_new, oldest_old)
                        && (!is_ready(&old) || is_available(&new, min_ready))
                    {
                        to_delete.push(old);
                    }
                }
            } else {
                to_delete.extend(pods.iter().filter(|p| !is_deleting(p)).cloned());
            }
        }
        let known: Vec<&str> = nodes
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str())
            .collect();
        for (node, pods) in by_node {
            if !known.contains(&node.as_str()) {
                to_delete.extend(
                    pods.iter()
                        .filter(|p| p["spec"]["nodeName"].as_str().is_none_or(str::is_empty))
                        .cloned(),
                );
            }
        }
        self.sync_nodes(client, ds, &to_delete, &to_create, hash, owner_ref)
            .await
    }

    /// maxSurge > 0 on a RollingUpdate DaemonSet (util.AllowsSurge).
    fn allows_surge(&self, ds: &Value, nodes: &[Arc<Value>]) -> bool {
        let strategy = &ds["spec"]["updateStrategy"];
        if strategy["type"].as_str().unwrap_or("RollingUpdate") != "RollingUpdate" {
            return false;
        }
        let desired = nodes.iter().filter(|n| node_should_run(ds, n).0).count() as i64;
        scaled_value(&strategy["rollingUpdate"]["maxSurge"], desired.max(1), true) > 0
    }

    /// syncNodes: deletes, then creates one pod per node (slow-start batches), with expectations.
    async fn sync_nodes(
        &mut self,
        client: &ApiClient,
        ds: &Value,
        delete: &[Arc<Value>],
        create: &[String],
        hash: &str,
        owner_ref: &Value,
    ) -> Result<()> {
        let ns = ds["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = ds["metadata"]["name"].as_str().unwrap_or_default();
        let uid = ds["metadata"]["uid"].as_str().unwrap_or_default();
        let mut template = ds["spec"]["template"].clone();
        add_daemon_tolerations(&mut template["spec"]);
        if let Some(generation) = template_generation(ds) {
            template["metadata"]["labels"][GENERATION_LABEL] = json!(generation);
        }
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut batch = 1;
        let mut remaining = create;
        while !remaining.is_empty() {
            let (now, later) = remaining.split_at(batch.min(remaining.len()));
            for node in now {
                let mut pod_template = template.clone();
                pin_to_node(&mut pod_template["spec"], node);
                let pod = podutil::pod_from_template(&pod_template, owner_ref.clone(), name);
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
                            ds,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {pod_name}"),
                        )
                        .await;
                    }
                    Err(e) => {
                        events::record(
                            client,
                            NAME,
                            ds,
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating: {}", e.message),
                        )
                        .await;
                        return Err(e.into());
                    }
                }
            }
            remaining = later;
            batch *= 2;
        }
        for pod in delete {
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
                        ds,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {pod_name}"),
                    )
                    .await;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn rolling_update(
        &mut self,
        client: &ApiClient,
        ds: &Value,
        nodes: &[Arc<Value>],
        by_node: &BTreeMap<String, Vec<Arc<Value>>>,
        hash: &str,
        owner_ref: &Value,
    ) -> Result<()> {
        let (delete, create) = rolling_plan(ds, nodes, by_node, hash);
        self.sync_nodes(client, ds, &delete, &create, hash, owner_ref)
            .await
    }

    /// cleanupHistory: ControllerRevisions beyond revisionHistoryLimit that no pod uses, oldest first.
    async fn cleanup_history(
        &self,
        client: &ApiClient,
        ds: &Value,
        pods: &[Arc<Value>],
        hash: &str,
    ) {
        let ns = ds["metadata"]["namespace"].as_str().unwrap_or_default();
        let limit = ds["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10);
        let live: Vec<&str> = pods
            .iter()
            .filter_map(|p| p["metadata"]["labels"][HASH_LABEL].as_str())
            .collect();
        let mut old: Vec<Arc<Value>> = self
            .revisions
            .list_namespace(ns)
            .into_iter()
            .filter(|r| {
                podutil::controller_ref(r).is_some_and(|o| o["uid"] == ds["metadata"]["uid"])
            })
            .filter(|r| {
                let h = r["metadata"]["labels"][HASH_LABEL]
                    .as_str()
                    .unwrap_or_default();
                h != hash && !live.contains(&h)
            })
            .collect();
        let excess = old.len() as i64 - limit;
        if excess <= 0 {
            return;
        }
        old.sort_by_key(|r| r["revision"].as_i64().unwrap_or(0));
        for r in old.into_iter().take(excess as usize) {
            let name = r["metadata"]["name"].as_str().unwrap_or_default();
            if let Err(e) = client
                .delete(&format!(
                    "/apis/apps/v1/namespaces/{ns}/controllerrevisions/{name}"
                ))
                .await
            {
                logf!(
                    super::COMPONENT,
                    "{NAME}: delete controller revision {ns}/{name}: {e}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(tolerations: Value, selector: Value) -> Value {
        json!({"metadata": {"name": "agent", "generation": 2, "annotations": {GENERATION_ANNOTATION: "1"}},
               "spec": {"template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"tolerations": tolerations, "nodeSelector": selector, "containers": [{"name": "a", "image": "i"}]}}}})
    }

    fn node(name: &str, taints: Value, labels: Value) -> Arc<Value> {
        Arc::new(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
    }

    fn cp_taint() -> Value {
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    }

    #[test]
    fn daemon_pods_tolerate_node_conditions_but_not_the_control_plane() {
        let plain = ds(Value::Null, Value::Null);
        assert_eq!(
            node_should_run(&plain, &node("cp", cp_taint(), json!({}))),
            (false, true)
        );
        assert_eq!(
            node_should_run(&plain, &node("w", Value::Null, json!({}))),
            (true, true)
        );
        let not_ready = json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]);
        assert_eq!(
            node_should_run(&plain, &node("w", not_ready, json!({}))),
            (true, true)
        );
        let evicting = json!([{"key": "maintenance", "effect": "NoExecute"}]);
        assert_eq!(
            node_should_run(&plain, &node("w", evicting, json!({}))),
            (false, false)
        );
        let tolerant = ds(
            json!([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]),
            Value::Null,
        );
        assert_eq!(
            node_should_run(&tolerant, &node("cp", cp_taint(), json!({}))),
            (true, true)
        );
        let picky = ds(Value::Null, json!({"role": "edge"}));
        assert_eq!(
            node_should_run(&picky, &node("w", Value::Null, json!({}))),
            (false, false)
        );
        assert_eq!(
            node_should_run(&picky, &node("w", Value::Null, json!({"role": "edge"}))),
            (true, true)
        );
    }

    #[test]
    fn daemon_pods_get_the_default_tolerations_once_and_a_pinned_node() {
        let mut spec = json!({"hostNetwork": true, "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]});
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        let tolerations = spec["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 7);
        assert!(tolerations[0]["tolerationSeconds"].is_null());
        assert!(
            tolerations
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/network-unavailable")
        );
        pin_to_node(&mut spec, "node2");
        let pod = json!({"spec": spec});
        assert_eq!(target_node(&pod).as_deref(), Some("node2"));
    }

    fn daemon_pod(name: &str, hash: &str, available: bool) -> Arc<Value> {
        Arc::new(
            json!({"metadata": {"name": name, "creationTimestamp": "2024-01-01T00:00:00Z", "labels": {HASH_LABEL: hash}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if available {"True"} else {"False"}}]}}),
        )
    }

    fn workers(n: usize) -> Vec<Arc<Value>> {
        (1..=n)
            .map(|i| node(&format!("w{i}"), Value::Null, json!({})))
            .collect()
    }

    fn names(pods: &[Arc<Value>]) -> Vec<String> {
        pods.iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn rolling_updates_replace_within_max_unavailable() {
        let mut d = ds(Value::Null, Value::Null);
        d["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}});
        let nodes = workers(3);
        let mut by_node = BTreeMap::new();
        by_node.insert("w1".to_string(), vec![daemon_pod("a", "old", true)]);
        by_node.insert("w2".to_string(), vec![daemon_pod("b", "old", true)]);
        by_node.insert("w3".to_string(), vec![daemon_pod("c", "old", true)]);
        let (delete, create) = rolling_plan(&d, &nodes, &by_node, "new");
        assert_eq!(
            (delete.len(), create.len()),
            (1, 0),
            "one old pod at a time"
        );
        by_node.insert("w1".to_string(), vec![daemon_pod("a2", "new", false)]);
        let (delete, _) = rolling_plan(&d, &nodes, &by_node, "new");
        assert!(
            delete.is_empty(),
            "an unavailable new pod uses up maxUnavailable"
        );
        by_node.insert("w2".to_string(), vec![daemon_pod("b", "old", false)]);
        by_node.insert("w1".to_string(), vec![daemon_pod("a2", "new", true)]);
        let (delete, _) = rolling_plan(&d, &nodes, &by_node, "new");
        assert_eq!(
            names(&delete),
            ["b"],
            "an unavailable old pod is replaced at once"
        );
    }

    #[test]
    fn surging_updates_start_new_pods_before_removing_old_ones() {
        let mut d = ds(Value::Null, Value::Null);
        d["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
        let nodes = workers(2);
        let mut by_node = BTreeMap::new();
        by_node.insert("w1".to_string(), vec![daemon_pod("a", "old", true)]);
        by_node.insert("w2".to_string(), vec![daemon_pod("b", "old", true)]);
        let (delete, create) = rolling_plan(&d, &nodes, &by_node, "new");
        assert!(delete.is_empty());
        assert_eq!(create.len(), 1, "one surge pod");
        by_node.insert(
            "w1".to_string(),
            vec![daemon_pod("a", "old", true), daemon_pod("a2", "new", false)],
        );
        let (delete, create) = rolling_plan(&d, &nodes, &by_node, "new");
        assert!(
            delete.is_empty() && create.is_empty(),
            "waiting for the surge pod"
        );
        by_node.insert(
            "w1".to_string(),
            vec![daemon_pod("a", "old", true), daemon_pod("a2", "new", true)],
        );
        let (delete, create) = rolling_plan(&d, &nodes, &by_node, "new");
        assert_eq!(names(&delete), ["a"]);
        assert_eq!(create, ["w2"]);
    }

    #[test]
    fn status_counts_follow_the_nodes_that_should_run_the_pod() {
        let d = ds(Value::Null, Value::Null);
        let nodes = vec![
            node("cp", cp_taint(), json!({})),
            node("w1", Value::Null, json!({})),
            node("w2", Value::Null, json!({})),
        ];
        let ready = |name: &str, hash: &str| {
            Arc::new(
                json!({"metadata": {"name": name, "creationTimestamp": "2024-01-01T00:00:00Z", "labels": {HASH_LABEL: hash}},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
            )
        };
        let mut by_node = BTreeMap::new();
        by_node.insert("w1".to_string(), vec![ready("a", "h1")]);
        by_node.insert("cp".to_string(), vec![ready("b", "h0")]);
        let status = status_of(&d, &nodes, &by_node, "h1", true);
        assert_eq!(
            status,
            json!({"currentNumberScheduled": 1, "numberMisscheduled": 1, "desiredNumberScheduled": 2, "numberReady": 1,
                   "updatedNumberScheduled": 1, "numberAvailable": 1, "numberUnavailable": 1, "observedGeneration": 2})
        );
    }
}
