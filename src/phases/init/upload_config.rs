//! `init phase upload-config`: the ClusterConfiguration (`kube-system/kubeadm-config`) with kubestrap's
//! own cluster settings (`kube-system/kubestrap-config`), and the cluster-wide KubeletConfiguration
//! (`kube-system/kubelet-config`), each with the Role and RoleBinding that let joining nodes read it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::InitData;
use super::api::{self, group};
use crate::config::defaults::DEFAULT_TOKEN_GROUP;
use crate::model::{configmap, published};
use crate::workflow::Phase;

pub const NAMESPACE: &str = "kube-system";
/// kubeadm's Role and RoleBinding names.
pub const NODES_KUBEADM_CONFIG: &str = "kubeadm:nodes-kubeadm-config";
pub const KUBELET_CONFIG_RBAC: &str = "kubeadm:kubelet-config";
/// kubestrap's Role and RoleBinding for its own ConfigMap (joining nodes read it with kubeadm-config).
pub const NODES_KUBESTRAP_CONFIG: &str = "kubestrap:nodes-kubestrap-config";
const SYSTEM_NODES: &str = "system:nodes";

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "upload-config",
        "Upload the kubeadm and kubelet configuration to a ConfigMap",
        vec![
            Phase::leaf(
                "kubeadm",
                "Upload the kubeadm ClusterConfiguration (and kubestrap's cluster settings) to a ConfigMap",
                upload_kubeadm,
            ),
            Phase::leaf(
                "kubelet",
                "Upload the kubelet component config to a ConfigMap",
                upload_kubelet,
            ),
        ],
    )
}

fn config_map(name: &str, data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: api::object_meta(Some(NAMESPACE), name),
        data: Some(data),
        ..Default::default()
    }
}

fn upload_kubeadm(data: &mut InitData) -> anyhow::Result<()> {
    let gateway = api::gateway(data)?;
    data.host.ui().line(format!(
        "[upload-config] Storing the configuration used in ConfigMap {:?} in the {NAMESPACE:?} Namespace",
        published::KUBEADM_CONFIG
    ));
    let text = published::cluster_configuration_text(&data.model.cluster)?;
    gateway.apply(&config_map(
        published::KUBEADM_CONFIG,
        BTreeMap::from([(published::KUBEADM_CONFIG_KEY.to_string(), text)]),
    ))?;
    readable_by_nodes(&gateway, NODES_KUBEADM_CONFIG, published::KUBEADM_CONFIG)?;

    data.host.ui().line(format!(
        "[upload-config] Storing kubestrap's cluster settings in ConfigMap {:?} in the {NAMESPACE:?} Namespace",
        configmap::NAME
    ));
    gateway.apply(&configmap::config_map(&data.model.cluster)?)?;
    readable_by_nodes(&gateway, NODES_KUBESTRAP_CONFIG, configmap::NAME)?;
    Ok(())
}

fn upload_kubelet(data: &mut InitData) -> anyhow::Result<()> {
    let gateway = api::gateway(data)?;
    data.host.ui().line(format!(
        "[kubelet] Creating a ConfigMap {:?} in namespace {NAMESPACE} with the configuration for the kubelets in the cluster",
        published::KUBELET_CONFIG
    ));
    let (text, hash) = published::kubelet_configuration_text(&data.model.cluster)?;
    let mut map = config_map(
        published::KUBELET_CONFIG,
        BTreeMap::from([(published::KUBELET_CONFIG_KEY.to_string(), text)]),
    );
    if let Some(hash) = hash {
        map.metadata.annotations = Some(BTreeMap::from([(
            published::COMPONENT_CONFIG_HASH.to_string(),
            hash,
        )]));
    }
    gateway.apply(&map)?;
    readable_by_nodes(&gateway, KUBELET_CONFIG_RBAC, published::KUBELET_CONFIG)?;
    Ok(())
}

/// A Role allowing `get` of one ConfigMap, bound to the nodes and the bootstrap tokens' group.
fn readable_by_nodes(
    gateway: &crate::cluster::Gateway,
    rbac_name: &str,
    map: &str,
) -> anyhow::Result<()> {
    gateway.apply(&api::get_role(NAMESPACE, rbac_name, "configmaps", map))?;
    gateway.apply(&api::role_binding(
        NAMESPACE,
        rbac_name,
        rbac_name,
        vec![group(DEFAULT_TOKEN_GROUP), group(SYSTEM_NODES)],
    ))?;
    Ok(())
}
