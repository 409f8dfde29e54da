//! Kubernetes strategic merge patch, applied locally (apimachinery's `strategicpatch`).
//!
//! No Rust crate implements it: the merge rules live in Go struct tags. This module carries the
//! tags of the Pod fields that have them ([`Schema`]) and follows apimachinery's algorithm:
//! maps merge recursively and `null` deletes a key; lists with a merge key merge element by
//! element (new elements first, then the original order); lists of scalars with the merge strategy
//! become a union; every other list is replaced. Directives: `$patch: replace|delete` (in maps and
//! list elements), `$retainKeys`, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`.

use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// The type at a place in the document, for looking up its fields' merge rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Pod,
    ObjectMeta,
    PodSpec,
    Container,
    /// A type without list merge rules: maps merge, lists are replaced (e.g. KubeletConfiguration).
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListRule {
    Replace,
    /// Elements are maps matched by this key.
    MergeByKey(&'static str),
    /// Elements are scalars; the result is the union.
    Union,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    #[error("a strategic merge patch must be a JSON object")]
    NotAnObject,
    #[error("{path}: unknown $patch directive {value}")]
    BadDirective { path: String, value: String },
    #[error("{path}: a list element has no merge key {key:?}")]
    NoMergeKey { path: String, key: &'static str },
    #[error("{path}: {message}")]
    BadFormat { path: String, message: String },
}

/// The merge rule of `field` in `schema`, and the schema of the field's value (or of its list elements).
fn field_rule(schema: Schema, field: &str) -> (ListRule, Schema) {
    use ListRule::*;
    match (schema, field) {
        (Schema::Pod, "metadata") => (Replace, Schema::ObjectMeta),
        (Schema::Pod, "spec") => (Replace, Schema::PodSpec),
        (Schema::ObjectMeta, "finalizers") => (Union, Schema::Generic),
        (Schema::ObjectMeta, "ownerReferences") => (MergeByKey("uid"), Schema::Generic),
        (Schema::PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
            (MergeByKey("name"), Schema::Container)
        }
        (
            Schema::PodSpec,
            "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates",
        ) => (MergeByKey("name"), Schema::Generic),
        (Schema::PodSpec, "hostAliases") => (MergeByKey("ip"), Schema::Generic),
        (Schema::PodSpec, "topologySpreadConstraints") => {
            (MergeByKey("topologyKey"), Schema::Generic)
        }
        (Schema::Container, "ports") => (MergeByKey("containerPort"), Schema::Generic),
        (Schema::Container, "env") => (MergeByKey("name"), Schema::Generic),
        (Schema::Container, "volumeMounts") => (MergeByKey("mountPath"), Schema::Generic),
        (Schema::Container, "volumeDevices") => (MergeByKey("devicePath"), Schema::Generic),
        _ => (Replace, Schema::Generic),
    }
}

/// Applies `patch` to `original` and returns the result.
pub fn merge(original: &Value, patch: &Value, schema: Schema) -> Result<Value, StrategicError> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err(StrategicError::NotAnObject);
    };
    merge_map(original.clone(), patch.clone(), schema, "").map(Value::Object)
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema,
    path: &str,
) -> Result<Map<String, Value>, StrategicError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => Ok(patch),
            Some("delete") => Ok(Map::new()),
            _ => Err(StrategicError::BadDirective {
                path: path.to_string(),
                value: directive.to_string(),
            }),
        };
    }
    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        retain_keys(&mut original, &patch, &retain, path)?;
    }
    let orders: Vec<(String, Value)> = take_prefixed(&mut patch, SET_ELEMENT_ORDER);
    for (field, deletions) in take_prefixed(&mut patch, DELETE_FROM_PRIMITIVE_LIST) {
        let (Some(Value::Array(list)), Value::Array(deletions)) =
            (original.get_mut(&field), deletions)
        else {
            continue;
        };
        list.retain(|v| !deletions.contains(v));
    }
    for (key, patch_value) in patch {
        let (rule, child_schema) = field_rule(schema, &key);
        let here = child_path(path, &key);
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let merged = match (original.remove(&key), patch_value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                Value::Object(merge_map(o, p, child_schema, &here)?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => match rule {
                ListRule::Replace => Value::Array(p),
                ListRule::MergeByKey(merge_key) => {
                    Value::Array(merge_list_of_maps(o, p, merge_key, child_schema, &here)?)
                }
                ListRule::Union => Value::Array(union(o, &p)),
            },
            (_, p) => p,
        };
        original.insert(key, merged);
    }
    for (field, order) in orders {
        apply_element_order(&mut original, schema, &field, &order, path)?;
    }
    Ok(original)
}

/// Removes the `prefix<field>` directives from `patch`, returning `(field, value)` pairs.
fn take_prefixed(patch: &mut Map<String, Value>, prefix: &str) -> Vec<(String, Value)> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(prefix))
        .cloned()
        .collect();
    keys.into_iter()
        .filter_map(|k| patch.remove(&k).map(|v| (k[prefix.len()..].to_string(), v)))
        .collect()
}

fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    path: &str,
) -> Result<(), StrategicError> {
    let bad = |message: &str| StrategicError::BadFormat {
        path: path.to_string(),
        message: message.to_string(),
    };
    let keep: Vec<&str> = retain
        .as_array()
        .ok_or_else(|| bad("$retainKeys must be a list of field names"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let patched_outside = patch.iter().any(|(k, v)| {
        !v.is_null()
            && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !k.starts_with(SET_ELEMENT_ORDER)
            && !keep.contains(&k.as_str())
    });
    if patched_outside {
        return Err(bad("the patch sets a field that $retainKeys does not list"));
    }
    original.retain(|k, _| keep.contains(&k.as_str()));
    Ok(())
}

fn merge_key_of<'a>(
    element: &'a Value,
    key: &'static str,
    path: &str,
) -> Result<&'a Value, StrategicError> {
    element.get(key).ok_or_else(|| StrategicError::NoMergeKey {
        path: path.to_string(),
        key,
    })
}

fn merge_list_of_maps(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: &'static str,
    schema: Schema,
    path: &str,
) -> Result<Vec<Value>, StrategicError> {
    // Directives first: `$patch: delete` elements remove their match, `$patch: replace` makes the
    // remaining patch elements the whole list.
    let mut merged = original.clone();
    let mut plain = Vec::new();
    let mut replace = false;
    for element in patch {
        match element.get(DIRECTIVE).map(|d| d.as_str()) {
            None => plain.push(element),
            Some(Some("delete")) => {
                let value = merge_key_of(&element, key, path)?.clone();
                merged.retain(|o| o.get(key) != Some(&value));
            }
            Some(Some("replace")) => replace = true,
            Some(_) => {
                return Err(StrategicError::BadDirective {
                    path: path.to_string(),
                    value: element[DIRECTIVE].to_string(),
                });
            }
        }
    }
    if replace {
        return Ok(plain);
    }
    let server_order = merged.clone();
    for element in &plain {
        let value = merge_key_of(element, key, path)?;
        let position = merged.iter().position(|o| o.get(key) == Some(value));
        match (position, element) {
            (Some(i), Value::Object(p)) => {
                let Value::Object(o) = std::mem::take(&mut merged[i]) else {
                    return Err(StrategicError::BadFormat {
                        path: path.to_string(),
                        message: "list elements must be objects".to_string(),
                    });
                };
                merged[i] = Value::Object(merge_map(o, p.clone(), schema, path)?);
            }
            _ => merged.push(element.clone()),
        }
    }
    let identity = |v: &Value| v.get(key).cloned().unwrap_or(Value::Null);
    Ok(normalize_order(merged, &plain, &server_order, identity))
}

fn union(original: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::new();
    for v in original.iter().chain(patch) {
        if !merged.contains(v) {
            merged.push(v.clone());
        }
    }
    normalize_order(merged, patch, &original, Value::clone)
}

/// apimachinery's `normalizeElementOrder`: elements named in `patch_order` keep that relative
/// order, the others keep their order in `server_order`, and the two are interleaved by their
/// positions in `server_order` (an element the server does not have goes first).
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    identity: impl Fn(&Value) -> Value,
) -> Vec<Value> {
    let index_in = |list: &[Value], v: &Value| {
        let id = identity(v);
        list.iter().position(|x| identity(x) == id)
    };
    let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| index_in(patch_order, v).is_some());
    from_patch.sort_by_key(|v| index_in(patch_order, v));
    server_only.sort_by_key(|v| index_in(server_order, v));
    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        from_patch.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_in(server_order, l), index_in(server_order, r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

fn apply_element_order(
    original: &mut Map<String, Value>,
    schema: Schema,
    field: &str,
    order: &Value,
    path: &str,
) -> Result<(), StrategicError> {
    let Value::Array(order) = order else {
        return Err(StrategicError::BadFormat {
            path: child_path(path, field),
            message: "$setElementOrder must be a list".to_string(),
        });
    };
    let Some(Value::Array(list)) = original.get_mut(field) else {
        return Ok(());
    };
    let current = std::mem::take(list);
    *list = match field_rule(schema, field).0 {
        ListRule::MergeByKey(key) => {
            let identity = |v: &Value| v.get(key).cloned().unwrap_or(Value::Null);
            normalize_order(current.clone(), order, &current, identity)
        }
        _ => normalize_order(current.clone(), order, &current, Value::clone),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {
                "containers": [{
                    "name": "c",
                    "image": "old",
                    "command": ["run", "--a"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 2381, "name": "probe-port"}]
                }],
                "volumes": [{"name": "v1", "hostPath": {"path": "/a"}}, {"name": "v2", "hostPath": {"path": "/b"}}],
                "tolerations": [{"key": "t"}]
            }
        })
    }

    #[test]
    fn maps_merge_nulls_delete_and_atomic_lists_are_replaced() {
        let out = merge(
            &pod(),
            &json!({"metadata": {"labels": {"a": null, "c": "3"}},
                    "spec": {"tolerations": [{"key": "u"}],
                             "containers": [{"name": "c", "image": "new", "command": ["other"]}]}}),
            Schema::Pod,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "u"}]));
        let c = &out["spec"]["containers"][0];
        assert_eq!(c["image"], "new");
        assert_eq!(c["command"], json!(["other"]));
        assert_eq!(c["env"], pod()["spec"]["containers"][0]["env"]);
    }

    #[test]
    fn keyed_lists_merge_by_key_new_elements_first() {
        let out = merge(
            &pod(),
            &json!({"spec": {"containers": [{"name": "c",
                "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                "ports": [{"containerPort": 2381, "protocol": "TCP"}]}],
                "volumes": [{"name": "v0", "hostPath": {"path": "/z"}}]}}),
            Schema::Pod,
        )
        .unwrap();
        let c = &out["spec"]["containers"][0];
        assert_eq!(
            c["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(
            c["ports"],
            json!([{"containerPort": 2381, "name": "probe-port", "protocol": "TCP"}])
        );
        let names: Vec<&str> = out["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["v0", "v1", "v2"]);
    }

    #[test]
    fn directives() {
        let out = merge(
            &pod(),
            &json!({"metadata": {"labels": {"$patch": "replace", "only": "x"}, "finalizers": ["y", "x"]},
                    "spec": {"volumes": [{"name": "v1", "$patch": "delete"}],
                             "containers": [{"name": "c", "$deleteFromPrimitiveList/command": ["--a"]}]}}),
            Schema::Pod,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"only": "x"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "x"]));
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "v2", "hostPath": {"path": "/b"}}])
        );
        assert_eq!(out["spec"]["containers"][0]["command"], json!(["run"]));

        let out = merge(
            &pod(),
            &json!({"spec": {"volumes": [{"$patch": "replace"}, {"name": "n", "emptyDir": {}}]}}),
            Schema::Pod,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "n", "emptyDir": {}}])
        );

        let out = merge(
            &pod(),
            &json!({"spec": {"$setElementOrder/volumes": [{"name": "v2"}, {"name": "v1"}]}}),
            Schema::Pod,
        )
        .unwrap();
        assert_eq!(out["spec"]["volumes"][0]["name"], "v2");

        let out = merge(
            &pod(),
            &json!({"spec": {"volumes": [{"name": "v1", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}]}}),
            Schema::Pod,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["volumes"][0],
            json!({"name": "v1", "emptyDir": {}})
        );
    }

    #[test]
    fn errors_name_the_place() {
        let err = merge(
            &pod(),
            &json!({"spec": {"containers": [{"image": "x"}]}}),
            Schema::Pod,
        )
        .unwrap_err();
        assert_eq!(
            err,
            StrategicError::NoMergeKey {
                path: "spec.containers".into(),
                key: "name"
            }
        );
        let err = merge(&pod(), &json!({"spec": {"$patch": "merge"}}), Schema::Pod).unwrap_err();
        assert!(matches!(err, StrategicError::BadDirective { .. }), "{err}");
        assert_eq!(
            merge(&pod(), &json!([1]), Schema::Pod).unwrap_err(),
            StrategicError::NotAnObject
        );
    }
}
