//! RBAC authorization over the Roles, ClusterRoles and bindings stored in etcd, with the real
//! authorizer's matching rules (wildcards, `*/subresource`, resourceNames, non-resource URLs) and
//! ClusterRole aggregation.

use std::sync::Arc;

use serde_json::Value;

use super::authn::UserInfo;

/// What a request asks to do, as the authorizers see it.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub verb: String,
    pub resource_request: bool,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

impl Attributes {
    pub fn resource(
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The RBAC objects an authorization decision reads.
#[derive(Debug, Default)]
pub struct Policy {
    pub cluster_roles: Arc<Vec<Value>>,
    pub cluster_role_bindings: Arc<Vec<Value>>,
    pub roles: Arc<Vec<Value>>,
    pub role_bindings: Arc<Vec<Value>>,
}

impl Policy {
    /// Whether any binding grants `attrs` to `user`.
    pub fn allows(&self, user: &UserInfo, attrs: &Attributes) -> bool {
        for binding in self.cluster_role_bindings.iter() {
            if subjects_match(binding, user, "")
                && self
                    .rules_of(binding, true)
                    .iter()
                    .any(|r| rule_allows(r, attrs))
            {
                return true;
            }
        }
        if attrs.namespace.is_empty() {
            return false;
        }
        for binding in self
            .role_bindings
            .iter()
            .filter(|b| b["metadata"]["namespace"].as_str() == Some(attrs.namespace.as_str()))
        {
            if subjects_match(binding, user, &attrs.namespace)
                && self
                    .rules_of(binding, false)
                    .iter()
                    .any(|r| rule_allows(r, attrs))
            {
                return true;
            }
        }
        false
    }

    /// Every rule granted to `user` in `namespace` (for SelfSubjectRulesReview).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<Value> {
        let mut rules = Vec::new();
        for b in self.cluster_role_bindings.iter() {
            if subjects_match(b, user, "") {
                rules.extend(self.rules_of(b, true));
            }
        }
        for b in self
            .role_bindings
            .iter()
            .filter(|b| b["metadata"]["namespace"].as_str() == Some(namespace))
        {
            if subjects_match(b, user, namespace) {
                rules.extend(self.rules_of(b, false));
            }
        }
        rules
    }

    fn rules_of(&self, binding: &Value, cluster_binding: bool) -> Vec<Value> {
        let role_ref = &binding["roleRef"];
        let name = role_ref["name"].as_str().unwrap_or_default();
        match role_ref["kind"].as_str() {
            Some("ClusterRole") => self
                .cluster_roles
                .iter()
                .find(|r| r["metadata"]["name"].as_str() == Some(name))
                .map(|r| self.cluster_role_rules(r))
                .unwrap_or_default(),
            Some("Role") if !cluster_binding => {
                let ns = binding["metadata"]["namespace"].as_str();
                self.roles
                    .iter()
                    .find(|r| {
                        r["metadata"]["name"].as_str() == Some(name)
                            && r["metadata"]["namespace"].as_str() == ns
                    })
                    .map(rules)
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// A ClusterRole's rules, with the (recursively aggregated) rules of the roles its
    /// aggregationRule selects, as the aggregation controller fills them in.
    fn cluster_role_rules(&self, role: &Value) -> Vec<Value> {
        let mut visited = Vec::new();
        self.aggregate(role, &mut visited)
    }

    fn aggregate(&self, role: &Value, visited: &mut Vec<String>) -> Vec<Value> {
        let name = role["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if visited.contains(&name) {
            return Vec::new();
        }
        visited.push(name);
        let mut out = rules(role);
        if let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() {
            for other in self.cluster_roles.iter() {
                let labels = &other["metadata"]["labels"];
                if selectors.iter().any(|s| selector_matches(s, labels)) {
                    out.extend(self.aggregate(other, visited));
                }
            }
        }
        out
    }
}

fn rules(role: &Value) -> Vec<Value> {
    role["rules"].as_array().cloned().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A label selector (`matchLabels` and `matchExpressions`) against a label map.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    if let Some(match_labels) = selector["matchLabels"].as_object() {
        for (k, v) in match_labels {
            if labels[k.as_str()] != *v {
                return false;
            }
        }
    }
    for expr in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expr["key"].as_str().unwrap_or_default();
        let value = labels[key].as_str();
        let values = strings(&expr["values"]);
        let ok = match expr["operator"].as_str() {
            Some("In") => value.is_some_and(|v| values.contains(&v)),
            Some("NotIn") => !value.is_some_and(|v| values.contains(&v)),
            Some("Exists") => value.is_some(),
            Some("DoesNotExist") => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn subjects_match(binding: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            let name = s["name"].as_str().unwrap_or_default();
            match s["kind"].as_str() {
                Some("User") => user.name == name,
                Some("Group") => user.groups.iter().any(|g| g == name),
                Some("ServiceAccount") => {
                    let ns = s["namespace"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .unwrap_or(binding_namespace);
                    user.name == format!("system:serviceaccount:{ns}:{name}")
                }
                _ => false,
            }
        })
}

/// The real RBAC rule match.
pub fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let verbs = strings(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return strings(&rule["nonResourceURLs"]).iter().any(|u| {
            *u == "*"
                || *u == attrs.path
                || (u.ends_with('*') && attrs.path.starts_with(u.trim_end_matches('*')))
        });
    }
    let groups = strings(&rule["apiGroups"]);
    if !groups.iter().any(|g| *g == "*" || *g == attrs.api_group) {
        return false;
    }
    let combined = attrs.combined_resource();
    let resources = strings(&rule["resources"]);
    let resource_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty() && *r == format!("*/{}", attrs.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(&rule["resourceNames"]);
    names.is_empty() || names.contains(&attrs.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: Default::default(),
        }
    }

    #[test]
    fn bindings_grant_by_user_group_and_service_account() {
        let policy = Policy {
            cluster_roles: super::super::policy::cluster_roles().into(),
            cluster_role_bindings: super::super::policy::cluster_role_bindings().into(),
            roles: super::super::policy::namespaced()
                .into_iter()
                .filter(|o| o["kind"] == "Role")
                .collect::<Vec<_>>()
                .into(),
            role_bindings: super::super::policy::namespaced()
                .into_iter()
                .filter(|o| o["kind"] == "RoleBinding")
                .collect::<Vec<_>>()
                .into(),
        };
        let admin = user(
            "kubernetes-super-admin",
            &["system:masters", "system:authenticated"],
        );
        assert!(policy.allows(
            &admin,
            &Attributes::resource("delete", "", "secrets", "", "kube-system", "x")
        ));
        let nobody = user("someone", &["system:authenticated"]);
        assert!(!policy.allows(
            &nobody,
            &Attributes::resource("get", "", "secrets", "", "kube-system", "x")
        ));
        let discovery = Attributes {
            verb: "get".into(),
            path: "/apis/apps/v1".into(),
            ..Default::default()
        };
        assert!(policy.allows(&nobody, &discovery));
        let signer = user(
            "system:serviceaccount:kube-system:bootstrap-signer",
            &["system:serviceaccounts"],
        );
        assert!(policy.allows(
            &signer,
            &Attributes::resource(
                "update",
                "",
                "configmaps",
                "",
                "kube-public",
                "cluster-info"
            )
        ));
        assert!(!policy.allows(
            &signer,
            &Attributes::resource("update", "", "configmaps", "", "kube-public", "other")
        ));
    }

    #[test]
    fn aggregation_and_subresource_wildcards() {
        let policy = Policy {
            cluster_roles: super::super::policy::cluster_roles().into(),
            cluster_role_bindings: Arc::new(vec![
                json!({"roleRef": {"kind": "ClusterRole", "name": "admin"}, "subjects": [{"kind": "User", "name": "a"}]}),
            ]),
            ..Default::default()
        };
        let a = user("a", &[]);
        assert!(
            policy.allows(
                &a,
                &Attributes::resource("list", "", "pods", "", "default", "")
            ),
            "admin aggregates edit and view"
        );
        let rule = json!({"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]});
        assert!(rule_allows(
            &rule,
            &Attributes::resource("update", "apps", "deployments", "scale", "d", "x")
        ));
        assert!(!rule_allows(
            &rule,
            &Attributes::resource("update", "apps", "deployments", "", "d", "x")
        ));
    }
}
