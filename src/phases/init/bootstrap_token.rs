//! `init phase bootstrap-token`: the bootstrap token Secrets, the RBAC that lets a token's holder
//! register a node (get Nodes, post CSRs, have them approved, rotate its certificate later), and
//! `kube-public/cluster-info` — the CA and API server a joining node trusts — readable anonymously and
//! signed by kubestrap itself for every signing token (`jws-kubeconfig-<id>`), so a join works without
//! waiting for the controller manager's bootstrapsigner.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::InitData;
use super::api::{self, group, user};
use crate::cluster::Gateway;
use crate::config::defaults::{self, DEFAULT_TOKEN_GROUP};
use crate::config::types::BootstrapToken;
use crate::kubeconfig::cluster_info;
use crate::token::{self, Token, TokenGrant};
use crate::workflow::Phase;

pub const KUBELET_BOOTSTRAP: &str = "kubeadm:kubelet-bootstrap";
pub const GET_NODES: &str = "kubeadm:get-nodes";
pub const NODE_AUTOAPPROVE_BOOTSTRAP: &str = "kubeadm:node-autoapprove-bootstrap";
pub const NODE_AUTOAPPROVE_ROTATION: &str = "kubeadm:node-autoapprove-certificate-rotation";
pub const CLUSTER_INFO_RBAC: &str = "kubeadm:bootstrap-signer-clusterinfo";
pub const APISERVER_KUBELET_CLIENT: &str = "kubeadm:apiserver-kubelet-client";

pub fn phase() -> Phase<InitData> {
    Phase::leaf(
        "bootstrap-token",
        "Generates bootstrap tokens used to join a node to a cluster",
        run,
    )
}

/// This run's bootstrap tokens: the configured ones, a random one where none was given (drawn once
/// per run, so the join command shows the token the Secret holds).
pub fn tokens(data: &mut InitData) -> anyhow::Result<Vec<(Token, BootstrapToken)>> {
    let mut out = Vec::new();
    for spec in &mut data.options.bootstrap_tokens {
        defaults::bootstrap_token(spec);
        let text = match &spec.token {
            Some(text) => text.clone(),
            None => {
                let text = Token::generate()?.reveal();
                spec.token = Some(text.clone());
                text
            }
        };
        let parsed = Token::parse(&text).map_err(|e| anyhow::anyhow!("bootstrap token: {e}"))?;
        out.push((parsed, spec.clone()));
    }
    Ok(out)
}

/// The Secret's description, expiry, usages and groups for a configured token, as of `now`.
pub fn grant(spec: &BootstrapToken, now: time::OffsetDateTime) -> TokenGrant {
    let expiration = match (&spec.expires, spec.ttl) {
        (Some(at), _) => Some(at.clone()),
        (None, Some(ttl)) if !ttl.0.is_zero() => token::expiration_after(now, ttl.0),
        _ => None,
    };
    TokenGrant {
        description: spec.description.clone(),
        expiration,
        usages: spec.usages.clone().unwrap_or_default(),
        groups: spec.groups.clone().unwrap_or_default(),
    }
}

fn run(data: &mut InitData) -> anyhow::Result<()> {
    let tokens = tokens(data)?;
    let ui = data.host.ui();
    if let Some((first, _)) = tokens.first() {
        if data.options.skip_token_print {
            ui.line(format!("[bootstrap-token] Using token: {first}"));
        } else {
            ui.line(format!("[bootstrap-token] Using token: {}", first.reveal()));
        }
    }
    ui.line("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles");
    let gateway = api::gateway(data)?;
    let now = time::OffsetDateTime::now_utc();
    for (token, spec) in &tokens {
        gateway.apply(&token::secret(token, &grant(spec, now)))?;
    }
    rbac(data, &gateway)?;
    ui.line(format!(
        "[bootstrap-token] Creating the {:?} ConfigMap in the {:?} namespace",
        cluster_info::NAME,
        cluster_info::NAMESPACE
    ));
    let signers: Vec<&Token> = tokens
        .iter()
        .filter(|(_, spec)| spec.usages.iter().flatten().any(|u| u == "signing"))
        .map(|(t, _)| t)
        .collect();
    gateway.apply(&cluster_info_map(data, &signers)?)?;
    gateway.apply(&api::get_role(
        cluster_info::NAMESPACE,
        CLUSTER_INFO_RBAC,
        "configmaps",
        cluster_info::NAME,
    ))?;
    gateway.apply(&api::role_binding(
        cluster_info::NAMESPACE,
        CLUSTER_INFO_RBAC,
        CLUSTER_INFO_RBAC,
        vec![user("system:anonymous")],
    ))?;
    Ok(())
}

/// Every binding kubeadm makes for bootstrapping nodes, with its progress line.
fn rbac(data: &InitData, gateway: &Gateway) -> anyhow::Result<()> {
    let ui = data.host.ui();
    let tokens = || vec![group(DEFAULT_TOKEN_GROUP)];
    gateway.apply(&api::cluster_role(
        GET_NODES,
        vec![api::rule(&["nodes"], &["get"], &[])],
    ))?;
    gateway.apply(&api::cluster_role_binding(GET_NODES, GET_NODES, tokens()))?;
    ui.line("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes");
    gateway.apply(&api::cluster_role_binding(
        KUBELET_BOOTSTRAP,
        "system:node-bootstrapper",
        tokens(),
    ))?;
    ui.line("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials");
    gateway.apply(&api::cluster_role_binding(
        NODE_AUTOAPPROVE_BOOTSTRAP,
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        tokens(),
    ))?;
    ui.line("[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token");
    gateway.apply(&api::cluster_role_binding(
        NODE_AUTOAPPROVE_ROTATION,
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        vec![group("system:nodes")],
    ))?;
    ui.line("[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster");
    let v = &data.model.cluster.kubernetes_version;
    if (v.major, v.minor, v.patch) >= (1, 36, 1) {
        // From 1.36.1 apiserver-kubelet-client is no cluster admin: it gets the kubelet API this way.
        gateway.apply(&api::cluster_role_binding(
            APISERVER_KUBELET_CLIENT,
            "system:kubelet-api-admin",
            vec![user("kube-apiserver-kubelet-client")],
        ))?;
    }
    Ok(())
}

/// `kube-public/cluster-info`: the kubeconfig of the control-plane endpoint with the cluster CA, and
/// a detached JWS of it per signing token.
fn cluster_info_map(data: &InitData, signers: &[&Token]) -> anyhow::Result<ConfigMap> {
    let cp = data.control_plane()?;
    let ca_path = cp.cert_dir().join("ca.crt");
    let ca = data
        .host
        .read(&ca_path)
        .map_err(|e| anyhow::anyhow!("reading {ca_path}: {e}: run the certs phase first"))?;
    let kubeconfig = cluster_info::kubeconfig(&cp.control_plane_url(), &ca)?;
    let mut map = BTreeMap::new();
    for t in signers {
        map.insert(
            format!("{}{}", token::JWS_KEY_PREFIX, t.id),
            t.sign(&kubeconfig),
        );
    }
    map.insert(cluster_info::KUBECONFIG_KEY.to_string(), kubeconfig);
    Ok(ConfigMap {
        metadata: api::object_meta(Some(cluster_info::NAMESPACE), cluster_info::NAME),
        data: Some(map),
        ..Default::default()
    })
}
