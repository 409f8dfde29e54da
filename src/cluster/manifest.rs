//! Applying a multi-document manifest of any kinds (an addon's YAML): each object by server-side apply
//! through discovery. Objects whose kind a CustomResourceDefinition of the same manifest adds are applied
//! once that CRD is established and discovery has been asked again, wherever they stand in the file.

use std::time::Duration;

use serde_json::Value;

use super::error::ClusterError;
use super::gateway::Gateway;
use super::object::Identity;

/// How long a CRD of the manifest may take to become established.
pub const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// The objects of a manifest, in file order: empty documents skipped, `List` documents flattened.
pub fn objects(text: &str) -> Result<Vec<Value>, ClusterError> {
    let documents = crate::yaml::documents(text)
        .map_err(|e| ClusterError::Invalid(format!("the manifest is not YAML: {e}")))?;
    let mut out = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        match document {
            Value::Null => {}
            Value::Object(_) if is_list(&document) => {
                for item in document["items"].as_array().into_iter().flatten() {
                    out.push(item.clone());
                }
            }
            Value::Object(_) => out.push(document),
            other => {
                return Err(ClusterError::Invalid(format!(
                    "document {} of the manifest is not an object: {other}",
                    index + 1
                )));
            }
        }
    }
    for object in &out {
        Identity::of(object)?;
    }
    Ok(out)
}

fn is_list(document: &Value) -> bool {
    document["kind"]
        .as_str()
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && document["items"].is_array()
}

/// A CRD in the manifest and the kind it adds: (CRD name, group, kind, served versions).
fn crd_kinds(objects: &[Value]) -> Vec<(String, String, String, Vec<String>)> {
    objects
        .iter()
        .filter(|o| {
            o["kind"] == "CustomResourceDefinition"
                && o["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
        })
        .map(|crd| {
            let spec = &crd["spec"];
            let versions = spec["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["name"].as_str().map(str::to_string))
                .collect();
            (
                crd["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                spec["group"].as_str().unwrap_or_default().to_string(),
                spec["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                versions,
            )
        })
        .collect()
}

/// The CRD of the manifest that adds `identity`'s kind.
fn defining_crd(
    crds: &[(String, String, String, Vec<String>)],
    identity: &Identity,
) -> Option<String> {
    let (group, version) = identity.group_version();
    crds.iter()
        .find(|(_, g, k, versions)| {
            g == group && *k == identity.kind && versions.iter().any(|v| v == version)
        })
        .map(|(name, ..)| name.clone())
}

impl Gateway<'_> {
    /// Applies every object of the manifest; returns their targets (`<apiVersion> <Kind> <ns>/<name>`)
    /// in the order they were applied. In a dry run, plans them in file order.
    pub fn apply_manifest(&self, text: &str) -> Result<Vec<String>, ClusterError> {
        let objects = objects(text)?;
        let mut applied = Vec::new();
        if self.client().is_none() || self.dry_run() {
            for object in &objects {
                self.apply_object(object)?;
                applied.push(Identity::of(object)?.target());
            }
            return Ok(applied);
        }
        let crds = crd_kinds(&objects);
        let mut deferred = Vec::new();
        for object in &objects {
            let identity = Identity::of(object)?;
            match self.locate(&identity) {
                Ok(_) => {
                    self.apply_object(object)?;
                    applied.push(identity.target());
                }
                Err(ClusterError::UnknownKind { .. })
                    if defining_crd(&crds, &identity).is_some() =>
                {
                    deferred.push((object, identity));
                }
                Err(e) => return Err(e),
            }
        }
        let mut awaited: Vec<String> = Vec::new();
        for (_, identity) in &deferred {
            let Some(crd) = defining_crd(&crds, identity) else {
                continue;
            };
            if !awaited.contains(&crd) {
                self.wait_for_crd_established(&crd, CRD_ESTABLISH_TIMEOUT)?;
                awaited.push(crd);
            }
            self.discovery.forget(&identity.api_version);
        }
        for (object, identity) in deferred {
            self.locate(&identity)?;
            self.apply_object(object)?;
            applied.push(identity.target());
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  namespace: default
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true}]
---
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: default}}
";

    #[test]
    fn documents_are_flattened_and_crds_name_their_kinds() {
        let objects = objects(MANIFEST).unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            vec!["Widget", "CustomResourceDefinition", "ConfigMap"]
        );
        let crds = crd_kinds(&objects);
        let widget = Identity::of(&objects[0]).unwrap();
        assert_eq!(
            defining_crd(&crds, &widget).as_deref(),
            Some("widgets.example.com")
        );
        let mut v2 = widget.clone();
        v2.api_version = "example.com/v2".into();
        assert_eq!(defining_crd(&crds, &v2), None);
    }

    #[test]
    fn a_document_without_a_name_is_refused() {
        let err = objects("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("an object without metadata.name"), "{err}");
        assert!(objects("- a\n- b\n").is_err());
    }
}
