//! Bootstrap tokens: generation from a cryptographic random source, in kubeadm's alphabet; the
//! `bootstrap-token-<id>` Secret that admits one; and the detached JWS (`jws-kubeconfig-<id>`) with
//! which a token signs the cluster-info kubeconfig.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The namespace of bootstrap token Secrets.
pub const SECRET_NAMESPACE: &str = "kube-system";
/// The Secret type the API server's bootstrap authenticator reads.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The prefix of the cluster-info keys that hold a token's signature.
pub const JWS_KEY_PREFIX: &str = "jws-kubeconfig-";

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A new `<id>.<secret>` token: 6 + 16 characters drawn uniformly from [a-z0-9].
pub fn generate() -> anyhow::Result<String> {
    let id = random_string(6)?;
    let secret = random_string(16)?;
    Ok(format!("{id}.{secret}"))
}

fn random_string(len: usize) -> anyhow::Result<String> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        aws_lc_rs::rand::fill(&mut buf)
            .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
        // 252 = 7 * 36: rejecting bytes ≥ 252 keeps the choice uniform.
        for b in buf.iter().filter(|b| **b < 252) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(*b % 36)] as char);
        }
    }
    Ok(out)
}

/// A parsed `<id>.<secret>` token. Its `Debug` and `Display` show only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a bootstrap token has the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
pub struct NotAToken;

impl Token {
    pub fn parse(text: &str) -> Result<Token, NotAToken> {
        let (id, secret) = text.split_once('.').ok_or(NotAToken)?;
        let ok = |part: &str, len: usize| {
            part.len() == len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        if !ok(id, 6) || !ok(secret, 16) {
            return Err(NotAToken);
        }
        Ok(Token {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    pub fn generate() -> anyhow::Result<Token> {
        Ok(Token {
            id: random_string(6)?,
            secret: random_string(16)?,
        })
    }

    /// `id.secret`: the token as a join command takes it.
    pub fn reveal(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// `bootstrap-token-<id>`.
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }

    /// The detached JWS of `payload` signed with this token (see [`detached_jws`]).
    pub fn sign(&self, payload: &str) -> String {
        detached_jws(&self.id, &self.secret, payload)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}.<secret>)", self.id)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.<secret>", self.id)
    }
}

/// What a bootstrap token Secret says about its token besides the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenGrant {
    pub description: Option<String>,
    /// RFC 3339 in UTC; None: the token never expires.
    pub expiration: Option<String>,
    /// `signing`, `authentication`.
    pub usages: Vec<String>,
    /// `auth-extra-groups`.
    pub groups: Vec<String>,
}

/// `expiration` of a token that lives `ttl` from `now`: RFC 3339 in UTC with whole seconds.
pub fn expiration_after(now: time::OffsetDateTime, ttl: std::time::Duration) -> Option<String> {
    let at = now.checked_add(time::Duration::try_from(ttl).ok()?)?;
    let at = at.replace_nanosecond(0).ok()?;
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The `kube-system/bootstrap-token-<id>` Secret, laid out as kubeadm writes it.
pub fn secret(token: &Token, grant: &TokenGrant) -> Secret {
    let mut data = BTreeMap::new();
    let mut put = |key: String, value: &str| {
        data.insert(key, ByteString(value.as_bytes().to_vec()));
    };
    put("token-id".into(), &token.id);
    put("token-secret".into(), &token.secret);
    if let Some(d) = &grant.description {
        put("description".into(), d);
    }
    if let Some(e) = &grant.expiration {
        put("expiration".into(), e);
    }
    for usage in &grant.usages {
        put(format!("usage-bootstrap-{usage}"), "true");
    }
    if !grant.groups.is_empty() {
        put("auth-extra-groups".into(), &grant.groups.join(","));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(token.secret_name()),
            namespace: Some(SECRET_NAMESPACE.to_string()),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(data),
        ..Default::default()
    }
}

/// A detached JWS as kube-controller-manager's bootstrapsigner writes it: the protected header
/// `{"alg":"HS256","kid":"<id>"}`, an HMAC-SHA256 keyed with the token secret over
/// `b64url(header).b64url(payload)`, stored as `b64url(header)..b64url(signature)` (the payload left out).
pub fn detached_jws(token_id: &str, token_secret: &str, payload: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{token_id}"}}"#));
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, token_secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{header}..{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::is_bootstrap_token;

    #[test]
    fn tokens_parse_and_keep_their_secret_out_of_debug() {
        let t = Token::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(t.id, "abcdef");
        assert_eq!(t.secret_name(), "bootstrap-token-abcdef");
        assert_eq!(t.reveal(), "abcdef.0123456789abcdef");
        assert!(!format!("{t:?} {t}").contains("0123456789abcdef"));
        for bad in [
            "abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abc.def.ghi",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
        assert!(is_bootstrap_token(&Token::generate().unwrap().reveal()));
    }

    /// The protected header of id `abcdef` is kubeadm's (the full signature is checked against
    /// kubeadm's golden vector in `kubeconfig::cluster_info`).
    #[test]
    fn the_header_is_kubeadms() {
        let jws = detached_jws("abcdef", "abcdef0123456789", "x");
        assert!(
            jws.starts_with("eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9.."),
            "{jws}"
        );
        assert_eq!(jws.matches('.').count(), 2);
    }

    #[test]
    fn the_secret_is_laid_out_as_kubeadms() {
        let t = Token::parse("abcdef.0123456789abcdef").unwrap();
        let grant = TokenGrant {
            description: None,
            expiration: Some("2026-01-02T03:04:05Z".into()),
            usages: vec!["signing".into(), "authentication".into()],
            groups: vec!["system:bootstrappers:kubeadm:default-node-token".into()],
        };
        let s = secret(&t, &grant);
        assert_eq!(s.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
        let data: BTreeMap<String, String> = s
            .data
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect();
        let expected: BTreeMap<String, String> = [
            (
                "auth-extra-groups",
                "system:bootstrappers:kubeadm:default-node-token",
            ),
            ("expiration", "2026-01-02T03:04:05Z"),
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
            ("usage-bootstrap-signing", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(data, expected);
    }

    #[test]
    fn expirations_are_whole_utc_seconds() {
        let now = time::macros::datetime!(2026-01-01 23:30:00.75 +02:00);
        assert_eq!(
            expiration_after(now, std::time::Duration::from_secs(24 * 3600)).unwrap(),
            "2026-01-02T21:30:00Z"
        );
    }

    #[test]
    fn generated_tokens_are_valid_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(is_bootstrap_token(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn every_character_appears() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(generate().unwrap().chars().filter(|c| *c != '.'));
        }
        assert_eq!(seen.len(), 36);
    }
}
