//! The pod-network addons as data: each folder `addons/<name>/` (embedded at build time) holds an
//! `addon.yaml` with the addon's parameters and its host footprint, and the addon's manifest templates.
//! The renderer, preflight (conditions, MTU, foreign leftovers) and reset's sweep all read this
//! catalogue, so adding an addon is adding a folder.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// The folders as `build.rs` found them: (name, addon.yaml, [(template file, text)]).
type Folder = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);
const FOLDERS: &[Folder] = include!(concat!(env!("OUT_DIR"), "/pod_network_addons.rs"));

/// `--pod-network none`: no addon.
pub const NONE: &str = "none";
/// The addon chosen when `--pod-network` is not given.
pub const DEFAULT: &str = "flannel";

/// One pod-network addon: its `addon.yaml` and its templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addon {
    pub name: &'static str,
    pub data: AddonData,
    /// (template name as the renderer knows it, `addons/<name>/<file>`, text), in file-name order.
    pub templates: Vec<(String, &'static str)>,
}

/// `addons/<name>/addon.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AddonData {
    /// The name `--pod-network` takes (the folder's name).
    pub name: String,
    /// The upstream release the templates' facts come from.
    pub upstream: Upstream,
    /// Set when upstream no longer maintains the addon: why, printed by `init` as a warning.
    #[serde(default)]
    pub unmaintained: Option<String>,
    /// The namespace of the addon's objects.
    pub namespace: String,
    /// The DaemonSet that runs the addon on every node.
    pub daemonset: String,
    /// The images, by role, at upstream's registry.
    pub images: BTreeMap<String, ImageRef>,
    /// The encapsulation on the wire and its per-packet overhead in bytes (pod MTU = interface MTU − this).
    pub encapsulation: Encapsulation,
    /// The encapsulation used instead when the kernel lacks the option `encapsulation` needs
    /// (calico: VXLAN where the kernel has no IP-in-IP).
    #[serde(default)]
    pub fallback_encapsulation: Option<Encapsulation>,
    /// The IP families of pod subnets the addon supports (`ipv4`, `ipv6`).
    pub families: Vec<Family>,
    /// Kernel options (CONFIG_*) the addon needs, checked by preflight.
    #[serde(default)]
    pub kernel_config: Vec<String>,
    /// How the addon picks the interface for inter-node traffic, in order of preference.
    #[serde(default)]
    pub interface_selection: Vec<Selection>,
    /// Where upstream's manifest keeps the values kubestrap sets (pod CIDR, MTU, interface).
    pub fields: Fields,
    /// The CustomResourceDefinitions the addon needs (rendered by its template from this list).
    #[serde(default)]
    pub crds: Vec<Crd>,
    pub footprint: Footprint,
}

/// A CustomResourceDefinition by its names: `<plural>.<group>`, served at `version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Crd {
    pub group: String,
    pub kind: String,
    pub plural: String,
    /// `Cluster` or `Namespaced`.
    pub scope: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Upstream {
    pub project: String,
    pub release: String,
    /// The upstream manifest the facts were read from.
    pub manifest: String,
}

/// An image at upstream's registry: `registry/name:tag`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageRef {
    pub registry: String,
    pub name: String,
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Encapsulation {
    /// vxlan, ipip, or the addon's own (weave's fastdp/sleeve).
    pub kind: String,
    pub overhead: u32,
    /// The kernel option (CONFIG_*) this encapsulation needs, when the kernel may lack it.
    #[serde(default)]
    pub kernel_config: Option<String>,
}

impl AddonData {
    /// The encapsulation on a node whose kernel has IP-in-IP or not (`ipip`, None: unknown): the
    /// fallback when the primary needs `NET_IPIP` and the kernel is known to lack it.
    pub fn encapsulation_for(&self, ipip: Option<bool>) -> &Encapsulation {
        match (
            &self.fallback_encapsulation,
            self.encapsulation.kernel_config.as_deref(),
        ) {
            (Some(fallback), Some("NET_IPIP")) if ipip == Some(false) => fallback,
            _ => &self.encapsulation,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// An interface-selection method: by a subnet the interface's address is in, or by the interface
/// that routes to an address every node reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    Cidr,
    /// By subnet, for IPv4 subnets only (flannel's `--iface-regex` cannot follow IPv6's compressed
    /// text forms).
    CidrIpv4,
    CanReach,
}

/// Where upstream's manifest keeps the values kubestrap sets (`--pod-network-manifest` edits exactly
/// these), by what they set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Fields {
    pub pod_cidr: Vec<Field>,
    #[serde(default)]
    pub mtu: Vec<Field>,
    #[serde(default)]
    pub interface: Vec<Field>,
}

impl Fields {
    /// Every field, pod CIDR first, then MTU, then interface.
    pub fn all(&self) -> impl Iterator<Item = &Field> {
        self.pod_cidr.iter().chain(&self.mtu).chain(&self.interface)
    }
}

/// One settable value of upstream's manifest: the object, where inside it, and what kubestrap puts there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Field {
    pub kind: ObjectKind,
    /// The object's `metadata.name`.
    pub name: String,
    pub at: Location,
    pub value: FieldValue,
    /// The manifest must already hold the field (upstream always sets it): a manifest without it is
    /// refused rather than given it.
    #[serde(default)]
    pub required: bool,
}

/// The kinds of object a field lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ObjectKind {
    ConfigMap,
    DaemonSet,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::DaemonSet => "DaemonSet",
        }
    }
}

/// Where in the object the value is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Location {
    /// A ConfigMap's `data` key.
    Data(String),
    /// A value inside the JSON document a ConfigMap `data` key holds.
    DataJson { key: String, path: Vec<Step> },
    /// An environment variable (`value:`) of a container or init container.
    Env { container: String, name: String },
    /// A `--flag=value` argument of a container; the value replaces any argument of `flags`.
    Arg {
        container: String,
        flags: Vec<String>,
    },
}

/// One step of a path inside a JSON document: a key, or the element of an array whose keys have
/// these string values (`{type: flannel}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Step {
    Key(String),
    Element(BTreeMap<String, String>),
}

/// What kubestrap puts in a field, from the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldValue {
    /// The IPv4 pod subnet; removed when the cluster has none.
    Ipv4Cidr,
    /// The IPv6 pod subnet; removed when the cluster has none.
    Ipv6Cidr,
    /// `false` when the cluster has no IPv4 pod subnet; removed (the addon's default, on) otherwise.
    Ipv4Disabled,
    /// `true` when the cluster has an IPv6 pod subnet; removed (the addon's default, off) otherwise.
    Ipv6Enabled,
    /// The pod MTU (interface MTU − the encapsulation overhead); left alone when unknown.
    Mtu,
    /// flanneld's interface flags: `--iface-regex=<regex of the IPv4 subnet>` or
    /// `--iface-can-reach=<address>`; left alone when nothing is selected.
    IfaceFlag,
    /// calico's autodetection method for an IPv4 node address: `cidr=<subnet>` or `can-reach=<address>`.
    AutodetectionIpv4,
    /// The same for an IPv6 node address.
    AutodetectionIpv6,
}

/// Names matched exactly or by prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Names {
    #[serde(default)]
    pub exact: Vec<String>,
    #[serde(default)]
    pub prefix: Vec<String>,
}

/// A `KEY=value` file the addon writes with the pod range it was given (`/run/flannel/subnet.env`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CidrFile {
    pub path: String,
    pub key: String,
}

/// What the addon leaves on a node: everything reset may remove and preflight calls a leftover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Footprint {
    /// Network devices (pod veths are attributed through the bridge they are enslaved to).
    #[serde(default)]
    pub devices: Names,
    /// iptables chains (legacy and nft, v4 and v6).
    #[serde(default)]
    pub chains: Names,
    /// Rule comments naming the addon (rules in built-in chains).
    #[serde(default)]
    pub rule_comments: Names,
    #[serde(default)]
    pub ipsets: Names,
    #[serde(default)]
    pub nft_tables: Names,
    /// The CNI network name of its config (IPAM and cached results are attributed by it).
    pub cni_network: String,
    /// The CNI config files it installs.
    #[serde(default)]
    pub cni_configs: Vec<String>,
    /// host-local IPAM directories (`/var/lib/cni/networks/<network>`).
    #[serde(default)]
    pub ipam_dirs: Vec<String>,
    /// Directories of its own state, removed with their contents.
    #[serde(default)]
    pub state_dirs: Vec<String>,
    /// Routing protocols of the routes it installs (`ip route ... proto <name>`).
    #[serde(default)]
    pub route_protocols: Vec<String>,
    /// Files that record the pod range (reset reads them to learn the cluster's scope).
    #[serde(default)]
    pub cidr_files: Vec<CidrFile>,
}

impl ImageRef {
    /// `registry/name:tag` at upstream's registry, or under `mirror` when one is configured.
    pub fn reference(&self, mirror: Option<&str>) -> String {
        let registry = mirror.unwrap_or(&self.registry);
        format!(
            "{}/{}:{}",
            registry.trim_end_matches('/'),
            self.name,
            self.tag
        )
    }
}

impl Addon {
    pub fn supports(&self, family: Family) -> bool {
        self.data.families.contains(&family)
    }

    /// The addon's folder in the source tree, for messages.
    pub fn folder(&self) -> String {
        format!("addons/{}/", self.name)
    }
}

fn load(folder: &Folder) -> Result<Addon, String> {
    let (name, text, templates) = *folder;
    let data: AddonData =
        crate::yaml::from_str(text).map_err(|e| format!("addons/{name}/addon.yaml: {e}"))?;
    if data.name != name {
        return Err(format!(
            "addons/{name}/addon.yaml: name {:?} is not the folder's name",
            data.name
        ));
    }
    Ok(Addon {
        name,
        data,
        templates: templates
            .iter()
            .map(|(file, text)| (format!("addons/{name}/{file}"), *text))
            .collect(),
    })
}

static CATALOGUE: LazyLock<Vec<Addon>> = LazyLock::new(|| {
    FOLDERS
        .iter()
        .map(|f| {
            // The data files are compiled in and parsed by this module's tests: a failure here
            // is a broken build, not an input error.
            load(f).unwrap_or_else(|e| panic!("embedded pod-network addon data is broken: {e}"))
        })
        .collect()
});

/// Every pod-network addon, in name order.
pub fn all() -> &'static [Addon] {
    &CATALOGUE
}

/// The addon named `name` (`none` is no addon).
pub fn get(name: &str) -> Option<&'static Addon> {
    all().iter().find(|a| a.name == name)
}

/// The names `--pod-network` accepts: the default, the other addons by name, then `none`.
pub fn choices() -> Vec<&'static str> {
    let mut names = vec![DEFAULT];
    names.extend(all().iter().map(|a| a.name).filter(|n| *n != DEFAULT));
    names.push(NONE);
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_folder_parses_and_names_itself() {
        for folder in FOLDERS {
            let addon = load(folder).unwrap();
            assert!(!addon.templates.is_empty(), "{} has templates", addon.name);
            assert!(!addon.data.families.is_empty());
            assert!(
                addon
                    .data
                    .images
                    .values()
                    .all(|i| !i.tag.is_empty() && i.tag != "latest")
            );
        }
        assert_eq!(choices(), ["flannel", "calico", "weave", "none"]);
        assert!(get(DEFAULT).is_some());
    }

    #[test]
    fn field_locators_are_typed() {
        let flannel = &get("flannel").unwrap().data.fields;
        assert_eq!(
            flannel.mtu,
            [Field {
                kind: ObjectKind::ConfigMap,
                name: "kube-flannel-cfg".into(),
                at: Location::DataJson {
                    key: "cni-conf.json".into(),
                    path: vec![
                        Step::Key("plugins".into()),
                        Step::Element(BTreeMap::from([("type".into(), "flannel".into())])),
                        Step::Key("delegate".into()),
                        Step::Key("mtu".into()),
                    ],
                },
                value: FieldValue::Mtu,
                required: false,
            }]
        );
        assert!(flannel.pod_cidr[0].required);
        let calico = &get("calico").unwrap().data.fields;
        assert_eq!(
            calico.interface[0].at,
            Location::Env {
                container: "calico-node".into(),
                name: "IP_AUTODETECTION_METHOD".into()
            }
        );
        // every addon's fields name its own DaemonSet or a ConfigMap, and carry its IPv4 pod subnet
        for addon in all() {
            for field in addon.data.fields.all() {
                if field.kind == ObjectKind::DaemonSet {
                    assert_eq!(field.name, addon.data.daemonset, "{}", addon.name);
                }
            }
            assert!(
                addon
                    .data
                    .fields
                    .pod_cidr
                    .iter()
                    .any(|f| f.value == FieldValue::Ipv4Cidr)
            );
        }
        // an unknown location or value is a broken data file
        let bad = "{kind: ConfigMap, name: x, at: {annotation: y}, value: mtu}";
        assert!(crate::yaml::from_str::<Field>(bad).is_err());
        let bad = "{kind: ConfigMap, name: x, at: {data: y}, value: colour}";
        assert!(crate::yaml::from_str::<Field>(bad).is_err());
    }

    #[test]
    fn images_go_under_a_mirror() {
        let flannel = get("flannel").unwrap();
        let image = &flannel.data.images["flannel"];
        assert_eq!(image.reference(None), "ghcr.io/flannel-io/flannel:v0.27.4");
        assert_eq!(
            image.reference(Some("mirror.example/k8s/")),
            "mirror.example/k8s/flannel:v0.27.4"
        );
    }
}
