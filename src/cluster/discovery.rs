//! API discovery for objects of any kind: which resource (plural, scope) serves an apiVersion and kind,
//! asked of the server one group-version at a time, cached, and asked again when a CRD adds a kind.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};

use super::client::Client;
use super::error::ClusterError;
use super::object::{Identity, ObjectRef};
use super::retry::retrying;

/// The resources of each group-version seen so far.
#[derive(Debug, Default)]
pub struct Discovery {
    served: Mutex<HashMap<String, Vec<(ApiResource, ApiCapabilities)>>>,
}

impl Discovery {
    /// Where `identity` lives. A namespaced kind without a namespace goes to `default`, as kubectl
    /// does; a namespace given to a cluster-scoped kind is dropped.
    pub async fn locate(
        &self,
        client: &Client,
        identity: &Identity,
    ) -> Result<ObjectRef, ClusterError> {
        let (resource, namespaced) = self
            .resolve(client, &identity.api_version, &identity.kind)
            .await?;
        let namespace = match (&identity.namespace, namespaced) {
            (Some(ns), true) => Some(ns.as_str()),
            (None, true) => Some("default"),
            (_, false) => None,
        };
        ObjectRef::new(resource, namespaced, namespace, &identity.name)
    }

    /// The resource serving `kind` in `api_version`, and whether it is namespaced.
    pub async fn resolve(
        &self,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, bool), ClusterError> {
        let known = self.lookup(api_version, kind);
        if let Some(found) = known {
            return Ok(found);
        }
        self.refresh(client, api_version).await?;
        self.lookup(api_version, kind)
            .ok_or_else(|| ClusterError::UnknownKind {
                what: format!("discovering {kind} at {}", client.server()),
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
    }

    fn lookup(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        let served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        served
            .get(api_version)?
            .iter()
            .find_map(|(resource, caps)| {
                (resource.kind == kind)
                    .then(|| (resource.clone(), matches!(caps.scope, Scope::Namespaced)))
            })
    }

    /// Asks the server again for one group-version's resources (after a CRD added some). A
    /// group-version the server does not serve is remembered as serving nothing.
    pub async fn refresh(&self, client: &Client, api_version: &str) -> Result<(), ClusterError> {
        let gv: GroupVersion = api_version
            .parse()
            .map_err(|_| ClusterError::Invalid(format!("{api_version:?} is not an apiVersion")))?;
        let what = format!(
            "discovering the resources of {api_version} at {}",
            client.server()
        );
        let kube = client.kube();
        let resources = match retrying(client.retry(), &what, || {
            kube::discovery::pinned_group(&kube, &gv)
        })
        .await
        {
            Ok(group) => group.versioned_resources(&gv.version),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(api_version.to_string(), resources);
        Ok(())
    }

    /// Forgets what is known of a group-version, so the next lookup asks the server.
    pub fn forget(&self, api_version: &str) {
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(api_version);
    }
}
