//! The object a gateway call is about — its type (apiVersion, kind, plural, scope) and its namespace and
//! name — and the k8s-openapi types the typed calls take.

use std::fmt::Debug;

use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ClusterError;

/// Whether a k8s-openapi type lives in namespaces, and kube's API handle for it.
pub trait ScopeKind: Sized {
    const NAMESPACED: bool;

    /// The handle for one namespace (`Some`) or all of them / the cluster (`None`).
    fn api<K>(client: kube::Client, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = Self, DynamicType = ()>;
}

impl ScopeKind for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;

    fn api<K>(client: kube::Client, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = Self, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }
}

impl ScopeKind for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;

    fn api<K>(client: kube::Client, _namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = Self, DynamicType = ()>,
    {
        Api::all(client)
    }
}

/// kube's API handle for a k8s-openapi type.
pub fn typed_api<K: Typed>(client: kube::Client, namespace: Option<&str>) -> Api<K> {
    <K::Scope as ScopeKind>::api::<K>(client, namespace)
}

/// A k8s-openapi object type (ConfigMap, Secret, ClusterRole, DaemonSet, Node, CRD…).
pub trait Typed:
    kube::Resource<DynamicType = (), Scope: ScopeKind>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Typed for K where
    K: kube::Resource<DynamicType = (), Scope: ScopeKind>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// One object's address in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The address of a k8s-openapi object.
    pub fn of<K: Typed>(namespace: Option<&str>, name: &str) -> Result<ObjectRef, ClusterError> {
        let resource = ApiResource::erase::<K>(&());
        let namespaced = <K::Scope as ScopeKind>::NAMESPACED;
        ObjectRef::new(resource, namespaced, namespace, name)
    }

    /// An address, checked: a name is required, and a namespace exactly when the type is namespaced.
    pub fn new(
        resource: ApiResource,
        namespaced: bool,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<ObjectRef, ClusterError> {
        let namespace = namespace.filter(|n| !n.is_empty());
        if name.is_empty() {
            return Err(ClusterError::Invalid(format!(
                "a {} {} needs a name",
                resource.api_version, resource.kind
            )));
        }
        if namespaced && namespace.is_none() {
            return Err(ClusterError::Invalid(format!(
                "{} {name:?} ({}) is namespaced but no namespace was given",
                resource.kind, resource.api_version
            )));
        }
        Ok(ObjectRef {
            namespace: if namespaced {
                namespace.map(str::to_string)
            } else {
                None
            },
            resource,
            namespaced,
            name: name.to_string(),
        })
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn qualified_name(&self) -> String {
        qualified(self.namespace.as_deref(), &self.name)
    }

    /// The plan and journal target: `<apiVersion> <Kind> <namespace>/<name>`.
    pub fn target(&self) -> String {
        target(
            &self.resource.api_version,
            &self.resource.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }

    /// `ConfigMap "kube-system/kubeadm-config"`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {:?}", self.resource.kind, self.qualified_name())
    }

    pub(crate) fn api(&self, client: kube::Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client, ns, &self.resource),
            None => Api::all_with(client, &self.resource),
        }
    }
}

pub fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

pub use crate::host::plan::api_object_target as target;

/// What a manifest document says about itself: apiVersion, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl Identity {
    pub fn of(object: &Value) -> Result<Identity, ClusterError> {
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(object, |v, key| v.get(*key))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let missing = |what: &str| {
            ClusterError::Invalid(format!("an object without {what}: {}", abbreviated(object)))
        };
        Ok(Identity {
            api_version: field(&["apiVersion"]).ok_or_else(|| missing("apiVersion"))?,
            kind: field(&["kind"]).ok_or_else(|| missing("kind"))?,
            namespace: field(&["metadata", "namespace"]),
            name: field(&["metadata", "name"]).ok_or_else(|| missing("metadata.name"))?,
        })
    }

    /// `(group, version)` of the apiVersion (`("", "v1")` for the core group).
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", self.api_version.as_str()),
        }
    }

    pub fn target(&self) -> String {
        target(
            &self.api_version,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {:?}",
            self.kind,
            qualified(self.namespace.as_deref(), &self.name)
        )
    }
}

fn abbreviated(object: &Value) -> String {
    let text = object.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Node};
    use serde_json::json;

    #[test]
    fn typed_refs_know_their_scope_and_name_themselves() {
        let cm = ObjectRef::of::<ConfigMap>(Some("kube-system"), "kubeadm-config").unwrap();
        assert_eq!(cm.target(), "v1 ConfigMap kube-system/kubeadm-config");
        assert_eq!(cm.describe(), "ConfigMap \"kube-system/kubeadm-config\"");
        assert_eq!(cm.resource.plural, "configmaps");
        let node = ObjectRef::of::<Node>(Some("ignored"), "n1").unwrap();
        assert_eq!(node.namespace, None);
        assert_eq!(node.target(), "v1 Node n1");
        let err = ObjectRef::of::<ConfigMap>(None, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("namespaced but no namespace"), "{err}");
        assert!(ObjectRef::of::<Node>(None, "").is_err());
    }

    #[test]
    fn manifest_identities_need_version_kind_and_name() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-flannel-ds", "namespace": "kube-flannel"}});
        let id = Identity::of(&ds).unwrap();
        assert_eq!(id.group_version(), ("apps", "v1"));
        assert_eq!(
            id.target(),
            "apps/v1 DaemonSet kube-flannel/kube-flannel-ds"
        );
        let core = Identity::of(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
        )
        .unwrap();
        assert_eq!(core.group_version(), ("", "v1"));
        let err = Identity::of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("an object without metadata.name"), "{err}");
    }
}
