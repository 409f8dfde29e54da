//! Reading existing certificates: an owned summary of what matters to kubeadm, signature and key checks.

use std::fmt;
use std::net::IpAddr;

use rcgen::KeyPair;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::PkiError;
use super::cert::Usage;

/// The type and size of a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa(usize),
    EcdsaP256,
    EcdsaP384,
    Other,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa(bits) => write!(f, "RSA-{bits}"),
            KeyKind::EcdsaP256 => f.write_str("ECDSA-P256"),
            KeyKind::EcdsaP384 => f.write_str("ECDSA-P384"),
            KeyKind::Other => f.write_str("an unsupported key type"),
        }
    }
}

/// The parts of a certificate kubeadm cares about, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub usages: Vec<Usage>,
    pub is_ca: bool,
    pub has_subject_key_id: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The SubjectPublicKeyInfo BIT STRING contents.
    pub public_key: Vec<u8>,
    pub key_kind: KeyKind,
}

impl CertInfo {
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| PkiError::Parse(e.to_string()))?;
        let text = |attr: &x509_parser::x509::AttributeTypeAndValue| {
            attr.as_str().map(str::to_string).ok()
        };
        let subject = cert.subject();
        let mut dns_names = Vec::new();
        let mut ips = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push(dns.to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ips.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut usages = Vec::new();
        if let Ok(Some(eku)) = cert.extended_key_usage() {
            if eku.value.server_auth {
                usages.push(Usage::ServerAuth);
            }
            if eku.value.client_auth {
                usages.push(Usage::ClientAuth);
            }
        }
        let has_subject_key_id = cert.extensions().iter().any(|ext| {
            matches!(
                ext.parsed_extension(),
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(_)
            )
        });
        let spki = cert.public_key();
        Ok(CertInfo {
            der: der.to_vec(),
            common_name: subject
                .iter_common_name()
                .filter_map(text)
                .next()
                .unwrap_or_default(),
            organizations: subject.iter_organization().filter_map(text).collect(),
            dns_names,
            ips,
            usages,
            is_ca: cert.is_ca(),
            has_subject_key_id,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            public_key: spki.subject_public_key.data.to_vec(),
            key_kind: key_kind(spki),
        })
    }

    /// Every certificate of a PEM bundle, in order.
    pub fn all_from_pem(text: &[u8]) -> Result<Vec<Self>, PkiError> {
        let blocks = pem::parse_many(text).map_err(|e| PkiError::Pem(e.to_string()))?;
        blocks
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| CertInfo::from_der(b.contents()))
            .collect()
    }

    /// The first certificate of a PEM file.
    pub fn from_pem(text: &[u8]) -> Result<Self, PkiError> {
        Self::all_from_pem(text)?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Pem("no CERTIFICATE block".to_string()))
    }

    /// Checks that `ca` signed this certificate (issuer name and signature).
    pub fn verify_signed_by(&self, ca: &CertInfo) -> Result<(), PkiError> {
        let (_, cert) =
            X509Certificate::from_der(&self.der).map_err(|e| PkiError::Parse(e.to_string()))?;
        let (_, issuer) =
            X509Certificate::from_der(&ca.der).map_err(|e| PkiError::Parse(e.to_string()))?;
        if cert.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(PkiError::NotSignedBy(format!(
                "its issuer is \"{}\", the CA is \"{}\"",
                cert.issuer(),
                issuer.subject()
            )));
        }
        cert.verify_signature(Some(issuer.public_key()))
            .map_err(|e| {
                PkiError::NotSignedBy(format!(
                    "the signature does not verify with the CA's key ({e})"
                ))
            })
    }

    /// True when `key` is the private half of this certificate's public key.
    pub fn matches_key(&self, key: &KeyPair) -> bool {
        self.public_key == key.public_key_raw()
    }

    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        now >= self.not_after
    }

    /// SANs kubeadm requires that this certificate lacks, as `DNS:x` / `IP:y`.
    pub fn missing_alt_names(&self, dns: &[String], ips: &[IpAddr]) -> Vec<String> {
        let mut missing: Vec<String> = dns
            .iter()
            .filter(|d| {
                !self
                    .dns_names
                    .iter()
                    .any(|have| have.eq_ignore_ascii_case(d))
            })
            .map(|d| format!("DNS:{d}"))
            .collect();
        missing.extend(
            ips.iter()
                .filter(|ip| !self.ips.contains(ip))
                .map(|ip| format!("IP:{ip}")),
        );
        missing
    }

    /// The PEM form of this certificate.
    pub fn pem(&self) -> String {
        super::to_pem("CERTIFICATE", self.der.clone())
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn key_kind(spki: &x509_parser::x509::SubjectPublicKeyInfo) -> KeyKind {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        return match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => KeyKind::Rsa(rsa.key_size()),
            _ => KeyKind::Other,
        };
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => KeyKind::EcdsaP256,
            Some(c) if c == OID_NIST_EC_P384 => KeyKind::EcdsaP384,
            _ => KeyKind::Other,
        };
    }
    KeyKind::Other
}

/// The type of a key pair's public key, read back through its SubjectPublicKeyInfo.
pub fn key_pair_kind(key: &KeyPair) -> KeyKind {
    use rcgen::PublicKeyData;
    let der = key.subject_public_key_info();
    match x509_parser::x509::SubjectPublicKeyInfo::from_der(&der) {
        Ok((_, spki)) => key_kind(&spki),
        Err(_) => KeyKind::Other,
    }
}
