//! The node record: the model a node was set up with, kept at `<root>/var/lib/kubestrap/cluster.yaml`
//! as a versioned document (`apiVersion: kubestrap.io/v1alpha1`, `kind: NodeRecord`).
//!
//! Init writes it (through the host, so it is journaled and a failed run takes it back); reset, `certs
//! renew` and `certs check-expiration` read it, and `config view` prints it. Versioning rule: every change
//! to the fields makes a new version; this reader reads its own version and every older one (converting
//! it; a field added later takes the value that reproduces the older version's behaviour) and refuses a
//! newer version or an unknown field, naming the file and the field.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Model;
use super::cluster::ClusterSpec;
use super::node::NodeSpec;
use crate::host::{Host, NodePath, well_known};

pub const API_VERSION: &str = "kubestrap.io/v1alpha1";
pub const KIND: &str = "NodeRecord";
/// The versions this reader knows, oldest first (the last is the one it writes).
pub const KNOWN_VERSIONS: [&str; 1] = [API_VERSION];
/// The record holds no secret, but says much about the node: readable by root only.
pub const RECORD_MODE: u32 = 0o600;

/// Where the record lives on the node.
pub fn path() -> NodePath {
    NodePath::new(well_known::STATE_DIR).join("cluster.yaml")
}

/// The document on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRecord {
    pub api_version: String,
    pub kind: String,
    /// The command that wrote it (`init`, `init phase certs`).
    pub recorded_by: String,
    /// RFC 3339, UTC.
    pub recorded_at: String,
    /// The kubestrap release that wrote it.
    pub kubestrap_version: String,
    pub cluster: ClusterSpec,
    pub node: NodeSpec,
}

impl NodeRecord {
    pub fn new(model: &Model, recorded_by: &str) -> Self {
        NodeRecord {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            recorded_by: recorded_by.to_string(),
            recorded_at: crate::host::journal::now_rfc3339(),
            kubestrap_version: env!("CARGO_PKG_VERSION").to_string(),
            cluster: model.cluster.clone(),
            node: model.node.clone(),
        }
    }

    pub fn model(&self) -> Model {
        Model {
            cluster: self.cluster.clone(),
            node: self.node.clone(),
        }
    }

    /// Decodes a record of any known version into the current form.
    pub fn parse(text: &str) -> anyhow::Result<NodeRecord> {
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
            bail!("kind {kind:?} is not a {KIND}");
        }
        match api_version {
            API_VERSION => serde_path_to_error::deserialize(value)
                .map_err(|e| anyhow::anyhow!("field {}: {}", e.path(), e.inner())),
            other => bail!(
                "apiVersion {other:?} is not one this kubestrap reads ({}); it was written by a newer kubestrap: use that one",
                KNOWN_VERSIONS.join(", ")
            ),
        }
    }

    pub fn to_yaml(&self) -> anyhow::Result<String> {
        crate::yaml::to_string(self)
    }
}

/// Writes the record of `model` (journaled; in a dry run, planned).
pub fn write(host: &Host, model: &Model, recorded_by: &str) -> anyhow::Result<()> {
    let text = NodeRecord::new(model, recorded_by).to_yaml()?;
    host.write_file(&path(), text.as_bytes(), RECORD_MODE)
        .context("recording the cluster model in the node record")
}

/// Reads the record; `None` when the node has none (set up by kubeadm, by hand, or never).
pub fn read(host: &Host) -> anyhow::Result<Option<NodeRecord>> {
    let path = path();
    let Some(bytes) = host.read_optional(&path)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).with_context(|| format!("{path} is not UTF-8 text"))?;
    NodeRecord::parse(&text)
        .map(Some)
        .with_context(|| format!("reading the node record {}", host.disk(&path).display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        crate::model::testing::control_plane_model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n  serviceSubnet: 10.96.0.0/12,fd00:10:96::/112\n",
        )
    }

    #[test]
    fn a_record_round_trips_through_yaml() {
        let record = NodeRecord::new(&model(), "init");
        let text = record.to_yaml().unwrap();
        assert!(
            text.contains("apiVersion: kubestrap.io/v1alpha1\n"),
            "{text}"
        );
        assert!(text.contains("- 10.244.0.0/16\n"), "{text}");
        assert_eq!(NodeRecord::parse(&text).unwrap(), record);
        assert_eq!(record.model(), model());
    }

    #[test]
    fn newer_versions_and_unknown_fields_are_refused_by_name() {
        let text = NodeRecord::new(&model(), "init").to_yaml().unwrap();
        let newer = text.replace("kubestrap.io/v1alpha1", "kubestrap.io/v1beta9");
        let err = NodeRecord::parse(&newer).unwrap_err().to_string();
        assert!(err.contains("kubestrap.io/v1beta9"), "{err}");
        let unknown = text.replace("\nnode:\n", "\nnode:\n  colour: blue\n");
        let err = format!("{:#}", NodeRecord::parse(&unknown).unwrap_err());
        assert!(err.contains("node") && err.contains("colour"), "{err}");
        let spaced = text.replace("- 10.244.0.0/16\n", "- 10.244.0.1/16\n");
        assert!(NodeRecord::parse(&spaced).is_err());
    }
}
