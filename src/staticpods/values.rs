//! The values a static-Pod template is rendered with, computed from the model and the host inputs.

use std::collections::BTreeMap;

use serde::Serialize;

use super::host_inputs::HostInputs;
use super::probes::{ProbeValues, probe};
use super::volumes::{MountValues, VolumeValues, volumes};
use super::{Component, commands};
use crate::config::types::EnvVar;
use crate::model::ControlPlane;
use crate::model::ETCD_CLIENT_PORT;

const ADVERTISE_ENDPOINT_ANNOTATION: &str =
    "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";
pub const ETCD_CLIENT_URLS_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";

/// What `templates/static-pods/*.yaml` read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodValues {
    pub name: &'static str,
    pub annotations: BTreeMap<String, String>,
    pub image: String,
    pub image_pull_policy: String,
    /// The command line after the binary name.
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub probe: ProbeValues,
    pub volume_mounts: Vec<MountValues>,
    pub volumes: Vec<VolumeValues>,
}

/// The values of one component's Pod; an error for etcd when the cluster's etcd is external.
pub fn values(
    component: Component,
    cp: &ControlPlane,
    inputs: &HostInputs,
) -> Result<PodValues, ExternalEtcd> {
    let mut annotations = BTreeMap::new();
    let cluster = cp.cluster;
    let (image, args, env) = match component {
        Component::Etcd => {
            let local = cluster.etcd.local().ok_or(ExternalEtcd)?;
            let client_url =
                commands::https_url(&cp.advertise_address().to_string(), ETCD_CLIENT_PORT);
            annotations.insert(ETCD_CLIENT_URLS_ANNOTATION.to_string(), client_url);
            // kubeadm gives etcd no proxy variables, only its extraEnvs.
            (
                local.image.to_string(),
                commands::etcd(cp, local),
                merge_env(&[], &local.extra_envs),
            )
        }
        Component::KubeApiServer => {
            annotations.insert(
                ADVERTISE_ENDPOINT_ANNOTATION.to_string(),
                cp.api.host_port(),
            );
            (
                kubernetes_image(cp, component),
                commands::apiserver(cp),
                merge_env(&inputs.proxy_env, &cluster.api_server.extra_envs),
            )
        }
        Component::KubeControllerManager => (
            kubernetes_image(cp, component),
            commands::controller_manager(cp, inputs.external_ca),
            merge_env(&inputs.proxy_env, &cluster.controller_manager.extra_envs),
        ),
        Component::KubeScheduler => (
            kubernetes_image(cp, component),
            commands::scheduler(cp),
            merge_env(&inputs.proxy_env, &cluster.scheduler.extra_envs),
        ),
    };
    let (volume_mounts, volumes) = volumes(component, cp, inputs);
    Ok(PodValues {
        name: component.name(),
        annotations,
        image,
        image_pull_policy: cp.node.image_pull_policy.clone(),
        args,
        env,
        probe: probe(component, cp),
        volume_mounts,
        volumes,
    })
}

/// Asked for an etcd static pod of a cluster whose etcd is external.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cluster's etcd is external: this node runs no local etcd member")]
pub struct ExternalEtcd;

fn kubernetes_image(cp: &ControlPlane, component: Component) -> String {
    cp.cluster.kubernetes_image(component.name()).to_string()
}

/// Proxy variables overlaid with `extraEnvs` (same name: the extra one wins), sorted by name.
pub fn merge_env(proxy: &[(String, String)], extra: &[EnvVar]) -> Vec<EnvVar> {
    let mut merged: BTreeMap<String, EnvVar> = proxy
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                },
            )
        })
        .collect();
    for var in extra {
        merged.insert(var.name.clone(), var.clone());
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_envs_win_over_proxy_variables_and_all_are_sorted() {
        let proxy = vec![
            ("no_proxy".to_string(), "a".to_string()),
            ("HTTP_PROXY".to_string(), "b".to_string()),
        ];
        let extra = vec![EnvVar {
            name: "no_proxy".into(),
            value: Some("c".into()),
            value_from: None,
        }];
        let merged = merge_env(&proxy, &extra);
        let pairs: Vec<(&str, Option<&str>)> = merged
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            pairs,
            vec![("HTTP_PROXY", Some("b")), ("no_proxy", Some("c"))]
        );
    }
}
