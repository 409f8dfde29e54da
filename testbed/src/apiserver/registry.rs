//! The resource types the API double serves: built-in kinds with their storage keys, plus the kinds
//! that CustomResourceDefinitions add.

use serde_json::Value;

/// How a resource behaves in storage and in discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub subresources: Vec<String>,
    /// Prefix under the etcd prefix (`/registry/<storage>/...`), as the real API server stores it.
    pub storage: String,
    /// Only `create` is served and nothing is stored (reviews).
    pub virtual_create_only: bool,
    pub categories: Vec<String>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    pub fn is_custom(&self) -> bool {
        self.storage.starts_with('~')
    }

    /// The etcd key of one object (`None` namespace for cluster-scoped kinds).
    pub fn key(&self, prefix: &str, namespace: Option<&str>, name: &str) -> String {
        let storage = self.storage.trim_start_matches('~');
        match namespace {
            Some(ns) if self.namespaced => format!("{prefix}/{storage}/{ns}/{name}"),
            _ => format!("{prefix}/{storage}/{name}"),
        }
    }

    /// The etcd key prefix of a list (all namespaces when `namespace` is `None`).
    pub fn list_prefix(&self, prefix: &str, namespace: Option<&str>) -> String {
        let storage = self.storage.trim_start_matches('~');
        match namespace {
            Some(ns) if self.namespaced => format!("{prefix}/{storage}/{ns}/"),
            _ => format!("{prefix}/{storage}/"),
        }
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        if self.virtual_create_only {
            vec!["create"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }
}

struct Def {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    sub: &'static [&'static str],
    storage: &'static str,
}

/// A row of the built-in kinds table below (positional, so the table stays one line a kind).
#[allow(clippy::too_many_arguments)]
const fn def(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    sub: &'static [&'static str],
    storage: &'static str,
) -> Def {
    Def {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        sub,
        storage,
    }
}

const NS: bool = true;
const CLUSTER: bool = false;

/// Built-in kinds. Storage prefixes follow the real API server (nodes are "minions", services
/// "services/specs", endpoints "services/endpoints").
const BUILT_IN: &[Def] = &[
    def(
        "",
        "v1",
        "Namespace",
        "namespaces",
        CLUSTER,
        &["ns"],
        &["status", "finalize"],
        "namespaces",
    ),
    def(
        "",
        "v1",
        "Node",
        "nodes",
        CLUSTER,
        &["no"],
        &["status", "proxy"],
        "minions",
    ),
    def(
        "",
        "v1",
        "Pod",
        "pods",
        NS,
        &["po"],
        &["status", "binding", "eviction", "log"],
        "pods",
    ),
    def("", "v1", "Secret", "secrets", NS, &[], &[], "secrets"),
    def(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        NS,
        &["cm"],
        &[],
        "configmaps",
    ),
    def(
        "",
        "v1",
        "Service",
        "services",
        NS,
        &["svc"],
        &["status", "proxy"],
        "services/specs",
    ),
    def(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        NS,
        &["ep"],
        &[],
        "services/endpoints",
    ),
    def(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        NS,
        &["sa"],
        &["token"],
        "serviceaccounts",
    ),
    def("", "v1", "Event", "events", NS, &["ev"], &[], "events"),
    def(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        NS,
        &["limits"],
        &[],
        "limitranges",
    ),
    def(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        NS,
        &["quota"],
        &["status"],
        "resourcequotas",
    ),
    def(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        CLUSTER,
        &["pv"],
        &["status"],
        "persistentvolumes",
    ),
    def(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        NS,
        &["pvc"],
        &["status"],
        "persistentvolumeclaims",
    ),
    def(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        NS,
        &["rc"],
        &["status", "scale"],
        "controllers",
    ),
    def("", "v1", "Binding", "bindings", NS, &[], &[], ""),
    def(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        NS,
        &["deploy"],
        &["status", "scale"],
        "deployments",
    ),
    def(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        NS,
        &["ds"],
        &["status"],
        "daemonsets",
    ),
    def(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        NS,
        &["rs"],
        &["status", "scale"],
        "replicasets",
    ),
    def(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        NS,
        &["sts"],
        &["status", "scale"],
        "statefulsets",
    ),
    def(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        NS,
        &[],
        &[],
        "controllerrevisions",
    ),
    def("batch", "v1", "Job", "jobs", NS, &[], &["status"], "jobs"),
    def(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        NS,
        &["cj"],
        &["status"],
        "cronjobs",
    ),
    def(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        NS,
        &[],
        &[],
        "roles",
    ),
    def(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        NS,
        &[],
        &[],
        "rolebindings",
    ),
    def(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        CLUSTER,
        &[],
        &[],
        "clusterroles",
    ),
    def(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        CLUSTER,
        &[],
        &[],
        "clusterrolebindings",
    ),
    def(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        CLUSTER,
        &["csr"],
        &["status", "approval"],
        "certificatesigningrequests",
    ),
    def(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        NS,
        &[],
        &[],
        "leases",
    ),
    def(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        CLUSTER,
        &["crd", "crds"],
        &["status"],
        "apiextensions.k8s.io/customresourcedefinitions",
    ),
    def(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        CLUSTER,
        &["pc"],
        &[],
        "priorityclasses",
    ),
    def(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        NS,
        &[],
        &[],
        "endpointslices",
    ),
    def(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        NS,
        &["pdb"],
        &["status"],
        "poddisruptionbudgets",
    ),
    def(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        NS,
        &["netpol"],
        &[],
        "networkpolicies",
    ),
    def(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        NS,
        &["ing"],
        &["status"],
        "ingress",
    ),
    def(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        CLUSTER,
        &[],
        &[],
        "ingressclasses",
    ),
    def(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        CLUSTER,
        &["sc"],
        &[],
        "storageclasses",
    ),
    def(
        "storage.k8s.io",
        "v1",
        "CSIDriver",
        "csidrivers",
        CLUSTER,
        &[],
        &[],
        "csidrivers",
    ),
    def(
        "storage.k8s.io",
        "v1",
        "CSINode",
        "csinodes",
        CLUSTER,
        &[],
        &[],
        "csinodes",
    ),
    def(
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        "runtimeclasses",
        CLUSTER,
        &[],
        &[],
        "runtimeclasses",
    ),
    def(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        NS,
        &["ev"],
        &[],
        "events",
    ),
    def(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        CLUSTER,
        &[],
        &[],
        "validatingwebhookconfigurations",
    ),
    def(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        CLUSTER,
        &[],
        &[],
        "mutatingwebhookconfigurations",
    ),
    def(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        CLUSTER,
        &[],
        &[],
        "",
    ),
    def(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        CLUSTER,
        &[],
        &[],
        "",
    ),
    def(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        NS,
        &[],
        &[],
        "",
    ),
    def(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        CLUSTER,
        &[],
        &[],
        "",
    ),
    def(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        CLUSTER,
        &[],
        &[],
        "",
    ),
    def(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        CLUSTER,
        &[],
        &[],
        "",
    ),
];

/// Every resource type the server knows now: built-ins plus the served versions of established CRDs.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub types: Vec<ResourceType>,
}

impl Registry {
    pub fn built_in() -> Registry {
        let types = BUILT_IN
            .iter()
            .map(|d| ResourceType {
                group: d.group.into(),
                version: d.version.into(),
                kind: d.kind.into(),
                plural: d.plural.into(),
                singular: d.kind.to_lowercase(),
                namespaced: d.namespaced,
                short_names: d.short.iter().map(|s| s.to_string()).collect(),
                subresources: d.sub.iter().map(|s| s.to_string()).collect(),
                storage: d.storage.into(),
                virtual_create_only: d.storage.is_empty(),
                categories: Vec::new(),
            })
            .collect();
        Registry { types }
    }

    /// Adds the kinds of stored CustomResourceDefinitions.
    pub fn with_crds(mut self, crds: &[Value]) -> Registry {
        for crd in crds {
            let spec = &crd["spec"];
            let group = spec["group"].as_str().unwrap_or_default();
            let names = &spec["names"];
            let plural = names["plural"].as_str().unwrap_or_default();
            let kind = names["kind"].as_str().unwrap_or_default();
            if group.is_empty() || plural.is_empty() || kind.is_empty() {
                continue;
            }
            for version in spec["versions"].as_array().into_iter().flatten() {
                if version["served"].as_bool() != Some(true) {
                    continue;
                }
                let mut subresources = Vec::new();
                if version["subresources"]["status"].is_object() {
                    subresources.push("status".to_string());
                }
                if version["subresources"]["scale"].is_object() {
                    subresources.push("scale".to_string());
                }
                self.types.push(ResourceType {
                    group: group.into(),
                    version: version["name"].as_str().unwrap_or_default().into(),
                    kind: kind.into(),
                    plural: plural.into(),
                    singular: names["singular"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| kind.to_lowercase()),
                    namespaced: spec["scope"].as_str() == Some("Namespaced"),
                    short_names: strings(&names["shortNames"]),
                    subresources,
                    // Custom resources share one storage per group/plural across versions.
                    storage: format!("~{group}/{plural}"),
                    virtual_create_only: false,
                    categories: strings(&names["categories"]),
                });
            }
        }
        self
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn find_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
    }

    /// Groups in discovery order (core first), each with its versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn storage_keys_follow_the_real_server() {
        let r = Registry::built_in();
        let nodes = r.find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key("/registry", None, "n1"), "/registry/minions/n1");
        let svc = r.find("", "v1", "services").unwrap();
        assert_eq!(
            svc.key("/registry", Some("default"), "kubernetes"),
            "/registry/services/specs/default/kubernetes"
        );
        assert!(
            r.find("authorization.k8s.io", "v1", "subjectaccessreviews")
                .unwrap()
                .virtual_create_only
        );
    }

    #[test]
    fn crds_add_their_served_versions() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "subresources": {"status": {}}}, {"name": "v0", "served": false}]}});
        let r = Registry::built_in().with_crds(&[crd]);
        let w = r.find("example.com", "v1", "widgets").unwrap();
        assert!(w.namespaced && w.has_status() && w.is_custom());
        assert_eq!(
            w.key("/registry", Some("a"), "b"),
            "/registry/example.com/widgets/a/b"
        );
        assert!(r.find("example.com", "v0", "widgets").is_none());
    }
}
