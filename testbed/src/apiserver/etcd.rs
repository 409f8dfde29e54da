//! Object storage in the real etcd through its v3 JSON gateway (`/v3/kv/*`), with the etcd client
//! certificate from --etcd-certfile/--etcd-keyfile, as the real API server stores objects.
//!
//! Objects are stored as JSON (the real server stores protobuf for built-in kinds); the
//! resourceVersion of an object is its etcd mod_revision, as in the real server.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::common::client::error_chain;
use crate::common::tls::{self, ServerTrust};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    AlreadyExists,
    #[error(
        "the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("etcd: {0}")]
    Unavailable(String),
    /// A read at a revision etcd has compacted away.
    #[error("required revision {0} has been compacted")]
    Compacted(i64),
}

/// One stored object and its revision.
#[derive(Debug, Clone)]
pub struct Stored {
    pub object: Value,
    pub revision: i64,
}

#[derive(Clone)]
pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
}

impl Etcd {
    pub fn new(
        endpoints: Vec<String>,
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Etcd> {
        let https = endpoints.iter().any(|e| e.starts_with("https://"));
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2));
        if https {
            let trust = match ca {
                Some(ca) => ServerTrust::Roots(tls::read_certs(ca).context("--etcd-cafile")?),
                None => {
                    return Err(anyhow!(
                        "--etcd-cafile is required for https etcd endpoints"
                    ));
                }
            };
            let identity = match (cert, key) {
                (Some(c), Some(k)) => Some((
                    tls::read_certs(c).context("--etcd-certfile")?,
                    tls::read_key(k).context("--etcd-keyfile")?,
                )),
                (None, None) => None,
                _ => {
                    return Err(anyhow!(
                        "--etcd-certfile and --etcd-keyfile must be given together"
                    ));
                }
            };
            builder = builder.tls_backend_preconfigured(tls::client_config(trust, identity)?);
        }
        Ok(Etcd {
            http: builder.build()?,
            endpoints,
        })
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value, StoreError> {
        let mut last = String::from("no etcd endpoints");
        for endpoint in &self.endpoints {
            let url = format!("{}/v3/{method}", endpoint.trim_end_matches('/'));
            match self.http.post(&url).json(body).send().await {
                Ok(response) => {
                    let status = response.status();
                    let value: Value = response
                        .json()
                        .await
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                    if status.is_success() {
                        return Ok(value);
                    }
                    last = format!("{url}: {status} {value}");
                }
                Err(e) => last = format!("{url}: {}", error_chain(&e)),
            }
        }
        Err(StoreError::Unavailable(last))
    }

    /// Whether etcd answers (used by /readyz and at start-up).
    pub async fn healthy(&self) -> Result<(), StoreError> {
        self.call(
            "kv/range",
            &json!({"key": B64.encode("health"), "serializable": true}),
        )
        .await
        .map(|_| ())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let response = self
            .call("kv/range", &json!({"key": B64.encode(key)}))
            .await?;
        Ok(kvs(&response)?.into_iter().next())
    }

    /// Every object under `prefix`, and the store revision of the read.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Stored>, i64), StoreError> {
        let response = self
            .call(
                "kv/range",
                &json!({"key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix))}),
            )
            .await?;
        Ok((kvs(&response)?, header_revision(&response)))
    }

    /// Every object under `prefix` as it was at `revision` (what a watch from that resourceVersion
    /// starts from). A revision ahead of etcd's reads as the current state.
    pub async fn list_at(&self, prefix: &str, revision: i64) -> Result<Vec<Stored>, StoreError> {
        let range = json!({
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
            "revision": revision.to_string(),
        });
        match self.call("kv/range", &range).await {
            Ok(response) => kvs(&response),
            Err(StoreError::Unavailable(text)) if text.contains("has been compacted") => {
                Err(StoreError::Compacted(revision))
            }
            Err(StoreError::Unavailable(text)) if text.contains("future revision") => {
                Ok(self.list(prefix).await?.0)
            }
            Err(e) => Err(e),
        }
    }

    /// Stores a new object; fails with AlreadyExists when the key is taken.
    pub async fn create(&self, key: &str, object: &Value) -> Result<i64, StoreError> {
        let txn = json!({
            "compare": [{"key": B64.encode(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": {"key": B64.encode(key), "value": B64.encode(object.to_string())}}],
        });
        let response = self.call("kv/txn", &txn).await?;
        if response["succeeded"].as_bool() == Some(true) {
            Ok(header_revision(&response))
        } else {
            Err(StoreError::AlreadyExists)
        }
    }

    /// Replaces an object if it is still at `revision`.
    pub async fn update(
        &self,
        key: &str,
        object: &Value,
        revision: i64,
    ) -> Result<i64, StoreError> {
        let txn = json!({
            "compare": [{"key": B64.encode(key), "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string()}],
            "success": [{"request_put": {"key": B64.encode(key), "value": B64.encode(object.to_string())}}],
        });
        let response = self.call("kv/txn", &txn).await?;
        if response["succeeded"].as_bool() == Some(true) {
            Ok(header_revision(&response))
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Deletes an object if it is still at `revision`.
    pub async fn delete(&self, key: &str, revision: i64) -> Result<i64, StoreError> {
        let txn = json!({
            "compare": [{"key": B64.encode(key), "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string()}],
            "success": [{"request_delete_range": {"key": B64.encode(key)}}],
        });
        let response = self.call("kv/txn", &txn).await?;
        if response["succeeded"].as_bool() == Some(true) {
            Ok(header_revision(&response))
        } else {
            Err(StoreError::Conflict)
        }
    }
}

/// The range end that selects every key with `prefix` (etcd's prefix convention).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn header_revision(response: &Value) -> i64 {
    int(&response["header"]["revision"])
}

/// The gateway writes int64 fields as strings and leaves zero values out.
fn int(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kvs(response: &Value) -> Result<Vec<Stored>, StoreError> {
    let mut out = Vec::new();
    for kv in response["kvs"].as_array().into_iter().flatten() {
        let raw = B64
            .decode(kv["value"].as_str().unwrap_or_default())
            .map_err(|e| StoreError::Unavailable(format!("undecodable value: {e}")))?;
        let object: Value = serde_json::from_slice(&raw)
            .map_err(|e| StoreError::Unavailable(format!("stored object is not JSON: {e}")))?;
        out.push(Stored {
            object,
            revision: int(&kv["mod_revision"]),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn gateway_ints_are_strings_or_missing() {
        assert_eq!(int(&json!("42")), 42);
        assert_eq!(int(&Value::Null), 0);
    }
}
