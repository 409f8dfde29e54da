//! The REST verbs on resources: get, list, watch, create, update, patch, delete, deletecollection,
//! and the subresources kubeadm-style clusters use (status, approval, binding, eviction, token, scale).

use hyper::{HeaderMap, Method, Response, StatusCode};
use serde_json::{Value, json};

use super::Server;
use super::authn::UserInfo;
use super::authz;
use super::objects::Write;
use super::patch::{self, PatchKind};
use super::rbac::Attributes;
use super::registry::ResourceType;
use super::selectors::{self, Query};
use super::status::{self, ApiError, ApiResult};
use super::{reviews, table, watch};
use crate::common::serve::{self, Body};
use crate::common::time;

/// A path under /api/v1 or /apis/<group>/<version>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

/// Splits the segments after the group/version into resource, namespace, name, subresource.
pub fn parse_segments(group: &str, version: &str, segs: &[&str]) -> Option<ResourcePath> {
    let path = |ns: Option<&str>, rest: &[&str]| {
        let plural = rest.first()?;
        if plural.is_empty() || rest.len() > 3 {
            return None;
        }
        Some(ResourcePath {
            group: group.into(),
            version: version.into(),
            plural: plural.to_string(),
            namespace: ns.map(str::to_string),
            name: rest.get(1).map(|s| s.to_string()),
            sub: rest.get(2).map(|s| s.to_string()),
        })
    };
    let namespace_sub = segs.len() == 3 && matches!(segs[2], "status" | "finalize");
    if segs.first() == Some(&"namespaces") && segs.len() >= 3 && !namespace_sub {
        path(Some(segs[1]), &segs[2..])
    } else {
        path(None, segs)
    }
}

/// Objects that a PUT creates when missing (the real registries that allow create-on-update).
fn creates_on_update(rt: &ResourceType) -> bool {
    matches!(
        (rt.group.as_str(), rt.plural.as_str()),
        ("", "endpoints")
            | ("", "events")
            | ("discovery.k8s.io", "endpointslices")
            | ("coordination.k8s.io", "leases")
            | ("events.k8s.io", "events")
            | ("rbac.authorization.k8s.io", _)
    )
}

fn verb_for(method: &Method, path: &ResourcePath, query: &Query) -> ApiResult<&'static str> {
    Ok(match (method, path.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if query.watch() => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::POST, true) if path.sub.is_some() => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    })
}

pub struct Call<'a> {
    pub server: &'a std::sync::Arc<Server>,
    pub user: &'a UserInfo,
    pub method: Method,
    pub path: ResourcePath,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

pub async fn handle(call: Call<'_>) -> Response<Body> {
    match dispatch(&call).await {
        Ok(response) => response,
        Err(e) => e.response(),
    }
}

async fn dispatch(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let p = &call.path;
    let rt = call
        .server
        .lookup_type(&p.group, &p.version, &p.plural)
        .await
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
    if p.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if let Some(sub) = &p.sub
        && !rt.subresources.contains(sub)
    {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let verb = verb_for(&call.method, p, &call.query)?;
    let attrs = Attributes::resource(
        verb,
        &rt.group,
        &rt.plural,
        p.sub.as_deref().unwrap_or_default(),
        p.namespace.as_deref().unwrap_or_default(),
        p.name.as_deref().unwrap_or_default(),
    );
    authz::authorize(call.server, call.user, &attrs).await?;
    if rt.virtual_create_only {
        if verb != "create" {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let body = decode(&call.headers, &call.body)?;
        return reviews::create(call.server, call.user, &rt, p.namespace.as_deref(), body).await;
    }
    let ns = p.namespace.as_deref();
    match verb {
        "get" => get(call, &rt).await,
        "list" => list(call, &rt).await,
        "watch" => Ok(watch::stream(
            call.server.clone(),
            rt.clone(),
            ns.map(str::to_string),
            call.query.clone(),
            table::wants_table(&call.headers),
        )),
        "create" if p.sub.is_some() => create_subresource(call, &rt).await,
        "create" => create(call, &rt).await,
        "update" => {
            let body = decode(&call.headers, &call.body)?;
            update(call, &rt, body, None).await
        }
        "patch" => patch_object(call, &rt).await,
        "delete" => delete(call, &rt).await,
        _ => delete_collection(call, &rt).await,
    }
}

pub fn decode(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.contains("protobuf") {
        return super::proto::decode(body)
            .map_err(|e| ApiError::unsupported_media_type(e.to_string()));
    }
    let value: Value = if content_type.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("request body is not UTF-8"))?;
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the object provided is unrecognized: {e}"))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is not a JSON object",
        ));
    }
    Ok(value)
}

fn respond(status: StatusCode, value: &Value) -> ApiResult<Response<Body>> {
    Ok(serve::json(status, value))
}

fn check_type(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    if let Some(av) = obj["apiVersion"].as_str()
        && av != rt.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if let Some(kind) = obj["kind"].as_str()
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(())
}

async fn get(call: &Call<'_>, rt: &ResourceType) -> ApiResult<Response<Body>> {
    let p = &call.path;
    let name = p.name.as_deref().unwrap_or_default();
    let (obj, _) = call.server.read(rt, p.namespace.as_deref(), name).await?;
    match p.sub.as_deref() {
        Some("scale") => respond(StatusCode::OK, &scale_of(&obj)),
        Some("log") => Err(ApiError::bad_request(
            "container logs are not served by the testbed's API server double; read /var/log/pods on the node",
        )),
        Some("proxy") => Err(ApiError::bad_request(
            "proxying is not implemented by the testbed's API server double",
        )),
        _ if table::wants_table(&call.headers) => respond(
            StatusCode::OK,
            &table::table(rt, &[obj], call.query.get("includeObject")),
        ),
        _ => respond(StatusCode::OK, &obj),
    }
}

async fn list(call: &Call<'_>, rt: &ResourceType) -> ApiResult<Response<Body>> {
    let (items, revision) = call.server.list(rt, call.path.namespace.as_deref()).await?;
    let items = selectors::filter(items, &call.query)?;
    if table::wants_table(&call.headers) {
        let mut t = table::table(rt, &items, call.query.get("includeObject"));
        t["metadata"] = json!({"resourceVersion": revision.to_string()});
        return respond(StatusCode::OK, &t);
    }
    respond(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": items,
        }),
    )
}

fn writer<'a>(call: &'a Call<'a>, rt: &'a ResourceType) -> Write<'a> {
    Write {
        server: call.server,
        user: call.user,
        rt,
        namespace: call.path.namespace.as_deref(),
    }
}

async fn create(call: &Call<'_>, rt: &ResourceType) -> ApiResult<Response<Body>> {
    let mut obj = decode(&call.headers, &call.body)?;
    let created = create_object(call, rt, &mut obj).await?;
    respond(StatusCode::CREATED, &created)
}

async fn create_object(call: &Call<'_>, rt: &ResourceType, obj: &mut Value) -> ApiResult<Value> {
    check_type(rt, obj)?;
    let ns = call.path.namespace.as_deref();
    if rt.namespaced && ns.is_none() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if let (Some(given), Some(url_ns)) = (obj["metadata"]["namespace"].as_str(), ns)
        && !given.is_empty()
        && given != url_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if obj["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|rv| !rv.is_empty())
    {
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if obj["metadata"]["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = obj["metadata"]["generateName"]
            .as_str()
            .filter(|g| !g.is_empty())
    {
        obj["metadata"]["name"] = json!(format!("{prefix}{}", super::store::name_suffix()));
    }
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
    }
    writer(call, rt).create(obj).await?;
    let created = if call.query.dry_run() {
        let mut o = obj.clone();
        o["apiVersion"] = json!(rt.api_version());
        o["kind"] = json!(rt.kind);
        o["metadata"]["uid"] = json!(super::store::new_uid());
        o["metadata"]["creationTimestamp"] = json!(time::now());
        o
    } else {
        call.server.insert(rt, ns, obj.clone()).await?
    };
    if rt.group == "apiextensions.k8s.io" {
        call.server.refresh_types().await;
    }
    Ok(created)
}

/// PUT, or the write after a patch. `precondition` is the revision a patch read.
async fn update(
    call: &Call<'_>,
    rt: &ResourceType,
    mut new: Value,
    read: Option<(Value, i64)>,
) -> ApiResult<Response<Body>> {
    check_type(rt, &new)?;
    let p = &call.path;
    let ns = p.namespace.as_deref();
    let name = p.name.as_deref().unwrap_or_default();
    if let Some(body_name) = new["metadata"]["name"].as_str()
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let current = match read {
        Some(r) => Some(r),
        None => call.server.read_opt(rt, ns, name).await?,
    };
    let Some((old, revision)) = current else {
        if creates_on_update(rt) && p.sub.is_none() {
            new["metadata"]["name"] = json!(name);
            if let Some(meta) = new["metadata"].as_object_mut() {
                meta.remove("resourceVersion");
            }
            let created = create_object(call, rt, &mut new).await?;
            return respond(StatusCode::CREATED, &created);
        }
        return Err(ApiError::not_found(rt, name));
    };
    if let Some(rv) = new["metadata"]["resourceVersion"]
        .as_str()
        .filter(|r| !r.is_empty())
        && rv != revision.to_string()
    {
        return Err(ApiError::conflict(rt, name));
    }
    let sub = p.sub.as_deref().unwrap_or_default();
    let mut merged = match sub {
        "status" => {
            let mut m = old.clone();
            m["status"] = new["status"].clone();
            // A Node's status strategy keeps only its spec: labels and annotations change through
            // nodes/status too (flanneld publishes its lease and calico its node annotations so).
            if rt.kind == "Node" {
                for field in ["annotations", "labels"] {
                    match new["metadata"].get(field).filter(|v| !v.is_null()) {
                        Some(v) => m["metadata"][field] = v.clone(),
                        None => {
                            if let Some(meta) = m["metadata"].as_object_mut() {
                                meta.remove(field);
                            }
                        }
                    }
                }
            }
            m
        }
        "approval" => {
            let mut m = old.clone();
            m["status"] = new["status"].clone();
            m
        }
        "scale" => {
            let mut m = old.clone();
            m["spec"]["replicas"] = new["spec"]["replicas"].clone();
            m
        }
        _ => {
            let mut m = new.clone();
            if rt.has_status() {
                m["status"] = old["status"].clone();
            }
            m
        }
    };
    merged["apiVersion"] = json!(rt.api_version());
    merged["kind"] = json!(rt.kind);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "namespace",
        "generation",
    ] {
        merged["metadata"][field] = old["metadata"][field].clone();
    }
    if let Some(meta) = merged["metadata"].as_object_mut() {
        meta.retain(|_, v| !v.is_null());
        meta.remove("managedFields");
    }
    if sub.is_empty() && rt.group == "apps" {
        super::workloads::apply_defaults(&rt.kind, &mut merged);
    }
    if (sub.is_empty() || sub == "scale")
        && merged["spec"] != old["spec"]
        && let Some(g) = old["metadata"]["generation"].as_i64()
    {
        merged["metadata"]["generation"] = json!(g + 1);
    }
    merged["metadata"]["resourceVersion"] = json!(revision.to_string());
    writer(call, rt).update(&old, &mut merged, sub).await?;
    if merged == old || call.query.dry_run() {
        let status = if merged == old { old } else { merged };
        return respond(
            StatusCode::OK,
            &if sub == "scale" {
                scale_of(&status)
            } else {
                status
            },
        );
    }
    let finalizers_done = merged["metadata"]["finalizers"]
        .as_array()
        .is_none_or(|f| f.is_empty());
    let stored = call.server.store_update(rt, ns, merged, revision).await?;
    if !stored["metadata"]["deletionTimestamp"].is_null() && finalizers_done {
        let rev: i64 = stored["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        call.server.remove(rt, ns, name, rev).await?;
    }
    if rt.group == "apiextensions.k8s.io" {
        call.server.refresh_types().await;
    }
    respond(
        StatusCode::OK,
        &if sub == "scale" {
            scale_of(&stored)
        } else {
            stored
        },
    )
}

async fn patch_object(call: &Call<'_>, rt: &ResourceType) -> ApiResult<Response<Body>> {
    let content_type = call
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = PatchKind::from_content_type(content_type)?;
    if matches!(kind, PatchKind::Strategic) && rt.is_custom() {
        return Err(ApiError::unsupported_media_type(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    patch_options(&kind, &call.query)?;
    let patch_body: Value = if matches!(kind, PatchKind::Apply) {
        let text = std::str::from_utf8(&call.body)
            .map_err(|_| ApiError::bad_request("request body is not UTF-8"))?;
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("unable to parse patch: {e}")))?
    };
    let p = &call.path;
    let name = p.name.as_deref().unwrap_or_default();
    // Without a resourceVersion in the patch, a concurrent write is retried on the fresh object,
    // as the real server's GuaranteedUpdate does; with one, the conflict is the caller's.
    let unconditional = patch_body["metadata"]["resourceVersion"].is_null();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = call
            .server
            .read_opt(rt, p.namespace.as_deref(), name)
            .await?;
        let Some((old, revision)) = current else {
            if matches!(kind, PatchKind::Apply) && p.sub.is_none() {
                let mut obj = patch_body;
                obj["metadata"]["name"] = json!(name);
                let created = create_object(call, rt, &mut obj).await?;
                return respond(StatusCode::CREATED, &created);
            }
            return Err(ApiError::not_found(rt, name));
        };
        let base = if p.sub.as_deref() == Some("scale") {
            scale_of(&old)
        } else {
            old.clone()
        };
        let mut patched = patch::apply(&kind, &base, &patch_body)?;
        if p.sub.as_deref() == Some("scale") {
            let mut m = old.clone();
            m["spec"]["replicas"] = patched["spec"]["replicas"].clone();
            patched = m;
        }
        if unconditional {
            patched["metadata"]["resourceVersion"] = json!(revision.to_string());
        }
        match update(call, rt, patched, Some((old, revision))).await {
            Err(e) if e.code == 409 && e.reason == "Conflict" && unconditional && attempts < 5 => {}
            other => return other,
        }
    }
}

/// PatchOptions as the real server validates them: an apply names its field manager, `force` is for
/// applies only, a field manager is at most 128 bytes.
fn patch_options(kind: &PatchKind, query: &Query) -> ApiResult<()> {
    let manager = query.get("fieldManager").unwrap_or_default();
    let mut causes: Vec<Value> = Vec::new();
    let mut cause = |reason: &str, field: &str, message: String| {
        causes.push(json!({"reason": reason, "message": message, "field": field}));
    };
    if matches!(kind, PatchKind::Apply) {
        if manager.is_empty() {
            cause(
                "FieldValueRequired",
                "fieldManager",
                "Required value: is required for apply patch".into(),
            );
        }
    } else if query.get("force").is_some() {
        cause(
            "FieldValueForbidden",
            "force",
            "Forbidden: may not be specified for non-apply patch".into(),
        );
    }
    if manager.len() > 128 {
        cause(
            "FieldValueTooLong",
            "fieldManager",
            "Too long: may not be more than 128 bytes".into(),
        );
    }
    if causes.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = causes
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let message = if text.len() == 1 {
        text[0].clone()
    } else {
        format!("[{}]", text.join(", "))
    };
    Err(ApiError {
        details: Some(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": causes})),
        ..ApiError::new(
            422,
            "Invalid",
            format!("PatchOptions.meta.k8s.io \"\" is invalid: {message}"),
        )
    })
}

async fn delete(call: &Call<'_>, rt: &ResourceType) -> ApiResult<Response<Body>> {
    let p = &call.path;
    let name = p.name.as_deref().unwrap_or_default();
    let options = DeleteOptions::of(call)?;
    // As the real server's GuaranteedUpdate: marking the object (deletionTimestamp, GC finalizers)
    // is retried on a fresh read when a controller changed it in between, rather than returning the
    // write conflict to the client (a precondition failure is still returned).
    let mut attempts = 0;
    let result = loop {
        let (obj, revision) = call.server.read(rt, p.namespace.as_deref(), name).await?;
        match delete_one(call, rt, obj, revision, &options).await {
            Err(e)
                if e.code == 409 && !e.message.contains("Precondition failed") && attempts < 5 =>
            {
                attempts += 1;
            }
            other => break other?,
        }
    };
    respond(StatusCode::OK, &result)
}

/// How dependents are treated when their owner is deleted (metav1.DeletionPropagation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// The parts of a request's DeleteOptions (body or query) the double honours.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    /// `gracePeriodSeconds` (pods: how long the kubelet has to stop them).
    pub grace_period: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_version: Option<String>,
}

impl DeleteOptions {
    fn of(call: &Call<'_>) -> ApiResult<DeleteOptions> {
        let protobuf = call
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("protobuf"));
        let body = if call.body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else if protobuf {
            // Protobuf DeleteOptions (typed client-go callers) are not decoded by the double.
            decode(&call.headers, &call.body).unwrap_or(Value::Null)
        } else {
            decode(&call.headers, &call.body)?
        };
        Self::from_parts(&body, &call.query)
    }

    pub fn from_parts(body: &Value, query: &Query) -> ApiResult<DeleteOptions> {
        let policy = body["propagationPolicy"]
            .as_str()
            .map(str::to_string)
            .or_else(|| query.get("propagationPolicy").map(str::to_string));
        let orphan = body["orphanDependents"].as_bool().or_else(|| {
            query
                .get("orphanDependents")
                .and_then(|v| crate::common::flags::parse_bool(v).ok())
        });
        let propagation = match policy.as_deref() {
            None | Some("") => None,
            Some("Orphan") => Some(Propagation::Orphan),
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some(other) => {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "",
                    &[(
                        "propagationPolicy".into(),
                        format!(
                            "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                        ),
                    )],
                ));
            }
        };
        if orphan.is_some() && propagation.is_some() {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "",
                &[(
                    "propagationPolicy".into(),
                    "Invalid value: \"\": orphanDependents and deletionPropagation cannot be both set".into(),
                )],
            ));
        }
        let propagation = propagation.or(orphan.map(|o| {
            if o {
                Propagation::Orphan
            } else {
                Propagation::Background
            }
        }));
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        Ok(DeleteOptions {
            propagation,
            grace_period: body["gracePeriodSeconds"]
                .as_i64()
                .or_else(|| query.get("gracePeriodSeconds").and_then(|v| v.parse().ok())),
            precondition_uid: text(&body["preconditions"]["uid"]),
            precondition_version: text(&body["preconditions"]["resourceVersion"]),
        })
    }
}

/// The finalizers a delete leaves on an object for the garbage collector, as the real registry's
/// deletionFinalizersForGarbageCollection computes them: `orphan` when dependents are orphaned,
/// `foregroundDeletion` when they are deleted first; an explicit policy replaces both.
pub fn gc_finalizers(
    current: &[String],
    policy: Option<Propagation>,
    orphans_by_default: bool,
) -> Vec<String> {
    const ORPHAN: &str = "orphan";
    const FOREGROUND: &str = "foregroundDeletion";
    let has = |f: &str| current.iter().any(|c| c == f);
    let (orphan, foreground) = match policy {
        Some(Propagation::Orphan) => (true, false),
        Some(Propagation::Foreground) => (false, true),
        Some(Propagation::Background) => (false, false),
        None if has(ORPHAN) => (true, false),
        None if has(FOREGROUND) => (false, true),
        None => (orphans_by_default, false),
    };
    let mut out: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        out.push(ORPHAN.into());
    }
    if foreground {
        out.push(FOREGROUND.into());
    }
    out
}

/// The grace period of a graceful pod deletion, as the pod registry's strategy decides it: a pod
/// bound to a node that has not finished gets the options' period or its
/// terminationGracePeriodSeconds (30 by default) and stays, terminating, until its kubelet deletes
/// it with period 0; unbound or finished pods and period 0 go at once.
fn pod_grace(rt: &ResourceType, obj: &Value, options: &DeleteOptions) -> Option<i64> {
    if !(rt.group.is_empty() && rt.kind == "Pod") {
        return None;
    }
    let bound = obj["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return None;
    }
    let grace = options
        .grace_period
        .filter(|g| *g >= 0)
        .or(obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    (grace > 0).then_some(grace)
}

/// ReplicationControllers deleted through core/v1 orphan their pods unless told otherwise (the
/// real registry keeps that v1 default for compatibility); every other kind deletes dependents.
fn orphans_by_default(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "ReplicationController"
}

async fn delete_one(
    call: &Call<'_>,
    rt: &ResourceType,
    obj: Value,
    revision: i64,
    options: &DeleteOptions,
) -> ApiResult<Value> {
    let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(wanted) = &options.precondition_uid
        && *wanted != uid
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: Precondition failed: UID in precondition: {wanted}, UID in object meta: {uid}",
                status::qualified(rt)
            ),
        ));
    }
    if let Some(wanted) = &options.precondition_version
        && *wanted != revision.to_string()
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: Precondition failed: ResourceVersion in precondition: {wanted}, ResourceVersion in object meta: {revision}",
                status::qualified(rt)
            ),
        ));
    }
    let write = Write {
        server: call.server,
        user: call.user,
        rt,
        namespace: ns.as_deref(),
    };
    write.delete(&obj).await?;
    if let Some(grace) = pod_grace(rt, &obj, options)
        && !call.query.dry_run()
    {
        let current = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if obj["metadata"]["deletionTimestamp"].is_null() || current.is_some_and(|c| grace < c) {
            let mut marked = obj.clone();
            marked["metadata"]["deletionTimestamp"] = json!(time::after_seconds(grace));
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            return call
                .server
                .store_update(rt, ns.as_deref(), marked, revision)
                .await;
        }
        return Ok(obj);
    }
    let is_namespace = rt.group.is_empty() && rt.kind == "Namespace";
    let current: Vec<String> = obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    let finalizers = if is_namespace {
        current.clone()
    } else {
        gc_finalizers(&current, options.propagation, orphans_by_default(rt))
    };
    if call.query.dry_run() {
        return Ok(status::success(rt, &name, &uid));
    }
    if !finalizers.is_empty() && !is_namespace {
        if obj["metadata"]["deletionTimestamp"].is_null() || finalizers != current {
            let mut marked = obj.clone();
            if marked["metadata"]["deletionTimestamp"].is_null() {
                marked["metadata"]["deletionTimestamp"] = json!(time::now());
                marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            marked["metadata"]["finalizers"] = json!(finalizers);
            return call
                .server
                .store_update(rt, ns.as_deref(), marked, revision)
                .await;
        }
        return Ok(obj);
    }
    if is_namespace {
        call.server.delete_namespace_content(&name).await?;
    }
    call.server
        .remove(rt, ns.as_deref(), &name, revision)
        .await?;
    if rt.group == "apiextensions.k8s.io" {
        call.server.refresh_types().await;
    }
    Ok(status::success(rt, &name, &uid))
}

async fn delete_collection(call: &Call<'_>, rt: &ResourceType) -> ApiResult<Response<Body>> {
    let options = DeleteOptions::of(call)?;
    let (items, _) = call.server.list(rt, call.path.namespace.as_deref()).await?;
    let items = selectors::filter(items, &call.query)?;
    for item in &items {
        let revision = item["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        delete_one(call, rt, item.clone(), revision, &options).await?;
    }
    respond(
        StatusCode::OK,
        &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {}, "items": items}),
    )
}

async fn create_subresource(call: &Call<'_>, rt: &ResourceType) -> ApiResult<Response<Body>> {
    let p = &call.path;
    let ns = p.namespace.as_deref();
    let name = p.name.as_deref().unwrap_or_default();
    let body = decode(&call.headers, &call.body)?;
    match (rt.plural.as_str(), p.sub.as_deref().unwrap_or_default()) {
        ("pods", "binding") => {
            let node = body["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            bind_pod(call.server, rt, ns, name, &node).await?;
            respond(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            )
        }
        ("pods", "eviction") => {
            let (obj, revision) = call.server.read(rt, ns, name).await?;
            let options = DeleteOptions::from_parts(&body["deleteOptions"], &Query::default())?;
            delete_one(call, rt, obj, revision, &options).await?;
            respond(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            )
        }
        ("serviceaccounts", "token") => {
            let (sa, _) = call.server.read(rt, ns, name).await?;
            let seconds = body["spec"]["expirationSeconds"]
                .as_i64()
                .unwrap_or(3600)
                .max(600);
            let audiences: Vec<String> = body["spec"]["audiences"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .filter(|a: &Vec<String>| !a.is_empty())
                .unwrap_or_else(|| call.server.opts.api_audiences.clone());
            let issuer = call
                .server
                .opts
                .service_account_issuers
                .first()
                .cloned()
                .unwrap_or_default();
            let token = call
                .server
                .tokens
                .issue(
                    &issuer,
                    &audiences,
                    ns.unwrap_or_default(),
                    name,
                    sa["metadata"]["uid"].as_str().unwrap_or_default(),
                    seconds,
                )
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let expires = time::after_seconds(seconds);
            let mut out = body.clone();
            out["apiVersion"] = json!("authentication.k8s.io/v1");
            out["kind"] = json!("TokenRequest");
            out["metadata"]["name"] = json!(name);
            out["metadata"]["namespace"] = json!(ns);
            out["spec"]["audiences"] = json!(audiences);
            out["spec"]["expirationSeconds"] = json!(seconds);
            out["status"] = json!({"token": token, "expirationTimestamp": expires});
            respond(StatusCode::CREATED, &out)
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// Sets spec.nodeName of a pending pod (pods/binding and the Binding resource).
pub async fn bind_pod(
    server: &Server,
    pods: &ResourceType,
    ns: Option<&str>,
    name: &str,
    node: &str,
) -> ApiResult<()> {
    let (mut pod, revision) = server.read(pods, ns, name).await?;
    if let Some(existing) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!("pod {name} is already assigned to node {existing:?}"),
        ));
    }
    pod["spec"]["nodeName"] = json!(node);
    set_pod_scheduled(&mut pod);
    server
        .store_update(pods, ns, pod, revision)
        .await
        .map(|_| ())
}

/// The PodScheduled=True condition a binding sets (replacing the scheduler's False one).
fn set_pod_scheduled(pod: &mut Value) {
    let mut conditions: Vec<Value> = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": time::now()});
    match conditions.iter_mut().find(|c| c["type"] == "PodScheduled") {
        Some(c) if c["status"] == "True" => {}
        Some(c) => *c = scheduled,
        None => conditions.push(scheduled),
    }
    pod["status"]["conditions"] = json!(conditions);
}

fn scale_of(obj: &Value) -> Value {
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_running_pods_are_deleted_gracefully() {
        let registry = super::super::registry::Registry::built_in();
        let pods = registry.find("", "v1", "pods").expect("pods");
        let options = |grace: Option<i64>| DeleteOptions {
            propagation: None,
            grace_period: grace,
            precondition_uid: None,
            precondition_version: None,
        };
        let bound = json!({"spec": {"nodeName": "node2", "terminationGracePeriodSeconds": 5}, "status": {"phase": "Running"}});
        assert_eq!(pod_grace(pods, &bound, &options(None)), Some(5));
        assert_eq!(pod_grace(pods, &bound, &options(Some(12))), Some(12));
        assert_eq!(pod_grace(pods, &bound, &options(Some(0))), None);
        let unbound = json!({"spec": {}, "status": {"phase": "Pending"}});
        assert_eq!(pod_grace(pods, &unbound, &options(None)), None);
        let done = json!({"spec": {"nodeName": "node2"}, "status": {"phase": "Succeeded"}});
        assert_eq!(pod_grace(pods, &done, &options(None)), None);
        let defaulted = json!({"spec": {"nodeName": "node2"}});
        assert_eq!(pod_grace(pods, &defaulted, &options(None)), Some(30));
    }

    #[test]
    fn delete_options_turn_into_garbage_collector_finalizers() {
        let opts = |body: Value, query: Option<&str>| {
            DeleteOptions::from_parts(&body, &Query::parse(query))
        };
        assert_eq!(
            opts(json!({"propagationPolicy": "Orphan"}), None)
                .unwrap()
                .propagation,
            Some(Propagation::Orphan)
        );
        assert_eq!(
            opts(Value::Null, Some("propagationPolicy=Foreground"))
                .unwrap()
                .propagation,
            Some(Propagation::Foreground)
        );
        assert_eq!(
            opts(json!({"orphanDependents": false}), None)
                .unwrap()
                .propagation,
            Some(Propagation::Background)
        );
        assert!(opts(json!({"propagationPolicy": "Sideways"}), None).is_err());
        assert!(
            opts(
                json!({"propagationPolicy": "Orphan", "orphanDependents": true}),
                None
            )
            .is_err()
        );
        assert_eq!(
            opts(json!({"preconditions": {"uid": "u1"}}), None)
                .unwrap()
                .precondition_uid
                .as_deref(),
            Some("u1")
        );
        let kept = vec!["example.com/hold".to_string()];
        assert_eq!(gc_finalizers(&kept, None, false), kept);
        assert_eq!(
            gc_finalizers(&[], Some(Propagation::Foreground), false),
            ["foregroundDeletion"]
        );
        assert_eq!(gc_finalizers(&[], None, true), ["orphan"]);
        assert_eq!(
            gc_finalizers(&["orphan".to_string()], Some(Propagation::Background), true),
            Vec::<String>::new()
        );
        assert_eq!(
            gc_finalizers(&["foregroundDeletion".to_string()], None, true),
            ["foregroundDeletion"]
        );
    }

    #[test]
    fn patch_options_are_validated_like_the_real_server() {
        let apply_without_manager =
            patch_options(&PatchKind::Apply, &Query::parse(None)).unwrap_err();
        assert_eq!(apply_without_manager.code, 422);
        assert_eq!(
            apply_without_manager.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        assert!(
            patch_options(
                &PatchKind::Apply,
                &Query::parse(Some("fieldManager=kubestrap&force=true"))
            )
            .is_ok()
        );
        let forced_merge =
            patch_options(&PatchKind::Merge, &Query::parse(Some("force=true"))).unwrap_err();
        assert_eq!(
            forced_merge.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
        );
        assert!(patch_options(&PatchKind::Strategic, &Query::parse(None)).is_ok());
        let long = format!("fieldManager={}", "m".repeat(129));
        assert!(patch_options(&PatchKind::Json, &Query::parse(Some(&long))).is_err());
    }

    #[test]
    fn resource_paths_split_like_the_real_server() {
        let p = parse_segments(
            "",
            "v1",
            &["namespaces", "kube-system", "pods", "etcd-n1", "status"],
        )
        .unwrap();
        assert_eq!(
            (
                p.namespace.as_deref(),
                p.plural.as_str(),
                p.name.as_deref(),
                p.sub.as_deref()
            ),
            (Some("kube-system"), "pods", Some("etcd-n1"), Some("status"))
        );
        let p = parse_segments("", "v1", &["namespaces", "kube-system"]).unwrap();
        assert_eq!(
            (p.plural.as_str(), p.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let p = parse_segments("", "v1", &["namespaces", "foo", "status"]).unwrap();
        assert_eq!(
            (p.plural.as_str(), p.name.as_deref(), p.sub.as_deref()),
            ("namespaces", Some("foo"), Some("status"))
        );
        let p = parse_segments(
            "certificates.k8s.io",
            "v1",
            &["certificatesigningrequests", "csr-1", "approval"],
        )
        .unwrap();
        assert_eq!(p.sub.as_deref(), Some("approval"));
        assert!(parse_segments("", "v1", &["pods", "a", "b", "c"]).is_none());
    }
}
