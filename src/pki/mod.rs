//! The cluster PKI: keys, kubeadm's certificate templates and list, and the files under the cert dir.

pub mod cert;
pub mod inspect;
pub mod keys;
pub mod pin;
pub mod store;
pub mod table;

/// What can go wrong with keys and certificates themselves (files are named by the callers).
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating a {0} key failed: {1}")]
    KeyGeneration(&'static str, String),
    #[error("not valid PEM: {0}")]
    Pem(String),
    #[error("encrypted private keys are not supported; store the key unencrypted (mode 0600)")]
    EncryptedKey,
    #[error(
        "no private key found (PEM blocks: {0:?}); expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY"
    )]
    NoPrivateKey(Vec<String>),
    #[error("unsupported private key ({0}); supported are RSA and ECDSA P-256/P-384")]
    UnsupportedKey(String),
    #[error("not a valid certificate: {0}")]
    Parse(String),
    #[error("'{0}' is not a valid DNS name for a certificate")]
    InvalidSan(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("not signed by the expected CA: {0}")]
    NotSignedBy(String),
    #[error(
        "a certificate validity period of {0:?} reaches past the year 9999; choose a shorter one"
    )]
    ValidityTooLong(std::time::Duration),
    #[error("the system random source failed")]
    Random,
}

/// RFC 3339 in UTC with whole seconds (`2026-01-02T03:04:05Z`), as kubeadm prints certificate dates.
pub fn format_rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(RFC3339_UTC)
        .unwrap_or_else(|_| t.to_string())
}

const RFC3339_UTC: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// PEM text with LF line endings and 64-column lines, as Go's `encoding/pem` writes it.
pub fn to_pem(label: &str, der: Vec<u8>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}
