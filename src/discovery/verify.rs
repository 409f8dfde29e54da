//! A joining node's checks of what discovery fetched: the detached JWS of the cluster-info kubeconfig
//! (HS256, keyed with the token secret), the cluster CA against the `sha256:<spki>` pins, and the
//! kubeconfig's shape (one or more clusters, every one with the same CA). Each failure says which check
//! failed and what to do.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::kubeconfig::KubeConfig;
use crate::token::Token;

/// Why discovery did not produce a cluster to trust. Each names the source it read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error(
        "{from}: there is no signature of cluster-info for token id {id:?}: the token is unknown or has expired \
         (from a joining node the two look the same); on a control-plane node run \
         'kubestrap token create --print-join-command' and join with the command it prints"
    )]
    NoSignature { id: String, from: String },
    #[error(
        "{from}: the signature of cluster-info for token id {id:?} does not verify ({why}): the token secret is \
         wrong, or cluster-info was changed after it was signed; can't trust this API server"
    )]
    BadSignature {
        id: String,
        from: String,
        why: String,
    },
    #[error(
        "{from}: the cluster CA's public key pin {found} matches none of the given \
         --discovery-token-ca-cert-hash values [{expected}]: this is not the cluster the join command was made \
         for, or the pin is wrong (a control plane prints the right one with 'kubestrap token create --print-join-command')"
    )]
    PinMismatch {
        from: String,
        found: String,
        expected: String,
    },
    #[error("{from}: cluster-info is not usable: {reason}")]
    Malformed { from: String, reason: String },
    #[error("could not reach {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("{address} refused the request: {reason}")]
    Refused { address: String, reason: String },
}

impl DiscoveryError {
    /// Worth another try within the discovery timeout: nothing answered, or the signature may not have
    /// been written yet (the controller manager signs a new token's cluster-info a moment later).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DiscoveryError::Unreachable { .. } | DiscoveryError::NoSignature { .. }
        )
    }
}

/// The cluster a joining node trusts after discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The API server URLs cluster-info names, in its order (usually one).
    pub servers: Vec<String>,
    /// The cluster CA bundle (PEM).
    pub ca_pem: Vec<u8>,
    /// The kubeconfig text as fetched (what the signature covers).
    pub kubeconfig: String,
}

/// How the CA is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaTrust {
    /// One of these `sha256:<hex>` pins must match a certificate of the CA bundle.
    Pinned(Vec<String>),
    /// `--discovery-token-unsafe-skip-ca-verification`: whatever CA the signed cluster-info carries.
    UnsafeSkip,
}

/// Checks the detached JWS `jws` of `kubeconfig` for `token` (constant-time).
pub fn verify_signature(
    kubeconfig: &str,
    jws: &str,
    token: &Token,
    from: &str,
) -> Result<(), DiscoveryError> {
    let bad = |why: &str| DiscoveryError::BadSignature {
        id: token.id.clone(),
        from: from.to_string(),
        why: why.to_string(),
    };
    let (header, _signature) = jws
        .split_once("..")
        .filter(|(h, s)| !h.is_empty() && !s.is_empty() && !s.contains('.'))
        .ok_or_else(|| bad("not a detached JWS <header>..<signature>"))?;
    let header_json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| bad("its header is not base64url"))?;
    let header_value: serde_json::Value =
        serde_json::from_slice(&header_json).map_err(|_| bad("its header is not JSON"))?;
    if header_value["alg"] != "HS256" {
        return Err(bad("its algorithm is not HS256"));
    }
    if header_value["kid"] != token.id.as_str() {
        return Err(bad("it was made for another token id"));
    }
    // As kubeadm: the whole detached JWS recomputed with the secret must be the one stored.
    let expected = token.sign(kubeconfig);
    if bool::from(expected.as_bytes().ct_eq(jws.as_bytes())) {
        Ok(())
    } else {
        Err(bad("the HMAC does not match"))
    }
}

/// Parses the cluster-info kubeconfig: its clusters' servers and the one CA they share.
pub fn parse(kubeconfig: &str, from: &str) -> Result<ClusterInfo, DiscoveryError> {
    let malformed = |reason: String| DiscoveryError::Malformed {
        from: from.to_string(),
        reason,
    };
    let config = KubeConfig::parse(kubeconfig).map_err(|e| malformed(e.to_string()))?;
    if config.clusters.is_empty() {
        return Err(malformed("the kubeconfig names no cluster".into()));
    }
    let mut servers = Vec::new();
    let mut ca: Option<Vec<u8>> = None;
    for named in &config.clusters {
        let cluster = &named.cluster;
        if !cluster.server.starts_with("https://") {
            return Err(malformed(format!(
                "the cluster {:?} has server {:?}, not an https:// URL",
                named.name, cluster.server
            )));
        }
        let data = cluster
            .certificate_authority_data
            .as_ref()
            .map(|d| d.0.clone())
            .ok_or_else(|| {
                malformed(format!(
                    "the cluster {:?} carries no certificate-authority-data",
                    named.name
                ))
            })?;
        match &ca {
            Some(first) if *first != data => {
                return Err(malformed(format!(
                    "the clusters carry different CAs ({:?} differs from the first)",
                    named.name
                )));
            }
            Some(_) => {}
            None => ca = Some(data),
        }
        if !servers.contains(&cluster.server) {
            servers.push(cluster.server.clone());
        }
    }
    Ok(ClusterInfo {
        servers,
        ca_pem: ca.unwrap_or_default(),
        kubeconfig: kubeconfig.to_string(),
    })
}

/// Checks the CA bundle against the pins: one certificate of it must match one pin.
pub fn verify_ca(info: &ClusterInfo, trust: &CaTrust, from: &str) -> Result<(), DiscoveryError> {
    let found = crate::pki::pin::pins(&info.ca_pem).map_err(|e| DiscoveryError::Malformed {
        from: from.to_string(),
        reason: format!("its CA is not a PEM certificate bundle: {e}"),
    })?;
    if found.is_empty() {
        return Err(DiscoveryError::Malformed {
            from: from.to_string(),
            reason: "its CA bundle holds no certificate".into(),
        });
    }
    let CaTrust::Pinned(expected) = trust else {
        return Ok(());
    };
    let matches = found
        .iter()
        .any(|pin| expected.iter().any(|e| e.eq_ignore_ascii_case(pin)));
    if matches {
        Ok(())
    } else {
        Err(DiscoveryError::PinMismatch {
            from: from.to_string(),
            found: found.join(", "),
            expected: expected.join(", "),
        })
    }
}

/// The whole check of a signed cluster-info: signature (when `jws` is None the token has none), shape,
/// CA pin.
pub fn verify(
    kubeconfig: &str,
    jws: Option<&str>,
    token: &Token,
    trust: &CaTrust,
    from: &str,
) -> Result<ClusterInfo, DiscoveryError> {
    let jws = jws.ok_or_else(|| DiscoveryError::NoSignature {
        id: token.id.clone(),
        from: from.to_string(),
    })?;
    verify_signature(kubeconfig, jws, token, from)?;
    let info = parse(kubeconfig, from)?;
    verify_ca(&info, trust, from)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeconfig::cluster_info;

    const FIXTURE_CA: &[u8] = include_bytes!("../../tests/golden/kubeadm-fixture-ca.crt");
    const FIXTURE_PIN: &str =
        "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";
    const GOLDEN_JWS: &str =
        "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..wUZ0q9o0VK1RWFptmSBOEem2bXHWrHyxrposHg0mb1w";

    fn token() -> Token {
        Token::parse("abcdef.abcdef0123456789").unwrap()
    }

    fn fixture() -> String {
        cluster_info::kubeconfig("https://192.168.0.101:6443", FIXTURE_CA).unwrap()
    }

    fn pinned() -> CaTrust {
        CaTrust::Pinned(vec![FIXTURE_PIN.to_string()])
    }

    #[test]
    fn kubeadms_vector_verifies_and_pins() {
        let info = verify(&fixture(), Some(GOLDEN_JWS), &token(), &pinned(), "test").unwrap();
        assert_eq!(info.servers, ["https://192.168.0.101:6443"]);
        assert_eq!(info.ca_pem, FIXTURE_CA);
        let upper = CaTrust::Pinned(vec![FIXTURE_PIN.to_uppercase().replace("SHA256", "sha256")]);
        verify(&fixture(), Some(GOLDEN_JWS), &token(), &upper, "test").unwrap();
    }

    #[test]
    fn a_tampered_cluster_info_fails_the_signature() {
        let tampered = fixture().replace("192.168.0.101", "192.168.0.66");
        let err = verify(
            &tampered,
            Some(GOLDEN_JWS),
            &token(),
            &pinned(),
            "10.0.0.1:6443",
        )
        .unwrap_err();
        assert!(matches!(err, DiscoveryError::BadSignature { .. }), "{err}");
        assert!(err.to_string().contains("10.0.0.1:6443"), "{err}");
        assert!(!err.is_transient());
    }

    #[test]
    fn a_wrong_secret_a_foreign_kid_and_garbage_fail_the_signature() {
        let wrong = Token::parse("abcdef.abcdef0123456780").unwrap();
        let err = verify(&fixture(), Some(GOLDEN_JWS), &wrong, &pinned(), "t").unwrap_err();
        assert!(err.to_string().contains("token secret is wrong"), "{err}");
        let other = Token::parse("zzzzzz.abcdef0123456789").unwrap();
        let err = verify(&fixture(), Some(GOLDEN_JWS), &other, &pinned(), "t").unwrap_err();
        assert!(err.to_string().contains("another token id"), "{err}");
        for junk in ["", "..", "abc", "a.b.c", "eyJ9..x.y"] {
            let err = verify(&fixture(), Some(junk), &token(), &pinned(), "t").unwrap_err();
            assert!(
                matches!(err, DiscoveryError::BadSignature { .. }),
                "{junk}: {err}"
            );
        }
        // A header with another algorithm, signed correctly over it, is still refused.
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"abcdef"}"#);
        let err = verify(
            &fixture(),
            Some(&format!("{none}..x")),
            &token(),
            &pinned(),
            "t",
        )
        .unwrap_err();
        assert!(err.to_string().contains("HS256"), "{err}");
    }

    #[test]
    fn no_signature_names_the_remedy_and_is_retried() {
        let err = verify(&fixture(), None, &token(), &pinned(), "t").unwrap_err();
        assert!(err.is_transient());
        assert!(
            err.to_string()
                .contains("kubestrap token create --print-join-command"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_pin_is_refused_with_both_pins_and_skipping_it_trusts_the_ca() {
        let other = CaTrust::Pinned(vec![format!("sha256:{}", "0".repeat(64))]);
        let err = verify(&fixture(), Some(GOLDEN_JWS), &token(), &other, "t").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(FIXTURE_PIN) && text.contains(&"0".repeat(64)),
            "{text}"
        );
        verify(
            &fixture(),
            Some(GOLDEN_JWS),
            &token(),
            &CaTrust::UnsafeSkip,
            "t",
        )
        .unwrap();
    }

    #[test]
    fn several_endpoints_are_tolerated_and_a_second_pin_may_match() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(FIXTURE_CA);
        let text = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n    server: https://10.0.0.1:6443\n  name: \"\"\n\
             - cluster:\n    certificate-authority-data: {b64}\n    server: https://10.0.0.2:6443\n  name: second\n\
             contexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
        );
        let jws = token().sign(&text);
        let two = CaTrust::Pinned(vec![
            format!("sha256:{}", "1".repeat(64)),
            FIXTURE_PIN.into(),
        ]);
        let info = verify(&text, Some(&jws), &token(), &two, "t").unwrap();
        assert_eq!(
            info.servers,
            ["https://10.0.0.1:6443", "https://10.0.0.2:6443"]
        );
        // Two clusters with different CAs are refused.
        let other_ca = FIXTURE_CA.to_vec();
        let mixed = text.replacen(
            &b64,
            &base64::engine::general_purpose::STANDARD.encode([&other_ca[..], b"\n"].concat()),
            1,
        );
        let err = verify(&mixed, Some(&token().sign(&mixed)), &token(), &two, "t").unwrap_err();
        assert!(err.to_string().contains("different CAs"), "{err}");
    }
}
