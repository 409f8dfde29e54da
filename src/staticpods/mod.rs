//! The static-Pod manifests of a control-plane node (kubeadm-behaviour.md §4): what goes into them,
//! rendering through `templates/static-pods/`, `--patches`, and writing them to the manifests folder.

pub mod args;
pub mod commands;
pub mod host_inputs;
pub mod probes;
pub mod values;
pub mod volumes;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;

use crate::config::init::InitSettings;
use crate::host::{Host, NodePath, well_known};
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
    settings: &InitSettings,
    inputs: &HostInputs,
) -> anyhow::Result<Pod> {
    let values = values::values(component, settings, inputs);
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

/// Renders, patches (with `settings.patches_dir`) and writes one component's manifest; returns the Pod.
pub fn create(
    host: &Host,
    settings: &InitSettings,
    inputs: &HostInputs,
    component: Component,
) -> anyhow::Result<Pod> {
    let renderer = Renderer::new()?;
    let mut pod = render(&renderer, component, settings, inputs)?;
    if let Some(dir) = &settings.patches_dir {
        let patches = PatchSet::cached(std::path::Path::new(dir), host.ui())?;
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
            .line(format!("[dryrun] Would write file {path:?} with content:"));
        for line in text.lines() {
            host.ui().line(format!("\t{line}"));
        }
    }
    Ok(pod)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::flags::InitFlags;
    use crate::host::Facts;

    /// Settings for node `cp1` at 192.168.8.201, v1.34.3, pod CIDR 10.244.0.0/16, plus `extra` config YAML
    /// (a ClusterConfiguration/InitConfiguration stream; empty for none).
    pub fn settings(extra: &str) -> InitSettings {
        settings_with(extra, false)
    }

    pub fn settings_with(extra: &str, localtime: bool) -> InitSettings {
        let base = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n\
                    nodeRegistration: {name: cp1}\nlocalAPIEndpoint: {advertiseAddress: 192.168.8.201}\n";
        let text = if extra.contains("kind: InitConfiguration") {
            extra.to_string()
        } else if extra.is_empty() {
            base.to_string()
        } else {
            format!("{base}---\n{extra}")
        };
        let file = crate::config::load::parse(&text).unwrap();
        let flags = InitFlags {
            mount_host_localtime: localtime,
            ..Default::default()
        };
        crate::config::init::resolve_file(file, &flags, &Facts::default()).unwrap()
    }

    #[test]
    fn every_component_renders_a_checked_pod() {
        let renderer = Renderer::new().unwrap();
        let s = settings("");
        for c in Component::ALL {
            let pod = render(&renderer, c, &s, &HostInputs::default()).unwrap();
            assert_eq!(pod.metadata.name.as_deref(), Some(c.name()));
            let text = manifest_text(&pod).unwrap();
            assert!(
                text.starts_with("apiVersion: v1\nkind: Pod\nmetadata:\n"),
                "{text}"
            );
        }
    }
}
