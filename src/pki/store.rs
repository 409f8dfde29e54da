//! The PKI files under the cert dir: create each CA, leaf and the service-account key, or reuse and check what exists.
//!
//! As kubeadm does: an existing valid certificate and key are reused; a file that does not
//! fit (wrong CA, key, SANs or usages, expired) is an error naming it; a CA certificate without its
//! key is an external CA, whose leaves must already exist and be signed by it; a user-provided CA
//! with its key signs new leaves. Every write goes through [`Host::write_file`].

use anyhow::{Context, anyhow, bail};
use rcgen::KeyPair;
use time::OffsetDateTime;

use super::cert::{self, Authority, LeafTemplate, Usage, Validity};
use super::inspect::CertInfo;
use super::keys;
use super::table::{self, CaSpec, LeafSpec};
use crate::config::EncryptionAlgorithm;
use crate::host::{Host, NodePath};
use crate::model::ControlPlane;

pub const KEY_MODE: u32 = 0o600;
pub const CERT_MODE: u32 = 0o644;

/// A CA as found on disk.
pub enum CaState {
    Missing,
    /// Certificate and key: new leaves can be signed.
    Local {
        info: CertInfo,
        authority: Box<Authority>,
    },
    /// Certificate without its key (external CA mode): nothing is generated for it.
    External {
        info: CertInfo,
    },
}

impl CaState {
    pub fn info(&self) -> Option<&CertInfo> {
        match self {
            CaState::Missing => None,
            CaState::Local { info, .. } | CaState::External { info } => Some(info),
        }
    }
}

/// Reads a certificate file, `None` when absent; a file that does not parse is an error naming it.
pub fn read_cert(host: &Host, path: &NodePath) -> anyhow::Result<Option<CertInfo>> {
    match host.read_optional(path)? {
        None => Ok(None),
        Some(bytes) => CertInfo::from_pem(&bytes)
            .map(Some)
            .with_context(|| format!("reading the certificate {path}")),
    }
}

/// Reads a private key file, `None` when absent; a file that does not parse is an error naming it.
pub fn read_key(host: &Host, path: &NodePath) -> anyhow::Result<Option<KeyPair>> {
    match host.read_optional(path)? {
        None => Ok(None),
        Some(bytes) => keys::parse_private_key_pem(&bytes)
            .map(Some)
            .with_context(|| format!("reading the private key {path}")),
    }
}

/// Loads a CA from the cert dir and checks that the certificate is a CA and the key belongs to it.
pub fn load_ca(host: &Host, cert_dir: &NodePath, ca: &CaSpec) -> anyhow::Result<CaState> {
    let cert_path = ca.cert_path(cert_dir);
    let key_path = ca.key_path(cert_dir);
    let info = read_cert(host, &cert_path)?;
    let key = read_key(host, &key_path)?;
    match (info, key) {
        (None, None) => Ok(CaState::Missing),
        (None, Some(_)) => bail!(
            "the {} CA key {key_path} exists but its certificate {cert_path} is missing; restore the certificate or remove the key",
            ca.name
        ),
        (Some(info), key) => {
            if !info.is_ca {
                bail!("certificate {cert_path} is not a CA (BasicConstraints CA:TRUE is missing)");
            }
            match key {
                None => Ok(CaState::External { info }),
                Some(key) => {
                    if !info.matches_key(&key) {
                        bail!(
                            "the CA key {key_path} does not belong to the certificate {cert_path}"
                        );
                    }
                    let authority = Authority::new(&info.der, key)
                        .with_context(|| format!("loading the CA {cert_path}"))?;
                    Ok(CaState::Local {
                        info,
                        authority: Box::new(authority),
                    })
                }
            }
        }
    }
}

fn check_not_expired(info: &CertInfo, path: &NodePath, now: OffsetDateTime) -> anyhow::Result<()> {
    if info.is_expired_at(now) {
        bail!(
            "certificate {path} expired on {}; renew it or remove it to have it regenerated",
            super::format_rfc3339(info.not_after)
        );
    }
    Ok(())
}

/// `certs <ca>`: creates the CA, or reuses (and checks) the one on disk.
pub fn ensure_ca(host: &Host, cp: &ControlPlane, ca: &CaSpec) -> anyhow::Result<()> {
    let cert_dir = cp.cert_dir();
    let ui = host.ui();
    let now = OffsetDateTime::now_utc();
    match load_ca(host, cert_dir, ca)? {
        CaState::Local { info, .. } => {
            check_not_expired(&info, &ca.cert_path(cert_dir), now)?;
            ui.line(format!(
                "[certs] Using existing {} certificate authority",
                ca.base_name
            ));
        }
        CaState::External { info } => {
            check_not_expired(&info, &ca.cert_path(cert_dir), now)?;
            for leaf in ca
                .leaves()
                .filter(|l| !(l.is_etcd() && cp.cluster.etcd.is_external()))
            {
                check_existing_leaf(host, cp, leaf, &info, now).with_context(|| {
                    format!(
                        "external CA mode ({} without {}): every certificate it signs must already exist",
                        ca.cert_path(cert_dir),
                        ca.key_path(cert_dir)
                    )
                })?;
            }
            ui.line(format!(
                "[certs] Using existing {} keyless certificate authority",
                ca.base_name
            ));
        }
        CaState::Missing => {
            let key = keys::generate(cp.cluster.certificates.encryption_algorithm)?;
            let issued = cert::self_signed_ca(
                ca.common_name,
                Validity::from_now(cp.cluster.certificates.ca_validity_period.0)?,
                &key,
            )?;
            ui.line(format!(
                "[certs] Generating {:?} certificate and key",
                ca.base_name
            ));
            write_cert_and_key(
                host,
                &ca.cert_path(cert_dir),
                &issued.pem,
                &ca.key_path(cert_dir),
                &key,
            )?;
        }
    }
    Ok(())
}

/// `certs <leaf>`: signs the leaf with its CA, or reuses (and checks) the one on disk.
pub fn ensure_leaf(host: &Host, cp: &ControlPlane, leaf: &LeafSpec) -> anyhow::Result<()> {
    let cert_dir = cp.cert_dir();
    let ui = host.ui();
    let now = OffsetDateTime::now_utc();
    let ca_state = load_ca(host, cert_dir, leaf.ca)?;
    let Some(ca_info) = ca_state.info() else {
        bail!(
            "the {} certificate authority {} does not exist; run 'kubestrap init phase certs {}' first",
            leaf.ca.name,
            leaf.ca.cert_path(cert_dir),
            leaf.ca.name
        );
    };
    let cert_path = leaf.cert_path(cert_dir);
    let key_path = leaf.key_path(cert_dir);
    if host.exists(&cert_path) || host.exists(&key_path) {
        check_existing_leaf(host, cp, leaf, ca_info, now)?;
        ui.line(format!(
            "[certs] Using the existing {:?} certificate and key",
            leaf.base_name
        ));
        return Ok(());
    }
    let CaState::Local { authority, .. } = &ca_state else {
        bail!(
            "external CA mode: {} exists without {}, so {} and {} must be provided, signed by that CA",
            leaf.ca.cert_path(cert_dir),
            leaf.ca.key_path(cert_dir),
            cert_path,
            key_path
        );
    };
    let template = leaf.template(cp);
    let (issued, key) = issue_leaf(
        authority,
        &template,
        cp.cluster.certificates.encryption_algorithm,
        Validity::from_now(cp.cluster.certificates.validity_period.0)?,
    )?;
    ui.line(format!(
        "[certs] Generating {:?} certificate and key",
        leaf.base_name
    ));
    if template.usages.contains(&Usage::ServerAuth) {
        ui.line(format!(
            "[certs] {} serving cert is signed for DNS names [{}] and IPs [{}]",
            leaf.base_name,
            template.alt_names.dns_names().join(" "),
            template
                .alt_names
                .ips()
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    write_cert_and_key(host, &cert_path, &issued.pem, &key_path, &key)
}

/// Checks that a leaf on disk can be reused: both files present, signed by the CA, key matching,
/// not expired, with the SANs and usages this cluster needs. The error names the file.
fn check_existing_leaf(
    host: &Host,
    cp: &ControlPlane,
    leaf: &LeafSpec,
    ca: &CertInfo,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let cert_dir = cp.cert_dir();
    let cert_path = leaf.cert_path(cert_dir);
    let key_path = leaf.key_path(cert_dir);
    let info = read_cert(host, &cert_path)?
        .ok_or_else(|| anyhow!("the certificate {cert_path} is missing"))?;
    let key = read_key(host, &key_path)?
        .ok_or_else(|| anyhow!("the private key {key_path} is missing"))?;
    let problems = leaf_problems(&info, &key, ca, &leaf.template(cp), now);
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "the existing certificate {cert_path} can not be used for {:?}: {}; remove {cert_path} and {key_path} to have them regenerated",
        leaf.name,
        problems.join("; ")
    )
}

/// Everything wrong with a leaf certificate and key for the given CA and template (empty = reusable).
pub fn leaf_problems(
    info: &CertInfo,
    key: &KeyPair,
    ca: &CertInfo,
    template: &LeafTemplate,
    now: OffsetDateTime,
) -> Vec<String> {
    let mut problems = Vec::new();
    if info.is_ca {
        problems.push("it is a CA certificate, not a leaf".to_string());
    }
    if let Err(e) = info.verify_signed_by(ca) {
        problems.push(format!("it is {e}"));
    }
    if !info.matches_key(key) {
        problems.push("its private key does not match it".to_string());
    }
    if info.is_expired_at(now) {
        problems.push(format!(
            "it expired on {}",
            super::format_rfc3339(info.not_after)
        ));
    }
    let missing = info.missing_alt_names(&template.alt_names.dns_names(), template.alt_names.ips());
    if !missing.is_empty() {
        problems.push(format!("it lacks the SANs [{}]", missing.join(" ")));
    }
    let lacking: Vec<&str> = template
        .usages
        .iter()
        .filter(|u| !info.usages.contains(u))
        .map(|u| u.name())
        .collect();
    if !lacking.is_empty() {
        problems.push(format!(
            "it lacks the extended key usages [{}]",
            lacking.join(" ")
        ));
    }
    problems
}

/// `certs sa`: the service-account signing key pair (`sa.key` 0600, `sa.pub` PKIX 0644).
pub fn ensure_service_account_key(host: &Host, cp: &ControlPlane) -> anyhow::Result<()> {
    let cert_dir = cp.cert_dir();
    let key_path = cert_dir.join(format!("{}.key", table::SERVICE_ACCOUNT_BASE_NAME));
    let pub_path = cert_dir.join(format!("{}.pub", table::SERVICE_ACCOUNT_BASE_NAME));
    let ui = host.ui();
    let key = read_key(host, &key_path)?;
    let public = host.read_optional(&pub_path)?;
    match (key, public) {
        (Some(key), public) => {
            match public {
                Some(bytes) => {
                    let raw = public_key_from_pem(&bytes)
                        .with_context(|| format!("reading the public key {pub_path}"))?;
                    if raw != keys::raw_public_key(&key) {
                        bail!(
                            "the public key {pub_path} does not belong to {key_path}; remove {pub_path} to have it rewritten from the key"
                        );
                    }
                }
                None => {
                    host.write_file(&pub_path, keys::public_key_pem(&key).as_bytes(), CERT_MODE)?
                }
            }
            ui.line("[certs] Using the existing \"sa\" key");
        }
        (None, Some(_)) => bail!(
            "the public key {pub_path} exists without its private key {key_path}; restore the key or remove {pub_path}"
        ),
        (None, None) => {
            if let CaState::External { .. } = load_ca(host, cert_dir, &table::CA)? {
                bail!(
                    "external CA mode: {} exists without {}, so the service-account key pair {key_path} and {pub_path} must be provided",
                    table::CA.cert_path(cert_dir),
                    table::CA.key_path(cert_dir)
                );
            }
            let key = keys::generate(cp.cluster.certificates.encryption_algorithm)?;
            ui.line("[certs] Generating \"sa\" key and public key");
            host.write_file(&key_path, keys::private_key_pem(&key).as_bytes(), KEY_MODE)?;
            host.write_file(&pub_path, keys::public_key_pem(&key).as_bytes(), CERT_MODE)?;
        }
    }
    Ok(())
}

/// The raw public key of a PEM `PUBLIC KEY` (PKIX) file.
pub fn public_key_from_pem(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let blocks = pem::parse_many(bytes).map_err(|e| anyhow!("not valid PEM: {e}"))?;
    let block = blocks
        .iter()
        .find(|b| b.tag() == keys::PUBLIC_KEY_LABEL)
        .ok_or_else(|| anyhow!("no PUBLIC KEY block"))?;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(block.contents())
        .map_err(|e| anyhow!("not a PKIX public key: {e}"))?;
    Ok(spki.subject_public_key.data.to_vec())
}

/// Writes a certificate (0644) and its key (0600).
pub fn write_cert_and_key(
    host: &Host,
    cert_path: &NodePath,
    cert_pem: &str,
    key_path: &NodePath,
    key: &KeyPair,
) -> anyhow::Result<()> {
    host.write_file(cert_path, cert_pem.as_bytes(), CERT_MODE)?;
    host.write_file(key_path, keys::private_key_pem(key).as_bytes(), KEY_MODE)
}

/// A new key of `algorithm` and a certificate for it, signed by `authority`.
pub fn issue_leaf(
    authority: &Authority,
    template: &LeafTemplate,
    algorithm: EncryptionAlgorithm,
    validity: Validity,
) -> anyhow::Result<(cert::Issued, KeyPair)> {
    let key = keys::generate(algorithm)?;
    let issued = authority.sign(template, validity, &key)?;
    Ok((issued, key))
}
