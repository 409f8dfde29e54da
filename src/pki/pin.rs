//! CA public-key pins (`sha256:<hex>` of the DER SubjectPublicKeyInfo), as a join command's
//! `--discovery-token-ca-cert-hash` carries them.

use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;

use super::PkiError;

/// The pin of every certificate in a PEM bundle (normally one: the cluster CA), in file order.
pub fn pins(pem_bundle: &[u8]) -> Result<Vec<String>, PkiError> {
    let blocks = pem::parse_many(pem_bundle).map_err(|e| PkiError::Pem(e.to_string()))?;
    let pins: Vec<String> = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| pin_of_der(b.contents()))
        .collect::<Result<_, _>>()?;
    if pins.is_empty() {
        return Err(PkiError::Parse("no CERTIFICATE block".into()));
    }
    Ok(pins)
}

/// The pin of one DER certificate.
pub fn pin_of_der(der: &[u8]) -> Result<String, PkiError> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| PkiError::Parse(e.to_string()))?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(spki))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's golden vector: the CA of kubeadm's dry-run fixture.
    #[test]
    fn the_fixture_ca_pins_as_kubeadm_does() {
        let ca = include_bytes!("../../tests/golden/kubeadm-fixture-ca.crt");
        assert_eq!(
            pins(ca).unwrap(),
            ["sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a"]
        );
        assert!(pins(b"not pem").is_err());
    }
}
