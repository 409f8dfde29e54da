//! The other controllers a kubeadm cluster relies on: bootstrapsigner (JWS signatures of
//! cluster-info), tokencleaner (expired bootstrap tokens), root-ca-cert-publisher
//! (kube-root-ca.crt in every namespace), serviceaccount (the `default` ServiceAccount) and
//! nodelifecycle (nodes whose lease stops being renewed become Unknown; the condition taints —
//! not-ready, unreachable, pressure, unschedulable — follow each node's conditions).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::apiserver::secret_data;
use crate::common::client::{ApiClient, PatchType};
use crate::common::time;
use crate::logf;

const COMPONENT: &str = "kube-controller-manager";

/// The detached JWS (`<header>..<signature>`, HS256, key = token secret) the bootstrap signer
/// stores as `jws-kubeconfig-<token-id>`.
pub fn detached_jws(token_id: &str, token_secret: &str, payload: &str) -> String {
    let header = B64URL.encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{token_id}\"}}"));
    let input = format!("{header}.{}", B64URL.encode(payload));
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(token_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(input.as_bytes());
    format!("{header}..{}", B64URL.encode(mac.finalize().into_bytes()))
}

fn expired(secret: &Value) -> bool {
    secret_data(secret, "expiration")
        .and_then(|e| time::parse(&e))
        .is_some_and(|t| t.unix_timestamp() < time::unix_now())
}

async fn bootstrap_tokens(client: &ApiClient) -> Result<Vec<Value>> {
    let list = client
        .get("/api/v1/namespaces/kube-system/secrets?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken")
        .await?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// One pass of the bootstrap signer over kube-public/cluster-info.
pub async fn sign_cluster_info(signer: &ApiClient) -> Result<()> {
    let path = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
    let mut cm = match signer.get(path).await {
        Ok(cm) => cm,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let Some(kubeconfig) = cm["data"]["kubeconfig"].as_str().map(str::to_string) else {
        return Ok(());
    };
    let mut wanted = serde_json::Map::new();
    for secret in bootstrap_tokens(signer).await? {
        let (Some(id), Some(token)) = (
            secret_data(&secret, "token-id"),
            secret_data(&secret, "token-secret"),
        ) else {
            continue;
        };
        if secret_data(&secret, "usage-bootstrap-signing").as_deref() != Some("true")
            || expired(&secret)
        {
            continue;
        }
        if secret["metadata"]["name"].as_str() != Some(format!("bootstrap-token-{id}").as_str()) {
            continue;
        }
        wanted.insert(
            format!("jws-kubeconfig-{id}"),
            json!(detached_jws(&id, &token, &kubeconfig)),
        );
    }
    let data = cm["data"].as_object().cloned().unwrap_or_default();
    let mut updated = data.clone();
    updated.retain(|k, _| !k.starts_with("jws-kubeconfig-"));
    updated.extend(wanted);
    if updated != data {
        cm["data"] = Value::Object(updated);
        signer.replace(path, &cm).await?;
        logf!(
            COMPONENT,
            "updated the JWS signatures of kube-public/cluster-info"
        );
    }
    Ok(())
}

/// One pass of the token cleaner: deletes expired bootstrap-token Secrets.
pub async fn clean_tokens(cleaner: &ApiClient) -> Result<()> {
    for secret in bootstrap_tokens(cleaner).await? {
        if expired(&secret) {
            let name = secret["metadata"]["name"].as_str().unwrap_or_default();
            cleaner
                .delete(&format!("/api/v1/namespaces/kube-system/secrets/{name}"))
                .await?;
            logf!(COMPONENT, "deleted expired bootstrap token {name}");
        }
    }
    Ok(())
}

async fn namespaces(client: &ApiClient) -> Result<Vec<String>> {
    let list = client.get("/api/v1/namespaces").await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["status"]["phase"].as_str() != Some("Terminating"))
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}

/// One pass of root-ca-cert-publisher: kube-root-ca.crt holds --root-ca-file in every namespace.
pub async fn publish_root_ca(
    lister: &ApiClient,
    publisher: &ApiClient,
    root_ca: &PathBuf,
) -> Result<()> {
    let ca = std::fs::read_to_string(root_ca)?;
    for ns in namespaces(lister).await? {
        let path = format!("/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt");
        let wanted = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
            "data": {"ca.crt": ca},
        });
        match lister.get(&path).await {
            Ok(current) if current["data"]["ca.crt"].as_str() == Some(ca.as_str()) => {}
            Ok(mut current) => {
                current["data"] = wanted["data"].clone();
                publisher.replace(&path, &current).await?;
            }
            Err(e) if e.is_not_found() => {
                publisher
                    .create(&format!("/api/v1/namespaces/{ns}/configmaps"), &wanted)
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One pass of the serviceaccount controller: the `default` ServiceAccount in every namespace.
pub async fn default_service_accounts(lister: &ApiClient, creator: &ApiClient) -> Result<()> {
    for ns in namespaces(lister).await? {
        let path = format!("/api/v1/namespaces/{ns}/serviceaccounts/default");
        if let Err(e) = lister.get(&path).await
            && e.is_not_found()
        {
            let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
            match creator
                .create(&format!("/api/v1/namespaces/{ns}/serviceaccounts"), &sa)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The NoSchedule taints TaintNodesByCondition derives from a node's conditions and
/// spec.unschedulable (doNoScheduleTaintingPass), keyed by taint key.
fn condition_taints(node: &Value) -> Vec<&'static str> {
    let mut keys = Vec::new();
    for c in node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Ready"), Some("False")) => "node.kubernetes.io/not-ready",
            (Some("Ready"), Some("Unknown")) => "node.kubernetes.io/unreachable",
            (Some("MemoryPressure"), Some("True")) => "node.kubernetes.io/memory-pressure",
            (Some("DiskPressure"), Some("True")) => "node.kubernetes.io/disk-pressure",
            (Some("PIDPressure"), Some("True")) => "node.kubernetes.io/pid-pressure",
            (Some("NetworkUnavailable"), Some("True")) => "node.kubernetes.io/network-unavailable",
            _ => continue,
        };
        keys.push(key);
    }
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        keys.push("node.kubernetes.io/unschedulable");
    }
    keys
}

const CONDITION_TAINT_KEYS: &[&str] = &[
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
    "node.kubernetes.io/unschedulable",
];

/// The taints the node controller wants on a node: its other taints kept, the condition
/// NoSchedule taints, and the NoExecute one of a NotReady (not-ready) or Unknown (unreachable)
/// node, as the taint-based eviction pass swaps them (no NoExecute taint once Ready).
pub fn wanted_taints(node: &Value) -> Vec<Value> {
    let current: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let managed = |t: &Value| {
        let key = t["key"].as_str().unwrap_or_default();
        match t["effect"].as_str() {
            Some("NoSchedule") => CONDITION_TAINT_KEYS.contains(&key),
            Some("NoExecute") => {
                key == "node.kubernetes.io/not-ready" || key == "node.kubernetes.io/unreachable"
            }
            _ => false,
        }
    };
    let mut wanted: Vec<Value> = current.iter().filter(|t| !managed(t)).cloned().collect();
    let keep_or_add = |key: &str, effect: &str, wanted: &mut Vec<Value>| {
        let existing = current
            .iter()
            .find(|t| t["key"] == key && t["effect"] == effect)
            .cloned();
        wanted
            .push(existing.unwrap_or_else(
                || json!({"key": key, "effect": effect, "timeAdded": time::now()}),
            ));
    };
    for key in condition_taints(node) {
        keep_or_add(key, "NoSchedule", &mut wanted);
    }
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str());
    match ready {
        Some("False") => keep_or_add("node.kubernetes.io/not-ready", "NoExecute", &mut wanted),
        Some("Unknown") => keep_or_add("node.kubernetes.io/unreachable", "NoExecute", &mut wanted),
        _ => {}
    }
    wanted
}

/// One pass of node lifecycle: a node whose kubelet stopped renewing its lease for longer than
/// `grace` gets Ready=Unknown; every node's condition taints follow its conditions. Leases are
/// read with the controller-manager's own credentials (its shared informers), as
/// node-controller's role has none.
pub async fn node_lifecycle(lister: &ApiClient, client: &ApiClient, grace: Duration) -> Result<()> {
    let nodes = client.get("/api/v1/nodes").await?;
    let leases = lister
        .get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
        .await?;
    for node in nodes["items"].as_array().into_iter().flatten() {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let mut node = node.clone();
        let renewed = leases["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["metadata"]["name"].as_str() == Some(name))
            .and_then(|l| l["spec"]["renewTime"].as_str().and_then(time::parse))
            .map(|t| t.unix_timestamp());
        let conditions = node["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let stale = renewed
            .is_some_and(|r| time::unix_now() - r > i64::try_from(grace.as_secs()).unwrap_or(50));
        let already_unknown = conditions
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "Unknown");
        if stale && !already_unknown {
            let unknown: Vec<Value> = conditions
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(time::now());
                    c
                })
                .collect();
            node = client
                .patch(
                    &format!("/api/v1/nodes/{name}/status"),
                    PatchType::Strategic,
                    &json!({"status": {"conditions": unknown}}),
                )
                .await?;
            logf!(
                COMPONENT,
                "node {name} hasn't been updated for more than {}s; marked Unknown",
                grace.as_secs()
            );
        }
        swap_condition_taints(client, name, node).await?;
    }
    Ok(())
}

/// Writes the wanted condition taints, guarded by the node's resourceVersion so that a taint
/// someone else set meanwhile is not lost; a conflict is retried on a fresh read, as
/// SwapNodeControllerTaint's RetryOnConflict does.
async fn swap_condition_taints(client: &ApiClient, name: &str, mut node: Value) -> Result<()> {
    for _ in 0..5 {
        let taints = wanted_taints(&node);
        let current = node["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if taints == current {
            return Ok(());
        }
        let patch = json!({"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}, "spec": {"taints": taints}});
        match client
            .patch(&format!("/api/v1/nodes/{name}"), PatchType::Merge, &patch)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => {
                node = client.get(&format!("/api/v1/nodes/{name}")).await?
            }
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_conditions_become_taints_and_ready_nodes_lose_them() {
        let not_ready = json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "True"}]}});
        let keys: Vec<(String, String)> = wanted_taints(&not_ready)
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap().to_string(),
                    t["effect"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("node-role.kubernetes.io/control-plane", "NoSchedule"),
                ("node.kubernetes.io/not-ready", "NoSchedule"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/not-ready", "NoExecute"),
            ]
            .map(|(k, e)| (k.to_string(), e.to_string()))
        );
        let mut ready = not_ready.clone();
        ready["spec"]["taints"] = json!(wanted_taints(&not_ready));
        ready["spec"]["unschedulable"] = json!(true);
        ready["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        let after = wanted_taints(&ready);
        assert_eq!(after.len(), 2, "{after:?}");
        assert_eq!(after[1]["key"], "node.kubernetes.io/unschedulable");
        let unknown = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(wanted_taints(&unknown).len(), 2);
        assert!(
            wanted_taints(&unknown)
                .iter()
                .all(|t| t["key"] == "node.kubernetes.io/unreachable")
        );
        let stable = json!({"spec": {"taints": wanted_taints(&unknown)}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(
            wanted_taints(&stable),
            stable["spec"]["taints"].as_array().unwrap().clone()
        );
    }

    #[test]
    fn jws_matches_kubeadms_test_vector() {
        // The cluster-info fixture of kubeadm's dry-run client and the signature it carries.
        let kubeconfig = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://192.168.0.101:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSURCVENDQWUyZ0F3SUJBZ0lJTkpmdGFCK09Xd0F3RFFZSktvWklodmNOQVFFTEJRQXdGVEVUTUJFR0ExVUUKQXhNS2EzVmlaWEp1WlhSbGN6QWVGdzB5TkRBM01EZ3hNalF3TURSYUZ3MHpOREEzTURZeE1qUTFNRFJhTUJVeApFekFSQmdOVkJBTVRDbXQxWW1WeWJtVjBaWE13Z2dFaU1BMEdDU3FHU0liM0RRRUJBUVVBQTRJQkR3QXdnZ0VLCkFvSUJBUURhUURkaWdPeVdpbTZXLzQ4bjNQSG9WZVZCU2lkNldjbmRFV3VVcTVnQldYZGx0OTk2aCtWbkl0bHQKOHpDaGwvb1I1V2ZSYVJDODA1WitvTW4vWThJR1ZRM3QxaG55SW1ZbjR3M3Z6UlhvdUdlQmVpdTJTU1ZqZ0J3agpYanliYk1DbXJBZEljYkllWm1INjZldjV6KzVZS21aUlVZYzNoRGFIcFhkMEVFblp5SlY1d2FaczBYTVFVSE03CmVxT1pBWko5L21PM05VQnBsdnJQbnBPTUs3a1NFUFBnNzVjVTdXSG9KSEZrZVlXNTkzZ3NnQ3MyQnRVdTY0Y3EKYlZYOWJpZ3JZZGRwWmtvRUtLeFU4SEl3SHNJNVY4Um9uM21LRkdsckUxN2IybC84Q3FtQXVPdnl6TEllaVFHWAplZ0lhUi9uUkhISUQ5QVRpNnRYOEVhRERwZXYvQWdNQkFBR2pXVEJYTUE0R0ExVWREd0VCL3dRRUF3SUNwREFQCkJnTlZIUk1CQWY4RUJUQURBUUgvTUIwR0ExVWREZ1FXQkJRWWFDRGU2eXVWcVNhV1Y3M3pMaldtR2hpYVR6QVYKQmdOVkhSRUVEakFNZ2dwcmRXSmxjbTVsZEdWek1BMEdDU3FHU0liM0RRRUJDd1VBQTRJQkFRQ2NlTW5uaVBhcQpHUkVqR3A2WFJTN1FFWW1RcmJFZCtUVjVKUTE4byttVzZvR3BaOENBM0pBSFFETk5QRW1QYzB5dVhEeE85QkZYCmJnMlhSSCtLTkozVzJKZlExVEgzVFhKRWF4Zkh1WDRtQjU5UkNsQzExNGtsV2RIeDFqN0FtRWt1eTZ0ZGpuYWkKZmh0U0dueEEwM2JwN2I4Z28zSWpXNE5wV1JOMVdHNTl2YTBKOEJIRmg3Q0RpZUxuK0RNdUk2M0Jna1kveTJzMApML2RtOVBmcWdVSzFBMy8wZGhDVjZiRUNqekEzSkJld21kSC8rVUJPeVkybUMwNVlQMzNkMHA5eXlrYmtkWE5xCkRONXlBc3ZNUC9PV0NuQjFlQlFUb2pNODJMU3F3dHZtbU1SNHRXYXVoOXVkVktHY2s0eEJaV3Vkcm5LRFVVWEkKUURNUFJnSkMvTng0Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
        );
        assert_eq!(
            detached_jws("abcdef", "abcdef0123456789", &kubeconfig),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..wUZ0q9o0VK1RWFptmSBOEem2bXHWrHyxrposHg0mb1w"
        );
    }
}
