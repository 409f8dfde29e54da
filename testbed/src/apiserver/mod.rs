//! The kube-apiserver double: started from the static-pod command line kubestrap renders, it serves
//! the Kubernetes API over TLS with the configured certificates, authenticates and authorizes like
//! the real server, and keeps every object in the real etcd.

pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod discovery;
pub mod etcd;
pub mod objects;
pub mod options;
pub mod patch;
pub mod policy;
pub mod proto;
pub mod proxy;
pub mod rbac;
pub mod registry;
pub mod rest;
pub mod reviews;
pub mod satoken;
pub mod selectors;
pub mod status;
pub mod store;
pub mod table;
pub mod validation;
pub mod watch;
pub mod workloads;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use crate::common::serve::{self, Body, Peer};
use crate::common::tls;
use crate::logf;
use options::Options;
use rbac::Attributes;
use registry::{Registry, ResourceType};
use selectors::Query;
use status::ApiError;

const COMPONENT: &str = "kube-apiserver";

pub struct Server {
    pub opts: Options,
    pub git_version: String,
    pub etcd: etcd::Etcd,
    pub client_cas: Vec<CertificateDer<'static>>,
    pub front_proxy_cas: Vec<CertificateDer<'static>>,
    pub tokens: satoken::TokenKeys,
    registry: RwLock<Registry>,
    /// The store revision, polled while watches listen: they wake when it moves.
    pub revision: tokio::sync::watch::Sender<i64>,
    /// The client of `pods/proxy` (plain HTTP to pod IPs), built once: a client per request would
    /// read the system's trust roots each time.
    pub proxy_client: reqwest::Client,
    pub policy_cache: authz::PolicyCache,
}

impl Server {
    pub fn types(&self) -> Vec<ResourceType> {
        self.registry
            .read()
            .map(|r| r.types.clone())
            .unwrap_or_default()
    }

    pub fn registry_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.registry
            .read()
            .ok()?
            .find(group, version, plural)
            .cloned()
    }

    /// A resource type, re-reading CustomResourceDefinitions once when it is unknown (another API
    /// server may have added it).
    pub async fn lookup_type(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<ResourceType> {
        if let Some(t) = self.registry_type(group, version, plural) {
            return Some(t);
        }
        self.refresh_types().await;
        self.registry_type(group, version, plural)
    }

    pub async fn refresh_types(&self) {
        let Some(crds) =
            self.registry_type("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        else {
            return;
        };
        if let Ok((items, _)) = self.list(&crds, None).await {
            let established: Vec<Value> = items
                .into_iter()
                .filter(|c| c["metadata"]["deletionTimestamp"].is_null())
                .collect();
            if let Ok(mut r) = self.registry.write() {
                *r = Registry::built_in().with_crds(&established);
            }
        }
    }

    fn registry_snapshot(&self) -> Registry {
        self.registry.read().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A Secret's decoded data value.
pub fn secret_data(secret: &Value, key: &str) -> Option<String> {
    let raw = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    String::from_utf8(bytes).ok()
}

/// The version this double reports: the tag of the image it was started from, when the kubelet
/// double passes it, else the testbed default.
pub fn component_version() -> String {
    std::env::var("TESTBED_IMAGE")
        .ok()
        .and_then(|image| image.rsplit_once(':').map(|(_, tag)| tag.to_string()))
        .filter(|t| t.starts_with('v'))
        .or_else(|| std::env::var("TESTBED_KUBERNETES_VERSION").ok())
        .unwrap_or_else(|| crate::DEFAULT_KUBERNETES_VERSION.to_string())
}

pub fn main(args: &[String]) -> i32 {
    crate::run_component(COMPONENT, args, run)
}

async fn run(args: Vec<String>) -> Result<()> {
    let flags = options::flag_table().parse(&args)?;
    if flags.has("version") {
        println!("Kubernetes {}", component_version());
        return Ok(());
    }
    let opts = options::options(&flags)?;
    let (chain, key) = match (&opts.tls_cert_file, &opts.tls_key_file) {
        (Some(c), Some(k)) => (tls::read_certs(c)?, tls::read_key(k)?),
        _ => {
            let (cert, key) = tls::self_signed(
                "kube-apiserver",
                &[opts.advertise_address.to_string(), "localhost".into()],
            )?;
            (
                tls::certs_from_pem(cert.as_bytes())?,
                tls::key_from_pem(key.as_bytes())?,
            )
        }
    };
    let client_cas = match &opts.client_ca_file {
        Some(p) => tls::read_certs(p).context("--client-ca-file")?,
        None => Vec::new(),
    };
    let front_proxy_cas = match &opts.request_header {
        Some(rh) => tls::read_certs(&rh.client_ca).context("--requestheader-client-ca-file")?,
        None => Vec::new(),
    };
    for (what, pair) in [
        ("kubelet client", &opts.kubelet_client_cert),
        ("proxy client", &opts.proxy_client_cert),
    ] {
        if let Some((cert, key)) = pair {
            tls::read_certs(cert).with_context(|| format!("{what} certificate"))?;
            tls::read_key(key).with_context(|| format!("{what} key"))?;
        }
    }
    let tokens = satoken::TokenKeys::load(
        &opts.service_account_signing_key,
        &opts.service_account_key_files,
    )
    .context("service account keys")?;
    let etcd = etcd::Etcd::new(
        opts.etcd_servers.clone(),
        opts.etcd_ca.as_deref(),
        opts.etcd_cert.as_deref(),
        opts.etcd_key.as_deref(),
    )?;
    let server = Arc::new(Server {
        git_version: component_version(),
        etcd,
        client_cas: client_cas.clone(),
        front_proxy_cas: front_proxy_cas.clone(),
        tokens,
        registry: RwLock::new(Registry::built_in()),
        revision: tokio::sync::watch::Sender::new(0),
        proxy_client: proxy::client()?,
        policy_cache: Default::default(),
        opts,
    });
    tokio::spawn(watch::poll_revision(server.clone()));
    wait_for_etcd(&server).await?;
    server.refresh_types().await;
    server
        .create_defaults()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut all_cas = client_cas;
    all_cas.extend(front_proxy_cas);
    let tls_config = tls::server_config(
        chain,
        key,
        (!all_cas.is_empty()).then_some(all_cas.as_slice()),
    )?;
    let listener = serve::bind(server.opts.bind).await?;
    logf!(COMPONENT, "Serving securely on {}", server.opts.bind);
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let lease_server = server.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = lease_server.renew_identity_lease(&hostname).await {
                logf!(COMPONENT, "failed to renew identity lease: {}", e.message);
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
    serve::serve_tls(listener, tls_config, move |req, peer| {
        let server = server.clone();
        async move { handle(server, req, peer).await }
    })
    .await;
    Ok(())
}

async fn wait_for_etcd(server: &Server) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match server.etcd.healthy().await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                logf!(COMPONENT, "waiting for etcd: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("storage initialization failed: {e}")),
        }
    }
}

async fn handle(server: Arc<Server>, req: Request<Incoming>, peer: Arc<Peer>) -> Response<Body> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let response = serve_request(server, req, peer).await;
    if std::env::var_os("TESTBED_TRACE").is_some() {
        logf!(
            COMPONENT,
            "{method} {uri} [{content_type}] -> {}",
            response.status().as_u16()
        );
    }
    response
}

async fn serve_request(
    server: Arc<Server>,
    req: Request<Incoming>,
    peer: Arc<Peer>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let user = match authn::authenticate(&server, &parts.headers, &peer).await {
        Ok(u) => u,
        Err(e) => return e.response(),
    };
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    let segs: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    if let [
        "api",
        "v1",
        "namespaces",
        ns,
        "pods",
        target,
        "proxy",
        rest @ ..,
    ] = segs.as_slice()
    {
        let body = match serve::read_body(body).await {
            Ok(b) => b,
            Err(e) => return ApiError::bad_request(e).response(),
        };
        let rest: Vec<&str> = rest.to_vec();
        return proxy::pods(
            &server,
            &user,
            &parts.method,
            ns,
            target,
            &rest,
            parts.uri.query(),
            &parts.headers,
            body,
        )
        .await;
    }
    let resource = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => rest::parse_segments("", "v1", rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            rest::parse_segments(group, version, rest)
        }
        _ => None,
    };
    let Some(resource) = resource else {
        let accept = parts
            .headers
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        return non_resource(&server, &user, &parts.method, &path, &segs, accept).await;
    };
    let body = match serve::read_body(body).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(e).response(),
    };
    rest::handle(rest::Call {
        server: &server,
        user: &user,
        method: parts.method,
        path: resource,
        query,
        headers: parts.headers,
        body,
    })
    .await
}

/// An OpenAPI v2 document without definitions: kubectl's client-side validation then knows no
/// schema and leaves objects alone (the double does not publish schemas).
fn openapi_v2(accept: &str) -> Response<Body> {
    if accept.contains("protobuf") {
        let mut response = Response::new(serve::full(bytes::Bytes::new()));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            ),
        );
        return response;
    }
    serve::json(
        StatusCode::OK,
        &serde_json::json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "testbed"}, "paths": {}, "definitions": {}}),
    )
}

async fn non_resource(
    server: &Server,
    user: &authn::UserInfo,
    method: &Method,
    path: &str,
    segs: &[&str],
    accept: &str,
) -> Response<Body> {
    let attrs = Attributes {
        verb: method.as_str().to_lowercase(),
        path: path.to_string(),
        ..Default::default()
    };
    if let Err(e) = authz::authorize(server, user, &attrs).await {
        return e.response();
    }
    let registry = server.registry_snapshot();
    if segs == ["openapi", "v2"] {
        return openapi_v2(accept);
    }
    let found = match segs {
        ["api"] => Some(discovery::core_versions(&format!(
            "{}:{}",
            server.opts.advertise_address,
            server.opts.bind.port()
        ))),
        ["api", "v1"] => discovery::resource_list(&registry, "", "v1"),
        ["apis"] => Some(discovery::group_list(&registry)),
        ["apis", group] => discovery::group(&registry, group),
        ["apis", group, version] => discovery::resource_list(&registry, group, version),
        ["version"] => Some(discovery::version(&server.git_version)),
        ["openapi", "v3"] => Some(discovery::openapi_v3_root(&registry)),
        ["openapi", "v3", "api", version] => {
            discovery::openapi_v3_group_version(&registry, "", version)
        }
        ["openapi", "v3", "apis", group, version] => {
            discovery::openapi_v3_group_version(&registry, group, version)
        }
        [".well-known", "openid-configuration"] => Some(serde_json::json!({
            "issuer": server.opts.service_account_issuers.first(),
            "jwks_uri": format!("https://{}:{}/openid/v1/jwks", server.opts.advertise_address, server.opts.bind.port()),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "ES384"],
        })),
        ["openid", "v1", "jwks"] => Some(server.tokens.jwks()),
        [probe, ..] if matches!(*probe, "healthz" | "livez" | "readyz") => {
            let ready = *probe != "readyz" || server.etcd.healthy().await.is_ok();
            return if ready {
                serve::text(StatusCode::OK, "ok")
            } else {
                serve::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "[-]etcd failed: reason withheld\nreadyz check failed",
                )
            };
        }
        _ => None,
    };
    match found {
        Some(doc) => serve::json(StatusCode::OK, &doc),
        None => ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .response(),
    }
}
