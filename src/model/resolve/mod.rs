//! Building the model: a defaulted ClusterConfiguration (+ KubeletConfiguration, KubeProxyConfiguration and
//! kubestrap's own cluster choices) into a [`ClusterSpec`], and the node facts every command shares
//! (node name, advertise address). Every problem is collected as a `FieldError` naming the field and value.

pub mod init;
pub mod join;

use std::net::IpAddr;

use serde_json::Value;

use super::cluster::*;
use crate::config::defaults;
use crate::config::flags::PodNetwork;
use crate::config::types::*;
use crate::config::validate as v;
use crate::config::versions::{COMPONENT_TABLES, EtcdVersion, KubeVersion};
use crate::config::{EncryptionAlgorithm, duration::GoDuration};
use crate::error::FieldError;
use crate::host::facts::{self, Facts};
use crate::host::paths::NodePath;
use crate::net::cidr::CidrList;

/// The cluster-wide choices that kubeadm's ClusterConfiguration cannot hold (the kubestrap ConfigMap's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterChoices {
    pub pod_network: PodNetwork,
    pub discovery_port: u16,
}

impl Default for ClusterChoices {
    fn default() -> Self {
        ClusterChoices {
            pod_network: PodNetwork::default(),
            discovery_port: defaults::DEFAULT_DISCOVERY_PORT,
        }
    }
}

/// The documents a cluster is described by: a ClusterConfiguration (defaults are applied here) and
/// the kubelet's and kube-proxy's configuration documents, passed through.
#[derive(Debug, Clone, Default)]
pub struct ClusterDocuments {
    pub cluster: ClusterConfiguration,
    pub kubelet: Option<Value>,
    pub kube_proxy: Option<Value>,
}

/// Resolves and validates the cluster part of the model. `bind_port` is this node's API server port:
/// a `controlPlaneEndpoint` without a port takes it, as kubeadm's does. `None` when an error was found.
pub fn cluster_spec(
    documents: ClusterDocuments,
    choices: ClusterChoices,
    bind_port: u16,
    notices: &mut Vec<String>,
    errors: &mut Vec<FieldError>,
) -> Option<ClusterSpec> {
    let ClusterDocuments {
        mut cluster,
        kubelet,
        kube_proxy,
    } = documents;
    defaults::cluster_configuration(&mut cluster, choices.pod_network);
    let errors_before = errors.len();

    let control_plane_endpoint = cluster.control_plane_endpoint.as_deref().and_then(|cpe| {
        v::host_port("controlPlaneEndpoint", cpe, errors).map(|(host, port)| {
            let port = port.unwrap_or(bind_port);
            if port != bind_port {
                notices.push("port specified in controlPlaneEndpoint overrides bindPort in the controlplane address".to_string());
            }
            Endpoint::new(host, port)
        })
    });

    let service_text = cluster
        .networking
        .service_subnet
        .clone()
        .unwrap_or_default();
    let service_subnets =
        v::service_subnets("networking.serviceSubnet", &service_text, errors).unwrap_or_default();
    let node_masks = node_cidr_masks(&cluster, errors);
    let pod_subnets = match cluster.networking.pod_subnet.as_deref() {
        Some(text) => v::pod_subnets(
            "networking.podSubnet",
            text,
            node_masks.ipv4,
            node_masks.ipv6,
            errors,
        )
        .unwrap_or_default(),
        None => Vec::new(),
    };
    v::no_overlap(&pod_subnets, &service_subnets, errors);

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
        Ok(version) if version.components().is_some() => Some(version),
        Ok(_) => {
            errors.push(FieldError::new(
                "kubernetesVersion",
                &version_text,
                "kubestrap supports Kubernetes v1.33 to v1.36",
            ));
            None
        }
        Err(e) => {
            errors.push(FieldError::new("kubernetesVersion", &version_text, e));
            None
        }
    };
    let components = kubernetes_version
        .as_ref()
        .and_then(KubeVersion::components)
        .unwrap_or(&COMPONENT_TABLES[1]);

    let image_repository = cluster.image_repository.clone().unwrap_or_default();
    v::image_repository("imageRepository", &image_repository, errors);
    let etcd = etcd_spec(&cluster, &image_repository, components.etcd, errors);

    let cert_dir = cluster.certificates_dir.clone().unwrap_or_default();
    v::absolute_path("certificatesDir", &cert_dir, errors);
    let algorithm_text = cluster.encryption_algorithm.clone().unwrap_or_default();
    let encryption = algorithm_text
        .parse::<EncryptionAlgorithm>()
        .map_err(|e| errors.push(FieldError::new("encryptionAlgorithm", &algorithm_text, e)))
        .unwrap_or_default();
    let validity = cluster
        .certificate_validity_period
        .unwrap_or(defaults::DEFAULT_CERT_VALIDITY);
    let ca_validity = cluster
        .ca_certificate_validity_period
        .unwrap_or(defaults::DEFAULT_CA_VALIDITY);
    for (field, value) in [
        ("certificateValidityPeriod", validity),
        ("caCertificateValidityPeriod", ca_validity),
    ] {
        validity_period(field, value, errors);
    }
    if validity > ca_validity {
        notices.push(format!(
            "certificateValidityPeriod {validity} is longer than caCertificateValidityPeriod {ca_validity}; leaf certificates cannot outlive their CA in practice"
        ));
    }

    let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
    if cluster_name.is_empty() || cluster_name.chars().any(char::is_whitespace) {
        errors.push(FieldError::new(
            "clusterName",
            &cluster_name,
            "must be a non-empty name without spaces",
        ));
    }
    validate_components(&cluster, errors);
    for gate in cluster.feature_gates.iter().flatten().map(|(g, _)| g) {
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
    let cert_sans = valid_cert_sans(&cluster.api_server, notices);
    let dns_image = Image::new(
        cluster
            .dns
            .image_repository
            .clone()
            .unwrap_or_else(|| format!("{image_repository}/coredns")),
        "coredns",
        cluster
            .dns
            .image_tag
            .clone()
            .unwrap_or_else(|| components.coredns.to_string()),
    );

    if errors.len() > errors_before {
        return None;
    }
    let kubernetes_version = kubernetes_version?;
    let etcd = etcd?;
    Some(ClusterSpec {
        pause_image: Image::new(&image_repository, "pause", components.pause),
        cluster_name,
        kubernetes_version,
        image_repository,
        control_plane_endpoint,
        networking: NetworkingSpec {
            service_subnets: CidrList::new(service_subnets),
            pod_subnets: CidrList::new(pod_subnets),
            dns_domain,
            node_cidr_mask_sizes: node_masks,
        },
        etcd,
        certificates: CertificatesSpec {
            dir: NodePath::new(&cert_dir),
            encryption_algorithm: encryption,
            validity_period: validity,
            ca_validity_period: ca_validity,
        },
        api_server: ApiServerSpec {
            extra_args: cluster.api_server.extra_args.unwrap_or_default(),
            extra_volumes: cluster.api_server.extra_volumes.unwrap_or_default(),
            extra_envs: cluster.api_server.extra_envs.unwrap_or_default(),
            cert_sans,
        },
        controller_manager: component_spec(cluster.controller_manager),
        scheduler: component_spec(cluster.scheduler),
        dns: DnsSpec {
            disabled: cluster.dns.disabled == Some(true),
            image: dns_image,
        },
        proxy: ProxySpec {
            disabled: cluster.proxy.disabled == Some(true),
            configuration: kube_proxy,
        },
        feature_gates: cluster.feature_gates.unwrap_or_default(),
        kubelet: KubeletSpec::from_document(kubelet),
        pod_network: PodNetworkSpec {
            addon: choices.pod_network,
        },
        discovery: DiscoverySpec {
            port: choices.discovery_port,
        },
    })
}

fn component_spec(c: ControlPlaneComponent) -> ComponentSpec {
    ComponentSpec {
        extra_args: c.extra_args.unwrap_or_default(),
        extra_volumes: c.extra_volumes.unwrap_or_default(),
        extra_envs: c.extra_envs.unwrap_or_default(),
    }
}

/// At least an hour, and ending before the year 10000 (X.509's limit) when issued now.
fn validity_period(field: &str, value: GoDuration, errors: &mut Vec<FieldError>) {
    let fits_in_x509_time = time::Duration::try_from(value.0)
        .ok()
        .and_then(|d| time::OffsetDateTime::now_utc().checked_add(d))
        .is_some_and(|end| end.year() <= 9999);
    if value.0 < std::time::Duration::from_secs(3600) {
        errors.push(FieldError::new(
            field,
            value,
            "a certificate validity period must be at least 1h0m0s",
        ));
    } else if !fits_in_x509_time {
        errors.push(FieldError::new(
            field,
            value,
            "a certificate cannot be valid past the year 9999",
        ));
    }
}

/// `apiServer.certSANs` that are IPs or DNS names; the others are dropped with kubeadm's warning.
fn valid_cert_sans(api_server: &ApiServer, notices: &mut Vec<String>) -> Vec<String> {
    api_server
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
        .collect()
}

fn etcd_spec(
    cluster: &ClusterConfiguration,
    image_repository: &str,
    default_tag: &str,
    errors: &mut Vec<FieldError>,
) -> Option<EtcdSpec> {
    if let Some(ext) = &cluster.etcd.external {
        if cluster.etcd.local.is_some() {
            errors.push(FieldError::new(
                "etcd",
                "local and external",
                "etcd.local and etcd.external are mutually exclusive",
            ));
        }
        if ext.endpoints.is_empty() {
            errors.push(FieldError::new(
                "etcd.external.endpoints",
                "[]",
                "at least one endpoint is required",
            ));
        }
        for (i, ep) in ext.endpoints.iter().enumerate() {
            let url = ep.starts_with("https://") || ep.starts_with("http://");
            if !url || ep.chars().any(|c| c.is_whitespace() || c == ',') {
                errors.push(FieldError::new(
                    format!("etcd.external.endpoints[{i}]"),
                    ep,
                    "an etcd endpoint is one URL such as https://10.0.0.5:2379",
                ));
            }
        }
        let file = |name: &str, value: &str, errors: &mut Vec<FieldError>| {
            if value.is_empty() {
                return None;
            }
            v::absolute_path(&format!("etcd.external.{name}"), value, errors);
            Some(NodePath::new(value))
        };
        return Some(EtcdSpec::External(ExternalEtcdSpec {
            endpoints: ext.endpoints.clone(),
            ca_file: file("caFile", &ext.ca_file, errors),
            cert_file: file("certFile", &ext.cert_file, errors),
            key_file: file("keyFile", &ext.key_file, errors),
        }));
    }
    let local = cluster.etcd.local.clone().unwrap_or_default();
    let tag = local
        .image_tag
        .clone()
        .unwrap_or_else(|| default_tag.to_string());
    let version = EtcdVersion::from_tag(&tag)
        .map_err(|e| errors.push(FieldError::new("etcd.local.imageTag", &tag, e)))
        .ok();
    if let Some(repo) = &local.image_repository {
        v::image_repository("etcd.local.imageRepository", repo, errors);
    }
    let data_dir = local
        .data_dir
        .clone()
        .unwrap_or_else(|| defaults::DEFAULT_ETCD_DATA_DIR.to_string());
    v::absolute_path("etcd.local.dataDir", &data_dir, errors);
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
    Some(EtcdSpec::Local(LocalEtcdSpec {
        image: Image::new(
            local
                .image_repository
                .clone()
                .unwrap_or_else(|| image_repository.to_string()),
            "etcd",
            tag,
        ),
        version: version?,
        data_dir: NodePath::new(&data_dir),
        extra_args: local.extra_args.unwrap_or_default(),
        extra_envs: local.extra_envs.unwrap_or_default(),
        server_cert_sans: local.server_cert_sans.unwrap_or_default(),
        peer_cert_sans: local.peer_cert_sans.unwrap_or_default(),
    }))
}

/// The per-node pod CIDR masks, honouring the controller-manager's node-cidr-mask-size arguments.
fn node_cidr_masks(
    cluster: &ClusterConfiguration,
    errors: &mut Vec<FieldError>,
) -> NodeCidrMaskSizes {
    let mut masks = NodeCidrMaskSizes::default();
    for arg in cluster.controller_manager.extra_args.iter().flatten() {
        let target = match arg.name.as_str() {
            "node-cidr-mask-size" | "node-cidr-mask-size-ipv4" => Some((&mut masks.ipv4, 32u8)),
            "node-cidr-mask-size-ipv6" => Some((&mut masks.ipv6, 128u8)),
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
    masks
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

/// Checks of `nodeRegistration` shared by init and join.
pub fn validate_node_registration(n: &NodeRegistrationOptions, errors: &mut Vec<FieldError>) {
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

/// `nodeRegistration.ignorePreflightErrors` plus `--ignore-preflight-errors`, validated (`all` alone).
pub fn ignore_preflight_errors(
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

/// `--skip-phases` (else the file's `skipPhases`), each entry checked against the command's phases.
pub fn skip_phases(
    flag: Option<&[String]>,
    file: Option<&[String]>,
    known_phases: &[String],
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    let list: Vec<String> = match flag {
        Some(list) if !list.is_empty() => list.to_vec(),
        _ => file.unwrap_or_default().to_vec(),
    };
    let list: Vec<String> = list.iter().map(|s| s.trim().to_string()).collect();
    v::phase_list("--skip-phases", &list, known_phases, errors);
    list
}

/// The node name: as given (validated as is), or the host name lowercased (with a notice when that changed it).
pub fn node_name(
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
/// The flag says whether it was detected.
pub fn advertise_address(
    endpoint: &mut ApiEndpoint,
    field: &str,
    facts: &Facts,
    notices: &mut Vec<String>,
    errors: &mut Vec<FieldError>,
) -> Option<(IpAddr, bool)> {
    if let Some(text) = endpoint.advertise_address.clone() {
        return v::advertise_address(field, &text, errors).map(|ip| (ip, false));
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
            Some((ip, true))
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

/// The bind port of an API endpoint (kubeadm's default 6443).
pub fn bind_port(endpoint: &ApiEndpoint, field: &str, errors: &mut Vec<FieldError>) -> u16 {
    endpoint
        .bind_port
        .and_then(|p| v::port(field, p, errors))
        .unwrap_or(6443)
}

/// The defaulted ClusterConfiguration and the cluster part of the model, with no node (`config images`,
/// the certs commands with `--config`, the default model of a node without a record).
pub fn cluster_from_documents(
    documents: ClusterDocuments,
    choices: ClusterChoices,
) -> Result<(ClusterSpec, Vec<String>), crate::error::InvalidInput> {
    let mut notices = Vec::new();
    let mut errors = Vec::new();
    let spec = cluster_spec(documents, choices, 6443, &mut notices, &mut errors);
    crate::error::InvalidInput::check(errors)?;
    spec.map(|s| (s, notices)).ok_or_else(|| {
        crate::error::InvalidInput::one("configuration", "", "incomplete configuration")
    })
}
