//! Resolving `kubestrap join`'s configuration: JoinConfiguration + flags + defaults + host facts,
//! validated into typed settings (kubeadm-behaviour.md §7.2).

use std::net::IpAddr;

use super::defaults;
use super::flags::JoinFlags;
use super::init::{resolve_advertise_address, resolve_ignore_preflight_errors, resolve_node_name};
use super::load::{self, ConfigFile};
use super::types::*;
use super::validate as v;
use crate::error::{FieldError, InvalidInput};
use crate::host::facts::Facts;
use crate::host::paths::NodePath;

/// How the joining node finds and trusts the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoverySource {
    /// kubeadm's token discovery through the API server's cluster-info.
    Token {
        api_server_endpoint: String,
        ca_cert_hashes: Vec<String>,
        unsafe_skip_ca_verification: bool,
    },
    /// A kubeconfig file or URL with the cluster information.
    File { path: String },
    /// kubestrap's token-signed discovery endpoint (`--discovery-url https://HOST:9898`).
    Url {
        url: String,
        ca_cert_hashes: Vec<String>,
        unsafe_skip_ca_verification: bool,
    },
}

/// The fully resolved, validated configuration of a join run.
#[derive(Debug, Clone)]
pub struct JoinSettings {
    /// The defaulted document, as `config print join-defaults` shows it.
    pub join: JoinConfiguration,
    pub node_name: String,
    pub control_plane: bool,
    /// The new control-plane instance's advertise address (control planes only).
    pub advertise_address: Option<IpAddr>,
    pub advertise_address_detected: bool,
    pub bind_port: u16,
    pub discovery: DiscoverySource,
    /// Host and port of the cluster's API server when discovery names it.
    pub api_endpoint: Option<(String, u16)>,
    pub cri_socket: String,
    pub ca_cert_path: NodePath,
    pub patches_dir: Option<String>,
    pub skip_phases: Vec<String>,
    pub ignore_preflight_errors: Vec<String>,
    pub fix: bool,
    /// Things the user should know (defaults taken from the host, flags without effect).
    pub notices: Vec<String>,
}

/// Reads `--config`, applies the positional endpoint and the flags, fills defaults and validates.
pub fn resolve(
    endpoint: Option<&str>,
    flags: &JoinFlags,
    facts: &Facts,
) -> Result<JoinSettings, InvalidInput> {
    let file = match &flags.config {
        Some(path) => {
            let conflicts = flags.config_conflicts(endpoint);
            if !conflicts.is_empty() {
                return Err(InvalidInput::one(
                    "--config",
                    path.display(),
                    format!(
                        "can not mix '--config' with arguments [{}]; set these values in the configuration file",
                        conflicts.join(" ")
                    ),
                ));
            }
            let file = load::read_file(path)?;
            if file.join.is_none() {
                return Err(InvalidInput::one(
                    "--config",
                    path.display(),
                    "the file holds no JoinConfiguration",
                ));
            }
            file
        }
        None => ConfigFile::default(),
    };
    resolve_file(file, endpoint, flags, facts)
}

fn apply_flags(endpoint: Option<&str>, flags: &JoinFlags, join: &mut JoinConfiguration) {
    let token_discovery = endpoint.is_some()
        || flags.token.is_some()
        || flags.discovery_token.is_some()
        || !flags.discovery_token_ca_cert_hash.is_empty()
        || flags.discovery_token_unsafe_skip_ca_verification;
    if let Some(path) = &flags.discovery_file {
        join.discovery.file = Some(FileDiscovery {
            kube_config_path: path.clone(),
        });
    } else if token_discovery {
        let bt = join
            .discovery
            .bootstrap_token
            .get_or_insert_with(BootstrapTokenDiscovery::default);
        if let Some(ep) = endpoint {
            bt.api_server_endpoint = Some(ep.to_string());
        }
        if let Some(t) = flags.discovery_token.as_ref().or(flags.token.as_ref()) {
            bt.token = Some(t.clone());
        }
        if !flags.discovery_token_ca_cert_hash.is_empty() {
            bt.ca_cert_hashes = Some(flags.discovery_token_ca_cert_hash.clone());
        }
        if flags.discovery_token_unsafe_skip_ca_verification {
            bt.unsafe_skip_ca_verification = Some(true);
        }
    }
    if let Some(t) = flags.tls_bootstrap_token.as_ref().or(flags.token.as_ref()) {
        join.discovery.tls_bootstrap_token = Some(t.clone());
    }
    if flags.control_plane {
        join.control_plane
            .get_or_insert_with(JoinControlPlane::default);
    }
    if let Some(cp) = join.control_plane.as_mut() {
        if let Some(key) = &flags.certificate_key {
            cp.certificate_key = Some(key.clone());
        }
        if let Some(a) = &flags.apiserver_advertise_address {
            cp.local_api_endpoint.advertise_address = Some(a.clone());
        }
    }
    if let Some(n) = &flags.node_name {
        join.node_registration.name = Some(n.clone());
    }
    if let Some(c) = &flags.cri_socket {
        join.node_registration.cri_socket = Some(c.clone());
    }
    if let Some(dir) = &flags.patches {
        join.patches = Some(Patches {
            directory: Some(dir.clone()),
        });
    }
}

/// Like [`resolve`], with the file already decoded.
pub fn resolve_file(
    file: ConfigFile,
    endpoint: Option<&str>,
    flags: &JoinFlags,
    facts: &Facts,
) -> Result<JoinSettings, InvalidInput> {
    let mut notices = file.warnings.clone();
    let mut errors: Vec<FieldError> = Vec::new();
    let mut join = file.join.unwrap_or_default();
    apply_flags(endpoint, flags, &mut join);
    if let Some(p) = &flags.apiserver_bind_port
        && let Some(port) = v::port_text("--apiserver-bind-port", p, &mut errors)
        && let Some(cp) = join.control_plane.as_mut()
    {
        cp.local_api_endpoint.bind_port = Some(i64::from(port));
    }
    if join.control_plane.is_none() {
        for (given, flag) in [
            (flags.certificate_key.is_some(), "--certificate-key"),
            (
                flags.apiserver_advertise_address.is_some(),
                "--apiserver-advertise-address",
            ),
            (flags.apiserver_bind_port.is_some(), "--apiserver-bind-port"),
        ] {
            if given {
                errors.push(FieldError::new(
                    flag,
                    "",
                    "only a control-plane join uses this flag; add --control-plane",
                ));
            }
        }
    }
    defaults::join_configuration(&mut join);

    // Discovery through our endpoint replaces the API server endpoint of token discovery.
    let discovery_url = flags.discovery_url.clone();
    for e in crate::cli::config::validate_join(&join) {
        let covered_by_url = discovery_url.is_some()
            && (e.field == "discovery.bootstrapToken.apiServerEndpoint" || e.field == "discovery");
        if !covered_by_url {
            errors.push(e);
        }
    }
    if let Some(url) = &discovery_url {
        if join.discovery.file.is_some() {
            errors.push(FieldError::new(
                "--discovery-url",
                url,
                "choose one of --discovery-url and --discovery-file",
            ));
        }
        if url_host_port(url).is_none() {
            errors.push(FieldError::new(
                "--discovery-url",
                url,
                "expected https://HOST:PORT (kubestrap's discovery endpoint, port 9898 by default)",
            ));
        }
        let has_token = join
            .discovery
            .bootstrap_token
            .as_ref()
            .is_some_and(|b| b.token.is_some());
        if !has_token {
            errors.push(FieldError::new(
                "--discovery-url",
                url,
                "the discovery endpoint needs a bootstrap token (--token)",
            ));
        }
    }

    let node_name = resolve_node_name(
        &mut join.node_registration,
        facts,
        &mut notices,
        &mut errors,
    );
    let control_plane = join.control_plane.is_some();
    let (advertise_address, advertise_address_detected, bind_port) =
        match join.control_plane.as_mut() {
            Some(cp) => {
                let detected = cp.local_api_endpoint.advertise_address.is_none();
                let address = resolve_advertise_address(
                    &mut cp.local_api_endpoint,
                    "controlPlane.localAPIEndpoint.advertiseAddress",
                    facts,
                    &mut notices,
                    &mut errors,
                );
                let port = cp
                    .local_api_endpoint
                    .bind_port
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(6443);
                (address, detected, port)
            }
            None => (None, false, 6443),
        };

    let cri_socket = join
        .node_registration
        .cri_socket
        .clone()
        .unwrap_or_else(|| defaults::DEFAULT_CRI_SOCKET.to_string());
    let ignore_preflight_errors = resolve_ignore_preflight_errors(
        &join.node_registration,
        flags.ignore_preflight_errors.as_deref(),
        &mut errors,
    );
    let skip_phases = match &flags.skip_phases {
        Some(list) if !list.is_empty() => list.clone(),
        _ => join.skip_phases.clone().unwrap_or_default(),
    };
    let patches_dir = join.patches.as_ref().and_then(|p| p.directory.clone());
    InvalidInput::check(errors)?;

    let discovery = discovery_source(&join, discovery_url);
    let api_endpoint = match &discovery {
        DiscoverySource::Token {
            api_server_endpoint,
            ..
        } => split_endpoint(api_server_endpoint),
        DiscoverySource::Url { url, .. } => url_host_port(url).map(|(host, _)| (host, 6443)),
        DiscoverySource::File { .. } => None,
    };
    let ca_cert_path = NodePath::new(join.ca_cert_path.clone().unwrap_or_default());
    Ok(JoinSettings {
        node_name,
        control_plane,
        advertise_address,
        advertise_address_detected,
        bind_port,
        discovery,
        api_endpoint,
        cri_socket,
        ca_cert_path,
        patches_dir,
        skip_phases,
        ignore_preflight_errors,
        fix: flags.fix,
        notices,
        join,
    })
}

fn discovery_source(join: &JoinConfiguration, url: Option<String>) -> DiscoverySource {
    let token = join.discovery.bootstrap_token.clone().unwrap_or_default();
    let hashes = token.ca_cert_hashes.clone().unwrap_or_default();
    let skip = token.unsafe_skip_ca_verification == Some(true);
    match (url, &join.discovery.file) {
        (Some(url), _) => DiscoverySource::Url {
            url,
            ca_cert_hashes: hashes,
            unsafe_skip_ca_verification: skip,
        },
        (None, Some(file)) => DiscoverySource::File {
            path: file.kube_config_path.clone(),
        },
        (None, None) => DiscoverySource::Token {
            api_server_endpoint: token.api_server_endpoint.unwrap_or_default(),
            ca_cert_hashes: hashes,
            unsafe_skip_ca_verification: skip,
        },
    }
}

/// `host:port` (the port defaults to 6443).
fn split_endpoint(endpoint: &str) -> Option<(String, u16)> {
    let mut errors = Vec::new();
    v::host_port("endpoint", endpoint, &mut errors).map(|(host, port)| (host, port.unwrap_or(6443)))
}

/// Host and port of an `https://HOST:PORT` URL.
fn url_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("https://")?.trim_end_matches('/');
    let (host, port) = split_endpoint(rest)?;
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn facts() -> (tempfile::TempDir, Facts) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/kernel")).unwrap();
        std::fs::write(dir.path().join("sys/kernel/hostname"), "Worker-1\n").unwrap();
        let facts = Facts::with_roots(dir.path(), "/sys");
        (dir, facts)
    }

    fn flags() -> JoinFlags {
        JoinFlags {
            token: Some(TOKEN.into()),
            discovery_token_ca_cert_hash: vec![HASH.into()],
            ..Default::default()
        }
    }

    #[test]
    fn token_discovery_from_flags() {
        let (_dir, facts) = facts();
        let s = resolve(Some("10.0.0.1:6443"), &flags(), &facts).unwrap();
        assert_eq!(s.node_name, "worker-1");
        assert!(!s.control_plane);
        assert_eq!(s.api_endpoint, Some(("10.0.0.1".into(), 6443)));
        assert_eq!(s.join.discovery.tls_bootstrap_token.as_deref(), Some(TOKEN));
        assert!(
            matches!(s.discovery, DiscoverySource::Token { ref ca_cert_hashes, .. } if ca_cert_hashes.len() == 1)
        );
        assert!(s.notices.iter().any(|n| n.contains("not lowercase")));
        assert_eq!(s.cri_socket, defaults::DEFAULT_CRI_SOCKET);
    }

    #[test]
    fn bad_input_names_the_field() {
        let (_dir, facts) = facts();
        let err = resolve(None, &flags(), &facts).unwrap_err();
        assert!(err.to_string().contains("apiServerEndpoint"), "{err}");
        let mut unpinned = flags();
        unpinned.discovery_token_ca_cert_hash.clear();
        let err = resolve(Some("10.0.0.1:6443"), &unpinned, &facts).unwrap_err();
        assert!(err.to_string().contains("caCertHashes"), "{err}");
        let mut cp_only = flags();
        cp_only.certificate_key = Some("ab".repeat(32));
        let err = resolve(Some("10.0.0.1:6443"), &cp_only, &facts).unwrap_err();
        assert!(err.to_string().contains("--control-plane"), "{err}");
        let mut bad_name = flags();
        bad_name.node_name = Some("Bad_Name".into());
        assert!(resolve(Some("10.0.0.1:6443"), &bad_name, &facts).is_err());
    }

    #[test]
    fn control_plane_join_takes_the_given_address_and_port() {
        let (_dir, facts) = facts();
        let f = JoinFlags {
            control_plane: true,
            apiserver_advertise_address: Some("10.0.0.7".into()),
            apiserver_bind_port: Some("7443".into()),
            certificate_key: Some("ab".repeat(32)),
            ..flags()
        };
        let s = resolve(Some("lb.example:6443"), &f, &facts).unwrap();
        assert!(s.control_plane);
        assert_eq!(s.advertise_address, Some("10.0.0.7".parse().unwrap()));
        assert!(!s.advertise_address_detected);
        assert_eq!(s.bind_port, 7443);
        assert_eq!(s.api_endpoint, Some(("lb.example".into(), 6443)));
    }

    #[test]
    fn discovery_url_needs_no_endpoint_but_a_token() {
        let (_dir, facts) = facts();
        let f = JoinFlags {
            discovery_url: Some("https://10.0.0.1:9898".into()),
            ..flags()
        };
        let s = resolve(None, &f, &facts).unwrap();
        assert!(matches!(s.discovery, DiscoverySource::Url { .. }));
        assert_eq!(s.api_endpoint, Some(("10.0.0.1".into(), 6443)));
        let no_token = JoinFlags {
            discovery_url: Some("https://10.0.0.1:9898".into()),
            ..Default::default()
        };
        assert!(resolve(None, &no_token, &facts).is_err());
    }

    #[test]
    fn config_file_and_flags_do_not_mix() {
        let (dir, facts) = facts();
        let path = dir.path().join("join.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: 10.0.0.1:6443\n    unsafeSkipCAVerification: true\nnodeRegistration:\n  name: w2\n"
            ),
        )
        .unwrap();
        let from_file = JoinFlags {
            config: Some(path.clone()),
            ignore_preflight_errors: Some(vec!["Swap".into()]),
            ..Default::default()
        };
        let s = resolve(None, &from_file, &facts).unwrap();
        assert_eq!(s.node_name, "w2");
        assert_eq!(s.ignore_preflight_errors, vec!["Swap"]);
        let mixed = JoinFlags {
            config: Some(path),
            ..flags()
        };
        let err = resolve(None, &mixed, &facts).unwrap_err();
        assert!(err.to_string().contains("can not mix"), "{err}");
    }
}
