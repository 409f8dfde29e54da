//! Resolving `kubestrap init`'s configuration: file + flags + defaults + host facts, validated into typed settings.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use super::duration::GoDuration;
use super::flags::{InitFlags, PodNetwork};
use super::load::{self, ConfigFile};
use super::types::*;
use super::validate as v;
use super::versions::{ComponentTable, EtcdVersion, KubeVersion};
use super::{EncryptionAlgorithm, defaults};
use crate::error::{FieldError, InvalidInput};
use crate::host::facts::{self, Facts};
use crate::host::paths::NodePath;
use crate::net::cidr;

/// The fully resolved, validated configuration of an init run.
#[derive(Debug, Clone)]
pub struct InitSettings {
    /// Defaulted documents, as `config print` and the kubeadm-config ConfigMap show them.
    pub init: InitConfiguration,
    pub cluster: ClusterConfiguration,
    pub kubelet: Option<Value>,
    pub kube_proxy: Option<Value>,

    pub node_name: String,
    pub advertise_address: IpAddr,
    /// True when the advertise address was picked from the host (default-route interface), not given.
    pub advertise_address_detected: bool,
    pub bind_port: u16,
    /// `controlPlaneEndpoint` split into host and port (port defaulted to the bind port).
    pub control_plane_endpoint: Option<(String, u16)>,
    pub service_subnets: Vec<IpNet>,
    pub pod_subnets: Vec<IpNet>,
    pub dns_domain: String,
    pub kubernetes_version: KubeVersion,
    pub components: &'static ComponentTable,
    pub etcd_image_tag: String,
    pub etcd_version: EtcdVersion,
    pub external_etcd: bool,
    pub cert_dir: NodePath,
    pub etcd_data_dir: NodePath,
    pub encryption: EncryptionAlgorithm,
    pub cert_validity: Duration,
    pub ca_validity: Duration,
    pub image_repository: String,
    pub cluster_name: String,
    pub pod_network: PodNetwork,
    pub discovery_port: u16,
    pub mount_host_localtime: bool,
    pub upload_certs: bool,
    pub skip_token_print: bool,
    pub fix: bool,
    pub skip_phases: Vec<String>,
    pub ignore_preflight_errors: Vec<String>,
    pub patches_dir: Option<String>,
    /// Extra API-server certificate SANs that are valid (invalid ones are dropped with a warning).
    pub apiserver_cert_sans: Vec<String>,
    /// Things the user should know (defaults taken from the host, ignored entries).
    pub notices: Vec<String>,
}

impl InitSettings {
    /// `https://host:port` of the control-plane endpoint, else of the advertise address.
    pub fn control_plane_url(&self) -> String {
        match &self.control_plane_endpoint {
            Some((host, port)) => format!("https://{}", join_host_port(host, *port)),
            None => self.local_api_url(),
        }
    }

    /// `https://advertise:bindPort`.
    pub fn local_api_url(&self) -> String {
        format!(
            "https://{}",
            join_host_port(&self.advertise_address.to_string(), self.bind_port)
        )
    }

    /// The `kubernetes` Service VIPs: the first address of each service subnet.
    pub fn api_service_ips(&self) -> Vec<IpAddr> {
        self.service_subnets
            .iter()
            .filter_map(|n| cidr::nth_address(n, 1))
            .collect()
    }

    /// The cluster DNS addresses: the tenth address of each service subnet.
    pub fn dns_service_ips(&self) -> Vec<IpAddr> {
        self.service_subnets
            .iter()
            .filter_map(|n| cidr::nth_address(n, 10))
            .collect()
    }

    pub fn is_ipv6(&self) -> bool {
        self.advertise_address.is_ipv6()
    }

    pub fn image(&self, name: &str, tag: &str) -> String {
        format!("{}/{name}:{tag}", self.image_repository)
    }
}

/// True when a certificate issued now with this validity ends before the year 10000 (X.509's limit).
fn fits_in_x509_time(validity: Duration) -> bool {
    time::Duration::try_from(validity)
        .ok()
        .and_then(|d| time::OffsetDateTime::now_utc().checked_add(d))
        .is_some_and(|end| end.year() <= 9999)
}

/// `host:port`, with IPv6 hosts in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Reads `--config`, applies the flags and defaults, fills host-derived values, and validates.
pub fn resolve(flags: &InitFlags, facts: &Facts) -> Result<InitSettings, InvalidInput> {
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
    resolve_file(file, flags, facts)
}

/// Like [`resolve`], with the file already decoded.
pub fn resolve_file(
    file: ConfigFile,
    flags: &InitFlags,
    facts: &Facts,
) -> Result<InitSettings, InvalidInput> {
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
    let pod_network = flags.pod_network.unwrap_or_default();
    if flags.schedule_on_control_plane {
        init.node_registration.taints = Some(Vec::new());
    }
    defaults::init_configuration(&mut init);
    defaults::cluster_configuration(&mut cluster, pod_network);

    let node_name = resolve_node_name(
        &mut init.node_registration,
        facts,
        &mut notices,
        &mut errors,
    );

    let advertise_address_detected = init.local_api_endpoint.advertise_address.is_none();
    let advertise_address = resolve_advertise_address(
        &mut init.local_api_endpoint,
        "localAPIEndpoint.advertiseAddress",
        facts,
        &mut notices,
        &mut errors,
    );
    let bind_port = init
        .local_api_endpoint
        .bind_port
        .and_then(|p| v::port("localAPIEndpoint.bindPort", p, &mut errors))
        .unwrap_or(6443);

    let control_plane_endpoint = cluster.control_plane_endpoint.as_deref().and_then(|cpe| {
        v::host_port("controlPlaneEndpoint", cpe, &mut errors).map(|(host, port)| {
            let port = port.unwrap_or(bind_port);
            if port != bind_port {
                notices.push("port specified in controlPlaneEndpoint overrides bindPort in the controlplane address".to_string());
            }
            (host, port)
        })
    });

    let service_subnet_text = cluster
        .networking
        .service_subnet
        .clone()
        .unwrap_or_default();
    let service_subnets = v::service_subnets(
        "networking.serviceSubnet",
        &service_subnet_text,
        &mut errors,
    )
    .unwrap_or_default();
    let (mask_v4, mask_v6) = node_cidr_masks(&cluster, &mut errors);
    let pod_subnets = match cluster.networking.pod_subnet.as_deref() {
        Some(text) => v::pod_subnets("networking.podSubnet", text, mask_v4, mask_v6, &mut errors)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    v::no_overlap(&pod_subnets, &service_subnets, &mut errors);

    let dns_domain = cluster.networking.dns_domain.clone().unwrap_or_default();
    if !v::is_dns1123_subdomain(&dns_domain) {
        errors.push(FieldError::new(
            "networking.dnsDomain",
            &dns_domain,
            "must be a lowercase RFC 1123 subdomain such as cluster.local",
        ));
    }

    let version_text = cluster.kubernetes_version.clone().unwrap_or_default();
    let kubernetes_version = match KubeVersion::parse(&version_text) {
        Ok(version) => {
            if version.components().is_none() {
                errors.push(FieldError::new(
                    "kubernetesVersion",
                    &version_text,
                    "kubestrap supports Kubernetes v1.33 to v1.36",
                ));
            }
            Some(version)
        }
        Err(e) => {
            errors.push(FieldError::new("kubernetesVersion", &version_text, e));
            None
        }
    };
    let components = kubernetes_version
        .as_ref()
        .and_then(KubeVersion::components)
        .unwrap_or(&super::versions::COMPONENT_TABLES[1]);

    let external_etcd = cluster.etcd.external.is_some();
    if external_etcd && cluster.etcd.local.is_some() {
        errors.push(FieldError::new(
            "etcd",
            "local and external",
            "etcd.local and etcd.external are mutually exclusive",
        ));
    }
    if let Some(ext) = &cluster.etcd.external {
        if ext.endpoints.is_empty() {
            errors.push(FieldError::new(
                "etcd.external.endpoints",
                "[]",
                "at least one endpoint is required",
            ));
        }
        for (i, ep) in ext.endpoints.iter().enumerate() {
            if !(ep.starts_with("https://") || ep.starts_with("http://")) {
                errors.push(FieldError::new(
                    format!("etcd.external.endpoints[{i}]"),
                    ep,
                    "an etcd endpoint is a URL such as https://10.0.0.5:2379",
                ));
            }
        }
        for (name, file) in [
            ("caFile", &ext.ca_file),
            ("certFile", &ext.cert_file),
            ("keyFile", &ext.key_file),
        ] {
            if !file.is_empty() {
                v::absolute_path(&format!("etcd.external.{name}"), file, &mut errors);
            }
        }
    }
    let local = cluster.etcd.local.clone().unwrap_or_default();
    let etcd_image_tag = local
        .image_tag
        .clone()
        .unwrap_or_else(|| components.etcd.to_string());
    let etcd_version = match EtcdVersion::from_tag(&etcd_image_tag) {
        Ok(version) => version,
        Err(e) => {
            errors.push(FieldError::new("etcd.local.imageTag", &etcd_image_tag, e));
            EtcdVersion {
                major: 3,
                minor: 6,
                patch: 0,
            }
        }
    };
    let data_dir = local
        .data_dir
        .clone()
        .unwrap_or_else(|| defaults::DEFAULT_ETCD_DATA_DIR.to_string());
    v::absolute_path("etcd.local.dataDir", &data_dir, &mut errors);
    for (field, sans) in [
        ("etcd.local.serverCertSANs", &local.server_cert_sans),
        ("etcd.local.peerCertSANs", &local.peer_cert_sans),
    ] {
        for san in sans.iter().flatten() {
            if san.parse::<IpAddr>().is_err() && !v::is_valid_dns_san(san) {
                errors.push(FieldError::new(
                    field,
                    san,
                    "not a valid IP address or DNS name",
                ));
            }
        }
    }

    let cert_dir = cluster.certificates_dir.clone().unwrap_or_default();
    v::absolute_path("certificatesDir", &cert_dir, &mut errors);

    let algorithm_text = cluster.encryption_algorithm.clone().unwrap_or_default();
    let encryption = match algorithm_text.parse::<EncryptionAlgorithm>() {
        Ok(a) => a,
        Err(e) => {
            errors.push(FieldError::new("encryptionAlgorithm", &algorithm_text, e));
            EncryptionAlgorithm::EcdsaP256
        }
    };

    let cert_validity = cluster
        .certificate_validity_period
        .unwrap_or(defaults::DEFAULT_CERT_VALIDITY);
    let ca_validity = cluster
        .ca_certificate_validity_period
        .unwrap_or(defaults::DEFAULT_CA_VALIDITY);
    for (field, value) in [
        ("certificateValidityPeriod", cert_validity),
        ("caCertificateValidityPeriod", ca_validity),
    ] {
        if value.0 < Duration::from_secs(3600) {
            errors.push(FieldError::new(
                field,
                value,
                "a certificate validity period must be at least 1h0m0s",
            ));
        } else if !fits_in_x509_time(value.0) {
            errors.push(FieldError::new(
                field,
                value,
                "a certificate cannot be valid past the year 9999",
            ));
        }
    }
    if cert_validity > ca_validity {
        notices.push(format!(
            "certificateValidityPeriod {cert_validity} is longer than caCertificateValidityPeriod {ca_validity}; leaf certificates cannot outlive their CA in practice"
        ));
    }

    let image_repository = cluster.image_repository.clone().unwrap_or_default();
    v::image_repository("imageRepository", &image_repository, &mut errors);
    if let Some(repo) = &local.image_repository {
        v::image_repository("etcd.local.imageRepository", repo, &mut errors);
    }
    let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
    if cluster_name.is_empty() || cluster_name.chars().any(char::is_whitespace) {
        errors.push(FieldError::new(
            "clusterName",
            &cluster_name,
            "must be a non-empty name without spaces",
        ));
    }
    validate_components(&cluster, &mut errors);
    validate_node_registration(&init.node_registration, &mut errors);
    validate_tokens(&init, &mut errors);
    if let Some(key) = &init.certificate_key {
        v::certificate_key("certificateKey", key, &mut errors);
    }
    for (gate, _) in cluster.feature_gates.iter().flatten() {
        if !v::KUBEADM_FEATURE_GATES.contains(&gate.as_str()) {
            errors.push(FieldError::new(
                "featureGates",
                gate,
                format!(
                    "not a kubeadm feature gate (known: {})",
                    v::KUBEADM_FEATURE_GATES.join(", ")
                ),
            ));
        }
    }
    let patches_dir = init.patches.as_ref().and_then(|p| p.directory.clone());
    if let Some(dir) = &patches_dir
        && !std::path::Path::new(dir).is_dir()
    {
        errors.push(FieldError::new(
            "patches.directory",
            dir,
            "not a readable directory",
        ));
    }

    let apiserver_cert_sans = cluster
        .api_server
        .cert_sans
        .iter()
        .flatten()
        .filter(|san| {
            let ok = san.parse::<IpAddr>().is_ok() || v::is_valid_dns_san(san);
            if !ok {
                notices.push(format!(
                    "[certificates] WARNING: '{san}' was not added to the 'apiserver' SAN, because it is not a valid IP or RFC-1123 compliant DNS entry"
                ));
            }
            ok
        })
        .cloned()
        .collect();

    let discovery_port = match &flags.discovery_port {
        Some(text) => v::port_text("--discovery-port", text, &mut errors)
            .unwrap_or(defaults::DEFAULT_DISCOVERY_PORT),
        None => defaults::DEFAULT_DISCOVERY_PORT,
    };
    if pod_network != PodNetwork::None
        && pod_subnets.is_empty()
        && cluster.networking.pod_subnet.is_none()
    {
        errors.push(FieldError::new(
            "networking.podSubnet",
            "",
            format!("the {pod_network:?} pod network needs a pod subnet"),
        ));
    }

    let ignore_preflight_errors = resolve_ignore_preflight_errors(
        &init.node_registration,
        flags.ignore_preflight_errors.as_deref(),
        &mut errors,
    );

    let skip_phases = match &flags.skip_phases {
        Some(list) if !list.is_empty() => list.clone(),
        _ => init.skip_phases.clone().unwrap_or_default(),
    };

    InvalidInput::check(errors)?;
    let (Some(advertise_address), Some(kubernetes_version)) =
        (advertise_address, kubernetes_version)
    else {
        return Err(InvalidInput::one(
            "configuration",
            "",
            "incomplete configuration",
        ));
    };
    Ok(InitSettings {
        kubelet: file.kubelet,
        kube_proxy: file.kube_proxy,
        node_name,
        advertise_address,
        advertise_address_detected,
        bind_port,
        control_plane_endpoint,
        service_subnets,
        pod_subnets,
        dns_domain,
        kubernetes_version,
        components,
        etcd_image_tag,
        etcd_version,
        external_etcd,
        cert_dir: NodePath::new(&cert_dir),
        etcd_data_dir: NodePath::new(&data_dir),
        encryption,
        cert_validity: cert_validity.0,
        ca_validity: ca_validity.0,
        image_repository,
        cluster_name,
        pod_network,
        discovery_port,
        mount_host_localtime: flags.mount_host_localtime,
        upload_certs: flags.upload_certs,
        skip_token_print: flags.skip_token_print,
        fix: flags.fix,
        skip_phases,
        ignore_preflight_errors,
        patches_dir,
        apiserver_cert_sans,
        notices,
        init,
        cluster,
    })
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
            match ttl.parse::<GoDuration>() {
                Ok(d) => tokens[0].ttl = Some(d),
                Err(e) => errors.push(FieldError::new("--token-ttl", ttl, e.to_string())),
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

/// `nodeRegistration.ignorePreflightErrors` plus `--ignore-preflight-errors`, validated (`all` alone).
pub fn resolve_ignore_preflight_errors(
    registration: &NodeRegistrationOptions,
    flag: Option<&[String]>,
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    let mut ids = registration
        .ignore_preflight_errors
        .clone()
        .unwrap_or_default();
    ids.extend(flag.into_iter().flatten().cloned());
    v::ignore_preflight_errors("--ignore-preflight-errors", &ids, errors);
    ids
}

/// The node name: as given (validated as is), or the host name lowercased (with a notice when that changed it).
pub fn resolve_node_name(
    registration: &mut NodeRegistrationOptions,
    facts: &Facts,
    notices: &mut Vec<String>,
    errors: &mut Vec<FieldError>,
) -> String {
    if let Some(name) = &registration.name {
        v::node_name("nodeRegistration.name", name, errors);
        return name.clone();
    }
    match facts.hostname() {
        Ok(host) => {
            let lower = host.to_lowercase();
            if lower != host {
                notices.push(format!(
                    "the host name {host:?} is not lowercase; the node is named {lower:?} (also in its certificates)"
                ));
            }
            v::node_name("nodeRegistration.name (from the host name)", &lower, errors);
            registration.name = Some(lower.clone());
            lower
        }
        Err(e) => {
            errors.push(FieldError::new(
                "nodeRegistration.name",
                "",
                format!(
                    "no node name given and the host name is unreadable ({e}); pass --node-name"
                ),
            ));
            String::new()
        }
    }
}

/// The advertise address: as given (validated), or the default-route interface's (with a notice).
pub fn resolve_advertise_address(
    endpoint: &mut ApiEndpoint,
    field: &str,
    facts: &Facts,
    notices: &mut Vec<String>,
    errors: &mut Vec<FieldError>,
) -> Option<IpAddr> {
    if let Some(text) = endpoint.advertise_address.clone() {
        return v::advertise_address(field, &text, errors);
    }
    match detect_advertise_address(facts) {
        Ok((ip, interface, others)) => {
            let mut notice = format!(
                "using {ip} on {interface}, the interface of the default route, as the advertise address"
            );
            if !others.is_empty() {
                notice.push_str(&format!(
                    " (the host also has {}; pass --apiserver-advertise-address to choose another)",
                    others.join(", ")
                ));
            }
            notices.push(notice);
            endpoint.advertise_address = Some(ip.to_string());
            Some(ip)
        }
        Err(reason) => {
            errors.push(FieldError::new(field, "", reason));
            None
        }
    }
}

/// The first global address on the default-route interface (IPv4 first, then IPv6), and the
/// other global addresses the host has.
pub fn detect_advertise_address(facts: &Facts) -> Result<(IpAddr, String, Vec<String>), String> {
    let addresses = facts::interface_addresses().map_err(|e| e.to_string())?;
    let usable = |ip: &IpAddr| !ip.is_loopback() && !ip.is_unspecified() && !is_link_local(ip);
    for interface in [
        facts.default_route_interface(),
        facts.default_route_interface_v6(),
    ]
    .into_iter()
    .filter_map(|r| r.ok().flatten())
    {
        if let Some(chosen) = addresses
            .iter()
            .find(|a| a.interface == interface && usable(&a.address))
        {
            let others = addresses
                .iter()
                .filter(|a| usable(&a.address) && a.address != chosen.address)
                .map(|a| format!("{} on {}", a.address, a.interface))
                .collect();
            return Ok((chosen.address, interface, others));
        }
    }
    Err(
        "no default route with a usable address was found; pass --apiserver-advertise-address"
            .to_string(),
    )
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The per-node pod CIDR masks, honouring the controller-manager's node-cidr-mask-size arguments.
fn node_cidr_masks(cluster: &ClusterConfiguration, errors: &mut Vec<FieldError>) -> (u8, u8) {
    let mut v4 = 24u8;
    let mut v6 = 64u8;
    for arg in cluster.controller_manager.extra_args.iter().flatten() {
        let target = match arg.name.as_str() {
            "node-cidr-mask-size" | "node-cidr-mask-size-ipv4" => Some((&mut v4, 32u8)),
            "node-cidr-mask-size-ipv6" => Some((&mut v6, 128u8)),
            _ => None,
        };
        if let Some((slot, max)) = target {
            match arg.value.parse::<u8>() {
                Ok(n) if n > 0 && n <= max => *slot = n,
                _ => errors.push(FieldError::new(
                    format!("controllerManager.extraArgs[{}]", arg.name),
                    &arg.value,
                    format!("a node CIDR mask size must be between 1 and {max}"),
                )),
            }
        }
    }
    (v4, v6)
}

fn validate_components(cluster: &ClusterConfiguration, errors: &mut Vec<FieldError>) {
    type Parts<'a> = (
        &'a str,
        &'a Option<Vec<Arg>>,
        &'a Option<Vec<HostPathMount>>,
        &'a Option<Vec<EnvVar>>,
    );
    let components: [Parts; 3] = [
        (
            "apiServer",
            &cluster.api_server.extra_args,
            &cluster.api_server.extra_volumes,
            &cluster.api_server.extra_envs,
        ),
        (
            "controllerManager",
            &cluster.controller_manager.extra_args,
            &cluster.controller_manager.extra_volumes,
            &cluster.controller_manager.extra_envs,
        ),
        (
            "scheduler",
            &cluster.scheduler.extra_args,
            &cluster.scheduler.extra_volumes,
            &cluster.scheduler.extra_envs,
        ),
    ];
    let etcd_args = cluster
        .etcd
        .local
        .as_ref()
        .and_then(|l| l.extra_args.clone());
    for (name, args) in components
        .iter()
        .map(|(n, a, _, _)| (*n, (*a).clone()))
        .chain(std::iter::once(("etcd.local", etcd_args)))
    {
        for (i, arg) in args.iter().flatten().enumerate() {
            if arg.name.is_empty() || arg.name.starts_with('-') || arg.name.contains('=') {
                errors.push(FieldError::new(
                    format!("{name}.extraArgs[{i}].name"),
                    &arg.name,
                    "an argument name is given without leading dashes and without '=' (e.g. name: v, value: \"2\")",
                ));
            }
        }
    }
    for (name, _, volumes, envs) in components {
        for (i, vol) in volumes.iter().flatten().enumerate() {
            let field = format!("{name}.extraVolumes[{i}]");
            if !v::is_dns1123_subdomain(&vol.name) || vol.name.contains('.') {
                errors.push(FieldError::new(
                    format!("{field}.name"),
                    &vol.name,
                    "a volume name must be a lowercase RFC 1123 label",
                ));
            }
            v::absolute_path(&format!("{field}.hostPath"), &vol.host_path, errors);
            v::absolute_path(&format!("{field}.mountPath"), &vol.mount_path, errors);
            if let Some(pt) = &vol.path_type {
                v::one_of(&format!("{field}.pathType"), pt, &v::PATH_TYPES, errors);
            }
        }
        for (i, env) in envs.iter().flatten().enumerate() {
            if env.name.is_empty() || env.name.contains('=') {
                errors.push(FieldError::new(
                    format!("{name}.extraEnvs[{i}].name"),
                    &env.name,
                    "not a valid environment variable name",
                ));
            }
        }
    }
}

fn validate_node_registration(n: &NodeRegistrationOptions, errors: &mut Vec<FieldError>) {
    if let Some(socket) = &n.cri_socket {
        v::cri_socket("nodeRegistration.criSocket", socket, errors);
    }
    if let Some(policy) = &n.image_pull_policy {
        v::one_of(
            "nodeRegistration.imagePullPolicy",
            policy,
            &v::PULL_POLICIES,
            errors,
        );
    }
    for (i, taint) in n.taints.iter().flatten().enumerate() {
        v::one_of(
            &format!("nodeRegistration.taints[{i}].effect"),
            &taint.effect,
            &v::TAINT_EFFECTS,
            errors,
        );
        if taint.key.is_empty() {
            errors.push(FieldError::new(
                format!("nodeRegistration.taints[{i}].key"),
                "",
                "a taint needs a key",
            ));
        }
    }
    for (i, arg) in n.kubelet_extra_args.iter().flatten().enumerate() {
        if arg.name.is_empty() || arg.name.starts_with('-') {
            errors.push(FieldError::new(
                format!("nodeRegistration.kubeletExtraArgs[{i}].name"),
                &arg.name,
                "an argument name is given without leading dashes",
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn mixed_case_hostname_becomes_one_lowercase_node_name() {
        let (_d, facts) = facts_with_hostname("iZ25beglnhtZ");
        let s = resolve(&flags(), &facts).unwrap();
        assert_eq!(s.node_name, "iz25beglnhtz");
        assert_eq!(
            s.init.node_registration.name.as_deref(),
            Some("iz25beglnhtz")
        );
        assert!(s.notices.iter().any(|n| n.contains("iZ25beglnhtZ")));
    }

    #[test]
    fn derived_addresses_and_urls() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.control_plane_endpoint = Some("lb.example".into());
        f.service_cidr = Some("10.96.0.0/12,fd00:10:96::/112".into());
        f.pod_network_cidr = Some("10.244.0.0/16,fd00:10:244::/56".into());
        let s = resolve(&f, &facts).unwrap();
        assert_eq!(s.control_plane_url(), "https://lb.example:6443");
        assert_eq!(s.local_api_url(), "https://192.0.2.10:6443");
        assert_eq!(
            s.api_service_ips()
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>(),
            ["10.96.0.1", "fd00:10:96::1"]
        );
        assert_eq!(
            s.dns_service_ips()
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>(),
            ["10.96.0.10", "fd00:10:96::a"]
        );
        assert_eq!(s.etcd_image_tag, "3.6.5-0");
        assert!(s.etcd_version.has_v36_flags());
    }

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.apiserver_advertise_address = Some("fd00::10".into());
        let s = resolve(&f, &facts).unwrap();
        assert_eq!(s.local_api_url(), "https://[fd00::10]:6443");
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
        let s = resolve_file(file, &f, &facts).unwrap();
        assert_eq!(s.node_name, "cp-override");
        assert_eq!(s.advertise_address.to_string(), "10.1.1.1");
        assert_eq!(s.skip_phases, vec!["kubeconfig".to_string()]);
        assert!(!s.etcd_version.has_v36_flags());
        assert_eq!(s.pod_subnets[0].to_string(), "10.200.0.0/25");
    }

    #[test]
    fn control_plane_taint_is_default_and_can_be_dropped() {
        let (_d, facts) = facts_with_hostname("cp1");
        let s = resolve(&flags(), &facts).unwrap();
        assert_eq!(
            s.init.node_registration.taints,
            Some(vec![Taint::control_plane()])
        );
        let mut f = flags();
        f.schedule_on_control_plane = true;
        let s = resolve(&f, &facts).unwrap();
        assert_eq!(s.init.node_registration.taints, Some(Vec::new()));
    }

    #[test]
    fn pod_network_none_leaves_the_pod_subnet_unset() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.pod_network = Some(PodNetwork::None);
        let s = resolve(&f, &facts).unwrap();
        assert!(s.pod_subnets.is_empty());
        assert_eq!(s.cluster.networking.pod_subnet, None);
        let s = resolve(&flags(), &facts).unwrap();
        assert_eq!(s.pod_subnets[0].to_string(), "10.244.0.0/16");
    }

    #[test]
    fn no_usable_default_route_asks_for_an_address() {
        let (_d, facts) = facts_with_hostname("cp1");
        let err = resolve(&InitFlags::default(), &facts).unwrap_err();
        assert_eq!(err.errors[0].field, "localAPIEndpoint.advertiseAddress");
        assert!(
            err.errors[0]
                .reason
                .contains("--apiserver-advertise-address")
        );
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let (_d, facts) = facts_with_hostname("cp1");
        let mut f = flags();
        f.service_cidr = Some("10.0.0.0/8".into());
        f.kubernetes_version = Some("v1.20.0".into());
        f.node_name = Some("Bad_Name".into());
        let err = resolve(&f, &facts).unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"networking.serviceSubnet"), "{fields:?}");
        assert!(fields.contains(&"kubernetesVersion"), "{fields:?}");
        assert!(fields.contains(&"nodeRegistration.name"), "{fields:?}");
    }
}
