//! Authorization: the privileged-group bypass, then the --authorization-mode chain (Node, RBAC,
//! AlwaysAllow, AlwaysDeny) as the real server evaluates it, with its Forbidden wording.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::Server;
use super::authn::UserInfo;
use super::rbac::{Attributes, Policy, rule_allows};
use super::status::{ApiError, ApiResult};

enum Decision {
    Allow,
    Deny(String),
    NoOpinion,
}

/// Allows the request or returns the real server's 403.
pub async fn authorize(server: &Server, user: &UserInfo, attrs: &Attributes) -> ApiResult<()> {
    if user.groups.iter().any(|g| g == "system:masters") {
        return Ok(());
    }
    let mut reason = String::new();
    for mode in &server.opts.authorization_modes {
        let decision = match mode.as_str() {
            "AlwaysAllow" => Decision::Allow,
            "AlwaysDeny" => Decision::Deny(String::new()),
            "Node" => node_decision(server, user, attrs).await?,
            "RBAC" => {
                if load_policy(server, &attrs.namespace)
                    .await?
                    .allows(user, attrs)
                {
                    Decision::Allow
                } else {
                    Decision::NoOpinion
                }
            }
            _ => Decision::NoOpinion,
        };
        match decision {
            Decision::Allow => return Ok(()),
            Decision::Deny(r) => {
                reason = r;
                break;
            }
            Decision::NoOpinion => {}
        }
    }
    Err(ApiError::forbidden(forbidden_message(user, attrs, &reason)))
}

/// Whether `user` may do `attrs`, without the error (SubjectAccessReviews, CSR approval checks).
pub async fn allowed(server: &Server, user: &UserInfo, attrs: &Attributes) -> ApiResult<bool> {
    match authorize(server, user, attrs).await {
        Ok(()) => Ok(true),
        Err(e) if e.code == 403 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The RBAC objects under each etcd prefix last read, with the prefix's fingerprint then (key count,
/// newest mod revision): an authorization reads them again only when the fingerprint moved, instead of
/// reading and decoding every role and binding on every request.
#[derive(Default)]
pub struct PolicyCache(Mutex<HashMap<String, CachedList>>);

/// An etcd prefix's (key count, newest mod revision).
type Fingerprint = (i64, i64);

struct CachedList {
    at: Fingerprint,
    items: Arc<Vec<Value>>,
}

impl PolicyCache {
    fn get(&self, prefix: &str, fingerprint: Fingerprint) -> Option<Arc<Vec<Value>>> {
        let lists = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lists
            .get(prefix)
            .filter(|cached| cached.at == fingerprint)
            .map(|cached| cached.items.clone())
    }

    fn put(&self, prefix: String, at: Fingerprint, items: Arc<Vec<Value>>) {
        let mut lists = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lists.insert(prefix, CachedList { at, items });
    }
}

pub async fn load_policy(server: &Server, namespace: &str) -> ApiResult<Policy> {
    let list = |plural: &'static str, ns: Option<String>| async move {
        let rt = server
            .registry_type("rbac.authorization.k8s.io", "v1", plural)
            .ok_or_else(|| ApiError::internal("rbac types missing"))?;
        let prefix = rt.list_prefix(&server.opts.etcd_prefix, ns.as_deref());
        let now = server.etcd.fingerprint(&prefix).await?;
        if let Some(items) = server.policy_cache.get(&prefix, now) {
            return Ok::<Arc<Vec<Value>>, ApiError>(items);
        }
        let (stored, _) = server.etcd.list(&prefix).await?;
        // The fingerprint of what was read (the prefix may have moved since `now`).
        let read = (
            stored.len() as i64,
            stored.iter().map(|s| s.revision).max().unwrap_or(0),
        );
        let items = Arc::new(stored.into_iter().map(|s| s.object).collect::<Vec<_>>());
        server.policy_cache.put(prefix, read, items.clone());
        Ok(items)
    };
    let namespace = (!namespace.is_empty()).then(|| namespace.to_string());
    let (roles, role_bindings) = match &namespace {
        Some(_) => (
            list("roles", namespace.clone()).await?,
            list("rolebindings", namespace.clone()).await?,
        ),
        None => Default::default(),
    };
    Ok(Policy {
        cluster_roles: list("clusterroles", None).await?,
        cluster_role_bindings: list("clusterrolebindings", None).await?,
        roles,
        role_bindings,
    })
}

/// The Node authorizer: node identities get the node rules, their own Lease and CSINode, and only
/// the secrets, configmaps, volumes and service-account tokens of pods bound to them.
async fn node_decision(
    server: &Server,
    user: &UserInfo,
    attrs: &Attributes,
) -> ApiResult<Decision> {
    let Some(node) = user.node_name() else {
        return Ok(Decision::NoOpinion);
    };
    if !attrs.resource_request {
        return Ok(Decision::NoOpinion);
    }
    let no_relationship = || {
        Decision::Deny(format!(
            "no relationship found between node '{node}' and this object"
        ))
    };
    match (
        attrs.api_group.as_str(),
        attrs.resource.as_str(),
        attrs.subresource.as_str(),
    ) {
        ("", "secrets" | "configmaps" | "persistentvolumeclaims" | "persistentvolumes", "") => {
            if attrs.verb != "get" {
                return Ok(Decision::Deny(
                    "can only get individual resources of this type".to_string(),
                ));
            }
            Ok(if pod_references(server, node, attrs).await? {
                Decision::Allow
            } else {
                no_relationship()
            })
        }
        ("", "serviceaccounts", "token") => {
            if attrs.verb != "create" {
                return Ok(Decision::Deny(
                    "can only create tokens for individual service accounts".into(),
                ));
            }
            Ok(if pod_references(server, node, attrs).await? {
                Decision::Allow
            } else {
                no_relationship()
            })
        }
        ("coordination.k8s.io", "leases", "") => {
            let verbs = ["get", "create", "update", "patch", "delete"];
            if attrs.namespace != "kube-node-lease" || !verbs.contains(&attrs.verb.as_str()) {
                return Ok(Decision::Deny(
                    "can only access node lease with the same name as the requesting node".into(),
                ));
            }
            if attrs.verb != "create" && attrs.name != node {
                return Ok(Decision::Deny(
                    "can only access node lease with the same name as the requesting node".into(),
                ));
            }
            Ok(Decision::Allow)
        }
        ("storage.k8s.io", "csinodes", "") => {
            if attrs.verb != "create" && attrs.name != node {
                return Ok(Decision::Deny(
                    "can only access CSINode with the same name as the requesting node".into(),
                ));
            }
            Ok(Decision::Allow)
        }
        _ => Ok(
            if super::policy::node_rules()
                .iter()
                .any(|r| rule_allows(r, attrs))
            {
                Decision::Allow
            } else {
                Decision::NoOpinion
            },
        ),
    }
}

/// Whether a pod bound to `node` uses the secret, configmap, claim or service account named by `attrs`.
async fn pod_references(server: &Server, node: &str, attrs: &Attributes) -> ApiResult<bool> {
    let pods = server
        .registry_type("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods type missing"))?;
    let (items, _) = server
        .etcd
        .list(&pods.list_prefix(&server.opts.etcd_prefix, Some(&attrs.namespace)))
        .await?;
    Ok(items.iter().any(|p| {
        let spec = &p.object["spec"];
        spec["nodeName"].as_str() == Some(node) && references(spec, &attrs.resource, &attrs.name)
    }))
}

fn references(spec: &Value, resource: &str, name: &str) -> bool {
    let is = |v: &Value| v.as_str() == Some(name);
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    let containers: Vec<Value> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().cloned().unwrap_or_default())
        .collect();
    match resource {
        "serviceaccounts" => is(&spec["serviceAccountName"]),
        "secrets" => {
            spec["imagePullSecrets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| is(&s["name"]))
                || volumes.iter().any(|v| {
                    is(&v["secret"]["secretName"])
                        || v["projected"]["sources"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|s| is(&s["secret"]["name"]))
                })
                || containers.iter().any(|c| {
                    c["env"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|e| is(&e["valueFrom"]["secretKeyRef"]["name"]))
                        || c["envFrom"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|e| is(&e["secretRef"]["name"]))
                })
        }
        "configmaps" => {
            volumes.iter().any(|v| {
                is(&v["configMap"]["name"])
                    || v["projected"]["sources"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|s| is(&s["configMap"]["name"]))
            }) || containers.iter().any(|c| {
                c["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| is(&e["valueFrom"]["configMapKeyRef"]["name"]))
                    || c["envFrom"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|e| is(&e["configMapRef"]["name"]))
            })
        }
        "persistentvolumeclaims" => volumes
            .iter()
            .any(|v| is(&v["persistentVolumeClaim"]["claimName"])),
        _ => false,
    }
}

pub fn forbidden_message(user: &UserInfo, attrs: &Attributes, reason: &str) -> String {
    let suffix = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    if !attrs.resource_request {
        return format!(
            "forbidden: User {:?} cannot {} path {:?}{suffix}",
            user.name, attrs.verb, attrs.path
        );
    }
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    let subject = if attrs.name.is_empty() {
        format!("{qualified} is forbidden")
    } else {
        format!("{qualified} {:?} is forbidden", attrs.name)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", attrs.namespace)
    };
    format!(
        "{subject}: User {:?} cannot {} resource {:?} in API group {:?} {scope}{suffix}",
        user.name,
        attrs.verb,
        attrs.combined_resource(),
        attrs.api_group
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_match_the_real_wording() {
        let user = UserInfo {
            name: "system:anonymous".into(),
            ..Default::default()
        };
        let attrs = Attributes::resource("get", "", "secrets", "", "kube-system", "foo");
        assert_eq!(
            forbidden_message(&user, &attrs, ""),
            "secrets \"foo\" is forbidden: User \"system:anonymous\" cannot get resource \"secrets\" in API group \"\" in the namespace \"kube-system\""
        );
        let attrs = Attributes::resource("list", "", "nodes", "", "", "");
        assert_eq!(
            forbidden_message(&user, &attrs, ""),
            "nodes is forbidden: User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
    }
}
