//! A small etcd v3 client over etcd's JSON gateway (`/v3/...`, etcd 3.4+) with mutual TLS: list, add
//! (as a learner), promote and remove cluster members, ask a member's health, and stream a snapshot.
//! Used by a control-plane join to add its member and by reset to leave the cluster cleanly.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use serde::Deserialize;

use crate::host::runtime::block_on;

/// One member of the etcd cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    /// The member id (a uint64, as a decimal string in the gateway's JSON).
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    /// A learner receives the log but does not vote (etcd 3.4+).
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

#[derive(Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
}

#[derive(Deserialize)]
struct MemberAdded {
    member: Member,
    #[serde(default)]
    members: Vec<Member>,
}

#[derive(Deserialize)]
struct Health {
    #[serde(default)]
    health: String,
}

/// A client for one etcd endpoint, authenticated with a client certificate.
pub struct EtcdClient {
    endpoint: String,
    http: reqwest::Client,
}

impl EtcdClient {
    /// `ca`, `cert` and `key` are PEM files (kubeadm's etcd/ca.crt and etcd/healthcheck-client.{crt,key}).
    pub fn new(
        endpoint: &str,
        ca: &Path,
        cert: &Path,
        key: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let ca = reqwest::Certificate::from_pem(&read(ca)?).context("parsing the etcd CA")?;
        let mut identity_pem = read(cert)?;
        identity_pem.push(b'\n');
        identity_pem.extend(read(key)?);
        let identity = reqwest::Identity::from_pem(&identity_pem)
            .context("loading the etcd client certificate")?;
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .identity(identity)
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .context("building the etcd client")?;
        Ok(EtcdClient {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            http,
        })
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.endpoint);
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("etcd at {} did not answer", self.endpoint))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            bail!("etcd {path}: {status}: {}", text.trim());
        }
        Ok(response)
    }

    pub fn members(&self) -> anyhow::Result<Vec<Member>> {
        block_on(async {
            let list: MemberList = self
                .post("/v3/cluster/member/list", serde_json::json!({}))
                .await?
                .json()
                .await
                .context("parsing etcd's member list")?;
            Ok(list.members)
        })?
    }

    /// Adds a learner with `peer_url`; the new member (without a name until it starts) and the
    /// membership after the change.
    pub fn add_learner(&self, peer_url: &str) -> anyhow::Result<(Member, Vec<Member>)> {
        block_on(async {
            let added: MemberAdded = self
                .post(
                    "/v3/cluster/member/add",
                    serde_json::json!({ "peerURLs": [peer_url], "isLearner": true }),
                )
                .await?
                .json()
                .await
                .context("parsing etcd's member add answer")?;
            Ok((added.member, added.members))
        })?
    }

    /// Makes a learner a voting member; etcd refuses while the learner has not caught up with the
    /// leader ("can only promote a learner member which is in sync with leader").
    pub fn promote(&self, id: &str) -> anyhow::Result<()> {
        block_on(async {
            self.post(
                "/v3/cluster/member/promote",
                serde_json::json!({ "ID": id }),
            )
            .await
            .map(|_| ())
        })?
    }

    /// Whether this endpoint's member serves a committed read (`GET /health`: `{"health":"true"}`).
    pub fn healthy(&self) -> anyhow::Result<()> {
        block_on(async {
            let url = format!("{}/health", self.endpoint);
            let response = self
                .http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("etcd at {} did not answer", self.endpoint))?;
            let status = response.status();
            let health: Health = response
                .json()
                .await
                .with_context(|| format!("etcd at {}: /health answered {status}", self.endpoint))?;
            if health.health != "true" {
                bail!(
                    "etcd at {} is not healthy (/health: {status}, health={:?})",
                    self.endpoint,
                    health.health
                );
            }
            Ok(())
        })?
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn remove_member(&self, id: &str) -> anyhow::Result<()> {
        block_on(async {
            self.post("/v3/cluster/member/remove", serde_json::json!({ "ID": id }))
                .await
                .map(|_| ())
        })?
    }

    /// Streams a snapshot of the keyspace into `out` (the gateway sends JSON chunks with base64 blobs).
    pub fn snapshot(&self, out: &Path) -> anyhow::Result<u64> {
        block_on(async {
            let mut response = self
                .post("/v3/maintenance/snapshot", serde_json::json!({}))
                .await?;
            let mut file = std::fs::File::create(out)
                .with_context(|| format!("creating {}", out.display()))?;
            let mut pending = Vec::new();
            let mut written = 0u64;
            while let Some(chunk) = response
                .chunk()
                .await
                .context("reading the etcd snapshot")?
            {
                pending.extend_from_slice(&chunk);
                written += write_complete_messages(&mut pending, &mut file)?;
            }
            written += write_complete_messages(&mut pending, &mut file)?;
            file.sync_all()?;
            if written == 0 {
                bail!("etcd sent an empty snapshot");
            }
            Ok(written)
        })?
    }
}

/// Decodes every complete `{"result":{"blob":…}}` message at the front of `pending` into `file`.
fn write_complete_messages(pending: &mut Vec<u8>, file: &mut std::fs::File) -> anyhow::Result<u64> {
    let mut written = 0u64;
    let mut stream = serde_json::Deserializer::from_slice(pending).into_iter::<serde_json::Value>();
    let mut consumed = 0;
    while let Some(Ok(message)) = stream.next() {
        consumed = stream.byte_offset();
        if let Some(err) = message.get("error") {
            bail!("etcd snapshot failed: {err}");
        }
        if let Some(blob) = message.pointer("/result/blob").and_then(|b| b.as_str()) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(blob)
                .context("decoding a snapshot chunk")?;
            file.write_all(&bytes)?;
            written += bytes.len() as u64;
        }
    }
    pending.drain(..consumed);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_list_json_is_read_with_string_ids() {
        let json = r#"{"header":{"cluster_id":"1"},"members":[{"ID":"1152","name":"node1","peerURLs":["https://127.0.0.1:2380"],"clientURLs":["https://127.0.0.1:2379"]},{"ID":"77","name":"","peerURLs":["https://127.0.0.2:2380"]}]}"#;
        let list: MemberList = serde_json::from_str(json).unwrap();
        assert_eq!(list.members.len(), 2);
        assert_eq!(list.members[0].id, "1152");
        assert_eq!(list.members[1].client_urls, Vec::<String>::new());
        assert!(!list.members[0].is_learner);
        let added = r#"{"header":{},"member":{"ID":"99","peerURLs":["https://10.0.0.3:2380"],"isLearner":true},"members":[{"ID":"1152","name":"node1","peerURLs":["https://10.0.0.1:2380"]},{"ID":"99","peerURLs":["https://10.0.0.3:2380"],"isLearner":true}]}"#;
        let added: MemberAdded = serde_json::from_str(added).unwrap();
        assert!(added.member.is_learner);
        assert_eq!(added.member.name, "");
        assert_eq!(added.members.len(), 2);
    }

    #[test]
    fn snapshot_chunks_are_decoded_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        let mut file = std::fs::File::create(&path).unwrap();
        let text = r#"{"result":{"remaining_bytes":"3","blob":"aGVs"}}{"result":{"remaining_bytes":"0","blob":"bG8="}}"#;
        let (first, second) = text.split_at(30);
        let mut pending = first.as_bytes().to_vec();
        assert_eq!(write_complete_messages(&mut pending, &mut file).unwrap(), 0);
        pending.extend_from_slice(second.as_bytes());
        assert_eq!(write_complete_messages(&mut pending, &mut file).unwrap(), 5);
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    }
}
