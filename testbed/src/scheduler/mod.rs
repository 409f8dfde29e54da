//! The kube-scheduler double: loads its kubeconfig (or KubeSchedulerConfiguration), serves its
//! secure health port, takes the leader lease, and binds pending pods to nodes whose taints they
//! tolerate and whose labels match their nodeSelector.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::common::client::ApiClient;
use crate::common::flags::{COMMON_BOOL_FLAGS, COMMON_VALUE_FLAGS, FlagTable, leak_concat};
use crate::common::leader::Election;
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

fn tolerates(pod: &Value, taint: &Value) -> bool {
    pod["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            let key_ok = t["key"].is_null() || t["key"] == taint["key"];
            let effect_ok =
                t["effect"].is_null() || t["effect"] == "" || t["effect"] == taint["effect"];
            let value_ok = t["operator"].as_str() == Some("Exists")
                || t["value"] == taint["value"]
                || (t["value"].is_null() && taint["value"].is_null());
            key_ok && effect_ok && value_ok
        })
}

/// The first node the pod fits on.
fn pick_node<'a>(pod: &Value, nodes: &'a [Value]) -> Option<&'a Value> {
    nodes.iter().find(|node| {
        if node["spec"]["unschedulable"].as_bool() == Some(true) {
            return false;
        }
        let taints_ok = node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|taint| {
                !matches!(
                    taint["effect"].as_str(),
                    Some("NoSchedule") | Some("NoExecute")
                ) || tolerates(pod, taint)
            });
        let selector_ok = pod["spec"]["nodeSelector"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| node["metadata"]["labels"][k.as_str()] == *v);
        taints_ok && selector_ok
    })
}

async fn schedule_once(client: &ApiClient) -> Result<()> {
    let pods = client
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3D")
        .await?;
    let pending: Vec<Value> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["spec"]["schedulerName"]
                .as_str()
                .unwrap_or("default-scheduler")
                == "default-scheduler"
        })
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let nodes = client.get("/api/v1/nodes").await?;
    let nodes = nodes["items"].as_array().cloned().unwrap_or_default();
    for pod in pending {
        let (ns, name) = (
            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
            pod["metadata"]["name"].as_str().unwrap_or_default(),
        );
        let Some(node) = pick_node(&pod, &nodes) else {
            continue;
        };
        let node_name = node["metadata"]["name"].as_str().unwrap_or_default();
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns}, "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}});
        match client
            .create(
                &format!("/api/v1/namespaces/{ns}/pods/{name}/binding"),
                &binding,
            )
            .await
        {
            Ok(_) => logf!(
                COMPONENT,
                "Successfully bound pod {ns}/{name} to node {node_name}"
            ),
            Err(e) => logf!(COMPONENT, "Error binding pod {ns}/{name}: {e}"),
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

    #[test]
    fn pods_go_to_nodes_whose_taints_they_tolerate() {
        let nodes = vec![
            json!({"metadata": {"name": "cp", "labels": {}}, "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
            json!({"metadata": {"name": "w", "labels": {"disk": "ssd"}}, "spec": {}}),
        ];
        let plain = json!({"spec": {}});
        assert_eq!(pick_node(&plain, &nodes).unwrap()["metadata"]["name"], "w");
        let tolerant = json!({"spec": {"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}], "nodeSelector": {}}});
        assert_eq!(
            pick_node(&tolerant, &nodes).unwrap()["metadata"]["name"],
            "cp"
        );
        let picky = json!({"spec": {"nodeSelector": {"disk": "hdd"}}});
        assert!(pick_node(&picky, &nodes).is_none());
    }
}
