//! `pods/proxy`: `/api/v1/namespaces/<ns>/pods/[http:]<name>[:<port>]/proxy/<path>` forwarded as plain
//! HTTP to the pod's IP from the API server's own network, after the real server's authorization of
//! the `pods/proxy` subresource (verb from the HTTP method, as for connect requests).

use hyper::{HeaderMap, Method, Response, StatusCode};

use super::Server;
use super::authn::UserInfo;
use super::authz;
use super::rbac::Attributes;
use super::status::{ApiError, ApiResult};
use crate::common::serve::{self, Body};

/// The pod name and port of `[scheme:]name[:port]`; `None` for a scheme other than http.
pub fn split_target(target: &str) -> ApiResult<(String, Option<u16>)> {
    let parts: Vec<&str> = target.split(':').collect();
    let (name, port) = match parts.as_slice() {
        [name] => (*name, None),
        [name, port] if !matches!(*name, "http" | "https") => (*name, Some(*port)),
        ["http", name] => (*name, None),
        ["http", name, port] => (*name, Some(*port)),
        ["https", ..] => {
            return Err(ApiError::bad_request(
                "https proxying to pods is not implemented by the testbed's API server double",
            ));
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid pod proxy target {target:?}"
            )));
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| {
            ApiError::bad_request(format!(
                "named ports are not implemented by the testbed's pods/proxy: {p:?}"
            ))
        })?),
    };
    Ok((name.to_string(), port))
}

fn verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn pods(
    server: &Server,
    user: &UserInfo,
    method: &Method,
    namespace: &str,
    target: &str,
    rest: &[&str],
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Response<Body> {
    match forward(
        server, user, method, namespace, target, rest, raw_query, headers, body,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

/// The `pods/proxy` client. It keeps no idle connection: one the pod has just closed would fail the
/// next request.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()?)
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    server: &Server,
    user: &UserInfo,
    method: &Method,
    namespace: &str,
    target: &str,
    rest: &[&str],
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> ApiResult<Response<Body>> {
    let attrs = Attributes::resource(verb(method), "", "pods", "proxy", namespace, target);
    authz::authorize(server, user, &attrs).await?;
    let (name, port) = split_target(target)?;
    let rt = server.lookup_type("", "v1", "pods").await.ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })?;
    let (pod, _) = server.read(&rt, Some(namespace), &name).await?;
    let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
    if ip.is_empty() {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            format!("address not allowed: pod {namespace}/{name} has no pod IP"),
        ));
    }
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    let authority = match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    let mut url = format!("http://{authority}/{}", rest.join("/"));
    if let Some(q) = raw_query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(q);
    }
    let mut request = server
        .proxy_client
        .request(method.clone(), &url)
        .body(body.to_vec());
    for key in [hyper::header::CONTENT_TYPE, hyper::header::ACCEPT] {
        if let Some(v) = headers.get(&key) {
            request = request.header(key, v.clone());
        }
    }
    let answer = request.send().await.map_err(|e| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!(
                "error trying to reach service: {}",
                crate::common::client::error_chain(&e)
            ),
        )
    })?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let bytes = answer.bytes().await.map_err(|e| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    })?;
    let mut response = Response::new(serve::full(bytes));
    *response.status_mut() = status;
    if let Some(ct) =
        content_type.and_then(|v| hyper::header::HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, ct);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_scheme_and_port() {
        assert_eq!(split_target("web-1").unwrap(), ("web-1".into(), None));
        assert_eq!(
            split_target("web-1:8080").unwrap(),
            ("web-1".into(), Some(8080))
        );
        assert_eq!(
            split_target("http:web-1:8080").unwrap(),
            ("web-1".into(), Some(8080))
        );
        assert_eq!(split_target("http:web-1").unwrap(), ("web-1".into(), None));
        assert!(split_target("https:web-1:443").is_err());
        assert!(split_target("web-1:http").is_err());
        assert_eq!(verb(&Method::GET), "get");
        assert_eq!(verb(&Method::POST), "create");
    }
}
