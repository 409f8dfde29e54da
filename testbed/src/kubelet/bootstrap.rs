//! The kubelet's client credentials: use --kubeconfig when its client certificate is valid, else
//! TLS-bootstrap with --bootstrap-kubeconfig (CSR → wait for the signed certificate → write
//! pki/kubelet-client-current.pem and the kubeconfig), as the kubelet's bootstrap package does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::flags::KubeletFlags;
use crate::common::client::ApiClient;
use crate::common::kubeconfig::{self, ClientConfig};
use crate::common::{time, tls};
use crate::logf;

const COMPONENT: &str = "kubelet";

/// Whether a kubeconfig has a client certificate that is present and not expired.
fn usable(path: &Path) -> Option<ClientConfig> {
    let config = kubeconfig::load(path).ok()?;
    if config.token.is_some() {
        return Some(config);
    }
    let cert = config.client_cert_pem.as_ref()?;
    let der = tls::certs_from_pem(cert).ok()?.into_iter().next()?;
    (tls::not_after(&der).ok()? > time::unix_now()).then_some(config)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// With rotation on, a client certificate given in the kubeconfig seeds the rotating store when it
/// is empty (`kubelet-client-<time>.pem` and the `kubelet-client-current.pem` link), as the
/// kubelet's certificate manager stores its bootstrap pair; kubeadm's kubelet-finalize then points
/// kubelet.conf at the link.
fn seed_rotating_store(config: &ClientConfig, cert_dir: &Path) -> Result<()> {
    let current = cert_dir.join("kubelet-client-current.pem");
    let (Some(cert), Some(key)) = (&config.client_cert_pem, &config.client_key_pem) else {
        return Ok(());
    };
    if current.exists() {
        return Ok(());
    }
    let stamp = time::now()
        .replace([':', 'T'], "-")
        .trim_end_matches('Z')
        .to_string();
    let pem_path = cert_dir.join(format!("kubelet-client-{stamp}.pem"));
    let mut combined = String::from_utf8_lossy(cert).trim_end().to_string();
    combined.push('\n');
    combined.push_str(&String::from_utf8_lossy(key));
    write_private(&pem_path, combined.as_bytes())?;
    let _ = std::fs::remove_file(&current);
    std::os::unix::fs::symlink(&pem_path, &current)?;
    logf!(
        COMPONENT,
        "Stored the kubeconfig's client certificate in {}",
        current.display()
    );
    Ok(())
}

/// The API client the kubelet runs with, or None in standalone mode (no --kubeconfig).
pub async fn client(
    flags: &KubeletFlags,
    node_name: &str,
    rotate: bool,
) -> Result<Option<ApiClient>> {
    let Some(kubeconfig_path) = &flags.kubeconfig else {
        logf!(
            COMPONENT,
            "No API server defined - no node status update will be sent"
        );
        return Ok(None);
    };
    if let Some(config) = usable(kubeconfig_path) {
        if rotate {
            seed_rotating_store(&config, &flags.cert_dir)?;
        }
        return Ok(Some(ApiClient::new(&config)?));
    }
    let Some(bootstrap_path) = &flags.bootstrap_kubeconfig else {
        bail!(
            "failed to run Kubelet: unable to load client config from {}: the file is missing or holds no valid client certificate, and no --bootstrap-kubeconfig was given",
            kubeconfig_path.display()
        );
    };
    let bootstrap = kubeconfig::load(bootstrap_path)
        .with_context(|| format!("failed to run Kubelet: unable to load bootstrap kubeconfig: stat {}: no such file or directory", bootstrap_path.display()))?;
    logf!(
        COMPONENT,
        "Using bootstrap kubeconfig to generate TLS client cert, key and kubeconfig file"
    );
    let cert_path = tls_bootstrap(&bootstrap, &flags.cert_dir, node_name).await?;
    let ca = bootstrap
        .ca_pem
        .clone()
        .ok_or_else(|| anyhow!("the bootstrap kubeconfig has no certificate authority data"))?;
    let text =
        kubeconfig::render_with_cert_files(&bootstrap.server, &ca, &cert_path.to_string_lossy())?;
    write_private(kubeconfig_path, text.as_bytes())?;
    logf!(COMPONENT, "Wrote kubeconfig {}", kubeconfig_path.display());
    let config = kubeconfig::load(kubeconfig_path)?;
    Ok(Some(ApiClient::new(&config)?))
}

/// Requests, waits for and stores the node client certificate; returns kubelet-client-current.pem.
async fn tls_bootstrap(
    bootstrap: &ClientConfig,
    cert_dir: &Path,
    node_name: &str,
) -> Result<PathBuf> {
    let client = ApiClient::new(bootstrap)?;
    let tmp_key = cert_dir.join("kubelet-client.key.tmp");
    let key = match std::fs::read_to_string(&tmp_key)
        .ok()
        .and_then(|pem| rcgen::KeyPair::from_pem(&pem).ok())
    {
        Some(k) => k,
        None => {
            let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            write_private(&tmp_key, k.serialize_pem().as_bytes())?;
            k
        }
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("system:node:{node_name}"),
    );
    let csr_pem = params.serialize_request(&key)?.pem()?;
    let digest = Sha256::digest(format!("{}{}", key.public_key_pem(), node_name));
    let name = format!(
        "node-csr-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..24])
    );
    let body = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(&csr_pem),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        }
    });
    let collection = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    loop {
        match client.create(collection, &body).await {
            Ok(_) => break,
            Err(e) if e.is_conflict() => break,
            Err(e) => {
                logf!(
                    COMPONENT,
                    "Failed to request signed certificate from the API server: {e}"
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    logf!(
        COMPONENT,
        "Waiting for client certificate to be issued (CSR {name})"
    );
    let certificate = loop {
        match client.get(&format!("{collection}/{name}")).await {
            Ok(csr) => {
                let conditions = csr["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if let Some(c) = conditions
                    .iter()
                    .find(|c| c["type"] == "Denied" || c["type"] == "Failed")
                {
                    bail!(
                        "certificate request was not signed: {} ({})",
                        c["type"],
                        c["message"]
                    );
                }
                if let Some(cert) = csr["status"]["certificate"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                {
                    break base64::engine::general_purpose::STANDARD.decode(cert)?;
                }
            }
            Err(e) => logf!(
                COMPONENT,
                "Error fetching certificate signing request {name}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    tls::certs_from_pem(&certificate).context("the issued certificate is not PEM")?;
    let stamp = time::now()
        .replace([':', 'T'], "-")
        .trim_end_matches('Z')
        .to_string();
    let pem_path = cert_dir.join(format!("kubelet-client-{stamp}.pem"));
    let mut combined = String::from_utf8_lossy(&certificate).into_owned();
    combined.push_str(&key.serialize_pem());
    write_private(&pem_path, combined.as_bytes())?;
    let current = cert_dir.join("kubelet-client-current.pem");
    let _ = std::fs::remove_file(&current);
    std::os::unix::fs::symlink(&pem_path, &current)?;
    let _ = std::fs::remove_file(&tmp_key);
    logf!(
        COMPONENT,
        "Client certificate issued; wrote {}",
        current.display()
    );
    Ok(current)
}

/// The kubelet's serving certificate: --tls-cert-file, else a self-signed one in the cert dir.
pub fn serving_cert(
    cert: Option<&Path>,
    key: Option<&Path>,
    cert_dir: &Path,
    names: &[String],
) -> Result<(String, String)> {
    if let (Some(c), Some(k)) = (cert, key) {
        return Ok((std::fs::read_to_string(c)?, std::fs::read_to_string(k)?));
    }
    let (crt_path, key_path) = (cert_dir.join("kubelet.crt"), cert_dir.join("kubelet.key"));
    if let (Ok(c), Ok(k)) = (
        std::fs::read_to_string(&crt_path),
        std::fs::read_to_string(&key_path),
    ) {
        return Ok((c, k));
    }
    let common_name = names.first().cloned().unwrap_or_default();
    let (c, k) = tls::self_signed(&format!("{common_name}@{}", time::unix_now()), names)?;
    std::fs::create_dir_all(cert_dir)?;
    std::fs::write(&crt_path, &c)?;
    write_private(&key_path, k.as_bytes())?;
    Ok((c, k))
}
