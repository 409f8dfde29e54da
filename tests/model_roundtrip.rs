//! A property test over the model: random valid configurations are resolved, every output is rendered
//! from the model (the PKI, the kubeconfigs, the static pods, the node record), each output is parsed
//! back, and what it says — the CIDR lists inside `--cluster-cidr` and `--service-cluster-ip-range`, the
//! certificates' SANs, the kubeconfigs' server URLs, etcd's URLs — is compared with the input.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use k8s_openapi::api::core::v1::Pod;
use kubestrap::config::flags::InitFlags;
use kubestrap::config::load::ConfigFile;
use kubestrap::config::types::*;
use kubestrap::host::{Facts, Host, NodePath, Root};
use kubestrap::kubeconfig::{KubeConfig, files};
use kubestrap::model::resolve::init::resolve_file;
use kubestrap::model::{ControlPlane, Model, record};
use kubestrap::output::Ui;
use kubestrap::pki::inspect::CertInfo;
use kubestrap::pki::{store, table};
use kubestrap::render::Renderer;
use kubestrap::staticpods::{self, Component, HostInputs};
use proptest::prelude::*;

/// What a generated configuration says, kept to judge the outputs by.
#[derive(Debug, Clone)]
struct Input {
    node: String,
    advertise: IpAddr,
    bind_port: u16,
    /// `controlPlaneEndpoint`: host and an optional port.
    endpoint: Option<(String, Option<u16>)>,
    services: Vec<IpNet>,
    pods: Vec<IpNet>,
    dns_domain: String,
    cert_sans: Vec<String>,
    /// External etcd endpoints; empty for a local member.
    external_etcd: Vec<String>,
    etcd_server_sans: Vec<String>,
    version: String,
}

fn label() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,8}[a-z0-9])?"
}

fn dns_name() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..4).prop_map(|labels| labels.join("."))
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254)
        .prop_filter("not loopback", |(a, ..)| *a != 127)
        .prop_map(|(a, b, c, d)| Ipv4Addr::new(a, b, c, d))
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    (0x2001u16..0x3fff, any::<[u16; 7]>()).prop_map(|(first, rest)| {
        Ipv6Addr::new(
            first,
            rest[0],
            rest[1],
            rest[2],
            rest[3],
            rest[4],
            rest[5],
            rest[6] | 1,
        )
    })
}

/// Service ranges come from 172.16.0.0/12 and fd00:96::/32, pod ranges from 10.0.0.0/8 and
/// fd00:244::/32, so they never overlap.
fn service_v4() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 12u8..=28).prop_map(|(bits, len)| {
        let addr = Ipv4Addr::from(0xac10_0000 | (bits & 0x000f_ffff));
        IpNet::V4(Ipv4Net::new(addr, len).unwrap().trunc())
    })
}

fn service_v6() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 108u8..=124).prop_map(|(bits, len)| {
        let base: u128 = 0xfd00_0096 << 96;
        let addr = Ipv6Addr::from(base | (bits & ((1u128 << 96) - 1)));
        IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc())
    })
}

fn pod_v4() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 8u8..=24).prop_map(|(bits, len)| {
        let addr = Ipv4Addr::from(0x0a00_0000 | (bits & 0x00ff_ffff));
        IpNet::V4(Ipv4Net::new(addr, len).unwrap().trunc())
    })
}

fn pod_v6() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 48u8..=64).prop_map(|(bits, len)| {
        let base: u128 = 0xfd00_0244 << 96;
        let addr = Ipv6Addr::from(base | (bits & ((1u128 << 96) - 1)));
        IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc())
    })
}

/// One range, or one per family in either order.
fn ranges(
    v4: impl Strategy<Value = IpNet>,
    v6: impl Strategy<Value = IpNet>,
) -> impl Strategy<Value = Vec<IpNet>> {
    (v4, v6, 0u8..4).prop_map(|(a, b, shape)| match shape {
        0 => vec![a],
        1 => vec![b],
        2 => vec![a, b],
        _ => vec![b, a],
    })
}

fn san() -> impl Strategy<Value = String> {
    prop_oneof![
        dns_name(),
        ipv4().prop_map(|ip| ip.to_string()),
        ipv6().prop_map(|ip| ip.to_string())
    ]
}

fn input() -> impl Strategy<Value = Input> {
    let endpoint = prop::option::of((
        prop_oneof![dns_name(), ipv4().prop_map(|ip| ip.to_string())],
        prop::option::of(1024u16..=65535),
    ));
    let etcd = prop_oneof![
        3 => Just(Vec::new()),
        1 => prop::collection::vec(ipv4().prop_map(|ip| format!("https://{ip}:2379")), 1..3),
    ];
    (
        (
            label(),
            prop_oneof![ipv4().prop_map(IpAddr::V4), ipv6().prop_map(IpAddr::V6)],
            1024u16..=65535,
            endpoint,
        ),
        (
            ranges(service_v4(), service_v6()),
            ranges(pod_v4(), pod_v6()),
            dns_name(),
        ),
        (
            prop::collection::vec(san(), 0..4),
            etcd,
            prop::collection::vec(san(), 0..3),
        ),
        (33u32..=36, 0u32..10),
    )
        .prop_map(
            |(
                (node, advertise, bind_port, endpoint),
                (services, pods, dns_domain),
                (cert_sans, external_etcd, etcd_server_sans),
                (minor, patch),
            )| Input {
                node,
                advertise,
                bind_port,
                endpoint,
                services,
                pods,
                dns_domain,
                cert_sans,
                external_etcd,
                etcd_server_sans,
                version: format!("v1.{minor}.{patch}"),
            },
        )
}

fn list(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn resolve(input: &Input) -> Model {
    let mut init = InitConfiguration::default();
    init.node_registration.name = Some(input.node.clone());
    init.local_api_endpoint.advertise_address = Some(input.advertise.to_string());
    init.local_api_endpoint.bind_port = Some(i64::from(input.bind_port));
    let mut cluster = ClusterConfiguration {
        kubernetes_version: Some(input.version.clone()),
        control_plane_endpoint: input.endpoint.as_ref().map(|(host, port)| match port {
            Some(port) => kubestrap::model::join_host_port(host, *port),
            None => host.clone(),
        }),
        ..Default::default()
    };
    cluster.networking.service_subnet = Some(list(&input.services));
    cluster.networking.pod_subnet = Some(list(&input.pods));
    cluster.networking.dns_domain = Some(input.dns_domain.clone());
    cluster.api_server.cert_sans = Some(input.cert_sans.clone());
    if input.external_etcd.is_empty() {
        cluster.etcd.local = Some(LocalEtcd {
            server_cert_sans: Some(input.etcd_server_sans.clone()),
            ..Default::default()
        });
    } else {
        cluster.etcd.external = Some(ExternalEtcd {
            endpoints: input.external_etcd.clone(),
            ..Default::default()
        });
    }
    let file = ConfigFile {
        init: Some(init),
        cluster: Some(cluster),
        ..Default::default()
    };
    resolve_file(file, &InitFlags::default(), &Facts::default(), &[])
        .unwrap_or_else(|e| panic!("a valid input resolves: {e}\n{input:?}"))
        .model
}

fn url(host: &str, port: u16) -> String {
    format!("https://{}", kubestrap::model::join_host_port(host, port))
}

/// The first host address of a range (the `kubernetes` Service VIP).
fn first_host(net: &IpNet) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + 1)),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + 1)),
    }
}

fn cert(host: &Host, relative: &str) -> CertInfo {
    let bytes = host
        .read(&NodePath::new("/etc/kubernetes/pki").join(relative))
        .unwrap();
    CertInfo::from_pem(&bytes).unwrap()
}

fn sans(cert: &CertInfo) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
    (
        cert.dns_names.iter().cloned().collect(),
        cert.ips.iter().copied().collect(),
    )
}

/// Splits the SANs given as text into DNS names and IPs.
fn split(sans: &[String]) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
    let mut names = BTreeSet::new();
    let mut ips = BTreeSet::new();
    for san in sans {
        match san.parse::<IpAddr>() {
            Ok(ip) => {
                ips.insert(ip);
            }
            Err(_) => {
                names.insert(san.clone());
            }
        }
    }
    (names, ips)
}

fn args(pod: &Pod) -> Vec<String> {
    pod.spec.as_ref().unwrap().containers[0]
        .command
        .clone()
        .unwrap()
}

fn arg(pod: &Pod, name: &str) -> String {
    let prefix = format!("--{name}=");
    args(pod)
        .iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("{name} in {:?}", args(pod)))
}

/// A comma list of CIDRs as the component would parse it.
fn parse_list(value: &str) -> Vec<IpNet> {
    value
        .split(',')
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| panic!("{s:?} in {value:?}: {e}"))
        })
        .collect()
}

fn check(input: &Input) {
    let model = resolve(input);
    let cp: ControlPlane = model.control_plane().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(
        Root::new(dir.path()),
        Facts::default(),
        false,
        Ui::new(0, true, kubestrap::output::Format::Json),
    );
    let external = !input.external_etcd.is_empty();

    // The PKI.
    for ca in table::CAS.into_iter().filter(|ca| !(external && ca.etcd)) {
        store::ensure_ca(&host, &cp, ca).unwrap();
    }
    for leaf in table::LEAVES
        .into_iter()
        .filter(|l| !(external && l.is_etcd()))
    {
        store::ensure_leaf(&host, &cp, leaf).unwrap();
    }
    let (names, ips) = sans(&cert(&host, "apiserver.crt"));
    let (extra_names, extra_ips) = split(&input.cert_sans);
    let mut want_names: BTreeSet<String> = [
        input.node.clone(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", input.dns_domain),
    ]
    .into_iter()
    .chain(extra_names)
    .collect();
    let mut want_ips: BTreeSet<IpAddr> = input.services.iter().map(first_host).collect();
    want_ips.insert(input.advertise);
    want_ips.extend(extra_ips);
    if let Some((host, _)) = &input.endpoint {
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                want_ips.insert(ip);
            }
            Err(_) => {
                want_names.insert(host.clone());
            }
        }
    }
    assert_eq!(names, want_names, "apiserver DNS SANs");
    assert_eq!(ips, want_ips, "apiserver IP SANs");
    if !external {
        let server = cert(&host, "etcd/server.crt");
        assert_eq!(server.common_name, input.node);
        let (names, ips) = sans(&server);
        let (extra_names, extra_ips) = split(&input.etcd_server_sans);
        let want_names: BTreeSet<String> = [input.node.clone(), "localhost".to_string()]
            .into_iter()
            .chain(extra_names)
            .collect();
        let mut want_ips: BTreeSet<IpAddr> = [
            input.advertise,
            "127.0.0.1".parse().unwrap(),
            "::1".parse().unwrap(),
        ]
        .into();
        want_ips.extend(extra_ips);
        assert_eq!(names, want_names, "etcd server DNS SANs");
        assert_eq!(ips, want_ips, "etcd server IP SANs");
    }

    // The kubeconfigs.
    let local = url(&input.advertise.to_string(), input.bind_port);
    let stable = match &input.endpoint {
        Some((host, port)) => url(host, port.unwrap_or(input.bind_port)),
        None => local.clone(),
    };
    for spec in files::ALL {
        files::ensure(&host, &cp, spec).unwrap();
        let text = host
            .read_string(&NodePath::new("/etc/kubernetes").join(spec.file_name))
            .unwrap();
        let config = KubeConfig::parse(&text).unwrap();
        let server = &config.current().unwrap().cluster.cluster.server;
        let want = match spec.name {
            "controller-manager" | "scheduler" => &local,
            _ => &stable,
        };
        assert_eq!(server, want, "{} server", spec.file_name);
    }

    // The static pods, as the kubelet would read them.
    let renderer = Renderer::new().unwrap();
    let pod = |component| -> Pod {
        let rendered =
            staticpods::render(&renderer, component, &cp, &HostInputs::default()).unwrap();
        let text = staticpods::manifest_text(&rendered).unwrap();
        kubestrap::yaml::from_str(&text).unwrap()
    };
    let kcm = pod(Component::KubeControllerManager);
    assert_eq!(parse_list(&arg(&kcm, "cluster-cidr")), input.pods);
    assert_eq!(
        parse_list(&arg(&kcm, "service-cluster-ip-range")),
        input.services
    );
    let api = pod(Component::KubeApiServer);
    assert_eq!(
        parse_list(&arg(&api, "service-cluster-ip-range")),
        input.services
    );
    assert_eq!(
        arg(&api, "advertise-address").parse::<IpAddr>().unwrap(),
        input.advertise
    );
    assert_eq!(arg(&api, "secure-port"), input.bind_port.to_string());
    let loopback = if input.advertise.is_ipv6() {
        "::1"
    } else {
        "127.0.0.1"
    };
    if external {
        assert_eq!(arg(&api, "etcd-servers"), input.external_etcd.join(","));
    } else {
        assert_eq!(arg(&api, "etcd-servers"), url(loopback, 2379));
        let etcd = pod(Component::Etcd);
        let advertise = input.advertise.to_string();
        assert_eq!(arg(&etcd, "name"), input.node);
        assert_eq!(arg(&etcd, "advertise-client-urls"), url(&advertise, 2379));
        assert_eq!(
            arg(&etcd, "initial-advertise-peer-urls"),
            url(&advertise, 2380)
        );
        assert_eq!(
            arg(&etcd, "listen-client-urls"),
            format!("{},{}", url(loopback, 2379), url(&advertise, 2379))
        );
        assert_eq!(
            arg(&etcd, "initial-cluster"),
            format!("{}={}", input.node, url(&advertise, 2380))
        );
        let member = cp.etcd_member().unwrap();
        assert_eq!(member.client_url, url(&advertise, 2379));
        assert_eq!(member.peer_url, url(&advertise, 2380));
    }

    // The node record reads back as the model it was written from.
    record::write(&host, &model, "init").unwrap();
    let read = record::read(&host).unwrap().unwrap();
    assert_eq!(read.model(), model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_output_says_what_the_model_says(input in input()) {
        check(&input);
    }
}
