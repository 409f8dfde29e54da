//! core/v1 Events the doubles record about objects (FailedScheduling, SuccessfulCreate, …), as
//! client-go's event recorder posts them, so `kubectl describe` and `kubectl get events` show why.

use serde_json::{Value, json};

use super::client::ApiClient;
use super::time;
use crate::logf;

/// Normal or Warning.
#[derive(Debug, Clone, Copy)]
pub enum EventType {
    Normal,
    Warning,
}

/// Posts one Event about `object` from `component`; a failure is logged, never fatal.
pub async fn record(
    client: &ApiClient,
    component: &str,
    object: &Value,
    kind: EventType,
    reason: &str,
    message: &str,
) {
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let namespace = meta["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let now = time::now();
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": namespace},
        "involvedObject": {
            "apiVersion": object["apiVersion"],
            "kind": object["kind"],
            "name": name,
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": match kind {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        },
        "reportingComponent": component,
        "reportingInstance": "",
    });
    let mut event = event;
    if let Some(involved) = event["involvedObject"].as_object_mut() {
        involved.retain(|_, v| !v.is_null());
    }
    if let Err(e) = client
        .create(&format!("/api/v1/namespaces/{namespace}/events"), &event)
        .await
    {
        logf!(
            component,
            "Server rejected event {reason} on {namespace}/{name}: {e}"
        );
    }
}
