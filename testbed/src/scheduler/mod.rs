//! The kube-scheduler double: loads its kubeconfig (or KubeSchedulerConfiguration), serves its
//! secure health port, takes the leader lease, and binds pending pods to nodes that pass the
//! default profile's NodeUnschedulable, TaintToleration and NodeAffinity filters; a pod no node
//! fits gets PodScheduled=False/Unschedulable with the real scheduler's message.

use std::time::Duration;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::common::client::{ApiClient, PatchType};
use crate::common::events::{self, EventType};
use crate::common::flags::{COMMON_BOOL_FLAGS, COMMON_VALUE_FLAGS, FlagTable, leak_concat};
use crate::common::leader::Election;
use crate::common::scheduling;
use crate::controller_manager::{client_from, serve_health, wait_for_api};
use crate::logf;

const COMPONENT: &str = "kube-scheduler";

const VALUE_FLAGS: &[&str] = &[
    "allow-metric-labels",
    "allow-metric-labels-manifest",
    "authentication-kubeconfig",
    "authentication-token-webhook-cache-ttl",
    "authorization-always-allow-paths",
    "authorization-kubeconfig",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "bind-address",
    "cert-dir",
    "client-ca-file",
    "config",
    "disabled-metrics",
    "emulated-version",
    "feature-gates",
    "http2-max-streams-per-connection",
    "kube-api-burst",
    "kube-api-content-type",
    "kube-api-qps",
    "kubeconfig",
    "leader-elect-lease-duration",
    "leader-elect-renew-deadline",
    "leader-elect-resource-lock",
    "leader-elect-resource-name",
    "leader-elect-resource-namespace",
    "leader-elect-retry-period",
    "master",
    "requestheader-allowed-names",
    "requestheader-client-ca-file",
    "requestheader-extra-headers-prefix",
    "requestheader-group-headers",
    "requestheader-uid-headers",
    "requestheader-username-headers",
    "secure-port",
    "show-hidden-metrics-for-version",
    "tls-cert-file",
    "tls-cipher-suites",
    "tls-min-version",
    "tls-private-key-file",
    "tls-sni-cert-key",
    "write-config-to",
];

const BOOL_FLAGS: &[&str] = &[
    "authentication-skip-lookup",
    "authentication-tolerate-lookup-failure",
    "contention-profiling",
    "disable-http2-serving",
    "leader-elect",
    "permit-address-sharing",
    "permit-port-sharing",
    "profiling",
];

pub fn flag_table() -> FlagTable {
    FlagTable {
        component: "\"kube-scheduler\"",
        value_flags: leak_concat(VALUE_FLAGS, COMMON_VALUE_FLAGS),
        bool_flags: leak_concat(BOOL_FLAGS, COMMON_BOOL_FLAGS),
        shorthands: &[('v', "v"), ('h', "help")],
    }
}

pub fn main(args: &[String]) -> i32 {
    crate::run_component(COMPONENT, args, run)
}

/// Pods per node, and per node and controlling owner, for scoring (what the default profile's
/// spreading and least-allocated scores approximate).
#[derive(Default)]
struct Load {
    pods: BTreeMap<String, usize>,
    owned: BTreeMap<(String, String), usize>,
}

fn controller_uid(pod: &Value) -> Option<String> {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["controller"].as_bool() == Some(true))
        .and_then(|r| r["uid"].as_str().map(str::to_string))
}

impl Load {
    fn of(pods: &[Value]) -> Load {
        let mut load = Load::default();
        for pod in pods {
            let phase = pod["status"]["phase"].as_str().unwrap_or_default();
            if phase == "Succeeded" || phase == "Failed" {
                continue;
            }
            if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                load.add(node, pod);
            }
        }
        load
    }

    fn add(&mut self, node: &str, pod: &Value) {
        *self.pods.entry(node.to_string()).or_default() += 1;
        if let Some(owner) = controller_uid(pod) {
            *self.owned.entry((node.to_string(), owner)).or_default() += 1;
        }
    }
}

/// What one scheduling attempt decided.
#[derive(Debug)]
enum Decision<'a> {
    Bind(&'a Value),
    /// PodScheduled=False, reason Unschedulable, with the scheduler's FitError message.
    Unschedulable(String),
}

/// DefaultPreemption's PostFilter message: every filter here fails as UnschedulableAndUnresolvable,
/// so preemption never helps, unless the pod may not preempt at all.
fn preemption_message(pod: &Value, nodes: usize) -> String {
    if pod["spec"]["preemptionPolicy"].as_str() == Some("Never") {
        "preemption: not eligible due to preemptionPolicy=Never.".to_string()
    } else {
        format!(
            "preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling."
        )
    }
}

/// FitError.Error(): "0/N nodes are available: <PreFilter message or sorted reason histogram>.
/// <PostFilter message>." (the real format, whose second period follows the PostFilter's own).
fn fit_error(
    nodes: usize,
    prefilter: Option<String>,
    reasons: &BTreeMap<String, usize>,
    post: &str,
) -> String {
    let mut message = format!("0/{nodes} nodes are available:");
    match prefilter {
        Some(p) => message.push_str(&format!(" {p}.")),
        None if !reasons.is_empty() => {
            let mut histogram: Vec<String> =
                reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            histogram.sort();
            message.push_str(&format!(" {}.", histogram.join(", ")));
        }
        None => {}
    }
    message.push_str(&format!(" {post}."));
    message
}

/// Filters (NodeAffinity PreFilter, then NodeUnschedulable, TaintToleration, NodeAffinity per
/// node) and, when nodes fit, scores: fewest untolerated PreferNoSchedule taints, most preferred
/// node-affinity weight, fewest pods of the same controller, fewest pods, then node order.
fn decide<'a>(pod: &Value, nodes: &'a [Value], load: &Load) -> Decision<'a> {
    if nodes.is_empty() {
        return Decision::Unschedulable("no nodes available to schedule pods".into());
    }
    let spec = &pod["spec"];
    let post = preemption_message(pod, nodes.len());
    let allowed = match scheduling::affinity_node_names(spec) {
        Ok(allowed) => allowed,
        Err(conflict) => {
            return Decision::Unschedulable(fit_error(
                nodes.len(),
                Some(conflict.to_string()),
                &BTreeMap::new(),
                &post,
            ));
        }
    };
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut feasible = Vec::new();
    for node in nodes {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        if allowed.as_ref().is_some_and(|a| !a.contains(name)) {
            *reasons
                .entry(scheduling::Unfit::NotInPreFilter.to_string())
                .or_default() += 1;
            continue;
        }
        match scheduling::filter(spec, node) {
            Ok(()) => feasible.push(node),
            Err(unfit) => *reasons.entry(unfit.to_string()).or_default() += 1,
        }
    }
    let owner = controller_uid(pod);
    let best = feasible.into_iter().min_by_key(|node| {
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let soft_taints = node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["effect"] == "PreferNoSchedule"
                    && !spec["tolerations"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|tol| scheduling::tolerates(tol, t))
            })
            .count();
        let same_owner = owner
            .as_ref()
            .and_then(|o| load.owned.get(&(name.clone(), o.clone())))
            .copied()
            .unwrap_or(0);
        let pods = load.pods.get(&name).copied().unwrap_or(0);
        (
            soft_taints,
            -scheduling::preferred_affinity_weight(spec, node),
            same_owner,
            pods,
            name,
        )
    });
    match best {
        Some(node) => Decision::Bind(node),
        None => Decision::Unschedulable(fit_error(nodes.len(), None, &reasons, &post)),
    }
}

/// Sets PodScheduled=False/Unschedulable with `message` unless the pod already says exactly that
/// (the real scheduler's updatePod: the transition time only moves when the status changes).
async fn report_unschedulable(client: &ApiClient, pod: &Value, message: &str) -> Result<bool> {
    let current = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "PodScheduled");
    if let Some(c) = current
        && c["status"] == "False"
        && c["reason"] == "Unschedulable"
        && c["message"] == message
    {
        return Ok(false);
    }
    let transition = match current {
        Some(c) if c["status"] == "False" => c["lastTransitionTime"].clone(),
        _ => json!(crate::common::time::now()),
    };
    let (ns, name) = (
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"].as_str().unwrap_or_default(),
    );
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "lastProbeTime": null,
        "lastTransitionTime": transition, "reason": "Unschedulable", "message": message,
    }]}});
    client
        .patch(
            &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
            PatchType::Strategic,
            &patch,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(true)
}

fn schedulable(pod: &Value) -> bool {
    pod["spec"]["schedulerName"]
        .as_str()
        .unwrap_or("default-scheduler")
        == "default-scheduler"
        && pod["metadata"]["deletionTimestamp"].is_null()
        && pod["spec"]["schedulingGates"]
            .as_array()
            .is_none_or(|g| g.is_empty())
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

async fn schedule_once(client: &ApiClient) -> Result<()> {
    let pods = client
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3D")
        .await?;
    let mut pending: Vec<Value> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| schedulable(p))
        .cloned()
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    // The scheduling queue's order: higher priority first, then older first.
    pending.sort_by_key(|p| {
        (
            -p["spec"]["priority"].as_i64().unwrap_or(0),
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    });
    let nodes = client.get("/api/v1/nodes").await?;
    let nodes = nodes["items"].as_array().cloned().unwrap_or_default();
    let all = client.get("/api/v1/pods").await?;
    let mut load = Load::of(
        all["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
    );
    for pod in pending {
        let (ns, name) = (
            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
            pod["metadata"]["name"].as_str().unwrap_or_default(),
        );
        match decide(&pod, &nodes, &load) {
            Decision::Bind(node) => {
                let node_name = node["metadata"]["name"].as_str().unwrap_or_default();
                let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns}, "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}});
                match client
                    .create(
                        &format!("/api/v1/namespaces/{ns}/pods/{name}/binding"),
                        &binding,
                    )
                    .await
                {
                    Ok(_) => {
                        load.add(node_name, &pod);
                        logf!(
                            COMPONENT,
                            "Successfully bound pod {ns}/{name} to node {node_name}"
                        );
                        events::record(
                            client,
                            "default-scheduler",
                            &pod,
                            EventType::Normal,
                            "Scheduled",
                            &format!("Successfully assigned {ns}/{name} to {node_name}"),
                        )
                        .await;
                    }
                    Err(e) => logf!(COMPONENT, "Error binding pod {ns}/{name}: {e}"),
                }
            }
            Decision::Unschedulable(message) => {
                match report_unschedulable(client, &pod, &message).await {
                    Ok(true) => {
                        logf!(COMPONENT, "Unable to schedule pod {ns}/{name}: {message}");
                        events::record(
                            client,
                            "default-scheduler",
                            &pod,
                            EventType::Warning,
                            "FailedScheduling",
                            &message,
                        )
                        .await;
                    }
                    Ok(false) => {}
                    Err(e) => logf!(COMPONENT, "Error updating pod {ns}/{name}: {e:#}"),
                }
            }
        }
    }
    Ok(())
}

async fn run(args: Vec<String>) -> Result<()> {
    let flags = flag_table().parse(&args)?;
    if flags.has("version") {
        println!("Kubernetes {}", crate::apiserver::component_version());
        return Ok(());
    }
    let mut kubeconfig = flags.non_empty("kubeconfig");
    if let Some(path) = flags.non_empty("config") {
        let text = std::fs::read_to_string(&path).with_context(|| format!("open {path}"))?;
        let config: Value =
            serde_saphyr::from_str(&text).with_context(|| format!("decode {path}"))?;
        if config["kind"].as_str() != Some("KubeSchedulerConfiguration")
            || config["apiVersion"].as_str() != Some("kubescheduler.config.k8s.io/v1")
        {
            bail!(
                "couldn't decode as KubeSchedulerConfiguration, got {:?} {:?}",
                config["apiVersion"],
                config["kind"]
            );
        }
        if let Some(k) = config["clientConnection"]["kubeconfig"]
            .as_str()
            .filter(|k| !k.is_empty())
        {
            kubeconfig.get_or_insert_with(|| k.to_string());
        }
    }
    client_from(
        "authentication-kubeconfig",
        flags.non_empty("authentication-kubeconfig").as_deref(),
    )?;
    client_from(
        "authorization-kubeconfig",
        flags.non_empty("authorization-kubeconfig").as_deref(),
    )?;
    let client = client_from("kubeconfig", kubeconfig.as_deref())?.ok_or_else(|| {
        anyhow::anyhow!("invalid configuration: no configuration has been provided")
    })?;
    serve_health(&flags, 10259, COMPONENT).await?;
    wait_for_api(&client, COMPONENT).await;
    let election = Election::from_flags(&flags, "kube-scheduler")?;
    if let Some(election) = &election {
        election.acquire(&client).await;
    }
    let scheduling = client.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = schedule_once(&scheduling).await {
                logf!(COMPONENT, "scheduling pass failed: {e:#}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    if let Some(election) = &election {
        election.hold(&client).await;
        bail!("leaderelection lost");
    }
    std::future::pending::<()>().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<Value> {
        vec![
            json!({"metadata": {"name": "node1", "labels": {}}, "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
            json!({"metadata": {"name": "node2", "labels": {"disk": "ssd"}}, "spec": {}}),
            json!({"metadata": {"name": "node3", "labels": {}}, "spec": {}}),
        ]
    }

    fn bound(decision: Decision<'_>) -> String {
        match decision {
            Decision::Bind(n) => n["metadata"]["name"].as_str().unwrap().to_string(),
            Decision::Unschedulable(m) => panic!("unschedulable: {m}"),
        }
    }

    fn refused(decision: Decision<'_>) -> String {
        match decision {
            Decision::Unschedulable(m) => m,
            Decision::Bind(n) => panic!("bound to {}", n["metadata"]["name"]),
        }
    }

    #[test]
    fn pods_go_to_nodes_whose_taints_they_tolerate_and_spread() {
        let nodes = nodes();
        let mut load = Load::default();
        let pod = json!({"metadata": {"ownerReferences": [{"uid": "rs", "controller": true}]}, "spec": {}});
        let first = bound(decide(&pod, &nodes, &load));
        assert_eq!(first, "node2");
        load.add(&first, &pod);
        assert_eq!(bound(decide(&pod, &nodes, &load)), "node3");
        let tolerant = json!({"spec": {"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}], "nodeSelector": {}}});
        assert_eq!(bound(decide(&tolerant, &nodes, &Load::default())), "node1");
        let picky = json!({"spec": {"nodeSelector": {"disk": "ssd"}}});
        assert_eq!(bound(decide(&picky, &nodes, &load)), "node2");
    }

    #[test]
    fn unschedulable_pods_get_the_real_fit_error_message() {
        let tainted: Vec<Value> = (1..=3)
            .map(|i| json!({"metadata": {"name": format!("node{i}")}, "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}))
            .collect();
        assert_eq!(
            refused(decide(&json!({"spec": {}}), &tainted, &Load::default())),
            "0/3 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
        );
        let picky = json!({"spec": {"nodeSelector": {"disk": "hdd"}, "preemptionPolicy": "Never"}});
        assert_eq!(
            refused(decide(&picky, &nodes(), &Load::default())),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector. preemption: not eligible due to preemptionPolicy=Never.."
        );
        assert_eq!(
            refused(decide(&json!({"spec": {}}), &[], &Load::default())),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn daemon_pods_pinned_by_match_fields_name_their_node() {
        let pinned = json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node1"]}]}]}}}}});
        assert_eq!(
            refused(decide(&pinned, &nodes(), &Load::default())),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
        );
        let mut pinned3 = pinned.clone();
        pinned3["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0]["values"] = json!(["node3"]);
        assert_eq!(bound(decide(&pinned3, &nodes(), &Load::default())), "node3");
        let mut cordoned = nodes();
        cordoned[1]["spec"]["unschedulable"] = json!(true);
        cordoned[2]["spec"]["unschedulable"] = json!(true);
        assert!(
            refused(decide(&json!({"spec": {}}), &cordoned, &Load::default()))
                .contains("2 node(s) were unschedulable")
        );
    }
}
