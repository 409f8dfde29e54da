//! The pod-network addon (`--pod-network`), rendered from its folder's templates (`addons/<name>/`)
//! with values from the model only: the pod subnets, the pod MTU (the advertise interface's MTU minus
//! the addon's encapsulation overhead), an interface selection that holds on every node, and the
//! image repository. Every rendered object is checked against its typed form.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::{AddonObject, render_with};
use crate::model::{ClusterSpec, ControlPlane, InterfaceSelection, PodInterface};
use crate::podnet::{Addon, Crd, Family, Selection};
use crate::render::{RenderError, Renderer, TEMPLATES};

/// The upstream default registry: with it, addon images stay at upstream's registries; with any
/// other `imageRepository` (a mirror), they are pulled as `<mirror>/<name>:<tag>`.
const DEFAULT_IMAGE_REPOSITORY: &str = crate::config::versions::DEFAULT_IMAGE_REPOSITORY;

/// How the addon finds its interface, resolved for the template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceValues {
    /// `cidr`, `can-reach` or `none` (the addon selects nothing).
    pub kind: &'static str,
    pub cidr: Option<String>,
    pub address: Option<String>,
    /// An anchored regular expression matching exactly the addresses of `cidr` (IPv4).
    pub regex: Option<String>,
    /// True when the selection is of IPv6 addresses.
    pub ipv6: bool,
}

/// What an addon template is given.
#[derive(Debug, Clone, Serialize)]
pub struct Values {
    pub name: &'static str,
    pub namespace: String,
    pub daemonset: String,
    pub cni_network: String,
    pub cni_configs: Vec<String>,
    /// Image references by role (`images.<role>` in addon.yaml).
    pub images: BTreeMap<String, String>,
    pub ipv4_cidr: Option<String>,
    pub ipv6_cidr: Option<String>,
    /// The pod MTU; None when the interface MTU is unknown (the addon detects it then).
    pub mtu: Option<u32>,
    /// The encapsulation's kind (`encapsulation`, or `fallback-encapsulation` where the kernel
    /// lacks what the first needs).
    pub encapsulation: String,
    pub interface: InterfaceValues,
    pub crds: Vec<Crd>,
}

#[derive(Debug, thiserror::Error)]
pub enum PodNetworkError {
    #[error(
        "--pod-network {addon} does not support the {family} pod subnet {subnet}; choose another --pod-network"
    )]
    Family {
        addon: &'static str,
        family: &'static str,
        subnet: String,
    },
    #[error(
        "--pod-network {addon}: the interface MTU {interface} leaves no room for its {overhead}-byte encapsulation"
    )]
    Mtu {
        addon: &'static str,
        interface: u32,
        overhead: u32,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// A regex that matches exactly the IPv4 addresses of `net`, as text (flanneld's `--iface-regex`
/// is matched against the interface's addresses as well as its name).
pub fn ipv4_regex(net: &ipnet::Ipv4Net) -> String {
    let octets = net.network().octets();
    let prefix = usize::from(net.prefix_len());
    let mut parts = Vec::new();
    for (i, octet) in octets.iter().enumerate() {
        let fixed_bits = prefix.saturating_sub(i * 8).min(8);
        parts.push(match fixed_bits {
            8 => octet.to_string(),
            0 => "[0-9]+".to_string(),
            bits => {
                let span = 1u16 << (8 - bits);
                let low = u16::from(*octet);
                let values: Vec<String> = (low..low + span).map(|v| v.to_string()).collect();
                format!("({})", values.join("|"))
            }
        });
    }
    format!("^{}$", parts.join("\\."))
}

fn interface_values(
    addon: &Addon,
    selection: Option<InterfaceSelection>,
    fallback: IpAddr,
) -> InterfaceValues {
    let supports = |s| addon.data.interface_selection.contains(&s);
    let can_reach = |address: IpAddr| InterfaceValues {
        kind: "can-reach",
        cidr: None,
        address: Some(address.to_string()),
        regex: None,
        ipv6: address.is_ipv6(),
    };
    let none = InterfaceValues {
        kind: "none",
        cidr: None,
        address: None,
        regex: None,
        ipv6: false,
    };
    let selection = selection.unwrap_or(InterfaceSelection::CanReach(fallback));
    match selection {
        InterfaceSelection::Cidr(net)
            if supports(Selection::Cidr)
                || (supports(Selection::CidrIpv4) && matches!(net, IpNet::V4(_))) =>
        {
            let regex = match net {
                IpNet::V4(v4) => Some(ipv4_regex(&v4)),
                IpNet::V6(_) => None,
            };
            InterfaceValues {
                kind: "cidr",
                cidr: Some(net.to_string()),
                address: None,
                regex,
                ipv6: matches!(net, IpNet::V6(_)),
            }
        }
        InterfaceSelection::Cidr(_) if supports(Selection::CanReach) => can_reach(fallback),
        InterfaceSelection::CanReach(address) if supports(Selection::CanReach) => {
            can_reach(address)
        }
        _ => none,
    }
}

/// The addon's images by role (`images.<role>` in addon.yaml): at upstream's registries with the default
/// image repository, under the configured one (a mirror) otherwise.
pub fn image_references(addon: &Addon, cluster: &ClusterSpec) -> BTreeMap<String, String> {
    let mirror = (cluster.image_repository != DEFAULT_IMAGE_REPOSITORY)
        .then_some(cluster.image_repository.as_str());
    addon
        .data
        .images
        .iter()
        .map(|(role, image)| (role.clone(), image.reference(mirror)))
        .collect()
}

/// The images of the cluster's pod-network addon (none for `--pod-network none`), in role order:
/// what `config images list|pull` adds to the control plane's.
pub fn images(cluster: &ClusterSpec) -> Vec<String> {
    cluster
        .pod_network
        .addon
        .addon()
        .map(|addon| image_references(addon, cluster).into_values().collect())
        .unwrap_or_default()
}

/// The values the addon's templates get, from the model.
pub fn values(
    addon: &'static Addon,
    cp: &ControlPlane,
    node_interface: Option<PodInterface>,
) -> Result<Values, PodNetworkError> {
    let cluster = cp.cluster;
    let data = &addon.data;
    let mut ipv4_cidr = None;
    let mut ipv6_cidr = None;
    for net in &cluster.networking.pod_subnets {
        let (family, slot, label) = match net {
            IpNet::V4(_) => (Family::Ipv4, &mut ipv4_cidr, "IPv4"),
            IpNet::V6(_) => (Family::Ipv6, &mut ipv6_cidr, "IPv6"),
        };
        if !addon.supports(family) {
            return Err(PodNetworkError::Family {
                addon: addon.name,
                family: label,
                subnet: net.to_string(),
            });
        }
        slot.get_or_insert_with(|| net.to_string());
    }
    let encapsulation = data.encapsulation_for(node_interface.and_then(|i| i.ipip));
    let overhead = encapsulation.overhead;
    let mtu = match node_interface.and_then(|i| i.mtu) {
        Some(interface) if interface <= overhead => {
            return Err(PodNetworkError::Mtu {
                addon: addon.name,
                interface,
                overhead,
            });
        }
        Some(interface) => Some(interface - overhead),
        None => None,
    };
    let fallback = cluster
        .control_plane_endpoint
        .as_ref()
        .and_then(|e| e.ip())
        .unwrap_or(cp.advertise_address());
    Ok(Values {
        name: addon.name,
        namespace: data.namespace.clone(),
        daemonset: data.daemonset.clone(),
        cni_network: data.footprint.cni_network.clone(),
        cni_configs: data.footprint.cni_configs.clone(),
        images: image_references(addon, cluster),
        ipv4_cidr,
        ipv6_cidr,
        mtu,
        encapsulation: encapsulation.kind.clone(),
        interface: interface_values(addon, node_interface.map(|i| i.selection), fallback),
        crds: data.crds.clone(),
    })
}

/// A renderer with the shipped templates and the addon's own.
fn renderer(addon: &Addon) -> Result<Renderer, RenderError> {
    let mut templates: Vec<(&str, &str)> = TEMPLATES.to_vec();
    templates.extend(addon.templates.iter().map(|(n, t)| (n.as_str(), *t)));
    Renderer::with_templates(&templates)
}

/// The addon's manifest as text and as typed objects (every template of its folder, in name order).
/// `node_interface`: the advertise address's interface as init found it (None: unknown).
pub fn render(
    addon: &'static Addon,
    cp: &ControlPlane,
    node_interface: Option<PodInterface>,
) -> Result<(String, Vec<AddonObject>), PodNetworkError> {
    let values = values(addon, cp, node_interface)?;
    let renderer = renderer(addon)?;
    let mut text = String::new();
    let mut objects = Vec::new();
    for (name, _) in &addon.templates {
        let (part, typed) = render_with(&renderer, name, &values)?;
        if !text.is_empty() && !text.ends_with("---\n") {
            text.push_str("---\n");
        }
        text.push_str(&part);
        objects.extend(typed);
    }
    Ok((text, objects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flags::PodNetwork;
    use crate::model::Model;
    use crate::model::testing::control_plane_model;
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar};
    use serde_json::{Value, json};

    /// A control-plane model of `config` (extra documents) with `addon`, and node 1's interface.
    fn model(
        addon: &str,
        config: &str,
        mtu: Option<u32>,
        selection: Option<&str>,
    ) -> (Model, Option<PodInterface>) {
        let mut model = control_plane_model(config);
        model.cluster.pod_network.addon = PodNetwork::named(addon).unwrap();
        let interface = selection.map(|s| PodInterface {
            mtu,
            ipip: None,
            selection: match s.parse::<IpNet>() {
                Ok(net) => InterfaceSelection::Cidr(net),
                Err(_) => InterfaceSelection::CanReach(s.parse().unwrap()),
            },
        });
        (model, interface)
    }

    fn try_render(
        (model, interface): &(Model, Option<PodInterface>),
    ) -> Result<Vec<AddonObject>, PodNetworkError> {
        let addon = model.cluster.pod_network.addon.addon().unwrap();
        render(addon, &model.control_plane().unwrap(), *interface).map(|(_, o)| o)
    }

    fn rendered(m: &(Model, Option<PodInterface>)) -> Vec<AddonObject> {
        try_render(m).unwrap()
    }

    fn config_map<'a>(objects: &'a [AddonObject], name: &str) -> &'a ConfigMap {
        objects
            .iter()
            .find_map(|o| match o {
                AddonObject::ConfigMap(c) if c.metadata.name.as_deref() == Some(name) => Some(c),
                _ => None,
            })
            .expect("the ConfigMap")
    }

    fn data(cm: &ConfigMap, key: &str) -> String {
        cm.data.as_ref().unwrap()[key].clone()
    }

    fn daemonset(objects: &[AddonObject]) -> &DaemonSet {
        objects
            .iter()
            .find_map(|o| match o {
                AddonObject::DaemonSet(d) => Some(d),
                _ => None,
            })
            .expect("the DaemonSet")
    }

    fn container<'a>(ds: &'a DaemonSet, name: &str) -> &'a Container {
        let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .expect("the container")
    }

    /// The plain `value:` env vars of a container, by name.
    fn env(c: &Container) -> BTreeMap<String, String> {
        c.env
            .iter()
            .flatten()
            .filter_map(|e: &EnvVar| e.value.clone().map(|v| (e.name.clone(), v)))
            .collect()
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    const POD_V4: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: {podSubnet: 10.200.0.0/16}\n";
    const DUAL: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nimageRepository: mirror.example/k8s\nnetworking: {podSubnet: \"10.200.0.0/16,fd00:10:200::/56\", serviceSubnet: \"10.96.0.0/12,fd00:10:96::/112\"}\n";
    const V6: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: {podSubnet: \"fd00:10:200::/56\", serviceSubnet: \"fd00:10:96::/112\"}\n";

    // Goldens written by hand from flannel v0.27.4's kube-flannel.yml: net-conf.json's keys
    // (Network, EnableIPv4, EnableIPv6, IPv6Network, EnableNFTables, Backend.Type), flanneld's
    // arguments, and the CNI config the install-cni container copies.
    #[test]
    fn flannel_ipv4_by_subnet() {
        let objects = rendered(&model("flannel", "", Some(1500), Some("192.168.8.0/24")));
        let cm = config_map(&objects, "kube-flannel-cfg");
        assert_eq!(
            json(&data(cm, "net-conf.json")),
            json!({"Network": "10.244.0.0/16", "EnableNFTables": false, "Backend": {"Type": "vxlan"}})
        );
        assert_eq!(
            json(&data(cm, "cni-conf.json")),
            json!({"name": "cbr0", "cniVersion": "0.3.1", "plugins": [
                {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true, "mtu": 1450}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]})
        );
        let ds = daemonset(&objects);
        assert_eq!(ds.metadata.namespace.as_deref(), Some("kube-flannel"));
        let flanneld = container(ds, "kube-flannel");
        assert_eq!(
            flanneld.args.as_deref().unwrap(),
            [
                "--ip-masq",
                "--kube-subnet-mgr",
                "--iface-regex=^192\\.168\\.8\\.[0-9]+$"
            ]
        );
        assert_eq!(
            flanneld.image.as_deref(),
            Some("ghcr.io/flannel-io/flannel:v0.27.4")
        );
        assert_eq!(
            container(ds, "install-cni-plugin").image.as_deref(),
            Some("ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1")
        );
        assert_eq!(
            container(ds, "install-cni").args.as_deref().unwrap(),
            [
                "-f",
                "/etc/kube-flannel/cni-conf.json",
                "/etc/cni/net.d/10-flannel.conflist"
            ]
        );
    }

    #[test]
    fn flannel_dual_stack_jumbo_mirror_and_can_reach() {
        // An IPv6 subnet selection cannot be a flannel regex: can-reach of the advertise address.
        let objects = rendered(&model("flannel", DUAL, Some(9000), Some("fd00:1::/64")));
        let cm = config_map(&objects, "kube-flannel-cfg");
        assert_eq!(
            json(&data(cm, "net-conf.json")),
            json!({"Network": "10.200.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:10:200::/56",
                   "EnableNFTables": false, "Backend": {"Type": "vxlan"}})
        );
        assert_eq!(
            json(&data(cm, "cni-conf.json"))["plugins"][0]["delegate"]["mtu"],
            8950
        );
        let ds = daemonset(&objects);
        let flanneld = container(ds, "kube-flannel");
        assert_eq!(
            flanneld.args.as_deref().unwrap()[2],
            "--iface-can-reach=192.168.8.201"
        );
        assert_eq!(
            flanneld.image.as_deref(),
            Some("mirror.example/k8s/flannel:v0.27.4")
        );
    }

    #[test]
    fn flannel_ipv6_only_and_unknown_mtu() {
        let objects = rendered(&model("flannel", V6, None, None));
        let cm = config_map(&objects, "kube-flannel-cfg");
        assert_eq!(
            json(&data(cm, "net-conf.json")),
            json!({"EnableIPv4": false, "EnableIPv6": true, "IPv6Network": "fd00:10:200::/56",
                   "EnableNFTables": false, "Backend": {"Type": "vxlan"}})
        );
        // Without the interface's MTU flanneld derives it itself: no mtu in the delegate.
        assert_eq!(
            json(&data(cm, "cni-conf.json"))["plugins"][0]["delegate"],
            json!({"hairpinMode": true, "isDefaultGateway": true})
        );
    }

    // From calico v3.30.0's manifests/calico.yaml: calico-config's keys (typha_service_name,
    // calico_backend, veth_mtu, cni_network_config), calico-node's env names.
    #[test]
    fn calico_ipv4_by_subnet() {
        let objects = rendered(&model("calico", POD_V4, Some(1500), Some("192.168.8.0/24")));
        let cm = config_map(&objects, "calico-config");
        assert_eq!(data(cm, "veth_mtu"), "1480");
        assert_eq!(data(cm, "calico_backend"), "bird");
        assert_eq!(data(cm, "typha_service_name"), "none");
        let cni = json(&data(cm, "cni_network_config").replace("__CNI_MTU__", "1480"));
        assert_eq!(cni["name"], "k8s-pod-network");
        assert_eq!(
            cni["plugins"][0]["ipam"],
            json!({"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": "false"})
        );
        let node = container(daemonset(&objects), "calico-node");
        let env = env(node);
        for (name, value) in [
            ("CALICO_IPV4POOL_CIDR", "10.200.0.0/16"),
            ("CALICO_IPV4POOL_IPIP", "Always"),
            ("CALICO_IPV4POOL_VXLAN", "Never"),
            ("IP", "autodetect"),
            ("IP_AUTODETECTION_METHOD", "cidr=192.168.8.0/24"),
            ("FELIX_IPV6SUPPORT", "false"),
            ("CLUSTER_TYPE", "k8s,bgp"),
            ("DATASTORE_TYPE", "kubernetes"),
        ] {
            assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
        }
        assert!(!env.contains_key("CALICO_IPV6POOL_CIDR"));
        assert_eq!(node.image.as_deref(), Some("quay.io/calico/node:v3.30.0"));
        let install = env_of(daemonset(&objects), "install-cni");
        assert_eq!(install["CNI_CONF_NAME"], "10-calico.conflist");
        let crds: Vec<String> = objects
            .iter()
            .filter_map(|o| match o {
                AddonObject::CustomResourceDefinition(c) => c.metadata.name.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(crds.len(), 24);
        assert!(crds.contains(&"ippools.crd.projectcalico.org".to_string()));
        assert!(crds.contains(&"networkpolicies.crd.projectcalico.org".to_string()));
    }

    // calico's VXLAN instructions for manifests: calico_backend vxlan, the IPv4 pool in VXLAN
    // (CALICO_IPV4POOL_VXLAN Always, IPIP Never) and no BIRD in the probes; VXLAN costs 50 bytes.
    #[test]
    fn calico_is_vxlan_where_the_kernel_has_no_ipip() {
        let mut m = model("calico", POD_V4, Some(1500), Some("192.168.8.0/24"));
        if let Some(i) = m.1.as_mut() {
            i.ipip = Some(false);
        }
        let objects = rendered(&m);
        let cm = config_map(&objects, "calico-config");
        assert_eq!(data(cm, "veth_mtu"), "1450");
        assert_eq!(data(cm, "calico_backend"), "vxlan");
        let node = container(daemonset(&objects), "calico-node");
        let env = env(node);
        assert_eq!(env["CALICO_IPV4POOL_VXLAN"], "Always");
        assert_eq!(env["CALICO_IPV4POOL_IPIP"], "Never");
        let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .unwrap()
                .exec
                .as_ref()
                .unwrap()
                .command
                .clone()
                .unwrap()
        };
        assert_eq!(
            probe(&node.readiness_probe),
            ["/bin/calico-node", "-felix-ready"]
        );
        assert_eq!(
            probe(&node.liveness_probe),
            ["/bin/calico-node", "-felix-live"]
        );
        // With IP-in-IP (or an unreadable kernel configuration) the default stays upstream's.
        m.1.as_mut().unwrap().ipip = Some(true);
        let objects = rendered(&m);
        assert_eq!(
            data(config_map(&objects, "calico-config"), "calico_backend"),
            "bird"
        );
    }

    fn env_of(ds: &DaemonSet, name: &str) -> BTreeMap<String, String> {
        env(container(ds, name))
    }

    #[test]
    fn calico_dual_stack_can_reach_and_unknown_mtu() {
        let mut m = model("calico", DUAL, None, Some("192.168.8.201"));
        m.0.cluster.control_plane_endpoint =
            Some(crate::model::Endpoint::new("192.168.8.100", 6443));
        let objects = rendered(&m);
        assert_eq!(data(config_map(&objects, "calico-config"), "veth_mtu"), "0");
        let env = env_of(daemonset(&objects), "calico-node");
        assert_eq!(env["CALICO_IPV4POOL_CIDR"], "10.200.0.0/16");
        assert_eq!(env["CALICO_IPV6POOL_CIDR"], "fd00:10:200::/56");
        assert_eq!(env["IP6"], "autodetect");
        assert_eq!(env["FELIX_IPV6SUPPORT"], "true");
        assert_eq!(env["IP_AUTODETECTION_METHOD"], "can-reach=192.168.8.201");
        assert_eq!(
            container(daemonset(&objects), "calico-node")
                .image
                .as_deref(),
            Some("mirror.example/k8s/node:v3.30.0")
        );
    }

    #[test]
    fn calico_ipv6_only_selects_by_ipv6_subnet() {
        let objects = rendered(&model("calico", V6, Some(1400), Some("fd00:1::/64")));
        assert_eq!(
            data(config_map(&objects, "calico-config"), "veth_mtu"),
            "1380"
        );
        let env = env_of(daemonset(&objects), "calico-node");
        assert_eq!(env["IP"], "none");
        assert_eq!(env["IP6_AUTODETECTION_METHOD"], "cidr=fd00:1::/64");
        assert!(!env.contains_key("IP_AUTODETECTION_METHOD"));
    }

    // From weave 2.8.1's weave-daemonset-k8s.yaml: IPALLOC_RANGE, WEAVE_MTU, INIT_CONTAINER.
    #[test]
    fn weave_range_and_mtu() {
        let objects = rendered(&model("weave", POD_V4, Some(1500), Some("192.168.8.0/24")));
        let ds = daemonset(&objects);
        assert_eq!(ds.metadata.name.as_deref(), Some("weave-net"));
        let env = env_of(ds, "weave");
        assert_eq!(env["IPALLOC_RANGE"], "10.200.0.0/16");
        assert_eq!(env["WEAVE_MTU"], "1376");
        assert_eq!(env["INIT_CONTAINER"], "true");
        assert_eq!(
            container(ds, "weave-npc").image.as_deref(),
            Some("docker.io/weaveworks/weave-npc:2.8.1")
        );
        let unknown = rendered(&model("weave", "", None, None));
        assert!(!env_of(daemonset(&unknown), "weave").contains_key("WEAVE_MTU"));
    }

    #[test]
    fn what_an_addon_cannot_carry_is_refused() {
        let err = try_render(&model("weave", DUAL, Some(1500), None)).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not support the IPv6 pod subnet fd00:10:200::/56"),
            "{err}"
        );
        let err = try_render(&model("flannel", "", Some(40), Some("192.168.8.0/24"))).unwrap_err();
        assert!(err.to_string().contains("MTU 40"), "{err}");
    }

    #[test]
    fn every_addon_renders_what_its_data_names() {
        for addon in crate::podnet::all() {
            let objects = rendered(&model(addon.name, "", Some(1500), Some("10.0.0.0/8")));
            let ds = daemonset(&objects);
            assert_eq!(
                ds.metadata.name.as_deref(),
                Some(addon.data.daemonset.as_str())
            );
            assert_eq!(
                ds.metadata.namespace.as_deref(),
                Some(addon.data.namespace.as_str())
            );
            let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            let images: Vec<&str> = pod
                .containers
                .iter()
                .chain(pod.init_containers.iter().flatten())
                .filter_map(|c| c.image.as_deref())
                .collect();
            for image in addon.data.images.values() {
                let reference = image.reference(None);
                assert!(
                    images.contains(&reference.as_str())
                        || objects
                            .iter()
                            .any(|o| matches!(o, AddonObject::Deployment(d)
                            if format!("{d:?}").contains(&reference))),
                    "{}: {reference} is not used",
                    addon.name
                );
            }
        }
    }

    #[test]
    fn ipv4_regexes_match_exactly_the_subnet() {
        let net = |s: &str| s.parse::<ipnet::Ipv4Net>().unwrap();
        assert_eq!(ipv4_regex(&net("10.0.0.0/24")), "^10\\.0\\.0\\.[0-9]+$");
        assert_eq!(
            ipv4_regex(&net("192.168.4.0/22")),
            "^192\\.168\\.(4|5|6|7)\\.[0-9]+$"
        );
        assert_eq!(
            ipv4_regex(&net("172.16.0.0/12")),
            "^172\\.(16|17|18|19|20|21|22|23|24|25|26|27|28|29|30|31)\\.[0-9]+\\.[0-9]+$"
        );
        assert_eq!(ipv4_regex(&net("10.1.2.3/32")), "^10\\.1\\.2\\.3$");
    }
}
