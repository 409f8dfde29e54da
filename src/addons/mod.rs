//! The addons init installs itself, CoreDNS and kube-proxy, rendered from the project's templates under
//! `addons/` (embedded in the binary) with values from the model: pinned images under the configured
//! image repository, CoreDNS's Service on the 10th address of each service range, kube-proxy's
//! `clusterCIDR` from the pod subnets. Every rendered object is checked against its typed form.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cluster::{ClusterError, Gateway};
use crate::config::defaults::DEFAULT_TOKEN_GROUP;
use crate::model::ControlPlane;
use crate::render::{RenderError, Renderer, decode_checked};

pub mod manifest;
pub mod pod_network;

pub const COREDNS_TEMPLATE: &str = "addons/coredns.yaml";
pub const KUBE_PROXY_TEMPLATE: &str = "addons/kube-proxy.yaml";
/// Where kube-proxy reads its configuration inside its pod.
pub const KUBE_PROXY_KUBECONFIG: &str = "/var/lib/kube-proxy/kubeconfig.conf";

/// One rendered object, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum AddonObject {
    Namespace(Namespace),
    CustomResourceDefinition(CustomResourceDefinition),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    Deployment(Deployment),
    DaemonSet(DaemonSet),
    Service(Service),
    /// In upstream's calico manifest (`--pod-network-manifest`).
    PodDisruptionBudget(PodDisruptionBudget),
}

impl AddonObject {
    fn decode(template: &str, value: &Value) -> Result<AddonObject, RenderError> {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let typed = |e| RenderError::Typed {
            template: template.to_string(),
            source: e,
        };
        Ok(match kind.as_str() {
            "Namespace" => AddonObject::Namespace(decode_checked(value, &kind).map_err(typed)?),
            "CustomResourceDefinition" => {
                AddonObject::CustomResourceDefinition(decode_checked(value, &kind).map_err(typed)?)
            }
            "ServiceAccount" => {
                AddonObject::ServiceAccount(decode_checked(value, &kind).map_err(typed)?)
            }
            "ClusterRole" => AddonObject::ClusterRole(decode_checked(value, &kind).map_err(typed)?),
            "ClusterRoleBinding" => {
                AddonObject::ClusterRoleBinding(decode_checked(value, &kind).map_err(typed)?)
            }
            "Role" => AddonObject::Role(decode_checked(value, &kind).map_err(typed)?),
            "RoleBinding" => AddonObject::RoleBinding(decode_checked(value, &kind).map_err(typed)?),
            "ConfigMap" => AddonObject::ConfigMap(decode_checked(value, &kind).map_err(typed)?),
            "Deployment" => AddonObject::Deployment(decode_checked(value, &kind).map_err(typed)?),
            "DaemonSet" => AddonObject::DaemonSet(decode_checked(value, &kind).map_err(typed)?),
            "Service" => AddonObject::Service(decode_checked(value, &kind).map_err(typed)?),
            "PodDisruptionBudget" => {
                AddonObject::PodDisruptionBudget(decode_checked(value, &kind).map_err(typed)?)
            }
            other => {
                return Err(RenderError::Template {
                    template: template.to_string(),
                    message: format!("an addon object of kind {other:?} is not expected"),
                });
            }
        })
    }

    /// Creates or updates the object (server-side apply).
    pub fn apply(&self, gateway: &Gateway) -> Result<(), ClusterError> {
        match self {
            AddonObject::Namespace(o) => gateway.apply(o).map(drop),
            AddonObject::CustomResourceDefinition(o) => gateway.apply(o).map(drop),
            AddonObject::ServiceAccount(o) => gateway.apply(o).map(drop),
            AddonObject::ClusterRole(o) => gateway.apply(o).map(drop),
            AddonObject::ClusterRoleBinding(o) => gateway.apply(o).map(drop),
            AddonObject::Role(o) => gateway.apply(o).map(drop),
            AddonObject::RoleBinding(o) => gateway.apply(o).map(drop),
            AddonObject::ConfigMap(o) => gateway.apply(o).map(drop),
            AddonObject::Deployment(o) => gateway.apply(o).map(drop),
            AddonObject::DaemonSet(o) => gateway.apply(o).map(drop),
            AddonObject::Service(o) => gateway.apply(o).map(drop),
            AddonObject::PodDisruptionBudget(o) => gateway.apply(o).map(drop),
        }
    }
}

fn render<T: Serialize>(template: &str, values: &T) -> Result<Vec<AddonObject>, RenderError> {
    render_with(&Renderer::new()?, template, values).map(|(_, objects)| objects)
}

/// Renders one template with `renderer`: its text and its objects, each checked against its type.
fn render_with<T: Serialize>(
    renderer: &Renderer,
    template: &str,
    values: &T,
) -> Result<(String, Vec<AddonObject>), RenderError> {
    let text = renderer.render_text(template, values)?;
    let docs = crate::yaml::documents(&text).map_err(|e| RenderError::Yaml {
        template: template.to_string(),
        message: e.to_string(),
    })?;
    let objects = docs
        .iter()
        .filter(|d| !d.is_null())
        .map(|d| AddonObject::decode(template, d))
        .collect::<Result<_, _>>()?;
    Ok((text, objects))
}

#[derive(Debug, Serialize)]
struct CoreDnsValues {
    dns_domain: String,
    image: String,
    cluster_ips: Vec<String>,
}

/// CoreDNS: its ServiceAccount and RBAC, the Corefile, the Deployment and the `kube-dns` Service.
pub fn coredns(cp: &ControlPlane) -> Result<Vec<AddonObject>, RenderError> {
    let cluster = cp.cluster;
    render(
        COREDNS_TEMPLATE,
        &CoreDnsValues {
            dns_domain: cluster.networking.dns_domain.clone(),
            image: cluster.dns.image.to_string(),
            cluster_ips: cluster
                .networking
                .dns_service_ips()
                .iter()
                .map(ToString::to_string)
                .collect(),
        },
    )
}

#[derive(Debug, Serialize)]
struct KubeProxyValues {
    image: String,
    token_group: &'static str,
    config: String,
    kubeconfig: String,
}

/// kube-proxy's KubeProxyConfiguration: kubeadm's defaults (bind address of the node's family, the
/// in-pod kubeconfig, `clusterCIDR` = the pod subnets) under the user's document, whose fields win.
pub fn kube_proxy_configuration(cp: &ControlPlane) -> Value {
    let cluster = cp.cluster;
    let mut doc = json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "bindAddress": if cp.is_ipv6() { "::" } else { "0.0.0.0" },
        "clientConnection": {"kubeconfig": KUBE_PROXY_KUBECONFIG},
    });
    if !cluster.networking.pod_subnets.is_empty() {
        doc["clusterCIDR"] = json!(cluster.networking.pod_subnets.to_string());
    }
    if let Some(user) = &cluster.proxy.configuration {
        crate::model::published::overlay(&mut doc, user);
    }
    doc
}

/// The kubeconfig kube-proxy uses in its pod: the control-plane endpoint, its service-account token.
fn kube_proxy_kubeconfig(cp: &ControlPlane) -> anyhow::Result<String> {
    crate::yaml::to_string(&json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": {
            "certificate-authority": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            "server": cp.control_plane_url(),
        }}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "namespace": "default", "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}}],
    }))
}

/// kube-proxy: its ServiceAccount and RBAC, its ConfigMap and DaemonSet.
pub fn kube_proxy(cp: &ControlPlane) -> anyhow::Result<Vec<AddonObject>> {
    Ok(render(
        KUBE_PROXY_TEMPLATE,
        &KubeProxyValues {
            image: cp.cluster.kubernetes_image("kube-proxy").to_string(),
            token_group: DEFAULT_TOKEN_GROUP,
            config: crate::yaml::to_string(&kube_proxy_configuration(cp))?,
            kubeconfig: kube_proxy_kubeconfig(cp)?,
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::control_plane_model;

    fn find<'a, T>(
        objects: &'a [AddonObject],
        pick: impl Fn(&'a AddonObject) -> Option<&'a T>,
    ) -> &'a T {
        objects.iter().find_map(pick).expect("object present")
    }

    #[test]
    fn coredns_follows_the_model() {
        let model = control_plane_model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nimageRepository: mirror.example/k8s\nnetworking: {serviceSubnet: \"10.100.0.0/16,fd00:10:96::/112\", dnsDomain: corp.local}\n",
        );
        let objects = coredns(&model.control_plane().unwrap()).unwrap();
        assert_eq!(objects.len(), 6);
        let svc = find(&objects, |o| match o {
            AddonObject::Service(s) => Some(s),
            _ => None,
        });
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.100.0.10"));
        assert_eq!(
            spec.cluster_ips.as_deref(),
            Some(&["10.100.0.10".to_string(), "fd00:10:96::a".to_string()][..])
        );
        let deploy = find(&objects, |o| match o {
            AddonObject::Deployment(d) => Some(d),
            _ => None,
        });
        let container = &deploy
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(
            container.image.as_deref(),
            Some("mirror.example/k8s/coredns/coredns:v1.12.1")
        );
        let corefile = find(&objects, |o| match o {
            AddonObject::ConfigMap(c) => Some(c),
            _ => None,
        })
        .data
        .as_ref()
        .unwrap()["Corefile"]
            .clone();
        assert!(
            corefile.contains("kubernetes corp.local in-addr.arpa ip6.arpa {"),
            "{corefile}"
        );
        assert!(corefile.contains("disable denial corp.local"), "{corefile}");
    }

    #[test]
    fn kube_proxy_follows_the_model() {
        let model = control_plane_model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nimageRepository: mirror.example/k8s\ncontrolPlaneEndpoint: lb.example:7443\nnetworking: {podSubnet: 10.200.0.0/16}\n",
        );
        let objects = kube_proxy(&model.control_plane().unwrap()).unwrap();
        let ds = find(&objects, |o| match o {
            AddonObject::DaemonSet(d) => Some(d),
            _ => None,
        });
        let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("mirror.example/k8s/kube-proxy:v1.34.3")
        );
        let data = find(&objects, |o| match o {
            AddonObject::ConfigMap(c) => Some(c),
            _ => None,
        })
        .data
        .clone()
        .unwrap();
        assert_eq!(
            data["config.conf"],
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nbindAddress: \"0.0.0.0\"\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\nclusterCIDR: 10.200.0.0/16\nkind: KubeProxyConfiguration\n"
        );
        assert!(data["kubeconfig.conf"].contains("server: https://lb.example:7443\n"));
        let user = control_plane_model(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nclusterCIDR: 10.9.0.0/16\n",
        );
        let doc = kube_proxy_configuration(&user.control_plane().unwrap());
        assert_eq!(doc["mode"], "ipvs");
        assert_eq!(doc["clusterCIDR"], "10.9.0.0/16");
    }

    #[test]
    fn a_broken_template_is_refused() {
        let r = Renderer::with_templates(&[(
            "t",
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIPz: 1}\n",
        )])
        .unwrap();
        let text = r.render_text("t", &json!({})).unwrap();
        let doc = crate::yaml::documents(&text).unwrap();
        assert!(AddonObject::decode("t", &doc[0]).is_err());
    }
}
