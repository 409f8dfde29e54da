//! What the workload controllers share about pods and owners: controller references and the
//! claiming of objects (adopt matching orphans, release what no longer matches), pod readiness
//! and availability, pods created from templates, and the template hash the real controllers
//! put in `pod-template-hash` / `controller-revision-hash`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::common::client::{ApiClient, PatchType};
use crate::common::{labels, time};

/// The controlling owner reference of an object, if any.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
}

/// The reference a controller puts on what it creates (controller and blockOwnerDeletion).
pub fn owner_reference(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

pub fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// Not finished (Succeeded/Failed) and not being deleted (controller.IsPodActive).
pub fn is_active(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) && !is_deleting(pod)
}

fn ready_condition(pod: &Value) -> Option<&Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

pub fn is_ready(pod: &Value) -> bool {
    ready_condition(pod).is_some_and(|c| c["status"] == "True")
}

/// How long until a ready pod counts as available (zero once it does), or None if not ready:
/// podutil.IsPodAvailable with `min_ready_seconds` from the Ready condition's transition time.
pub fn until_available(pod: &Value, min_ready_seconds: i64) -> Option<Duration> {
    if !is_ready(pod) {
        return None;
    }
    if min_ready_seconds <= 0 {
        return Some(Duration::ZERO);
    }
    let since = ready_condition(pod)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(time::parse)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0);
    let left = since + min_ready_seconds - time::unix_now();
    Some(Duration::from_secs(u64::try_from(left.max(0)).unwrap_or(0)))
}

pub fn is_available(pod: &Value, min_ready_seconds: i64) -> bool {
    until_available(pod, min_ready_seconds) == Some(Duration::ZERO)
}

/// The shortest wait until one of `pods` becomes available (for a controller's requeue).
pub fn next_availability(pods: &[&Value], min_ready_seconds: i64) -> Option<Duration> {
    pods.iter()
        .filter_map(|p| until_available(p, min_ready_seconds))
        .filter(|d| !d.is_zero())
        .min()
}

/// JSON with its keys sorted at every level (stable input for hashing).
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical(&map[*k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// controller.ComputeHash: FNV-32a of the template (here its canonical JSON, not Go's
/// deep-hash printing, so the value differs from a real cluster's) and the collision count,
/// written with rand.SafeEncodeString's alphabet.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut text = String::new();
    canonical(template, &mut text);
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(text.as_bytes());
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        feed(&bytes);
    }
    hash.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// A pod for `owner` from `template` (controller.GetPodFromTemplate): the template's labels,
/// annotations, finalizers and spec, `generateName` `<owner>-`, the controller reference.
pub fn pod_from_template(template: &Value, owner_ref: Value, generate_prefix: &str) -> Value {
    let meta = &template["metadata"];
    let mut metadata = Map::new();
    metadata.insert("generateName".into(), json!(format!("{generate_prefix}-")));
    for field in ["labels", "annotations", "finalizers"] {
        if !meta[field].is_null() {
            metadata.insert(field.into(), meta[field].clone());
        }
    }
    metadata.insert("ownerReferences".into(), json!([owner_ref]));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// Objects of one namespace that belong to `owner` after claiming (ClaimPods /
/// ClaimReplicaSets): its own dependents that still match `selector`; orphans that match are
/// adopted (a patch adding the controller reference), dependents that no longer match are
/// released (the reference removed). `path` is the collection path of the dependents.
pub async fn claim(
    client: &ApiClient,
    owner: &Value,
    owner_ref: &Value,
    selector: &Value,
    candidates: &[Arc<Value>],
    path: &str,
) -> Vec<Arc<Value>> {
    let uid = owner["metadata"]["uid"].as_str().unwrap_or_default();
    let mut owned = Vec::new();
    for candidate in candidates {
        let matches = labels::selector_matches(selector, &candidate["metadata"]["labels"]);
        let name = candidate["metadata"]["name"].as_str().unwrap_or_default();
        match controller_ref(candidate) {
            Some(r) if r["uid"].as_str() == Some(uid) => {
                if matches || is_deleting(owner) {
                    owned.push(candidate.clone());
                    continue;
                }
                let remaining: Vec<Value> = candidate["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["uid"].as_str() != Some(uid))
                    .cloned()
                    .collect();
                let patch = json!({"metadata": {"ownerReferences": remaining, "uid": candidate["metadata"]["uid"], "resourceVersion": candidate["metadata"]["resourceVersion"]}});
                let _ = client
                    .patch(&format!("{path}/{name}"), PatchType::Merge, &patch)
                    .await;
            }
            Some(_) => {}
            None => {
                if !matches || is_deleting(owner) || is_deleting(candidate) {
                    continue;
                }
                let mut refs: Vec<Value> = candidate["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                refs.push(owner_ref.clone());
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": candidate["metadata"]["uid"], "resourceVersion": candidate["metadata"]["resourceVersion"]}});
                if let Ok(adopted) = client
                    .patch(&format!("{path}/{name}"), PatchType::Merge, &patch)
                    .await
                {
                    owned.push(Arc::new(adopted));
                }
            }
        }
    }
    owned
}

/// `intstr.GetScaledValueFromIntOrPercent`: an int, or a percentage of `total` rounded up or down.
pub fn scaled_value(value: &Value, total: i64, round_up: bool) -> i64 {
    match crate::apiserver::workloads::int_or_percent(value) {
        Some((v, false)) => v,
        Some((p, true)) => {
            let scaled = p * total;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hashes_are_stable_safe_strings() {
        let a = json!({"metadata": {"labels": {"app": "web", "tier": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let b = json!({"spec": {"containers": [{"image": "i", "name": "c"}]}, "metadata": {"labels": {"tier": "x", "app": "web"}}});
        let h = template_hash(&a, None);
        assert_eq!(h, template_hash(&b, None));
        assert!(h.len() <= 10 && !h.is_empty());
        assert!(
            h.bytes()
                .all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c)),
            "{h}"
        );
        assert_ne!(h, template_hash(&a, Some(1)));
        let mut changed = a.clone();
        changed["spec"]["containers"][0]["image"] = json!("j");
        assert_ne!(h, template_hash(&changed, None));
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let ready_since = |secs_ago: i64| json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": time::format_seconds(time::OffsetDateTime::now_utc() - time::Duration::seconds(secs_ago))}]}});
        assert!(is_available(&ready_since(0), 0));
        assert!(!is_available(&ready_since(2), 30));
        assert!(is_available(&ready_since(40), 30));
        let wait = until_available(&ready_since(10), 30).unwrap();
        assert!(wait <= Duration::from_secs(20) && wait >= Duration::from_secs(19));
        assert_eq!(until_available(&json!({}), 0), None);
    }

    #[test]
    fn percentages_scale_with_rounding() {
        assert_eq!(scaled_value(&json!("25%"), 3, true), 1);
        assert_eq!(scaled_value(&json!("25%"), 3, false), 0);
        assert_eq!(scaled_value(&json!(2), 3, false), 2);
        assert_eq!(scaled_value(&json!("100%"), 7, false), 7);
    }

    #[test]
    fn pods_from_templates_carry_the_owner() {
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}});
        let owner = json!({"metadata": {"name": "web-abc", "uid": "u1"}});
        let pod = pod_from_template(
            &template,
            owner_reference(&owner, "apps/v1", "ReplicaSet"),
            "web-abc",
        );
        assert_eq!(pod["metadata"]["generateName"], "web-abc-");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(
            pod["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );
        assert!(controller_ref(&pod).is_some());
    }
}
