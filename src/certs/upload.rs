//! The `kube-system/kubeadm-certs` Secret's contents, in kubeadm's format: the cluster-wide CA keys and
//! the service-account key pair, each file AES-256-GCM encrypted with the 32-byte certificate key
//! (random 12-byte nonce, no additional data, stored as `nonce || ciphertext || tag`), under the file's
//! name with `/` made `-` (`etcd-ca.key`). Another control-plane node's `join --certificate-key`
//! decrypts them ([`decrypted_files`]).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::host::{Host, NodePath};
use crate::model::ControlPlane;
use crate::pki::table;

pub const SECRET_NAME: &str = "kubeadm-certs";
pub const NAMESPACE: &str = "kube-system";
/// The description of the token whose Secret owns kubeadm-certs (deleted with it after two hours).
pub const OWNER_TOKEN_DESCRIPTION: &str = "Proxy for managing TTL for the kubeadm-certs secret";
pub const OWNER_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CertKeyError {
    #[error("the certificate key must be 64 hexadecimal characters (32 bytes)")]
    BadKey,
    #[error("the system random source failed")]
    Random,
    #[error("an uploaded certificate is too short or was not encrypted with this certificate key")]
    Decrypt,
}

/// A new certificate key: 32 random bytes as 64 lowercase hex characters.
pub fn generate_key() -> Result<String, CertKeyError> {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| CertKeyError::Random)?;
    Ok(hex::encode(key))
}

fn aead(key_hex: &str) -> Result<LessSafeKey, CertKeyError> {
    let key = hex::decode(key_hex).map_err(|_| CertKeyError::BadKey)?;
    if key.len() != 32 {
        return Err(CertKeyError::BadKey);
    }
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| CertKeyError::BadKey)?;
    Ok(LessSafeKey::new(unbound))
}

/// `nonce || ciphertext || tag` of `plain`.
pub fn encrypt(key_hex: &str, plain: &[u8]) -> Result<Vec<u8>, CertKeyError> {
    let key = aead(key_hex)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CertKeyError::Random)?;
    let mut sealed = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut sealed,
    )
    .map_err(|_| CertKeyError::Random)?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(out)
}

pub fn decrypt(key_hex: &str, data: &[u8]) -> Result<Vec<u8>, CertKeyError> {
    let key = aead(key_hex)?;
    if data.len() < NONCE_LEN {
        return Err(CertKeyError::Decrypt);
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CertKeyError::Decrypt)?;
    let mut buf = sealed.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| CertKeyError::Decrypt)?;
    Ok(plain.to_vec())
}

/// The files kubeadm uploads, as (Secret data key, path on the node): the CA, front-proxy CA and
/// (stacked etcd) etcd CA certificates and keys and the service-account key pair; with external etcd,
/// its client files as `external-etcd-ca.crt`, `external-etcd.crt`, `external-etcd.key`.
pub fn files(cp: &ControlPlane) -> Vec<(String, NodePath)> {
    let dir = cp.cert_dir();
    let mut out = Vec::new();
    let mut add = |path: NodePath| {
        if let Ok(rel) = path.canonical().strip_prefix(dir.canonical()) {
            out.push((rel.display().to_string().replace('/', "-"), path));
        }
    };
    let mut cas = vec![&table::CA, &table::FRONT_PROXY_CA];
    if cp.cluster.etcd.local().is_some() {
        cas.push(&table::ETCD_CA);
    }
    for ca in cas {
        add(ca.cert_path(dir));
        add(ca.key_path(dir));
    }
    add(dir.join(format!("{}.key", table::SERVICE_ACCOUNT_BASE_NAME)));
    add(dir.join(format!("{}.pub", table::SERVICE_ACCOUNT_BASE_NAME)));
    if let Some(external) = cp.cluster.etcd.external() {
        for (name, file) in [
            ("external-etcd-ca.crt", &external.ca_file),
            ("external-etcd.crt", &external.cert_file),
            ("external-etcd.key", &external.key_file),
        ] {
            if let Some(path) = file {
                out.push((name.to_string(), path.clone()));
            }
        }
    }
    out
}

/// The Secret's data: every file that exists, encrypted. A missing CA key (an external CA) is skipped,
/// as kubeadm skips it; a missing CA certificate is an error.
pub fn encrypted_files(
    host: &Host,
    cp: &ControlPlane,
    key_hex: &str,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (name, path) in files(cp) {
        let Some(plain) = host.read_optional(&path)? else {
            if name.ends_with(".key") {
                continue;
            }
            anyhow::bail!("{path} does not exist: run the certs phase first");
        };
        out.push((name, encrypt(key_hex, &plain)?));
    }
    Ok(out)
}

/// The Secret's data decrypted, as (path on this node, contents), every file checked before any is
/// written. A missing CA key is skipped (an external CA), as kubeadm skips it; any other missing file, or
/// one that does not open with the key, is an error naming it.
pub fn decrypted_files(
    cp: &ControlPlane,
    key_hex: &str,
    data: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(NodePath, Vec<u8>)>, DownloadError> {
    let mut out = Vec::new();
    for (name, path) in files(cp) {
        let Some(sealed) = data.get(&name) else {
            if name.ends_with(".key") {
                continue;
            }
            return Err(DownloadError::Missing(name));
        };
        let plain = decrypt(key_hex, sealed).map_err(|e| match e {
            CertKeyError::Decrypt => DownloadError::WrongKey(name.clone()),
            other => DownloadError::Key(other),
        })?;
        out.push((path, plain));
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(
        "the Secret {NAMESPACE}/{SECRET_NAME} has no {0:?}: upload the certificates again on a control-plane node \
         ('kubestrap init phase upload-certs --upload-certs')"
    )]
    Missing(String),
    #[error(
        "{0:?} in the Secret {NAMESPACE}/{SECRET_NAME} does not decrypt with the given --certificate-key: the key \
         is not the one the certificates were uploaded with (it was printed by 'kubestrap init --upload-certs' or \
         'kubestrap init phase upload-certs --upload-certs')"
    )]
    WrongKey(String),
    #[error("--certificate-key: {0}")]
    Key(CertKeyError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::control_plane_model;

    #[test]
    fn sealed_files_open_with_the_key_only() {
        let key = generate_key().unwrap();
        assert_eq!(key.len(), 64);
        let sealed = encrypt(&key, b"-----BEGIN PRIVATE KEY-----").unwrap();
        assert_eq!(sealed.len(), 12 + 27 + 16);
        assert_eq!(
            decrypt(&key, &sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        let other = generate_key().unwrap();
        assert!(decrypt(&other, &sealed).is_err());
        assert!(decrypt(&key, &sealed[..5]).is_err());
        assert!(encrypt("abcd", b"x").is_err());
        assert_ne!(encrypt(&key, b"x").unwrap(), encrypt(&key, b"x").unwrap());
    }

    /// Interoperability: what Go's `cipher.NewGCM` would produce — AES-256-GCM with a 12-byte nonce
    /// prefix and no AAD — checked with a known-answer vector (NIST GCM test case 14 style: zero key,
    /// zero nonce, 16 zero bytes).
    #[test]
    fn the_layout_is_nonce_then_ciphertext_then_tag() {
        let key = "00".repeat(32);
        let mut data = vec![0u8; 12];
        let sealed = {
            let k = aead(&key).unwrap();
            let mut buf = vec![0u8; 16];
            k.seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut buf,
            )
            .unwrap();
            buf
        };
        assert_eq!(
            hex::encode(&sealed),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
        data.extend(sealed);
        assert_eq!(decrypt(&key, &data).unwrap(), vec![0u8; 16]);
    }

    #[test]
    fn uploaded_files_decrypt_to_their_paths_and_a_wrong_key_names_the_file() {
        let model = control_plane_model("");
        let cp = model.control_plane().unwrap();
        let key = generate_key().unwrap();
        let mut data = std::collections::BTreeMap::new();
        for (name, _) in files(&cp) {
            if name != "front-proxy-ca.key" {
                data.insert(name.clone(), encrypt(&key, name.as_bytes()).unwrap());
            }
        }
        let out = decrypted_files(&cp, &key, &data).unwrap();
        assert_eq!(out.len(), 7);
        assert_eq!(out[0].0.display_str(), "/etc/kubernetes/pki/ca.crt");
        assert_eq!(out[0].1, b"ca.crt");
        assert_eq!(out[4].0.display_str(), "/etc/kubernetes/pki/etcd/ca.key");
        let other = generate_key().unwrap();
        let err = decrypted_files(&cp, &other, &data).unwrap_err().to_string();
        assert!(
            err.contains("\"ca.crt\"") && err.contains("--certificate-key"),
            "{err}"
        );
        data.remove("sa.pub");
        let err = decrypted_files(&cp, &key, &data).unwrap_err().to_string();
        assert!(err.contains("sa.pub"), "{err}");
    }

    #[test]
    fn kubeadms_file_names() {
        let model = control_plane_model("");
        let names: Vec<String> = files(&model.control_plane().unwrap())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "ca.crt",
                "ca.key",
                "front-proxy-ca.crt",
                "front-proxy-ca.key",
                "etcd-ca.crt",
                "etcd-ca.key",
                "sa.key",
                "sa.pub"
            ]
        );
    }
}
