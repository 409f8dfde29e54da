//! Create-only resources that are answered, not stored: access reviews, token reviews, whoami, and
//! the Binding resource.

use std::collections::BTreeMap;

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::Server;
use super::authn::UserInfo;
use super::authz;
use super::rbac::Attributes;
use super::registry::ResourceType;
use super::status::{ApiError, ApiResult};
use crate::common::serve::{self, Body};

fn attributes(spec: &Value) -> Attributes {
    let r = &spec["resourceAttributes"];
    if r.is_object() {
        Attributes::resource(
            r["verb"].as_str().unwrap_or_default(),
            r["group"].as_str().unwrap_or_default(),
            r["resource"].as_str().unwrap_or_default(),
            r["subresource"].as_str().unwrap_or_default(),
            r["namespace"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default(),
        )
    } else {
        let n = &spec["nonResourceAttributes"];
        Attributes {
            verb: n["verb"].as_str().unwrap_or_default().into(),
            path: n["path"].as_str().unwrap_or_default().into(),
            ..Default::default()
        }
    }
}

fn user_from_spec(spec: &Value) -> UserInfo {
    let extra: BTreeMap<String, Vec<String>> = spec["extra"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
            )
        })
        .collect();
    UserInfo {
        name: spec["user"].as_str().unwrap_or_default().into(),
        uid: spec["uid"].as_str().unwrap_or_default().into(),
        groups: spec["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        extra,
    }
}

async fn review(server: &Server, subject: &UserInfo, attrs: &Attributes) -> ApiResult<Value> {
    Ok(match authz::authorize(server, subject, attrs).await {
        Ok(()) => json!({"allowed": true}),
        // RBAC gives no reason for a denial; the real server's review then says only "allowed: false".
        Err(e) if e.code == 403 => json!({"allowed": false}),
        Err(e) => return Err(e),
    })
}

pub async fn create(
    server: &Server,
    user: &UserInfo,
    rt: &ResourceType,
    namespace: Option<&str>,
    mut body: Value,
) -> ApiResult<Response<Body>> {
    body["apiVersion"] = json!(rt.api_version());
    body["kind"] = json!(rt.kind);
    if body["metadata"].is_null() {
        body["metadata"] = json!({});
    }
    match rt.kind.as_str() {
        "SubjectAccessReview" => {
            let subject = user_from_spec(&body["spec"]);
            body["status"] = review(server, &subject, &attributes(&body["spec"])).await?;
        }
        "SelfSubjectAccessReview" => {
            body["status"] = review(server, user, &attributes(&body["spec"])).await?;
        }
        "LocalSubjectAccessReview" => {
            let ns = namespace.unwrap_or_default();
            if body["spec"]["resourceAttributes"]["namespace"].as_str() != Some(ns) {
                return Err(ApiError::bad_request(
                    "spec.resourceAttributes.namespace must match metadata.namespace",
                ));
            }
            let subject = user_from_spec(&body["spec"]);
            body["status"] = review(server, &subject, &attributes(&body["spec"])).await?;
        }
        "SelfSubjectRulesReview" => {
            let ns = body["spec"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let policy = authz::load_policy(server, &ns).await?;
            let rules = policy.rules_for(user, &ns);
            let (resource, non_resource): (Vec<Value>, Vec<Value>) = rules
                .into_iter()
                .partition(|r| r["nonResourceURLs"].is_null());
            body["status"] = json!({"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": false});
        }
        "TokenReview" => {
            let token = body["spec"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut headers = hyper::HeaderMap::new();
            if let Ok(v) = format!("Bearer {token}").parse() {
                headers.insert(hyper::header::AUTHORIZATION, v);
            }
            let peer = serve::Peer {
                addr: ([127, 0, 0, 1], 0).into(),
                certs: Vec::new(),
            };
            body["status"] = match super::authn::authenticate(server, &headers, &peer).await {
                Ok(u) if u.name != "system:anonymous" => json!({
                    "authenticated": true,
                    "user": {"username": u.name, "uid": u.uid, "groups": u.groups},
                    "audiences": server.opts.api_audiences,
                }),
                _ => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
        }
        "SelfSubjectReview" => {
            body["status"] = json!({"userInfo": {"username": user.name, "uid": user.uid, "groups": user.groups, "extra": user.extra}});
        }
        "Binding" => {
            let pods = server
                .registry_type("", "v1", "pods")
                .ok_or_else(|| ApiError::internal("pods type missing"))?;
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let node = body["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            super::rest::bind_pod(server, &pods, namespace, &name, &node).await?;
            return Ok(serve::json(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ));
        }
        other => {
            return Err(ApiError::method_not_allowed(format!(
                "{other} cannot be created"
            )));
        }
    }
    Ok(serve::json(StatusCode::CREATED, &body))
}
