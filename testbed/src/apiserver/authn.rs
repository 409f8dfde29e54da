//! Authentication as the real API server does it: front-proxy request headers, client certificates
//! (CN → user, O → groups), bootstrap-token and service-account bearer tokens, else anonymous.

use std::collections::BTreeMap;

use hyper::HeaderMap;
use subtle_eq::constant_time_eq;

use super::Server;
use super::status::{ApiError, ApiResult};
use crate::common::serve::Peer;
use crate::common::{time, tls};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        }
    }

    fn authenticated(mut self) -> UserInfo {
        if !self.groups.iter().any(|g| g == "system:authenticated") {
            self.groups.push("system:authenticated".into());
        }
        self
    }

    /// The node name of a node identity (`system:node:<name>` in group `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        if self.groups.iter().any(|g| g == "system:nodes") {
            self.name.strip_prefix("system:node:")
        } else {
            None
        }
    }
}

pub async fn authenticate(
    server: &Server,
    headers: &HeaderMap,
    peer: &Peer,
) -> ApiResult<UserInfo> {
    if let Some(leaf) = peer.certs.first() {
        if let Some(rh) = &server.opts.request_header
            && tls::signed_by_any(leaf, &server.front_proxy_cas)
        {
            let (cn, _) = tls::subject_of(leaf).map_err(|_| ApiError::unauthorized())?;
            if !rh.allowed_names.is_empty() && !rh.allowed_names.contains(&cn) {
                return Err(ApiError::unauthorized());
            }
            if let Some(user) = header_user(headers, rh) {
                return Ok(user.authenticated());
            }
        }
        if tls::signed_by_any(leaf, &server.client_cas) {
            let (name, groups) = tls::subject_of(leaf).map_err(|_| ApiError::unauthorized())?;
            return Ok(UserInfo {
                name,
                groups,
                ..Default::default()
            }
            .authenticated());
        }
        return Err(ApiError::unauthorized());
    }
    if let Some(token) = bearer(headers) {
        if server.opts.bootstrap_token_auth && is_bootstrap_token(&token) {
            return bootstrap_token_user(server, &token)
                .await
                .map(UserInfo::authenticated)
                .ok_or_else(ApiError::unauthorized);
        }
        if token.split('.').count() == 3 {
            return service_account_user(server, &token)
                .await
                .map(UserInfo::authenticated)
                .ok_or_else(ApiError::unauthorized);
        }
        return Err(ApiError::unauthorized());
    }
    if server.opts.anonymous_auth {
        Ok(UserInfo::anonymous())
    } else {
        Err(ApiError::unauthorized())
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn header_user(headers: &HeaderMap, rh: &super::options::RequestHeader) -> Option<UserInfo> {
    let first = |names: &[String]| {
        names
            .iter()
            .find_map(|n| {
                headers
                    .get(n.as_str())
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
            })
            .map(str::to_string)
    };
    let name = first(&rh.username_headers)?;
    let groups = rh
        .group_headers
        .iter()
        .flat_map(|h| headers.get_all(h.as_str()).iter())
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in headers {
        for prefix in &rh.extra_prefixes {
            if let Some(rest) = key.as_str().strip_prefix(&prefix.to_ascii_lowercase())
                && let Ok(v) = value.to_str()
            {
                extra
                    .entry(rest.to_string())
                    .or_default()
                    .push(v.to_string());
            }
        }
    }
    Some(UserInfo {
        name,
        uid: String::new(),
        groups,
        extra,
    })
}

/// `\A[a-z0-9]{6}\.[a-z0-9]{16}\z`
pub fn is_bootstrap_token(token: &str) -> bool {
    let Some((id, secret)) = token.split_once('.') else {
        return false;
    };
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    ok(id, 6) && ok(secret, 16)
}

/// Validates a bootstrap token against its `bootstrap-token-<id>` Secret as the real token
/// authenticator does: type, secret, expiry, usage and extra groups.
async fn bootstrap_token_user(server: &Server, token: &str) -> Option<UserInfo> {
    let (id, secret) = token.split_once('.')?;
    let secrets = server.registry_type("", "v1", "secrets")?;
    let stored = server
        .etcd
        .get(&secrets.key(
            &server.opts.etcd_prefix,
            Some("kube-system"),
            &format!("bootstrap-token-{id}"),
        ))
        .await
        .ok()??;
    let obj = stored.object;
    if obj["type"].as_str() != Some("bootstrap.kubernetes.io/token")
        || !obj["metadata"]["deletionTimestamp"].is_null()
    {
        return None;
    }
    let data = |key: &str| super::secret_data(&obj, key);
    if data("token-id").as_deref() != Some(id) {
        return None;
    }
    if !constant_time_eq(data("token-secret")?.as_bytes(), secret.as_bytes()) {
        return None;
    }
    if let Some(expiration) = data("expiration") {
        let expires = time::parse(&expiration)?;
        if expires.unix_timestamp() < time::unix_now() {
            return None;
        }
    }
    if data("usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    let mut groups = vec!["system:bootstrappers".to_string()];
    if let Some(extra) = data("auth-extra-groups") {
        for group in extra.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            if !valid_bootstrap_group(group) {
                return None;
            }
            groups.push(group.to_string());
        }
    }
    Some(UserInfo {
        name: format!("system:bootstrap:{id}"),
        uid: String::new(),
        groups,
        extra: BTreeMap::new(),
    })
}

/// `\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z`
pub fn valid_bootstrap_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

async fn service_account_user(server: &Server, token: &str) -> Option<UserInfo> {
    let claims = server
        .tokens
        .verify(
            token,
            &server.opts.service_account_issuers,
            &server.opts.api_audiences,
        )
        .ok()?;
    if server.opts.service_account_lookup {
        let sa_type = server.registry_type("", "v1", "serviceaccounts")?;
        let stored = server
            .etcd
            .get(&sa_type.key(
                &server.opts.etcd_prefix,
                Some(&claims.namespace),
                &claims.name,
            ))
            .await
            .ok()??;
        if stored.object["metadata"]["uid"].as_str() != Some(claims.uid.as_str()) {
            return None;
        }
    }
    Some(UserInfo {
        name: format!("system:serviceaccount:{}:{}", claims.namespace, claims.name),
        uid: claims.uid,
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", claims.namespace),
        ],
        extra: BTreeMap::new(),
    })
}

mod subtle_eq {
    /// Compares two byte strings in time independent of where they differ.
    pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_group_formats() {
        assert!(is_bootstrap_token("abcdef.0123456789abcdef"));
        assert!(!is_bootstrap_token("abcdef.0123456789ABCDEF"));
        assert!(!is_bootstrap_token("abcde.0123456789abcdef"));
        assert!(valid_bootstrap_group(
            "system:bootstrappers:kubeadm:default-node-token"
        ));
        assert!(!valid_bootstrap_group("system:masters"));
        assert!(!valid_bootstrap_group("system:bootstrappers:bad-"));
    }
}
