//! The static-Pod manifests of a control-plane node: what goes into them,
//! rendering through `templates/static-pods/`, `--patches`, and writing them to the manifests folder.

pub mod args;
pub mod commands;
pub mod host_inputs;
pub mod probes;
pub mod values;
pub mod volumes;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;

use crate::host::{Host, NodePath, well_known};
use crate::model::ControlPlane;
use crate::patches::{PatchSet, Schema};
use crate::render::{Renderer, decode_checked};
pub use host_inputs::HostInputs;

/// Manifest files are secrets-adjacent (they name key files); kubeadm writes them 0600 in a 0700 folder.
pub const MANIFEST_MODE: u32 = 0o600;
pub const MANIFESTS_DIR_MODE: u32 = 0o700;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Etcd,
    KubeApiServer,
    KubeControllerManager,
    KubeScheduler,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Etcd,
        Component::KubeApiServer,
        Component::KubeControllerManager,
        Component::KubeScheduler,
    ];

    /// The Pod, container, binary and patch-target name.
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiServer => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
        }
    }

    fn template(self) -> String {
        format!("static-pods/{}.yaml", self.name())
    }

    /// `/etc/kubernetes/manifests/<name>.yaml`.
    pub fn manifest_path(self) -> NodePath {
        NodePath::new(well_known::MANIFESTS_DIR).join(format!("{}.yaml", self.name()))
    }
}

/// Renders a component's Pod (before patches).
pub fn render(
    renderer: &Renderer,
    component: Component,
    cp: &ControlPlane,
    inputs: &HostInputs,
) -> anyhow::Result<Pod> {
    let values = values::values(component, cp, inputs)?;
    Ok(renderer.render_pod(&component.template(), &values)?)
}

/// Applies the patch set's patches for the component, and checks the result is still a Pod.
pub fn patch(
    pod: &Pod,
    component: Component,
    patches: &PatchSet,
    host: &Host,
) -> anyhow::Result<Pod> {
    let mut doc = serde_json::to_value(pod)?;
    patches.apply(component.name(), &mut doc, Schema::Pod, host.ui())?;
    decode_checked::<Pod>(&doc, "Pod").with_context(|| {
        format!(
            "the patches in {:?} for target {:?} do not give a valid Pod",
            patches.dir.display(),
            component.name()
        )
    })
}

/// The manifest text: the typed Pod with sorted keys, as kubeadm writes it.
pub fn manifest_text(pod: &Pod) -> anyhow::Result<String> {
    crate::yaml::to_string(pod)
}

/// Renders, patches (with the patches in `patches_dir`, when given) and writes one component's
/// manifest; returns the Pod.
pub fn create(
    host: &Host,
    cp: &ControlPlane,
    inputs: &HostInputs,
    component: Component,
    patches_dir: Option<&std::path::Path>,
) -> anyhow::Result<Pod> {
    let renderer = Renderer::new()?;
    let mut pod = render(&renderer, component, cp, inputs)?;
    if let Some(dir) = patches_dir {
        let patches = PatchSet::cached(dir, host.ui())?;
        pod = patch(&pod, component, &patches, host)?;
    }
    let text = manifest_text(&pod)?;
    host.ensure_dir(
        &NodePath::new(well_known::MANIFESTS_DIR),
        MANIFESTS_DIR_MODE,
    )?;
    let path = component.manifest_path();
    host.write_file(&path, text.as_bytes(), MANIFEST_MODE)
        .with_context(|| {
            format!(
                "failed to create static pod manifest file for {:?}",
                component.name()
            )
        })?;
    if host.dry_run() {
        host.ui()
            .line(format!("[dry-run] Content of {}:", host.shown(&path)));
        for line in text.lines() {
            host.ui().line(format!("\t{line}"));
        }
    }
    Ok(pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;

    fn model(extra: &str) -> Model {
        crate::model::testing::control_plane_model(extra)
    }

    #[test]
    fn every_component_renders_a_checked_pod() {
        let renderer = Renderer::new().unwrap();
        let model = model("");
        let cp = model.control_plane().unwrap();
        for c in Component::ALL {
            let pod = render(&renderer, c, &cp, &HostInputs::default()).unwrap();
            assert_eq!(pod.metadata.name.as_deref(), Some(c.name()));
            let text = manifest_text(&pod).unwrap();
            assert!(
                text.starts_with("apiVersion: v1\nkind: Pod\nmetadata:\n"),
                "{text}"
            );
        }
    }

    #[test]
    fn etcd_of_an_external_cluster_is_an_error() {
        let model = model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\netcd:\n  external:\n    endpoints: [\"https://10.0.0.9:2379\"]\n",
        );
        let cp = model.control_plane().unwrap();
        let err = render(
            &Renderer::new().unwrap(),
            Component::Etcd,
            &cp,
            &HostInputs::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("external"), "{err}");
    }
}
