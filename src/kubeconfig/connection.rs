//! A kubeconfig file as the cluster gateway's connection settings: the current context's server, CA and
//! credentials, with file references (`certificate-authority`, `client-certificate`, `client-key`,
//! `tokenFile`) read through the host, relative to the file as kubectl reads them.

use anyhow::{Context as _, bail};

use super::{Base64Data, KubeConfig};
use crate::cluster::{Connection, Credentials};
use crate::host::{Host, NodePath};

/// The connection settings of the kubeconfig at `path` (admin.conf, super-admin.conf, kubelet.conf,
/// a bootstrap kubeconfig with a token…); `None` when the file does not exist.
pub fn connection(host: &Host, path: &NodePath) -> anyhow::Result<Option<Connection>> {
    let Some(config) = super::load(host, path)? else {
        return Ok(None);
    };
    from_config(host, path, &config).map(Some)
}

/// The connection settings of an already parsed kubeconfig that was read from `path`.
pub fn from_config(
    host: &Host,
    path: &NodePath,
    config: &KubeConfig,
) -> anyhow::Result<Connection> {
    let current = config
        .current()
        .with_context(|| format!("the kubeconfig file {path}"))?;
    let cluster = &current.cluster.cluster;
    let user = &current.user.user;
    let read = |field: &str, data: &Option<Base64Data>, file: &Option<String>| {
        read_data(host, path, field, data, file)
    };
    for unsupported in ["exec", "auth-provider", "username"] {
        if user.extra.contains_key(unsupported) {
            bail!(
                "the kubeconfig file {path}: user {:?} authenticates with {unsupported:?}, which kubestrap does not support (use a client certificate or a token)",
                current.user.name
            );
        }
    }
    let token = match (
        &user.token,
        user.extra.get("tokenFile").and_then(|v| v.as_str()),
    ) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => {
            let bytes = host.read(&relative_to(path, file)).with_context(|| {
                format!("reading tokenFile {file:?} of the kubeconfig file {path}")
            })?;
            Some(String::from_utf8_lossy(&bytes).trim().to_string())
        }
        (None, None) => None,
    };
    let cert = read(
        "client-certificate",
        &user.client_certificate_data,
        &user.client_certificate,
    )?;
    let key = read("client-key", &user.client_key_data, &user.client_key)?;
    let credentials = match (cert, key, token) {
        (Some(cert_pem), Some(key_pem), _) => Credentials::ClientCertificate { cert_pem, key_pem },
        (Some(_), None, _) => bail!(
            "the kubeconfig file {path}: user {:?} has a client certificate but no client key",
            current.user.name
        ),
        (None, _, Some(token)) => Credentials::Token(token),
        (None, _, None) => Credentials::Anonymous,
    };
    Ok(Connection {
        server: cluster.server.clone(),
        ca_pem: read(
            "certificate-authority",
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        )?,
        insecure_skip_tls_verify: cluster.insecure_skip_tls_verify.unwrap_or(false),
        tls_server_name: cluster.tls_server_name.clone(),
        credentials,
        source: path.display_str(),
    })
}

/// Embedded `*-data`, else the file it names (relative paths are relative to the kubeconfig's directory).
fn read_data(
    host: &Host,
    kubeconfig: &NodePath,
    field: &str,
    data: &Option<Base64Data>,
    file: &Option<String>,
) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(data) = data {
        return Ok(Some(data.0.clone()));
    }
    let Some(file) = file.as_deref().filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let at = relative_to(kubeconfig, file);
    host.read(&at)
        .map(Some)
        .with_context(|| format!("reading {field} {at} named by the kubeconfig file {kubeconfig}"))
}

fn relative_to(kubeconfig: &NodePath, file: &str) -> NodePath {
    match kubeconfig.parent() {
        Some(dir) if !file.starts_with('/') => dir.join(file),
        // An absolute path, or a kubeconfig at the root: node paths are anchored at `/`.
        _ => NodePath::new(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Facts, Root};
    use crate::output::Ui;

    fn host(dir: &std::path::Path) -> Host {
        Host::new(Root::new(dir), Facts::default(), false, Ui::default())
    }

    #[test]
    fn kubelet_conf_reads_its_certificate_file_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path());
        let pem = NodePath::new("/var/lib/kubelet/pki/kubelet-client-current.pem");
        h.write_file(&pem, b"CERT AND KEY", 0o600).unwrap();
        let text = "apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority-data: Q0E=, server: 'https://10.0.0.1:6443'}
  name: default-cluster
contexts:
- context: {cluster: default-cluster, user: default-auth}
  name: default-context
current-context: default-context
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
";
        let path = NodePath::new("/etc/kubernetes/kubelet.conf");
        h.write_file(&path, text.as_bytes(), 0o600).unwrap();
        let c = connection(&h, &path).unwrap().unwrap();
        assert_eq!(c.server, "https://10.0.0.1:6443");
        assert_eq!(c.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(
            c.credentials,
            Credentials::ClientCertificate {
                cert_pem: b"CERT AND KEY".to_vec(),
                key_pem: b"CERT AND KEY".to_vec()
            }
        );
        assert_eq!(c.source, "/etc/kubernetes/kubelet.conf");
        assert!(
            connection(&h, &NodePath::new("/etc/kubernetes/admin.conf"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bootstrap_kubeconfigs_carry_their_token_and_exec_plugins_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path());
        let config = KubeConfig::with_token(
            "kubernetes",
            "https://10.0.0.1:6443",
            b"CA",
            "tls-bootstrap-token-user",
            "abcdef.0123456789abcdef",
        );
        let path = NodePath::new("/etc/kubernetes/bootstrap-kubelet.conf");
        let c = from_config(&h, &path, &config).unwrap();
        assert_eq!(
            c.credentials,
            Credentials::Token("abcdef.0123456789abcdef".into())
        );
        let mut exec = config.clone();
        exec.users[0]
            .user
            .extra
            .insert("exec".into(), serde_json::json!({"command": "aws"}));
        let err = format!("{:#}", from_config(&h, &path, &exec).unwrap_err());
        assert!(err.contains("authenticates with \"exec\""), "{err}");
    }
}
