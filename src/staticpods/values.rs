//! The values a static-Pod template is rendered with, computed from the settings and the host inputs.

use std::collections::BTreeMap;

use serde::Serialize;

use super::host_inputs::HostInputs;
use super::probes::{ProbeValues, probe};
use super::volumes::{MountValues, VolumeValues, volumes};
use super::{Component, commands};
use crate::config::init::{InitSettings, join_host_port};
use crate::config::types::EnvVar;

const ADVERTISE_ENDPOINT_ANNOTATION: &str =
    "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";
const ETCD_CLIENT_URLS_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";

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

pub fn values(component: Component, settings: &InitSettings, inputs: &HostInputs) -> PodValues {
    let mut annotations = BTreeMap::new();
    let (image, args, env) = match component {
        Component::Etcd => {
            let client_url = commands::https_url(
                &settings.advertise_address.to_string(),
                commands::ETCD_CLIENT_PORT,
            );
            annotations.insert(ETCD_CLIENT_URLS_ANNOTATION.to_string(), client_url);
            let extra_envs = settings
                .cluster
                .etcd
                .local
                .as_ref()
                .and_then(|l| l.extra_envs.as_deref());
            // kubeadm gives etcd no proxy variables, only its extraEnvs.
            (
                crate::images::etcd_image(settings),
                commands::etcd(settings),
                merge_env(&[], extra_envs),
            )
        }
        Component::KubeApiServer => {
            annotations.insert(
                ADVERTISE_ENDPOINT_ANNOTATION.to_string(),
                join_host_port(&settings.advertise_address.to_string(), settings.bind_port),
            );
            (
                kubernetes_image(settings, component),
                commands::apiserver(settings),
                merge_env(
                    &inputs.proxy_env,
                    settings.cluster.api_server.extra_envs.as_deref(),
                ),
            )
        }
        Component::KubeControllerManager => (
            kubernetes_image(settings, component),
            commands::controller_manager(settings, inputs.external_ca),
            merge_env(
                &inputs.proxy_env,
                settings.cluster.controller_manager.extra_envs.as_deref(),
            ),
        ),
        Component::KubeScheduler => (
            kubernetes_image(settings, component),
            commands::scheduler(settings),
            merge_env(
                &inputs.proxy_env,
                settings.cluster.scheduler.extra_envs.as_deref(),
            ),
        ),
    };
    let (volume_mounts, volumes) = volumes(component, settings, inputs);
    PodValues {
        name: component.name(),
        annotations,
        image,
        image_pull_policy: settings
            .init
            .node_registration
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".to_string()),
        args,
        env,
        probe: probe(component, settings),
        volume_mounts,
        volumes,
    }
}

fn kubernetes_image(settings: &InitSettings, component: Component) -> String {
    settings.image(component.name(), &settings.kubernetes_version.to_string())
}

/// Proxy variables overlaid with `extraEnvs` (same name: the extra one wins), sorted by name.
pub fn merge_env(proxy: &[(String, String)], extra: Option<&[EnvVar]>) -> Vec<EnvVar> {
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
    for var in extra.unwrap_or_default() {
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
        let merged = merge_env(&proxy, Some(&extra));
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
