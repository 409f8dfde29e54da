//! Command-line clusters found again from their Docker labels: which exist on the engine (also the
//! remains of an interrupted `up`), and a `Cluster` value for one of them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use super::cluster::{Cluster, Node};
use super::identity::{CLI_LABEL, IMAGE_LABEL, IP_LABEL, NODE_LABEL, Owner, STATE_LABEL};
use super::inspect::{self, ContainerInfo, NetworkInfo};

/// Everything on the engine that carries one command-line cluster's label.
#[derive(Debug, Clone)]
pub struct Persisted {
    pub name: String,
    /// The state directory recorded in the labels (None when nothing says).
    pub state_root: Option<PathBuf>,
    pub network: Option<NetworkInfo>,
    /// The node containers, in the order they were made (by address).
    pub containers: Vec<ContainerInfo>,
    pub volumes: Vec<String>,
}

impl Persisted {
    /// The node image the cluster was made from (its first node's label).
    pub fn image(&self) -> Option<&str> {
        self.containers.iter().find_map(|c| c.label(IMAGE_LABEL))
    }

    pub fn network_name(&self) -> String {
        self.network
            .as_ref()
            .map(|n| n.name.clone())
            .unwrap_or_else(|| self.owner().network_name())
    }

    pub fn owner(&self) -> Owner {
        Owner::Cli {
            name: self.name.clone(),
            state_root: self.state_root.clone().unwrap_or_default(),
        }
    }

    /// The nodes' container: the node name, its address and the container itself.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &str, &ContainerInfo)> {
        self.containers
            .iter()
            .filter_map(|c| Some((c.label(NODE_LABEL)?, c.label(IP_LABEL).unwrap_or(""), c)))
    }

    /// A `Cluster` value for these nodes: driving them, or tearing everything down.
    pub fn attach(&self) -> Cluster {
        let network = self.network_name();
        let nodes = self
            .nodes()
            .map(|(name, ip, container)| Node {
                name: name.to_string(),
                container: container.name().to_string(),
                ip: ip.to_string(),
                network: network.clone(),
            })
            .collect();
        Cluster::assemble(
            self.owner(),
            network,
            self.network
                .as_ref()
                .and_then(|n| n.subnet())
                .unwrap_or_default()
                .to_string(),
            self.image().unwrap_or_default().to_string(),
            nodes,
        )
    }
}

/// Orders nodes as they were made: by the last part of their address (`.11`, `.12`, …).
fn address_order(c: &ContainerInfo) -> (u32, String) {
    let host = c
        .label(IP_LABEL)
        .and_then(|ip| ip.rsplit('.').next())
        .and_then(|h| h.parse().ok())
        .unwrap_or(u32::MAX);
    (host, c.name().to_string())
}

/// Docker objects that carry labels.
trait Labelled {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labelled for ContainerInfo {
    fn label(&self, key: &str) -> Option<&str> {
        ContainerInfo::label(self, key)
    }
}

impl Labelled for NetworkInfo {
    fn label(&self, key: &str) -> Option<&str> {
        NetworkInfo::label(self, key)
    }
}

/// The cluster an object belongs to by its labels (made on first sight), or None when it has no
/// command-line cluster's label.
fn slot<'a>(
    clusters: &'a mut BTreeMap<String, Persisted>,
    object: &impl Labelled,
) -> Option<&'a mut Persisted> {
    let name = object.label(CLI_LABEL)?;
    let cluster = clusters
        .entry(name.to_string())
        .or_insert_with(|| Persisted {
            name: name.to_string(),
            state_root: None,
            network: None,
            containers: Vec::new(),
            volumes: Vec::new(),
        });
    if cluster.state_root.is_none() {
        cluster.state_root = object.label(STATE_LABEL).map(PathBuf::from);
    }
    Some(cluster)
}

/// A volume's name and labels, as `docker volume ls` lists them.
struct VolumeLabels {
    name: String,
    cluster: String,
}

impl Labelled for VolumeLabels {
    fn label(&self, key: &str) -> Option<&str> {
        (key == CLI_LABEL).then_some(self.cluster.as_str())
    }
}

/// Groups containers, networks and volumes by cluster name.
fn group(
    containers: Vec<ContainerInfo>,
    networks: Vec<NetworkInfo>,
    volumes: Vec<(String, String)>,
) -> Vec<Persisted> {
    let mut clusters: BTreeMap<String, Persisted> = BTreeMap::new();
    for network in networks {
        if let Some(cluster) = slot(&mut clusters, &network) {
            cluster.network = Some(network);
        }
    }
    for container in containers {
        if let Some(cluster) = slot(&mut clusters, &container) {
            cluster.containers.push(container);
        }
    }
    for (name, cluster) in volumes {
        let volume = VolumeLabels { name, cluster };
        if let Some(cluster) = slot(&mut clusters, &volume) {
            cluster.volumes.push(volume.name);
        }
    }
    let mut found: Vec<Persisted> = clusters.into_values().collect();
    for cluster in &mut found {
        cluster.containers.sort_by_key(address_order);
    }
    found
}

/// Every command-line cluster on the engine, whatever is left of it, by name.
pub fn list() -> Result<Vec<Persisted>> {
    list_filtered(&format!("label={CLI_LABEL}"))
}

/// The command-line cluster called `name`, if anything of it exists.
pub fn find(name: &str) -> Result<Option<Persisted>> {
    Ok(list_filtered(&format!("label={CLI_LABEL}={name}"))?
        .into_iter()
        .find(|p| p.name == name))
}

fn list_filtered(filter: &str) -> Result<Vec<Persisted>> {
    let containers = inspect::containers(filter)?;
    let networks = inspect::networks(filter)?;
    let volumes = super::docker::docker(
        &[
            "volume",
            "ls",
            "--filter",
            filter,
            "--format",
            &format!("{{{{.Name}}}}\t{{{{.Label \"{CLI_LABEL}\"}}}}"),
        ],
        None,
    )?
    .check("list the testbed's volumes")?
    .stdout
    .lines()
    .filter_map(|l| l.split_once('\t'))
    .map(|(v, n)| (v.to_string(), n.to_string()))
    .collect();
    Ok(group(containers, networks, volumes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(cluster: &str, node: &str, ip: &str) -> ContainerInfo {
        let json = serde_json::json!([{
            "Id": format!("id-{node}"),
            "Name": format!("/kubestrap-testbed-cli-{cluster}-{node}"),
            "State": {"Status": "running", "Pid": 1},
            "Config": {"Labels": {
                CLI_LABEL: cluster, STATE_LABEL: "/state", NODE_LABEL: node, IP_LABEL: ip,
                IMAGE_LABEL: "kubestrap-testbed-node:0123"}},
            "NetworkSettings": {"SandboxKey": "", "Networks": {}},
        }]);
        inspect::parse_containers(&json.to_string())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn objects_are_grouped_by_cluster_and_nodes_ordered_by_address() {
        let network: NetworkInfo = serde_json::from_value(serde_json::json!({
            "Name": "kubestrap-testbed-cli-a", "IPAM": {"Config": [{"Subnet": "10.214.3.0/24"}]},
            "Labels": {CLI_LABEL: "a", STATE_LABEL: "/state"}}))
        .unwrap();
        let found = group(
            vec![
                container("a", "node10", "10.214.3.20"),
                container("b", "node1", "10.214.9.11"),
                container("a", "node2", "10.214.3.12"),
                container("a", "node1", "10.214.3.11"),
            ],
            vec![network],
            vec![("vol-a".into(), "a".into()), ("vol-c".into(), "c".into())],
        );
        let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let a = &found[0];
        let nodes: Vec<&str> = a.nodes().map(|(n, _, _)| n).collect();
        assert_eq!(nodes, ["node1", "node2", "node10"]);
        assert_eq!(
            a.state_root.as_deref(),
            Some(std::path::Path::new("/state"))
        );
        assert_eq!(a.image(), Some("kubestrap-testbed-node:0123"));
        let cluster = a.attach();
        assert_eq!(cluster.subnet, "10.214.3.0/24");
        assert_eq!(cluster.network, "kubestrap-testbed-cli-a");
        assert_eq!(cluster.nodes[2].ip, "10.214.3.20");
        // Only a volume is left of c (an interrupted up): it is still found, so down can remove it.
        assert!(found[2].containers.is_empty() && found[2].network.is_none());
        assert_eq!(found[2].network_name(), "kubestrap-testbed-cli-c");
        assert_eq!(found[2].volumes, ["vol-c"]);
    }
}
