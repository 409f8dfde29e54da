//! Deleting this node's Node object with admin.conf's credentials (a plain authenticated DELETE), when
//! admin.conf exists and its API server answers.

use std::time::Duration;

use anyhow::Context;

use super::super::ResetData;
use crate::host::runtime::block_on;
use crate::host::{NodePath, well_known};
use crate::kubeconfig::{self, KubeConfig};
use crate::pki::inspect::CertInfo;

/// This node's name as the cluster knows it: the CN of the kubelet's client certificate
/// (`system:node:<name>`), else the node record's, else the kubelet's `--hostname-override`, else
/// the lowercased host name.
pub fn node_name(data: &ResetData) -> Option<String> {
    kubelet_identity(data)
        .or_else(|| data.record.as_ref().map(|m| m.node.name.clone()))
        .or_else(|| {
            let flags = data
                .host
                .read_string(&NodePath::new(well_known::KUBELET_DIR).join("kubeadm-flags.env"))
                .unwrap_or_default();
            super::flag_values(&flags, "--hostname-override")
                .into_iter()
                .next()
        })
        .or_else(|| data.host.facts().hostname().ok().map(|h| h.to_lowercase()))
}

/// The node name in kubelet.conf's client certificate (embedded, or the file it points at).
fn kubelet_identity(data: &ResetData) -> Option<String> {
    let path = NodePath::new(well_known::KUBERNETES_DIR).join("kubelet.conf");
    let config = kubeconfig::load(&data.host, &path).ok()??;
    let user = &config.current().ok()?.user.user;
    let pem = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => data.0.clone(),
        (None, Some(file)) => data.host.read(&NodePath::new(file)).ok()?,
        (None, None) => return None,
    };
    let cert = CertInfo::from_pem(&pem).ok()?;
    cert.common_name
        .strip_prefix("system:node:")
        .map(str::to_string)
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

/// DELETE /api/v1/nodes/<name>: true when deleted, false when there was none.
pub fn delete(kubeconfig_text: &str, name: &str) -> anyhow::Result<bool> {
    let config = KubeConfig::parse(kubeconfig_text).context("parsing admin.conf")?;
    let current = config.current().context("admin.conf")?;
    let cluster = &current.cluster.cluster;
    let user = &current.user.user;
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
    if let Some(ca) = &cluster.certificate_authority_data {
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(&ca.0)?]);
    }
    if let (Some(cert), Some(key)) = (&user.client_certificate_data, &user.client_key_data) {
        let mut identity = cert.0.clone();
        identity.push(b'\n');
        identity.extend(&key.0);
        builder = builder.identity(reqwest::Identity::from_pem(&identity)?);
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
