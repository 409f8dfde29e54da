//! What the Docker engine says about a cluster's containers and networks: `docker inspect`, typed,
//! for finding a cluster again from its labels and for checking what teardown must remove.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::docker::docker;

/// The parts of `docker container inspect` the testbed reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInfo {
    pub id: String,
    /// `/<name>`, as the engine reports it; see [`ContainerInfo::name`].
    #[serde(rename = "Name")]
    raw_name: String,
    pub state: ContainerState,
    pub config: ContainerConfig,
    pub network_settings: NetworkSettings,
    #[serde(default)]
    pub graph_driver: GraphDriver,
    #[serde(default)]
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// created, running, paused, restarting, removing, exited or dead.
    pub status: String,
    #[serde(default)]
    pub pid: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    #[serde(default)]
    pub sandbox_key: String,
    #[serde(default)]
    pub networks: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    #[serde(default)]
    pub data: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

impl ContainerInfo {
    pub fn name(&self) -> &str {
        self.raw_name.trim_start_matches('/')
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.config
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .map(String::as_str)
    }

    /// Whether the container is attached to `network` (a partitioned node is not).
    pub fn connected_to(&self, network: &str) -> bool {
        self.network_settings
            .networks
            .as_ref()
            .is_some_and(|n| n.contains_key(network))
    }

    /// Host paths that must be gone once the container is removed: its network namespace and
    /// its root filesystem mount (`volume:<name>` for its volumes).
    pub fn footprint(&self) -> Vec<String> {
        let mut paths = Vec::new();
        if !self.network_settings.sandbox_key.is_empty() {
            paths.push(self.network_settings.sandbox_key.clone());
        }
        if let Some(merged) = self
            .graph_driver
            .data
            .as_ref()
            .and_then(|d| d.get("MergedDir"))
        {
            paths.push(merged.clone());
        }
        for mount in &self.mounts {
            if mount.kind == "volume" && !mount.name.is_empty() {
                paths.push(format!("volume:{}", mount.name));
            }
        }
        paths
    }
}

/// Parses `docker container inspect` output (a JSON array).
pub fn parse_containers(json: &str) -> Result<Vec<ContainerInfo>> {
    serde_json::from_str(json).context("parse `docker container inspect` output")
}

/// `docker <kind> inspect` of every object of `kind` (container, network) that `filter` selects:
/// a JSON array, or None when there is none.
fn inspect_selected(kind: &str, filter: &str) -> Result<Option<String>> {
    let list: &[&str] = match kind {
        "container" => &["ps", "-a"],
        _ => &[kind, "ls"],
    };
    let mut args = list.to_vec();
    args.extend(["-q", "--no-trunc", "--filter", filter]);
    let ids = docker(&args, None)?
        .check(&format!("list the testbed's {kind}s"))?
        .stdout;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(None);
    }
    let mut args = vec![kind, "inspect"];
    args.extend(&ids);
    let out = docker(&args, None)?;
    // One removed between the listing and the inspection is simply not there any more.
    let out = if out.stderr.contains(&format!("No such {kind}")) {
        out
    } else {
        out.check(&format!("inspect the testbed's {kind}s"))?
    };
    Ok(Some(out.stdout).filter(|s| !s.trim().is_empty()))
}

/// Every container (running or not) that `filter` (`label=…`) selects.
pub fn containers(filter: &str) -> Result<Vec<ContainerInfo>> {
    match inspect_selected("container", filter)? {
        Some(json) => parse_containers(&json),
        None => Ok(Vec::new()),
    }
}

/// A network `filter` selects: its name, subnet and labels.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInfo {
    pub name: String,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    #[serde(default)]
    pub config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    #[serde(default)]
    pub subnet: String,
}

impl NetworkInfo {
    pub fn subnet(&self) -> Option<&str> {
        self.ipam
            .config
            .as_ref()
            .and_then(|c| c.first())
            .map(|c| c.subnet.as_str())
            .filter(|s| !s.is_empty())
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .as_ref()
            .and_then(|l| l.get(key))
            .map(String::as_str)
    }
}

/// Every network `filter` (`label=…`) selects.
pub fn networks(filter: &str) -> Result<Vec<NetworkInfo>> {
    match inspect_selected("network", filter)? {
        Some(json) => serde_json::from_str(&json).context("parse `docker network inspect` output"),
        None => Ok(Vec::new()),
    }
}

/// Names of the volumes `filter` selects.
pub fn volumes(filter: &str) -> Result<Vec<String>> {
    Ok(docker(&["volume", "ls", "-q", "--filter", filter], None)?
        .check("list the testbed's volumes")?
        .stdout
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a Docker 20.10 `docker container inspect` of a partitioned, running node.
    const INSPECT: &str = r#"[{
        "Id": "7f3c",
        "Name": "/kubestrap-testbed-cli-demo-node2",
        "State": {"Status": "running", "Running": true, "Paused": false, "Pid": 4242},
        "Config": {"Image": "kubestrap-testbed-node:287f6498940b",
                   "Labels": {"io.kubestrap.testbed.cli": "demo", "io.kubestrap.testbed.node": "node2",
                              "io.kubestrap.testbed.ip": "10.214.7.12"}},
        "NetworkSettings": {"SandboxKey": "/var/run/docker/netns/0a1b", "Networks": {}},
        "GraphDriver": {"Data": {"MergedDir": "/var/lib/docker/overlay2/abc/merged"}, "Name": "overlay2"},
        "Mounts": [{"Type": "bind", "Source": "/usr"},
                   {"Type": "volume", "Name": "d8ab", "Destination": "/var/lib/testbed-usr"}]
    }]"#;

    #[test]
    fn a_nodes_labels_state_partition_and_footprint_are_read_from_inspect() {
        let info = &parse_containers(INSPECT).unwrap()[0];
        assert_eq!(info.name(), "kubestrap-testbed-cli-demo-node2");
        assert_eq!(info.label("io.kubestrap.testbed.ip"), Some("10.214.7.12"));
        assert_eq!(info.label("io.kubestrap.testbed"), None);
        assert_eq!(info.state.status, "running");
        assert!(!info.connected_to("kubestrap-testbed-cli-demo"));
        assert_eq!(
            info.footprint(),
            [
                "/var/run/docker/netns/0a1b",
                "/var/lib/docker/overlay2/abc/merged",
                "volume:d8ab"
            ]
        );
    }

    #[test]
    fn a_networks_subnet_is_its_first_ipam_config() {
        let nets: Vec<NetworkInfo> = serde_json::from_str(
            r#"[{"Name": "n", "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.214.7.0/24"}]},
                 "Labels": {"io.kubestrap.testbed.cli": "demo"}}]"#,
        )
        .unwrap();
        assert_eq!(nets[0].subnet(), Some("10.214.7.0/24"));
        assert_eq!(nets[0].label("io.kubestrap.testbed.cli"), Some("demo"));
    }
}
