//! kubeconfig files: the serde type (kubectl's `v1` Config), loading kubectl- and kubeadm-written files, writing kubeadm's layout.
//!
//! Written files look like client-go's: keys sorted, `preferences: {}`, embedded data as base64,
//! empty lists as `null`. Unknown fields (extensions, exec plugins, auth providers…) are kept on a
//! round trip, so a kubectl-written file can be read, changed and written back.

pub mod cluster_info;
pub mod connection;
pub mod files;

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::host::{Host, NodePath};

/// Bytes stored base64-encoded (`*-data` fields). Debug output shows only the length: they may be keys.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Base64Data(pub Vec<u8>);

impl fmt::Debug for Base64Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Data({} bytes)", self.0.len())
    }
}

impl Serialize for Base64Data {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        STANDARD
            .decode(compact)
            .map(Base64Data)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64 data: {e}")))
    }
}

/// A kubeconfig file (`apiVersion: v1`, `kind: Config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubeConfig {
    #[serde(rename = "apiVersion", default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default, with = "null_as_empty")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, with = "null_as_empty")]
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    #[serde(default)]
    pub preferences: serde_json::Map<String, Value>,
    #[serde(default, with = "null_as_empty")]
    pub users: Vec<NamedUser>,
    /// Fields this type does not model (e.g. `extensions`), kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    #[serde(default)]
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cluster {
    #[serde(default)]
    pub server: String,
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<Base64Data>,
    #[serde(
        rename = "certificate-authority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority: Option<String>,
    #[serde(
        rename = "insecure-skip-tls-verify",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(
        rename = "tls-server-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_server_name: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    #[serde(default)]
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub cluster: String,
    #[serde(default)]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub user: AuthInfo,
}

/// A user's credentials. Only what kubeadm writes is modelled; exec plugins and others stay in `extra`.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuthInfo {
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<Base64Data>,
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<Base64Data>,
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate: Option<String>,
    #[serde(
        rename = "client-key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInfo")
            .field("client_certificate_data", &self.client_certificate_data)
            .field(
                "client_key_data",
                &self.client_key_data.as_ref().map(|_| "[secret]"),
            )
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field("token", &self.token.as_ref().map(|_| "[secret]"))
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn default_api_version() -> String {
    "v1".to_string()
}

fn default_kind() -> String {
    "Config".to_string()
}

/// Lists that Go writes as `null` when empty and that may be `null` or absent when read.
mod null_as_empty {
    use super::*;

    pub fn serialize<S: Serializer, T: Serialize>(
        items: &[T],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if items.is_empty() {
            serializer.serialize_none()
        } else {
            items.serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        deserializer: D,
    ) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
    }
}

/// Why a kubeconfig's current context can not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KubeconfigError {
    #[error("not a kubeconfig file: {0}")]
    Parse(String),
    #[error("current-context is empty")]
    NoCurrentContext,
    #[error("the current context {0:?} is not defined in contexts")]
    MissingContext(String),
    #[error("the cluster {0:?} of the current context is not defined in clusters")]
    MissingCluster(String),
    #[error("the user {0:?} of the current context is not defined in users")]
    MissingUser(String),
}

/// The context, cluster and user `current-context` points at.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub context: &'a NamedContext,
    pub cluster: &'a NamedCluster,
    pub user: &'a NamedUser,
}

impl KubeConfig {
    /// kubeadm's single-cluster, single-context, single-user file with an embedded client certificate.
    pub fn with_client_certificate(
        cluster_name: &str,
        server: &str,
        ca_pem: &[u8],
        user_name: &str,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Self {
        let user = AuthInfo {
            client_certificate_data: Some(Base64Data(cert_pem.to_vec())),
            client_key_data: Some(Base64Data(key_pem.to_vec())),
            ..Default::default()
        };
        Self::single(cluster_name, server, Some(ca_pem), user_name, user)
    }

    /// A file whose user authenticates with a bearer token (e.g. `bootstrap-kubelet.conf`).
    pub fn with_token(
        cluster_name: &str,
        server: &str,
        ca_pem: &[u8],
        user_name: &str,
        token: &str,
    ) -> Self {
        let user = AuthInfo {
            token: Some(token.to_string()),
            ..Default::default()
        };
        Self::single(cluster_name, server, Some(ca_pem), user_name, user)
    }

    /// One cluster, one context `<user>@<cluster>` selected as current, one user.
    pub fn single(
        cluster_name: &str,
        server: &str,
        ca_pem: Option<&[u8]>,
        user_name: &str,
        user: AuthInfo,
    ) -> Self {
        let context_name = format!("{user_name}@{cluster_name}");
        KubeConfig {
            api_version: default_api_version(),
            kind: default_kind(),
            clusters: vec![NamedCluster {
                name: cluster_name.to_string(),
                cluster: Cluster {
                    server: server.to_string(),
                    certificate_authority_data: ca_pem.map(|pem| Base64Data(pem.to_vec())),
                    ..Default::default()
                },
            }],
            contexts: vec![NamedContext {
                name: context_name.clone(),
                context: Context {
                    cluster: cluster_name.to_string(),
                    user: user_name.to_string(),
                    ..Default::default()
                },
            }],
            current_context: context_name,
            preferences: serde_json::Map::new(),
            users: vec![NamedUser {
                name: user_name.to_string(),
                user,
            }],
            extra: BTreeMap::new(),
        }
    }

    /// Parses a kubeconfig in YAML or JSON, as kubectl and kubeadm write them.
    pub fn parse(text: &str) -> Result<Self, KubeconfigError> {
        let value: Value =
            crate::yaml::from_str(text).map_err(|e| KubeconfigError::Parse(e.to_string()))?;
        if value.is_null() {
            return Err(KubeconfigError::Parse("the file is empty".to_string()));
        }
        serde_json::from_value(value).map_err(|e| KubeconfigError::Parse(e.to_string()))
    }

    /// kubeadm's layout: keys sorted, two-space indent.
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        crate::yaml::to_string(self)
    }

    /// Resolves `current-context` to its context, cluster and user.
    pub fn current(&self) -> Result<Current<'_>, KubeconfigError> {
        if self.current_context.is_empty() {
            return Err(KubeconfigError::NoCurrentContext);
        }
        let context = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .ok_or_else(|| KubeconfigError::MissingContext(self.current_context.clone()))?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == context.context.cluster)
            .ok_or_else(|| KubeconfigError::MissingCluster(context.context.cluster.clone()))?;
        let user = self
            .users
            .iter()
            .find(|u| u.name == context.context.user)
            .ok_or_else(|| KubeconfigError::MissingUser(context.context.user.clone()))?;
        Ok(Current {
            context,
            cluster,
            user,
        })
    }

    /// The user of the current context, for changing its credentials.
    pub fn current_user_mut(&mut self) -> Result<&mut AuthInfo, KubeconfigError> {
        let name = self.current()?.user.name.clone();
        self.users
            .iter_mut()
            .find(|u| u.name == name)
            .map(|u| &mut u.user)
            .ok_or(KubeconfigError::MissingUser(name))
    }
}

/// Reads a kubeconfig through the host (`--root`-aware, dry-run aware); `None` when the file does not exist.
pub fn load(host: &Host, path: &NodePath) -> anyhow::Result<Option<KubeConfig>> {
    let Some(bytes) = host.read_optional(path)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).with_context(|| format!("{path} is not UTF-8 text"))?;
    KubeConfig::parse(&text)
        .map(Some)
        .with_context(|| format!("reading the kubeconfig file {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_kubeadm_layout_with_sorted_keys_and_base64_data() {
        let config = KubeConfig::with_client_certificate(
            "kubernetes",
            "https://10.0.0.1:6443",
            b"CA PEM",
            "kubernetes-admin",
            b"CERT",
            b"KEY",
        );
        let text = config.to_yaml().unwrap();
        let expected = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0EgUEVN
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
";
        assert_eq!(text, expected);
        assert_eq!(KubeConfig::parse(&text).unwrap(), config);
    }

    #[test]
    fn empty_lists_are_null_like_client_go() {
        let mut config =
            KubeConfig::single("", "https://h:6443", Some(b"CA"), "u", AuthInfo::default());
        config.contexts.clear();
        config.users.clear();
        config.current_context.clear();
        let text = config.to_yaml().unwrap();
        assert!(text.contains("contexts: null\n"), "{text}");
        assert!(text.contains("users: null\n"), "{text}");
        assert!(text.contains("  name: \"\"\n"), "{text}");
        assert_eq!(KubeConfig::parse(&text).unwrap(), config);
    }

    #[test]
    fn reads_kubectl_written_files_and_keeps_unknown_fields() {
        let text = r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    extensions:
    - extension: {last-update: "x"}
      name: cluster_info
    server: https://127.0.0.1:40000
  name: kind
contexts:
- context:
    cluster: kind
    namespace: default
    user: admin
  name: admin@kind
current-context: admin@kind
kind: Config
preferences: {}
users:
- name: admin
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: get-token
"#;
        let config = KubeConfig::parse(text).unwrap();
        let current = config.current().unwrap();
        assert_eq!(current.cluster.cluster.server, "https://127.0.0.1:40000");
        assert_eq!(
            current.cluster.cluster.certificate_authority_data,
            Some(Base64Data(b"CA".to_vec()))
        );
        assert!(current.user.user.extra.contains_key("exec"));
        assert!(current.cluster.cluster.extra.contains_key("extensions"));
        let again = KubeConfig::parse(&config.to_yaml().unwrap()).unwrap();
        assert_eq!(again, config);
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(KubeConfig::parse(&json).unwrap(), config);
    }

    #[test]
    fn current_context_errors_name_what_is_missing() {
        let mut config = KubeConfig::with_token("c", "https://h:1", b"CA", "u", "t");
        config.current_context = "nope".into();
        assert_eq!(
            config.current().unwrap_err(),
            KubeconfigError::MissingContext("nope".into())
        );
        config.current_context = "u@c".into();
        config.users.clear();
        assert_eq!(
            config.current().unwrap_err(),
            KubeconfigError::MissingUser("u".into())
        );
        assert!(KubeConfig::parse("").is_err());
        assert!(KubeConfig::parse("users: 5").is_err());
    }

    #[test]
    fn debug_output_hides_keys_and_tokens() {
        let config = KubeConfig::with_client_certificate(
            "c",
            "https://h:1",
            b"CA",
            "u",
            b"CERT",
            b"SECRET-KEY",
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
    }
}
