//! The `kube-system/kubestrap-config` ConfigMap: the cluster-wide choices kubeadm's ClusterConfiguration
//! cannot hold (the pod network, the discovery port), so that a joining node resolves the same
//! [`ClusterSpec`] as init did. Init's upload-config phase writes it; join reads it with kubeadm-config.
//!
//! Its data key `ClusterSettings` holds one YAML document (`apiVersion: kubestrap.io/v1alpha1`, `kind:
//! ClusterSettings`), versioned by the same rule as the node record: a reader reads its own and older
//! versions and refuses a newer version or an unknown field.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cluster::{ClusterSpec, DiscoverySpec, PodNetworkSpec};
use super::resolve::ClusterChoices;

pub const NAME: &str = "kubestrap-config";
pub const NAMESPACE: &str = "kube-system";
pub const DATA_KEY: &str = "ClusterSettings";
pub const API_VERSION: &str = "kubestrap.io/v1alpha1";
pub const KIND: &str = "ClusterSettings";

/// The document under [`DATA_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSettings {
    pub api_version: String,
    pub kind: String,
    pub pod_network: PodNetworkSpec,
    pub discovery: DiscoverySpec,
}

impl ClusterSettings {
    pub fn of(cluster: &ClusterSpec) -> Self {
        ClusterSettings {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            pod_network: cluster.pod_network,
            discovery: cluster.discovery,
        }
    }

    /// The choices to resolve a [`ClusterSpec`] with (together with kubeadm-config's ClusterConfiguration).
    pub fn choices(&self) -> ClusterChoices {
        ClusterChoices {
            pod_network: self.pod_network.addon,
            discovery_port: self.discovery.port,
        }
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let value: Value = crate::yaml::from_str(text).context("not valid YAML")?;
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind != KIND {
            bail!("kind {kind:?} is not {KIND}");
        }
        match api_version {
            API_VERSION => serde_path_to_error::deserialize(value)
                .map_err(|e| anyhow::anyhow!("field {}: {}", e.path(), e.inner())),
            other => bail!(
                "apiVersion {other:?} is not one this kubestrap reads ({API_VERSION}); the cluster was set up by a newer kubestrap: use that one"
            ),
        }
    }
}

/// The ConfigMap of `cluster`'s choices.
pub fn config_map(cluster: &ClusterSpec) -> anyhow::Result<ConfigMap> {
    let text = crate::yaml::to_string(&ClusterSettings::of(cluster))?;
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_string(), text)])),
        ..Default::default()
    })
}

/// The settings a `kubestrap-config` ConfigMap holds.
pub fn read_config_map(map: &ConfigMap) -> anyhow::Result<ClusterSettings> {
    let text = map
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .with_context(|| format!("the ConfigMap {NAMESPACE}/{NAME} has no {DATA_KEY} key"))?;
    ClusterSettings::parse(text)
        .with_context(|| format!("the {DATA_KEY} of the ConfigMap {NAMESPACE}/{NAME}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flags::PodNetwork;

    #[test]
    fn the_config_map_round_trips_the_choices() {
        let mut cluster = crate::model::testing::control_plane_model("").cluster;
        cluster.pod_network.addon = PodNetwork::named("calico").unwrap();
        cluster.discovery.port = 9999;
        let map = config_map(&cluster).unwrap();
        assert_eq!(map.metadata.name.as_deref(), Some("kubestrap-config"));
        assert_eq!(map.metadata.namespace.as_deref(), Some("kube-system"));
        let text = &map.data.as_ref().unwrap()[DATA_KEY];
        assert_eq!(
            text,
            "apiVersion: kubestrap.io/v1alpha1\ndiscovery:\n  port: 9999\nkind: ClusterSettings\npodNetwork:\n  addon: calico\n"
        );
        let settings = read_config_map(&map).unwrap();
        assert_eq!(
            settings.choices(),
            ClusterChoices {
                pod_network: PodNetwork::named("calico").unwrap(),
                discovery_port: 9999
            }
        );
        let newer = text.replace("v1alpha1", "v2");
        assert!(ClusterSettings::parse(&newer).is_err());
    }
}
