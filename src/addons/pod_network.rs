//! The pod-network addon (`--pod-network`), rendered from its folder's templates (`addons/<name>/`)
//! with values from the model only: the pod subnets, the pod MTU (the advertise interface's MTU minus
//! the addon's encapsulation overhead), an interface selection that holds on every node, and the
//! image repository. Every rendered object is checked against its typed form.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::{AddonObject, render_with};
use crate::model::{ControlPlane, InterfaceSelection};
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

/// The values the addon's templates get, from the model.
pub fn values(addon: &'static Addon, cp: &ControlPlane) -> Result<Values, PodNetworkError> {
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
    let overhead = data.encapsulation.overhead;
    let node_interface = cp.node.pod_interface;
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
    let mirror = (cluster.image_repository != DEFAULT_IMAGE_REPOSITORY)
        .then_some(cluster.image_repository.as_str());
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
        images: data
            .images
            .iter()
            .map(|(role, image)| (role.clone(), image.reference(mirror)))
            .collect(),
        ipv4_cidr,
        ipv6_cidr,
        mtu,
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
pub fn render(
    addon: &'static Addon,
    cp: &ControlPlane,
) -> Result<(String, Vec<AddonObject>), PodNetworkError> {
    let values = values(addon, cp)?;
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
