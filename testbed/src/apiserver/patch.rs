//! PATCH bodies: JSON merge patch, JSON patch, and strategic merge patch for the list merge keys of
//! the built-in kinds (containers by name, volumeMounts by mountPath, conditions by type, …).

use serde_json::{Map, Value};

use super::status::{ApiError, ApiResult};

pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> ApiResult<PatchKind> {
        let base = content_type.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchKind::Apply),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }
}

/// Applies a patch document to `current`.
pub fn apply(kind: &PatchKind, current: &Value, patch: &Value) -> ApiResult<Value> {
    match kind {
        PatchKind::Merge => {
            let mut out = current.clone();
            json_patch::merge(&mut out, patch);
            Ok(out)
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("json: cannot unmarshal patch: {e}")))?;
            let mut out = current.clone();
            json_patch::patch(&mut out, &ops)
                .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
            Ok(out)
        }
        PatchKind::Strategic | PatchKind::Apply => Ok(strategic(current, patch, "")),
    }
}

/// The merge key of a list field, by the field's name and its parent field.
fn merge_key(field: &str, parent: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ownerReferences" => Some("uid"),
        "conditions" | "addresses" => Some("type"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "ports" if parent == "containers" || parent == "initContainers" => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

/// Lists of scalars that merge as sets.
fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

fn strategic(current: &Value, patch: &Value, parent: &str) -> Value {
    let (Value::Object(original), Value::Object(patch_map)) = (current, patch) else {
        return strip_directives(patch);
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        return strip_directives(patch);
    }
    let mut out: Map<String, Value> = original.clone();
    for (key, value) in patch_map {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = value
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|v| !remove.contains(&v));
            }
            continue;
        }
        if value.is_null() {
            out.remove(key);
            continue;
        }
        let merged = match (original.get(key), value) {
            (Some(Value::Object(_)), Value::Object(_)) => strategic(&original[key], value, key),
            (Some(Value::Array(old)), Value::Array(new)) => match merge_key(key, parent) {
                Some(mk) => merge_list(old, new, mk, key),
                None if merges_primitives(key) => {
                    let mut list = old.clone();
                    for v in new {
                        if !list.contains(v) {
                            list.push(v.clone());
                        }
                    }
                    Value::Array(list)
                }
                None => strip_directives(value),
            },
            _ => strip_directives(value),
        };
        out.insert(key.clone(), merged);
    }
    Value::Object(out)
}

fn merge_list(old: &[Value], new: &[Value], key: &str, field: &str) -> Value {
    let mut list: Vec<Value> = old.to_vec();
    for item in new {
        let id = &item[key];
        let position = list.iter().position(|o| &o[key] == id && !id.is_null());
        match (item.get("$patch").and_then(Value::as_str), position) {
            (Some("delete"), Some(i)) => {
                list.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => list[i] = strategic(&list[i], item, field),
            (_, None) => list.push(strip_directives(item)),
        }
    }
    Value::Array(list)
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_nulls_delete() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "x", "image": "x:1", "ports": [{"containerPort": 80, "name": "http"}]}, {"name": "y", "image": "y:1"}]}});
        let patch = json!({"metadata": {"labels": {"b": null, "c": "3"}},
            "spec": {"containers": [{"name": "x", "image": "x:2", "ports": [{"containerPort": 80, "protocol": "TCP"}]}, {"name": "y", "$patch": "delete"}, {"name": "z", "image": "z:1"}]}});
        let out = apply(&PatchKind::Strategic, &current, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["x", "z"]);
        assert_eq!(out["spec"]["containers"][0]["image"], "x:2");
        assert_eq!(
            out["spec"]["containers"][0]["ports"][0],
            json!({"containerPort": 80, "name": "http", "protocol": "TCP"})
        );
    }

    #[test]
    fn merge_and_json_patches() {
        let current = json!({"a": {"b": 1, "c": [1, 2]}});
        assert_eq!(
            apply(&PatchKind::Merge, &current, &json!({"a": {"c": [3]}})).unwrap(),
            json!({"a": {"b": 1, "c": [3]}})
        );
        let ops = json!([{"op": "replace", "path": "/a/b", "value": 5}, {"op": "add", "path": "/a/c/-", "value": 9}]);
        assert_eq!(
            apply(&PatchKind::Json, &current, &ops).unwrap(),
            json!({"a": {"b": 5, "c": [1, 2, 9]}})
        );
        let bad = json!([{"op": "test", "path": "/a/b", "value": 2}]);
        assert_eq!(
            apply(&PatchKind::Json, &current, &bad).unwrap_err().code,
            422
        );
    }
}
