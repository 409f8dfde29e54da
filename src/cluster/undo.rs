//! Undoing the journal's `api-object` entries: deleting what a run created, putting back the journaled
//! copy of what it changed or deleted. The workflow's rollback calls it for each such entry
//! (`workflow::cluster_undo`), with the run's client or one built from the node's admin kubeconfig.

use serde_json::Value;

use super::FIELD_MANAGER;
use super::calls;
use super::client::Client;
use super::discovery::Discovery;
use super::error::ClusterError;
use super::object::{ObjectRef, target};
use crate::host::journal::{ApiChange, Entry};
use crate::host::{Host, NodePath, Undone};

/// How many times a restore re-reads the object after losing a race with another writer.
const RESTORE_ATTEMPTS: u32 = 5;

/// Undoes one `api-object` entry through `client` (`Undone::Nothing` for other entries and for
/// objects that are already gone). Backups are read from, and removed under, `host`'s root.
pub fn undo_entry(client: &Client, host: &Host, entry: &Entry) -> anyhow::Result<Undone> {
    let Entry::ApiObject {
        api_version,
        kind,
        namespace,
        name,
        change,
    } = entry
    else {
        return Ok(Undone::Nothing);
    };
    let shown = target(api_version, kind, namespace.as_deref(), name);
    let discovery = Discovery::default();
    let located = client.block_on(async {
        let (resource, namespaced) = discovery.resolve(client, api_version, kind).await?;
        ObjectRef::new(resource, namespaced, namespace.as_deref(), name)
    })?;
    let at = match located {
        Ok(at) => at,
        // The kind is gone (its CRD was deleted first): so are its objects.
        Err(ClusterError::UnknownKind { .. }) if *change == ApiChange::Created => {
            return Ok(Undone::Nothing);
        }
        Err(e) => return Err(e.into()),
    };
    match change {
        ApiChange::Created => {
            let Some(current) = client.block_on(calls::get(client, &at))?? else {
                return Ok(Undone::Nothing);
            };
            if let Some(managers) = foreign_managers(&current) {
                return Ok(Undone::ObjectKept(
                    shown,
                    format!(
                        "it was not created by kubestrap after all (its field managers: {managers})"
                    ),
                ));
            }
            Ok(if client.block_on(calls::delete(client, &at))?? {
                Undone::ObjectDeleted(shown)
            } else {
                Undone::Nothing
            })
        }
        ApiChange::Updated { backup } | ApiChange::Deleted { backup } => {
            let Some(prior) = read_backup(host, backup)? else {
                return Ok(Undone::ObjectKept(
                    shown,
                    format!("its journaled copy {backup} is gone"),
                ));
            };
            let restored = client.block_on(restore(client, &at, &prior))??;
            if !restored {
                return Ok(Undone::ObjectKept(
                    shown,
                    format!(
                        "it was created again by someone else; the journaled copy stays at {backup}"
                    ),
                ));
            }
            let _ = std::fs::remove_file(host.disk(backup));
            Ok(Undone::ObjectRestored(shown))
        }
    }
}

/// The field managers of an object none of whose fields kubestrap manages — someone else created it
/// between the gateway's read and its create. None when kubestrap is a manager, or the server keeps no
/// managedFields.
fn foreign_managers(object: &Value) -> Option<String> {
    let managers: Vec<&str> = object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    if managers.is_empty() || managers.contains(&FIELD_MANAGER) {
        return None;
    }
    Some(managers.join(", "))
}

fn read_backup(host: &Host, backup: &NodePath) -> anyhow::Result<Option<Value>> {
    let Some(bytes) = host.read_optional(backup)? else {
        return Ok(None);
    };
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("the journaled copy {backup} is not JSON: {e}"))?;
    Ok(Some(value))
}

/// Puts `prior` back: replaces the current object with it, or re-creates it when it is gone. False
/// when a deleted object was re-created meanwhile by someone else (left alone).
async fn restore(client: &Client, at: &ObjectRef, prior: &Value) -> Result<bool, ClusterError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match calls::get(client, at).await? {
            None => calls::create(client, at, &fresh(prior)).await.map(|_| ()),
            Some(current) => {
                let mut body = fresh(prior);
                body["metadata"]["resourceVersion"] =
                    current["metadata"]["resourceVersion"].clone();
                calls::replace(client, at, &body).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => return Ok(true),
            Err(e) if (e.is_conflict() || e.is_already_exists()) && attempt < RESTORE_ATTEMPTS => {}
            Err(e) if e.is_already_exists() => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// A copy of an object without what the server sets on every write.
fn fresh(object: &Value) -> Value {
    let mut body = object.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(field);
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_someone_else_made_is_not_deleted_as_ours() {
        let ours = json!({"metadata": {"managedFields": [{"manager": "kubestrap", "operation": "Apply"}, {"manager": "kube-controller-manager", "operation": "Update"}]}});
        assert_eq!(foreign_managers(&ours), None);
        let theirs = json!({"metadata": {"managedFields": [{"manager": "kubectl-create", "operation": "Update"}]}});
        assert_eq!(foreign_managers(&theirs).as_deref(), Some("kubectl-create"));
        assert_eq!(foreign_managers(&json!({"metadata": {}})), None);
    }

    #[test]
    fn a_restored_copy_drops_what_the_server_sets() {
        let prior = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "x", "namespace": "default", "uid": "u", "resourceVersion": "5",
            "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [], "labels": {"a": "b"}},
            "data": {"k": "v"}});
        let body = fresh(&prior);
        assert_eq!(
            body,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default", "labels": {"a": "b"}}, "data": {"k": "v"}})
        );
    }
}
