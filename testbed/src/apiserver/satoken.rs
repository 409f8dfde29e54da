//! Service-account tokens: JWTs signed with --service-account-signing-key-file and verified with the
//! keys of --service-account-key-file, as the real server issues (TokenRequest) and checks them.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

enum Signer {
    Es256(EcdsaKeyPair),
    Es384(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

#[derive(Debug, Clone)]
enum Verifier {
    Es256(Vec<u8>),
    Es384(Vec<u8>),
    Rs256(Vec<u8>),
}

pub struct TokenKeys {
    signer: Signer,
    kid: String,
    verifiers: Vec<Verifier>,
}

/// The claims of a verified token.
#[derive(Debug, Clone)]
pub struct Claims {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl TokenKeys {
    pub fn load(signing_key: &Path, key_files: &[impl AsRef<Path>]) -> Result<TokenKeys> {
        let pem_text = std::fs::read(signing_key)
            .with_context(|| format!("open {}", signing_key.display()))?;
        let block = pem::parse_many(&pem_text)
            .context("--service-account-signing-key-file is not PEM")?
            .into_iter()
            .find(|b| b.tag().ends_with("PRIVATE KEY"))
            .ok_or_else(|| anyhow!("no private key in {}", signing_key.display()))?;
        let (signer, public) = signer_from_der(block.contents())
            .with_context(|| format!("unusable signing key {}", signing_key.display()))?;
        let kid = B64URL.encode(Sha256::digest(&public));
        let mut verifiers = Vec::new();
        for file in key_files {
            let file = file.as_ref();
            let text = std::fs::read(file).with_context(|| format!("open {}", file.display()))?;
            for block in
                pem::parse_many(&text).with_context(|| format!("{} is not PEM", file.display()))?
            {
                if block.tag() == "PUBLIC KEY" {
                    verifiers.push(verifier_from_spki(block.contents())?);
                } else if block.tag().ends_with("PRIVATE KEY") {
                    let (s, _) = signer_from_der(block.contents())?;
                    verifiers.push(verifier_of(&s));
                }
            }
        }
        if verifiers.is_empty() {
            bail!("no public keys in --service-account-key-file");
        }
        Ok(TokenKeys {
            signer,
            kid,
            verifiers,
        })
    }

    /// Issues a token for `system:serviceaccount:<namespace>:<name>`.
    pub fn issue(
        &self,
        issuer: &str,
        audiences: &[String],
        namespace: &str,
        name: &str,
        uid: &str,
        seconds: i64,
    ) -> Result<String> {
        let now = crate::common::time::unix_now();
        let header = json!({"alg": self.alg(), "kid": self.kid});
        let claims = json!({
            "aud": audiences,
            "exp": now + seconds,
            "iat": now,
            "nbf": now,
            "iss": issuer,
            "jti": uuid_like(),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
        });
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match &self.signer {
            Signer::Es256(k) | Signer::Es384(k) => k
                .sign(&rng, input.as_bytes())
                .map_err(|_| anyhow!("signing failed"))?
                .as_ref()
                .to_vec(),
            Signer::Rs256(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| anyhow!("signing failed"))?;
                sig
            }
        };
        Ok(format!("{input}.{}", B64URL.encode(signature)))
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Es256(_) => "ES256",
            Signer::Es384(_) => "ES384",
            Signer::Rs256(_) => "RS256",
        }
    }

    /// Verifies signature, issuer, audience and time; returns the service account it names.
    pub fn verify(&self, token: &str, issuers: &[String], audiences: &[String]) -> Result<Claims> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("not a JWT");
        };
        let header: Value = serde_json::from_slice(&B64URL.decode(h)?)?;
        let claims: Value = serde_json::from_slice(&B64URL.decode(c)?)?;
        let signature = B64URL.decode(s)?;
        let input = format!("{h}.{c}");
        let alg = header["alg"].as_str().unwrap_or_default();
        let verified = self.verifiers.iter().any(|v| match (v, alg) {
            (Verifier::Es256(k), "ES256") => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k)
                    .verify(input.as_bytes(), &signature)
                    .is_ok()
            }
            (Verifier::Es384(k), "ES384") => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, k)
                    .verify(input.as_bytes(), &signature)
                    .is_ok()
            }
            (Verifier::Rs256(k), "RS256") => {
                UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, k)
                    .verify(input.as_bytes(), &signature)
                    .is_ok()
            }
            _ => false,
        });
        if !verified {
            bail!("invalid signature");
        }
        let iss = claims["iss"].as_str().unwrap_or_default();
        if !issuers.iter().any(|i| i == iss) {
            bail!("token issuer {iss:?} is not accepted");
        }
        let token_audiences: Vec<&str> = match &claims["aud"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !token_audiences
            .iter()
            .any(|a| audiences.iter().any(|x| x == a))
        {
            bail!(
                "token audiences {token_audiences:?} are invalid for the target audiences {audiences:?}"
            );
        }
        let now = crate::common::time::unix_now();
        if claims["exp"].as_i64().is_some_and(|exp| exp < now) {
            bail!("token has expired");
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + 60) {
            bail!("token is not valid yet");
        }
        let sa = &claims["kubernetes.io"];
        Ok(Claims {
            namespace: sa["namespace"].as_str().unwrap_or_default().to_string(),
            name: sa["serviceaccount"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            uid: sa["serviceaccount"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// The JSON Web Key Set of the verification keys (served at /openid/v1/jwks).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .verifiers
            .iter()
            .map(|v| match v {
                Verifier::Es256(k) | Verifier::Es384(k) => {
                    let (crv, len) = if matches!(v, Verifier::Es256(_)) { ("P-256", 32) } else { ("P-384", 48) };
                    let x = k.get(1..1 + len).unwrap_or_default();
                    let y = k.get(1 + len..).unwrap_or_default();
                    json!({"use": "sig", "kty": "EC", "crv": crv, "alg": if len == 32 {"ES256"} else {"ES384"},
                           "x": B64URL.encode(x), "y": B64URL.encode(y), "kid": B64URL.encode(Sha256::digest(k))})
                }
                Verifier::Rs256(k) => json!({"use": "sig", "kty": "RSA", "alg": "RS256", "kid": B64URL.encode(Sha256::digest(k))}),
            })
            .collect();
        json!({"keys": keys})
    }
}

fn signer_from_der(der: &[u8]) -> Result<(Signer, Vec<u8>)> {
    if let Ok(k) =
        EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
    {
        let public = k.public_key().as_ref().to_vec();
        return Ok((Signer::Es256(k), public));
    }
    if let Ok(k) =
        EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der)
    {
        let public = k.public_key().as_ref().to_vec();
        return Ok((Signer::Es384(k), public));
    }
    let rsa = RsaKeyPair::from_pkcs8(der)
        .or_else(|_| RsaKeyPair::from_der(der))
        .map_err(|e| anyhow!("not an ECDSA P-256/P-384 or RSA private key: {e}"))?;
    let public = rsa.public_key().as_ref().to_vec();
    Ok((Signer::Rs256(rsa), public))
}

fn verifier_of(signer: &Signer) -> Verifier {
    match signer {
        Signer::Es256(k) => Verifier::Es256(k.public_key().as_ref().to_vec()),
        Signer::Es384(k) => Verifier::Es384(k.public_key().as_ref().to_vec()),
        Signer::Rs256(k) => Verifier::Rs256(k.public_key().as_ref().to_vec()),
    }
}

fn verifier_from_spki(der: &[u8]) -> Result<Verifier> {
    let (_, spki) =
        SubjectPublicKeyInfo::from_der(der).map_err(|e| anyhow!("bad public key: {e}"))?;
    let bits = spki.subject_public_key.data.to_vec();
    match spki.parsed().map_err(|e| anyhow!("bad public key: {e}"))? {
        PublicKey::RSA(_) => Ok(Verifier::Rs256(bits)),
        PublicKey::EC(point) => match point.key_size() {
            256 => Ok(Verifier::Es256(bits)),
            384 => Ok(Verifier::Es384(bits)),
            other => bail!("unsupported EC key size {other}"),
        },
        _ => bail!("unsupported public key type"),
    }
}

fn uuid_like() -> String {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let key_path = dir.join("sa.key");
        let pub_path = dir.join("sa.pub");
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::write(&pub_path, key.public_key_pem()).unwrap();
        (key_path, pub_path)
    }

    #[test]
    fn issued_tokens_verify_and_foreign_keys_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = write_pair(dir.path());
        let keys = TokenKeys::load(&key, std::slice::from_ref(&public)).unwrap();
        let iss = vec!["https://kubernetes.default.svc.cluster.local".to_string()];
        let token = keys
            .issue(&iss[0], &iss, "kube-system", "bootstrap-signer", "u1", 600)
            .unwrap();
        let claims = keys.verify(&token, &iss, &iss).unwrap();
        assert_eq!(
            (
                claims.namespace.as_str(),
                claims.name.as_str(),
                claims.uid.as_str()
            ),
            ("kube-system", "bootstrap-signer", "u1")
        );
        assert!(
            keys.verify(&token, &["https://other".to_string()], &iss)
                .is_err()
        );

        let other = tempfile::tempdir().unwrap();
        let (_, other_pub) = write_pair(other.path());
        let mismatched = TokenKeys::load(&key, &[other_pub]).unwrap();
        assert!(
            mismatched.verify(&token, &iss, &iss).is_err(),
            "sa.pub that does not match sa.key must not verify"
        );
    }
}
