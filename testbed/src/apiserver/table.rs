//! Server-side printing: `meta.k8s.io/v1 Table` responses for `kubectl get`, with the columns the
//! real server prints for the kinds kubeadm clusters show most.

use hyper::HeaderMap;
use serde_json::{Value, json};

use super::registry::ResourceType;
use crate::common::time;

pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn column(name: &str, kind: &str, description: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn node_cells(n: &Value) -> Vec<Value> {
    let ready = n["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True")
        .unwrap_or(false);
    let mut status = if ready {
        "Ready".to_string()
    } else {
        "NotReady".to_string()
    };
    if n["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = n["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    let address = |t: &str| {
        n["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == t)
            .map(|a| s(&a["address"]))
            .unwrap_or_else(|| "<none>".into())
    };
    let info = &n["status"]["nodeInfo"];
    vec![
        json!(s(&n["metadata"]["name"])),
        json!(status),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(time::age(&s(&n["metadata"]["creationTimestamp"]))),
        json!(s(&info["kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(s(&info["osImage"])),
        json!(s(&info["kernelVersion"])),
        json!(s(&info["containerRuntimeVersion"])),
    ]
}

fn pod_cells(p: &Value) -> Vec<Value> {
    let statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = p["spec"]["containers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let ready = statuses
        .iter()
        .filter(|c| c["ready"].as_bool() == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let phase = p["status"]["reason"]
        .as_str()
        .or(p["status"]["phase"].as_str())
        .unwrap_or("Unknown");
    vec![
        json!(s(&p["metadata"]["name"])),
        json!(format!("{ready}/{total}")),
        json!(phase),
        json!(restarts),
        json!(time::age(&s(&p["metadata"]["creationTimestamp"]))),
        json!(p["status"]["podIP"].as_str().unwrap_or("<none>")),
        json!(p["spec"]["nodeName"].as_str().unwrap_or("<none>")),
    ]
}

fn csr_cells(c: &Value) -> Vec<Value> {
    let conditions: Vec<String> = c["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["type"].as_str().map(str::to_string))
        .collect();
    let mut condition = if conditions.is_empty() {
        "Pending".to_string()
    } else {
        conditions.join(",")
    };
    if !c["status"]["certificate"].is_null() && conditions.iter().any(|t| t == "Approved") {
        condition.push_str(",Issued");
    }
    vec![
        json!(s(&c["metadata"]["name"])),
        json!(time::age(&s(&c["metadata"]["creationTimestamp"]))),
        json!(s(&c["spec"]["signerName"])),
        json!(s(&c["spec"]["username"])),
        json!(
            c["spec"]["expirationSeconds"]
                .as_i64()
                .map(|e| format!("{e}s"))
                .unwrap_or_else(|| "<none>".into())
        ),
        json!(condition),
    ]
}

/// Renders a row's cells from an object.
type Cells = fn(&Value) -> Vec<Value>;

pub fn table(rt: &ResourceType, items: &[Value], include_object: Option<&str>) -> Value {
    let (columns, cells): (Vec<Value>, Cells) = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Node") => (
            vec![
                column(
                    "Name",
                    "string",
                    "Name must be unique within a namespace.",
                    0,
                ),
                column("Status", "string", "The status of the node", 0),
                column("Roles", "string", "The roles of the node", 0),
                column("Age", "string", "CreationTimestamp", 0),
                column(
                    "Version",
                    "string",
                    "Kubelet Version reported by the node.",
                    0,
                ),
                column(
                    "Internal-IP",
                    "string",
                    "List of internal IPs for the node.",
                    1,
                ),
                column(
                    "External-IP",
                    "string",
                    "List of external IPs for this node.",
                    1,
                ),
                column("OS-Image", "string", "OS image reported by the node.", 1),
                column(
                    "Kernel-Version",
                    "string",
                    "Kernel version reported by the node.",
                    1,
                ),
                column(
                    "Container-Runtime",
                    "string",
                    "Container runtime and version reported by the node.",
                    1,
                ),
            ],
            node_cells,
        ),
        ("", "Pod") => (
            vec![
                column(
                    "Name",
                    "string",
                    "Name must be unique within a namespace.",
                    0,
                ),
                column(
                    "Ready",
                    "string",
                    "The aggregate readiness state of this pod for accepting traffic.",
                    0,
                ),
                column(
                    "Status",
                    "string",
                    "The aggregate status of the containers in this pod.",
                    0,
                ),
                column(
                    "Restarts",
                    "string",
                    "The number of times the containers in this pod have been restarted.",
                    0,
                ),
                column("Age", "string", "CreationTimestamp", 0),
                column("IP", "string", "IP address allocated to the pod.", 1),
                column(
                    "Node",
                    "string",
                    "Name of the Node to which this pod is assigned.",
                    1,
                ),
            ],
            pod_cells,
        ),
        ("certificates.k8s.io", "CertificateSigningRequest") => (
            vec![
                column(
                    "Name",
                    "string",
                    "Name must be unique within a namespace.",
                    0,
                ),
                column("Age", "date", "CreationTimestamp", 0),
                column(
                    "SignerName",
                    "string",
                    "Only requests with the specified signerName are handled.",
                    0,
                ),
                column(
                    "Requestor",
                    "string",
                    "Name of the user requesting the certificate.",
                    0,
                ),
                column(
                    "RequestedDuration",
                    "string",
                    "Requested certificate duration.",
                    0,
                ),
                column(
                    "Condition",
                    "string",
                    "Approval and issuance state of the request.",
                    0,
                ),
            ],
            csr_cells,
        ),
        _ => (
            vec![
                column(
                    "Name",
                    "string",
                    "Name must be unique within a namespace.",
                    0,
                ),
                column("Age", "string", "CreationTimestamp", 0),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(time::age(&s(&o["metadata"]["creationTimestamp"]))),
                ]
            },
        ),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut row = json!({"cells": cells(item)});
            match include_object.unwrap_or("Metadata") {
                "None" => {}
                "Object" => row["object"] = item.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": item["metadata"],
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}
