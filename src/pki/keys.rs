//! Private keys: generation per `encryptionAlgorithm`, loading kubeadm/openssl PEM forms, PEM output.
//!
//! Keys are written as PKCS#8 `PRIVATE KEY` (Go's TLS stack and kubeadm read it); existing keys are
//! read in PKCS#1 (`RSA PRIVATE KEY`, what kubeadm writes for RSA), SEC1 (`EC PRIVATE KEY`, what
//! kubeadm writes for ECDSA and what `openssl ecparam -genkey` writes after an `EC PARAMETERS`
//! block) and PKCS#8.

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

use super::PkiError;
use crate::config::EncryptionAlgorithm;

pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// A fresh key pair of the configured algorithm.
pub fn generate(algorithm: EncryptionAlgorithm) -> Result<KeyPair, PkiError> {
    let generated = match algorithm {
        EncryptionAlgorithm::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        EncryptionAlgorithm::EcdsaP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
        EncryptionAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
        }
        EncryptionAlgorithm::Rsa3072 => {
            KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072)
        }
        EncryptionAlgorithm::Rsa4096 => {
            KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096)
        }
    };
    generated.map_err(|e| PkiError::KeyGeneration(algorithm.name(), e.to_string()))
}

/// Reads the first private key of a PEM file (other blocks, such as `EC PARAMETERS`, are skipped).
pub fn parse_private_key_pem(text: &[u8]) -> Result<KeyPair, PkiError> {
    let blocks = pem::parse_many(text).map_err(|e| PkiError::Pem(e.to_string()))?;
    let mut labels = Vec::new();
    for block in blocks {
        let der = block.contents().to_vec();
        let key = match block.tag() {
            "PRIVATE KEY" => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
            "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
            "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
            "ENCRYPTED PRIVATE KEY" => return Err(PkiError::EncryptedKey),
            other => {
                labels.push(other.to_string());
                continue;
            }
        };
        return KeyPair::try_from(&key)
            .map_err(|e| PkiError::UnsupportedKey(format!("{}: {e}", block.tag())));
    }
    Err(PkiError::NoPrivateKey(labels))
}

/// PEM (PKCS#8 `PRIVATE KEY`) of a key this tool generated.
pub fn private_key_pem(key: &KeyPair) -> String {
    super::to_pem(PRIVATE_KEY_LABEL, key.serialize_der())
}

/// PEM (PKIX `PUBLIC KEY`) of a key's public half.
pub fn public_key_pem(key: &KeyPair) -> String {
    use rcgen::PublicKeyData;
    super::to_pem(PUBLIC_KEY_LABEL, key.subject_public_key_info())
}

/// The raw public key (the SubjectPublicKeyInfo BIT STRING contents) of a key pair.
pub fn raw_public_key(key: &KeyPair) -> &[u8] {
    key.public_key_raw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    #[test]
    fn generated_keys_round_trip_through_pkcs8_pem() {
        for algorithm in [
            EncryptionAlgorithm::EcdsaP256,
            EncryptionAlgorithm::EcdsaP384,
            EncryptionAlgorithm::Rsa2048,
        ] {
            let key = generate(algorithm).unwrap();
            let text = private_key_pem(&key);
            assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
            let back = parse_private_key_pem(text.as_bytes()).unwrap();
            assert_eq!(back.public_key_raw(), key.public_key_raw());
            assert_eq!(back.algorithm(), key.algorithm());
        }
    }

    #[test]
    fn every_algorithm_generates_its_key_type() {
        use crate::pki::inspect::{KeyKind, key_pair_kind};
        let cases = [
            (EncryptionAlgorithm::EcdsaP256, KeyKind::EcdsaP256),
            (EncryptionAlgorithm::EcdsaP384, KeyKind::EcdsaP384),
            (EncryptionAlgorithm::Rsa2048, KeyKind::Rsa(2048)),
            (EncryptionAlgorithm::Rsa3072, KeyKind::Rsa(3072)),
            (EncryptionAlgorithm::Rsa4096, KeyKind::Rsa(4096)),
        ];
        for (algorithm, kind) in cases {
            assert_eq!(
                key_pair_kind(&generate(algorithm).unwrap()),
                kind,
                "{algorithm}"
            );
        }
    }

    #[test]
    fn public_key_pem_is_pkix() {
        let key = generate(EncryptionAlgorithm::EcdsaP256).unwrap();
        let text = public_key_pem(&key);
        assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{text}");
        let block = pem::parse(&text).unwrap();
        let (_, spki) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(block.contents()).unwrap();
        assert_eq!(spki.subject_public_key.data.as_ref(), key.public_key_raw());
    }

    #[test]
    fn unusable_pem_is_rejected_with_what_was_found() {
        let err = parse_private_key_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("CERTIFICATE"), "{err}");
        let err = parse_private_key_pem(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(matches!(err, PkiError::EncryptedKey));
    }
}
