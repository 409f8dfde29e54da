//! Deleting this node's Node object with admin.conf's credentials (a plain authenticated DELETE), when
//! admin.conf exists and its API server answers.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use serde::Deserialize;

use super::super::ResetData;
use crate::host::runtime::block_on;
use crate::host::{NodePath, well_known};

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<ClusterEntry>,
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
struct ClusterEntry {
    cluster: ClusterData,
}

#[derive(Deserialize)]
struct ClusterData {
    server: String,
    #[serde(rename = "certificate-authority-data", default)]
    ca_data: Option<String>,
}

#[derive(Deserialize)]
struct UserEntry {
    user: UserData,
}

#[derive(Deserialize)]
struct UserData {
    #[serde(rename = "client-certificate-data", default)]
    cert_data: Option<String>,
    #[serde(rename = "client-key-data", default)]
    key_data: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// This node's name: the kubelet's `--hostname-override`, else the lowercased host name.
pub fn node_name(data: &ResetData) -> Option<String> {
    let flags = data
        .host
        .read_string(&NodePath::new(well_known::KUBELET_DIR).join("kubeadm-flags.env"))
        .unwrap_or_default();
    super::flag_values(&flags, "--hostname-override")
        .into_iter()
        .next()
        .or_else(|| data.host.facts().hostname().ok().map(|h| h.to_lowercase()))
}

/// Deletes the Node object; a missing admin.conf or an unreachable API server is only a notice.
pub fn delete_node(data: &mut ResetData) {
    let admin = NodePath::new(well_known::KUBERNETES_DIR).join("admin.conf");
    let Ok(Some(bytes)) = data.host.read_optional(&admin) else {
        return;
    };
    let Some(name) = node_name(data) else { return };
    if data.dry_run() {
        data.host.ui().line(format!(
            "[dry-run] Would delete the Node object {name:?} if the API server answers"
        ));
        return;
    }
    match delete(&String::from_utf8_lossy(&bytes), &name) {
        Ok(true) => data
            .host
            .ui()
            .line(format!("[reset] Deleted the Node object {name:?}")),
        Ok(false) => data
            .host
            .ui()
            .debug(1, format!("[reset] no Node object {name:?} in the cluster")),
        Err(e) => data.host.ui().warn(format!(
            "[reset] Could not delete the Node object {name:?}: {e:#}"
        )),
    }
}

fn decode(field: &Option<String>, what: &str) -> anyhow::Result<Option<Vec<u8>>> {
    field
        .as_ref()
        .map(|d| {
            base64::engine::general_purpose::STANDARD
                .decode(d.trim())
                .with_context(|| format!("decoding {what}"))
        })
        .transpose()
}

/// DELETE /api/v1/nodes/<name>: true when deleted, false when there was none.
pub fn delete(kubeconfig: &str, name: &str) -> anyhow::Result<bool> {
    let config: Kubeconfig = crate::yaml::from_str(kubeconfig).context("parsing admin.conf")?;
    let cluster = &config
        .clusters
        .first()
        .context("admin.conf names no cluster")?
        .cluster;
    let user = &config
        .users
        .first()
        .context("admin.conf names no user")?
        .user;
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
    if let Some(ca) = decode(&cluster.ca_data, "the cluster CA")? {
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(&ca)?]);
    }
    if let (Some(mut cert), Some(key)) = (
        decode(&user.cert_data, "the client certificate")?,
        decode(&user.key_data, "the client key")?,
    ) {
        cert.push(b'\n');
        cert.extend(key);
        builder = builder.identity(reqwest::Identity::from_pem(&cert)?);
    }
    let client = builder.build()?;
    let url = format!(
        "{}/api/v1/nodes/{name}",
        cluster.server.trim_end_matches('/')
    );
    let token = user.token.clone();
    block_on(async move {
        let mut request = client.delete(&url);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("DELETE {url}"))?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            code => anyhow::bail!("DELETE {url}: HTTP {code}"),
        }
    })?
}
