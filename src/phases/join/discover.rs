//! What a joining node learns before it changes anything: the cluster (token-signed cluster-info from
//! the API server or kubestrap's endpoint, or a discovery file), an API server this node reaches
//! directly, the bootstrap kubeconfig, and the cluster part of the model read with the bootstrap token
//! (kubeadm-config, kubelet-config, the kubestrap ConfigMap). A Node of the same name that is Ready
//! refuses the join, as kubeadm does.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cluster::{Client, Connection, Gateway, Retry};
use crate::discovery::fetch::{self, Endpoint};
use crate::discovery::verify::CaTrust;
use crate::error::InvalidInput;
use crate::host::{Host, NodePath};
use crate::kubeconfig::KubeConfig;
use crate::kubelet::files::BOOTSTRAP_KUBECONFIG;
use crate::model::resolve::join::{DiscoverySource, JoinOptions};
use crate::model::resolve::{ClusterChoices, ClusterDocuments, cluster_spec};
use crate::model::{Model, NodeSpec, configmap, published};
use crate::token::Token;

/// kubeadm's names in the bootstrap kubeconfig.
pub const CLUSTER_NAME: &str = "kubernetes";
pub const TOKEN_USER: &str = "tls-bootstrap-token-user";
/// The bound on checking that an API server accepts this node's connections.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// The cluster this node joins.
#[derive(Debug, Clone)]
pub struct Joining {
    /// The cluster part from the cluster, the node part from this node's JoinConfiguration.
    pub model: Model,
    /// `bootstrap-kubelet.conf`.
    pub bootstrap: KubeConfig,
    /// The API server URL the kubelet uses (reached from this node).
    pub server: String,
    /// The cluster CA bundle (PEM).
    pub ca_pem: Vec<u8>,
    /// The bootstrap credentials' connection.
    pub connection: Connection,
}

/// Discovery, the reachability check, and the cluster's configuration.
pub fn discover(host: &Host, node: &NodeSpec, options: &JoinOptions) -> anyhow::Result<Joining> {
    let ui = host.ui();
    let (servers, ca_pem, bootstrap_user) = match &options.discovery {
        DiscoverySource::Token {
            discovery_url,
            token,
            ca_cert_hashes,
            unsafe_skip_ca_verification,
            ..
        } => {
            let token = Token::parse(token).map_err(|e| {
                InvalidInput::one(
                    "discovery.bootstrapToken.token",
                    "(withheld)",
                    e.to_string(),
                )
            })?;
            let endpoint = match (discovery_url, &options.api_endpoint) {
                (Some(url), _) => Endpoint::Signed(url.clone()),
                (None, Some((h, port))) => {
                    Endpoint::ApiServer(crate::model::join_host_port(h, *port))
                }
                (None, None) => {
                    return Err(InvalidInput::one(
                        "discovery.bootstrapToken.apiServerEndpoint",
                        "",
                        "the API server endpoint (host:port) is required for token discovery",
                    )
                    .into());
                }
            };
            let trust = if ca_cert_hashes.is_empty() && *unsafe_skip_ca_verification {
                CaTrust::UnsafeSkip
            } else {
                CaTrust::Pinned(ca_cert_hashes.clone())
            };
            let info =
                fetch::token_discovery(&endpoint, &token, &trust, node.timeouts.discovery.0, ui)?;
            (info.servers, info.ca_pem, None)
        }
        DiscoverySource::File { path } => {
            ui.line(format!("[discovery] Reading the discovery file {path}"));
            let file = fetch::file_discovery(path)?;
            let cluster = fetch::file_cluster(&file).ok_or_else(|| {
                InvalidInput::one("--discovery-file", path, "names no cluster to join")
            })?;
            let ca = cluster
                .certificate_authority_data
                .as_ref()
                .map(|d| d.0.clone())
                .unwrap_or_default();
            let own = fetch::has_credentials(&file).then(|| file.clone());
            (vec![cluster.server.clone()], ca, own)
        }
    };
    let server = reachable(&servers)?;
    ui.line(format!(
        "[discovery] This node reaches the API server {server} directly"
    ));
    let bootstrap = match (&options.tls_bootstrap_token, bootstrap_user) {
        (Some(token), _) => {
            KubeConfig::with_token(CLUSTER_NAME, &server, &ca_pem, TOKEN_USER, token)
        }
        (None, Some(mut own)) => {
            // The discovery file's own credentials, pointed at the server this node reaches.
            for cluster in &mut own.clusters {
                cluster.cluster.server = server.clone();
            }
            own
        }
        (None, None) => {
            return Err(InvalidInput::one(
                "--tls-bootstrap-token (discovery.tlsBootstrapToken)",
                "",
                "the discovery file carries no credentials: give the token the kubelet bootstraps with",
            )
            .into());
        }
    };
    let path = NodePath::new(BOOTSTRAP_KUBECONFIG);
    let connection = crate::kubeconfig::connection::from_config(host, &path, &bootstrap)?;
    let client = Client::connect(&connection)?
        .with_retry(Retry::within(node.timeouts.kubernetes_api_call.0));
    let gateway = Gateway::new(host, client);
    let cluster = read_cluster(&gateway, ui)?;
    refuse_ready_namesake(&gateway, &node.name)?;
    Ok(Joining {
        model: Model {
            cluster,
            node: node.clone(),
        },
        bootstrap,
        server,
        ca_pem,
        connection,
    })
}

/// The first of `servers` this node opens a TCP connection to; the error names each one tried.
fn reachable(servers: &[String]) -> anyhow::Result<String> {
    let mut tried = Vec::new();
    for server in servers {
        match reach(server) {
            Ok(()) => return Ok(server.clone()),
            Err(e) => tried.push(format!("{server}: {e}")),
        }
    }
    anyhow::bail!(
        "this node does not reach the cluster's API server directly ({}): the kubelet registers and runs \
         through it, so the join stops here; check the route and firewall between this node and the \
         control plane (the server cluster-info names is the cluster's controlPlaneEndpoint or the first \
         control plane's advertise address)",
        tried.join("; ")
    )
}

fn reach(server: &str) -> Result<(), String> {
    let authority = server
        .strip_prefix("https://")
        .unwrap_or(server)
        .split('/')
        .next()
        .unwrap_or_default();
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:443")
    } else {
        authority.to_string()
    };
    let addresses: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("can not resolve {with_port}: {e}"))?
        .collect();
    let mut last = format!("{with_port} resolves to no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, REACH_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!(
                    "connecting to {address} timed out after {}s",
                    REACH_TIMEOUT.as_secs()
                );
            }
            Err(e) => last = format!("connecting to {address}: {e}"),
        }
    }
    Err(last)
}

/// The cluster part of the model, from kubeadm-config, kubelet-config and the kubestrap ConfigMap.
fn read_cluster(
    gateway: &Gateway,
    ui: &crate::output::Ui,
) -> anyhow::Result<crate::model::ClusterSpec> {
    ui.line(format!(
        "[preflight] Reading configuration from the {:?} ConfigMap in namespace {:?}...",
        published::KUBEADM_CONFIG,
        configmap::NAMESPACE
    ));
    let read = |name: &str| -> anyhow::Result<Option<ConfigMap>> {
        gateway
            .get::<ConfigMap>(Some(configmap::NAMESPACE), name)
            .map_err(|e| {
                let hint = if e.code() == Some(401) {
                    ": the API server does not accept the TLS bootstrap token (--tls-bootstrap-token, or \
                     --token): it is unknown or has expired; on a control-plane node run \
                     'kubestrap token create --print-join-command'"
                } else {
                    ""
                };
                anyhow::Error::new(e).context(format!(
                    "reading the ConfigMap {}/{name}{hint}",
                    configmap::NAMESPACE
                ))
            })
    };
    let kubeadm_config = read(published::KUBEADM_CONFIG)?.with_context(|| {
        format!(
            "the cluster has no {}/{} ConfigMap: it was not set up by 'kubestrap init' or kubeadm",
            configmap::NAMESPACE,
            published::KUBEADM_CONFIG
        )
    })?;
    let text = kubeadm_config
        .data
        .as_ref()
        .and_then(|d| d.get(published::KUBEADM_CONFIG_KEY))
        .with_context(|| {
            format!(
                "the ConfigMap {} has no {} key",
                published::KUBEADM_CONFIG,
                published::KUBEADM_CONFIG_KEY
            )
        })?;
    let cluster_configuration = crate::config::load::parse(text)
        .map_err(|e| anyhow::anyhow!("the cluster's {}: {e}", published::KUBEADM_CONFIG))?
        .cluster
        .with_context(|| {
            format!(
                "the cluster's {} holds no ClusterConfiguration",
                published::KUBEADM_CONFIG
            )
        })?;
    let kubelet = match read(published::KUBELET_CONFIG)? {
        Some(map) => kubelet_document(&map)?,
        None => {
            ui.warn(format!(
                "[preflight] The cluster has no {}/{} ConfigMap: the kubelet gets kubeadm's defaults",
                configmap::NAMESPACE,
                published::KUBELET_CONFIG
            ));
            None
        }
    };
    let choices = match read(configmap::NAME)? {
        Some(map) => configmap::read_config_map(&map)?.choices(),
        None => {
            ui.line(format!(
                "[preflight] The cluster has no {}/{} ConfigMap (not made by kubestrap): using kubestrap's defaults for its own settings",
                configmap::NAMESPACE,
                configmap::NAME
            ));
            ClusterChoices::default()
        }
    };
    let documents = ClusterDocuments {
        cluster: cluster_configuration,
        kubelet,
        kube_proxy: None,
    };
    let (mut notices, mut errors) = (Vec::new(), Vec::new());
    let spec = cluster_spec(documents, choices, 6443, &mut notices, &mut errors);
    if !errors.is_empty() {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "the cluster's configuration ({}) is not valid: {}",
            published::KUBEADM_CONFIG,
            text.join("; ")
        );
    }
    spec.context("the cluster's configuration is incomplete")
}

/// kubelet-config's document: `None` when kubestrap generated it (its hash annotation matches, so the
/// model's defaults give it again), else the cluster's KubeletConfiguration, passed through.
fn kubelet_document(map: &ConfigMap) -> anyhow::Result<Option<Value>> {
    let Some(text) = map
        .data
        .as_ref()
        .and_then(|d| d.get(published::KUBELET_CONFIG_KEY))
    else {
        anyhow::bail!(
            "the ConfigMap {} has no {:?} key",
            published::KUBELET_CONFIG,
            published::KUBELET_CONFIG_KEY
        );
    };
    let generated = map
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(published::COMPONENT_CONFIG_HASH))
        .is_some_and(|hash| {
            *hash == format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
        });
    if generated {
        return Ok(None);
    }
    let doc: Value = crate::yaml::from_str(text)
        .with_context(|| format!("the cluster's {} is not YAML", published::KUBELET_CONFIG))?;
    Ok(Some(doc))
}

/// kubeadm refuses to join a node whose name a Ready Node already has.
fn refuse_ready_namesake(gateway: &Gateway, name: &str) -> anyhow::Result<()> {
    let existing = match gateway.get::<Node>(None, name) {
        Ok(node) => node,
        // A bootstrap token that may not read Nodes: the kubelet's registration decides.
        Err(e) if e.code() == Some(403) => return Ok(()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading the Node {name:?}"))),
    };
    let ready = existing
        .and_then(|n| n.status)
        .and_then(|s| s.conditions)
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if ready {
        anyhow::bail!(
            "a Node with name {name:?} and status \"Ready\" already exists in the cluster: delete the existing \
             Node ('kubectl delete node {name}') or give this node another name (--node-name)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reachable_of_several_servers_is_taken_and_every_failure_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = format!("https://{}", listener.local_addr().unwrap());
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("https://{}", l.local_addr().unwrap())
        };
        assert_eq!(reachable(&[closed.clone(), open.clone()]).unwrap(), open);
        let err = reachable(&[closed.clone(), "https://[::1]:1".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&closed) && err.contains("https://[::1]:1") && err.contains("directly"),
            "{err}"
        );
    }

    #[test]
    fn a_generated_kubelet_config_is_the_models_and_an_edited_one_is_passed_through() {
        let cluster = crate::model::testing::control_plane_model("").cluster;
        let (text, hash) = published::kubelet_configuration_text(&cluster).unwrap();
        let mut map = ConfigMap {
            data: Some([(published::KUBELET_CONFIG_KEY.to_string(), text.clone())].into()),
            ..Default::default()
        };
        map.metadata.annotations =
            Some([(published::COMPONENT_CONFIG_HASH.to_string(), hash.unwrap())].into());
        assert_eq!(kubelet_document(&map).unwrap(), None);
        let edited = text.replace("clusterDomain: cluster.local", "clusterDomain: corp.local");
        map.data = Some([(published::KUBELET_CONFIG_KEY.to_string(), edited)].into());
        let doc = kubelet_document(&map).unwrap().unwrap();
        assert_eq!(doc["clusterDomain"], "corp.local");
    }
}
