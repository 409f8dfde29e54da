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
    decoded: Result<T, FieldError>,
    errors: &mut Vec<FieldError>,
) -> bool {
    match decoded {
        Ok(value) => slot.replace(value).is_some(),
        Err(e) => {
            errors.push(e);
            false
        }
    }
}

/// Strictly decodes one document, naming the path of the first offending field.
pub fn decode<T: DeserializeOwned>(kind: &str, doc: Value) -> Result<T, FieldError> {
    let original = doc.clone();
    serde_path_to_error::deserialize::<_, T>(doc).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let unknown = unknown_field_name(&inner);
        let field = match (&unknown, path.as_str()) {
            (Some(name), ".") => format!("{kind}.{name}"),
            (Some(name), p) if !p.ends_with(name.as_str()) => format!("{kind}.{p}.{name}"),
            (_, ".") => kind.to_string(),
            (_, p) => format!("{kind}.{p}"),
        };
        let value = unknown
            .clone()
            .unwrap_or_else(|| value_at(&original, &path));
        let reason = if unknown.is_some() {
            "unknown field (strict decoding)".to_string()
        } else {
            inner
        };
        FieldError::new(field, value, reason)
    })
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
