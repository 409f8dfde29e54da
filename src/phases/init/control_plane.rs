//! `init phase control-plane`: static-pod manifests of the API server, controller manager and scheduler.

use super::InitData;
use crate::host::well_known::MANIFESTS_DIR;
use crate::staticpods::{self, Component, HostInputs};
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "control-plane",
        "Generate all static Pod manifest files necessary to establish the control plane",
        vec![
            Phase::leaf(
                "apiserver",
                "Generates the kube-apiserver static Pod manifest",
                |data: &mut InitData| create(data, Component::KubeApiServer),
            ),
            Phase::leaf(
                "controller-manager",
                "Generates the kube-controller-manager static Pod manifest",
                |data: &mut InitData| create(data, Component::KubeControllerManager),
            ),
            Phase::leaf(
                "scheduler",
                "Generates the kube-scheduler static Pod manifest",
                |data: &mut InitData| create(data, Component::KubeScheduler),
            ),
        ],
    )
    .with_run(announce_folder)
}

fn announce_folder(data: &mut InitData) -> anyhow::Result<()> {
    data.host.ui().line(format!(
        "[control-plane] Using manifest folder {MANIFESTS_DIR:?}"
    ));
    Ok(())
}

fn create(data: &mut InitData, component: Component) -> anyhow::Result<()> {
    data.host.ui().line(format!(
        "[control-plane] Creating static Pod manifest for {:?}",
        component.name()
    ));
    let cp = data.control_plane()?;
    let inputs = HostInputs::gather(&data.host, cp.cert_dir());
    let patches = data.options.patches_dir.as_deref();
    staticpods::create(&data.host, &cp, &inputs, component, patches)?;
    Ok(())
}
