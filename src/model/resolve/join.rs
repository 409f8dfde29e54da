//! Resolving `kubestrap join`: JoinConfiguration + flags + defaults + host facts into this node's
//! [`NodeSpec`] and join's own options (discovery, TLS bootstrap). The cluster part of the model comes
//! from the cluster itself after discovery (kubeadm-config and the kubestrap ConfigMap).

use std::net::IpAddr;
use std::path::PathBuf;

use crate::config::defaults;
use crate::config::flags::JoinFlags;
use crate::config::load::{self, ConfigFile};
use crate::config::types::*;
use crate::config::validate as v;
use crate::error::{FieldError, InvalidInput};
use crate::host::facts::Facts;
use crate::host::paths::NodePath;
use crate::model::node::{LocalApiEndpoint, NodeRole, NodeSpec, NodeTimeouts};

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
}

/// What a join run needs besides this node's spec.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub discovery: DiscoverySource,
    /// Host and port of the cluster's API server when discovery names it.
    pub api_endpoint: Option<(String, u16)>,
    /// The token the kubelet's TLS bootstrap uses (a secret).
    pub tls_bootstrap_token: Option<String>,
    /// A control-plane join's key for the uploaded certificates (a secret).
    pub certificate_key: Option<String>,
    pub ca_cert_path: NodePath,
    pub patches_dir: Option<PathBuf>,
    pub skip_phases: Vec<String>,
    pub ignore_preflight_errors: Vec<String>,
    pub fix: bool,
    /// The advertise address (control planes) was picked from the host, not given.
    pub advertise_address_detected: bool,
}

/// The outcome of resolving join's input.
#[derive(Debug, Clone)]
pub struct ResolvedJoin {
    pub node: NodeSpec,
    pub options: JoinOptions,
    /// Things the user should know (defaults taken from the host).
    pub notices: Vec<String>,
}

/// Reads `--config`, applies the positional endpoint and the flags, fills defaults and validates.
/// `known_phases` are join's phase paths, for `--skip-phases`.
pub fn resolve(
    endpoint: Option<&str>,
    flags: &JoinFlags,
    facts: &Facts,
    known_phases: &[String],
) -> Result<ResolvedJoin, InvalidInput> {
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
    resolve_file(file, endpoint, flags, facts, known_phases)
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

/// Flags whose feature does not exist yet: refused rather than silently ignored.
fn refuse_unbuilt_features(flags: &JoinFlags, errors: &mut Vec<FieldError>) {
    if let Some(url) = &flags.discovery_url {
        errors.push(FieldError::new(
            "--discovery-url",
            url,
            "this feature does not exist yet: kubestrap's token-signed discovery endpoint comes with init's discovery phase; use the API server endpoint with --token and --discovery-token-ca-cert-hash",
        ));
    }
    if flags.keep_on_failure {
        errors.push(FieldError::new(
            "--keep-on-failure",
            "true",
            "this feature does not exist yet for join: join has no phase yet whose effects could be kept",
        ));
    }
}

/// Like [`resolve`], with the file already decoded.
pub fn resolve_file(
    file: ConfigFile,
    endpoint: Option<&str>,
    flags: &JoinFlags,
    facts: &Facts,
    known_phases: &[String],
) -> Result<ResolvedJoin, InvalidInput> {
    let mut notices = file.warnings.clone();
    let mut errors: Vec<FieldError> = Vec::new();
    refuse_unbuilt_features(flags, &mut errors);
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
    errors.extend(v::join_configuration(&join));

    let name = super::node_name(
        &mut join.node_registration,
        facts,
        &mut notices,
        &mut errors,
    );
    let mut advertise_address_detected = false;
    let local_api: Option<Option<(IpAddr, u16)>> = match join.control_plane.as_mut() {
        Some(cp) => {
            let address = super::advertise_address(
                &mut cp.local_api_endpoint,
                "controlPlane.localAPIEndpoint.advertiseAddress",
                facts,
                &mut notices,
                &mut errors,
            );
            let port = super::bind_port(
                &cp.local_api_endpoint,
                "controlPlane.localAPIEndpoint.bindPort",
                &mut errors,
            );
            Some(address.map(|(ip, detected)| {
                advertise_address_detected = detected;
                (ip, port)
            }))
        }
        None => None,
    };
    super::validate_node_registration(&join.node_registration, &mut errors);
    let ignore_preflight_errors = super::ignore_preflight_errors(
        &join.node_registration,
        flags.ignore_preflight_errors.as_deref(),
        &mut errors,
    );
    let skip_phases = super::skip_phases(
        flags.skip_phases.as_deref(),
        join.skip_phases.as_deref(),
        known_phases,
        &mut errors,
    );
    let patches_dir = join
        .patches
        .as_ref()
        .and_then(|p| p.directory.clone())
        .map(PathBuf::from);
    if let Some(dir) = &patches_dir
        && !dir.is_dir()
    {
        errors.push(FieldError::new(
            "patches.directory",
            dir.display(),
            "not a readable directory",
        ));
    }
    if flags.config.is_none() {
        in_flag_terms(&mut errors);
    }
    crate::config::flags::name_flags(&mut errors, &flags.sources());
    InvalidInput::check(errors)?;

    let (role, local_api_endpoint) = match local_api {
        Some(Some((advertise_address, bind_port))) => (
            NodeRole::ControlPlane,
            Some(LocalApiEndpoint {
                advertise_address,
                bind_port,
            }),
        ),
        Some(None) => {
            return Err(InvalidInput::one(
                "controlPlane.localAPIEndpoint.advertiseAddress",
                "",
                "incomplete configuration",
            ));
        }
        None => (NodeRole::Worker, None),
    };
    let discovery = discovery_source(&join);
    let api_endpoint = match &discovery {
        DiscoverySource::Token {
            api_server_endpoint,
            ..
        } => split_endpoint(api_server_endpoint),
        DiscoverySource::File { .. } => None,
    };
    let registration = join.node_registration;
    let labels = if role == NodeRole::ControlPlane {
        NodeSpec::control_plane_labels()
    } else {
        Default::default()
    };
    let node = NodeSpec {
        name,
        role,
        local_api_endpoint,
        cri_socket: registration
            .cri_socket
            .unwrap_or_else(|| defaults::DEFAULT_CRI_SOCKET.to_string()),
        image_pull_policy: registration
            .image_pull_policy
            .unwrap_or_else(|| "IfNotPresent".to_string()),
        image_pull_serial: registration.image_pull_serial.unwrap_or(true),
        taints: registration.taints.unwrap_or_default(),
        labels,
        kubelet_extra_args: registration.kubelet_extra_args.unwrap_or_default(),
        timeouts: NodeTimeouts::from_config(join.timeouts.as_ref()),
        mount_host_localtime: false,
    };
    Ok(ResolvedJoin {
        node,
        options: JoinOptions {
            discovery,
            api_endpoint,
            tls_bootstrap_token: join.discovery.tls_bootstrap_token.clone(),
            certificate_key: join.control_plane.and_then(|cp| cp.certificate_key),
            ca_cert_path: NodePath::new(join.ca_cert_path.unwrap_or_default()),
            patches_dir,
            skip_phases,
            ignore_preflight_errors,
            fix: flags.fix,
            advertise_address_detected,
        },
        notices,
    })
}

/// Without `--config` the user gave flags, not a JoinConfiguration: the problems that concern the
/// discovery as a whole say which flags to give instead of which fields to set.
fn in_flag_terms(errors: &mut [FieldError]) {
    for error in errors {
        match error.field.as_str() {
            "discovery.bootstrapToken.caCertHashes" => {
                error.value = String::new();
                error.reason = "token discovery without pinning the cluster CA can be unsafe: pass \
                    --discovery-token-ca-cert-hash sha256:<hex of the CA's public key> (the join command \
                    'kubestrap init' prints has it), or --discovery-token-unsafe-skip-ca-verification to \
                    trust the cluster without it"
                    .to_string();
            }
            "discovery" if error.value.is_empty() => {
                error.reason =
                    "give the cluster to join: the API server endpoint (host:port) with \
                    --token and --discovery-token-ca-cert-hash, or --discovery-file"
                        .to_string();
            }
            _ => {}
        }
    }
}

fn discovery_source(join: &JoinConfiguration) -> DiscoverySource {
    let token = join.discovery.bootstrap_token.clone().unwrap_or_default();
    match &join.discovery.file {
        Some(file) => DiscoverySource::File {
            path: file.kube_config_path.clone(),
        },
        None => DiscoverySource::Token {
            api_server_endpoint: token.api_server_endpoint.unwrap_or_default(),
            ca_cert_hashes: token.ca_cert_hashes.unwrap_or_default(),
            unsafe_skip_ca_verification: token.unsafe_skip_ca_verification == Some(true),
        },
    }
}

/// `host:port` (the port defaults to 6443).
fn split_endpoint(endpoint: &str) -> Option<(String, u16)> {
    let mut errors = Vec::new();
    v::host_port("endpoint", endpoint, &mut errors).map(|(host, port)| (host, port.unwrap_or(6443)))
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

    fn phases() -> Vec<String> {
        vec!["preflight".to_string()]
    }

    fn run(
        endpoint: Option<&str>,
        f: &JoinFlags,
        facts: &Facts,
    ) -> Result<ResolvedJoin, InvalidInput> {
        resolve(endpoint, f, facts, &phases())
    }

    #[test]
    fn token_discovery_from_flags() {
        let (_dir, facts) = facts();
        let r = run(Some("10.0.0.1:6443"), &flags(), &facts).unwrap();
        assert_eq!(r.node.name, "worker-1");
        assert_eq!(r.node.role, NodeRole::Worker);
        assert!(r.node.taints.is_empty());
        assert_eq!(r.options.api_endpoint, Some(("10.0.0.1".into(), 6443)));
        assert_eq!(r.options.tls_bootstrap_token.as_deref(), Some(TOKEN));
        assert!(
            matches!(r.options.discovery, DiscoverySource::Token { ref ca_cert_hashes, .. } if ca_cert_hashes.len() == 1)
        );
        assert!(r.notices.iter().any(|n| n.contains("not lowercase")));
        assert_eq!(r.node.cri_socket, defaults::DEFAULT_CRI_SOCKET);
    }

    #[test]
    fn bad_input_names_the_field() {
        let (_dir, facts) = facts();
        let err = run(None, &flags(), &facts).unwrap_err();
        assert!(err.to_string().contains("apiServerEndpoint"), "{err}");
        let mut unpinned = flags();
        unpinned.discovery_token_ca_cert_hash.clear();
        let err = run(Some("10.0.0.1:6443"), &unpinned, &facts).unwrap_err();
        assert_eq!(
            err.errors[0].field,
            "--discovery-token-ca-cert-hash (discovery.bootstrapToken.caCertHashes)"
        );
        assert!(
            err.to_string()
                .contains("--discovery-token-unsafe-skip-ca-verification"),
            "{err}"
        );
        let mut cp_only = flags();
        cp_only.certificate_key = Some("ab".repeat(32));
        let err = run(Some("10.0.0.1:6443"), &cp_only, &facts).unwrap_err();
        assert!(err.to_string().contains("--control-plane"), "{err}");
        let mut bad_name = flags();
        bad_name.node_name = Some("Bad_Name".into());
        assert!(run(Some("10.0.0.1:6443"), &bad_name, &facts).is_err());
        let mut bad_phase = flags();
        bad_phase.skip_phases = Some(vec!["nosuchphase".into()]);
        let err = run(Some("10.0.0.1:6443"), &bad_phase, &facts).unwrap_err();
        assert!(err.to_string().contains("nosuchphase"), "{err}");
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
        let r = run(Some("lb.example:6443"), &f, &facts).unwrap();
        assert_eq!(r.node.role, NodeRole::ControlPlane);
        let api = r.node.local_api_endpoint.as_ref().unwrap();
        assert_eq!(api.advertise_address, "10.0.0.7".parse::<IpAddr>().unwrap());
        assert!(!r.options.advertise_address_detected);
        assert_eq!(api.bind_port, 7443);
        assert_eq!(r.node.taints, vec![Taint::control_plane()]);
        assert_eq!(r.options.api_endpoint, Some(("lb.example".into(), 6443)));
    }

    #[test]
    fn unbuilt_features_are_refused_and_say_so() {
        let (_dir, facts) = facts();
        let f = JoinFlags {
            discovery_url: Some("https://10.0.0.1:9898".into()),
            keep_on_failure: true,
            ..flags()
        };
        let err = run(Some("10.0.0.1:6443"), &f, &facts).unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["--discovery-url", "--keep-on-failure"]);
        assert!(err.to_string().contains("does not exist yet"), "{err}");
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
        let r = run(None, &from_file, &facts).unwrap();
        assert_eq!(r.node.name, "w2");
        assert_eq!(r.options.ignore_preflight_errors, vec!["Swap"]);
        let mixed = JoinFlags {
            config: Some(path),
            ..flags()
        };
        let err = run(None, &mixed, &facts).unwrap_err();
        assert!(err.to_string().contains("can not mix"), "{err}");
    }
}
