//! CNI state on disk: network config files in /etc/cni/net.d, IPAM reservations in
//! /var/lib/cni/networks/<network>, and cached results in /var/lib/cni/{results,cache}. Config files
//! are ours when the journal says kubestrap wrote them or a pod-network addon's footprint names them
//! (with that addon's network); state is ours by CNI network name.

use std::collections::BTreeSet;
use std::path::Path;

use super::attribution::ClusterScope;
use super::inventory::{Addon, Found, Kind, Outcome, Owner};
use super::paths::{NodePath, Root, well_known};
use super::tree::{self, Protection};

/// A network config file and the network it defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    pub path: NodePath,
    pub network: Option<String>,
}

/// One host-local IPAM reservation (`/var/lib/cni/networks/<network>/<ip>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub network: String,
    pub ip: String,
    /// The container ID it was made for (first line of the file).
    pub container: String,
}

/// What the CNI left on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniState {
    pub conf_files: Vec<ConfFile>,
    pub reservations: Vec<Reservation>,
    /// Network directories under /var/lib/cni/networks.
    pub ipam_networks: Vec<String>,
    /// Files under /var/lib/cni/results and /var/lib/cni/cache (node paths).
    pub cached: Vec<NodePath>,
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The `name` of a .conf/.conflist/.json network config.
pub fn network_name(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("name")?.as_str().map(str::to_string)
}

/// Scans the CNI config dir and state dir under `root`.
pub fn scan(root: &Root) -> CniState {
    let mut state = CniState::default();
    let conf_dir = NodePath::new(well_known::CNI_CONF_DIR);
    for name in list(&root.disk(&conf_dir)) {
        let path = conf_dir.join(&name);
        let network = if [".conf", ".conflist", ".json"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            std::fs::read_to_string(root.disk(&path))
                .ok()
                .and_then(|t| network_name(&t))
        } else {
            None
        };
        state.conf_files.push(ConfFile { path, network });
    }
    let networks_dir = NodePath::new(well_known::CNI_STATE_DIR).join("networks");
    for network in list(&root.disk(&networks_dir)) {
        let dir = networks_dir.join(&network);
        for file in list(&root.disk(&dir)) {
            if file.parse::<std::net::IpAddr>().is_err() {
                continue; // lock, last_reserved_ip.N
            }
            let container = std::fs::read_to_string(root.disk(&dir.join(&file)))
                .ok()
                .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
                .unwrap_or_default();
            state.reservations.push(Reservation {
                network: network.clone(),
                ip: file,
                container,
            });
        }
        state.ipam_networks.push(network);
    }
    for sub in ["results", "cache"] {
        let dir = NodePath::new(well_known::CNI_STATE_DIR).join(sub);
        collect_files(root, &dir, &mut state.cached);
    }
    state
}

fn collect_files(root: &Root, dir: &NodePath, out: &mut Vec<NodePath>) {
    for name in list(&root.disk(dir)) {
        let path = dir.join(&name);
        match std::fs::symlink_metadata(root.disk(&path)) {
            Ok(m) if m.is_dir() => collect_files(root, &path, out),
            Ok(_) => out.push(path),
            Err(_) => {}
        }
    }
}

/// A config file is ours only if kubestrap wrote it (`journal_files`); foreign files are listed and kept.
pub fn attribute_conf(root: &Root, conf: &ConfFile, journal_files: &BTreeSet<NodePath>) -> Found {
    let owner = if journal_files.contains(&conf.path) {
        Owner::Kubestrap
    } else if let Some(addon) = footprint_conf_owner(conf) {
        addon
    } else {
        Owner::Foreign("not installed by kubestrap")
    };
    Found::new(
        Kind::Path,
        root.disk(&conf.path).display().to_string(),
        owner,
    )
}

/// The pod-network addon whose footprint lists the config file (`cni-configs`), when the file defines
/// that addon's CNI network (or no network: calico's kubeconfig beside its conflist).
fn footprint_conf_owner(conf: &ConfFile) -> Option<Owner> {
    crate::podnet::all()
        .iter()
        .find(|a| {
            let footprint = &a.data.footprint;
            footprint
                .cni_configs
                .iter()
                .any(|c| NodePath::new(c) == conf.path)
                && conf
                    .network
                    .as_ref()
                    .is_none_or(|n| *n == footprint.cni_network)
        })
        .map(|a| Owner::Addon(Addon(a.name)))
}

pub fn attribute_reservation(r: &Reservation, scope: &ClusterScope) -> Found {
    Found::new(
        Kind::IpamReservation,
        format!("{}/{}", r.network, r.ip),
        scope.cni_network_owner(&r.network),
    )
}

/// containerd's loopback network, set up in every pod sandbox: its cached results name only the
/// sandbox, so they are attributed by the sandbox id.
pub const LOOPBACK_NETWORK: &str = "cni-loopback";

/// The container id in a cached result's name (`<network>-<container>-<ifname>`).
fn cached_container<'a>(name: &'a str, network: &str) -> Option<&'a str> {
    let rest = name.strip_prefix(network)?.strip_prefix('-')?;
    rest.rsplit_once('-')
        .map(|(id, _)| id)
        .filter(|id| !id.is_empty())
}

/// The longest network name that prefixes a cached result's name, of `networks`.
fn cached_network<'a>(
    name: &str,
    networks: impl Iterator<Item = &'a String>,
) -> Option<&'a String> {
    networks
        .filter(|n| name.starts_with(&format!("{n}-")))
        .max_by_key(|n| n.len())
}

/// The pod sandboxes of this cluster, as its own networks saw them: the container ids of their IPAM
/// reservations and of their cached results.
pub fn cluster_sandboxes(
    state: &CniState,
    scope: &ClusterScope,
    known: &BTreeSet<String>,
) -> BTreeSet<String> {
    let ours = |network: &str| scope.cni_network_owner(network).is_cluster();
    let mut ids: BTreeSet<String> = state
        .reservations
        .iter()
        .filter(|r| ours(&r.network) && !r.container.is_empty())
        .map(|r| r.container.clone())
        .collect();
    for path in &state.cached {
        let name = path.file_name().unwrap_or_default();
        if let Some(network) = cached_network(name, scope.cni_networks.iter().chain(known.iter()))
            && ours(network)
            && let Some(id) = cached_container(name, network)
        {
            ids.insert(id.to_string());
        }
    }
    ids
}

/// A cached result is named `<network>-<container>-<ifname>`; it belongs to the longest network name
/// that prefixes it, known from the scope or the config files. A result of containerd's loopback
/// network is the cluster's when its sandbox is one of `sandboxes` ([`cluster_sandboxes`]).
pub fn attribute_cached(
    root: &Root,
    path: &NodePath,
    scope: &ClusterScope,
    known: &BTreeSet<String>,
    sandboxes: &BTreeSet<String>,
) -> Found {
    let name = path.file_name().unwrap_or_default();
    let owner = if let Some(id) = cached_container(name, LOOPBACK_NETWORK) {
        if sandboxes.contains(id) {
            Owner::Kubernetes
        } else {
            Owner::Foreign("a sandbox of another container runtime user")
        }
    } else {
        cached_network(name, scope.cni_networks.iter().chain(known.iter()))
            .map(|n| scope.cni_network_owner(n))
            .unwrap_or(Owner::Foreign("another CNI user"))
    };
    Found::new(Kind::Path, root.disk(path).display().to_string(), owner)
}

/// Removes one file (a config file or a cached result).
pub fn remove_file(found: &Found) -> Outcome {
    if !found.owner.is_cluster() {
        return found.kept_foreign();
    }
    match std::fs::remove_file(&found.target) {
        Ok(()) => found.removed(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => found.removed(),
        Err(e) => found.left(format!("removing: {e}"), false),
    }
}

/// Releases an IPAM network of ours: its reservations (reported one by one) and its directory.
pub fn remove_ipam_network(
    root: &Root,
    network: &str,
    reservations: &[(Reservation, Found)],
) -> Vec<Outcome> {
    let dir = NodePath::new(well_known::CNI_STATE_DIR)
        .join("networks")
        .join(network);
    let outcomes = tree::remove_tree(
        &root.disk(&dir),
        false,
        Owner::Kubernetes,
        &Protection::default(),
    );
    let gone = !root.disk(&dir).exists();
    reservations
        .iter()
        .filter(|(r, _)| r.network == network)
        .map(|(_, found)| {
            if gone {
                found.removed()
            } else {
                found.left("its network directory could not be removed", false)
            }
        })
        .chain(
            outcomes
                .into_iter()
                .filter(|o| !matches!(o, Outcome::Removed(_))),
        )
        .collect()
}

/// The pod-network addons' own state directories (`state-dirs` in `addons/<name>/addon.yaml`:
/// flannel's `/run/flannel` and its plugin's cache `/var/lib/cni/flannel`, calico's `/var/lib/calico`, …).
pub fn addon_state_dirs() -> Vec<(NodePath, Owner)> {
    crate::podnet::all()
        .iter()
        .flat_map(|a| {
            a.data
                .footprint
                .state_dirs
                .iter()
                .map(|d| (NodePath::new(d), Owner::Addon(Addon(a.name))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Root, path: &str, text: &str) {
        let disk = root.disk(&NodePath::new(path));
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        std::fs::write(disk, text).unwrap();
    }

    #[test]
    fn scans_and_attributes_by_journal_and_network_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        write(
            &root,
            "/etc/cni/net.d/10-flannel.conflist",
            r#"{"name":"cbr0","plugins":[]}"#,
        );
        write(
            &root,
            "/etc/cni/net.d/87-podman.conflist",
            r#"{"name":"podman","plugins":[]}"#,
        );
        write(
            &root,
            "/var/lib/cni/networks/cbr0/10.244.0.2",
            "ctr-aaaa\r\neth0",
        );
        write(
            &root,
            "/var/lib/cni/networks/cbr0/last_reserved_ip.0",
            "10.244.0.2",
        );
        write(
            &root,
            "/var/lib/cni/networks/podman/10.88.0.2",
            "pod\r\neth0",
        );
        write(&root, "/var/lib/cni/results/cbr0-ctr-aaaa-eth0", "{}");
        write(&root, "/var/lib/cni/results/podman-xyz-eth0", "{}");
        write(&root, "/var/lib/cni/results/k8s-pod-network-abc-eth0", "{}");
        write(&root, "/var/lib/cni/results/cni-loopback-ctr-aaaa-lo", "{}");
        write(&root, "/var/lib/cni/results/cni-loopback-xyz-lo", "{}");
        let state = scan(&root);
        assert_eq!(state.conf_files.len(), 2);
        assert_eq!(state.conf_files[0].network.as_deref(), Some("cbr0"));
        assert_eq!(state.reservations.len(), 2);
        assert_eq!(state.reservations[0].container, "ctr-aaaa");
        assert_eq!(state.ipam_networks, vec!["cbr0", "podman"]);
        assert_eq!(state.cached.len(), 5);

        let journal: BTreeSet<NodePath> =
            [NodePath::new("/etc/cni/net.d/10-flannel.conflist")].into();
        assert_eq!(
            attribute_conf(&root, &state.conf_files[0], &journal).owner,
            Owner::Kubestrap
        );
        assert!(
            !attribute_conf(&root, &state.conf_files[1], &journal)
                .owner
                .is_cluster()
        );
        // Not journaled: flannel's footprint names the file and it defines flannel's network.
        assert_eq!(
            attribute_conf(&root, &state.conf_files[0], &BTreeSet::new()).owner,
            Owner::Addon(Addon("flannel"))
        );
        let renamed = ConfFile {
            network: Some("mynet".into()),
            ..state.conf_files[0].clone()
        };
        assert!(
            !attribute_conf(&root, &renamed, &BTreeSet::new())
                .owner
                .is_cluster()
        );

        let scope = ClusterScope::with_addon_networks();
        let found = attribute_reservation(&state.reservations[0], &scope);
        assert_eq!(found.target, "cbr0/10.244.0.2");
        assert!(found.owner.is_cluster());
        assert!(
            !attribute_reservation(&state.reservations[1], &scope)
                .owner
                .is_cluster()
        );
        let known: BTreeSet<String> = ["podman".to_string()].into();
        let sandboxes = cluster_sandboxes(&state, &scope, &known);
        assert_eq!(
            sandboxes,
            ["abc".to_string(), "ctr-aaaa".to_string()].into(),
            "by our reservations and our results, not podman's"
        );
        let owners: Vec<(String, bool)> = state
            .cached
            .iter()
            .map(|p| {
                let found = attribute_cached(&root, p, &scope, &known, &sandboxes);
                (p.file_name().unwrap().to_string(), found.owner.is_cluster())
            })
            .collect();
        assert_eq!(
            owners,
            vec![
                ("cbr0-ctr-aaaa-eth0".to_string(), true),
                ("cni-loopback-ctr-aaaa-lo".to_string(), true),
                ("cni-loopback-xyz-lo".to_string(), false),
                ("k8s-pod-network-abc-eth0".to_string(), true),
                ("podman-xyz-eth0".to_string(), false),
            ]
        );

        let pairs: Vec<_> = state
            .reservations
            .iter()
            .map(|r| (r.clone(), attribute_reservation(r, &scope)))
            .collect();
        let outcomes = remove_ipam_network(&root, "cbr0", &pairs);
        assert_eq!(outcomes.len(), 1);
        assert!(matches!(outcomes[0], Outcome::Removed(_)));
        assert!(
            !root
                .disk(&NodePath::new("/var/lib/cni/networks/cbr0"))
                .exists()
        );
        assert!(
            root.disk(&NodePath::new("/var/lib/cni/networks/podman/10.88.0.2"))
                .exists()
        );
    }
}
