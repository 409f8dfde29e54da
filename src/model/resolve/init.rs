//! Resolving `kubestrap init`: `--config` + flags + defaults + host facts into the model and init's own
//! run options, with every problem of the file and the flags reported at once.

use std::path::PathBuf;

use super::{ClusterChoices, ClusterDocuments};
use crate::config::defaults;
use crate::config::duration::GoDuration;
use crate::config::flags::InitFlags;
use crate::config::load::{self, ConfigFile};
use crate::config::types::*;
use crate::config::validate as v;
use crate::error::{FieldError, InvalidInput};
use crate::host::facts::Facts;
use crate::model::node::{LocalApiEndpoint, NodeRole, NodeSpec, NodeTimeouts};
use crate::model::{ClusterSpec, InterfaceSelection, Model, PodInterface};
use crate::podnet::Family;
use std::net::IpAddr;

/// What an init run needs besides the model: inputs that are not part of the cluster's description
/// (bootstrap tokens are secrets and are never recorded) and how the run itself behaves.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// The bootstrap tokens to create, defaulted (`bootstrapTokens`, `--token`, `--token-ttl`).
    pub bootstrap_tokens: Vec<BootstrapToken>,
    /// `--certificate-key` / `certificateKey`: the key upload-certs encrypts with (generated when absent).
    pub certificate_key: Option<String>,
    /// `--upload-certs`: store the control-plane certificates in the `kubeadm-certs` Secret.
    pub upload_certs: bool,
    /// `--skip-token-print`: the join commands show `<value withheld>` instead of the token.
    pub skip_token_print: bool,
    /// `--patches` / `patches.directory`: patches for the static-pod manifests.
    pub patches_dir: Option<PathBuf>,
    pub skip_phases: Vec<String>,
    pub ignore_preflight_errors: Vec<String>,
    /// `--fix`: apply safe preflight fixes.
    pub fix: bool,
    /// `--keep-on-failure`: leave a failed run's effects for inspection instead of rolling them back.
    pub keep_on_failure: bool,
    /// The advertise address was picked from the host (default-route interface), not given.
    pub advertise_address_detected: bool,
}

/// The outcome of resolving init's input.
#[derive(Debug, Clone)]
pub struct ResolvedInit {
    pub model: Model,
    pub options: InitOptions,
    /// Things the user should know (defaults taken from the host, dropped entries).
    pub notices: Vec<String>,
}

/// Reads `--config`, applies the flags and defaults, fills host-derived values, and validates.
/// `known_phases` are init's phase paths, for `--skip-phases`.
pub fn resolve(
    flags: &InitFlags,
    facts: &Facts,
    known_phases: &[String],
) -> Result<ResolvedInit, InvalidInput> {
    let file = match &flags.config {
        Some(path) => {
            let conflicts = flags.config_conflicts();
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
            load::read_file(path)?
        }
        None => ConfigFile::default(),
    };
    resolve_file(file, flags, facts, known_phases)
}

/// Like [`resolve`], with the file already decoded.
pub fn resolve_file(
    file: ConfigFile,
    flags: &InitFlags,
    facts: &Facts,
    known_phases: &[String],
) -> Result<ResolvedInit, InvalidInput> {
    let mut notices = file.warnings.clone();
    if file.join.is_some() || file.reset.is_some() {
        notices.push(
            "the configuration file's JoinConfiguration/ResetConfiguration is not used by init"
                .to_string(),
        );
    }
    let mut init = file.init.unwrap_or_default();
    let mut cluster = file.cluster.unwrap_or_default();
    let mut errors: Vec<FieldError> = Vec::new();
    apply_flags(flags, &mut init, &mut cluster, &mut errors);
    defaults::init_configuration(&mut init);

    let name = super::node_name(
        &mut init.node_registration,
        facts,
        &mut notices,
        &mut errors,
    );
    let advertise = super::advertise_address(
        &mut init.local_api_endpoint,
        "localAPIEndpoint.advertiseAddress",
        facts,
        &mut notices,
        &mut errors,
    );
    let bind_port = super::bind_port(
        &init.local_api_endpoint,
        "localAPIEndpoint.bindPort",
        &mut errors,
    );
    let discovery_port = match &flags.discovery_port {
        // 0 disables the discovery endpoint.
        Some(text) if text.trim() == "0" => 0,
        Some(text) => v::port_text("--discovery-port", text, &mut errors)
            .unwrap_or(defaults::DEFAULT_DISCOVERY_PORT),
        None => defaults::DEFAULT_DISCOVERY_PORT,
    };
    let choices = ClusterChoices {
        pod_network: flags.pod_network.unwrap_or_default(),
        discovery_port,
    };
    let documents = ClusterDocuments {
        cluster,
        kubelet: file.kubelet,
        kube_proxy: file.kube_proxy,
    };
    let cluster_spec =
        super::cluster_spec(documents, choices, bind_port, &mut notices, &mut errors);

    if let Some(spec) = &cluster_spec {
        pod_network_families(spec, &mut errors);
    }
    super::validate_node_registration(&init.node_registration, &mut errors);
    validate_tokens(&init, &mut errors);
    if let Some(key) = &init.certificate_key {
        v::certificate_key("certificateKey", key, &mut errors);
    }
    let patches_dir = init
        .patches
        .as_ref()
        .and_then(|p| p.directory.clone())
        .map(PathBuf::from);
    if let Some(dir) = &patches_dir {
        patches_directory(dir, &mut errors);
    }
    let ignore_preflight_errors = super::ignore_preflight_errors(
        &init.node_registration,
        flags.ignore_preflight_errors.as_deref(),
        &mut errors,
    );
    let skip_phases = super::skip_phases(
        flags.skip_phases.as_deref(),
        init.skip_phases.as_deref(),
        known_phases,
        &mut errors,
    );

    crate::config::flags::name_flags(&mut errors, &flags.sources());
    InvalidInput::check(errors)?;
    let (Some(cluster), Some((advertise_address, detected))) = (cluster_spec, advertise) else {
        return Err(InvalidInput::one(
            "configuration",
            "",
            "incomplete configuration",
        ));
    };
    if let Some(addon) = cluster.pod_network.addon.addon()
        && let Some(why) = &addon.data.unmaintained
    {
        notices.push(format!("--pod-network {}: {why}", addon.name));
    }
    let registration = init.node_registration;
    let node = NodeSpec {
        name,
        role: NodeRole::ControlPlane,
        local_api_endpoint: Some(LocalApiEndpoint {
            advertise_address,
            bind_port,
        }),
        cri_socket: registration
            .cri_socket
            .unwrap_or_else(|| defaults::DEFAULT_CRI_SOCKET.to_string()),
        image_pull_policy: registration
            .image_pull_policy
            .unwrap_or_else(|| "IfNotPresent".to_string()),
        image_pull_serial: registration.image_pull_serial.unwrap_or(true),
        taints: registration
            .taints
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !(flags.schedule_on_control_plane && t == &Taint::control_plane()))
            .collect(),
        labels: NodeSpec::control_plane_labels(),
        kubelet_extra_args: registration.kubelet_extra_args.unwrap_or_default(),
        timeouts: NodeTimeouts::from_config(init.timeouts.as_ref()),
        mount_host_localtime: flags.mount_host_localtime,
    };
    Ok(ResolvedInit {
        model: Model { cluster, node },
        options: InitOptions {
            bootstrap_tokens: init.bootstrap_tokens.unwrap_or_default(),
            certificate_key: init.certificate_key,
            upload_certs: flags.upload_certs,
            skip_token_print: flags.skip_token_print,
            patches_dir,
            skip_phases,
            ignore_preflight_errors,
            fix: flags.fix,
            keep_on_failure: flags.keep_on_failure,
            advertise_address_detected: detected,
        },
        notices,
    })
}

/// The pod subnets' families must be ones the chosen addon supports (`families` in its addon.yaml).
fn pod_network_families(cluster: &ClusterSpec, errors: &mut Vec<FieldError>) {
    let Some(addon) = cluster.pod_network.addon.addon() else {
        return;
    };
    for net in &cluster.networking.pod_subnets {
        let family = if crate::net::cidr::is_ipv4(net) {
            Family::Ipv4
        } else {
            Family::Ipv6
        };
        if !addon.supports(family) {
            errors.push(FieldError::new(
                "--pod-network",
                addon.name,
                format!(
                    "{} does not support the {} pod subnet {net} (networking.podSubnet); choose another \
                     --pod-network or a pod subnet of another family",
                    addon.name,
                    if family == Family::Ipv4 { "IPv4" } else { "IPv6" }
                ),
            ));
        }
    }
}

/// What the pod-network renderer needs from node 1: the MTU of the interface holding the advertise
/// address, and an interface selection every node satisfies — that interface's subnet when it is
/// wider than one address, else the control-plane endpoint's address or the advertise address
/// (`can-reach`: every node routes to it).
pub fn pod_interface(
    cluster: &ClusterSpec,
    advertise: IpAddr,
    facts: &Facts,
) -> Option<PodInterface> {
    if cluster.pod_network.addon.is_none() {
        return None;
    }
    let held = crate::host::facts::interface_addresses()
        .ok()
        .and_then(|all| all.into_iter().find(|a| a.address == advertise));
    let host_bits = if advertise.is_ipv4() { 32 } else { 128 };
    let reach = cluster
        .control_plane_endpoint
        .as_ref()
        .and_then(|e| e.ip())
        .unwrap_or(advertise);
    let selection = match &held {
        Some(a) if a.prefix_len > 0 && a.prefix_len < host_bits => {
            ipnet::IpNet::new(a.address, a.prefix_len)
                .map(|n| InterfaceSelection::Cidr(n.trunc()))
                .unwrap_or(InterfaceSelection::CanReach(reach))
        }
        _ => InterfaceSelection::CanReach(reach),
    };
    let mtu = held.and_then(|a| {
        facts
            .read_sys(format!("class/net/{}/mtu", a.interface))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    Some(PodInterface {
        mtu,
        selection,
        ipip: None,
    })
}

/// `--patches` / `patches.directory`: an existing directory of patch files with kubeadm's names.
fn patches_directory(dir: &std::path::Path, errors: &mut Vec<FieldError>) {
    if !dir.is_dir() {
        errors.push(FieldError::new(
            "patches.directory",
            dir.display(),
            "not a readable directory",
        ));
        return;
    }
    if let Err(invalid) = crate::patches::check_dir(dir) {
        errors.extend(invalid.errors);
    }
}

fn apply_flags(
    flags: &InitFlags,
    init: &mut InitConfiguration,
    cluster: &mut ClusterConfiguration,
    errors: &mut Vec<FieldError>,
) {
    if let Some(a) = &flags.apiserver_advertise_address {
        init.local_api_endpoint.advertise_address = Some(a.clone());
    }
    if let Some(p) = &flags.apiserver_bind_port
        && let Some(port) = v::port_text("--apiserver-bind-port", p, errors)
    {
        init.local_api_endpoint.bind_port = Some(i64::from(port));
    }
    if let Some(sans) = &flags.apiserver_cert_extra_sans {
        cluster.api_server.cert_sans = Some(sans.iter().map(|s| s.trim().to_string()).collect());
    }
    if let Some(cpe) = &flags.control_plane_endpoint {
        cluster.control_plane_endpoint = Some(cpe.clone());
    }
    if let Some(pods) = &flags.pod_network_cidr {
        cluster.networking.pod_subnet = Some(pods.clone());
    }
    if let Some(svc) = &flags.service_cidr {
        cluster.networking.service_subnet = Some(svc.clone());
    }
    if let Some(d) = &flags.service_dns_domain {
        cluster.networking.dns_domain = Some(d.clone());
    }
    if let Some(n) = &flags.node_name {
        init.node_registration.name = Some(n.clone());
    }
    if let Some(k) = &flags.kubernetes_version {
        cluster.kubernetes_version = Some(k.clone());
    }
    if let Some(r) = &flags.image_repository {
        cluster.image_repository = Some(r.clone());
    }
    if let Some(c) = &flags.cri_socket {
        init.node_registration.cri_socket = Some(c.clone());
    }
    if flags.token.is_some() || flags.token_ttl.is_some() {
        let tokens = init
            .bootstrap_tokens
            .get_or_insert_with(|| vec![BootstrapToken::default()]);
        if tokens.is_empty() {
            tokens.push(BootstrapToken::default());
        }
        if let Some(t) = &flags.token {
            tokens[0].token = Some(t.clone());
        }
        if let Some(ttl) = &flags.token_ttl {
            if ttl.trim_start().starts_with('-') {
                errors.push(FieldError::new(
                    "--token-ttl",
                    ttl,
                    "a token lifetime cannot be negative (0 means the token never expires)",
                ));
            } else {
                match ttl.parse::<GoDuration>() {
                    Ok(d) => tokens[0].ttl = Some(d),
                    Err(e) => errors.push(FieldError::new("--token-ttl", ttl, e.to_string())),
                }
            }
        }
    }
    if let Some(dir) = &flags.cert_dir {
        cluster.certificates_dir = Some(dir.clone());
    }
    if let Some(key) = &flags.certificate_key {
        init.certificate_key = Some(key.clone());
    }
    if let Some(dir) = &flags.patches {
        init.patches = Some(Patches {
            directory: Some(dir.clone()),
        });
    }
}

fn validate_tokens(init: &InitConfiguration, errors: &mut Vec<FieldError>) {
    for (i, t) in init.bootstrap_tokens.iter().flatten().enumerate() {
        let field = format!("bootstrapTokens[{i}]");
        if let Some(token) = &t.token {
            v::token(&format!("{field}.token"), token, errors);
        }
        for usage in t.usages.iter().flatten() {
            v::one_of(&format!("{field}.usages"), usage, &v::TOKEN_USAGES, errors);
        }
        for group in t.groups.iter().flatten() {
            v::token_group(&format!("{field}.groups"), group, errors);
        }
        if let Some(expires) = &t.expires
            && time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
                .is_err()
        {
            errors.push(FieldError::new(
                format!("{field}.expires"),
                expires,
                "not an RFC 3339 timestamp",
            ));
        }
    }
}

/// The image list does not depend on the node: with placeholders for the node's identity, the cluster
/// part of a configuration file (or of the flags) resolves without host facts.
pub fn placeholder_node(file: &mut ConfigFile) {
    let node = file.init.get_or_insert_with(Default::default);
    node.node_registration
        .name
        .get_or_insert_with(|| "node".to_string());
    node.local_api_endpoint
        .advertise_address
        .get_or_insert_with(|| "192.0.2.1".to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flags::PodNetwork;

    fn facts_with_hostname(name: &str) -> (tempfile::TempDir, Facts) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/kernel")).unwrap();
        std::fs::write(dir.path().join("sys/kernel/hostname"), format!("{name}\n")).unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::write(
            dir.path().join("net/route"),
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n",
        )
        .unwrap();
        let facts = Facts::with_roots(dir.path(), "/sys");
        (dir, facts)
    }

    fn flags() -> InitFlags {
        InitFlags {
            apiserver_advertise_address: Some("192.0.2.10".into()),
            ..Default::default()
        }
    }

    fn phases() -> Vec<String> {
        ["preflight", "certs", "certs/ca", "kubeconfig"]
            .map(String::from)
            .to_vec()
    }

    fn run(f: &InitFlags, facts: &Facts) -> Result<ResolvedInit, InvalidInput> {
        resolve(f, facts, &phases())
    }

    #[test]
    fn mixed_case_hostname_becomes_one_lowercase_node_name() {
        let (_d, facts) = facts_with_hostname("iZ25beglnhtZ");
        let r = run(&flags(), &facts).unwrap();
        assert_eq!(r.model.node.name, "iz25beglnhtz");
        assert!(r.notices.iter().any(|n| n.contains("iZ25beglnhtZ")));
    }

    #[test]
    fn derived_addresses_and_urls() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.control_plane_endpoint = Some("lb.example".into());
        f.service_cidr = Some("10.96.0.0/12,fd00:10:96::/112".into());
        f.pod_network_cidr = Some("10.244.0.0/16,fd00:10:244::/56".into());
        let r = run(&f, &facts).unwrap();
        let cp = r.model.control_plane().unwrap();
        assert_eq!(cp.control_plane_url(), "https://lb.example:6443");
        assert_eq!(cp.local_api_url(), "https://192.0.2.10:6443");
        let net = &r.model.cluster.networking;
        assert_eq!(
            net.service_subnets.to_string(),
            "10.96.0.0/12,fd00:10:96::/112"
        );
        assert_eq!(
            net.api_service_ips()
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>(),
            ["10.96.0.1", "fd00:10:96::1"]
        );
        assert_eq!(
            net.dns_service_ips()
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>(),
            ["10.96.0.10", "fd00:10:96::a"]
        );
        let etcd = r.model.cluster.etcd.local().unwrap();
        assert_eq!(etcd.image.tag, "3.6.5-0");
        assert!(etcd.version.has_v36_flags());
    }

    #[test]
    fn a_list_with_a_space_is_refused() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.pod_network_cidr = Some("10.244.0.0/16, fd00:10:244::/56".into());
        f.service_cidr = Some("10.96.0.0/12 ,fd00:10:96::/112".into());
        let err = run(&f, &facts).unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "--service-cidr (networking.serviceSubnet)",
                "--pod-network-cidr (networking.podSubnet)"
            ]
        );
        assert!(err.to_string().contains("without spaces"), "{err}");
    }

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.apiserver_advertise_address = Some("fd00::10".into());
        let r = run(&f, &facts).unwrap();
        assert_eq!(
            r.model.control_plane().unwrap().local_api_url(),
            "https://[fd00::10]:6443"
        );
    }

    #[test]
    fn flags_override_and_config_values_apply() {
        let (_d, facts) = facts_with_hostname("cp1");
        let file = load::parse(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.1.1.1\nskipPhases: [kubeconfig]\n\
             ---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\netcd:\n  local:\n    imageTag: 3.4.23-0\ncontrollerManager:\n  extraArgs:\n  - name: node-cidr-mask-size\n    value: \"26\"\nnetworking:\n  podSubnet: 10.200.0.0/25\n",
        )
        .unwrap();
        let f = InitFlags {
            node_name: Some("cp-override".into()),
            ..Default::default()
        };
        let r = resolve_file(file, &f, &facts, &phases()).unwrap();
        assert_eq!(r.model.node.name, "cp-override");
        assert_eq!(
            r.model
                .control_plane()
                .unwrap()
                .advertise_address()
                .to_string(),
            "10.1.1.1"
        );
        assert_eq!(r.options.skip_phases, vec!["kubeconfig".to_string()]);
        let cluster = &r.model.cluster;
        assert!(!cluster.etcd.local().unwrap().version.has_v36_flags());
        assert_eq!(cluster.networking.pod_subnets.to_string(), "10.200.0.0/25");
        assert_eq!(cluster.networking.node_cidr_mask_sizes.ipv4, 26);
    }

    #[test]
    fn control_plane_taint_and_labels_are_kubeadms() {
        let (_d, facts) = facts_with_hostname("cp1");
        let r = run(&flags(), &facts).unwrap();
        assert_eq!(r.model.node.taints, vec![Taint::control_plane()]);
        assert!(
            r.model
                .node
                .labels
                .contains_key("node-role.kubernetes.io/control-plane")
        );
    }

    #[test]
    fn the_pod_network_must_carry_the_pod_subnets_and_weave_is_warned_about() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.pod_network = Some(PodNetwork::named("weave").unwrap());
        let r = run(&f, &facts).unwrap();
        assert!(
            r.notices
                .iter()
                .any(|n| n.contains("weave") && n.contains("archived")),
            "{:?}",
            r.notices
        );
        // 192.0.2.10 is on no interface here: every node reaches it.
        let advertise = "192.0.2.10".parse().unwrap();
        assert_eq!(
            pod_interface(&r.model.cluster, advertise, &facts),
            Some(PodInterface {
                mtu: None,
                selection: InterfaceSelection::CanReach("192.0.2.10".parse().unwrap()),
                ipip: None,
            })
        );
        f.pod_network_cidr = Some("10.244.0.0/16,fd00:10:244::/56".into());
        let err = run(&f, &facts).unwrap_err().to_string();
        assert!(
            err.contains("--pod-network") && err.contains("IPv6 pod subnet fd00:10:244::/56"),
            "{err}"
        );
        f.pod_network = Some(PodNetwork::named("calico").unwrap());
        assert!(run(&f, &facts).is_ok());
        f.pod_network = Some(PodNetwork::NONE);
        let cluster = run(&f, &facts).unwrap().model.cluster;
        assert_eq!(pod_interface(&cluster, advertise, &facts), None);
    }

    #[test]
    fn pod_network_none_leaves_the_pod_subnet_unset() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.pod_network = Some(PodNetwork::NONE);
        let r = run(&f, &facts).unwrap();
        assert!(r.model.cluster.networking.pod_subnets.is_empty());
        let r = run(&flags(), &facts).unwrap();
        assert_eq!(
            r.model.cluster.networking.pod_subnets.to_string(),
            "10.244.0.0/16"
        );
    }

    #[test]
    fn no_usable_default_route_asks_for_an_address() {
        let (_d, facts) = facts_with_hostname("cp1");
        let err = run(&InitFlags::default(), &facts).unwrap_err();
        assert_eq!(err.errors[0].field, "localAPIEndpoint.advertiseAddress");
        assert!(
            err.errors[0]
                .reason
                .contains("--apiserver-advertise-address")
        );
    }

    #[test]
    fn all_errors_are_reported_at_once_flags_and_phases_included() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.service_cidr = Some("10.0.0.0/8".into());
        f.kubernetes_version = Some("v1.20.0".into());
        f.node_name = Some("Bad_Name".into());
        f.skip_phases = Some(vec!["nosuchphase".into()]);
        f.token_ttl = Some("-5m".into());
        let err = run(&f, &facts).unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        for expected in [
            "--service-cidr (networking.serviceSubnet)",
            "--kubernetes-version (kubernetesVersion)",
            "--node-name (nodeRegistration.name)",
            "--skip-phases",
            "--token-ttl",
        ] {
            assert!(fields.contains(&expected), "{expected} in {fields:?}");
        }
    }

    #[test]
    fn schedule_on_control_plane_drops_only_the_control_plane_taint() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.schedule_on_control_plane = true;
        f.upload_certs = true;
        f.skip_token_print = true;
        let r = run(&f, &facts).unwrap();
        assert!(r.model.node.taints.is_empty());
        assert!(r.options.upload_certs && r.options.skip_token_print);
        let file = load::parse(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {advertiseAddress: 10.1.1.1}\nnodeRegistration:\n  taints:\n  - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}\n  - {key: dedicated, value: infra, effect: NoExecute}\n",
        )
        .unwrap();
        let r = resolve_file(file, &f, &facts, &phases()).unwrap();
        let keys: Vec<&str> = r.model.node.taints.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["dedicated"]);
    }
}
