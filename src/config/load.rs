//! Reading a `--config` file: multi-document YAML, strict decoding with the failing field's path named.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::types::{
    API_VERSION, ClusterConfiguration, InitConfiguration, JoinConfiguration,
    KUBE_PROXY_API_VERSION, KUBELET_API_VERSION, ResetConfiguration,
};
use crate::error::{FieldError, InvalidInput};

/// Everything a config file can carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigFile {
    pub init: Option<InitConfiguration>,
    pub cluster: Option<ClusterConfiguration>,
    pub join: Option<JoinConfiguration>,
    pub reset: Option<ResetConfiguration>,
    /// `kubelet.config.k8s.io/v1beta1` KubeletConfiguration, passed through.
    pub kubelet: Option<Value>,
    /// `kubeproxy.config.k8s.io/v1alpha1` KubeProxyConfiguration, passed through.
    pub kube_proxy: Option<Value>,
    /// Documents of kinds this tool does not know (ignored, as kubeadm does, with a warning).
    pub warnings: Vec<String>,
}

/// Reads and decodes a config file. Any problem is `InvalidInput` naming the file and the field.
pub fn read_file(path: &Path) -> Result<ConfigFile, InvalidInput> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        InvalidInput::one(
            "--config",
            path.display(),
            format!("cannot read the file: {e}"),
        )
    })?;
    parse(&text).map_err(|mut e| {
        for err in &mut e.errors {
            err.field = format!("{}: {}", path.display(), err.field);
        }
        e
    })
}

/// Decodes the text of a config file.
pub fn parse(text: &str) -> Result<ConfigFile, InvalidInput> {
    let documents = crate::yaml::documents(text)
        .map_err(|e| InvalidInput::one("--config", "<YAML>", format!("not valid YAML: {e}")))?;
    let mut file = ConfigFile::default();
    let mut errors = Vec::new();
    for (index, doc) in documents.into_iter().enumerate() {
        let Value::Object(map) = &doc else {
            errors.push(FieldError::new(
                format!("document {}", index + 1),
                doc.to_string(),
                "a configuration document must be a mapping with apiVersion and kind",
            ));
            continue;
        };
        let api_version = map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind.is_empty() {
            errors.push(FieldError::new(
                format!("document {}.kind", index + 1),
                "",
                "every document needs a kind",
            ));
            continue;
        }
        let expected_version = match kind.as_str() {
            "InitConfiguration"
            | "ClusterConfiguration"
            | "JoinConfiguration"
            | "ResetConfiguration" => API_VERSION,
            "KubeletConfiguration" => KUBELET_API_VERSION,
            "KubeProxyConfiguration" => KUBE_PROXY_API_VERSION,
            other => {
                file.warnings.push(format!(
                    "document {} has kind {other:?} ({api_version}), which kubestrap does not know; it is ignored",
                    index + 1
                ));
                continue;
            }
        };
        if api_version != expected_version {
            errors.push(FieldError::new(
                format!("{kind}.apiVersion"),
                &api_version,
                format!("only {expected_version} is supported for {kind}"),
            ));
            continue;
        }
        let duplicate = match kind.as_str() {
            "InitConfiguration" => store(&mut file.init, decode(&kind, doc), &mut errors),
            "ClusterConfiguration" => store(&mut file.cluster, decode(&kind, doc), &mut errors),
            "JoinConfiguration" => store(&mut file.join, decode(&kind, doc), &mut errors),
            "ResetConfiguration" => store(&mut file.reset, decode(&kind, doc), &mut errors),
            "KubeletConfiguration" => store(&mut file.kubelet, Ok(doc), &mut errors),
            _ => store(&mut file.kube_proxy, Ok(doc), &mut errors),
        };
        if duplicate {
            errors.push(FieldError::new(
                kind.to_string(),
                format!("document {}", index + 1),
                format!("the file holds more than one {kind}"),
            ));
        }
    }
    InvalidInput::check(errors)?;
    Ok(file)
}

/// Stores a decoded document; returns true when one of that kind was already there.
fn store<T>(
    slot: &mut Option<T>,
    decoded: Result<T, Vec<FieldError>>,
    errors: &mut Vec<FieldError>,
) -> bool {
    match decoded {
        Ok(value) => slot.replace(value).is_some(),
        Err(e) => {
            errors.extend(e);
            false
        }
    }
}

/// Strictly decodes one document, naming the path of every offending field: each unknown field is
/// reported and taken out, and decoding goes on to find the next; a value of the wrong type is
/// reported and taken out too. Each round removes one entry, so the rounds are bounded by the
/// document's size.
pub fn decode<T: DeserializeOwned>(kind: &str, doc: Value) -> Result<T, Vec<FieldError>> {
    let original = doc.clone();
    let mut doc = doc;
    let mut errors = Vec::new();
    let mut removed_names: Vec<String> = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(doc.clone()) {
            Ok(value) if errors.is_empty() => return Ok(value),
            Ok(_) => return Err(errors),
            Err(e) => e,
        };
        let segments: Vec<Segment> = error.path().iter().map(Segment::from).collect();
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        if let Some(name) = missing_field_name(&inner)
            && removed_names.contains(&name)
        {
            // A required field this loop took out for its wrong type: already reported.
            return Err(errors);
        }
        let removed = match unknown_field_name(&inner) {
            Some(name) => {
                let container = match segments.split_last() {
                    Some((Segment::Key(last), rest)) if *last == name => rest,
                    _ => &segments[..],
                };
                let mut field_path = container.to_vec();
                field_path.push(Segment::Key(name.clone()));
                errors.push(FieldError::new(
                    format!("{kind}.{}", render_path(&field_path)),
                    &name,
                    "unknown field (strict decoding)",
                ));
                remove(&mut doc, &field_path)
            }
            None => {
                let field = if segments.is_empty() {
                    kind.to_string()
                } else {
                    format!("{kind}.{path}")
                };
                errors.push(FieldError::new(field, value_at(&original, &path), inner));
                if let Some(Segment::Key(name)) = segments.last() {
                    removed_names.push(name.clone());
                }
                !segments.is_empty() && remove(&mut doc, &segments)
            }
        };
        if !removed {
            return Err(errors);
        }
    }
}

/// One step of a path inside a document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
    Other,
}

impl From<&serde_path_to_error::Segment> for Segment {
    fn from(segment: &serde_path_to_error::Segment) -> Self {
        match segment {
            serde_path_to_error::Segment::Map { key } => Segment::Key(key.clone()),
            serde_path_to_error::Segment::Seq { index } => Segment::Index(*index),
            _ => Segment::Other,
        }
    }
}

/// `networking.podSubnet`, `apiServer.extraArgs[0].name`.
fn render_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Other => out.push_str(".?"),
        }
    }
    out
}

/// Takes the entry at `path` out of the document; false when there is none.
fn remove(doc: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = doc;
    for segment in parents {
        let next = match (segment, current) {
            (Segment::Key(key), Value::Object(map)) => map.get_mut(key),
            (Segment::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(value) => current = value,
            None => return false,
        }
    }
    match (last, current) {
        (Segment::Key(key), Value::Object(map)) => map.remove(key).is_some(),
        (Segment::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// The JSON text of the value at a serde_path_to_error path, for messages.
fn value_at(doc: &Value, path: &str) -> String {
    let mut current = doc;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match segment.find('[') {
            Some(pos) => (&segment[..pos], &segment[pos..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            match current.get(key) {
                Some(v) => current = v,
                None => return String::new(),
            }
        }
        for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            match index.parse::<usize>().ok().and_then(|i| current.get(i)) {
                Some(v) => current = v,
                None => return String::new(),
            }
        }
    }
    match current {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_kinds_and_passes_component_configs_through() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.5\n\
                    ---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16\n\
                    ---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: cgroupfs\n\
                    ---\napiVersion: example.com/v1\nkind: Other\n";
        let file = parse(text).unwrap();
        assert_eq!(
            file.init
                .unwrap()
                .local_api_endpoint
                .advertise_address
                .as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            file.cluster.unwrap().networking.pod_subnet.as_deref(),
            Some("10.244.0.0/16")
        );
        assert_eq!(file.kubelet.unwrap()["cgroupDriver"], "cgroupfs");
        assert_eq!(file.warnings.len(), 1);
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnett: 10.244.0.0/16\n";
        let err = parse(text).unwrap_err();
        assert_eq!(
            err.errors[0].field,
            "ClusterConfiguration.networking.podSubnett"
        );
    }

    #[test]
    fn every_unknown_field_of_every_document_is_reported_at_once() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nbogusA: 1\nnetworking:\n  bogusB: x\n  podSubnet: 10.244.0.0/16\n\
                    apiServer:\n  extraArgs:\n  - name: a\n    value: b\n    bogusC: c\n\
                    ---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: abc\n  bogusD: 1\n";
        let err = parse(text).unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "ClusterConfiguration.apiServer.extraArgs[0].bogusC",
                "ClusterConfiguration.bogusA",
                "ClusterConfiguration.networking.bogusB",
                "InitConfiguration.localAPIEndpoint.bindPort",
                "InitConfiguration.localAPIEndpoint.bogusD",
            ]
        );
    }

    #[test]
    fn wrong_type_names_field_and_value() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: abc\n";
        let err = parse(text).unwrap_err();
        assert_eq!(
            err.errors[0].field,
            "InitConfiguration.localAPIEndpoint.bindPort"
        );
        assert_eq!(err.errors[0].value, "abc");
    }

    #[test]
    fn old_api_version_and_duplicates_are_refused() {
        let old = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n";
        assert_eq!(
            parse(old).unwrap_err().errors[0].field,
            "InitConfiguration.apiVersion"
        );
        let dup = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n";
        assert!(parse(dup).is_err());
    }
}
