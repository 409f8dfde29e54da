//! The REST calls on one object (get, create, server-side apply, patch, replace, delete), each retried
//! by the client's policy and described by what it did to which object on which server.

use kube::api::{DeleteParams, DynamicObject, PatchParams, PostParams};
use serde_json::Value;

use super::FIELD_MANAGER;
use super::client::Client;
use super::error::ClusterError;
use super::object::ObjectRef;
use super::retry::retrying;

/// A patch document and how the server should read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// RFC 7386 JSON merge patch.
    Merge(Value),
    /// Kubernetes' strategic merge patch (built-in kinds only; custom resources refuse it).
    Strategic(Value),
    /// RFC 6902 JSON patch: a list of operations.
    Json(Value),
}

impl Patch {
    /// How plans and messages name it.
    pub fn name(&self) -> &'static str {
        match self {
            Patch::Merge(_) => "merge patch",
            Patch::Strategic(_) => "strategic merge patch",
            Patch::Json(_) => "JSON patch",
        }
    }
}

fn what(verb: &str, client: &Client, obj: &ObjectRef) -> String {
    format!("{verb} {} at {}", obj.describe(), client.server())
}

fn to_dynamic(body: &Value, obj: &ObjectRef) -> Result<DynamicObject, ClusterError> {
    serde_json::from_value(body.clone()).map_err(|e| {
        ClusterError::Invalid(format!(
            "{} is not a Kubernetes object: {e}",
            obj.describe()
        ))
    })
}

fn to_value(object: DynamicObject, obj: &ObjectRef) -> Result<Value, ClusterError> {
    serde_json::to_value(object).map_err(|e| {
        ClusterError::Invalid(format!(
            "the server's {} did not serialise: {e}",
            obj.describe()
        ))
    })
}

pub async fn get(client: &Client, obj: &ObjectRef) -> Result<Option<Value>, ClusterError> {
    let api = obj.api(client.kube());
    let found = retrying(client.retry(), &what("reading", client, obj), || {
        api.get_opt(&obj.name)
    })
    .await?;
    found.map(|o| to_value(o, obj)).transpose()
}

pub async fn create(client: &Client, obj: &ObjectRef, body: &Value) -> Result<Value, ClusterError> {
    let api = obj.api(client.kube());
    let object = to_dynamic(body, obj)?;
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    let tries = std::cell::Cell::new(0u32);
    let result = retrying(client.retry(), &what("creating", client, obj), || {
        tries.set(tries.get() + 1);
        api.create(&params, &object)
    })
    .await;
    match result {
        Ok(created) => to_value(created, obj),
        // An earlier try got no answer but was carried out: the object is the one it created.
        Err(e) if e.is_already_exists() && tries.get() > 1 => match get(client, obj).await? {
            Some(existing) => Ok(existing),
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Server-side apply as field manager `kubestrap`, forcing conflicts: kubestrap owns what it
/// bootstraps, as kubeadm's create-or-update does.
pub async fn apply(client: &Client, obj: &ObjectRef, body: &Value) -> Result<Value, ClusterError> {
    let api = obj.api(client.kube());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let document = kube::api::Patch::Apply(body);
    let applied = retrying(client.retry(), &what("applying", client, obj), || {
        api.patch(&obj.name, &params, &document)
    })
    .await?;
    to_value(applied, obj)
}

pub async fn patch(client: &Client, obj: &ObjectRef, patch: &Patch) -> Result<Value, ClusterError> {
    let api = obj.api(client.kube());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let doing = what(&format!("{}ing", patch.name()), client, obj);
    let patched = match patch {
        Patch::Merge(body) => {
            let document = kube::api::Patch::Merge(body);
            retrying(client.retry(), &doing, || {
                api.patch(&obj.name, &params, &document)
            })
            .await?
        }
        Patch::Strategic(body) => {
            let document = kube::api::Patch::Strategic(body);
            retrying(client.retry(), &doing, || {
                api.patch(&obj.name, &params, &document)
            })
            .await?
        }
        Patch::Json(body) => {
            let operations: json_patch_v4::Patch =
                serde_json::from_value(body.clone()).map_err(|e| {
                    ClusterError::Invalid(format!(
                        "the JSON patch for {} is not a list of operations: {e}",
                        obj.describe()
                    ))
                })?;
            let document: kube::api::Patch<()> = kube::api::Patch::Json(operations);
            retrying(client.retry(), &doing, || {
                api.patch(&obj.name, &params, &document)
            })
            .await?
        }
    };
    to_value(patched, obj)
}

/// PUT: `body` must carry the current resourceVersion.
pub async fn replace(
    client: &Client,
    obj: &ObjectRef,
    body: &Value,
) -> Result<Value, ClusterError> {
    let api = obj.api(client.kube());
    let object = to_dynamic(body, obj)?;
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    let replaced = retrying(client.retry(), &what("replacing", client, obj), || {
        api.replace(&obj.name, &params, &object)
    })
    .await?;
    to_value(replaced, obj)
}

/// Deletes with background propagation (dependents go after); false when there was nothing to delete.
pub async fn delete(client: &Client, obj: &ObjectRef) -> Result<bool, ClusterError> {
    let api = obj.api(client.kube());
    let params = DeleteParams::background();
    match retrying(client.retry(), &what("deleting", client, obj), || {
        api.delete(&obj.name, &params)
    })
    .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
