//! Bootstrap tokens in the cluster (`token create|list|delete`): the `bootstrap-token-<id>` Secrets
//! read back as kubeadm's `output.kubeadm.k8s.io/v1alpha3` BootstrapToken, and each token's
//! `jws-kubeconfig-<id>` signature in `kube-public/cluster-info`, published when the token is made and
//! removed with it (the controller manager's bootstrapsigner is not waited for).

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cluster::{Deletion, Gateway, Patch};
use crate::kubeconfig::cluster_info;
use crate::token::{self, Token, TokenGrant};

pub const API_VERSION: &str = "output.kubeadm.k8s.io/v1alpha3";

/// kubeadm's `output.kubeadm.k8s.io/v1alpha3` BootstrapToken (field order as kubeadm's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootstrapToken {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// `id.secret`, as kubeadm prints it.
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// RFC 3339 in UTC; absent for a token that never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub usages: Vec<String>,
    pub groups: Vec<String>,
}

impl BootstrapToken {
    pub fn new(token: &Token, grant: &TokenGrant) -> BootstrapToken {
        BootstrapToken {
            kind: "BootstrapToken",
            api_version: API_VERSION,
            token: token.reveal(),
            description: grant.description.clone(),
            expires: grant.expiration.clone(),
            usages: grant.usages.clone(),
            groups: grant.groups.clone(),
        }
    }

    pub fn id(&self) -> &str {
        self.token.split('.').next().unwrap_or_default()
    }

    /// True when `expires` is at or before `now` (a token whose expiry does not parse counts as expired,
    /// as the API server's authenticator refuses it).
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        match &self.expires {
            None => false,
            Some(text) => OffsetDateTime::parse(text, &Rfc3339).map_or(true, |at| at <= now),
        }
    }
}

/// The token a bootstrap token Secret holds, if it is one.
pub fn from_secret(secret: &Secret) -> Option<BootstrapToken> {
    if secret.type_.as_deref() != Some(token::SECRET_TYPE) {
        return None;
    }
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    let token = Token::parse(&format!("{}.{}", text("token-id")?, text("token-secret")?)).ok()?;
    let usages = crate::config::validate::TOKEN_USAGES
        .iter()
        .filter(|u| text(&format!("usage-bootstrap-{u}")).as_deref() == Some("true"))
        .map(|u| u.to_string())
        .collect();
    let groups = text("auth-extra-groups")
        .map(|g| {
            g.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(BootstrapToken::new(
        &token,
        &TokenGrant {
            description: text("description"),
            expiration: text("expiration"),
            usages,
            groups,
        },
    ))
}

/// Every bootstrap token of the cluster, by id.
pub fn list(gateway: &Gateway) -> anyhow::Result<Vec<BootstrapToken>> {
    let secrets: Vec<Secret> = gateway
        .list(Some(token::SECRET_NAMESPACE), None)
        .context("listing the bootstrap token Secrets")?;
    let mut tokens: Vec<BootstrapToken> = secrets.iter().filter_map(from_secret).collect();
    tokens.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(tokens)
}

/// Creates the token's Secret (an existing one is an error, as with kubeadm) and, when it may sign,
/// publishes its signature of cluster-info at once.
pub fn create(gateway: &Gateway, token: &Token, grant: &TokenGrant) -> anyhow::Result<()> {
    match gateway.create(&token::secret(token, grant)) {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => anyhow::bail!(
            "a token with id {:?} already exists (Secret {}/{}): delete it first or choose another token",
            token.id,
            token::SECRET_NAMESPACE,
            token.secret_name()
        ),
        Err(e) => return Err(e).context("creating the bootstrap token Secret"),
    }
    if grant.usages.iter().any(|u| u == "signing") {
        publish_signature(gateway, token)?;
    }
    Ok(())
}

/// The cluster-info kubeconfig the cluster publishes; None when there is no cluster-info (yet).
pub fn cluster_info_kubeconfig(gateway: &Gateway) -> anyhow::Result<Option<String>> {
    let map: Option<ConfigMap> = gateway.get(Some(cluster_info::NAMESPACE), cluster_info::NAME)?;
    Ok(map
        .and_then(|m| m.data)
        .and_then(|mut d| d.remove(cluster_info::KUBECONFIG_KEY)))
}

/// Adds `jws-kubeconfig-<id>` to cluster-info: the token's detached JWS of its kubeconfig.
pub fn publish_signature(gateway: &Gateway, token: &Token) -> anyhow::Result<()> {
    let kubeconfig = match cluster_info_kubeconfig(gateway)? {
        Some(k) => k,
        None if gateway.dry_run() => String::new(),
        None => anyhow::bail!(
            "the ConfigMap {}/{} has no kubeconfig, so the token can not sign it: run 'kubestrap init phase bootstrap-token' on the control-plane node",
            cluster_info::NAMESPACE,
            cluster_info::NAME
        ),
    };
    let mut data = Map::new();
    data.insert(
        signature_key(&token.id),
        Value::String(token.sign(&kubeconfig)),
    );
    patch_data(gateway, data)
}

/// Deletes the token's Secret and removes its signature; false when there was no such token.
pub fn delete(gateway: &Gateway, id: &str) -> anyhow::Result<bool> {
    let name = format!("bootstrap-token-{id}");
    let deletion = gateway
        .delete::<Secret>(Some(token::SECRET_NAMESPACE), &name)
        .with_context(|| format!("deleting the Secret {}/{name}", token::SECRET_NAMESPACE))?;
    let existed = !matches!(deletion, Deletion::Absent);
    let published = gateway
        .get::<ConfigMap>(Some(cluster_info::NAMESPACE), cluster_info::NAME)?
        .and_then(|m| m.data)
        .is_some_and(|d| d.contains_key(&signature_key(id)));
    if published || gateway.dry_run() {
        let mut data = Map::new();
        data.insert(signature_key(id), Value::Null);
        patch_data(gateway, data)?;
    }
    Ok(existed || published)
}

fn signature_key(id: &str) -> String {
    format!("{}{id}", token::JWS_KEY_PREFIX)
}

fn patch_data(gateway: &Gateway, data: Map<String, Value>) -> anyhow::Result<()> {
    gateway
        .patch::<ConfigMap>(
            Some(cluster_info::NAMESPACE),
            cluster_info::NAME,
            &Patch::Merge(serde_json::json!({ "data": data })),
        )
        .with_context(|| {
            format!(
                "updating the signatures in {}/{}",
                cluster_info::NAMESPACE,
                cluster_info::NAME
            )
        })?;
    Ok(())
}

/// kubeadm's short human duration (`duration.ShortHumanDuration`) of a token's remaining life:
/// `<forever>` without expiry, `<expired>` once expired (kubeadm prints `<invalid>`).
pub fn ttl_text(token: &BootstrapToken, now: OffsetDateTime) -> String {
    let Some(text) = &token.expires else {
        return "<forever>".into();
    };
    let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) else {
        return "<expired>".into();
    };
    let left = (at - now).whole_seconds();
    if left <= 0 {
        return "<expired>".into();
    }
    match left {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 2 * 365 * 86400 => format!("{}d", s / 86400),
        s => format!("{}y", s / (365 * 86400)),
    }
}

/// `token list`'s table: kubeadm's columns, tabwriter-aligned.
pub fn render_table(tokens: &[BootstrapToken], now: OffsetDateTime) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut tw = tabwriter::TabWriter::new(Vec::new())
        .minwidth(10)
        .padding(3);
    writeln!(tw, "TOKEN\tTTL\tEXPIRES\tUSAGES\tDESCRIPTION\tEXTRA GROUPS")?;
    for t in tokens {
        writeln!(
            tw,
            "{}\t{}\t{}\t{}\t{}\t{}",
            t.token,
            ttl_text(t, now),
            t.expires.as_deref().unwrap_or("<never>"),
            t.usages.join(","),
            t.description.as_deref().unwrap_or("<none>"),
            t.groups.join(",")
        )?;
    }
    tw.flush()?;
    Ok(String::from_utf8(tw.into_inner()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    #[test]
    fn a_secret_reads_back_as_the_token_it_was_made_from() {
        let t = Token::parse("abcdef.0123456789abcdef").unwrap();
        let grant = TokenGrant {
            description: Some("for node7".into()),
            expiration: Some("2026-01-02T00:00:00Z".into()),
            usages: vec!["signing".into(), "authentication".into()],
            groups: vec!["system:bootstrappers:kubeadm:default-node-token".into()],
        };
        let read = from_secret(&token::secret(&t, &grant)).unwrap();
        assert_eq!(read, BootstrapToken::new(&t, &grant));
        assert_eq!(read.id(), "abcdef");
        let json = serde_json::to_value(&read).unwrap();
        assert_eq!(json["apiVersion"], "output.kubeadm.k8s.io/v1alpha3");
        assert_eq!(json["kind"], "BootstrapToken");
        assert_eq!(json["token"], "abcdef.0123456789abcdef");
        assert!(!read.expired(at("2026-01-01T23:59:59Z")));
        assert!(read.expired(at("2026-01-02T00:00:00Z")));
    }

    #[test]
    fn ttl_is_humanised_like_kubeadms() {
        let mut t = BootstrapToken::new(
            &Token::parse("abcdef.0123456789abcdef").unwrap(),
            &TokenGrant::default(),
        );
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(ttl_text(&t, now), "<forever>");
        for (expires, ttl) in [
            ("2026-01-01T00:00:30Z", "30s"),
            ("2026-01-01T00:30:00Z", "30m"),
            ("2026-01-01T23:59:59Z", "23h"),
            ("2026-01-10T00:00:00Z", "9d"),
            ("2029-01-01T00:00:00Z", "3y"),
            ("2025-12-31T00:00:00Z", "<expired>"),
        ] {
            t.expires = Some(expires.into());
            assert_eq!(ttl_text(&t, now), ttl, "{expires}");
        }
        let table = render_table(&[t], now).unwrap();
        assert!(
            table.starts_with("TOKEN                     TTL"),
            "{table}"
        );
        assert!(table.contains("<none>"), "{table}");
    }
}
