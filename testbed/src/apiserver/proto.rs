//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`), which
//! kubectl's typed commands send (create configmap/secret/…binding, auth can-i/whoami, certificate
//! approve, create token, drain). Decoded to JSON through a schema of field numbers taken from the
//! Kubernetes `generated.proto` definitions, for the kinds those commands send; fields not in the
//! schema are skipped.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bytes,
    Int,
    Bool,
    Time,
    Msg(&'static str),
    MapStr,
    MapBytes,
    MapMsg(&'static str),
}

struct Field {
    tag: u64,
    json: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(tag: u64, json: &'static str, ty: Ty) -> Field {
    Field {
        tag,
        json,
        ty,
        repeated: false,
    }
}

const fn r(tag: u64, json: &'static str, ty: Ty) -> Field {
    Field {
        tag,
        json,
        ty,
        repeated: true,
    }
}

use Ty::*;

const OBJECT_META: &[Field] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(5, "uid", Str),
    f(6, "resourceVersion", Str),
    f(7, "generation", Int),
    f(8, "creationTimestamp", Time),
    f(9, "deletionTimestamp", Time),
    f(10, "deletionGracePeriodSeconds", Int),
    f(11, "labels", MapStr),
    f(12, "annotations", MapStr),
    r(13, "ownerReferences", Msg("OwnerReference")),
    r(14, "finalizers", Str),
];

fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "ObjectMeta" => OBJECT_META,
        "OwnerReference" => {
            const {
                &[
                    f(5, "apiVersion", Str),
                    f(1, "kind", Str),
                    f(3, "name", Str),
                    f(4, "uid", Str),
                    f(6, "controller", Bool),
                    f(7, "blockOwnerDeletion", Bool),
                ]
            }
        }
        "LabelSelector" => {
            const {
                &[
                    f(1, "matchLabels", MapStr),
                    r(2, "matchExpressions", Msg("LabelSelectorRequirement")),
                ]
            }
        }
        "LabelSelectorRequirement" => {
            const { &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)] }
        }
        "DeleteOptions" => {
            const {
                &[
                    f(1, "gracePeriodSeconds", Int),
                    f(2, "preconditions", Msg("Preconditions")),
                    f(3, "orphanDependents", Bool),
                    f(4, "propagationPolicy", Str),
                    r(5, "dryRun", Str),
                ]
            }
        }
        "Preconditions" => const { &[f(1, "uid", Str), f(2, "resourceVersion", Str)] },
        "ClusterRole" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    r(2, "rules", Msg("PolicyRule")),
                    f(3, "aggregationRule", Msg("AggregationRule")),
                ]
            }
        }
        "Role" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    r(2, "rules", Msg("PolicyRule")),
                ]
            }
        }
        "ClusterRoleBinding" | "RoleBinding" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    r(2, "subjects", Msg("Subject")),
                    f(3, "roleRef", Msg("RoleRef")),
                ]
            }
        }
        "PolicyRule" => {
            const {
                &[
                    r(1, "verbs", Str),
                    r(2, "apiGroups", Str),
                    r(3, "resources", Str),
                    r(4, "resourceNames", Str),
                    r(5, "nonResourceURLs", Str),
                ]
            }
        }
        "RoleRef" => const { &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)] },
        "Subject" => {
            const {
                &[
                    f(1, "kind", Str),
                    f(2, "apiGroup", Str),
                    f(3, "name", Str),
                    f(4, "namespace", Str),
                ]
            }
        }
        "AggregationRule" => const { &[r(1, "clusterRoleSelectors", Msg("LabelSelector"))] },
        "ConfigMap" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(4, "immutable", Bool),
                    f(2, "data", MapStr),
                    f(3, "binaryData", MapBytes),
                ]
            }
        }
        "Secret" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(5, "immutable", Bool),
                    f(2, "data", MapBytes),
                    f(4, "stringData", MapStr),
                    f(3, "type", Str),
                ]
            }
        }
        "Namespace" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("NamespaceSpec")),
                ]
            }
        }
        "NamespaceSpec" => const { &[r(1, "finalizers", Str)] },
        "ServiceAccount" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    r(2, "secrets", Msg("ObjectReference")),
                    r(3, "imagePullSecrets", Msg("LocalObjectReference")),
                    f(4, "automountServiceAccountToken", Bool),
                ]
            }
        }
        "ObjectReference" => {
            const {
                &[
                    f(1, "kind", Str),
                    f(2, "namespace", Str),
                    f(3, "name", Str),
                    f(4, "uid", Str),
                    f(5, "apiVersion", Str),
                    f(6, "resourceVersion", Str),
                    f(7, "fieldPath", Str),
                ]
            }
        }
        "LocalObjectReference" => const { &[f(1, "name", Str)] },
        "SelfSubjectAccessReview" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("SelfSubjectAccessReviewSpec")),
                ]
            }
        }
        "SelfSubjectAccessReviewSpec" => {
            const {
                &[
                    f(1, "resourceAttributes", Msg("ResourceAttributes")),
                    f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
                ]
            }
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("SubjectAccessReviewSpec")),
                ]
            }
        }
        "SubjectAccessReviewSpec" => {
            const {
                &[
                    f(1, "resourceAttributes", Msg("ResourceAttributes")),
                    f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
                    f(3, "user", Str),
                    r(4, "groups", Str),
                    f(5, "extra", MapMsg("ExtraValue")),
                    f(6, "uid", Str),
                ]
            }
        }
        "ResourceAttributes" => {
            const {
                &[
                    f(1, "namespace", Str),
                    f(2, "verb", Str),
                    f(3, "group", Str),
                    f(4, "version", Str),
                    f(5, "resource", Str),
                    f(6, "subresource", Str),
                    f(7, "name", Str),
                ]
            }
        }
        "NonResourceAttributes" => const { &[f(1, "path", Str), f(2, "verb", Str)] },
        "SelfSubjectRulesReview" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("SelfSubjectRulesReviewSpec")),
                ]
            }
        }
        "SelfSubjectRulesReviewSpec" => const { &[f(1, "namespace", Str)] },
        "SelfSubjectReview" => const { &[f(1, "metadata", Msg("ObjectMeta"))] },
        "TokenRequest" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("TokenRequestSpec")),
                ]
            }
        }
        "TokenRequestSpec" => {
            const {
                &[
                    r(1, "audiences", Str),
                    f(4, "expirationSeconds", Int),
                    f(3, "boundObjectRef", Msg("BoundObjectReference")),
                ]
            }
        }
        "BoundObjectReference" => {
            const {
                &[
                    f(1, "kind", Str),
                    f(2, "apiVersion", Str),
                    f(3, "name", Str),
                    f(4, "uid", Str),
                ]
            }
        }
        "CertificateSigningRequest" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("CertificateSigningRequestSpec")),
                    f(3, "status", Msg("CertificateSigningRequestStatus")),
                ]
            }
        }
        "CertificateSigningRequestSpec" => {
            const {
                &[
                    f(1, "request", Bytes),
                    f(7, "signerName", Str),
                    f(8, "expirationSeconds", Int),
                    r(5, "usages", Str),
                    f(2, "username", Str),
                    f(3, "uid", Str),
                    r(4, "groups", Str),
                    f(6, "extra", MapMsg("ExtraValue")),
                ]
            }
        }
        "CertificateSigningRequestStatus" => {
            const {
                &[
                    r(1, "conditions", Msg("CertificateSigningRequestCondition")),
                    f(2, "certificate", Bytes),
                ]
            }
        }
        "CertificateSigningRequestCondition" => {
            const {
                &[
                    f(1, "type", Str),
                    f(6, "status", Str),
                    f(2, "reason", Str),
                    f(3, "message", Str),
                    f(4, "lastUpdateTime", Time),
                    f(5, "lastTransitionTime", Time),
                ]
            }
        }
        "ExtraValue" => const { &[r(1, "items", Str)] },
        "Eviction" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "deleteOptions", Msg("DeleteOptions")),
                ]
            }
        }
        "Time" => const { &[f(1, "seconds", Int), f(2, "nanos", Int)] },
        _ => return None,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("not a Kubernetes protobuf message (missing the k8s\\x00 prefix)")]
    Magic,
    #[error("truncated or malformed protobuf")]
    Malformed,
    #[error(
        "the testbed's API server double does not decode protobuf bodies of kind {0:?}; send JSON"
    )]
    UnsupportedKind(String),
}

/// One decoded wire value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtoError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or(ProtoError::Malformed)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtoError::Malformed)
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ProtoError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (tag, wire_type) = (key >> 3, key & 7);
        let value = match wire_type {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Wire::Fixed
            }
            2 => {
                let len =
                    usize::try_from(varint(buf, &mut pos)?).map_err(|_| ProtoError::Malformed)?;
                let bytes = buf.get(pos..pos + len).ok_or(ProtoError::Malformed)?;
                pos += len;
                Wire::Bytes(bytes)
            }
            5 => {
                pos += 4;
                Wire::Fixed
            }
            _ => return Err(ProtoError::Malformed),
        };
        if pos > buf.len() {
            return Err(ProtoError::Malformed);
        }
        out.push((tag, value));
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

fn map_entry(bytes: &[u8], value_ty: Ty) -> Result<(String, Value), ProtoError> {
    let mut key = String::new();
    let mut value = match value_ty {
        MapBytes => json!(""),
        MapMsg(_) => json!([]),
        _ => json!(""),
    };
    for (tag, wire) in fields(bytes)? {
        match (tag, wire) {
            (1, Wire::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
            (2, Wire::Bytes(b)) => {
                value = match value_ty {
                    MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(b)),
                    MapMsg(m) => message(b, m)?.get("items").cloned().unwrap_or(json!([])),
                    _ => text(b),
                }
            }
            _ => {}
        }
    }
    Ok((key, value))
}

fn scalar(ty: Ty, wire: &Wire<'_>) -> Result<Option<Value>, ProtoError> {
    Ok(match (ty, wire) {
        (Str, Wire::Bytes(b)) => Some(text(b)),
        (Bytes, Wire::Bytes(b)) => Some(json!(base64::engine::general_purpose::STANDARD.encode(b))),
        (Int, Wire::Varint(v)) => Some(json!(*v as i64)),
        (Bool, Wire::Varint(v)) => Some(json!(*v != 0)),
        (Time, Wire::Bytes(b)) => {
            let t = message(b, "Time")?;
            let seconds = t.get("seconds").and_then(Value::as_i64).unwrap_or(0);
            time::OffsetDateTime::from_unix_timestamp(seconds)
                .ok()
                .map(|t| json!(crate::common::time::format_seconds(t)))
        }
        (Msg(m), Wire::Bytes(b)) => Some(Value::Object(message(b, m)?)),
        _ => None,
    })
}

fn message(buf: &[u8], name: &str) -> Result<Map<String, Value>, ProtoError> {
    let schema = schema(name).ok_or_else(|| ProtoError::UnsupportedKind(name.to_string()))?;
    let mut out = Map::new();
    let mut maps: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for (tag, wire) in fields(buf)? {
        let Some(field) = schema.iter().find(|f| f.tag == tag) else {
            continue;
        };
        match (field.ty, &wire) {
            (MapStr | MapBytes | MapMsg(_), Wire::Bytes(b)) => {
                let (k, v) = map_entry(b, field.ty)?;
                maps.entry(field.json).or_default().insert(k, v);
            }
            _ => {
                if let Some(value) = scalar(field.ty, &wire)? {
                    if field.repeated {
                        let list = out.entry(field.json).or_insert_with(|| json!([]));
                        if let Some(items) = list.as_array_mut() {
                            items.push(value);
                        }
                    } else {
                        out.insert(field.json.to_string(), value);
                    }
                }
            }
        }
    }
    for (k, v) in maps {
        out.insert(k.to_string(), Value::Object(v));
    }
    Ok(out)
}

/// Decodes a `k8s\0`-prefixed runtime.Unknown envelope into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let envelope = body.strip_prefix(b"k8s\x00").ok_or(ProtoError::Magic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (tag, wire) in fields(envelope)? {
        match (tag, wire) {
            (1, Wire::Bytes(type_meta)) => {
                for (t, w) in fields(type_meta)? {
                    match (t, w) {
                        (1, Wire::Bytes(b)) => {
                            api_version = String::from_utf8_lossy(b).into_owned()
                        }
                        (2, Wire::Bytes(b)) => kind = String::from_utf8_lossy(b).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut object = message(raw, &kind)?;
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(tag: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(tag << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let mut type_meta = len_field(1, b"v1");
        type_meta.extend(len_field(2, b"ConfigMap"));
        let mut meta = len_field(1, b"foo");
        meta.extend(len_field(3, b"kube-system"));
        let mut entry = len_field(1, b"a");
        entry.extend(len_field(2, b"b"));
        let mut cm = len_field(1, &meta);
        cm.extend(len_field(2, &entry));
        let mut envelope = b"k8s\x00".to_vec();
        envelope.extend(len_field(1, &type_meta));
        envelope.extend(len_field(2, &cm));
        let v = decode(&envelope).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "foo", "namespace": "kube-system"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn unknown_kinds_are_refused() {
        let mut type_meta = len_field(1, b"apps/v1");
        type_meta.extend(len_field(2, b"Deployment"));
        let mut envelope = b"k8s\x00".to_vec();
        envelope.extend(len_field(1, &type_meta));
        assert!(matches!(
            decode(&envelope),
            Err(ProtoError::UnsupportedKind(_))
        ));
    }
}
