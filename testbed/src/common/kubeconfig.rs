//! Kubeconfig files read as client-go reads them: the current context's cluster and user, with file
//! references resolved relative to the kubeconfig's directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde::Deserialize;

/// What a client needs from a kubeconfig.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub server: String,
    pub ca_pem: Option<Vec<u8>>,
    pub insecure: bool,
    pub tls_server_name: Option<String>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(default)]
    pub clusters: Option<Vec<NamedCluster>>,
    #[serde(default)]
    pub users: Option<Vec<NamedUser>>,
    #[serde(default)]
    pub contexts: Option<Vec<NamedContext>>,
    #[serde(default)]
    pub current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    #[serde(default)]
    pub server: String,
    pub certificate_authority: Option<String>,
    pub certificate_authority_data: Option<String>,
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NamedUser {
    pub name: String,
    #[serde(default)]
    pub user: User,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    pub client_certificate: Option<String>,
    pub client_certificate_data: Option<String>,
    pub client_key: Option<String>,
    pub client_key_data: Option<String>,
    pub token: Option<String>,
    /// client-go spells this one in camel case (`tokenFile`), unlike the other user fields.
    #[serde(rename = "tokenFile")]
    pub token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: ContextRef,
}

#[derive(Debug, Deserialize)]
pub struct ContextRef {
    pub cluster: String,
    #[serde(default)]
    pub user: String,
}

/// Loads a kubeconfig file and resolves its current context.
pub fn load(path: &Path) -> Result<ClientConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("stat {}: no such file or directory", path.display()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &base).with_context(|| format!("invalid kubeconfig {}", path.display()))
}

/// Parses kubeconfig text; relative file paths are taken relative to `base`.
pub fn parse(text: &str, base: &Path) -> Result<ClientConfig> {
    let config: Kubeconfig = serde_saphyr::from_str(text).context("decode kubeconfig")?;
    let current = config
        .current_context
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| anyhow!("invalid configuration: no configuration has been provided"))?;
    let context = config
        .contexts
        .iter()
        .flatten()
        .find(|c| c.name == current)
        .ok_or_else(|| anyhow!("context was not found for specified context: {current}"))?;
    let cluster = config
        .clusters
        .iter()
        .flatten()
        .find(|c| c.name == context.context.cluster)
        .ok_or_else(|| anyhow!("cluster {:?} not found", context.context.cluster))?;
    let user = config
        .users
        .iter()
        .flatten()
        .find(|u| u.name == context.context.user)
        .map(|u| &u.user);
    if cluster.cluster.server.is_empty() {
        bail!(
            "invalid configuration: no server found for cluster {:?}",
            cluster.name
        );
    }
    let ca_pem = data_or_file(
        &cluster.cluster.certificate_authority_data,
        &cluster.cluster.certificate_authority,
        base,
    )?;
    let (client_cert_pem, client_key_pem, token) = match user {
        None => (None, None, None),
        Some(user) => {
            let cert = data_or_file(
                &user.client_certificate_data,
                &user.client_certificate,
                base,
            )?;
            let key = data_or_file(&user.client_key_data, &user.client_key, base)?;
            if cert.is_some() != key.is_some() {
                bail!(
                    "invalid configuration: client certificate and client key must be given together"
                );
            }
            let token = match (&user.token, &user.token_file) {
                (Some(t), _) if !t.is_empty() => Some(t.clone()),
                (_, Some(file)) => Some(
                    std::fs::read_to_string(resolve(base, file))
                        .with_context(|| format!("read token file {file}"))?
                        .trim()
                        .to_string(),
                ),
                _ => None,
            };
            (cert, key, token)
        }
    };
    if cluster.cluster.insecure_skip_tls_verify && ca_pem.is_some() {
        bail!(
            "invalid configuration: specifying a root certificates file with the insecure flag is not allowed"
        );
    }
    Ok(ClientConfig {
        server: cluster.cluster.server.trim_end_matches('/').to_string(),
        ca_pem,
        insecure: cluster.cluster.insecure_skip_tls_verify,
        tls_server_name: cluster.cluster.tls_server_name.clone(),
        client_cert_pem,
        client_key_pem,
        token,
    })
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn data_or_file(
    data: &Option<String>,
    file: &Option<String>,
    base: &Path,
) -> Result<Option<Vec<u8>>> {
    if let Some(data) = data.as_ref().filter(|d| !d.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("illegal base64 data")?;
        return Ok(Some(bytes));
    }
    match file.as_ref().filter(|f| !f.is_empty()) {
        None => Ok(None),
        Some(f) => {
            let path = resolve(base, f);
            std::fs::read(&path)
                .map(Some)
                .with_context(|| format!("open {}: no such file or directory", path.display()))
        }
    }
}

/// Writes a kubeconfig that uses client certificate files, the shape the kubelet writes after its
/// TLS bootstrap.
pub fn render_with_cert_files(
    server: &str,
    ca_pem: &[u8],
    cert_and_key_path: &str,
) -> Result<String> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": {"certificate-authority-data": ca, "server": server}}],
        "contexts": [{"name": "default-context", "context": {"cluster": "default-cluster", "namespace": "default", "user": "default-auth"}}],
        "current-context": "default-context",
        "preferences": {},
        "users": [{"name": "default-auth", "user": {"client-certificate": cert_and_key_path, "client-key": cert_and_key_path}}],
    });
    kubestrap::yaml::to_string(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_context_and_relative_files_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), "CERT").unwrap();
        std::fs::write(dir.path().join("k.pem"), "KEY").unwrap();
        let text = r#"
apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://10.0.0.1:6443/", certificate-authority-data: Q0E=}
- name: b
  cluster: {server: "https://b:6443"}
contexts:
- name: ctx
  context: {cluster: a, user: u}
current-context: ctx
users:
- name: u
  user: {client-certificate: c.pem, client-key: k.pem}
"#;
        let c = parse(text, dir.path()).unwrap();
        assert_eq!(c.server, "https://10.0.0.1:6443");
        assert_eq!(c.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(c.client_cert_pem.as_deref(), Some(&b"CERT"[..]));
        assert_eq!(c.client_key_pem.as_deref(), Some(&b"KEY"[..]));
    }

    #[test]
    fn missing_context_or_key_is_refused() {
        assert!(parse("apiVersion: v1\nkind: Config\n", Path::new("/")).is_err());
        let text = "clusters: [{name: a, cluster: {server: 'https://x'}}]\ncontexts: [{name: c, context: {cluster: a, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {client-certificate-data: QQ==}}]\n";
        assert!(parse(text, Path::new("/")).is_err());
    }
}
