//! A small Kubernetes API client for the doubles: JSON over HTTPS with a kubeconfig's credentials.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

use super::kubeconfig::{self, ClientConfig};
use super::tls::{self, ServerTrust};

/// An API error: the HTTP status and the server's Status message.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path}: {status} {message}")]
pub struct ApiError {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub reason: String,
    pub message: String,
}

impl ApiError {
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
    pub fn is_conflict(&self) -> bool {
        self.status == 409
    }
}

/// The patch types the API server accepts.
#[derive(Debug, Clone, Copy)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
}

impl PatchType {
    fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Json => "application/json-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
        }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
    config: ClientConfig,
}

impl ApiClient {
    pub fn from_kubeconfig(path: &Path) -> Result<Self> {
        Self::new(&kubeconfig::load(path)?)
    }

    pub fn new(config: &ClientConfig) -> Result<Self> {
        let trust = match (&config.ca_pem, config.insecure) {
            (_, true) => ServerTrust::Insecure,
            (Some(ca), false) => {
                ServerTrust::Roots(tls::certs_from_pem(ca).context("certificate-authority")?)
            }
            (None, false) => {
                return Err(anyhow!(
                    "kubeconfig has no certificate authority and is not insecure"
                ));
            }
        };
        let identity = match (&config.client_cert_pem, &config.client_key_pem) {
            (Some(cert), Some(key)) => Some((
                tls::certs_from_pem(cert).context("client-certificate")?,
                tls::key_from_pem(key).context("client-key")?,
            )),
            _ => None,
        };
        let tls = tls::client_config(trust, identity)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        Ok(ApiClient {
            http,
            server: config.server.clone(),
            token: config.token.clone(),
            config: config.clone(),
        })
    }

    /// The same server and trust, authenticating with a bearer token instead of the
    /// kubeconfig's credentials (no client certificate is presented).
    pub fn with_token(&self, token: &str) -> Result<ApiClient> {
        let mut config = self.config.clone();
        config.client_cert_pem = None;
        config.client_key_pem = None;
        config.token = Some(token.to_string());
        ApiClient::new(&config)
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    pub async fn create(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    pub async fn replace(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(reqwest::Method::PUT, path, Some(body), None)
            .await
    }

    pub async fn patch(
        &self,
        path: &str,
        kind: PatchType,
        body: &Value,
    ) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::PATCH,
            path,
            Some(body),
            Some(kind.content_type()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ApiError> {
        self.send(reqwest::Method::DELETE, path, None, None).await
    }

    /// DELETE with a DeleteOptions body (propagationPolicy, preconditions).
    pub async fn delete_with(&self, path: &str, options: &Value) -> Result<Value, ApiError> {
        self.send(reqwest::Method::DELETE, path, Some(options), None)
            .await
    }

    /// Creates the object, or replaces it (keeping its resourceVersion) when it exists.
    pub async fn apply(
        &self,
        collection: &str,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        match self.create(collection, body).await {
            Err(e) if e.is_conflict() => {
                let path = format!("{collection}/{name}");
                let current = self.get(&path).await?;
                let mut updated = body.clone();
                updated["metadata"]["resourceVersion"] =
                    current["metadata"]["resourceVersion"].clone();
                self.replace(&path, &updated).await
            }
            other => other,
        }
    }

    /// Opens a watch (`path` carries `watch=1` and its query); the stream yields one event a line.
    /// `timeout` bounds the whole request, as the client's default 10 s would end any watch.
    pub async fn watch(&self, path: &str, timeout: Duration) -> Result<WatchStream, ApiError> {
        let url = format!("{}{}", self.server, path);
        let mut request = self
            .http
            .get(&url)
            .header("Accept", "application/json")
            .timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let fail = |status: u16, reason: String, message: String| ApiError {
            method: "WATCH".into(),
            path: path.to_string(),
            status,
            reason,
            message,
        };
        let response = request
            .send()
            .await
            .map_err(|e| fail(0, "ConnectionFailed".into(), error_chain(&e)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.text().await.unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let reason = value["reason"].as_str().unwrap_or_default().to_string();
            let message = value["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            return Err(fail(status, reason, message));
        }
        Ok(WatchStream {
            response,
            buffer: Vec::new(),
            path: path.to_string(),
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        content_type: Option<&str>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{}", self.server, path);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", content_type.unwrap_or("application/json"))
                .body(body.to_string());
        }
        let fail = |status: u16, reason: String, message: String| ApiError {
            method: method.to_string(),
            path: path.to_string(),
            status,
            reason,
            message,
        };
        let response = request
            .send()
            .await
            .map_err(|e| fail(0, "ConnectionFailed".into(), error_chain(&e)))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| fail(status, "ReadFailed".into(), e.to_string()))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let reason = value["reason"].as_str().unwrap_or_default().to_string();
            let message = value["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            Err(fail(status, reason, message))
        }
    }
}

/// The events of a watch, as the server streams them (`{"type": …, "object": …}` a line).
pub struct WatchStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    path: String,
}

impl WatchStream {
    /// The next event, or None when the server ended the watch.
    pub async fn next(&mut self) -> Result<Option<Value>, ApiError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| ApiError {
                        method: "WATCH".into(),
                        path: self.path.clone(),
                        status: 0,
                        reason: "BadEvent".into(),
                        message: e.to_string(),
                    });
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ApiError {
                        method: "WATCH".into(),
                        path: self.path.clone(),
                        status: 0,
                        reason: "StreamFailed".into(),
                        message: error_chain(&e),
                    });
                }
            }
        }
    }
}

/// An error with its causes, for messages about failed connections.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
