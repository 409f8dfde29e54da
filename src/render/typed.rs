//! Decoding a generic JSON value into a typed Kubernetes object, refusing anything the type would drop or change.
//!
//! k8s-openapi's types ignore unknown fields when decoding. So after decoding, the object is
//! encoded again and compared with the input: a field the type does not know (a typo, a
//! mis-indented line, a patch that names a field that does not exist) shows up as a difference
//! and is reported with its path.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypedError {
    #[error("not a valid {kind}: at {path}: {message}")]
    Invalid {
        kind: String,
        path: String,
        message: String,
    },
    #[error("{path} is not a field of {kind} (it would be dropped)")]
    Unknown { kind: String, path: String },
    #[error("{path} does not keep its value in a {kind} ({given} becomes {kept})")]
    Changed {
        kind: String,
        path: String,
        given: String,
        kept: String,
    },
}

/// Decodes `value` into `K`; fails when decoding fails or when re-encoding does not give `value` back.
pub fn decode_checked<K: DeserializeOwned + Serialize>(
    value: &Value,
    kind: &str,
) -> Result<K, TypedError> {
    let typed: K = serde_path_to_error::deserialize(value).map_err(|e| TypedError::Invalid {
        kind: kind.to_string(),
        path: display_path(&e.path().to_string()),
        message: e.inner().to_string(),
    })?;
    let again = serde_json::to_value(&typed).map_err(|e| TypedError::Invalid {
        kind: kind.to_string(),
        path: "(root)".to_string(),
        message: e.to_string(),
    })?;
    match first_difference(value, &again, String::new()) {
        None => Ok(typed),
        Some(Difference::Missing(path)) => Err(TypedError::Unknown {
            kind: kind.to_string(),
            path: display_path(&path),
        }),
        Some(Difference::Value { path, given, kept }) => Err(TypedError::Changed {
            kind: kind.to_string(),
            path: display_path(&path),
            given,
            kept,
        }),
    }
}

enum Difference {
    /// Present in the input, absent after re-encoding.
    Missing(String),
    Value {
        path: String,
        given: String,
        kept: String,
    },
}

fn first_difference(given: &Value, kept: &Value, path: String) -> Option<Difference> {
    match (given, kept) {
        (Value::Object(g), Value::Object(k)) => {
            for (key, gv) in g {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    None => return Some(Difference::Missing(child)),
                    Some(kv) => {
                        if let Some(d) = first_difference(gv, kv, child) {
                            return Some(d);
                        }
                    }
                }
            }
            k.keys()
                .find(|key| !g.contains_key(*key))
                .map(|key| Difference::Value {
                    path: join(&path, key),
                    given: "(absent)".to_string(),
                    kept: k[key.as_str()].to_string(),
                })
        }
        (Value::Array(g), Value::Array(k)) if g.len() == k.len() => g
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (gv, kv))| first_difference(gv, kv, format!("{path}[{i}]"))),
        _ if given == kept => None,
        _ => Some(Difference::Value {
            path,
            given: given.to_string(),
            kept: kept.to_string(),
        }),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() || path == "." {
        "(root)".to_string()
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(extra_container_field: (&str, Value)) -> Value {
        let mut container = json!({"name": "c", "image": "i"});
        container[extra_container_field.0] = extra_container_field.1;
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [container]}})
    }

    #[test]
    fn a_valid_pod_passes() {
        let p: Pod = decode_checked(&pod(("imagePullPolicy", json!("Never"))), "Pod").unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("p"));
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = decode_checked::<Pod>(&pod(("hostNetwork", json!(true))), "Pod").unwrap_err();
        assert_eq!(
            err,
            TypedError::Unknown {
                kind: "Pod".into(),
                path: "spec.containers[0].hostNetwork".into()
            }
        );
    }

    #[test]
    fn a_wrong_type_is_named() {
        let err = decode_checked::<Pod>(&pod(("stdin", json!("yes"))), "Pod").unwrap_err();
        match err {
            TypedError::Invalid { path, .. } => assert_eq!(path, "spec.containers[0].stdin"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_null_value_is_dropped_and_named() {
        let err = decode_checked::<Pod>(&pod(("workingDir", Value::Null)), "Pod").unwrap_err();
        assert!(
            matches!(&err, TypedError::Unknown { path, .. } if path == "spec.containers[0].workingDir"),
            "{err}"
        );
    }
}
