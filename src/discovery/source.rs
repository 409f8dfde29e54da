//! Where the served signatures come from in cluster mode: the `kube-public/cluster-info` ConfigMap's
//! kubeconfig and `jws-kubeconfig-<id>` keys, kept only for tokens whose `bootstrap-token-<id>` Secret
//! exists, allows signing and has not expired (what the controller manager's bootstrapsigner would
//! keep, so a stale signature of a deleted or expired token is not handed out).

use std::collections::BTreeSet;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::published::Published;
use crate::cluster::Gateway;

const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
const CLUSTER_INFO: &str = "cluster-info";
const KUBECONFIG_KEY: &str = "kubeconfig";
const JWS_PREFIX: &str = "jws-kubeconfig-";
const TOKEN_NAMESPACE: &str = "kube-system";
const TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// What the cluster publishes now.
pub fn from_cluster(gateway: &Gateway, now: OffsetDateTime) -> anyhow::Result<Published> {
    let config_map: ConfigMap = gateway
        .get(Some(CLUSTER_INFO_NAMESPACE), CLUSTER_INFO)?
        .with_context(|| {
            format!("the ConfigMap {CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO} does not exist")
        })?;
    let data = config_map.data.unwrap_or_default();
    let kubeconfig = data.get(KUBECONFIG_KEY).with_context(|| {
        format!(
            "the ConfigMap {CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO} has no {KUBECONFIG_KEY:?} key"
        )
    })?;
    let secrets: Vec<Secret> = gateway.list(Some(TOKEN_NAMESPACE), None)?;
    let signing = signing_token_ids(&secrets, now);
    let signatures = data.iter().filter_map(|(key, jws)| {
        let id = key.strip_prefix(JWS_PREFIX)?;
        signing.contains(id).then_some((id, jws.as_str()))
    });
    Ok(Published::new(kubeconfig, signatures))
}

/// The ids of the bootstrap tokens that may sign cluster-info at `now`.
pub fn signing_token_ids(secrets: &[Secret], now: OffsetDateTime) -> BTreeSet<String> {
    secrets
        .iter()
        .filter(|s| s.type_.as_deref() == Some(TOKEN_SECRET_TYPE))
        .filter_map(|s| {
            let data = s.data.as_ref()?;
            let text = |key: &str| {
                data.get(key)
                    .and_then(|v| std::str::from_utf8(&v.0).ok())
                    .map(str::to_string)
            };
            let id = text("token-id")?;
            if text("usage-bootstrap-signing").as_deref() != Some("true") {
                return None;
            }
            if let Some(expiration) = text("expiration") {
                let at = OffsetDateTime::parse(&expiration, &Rfc3339).ok()?;
                if at <= now {
                    return None;
                }
            }
            Some(id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(id: &str, pairs: &[(&str, &str)]) -> Secret {
        let mut data = std::collections::BTreeMap::new();
        data.insert("token-id".to_string(), ByteString(id.as_bytes().to_vec()));
        for (k, v) in pairs {
            data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
        }
        Secret {
            type_: Some(TOKEN_SECRET_TYPE.into()),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn only_unexpired_signing_tokens_sign() {
        let now = OffsetDateTime::parse("2026-01-01T00:00:00Z", &Rfc3339).unwrap();
        let mut other = secret("zzzzzz", &[("usage-bootstrap-signing", "true")]);
        other.type_ = Some("Opaque".into());
        let secrets = [
            secret("aaaaaa", &[("usage-bootstrap-signing", "true")]),
            secret(
                "bbbbbb",
                &[
                    ("usage-bootstrap-signing", "true"),
                    ("expiration", "2026-01-02T00:00:00Z"),
                ],
            ),
            secret(
                "cccccc",
                &[
                    ("usage-bootstrap-signing", "true"),
                    ("expiration", "2025-12-31T23:59:59Z"),
                ],
            ),
            secret("dddddd", &[("usage-bootstrap-authentication", "true")]),
            secret(
                "eeeeee",
                &[("usage-bootstrap-signing", "true"), ("expiration", "soon")],
            ),
            other,
        ];
        let ids: Vec<String> = signing_token_ids(&secrets, now).into_iter().collect();
        assert_eq!(ids, ["aaaaaa", "bbbbbb"]);
    }
}
