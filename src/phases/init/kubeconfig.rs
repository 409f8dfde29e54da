//! `init phase kubeconfig`: the admin, super-admin, kubelet, controller-manager and scheduler kubeconfigs (§3).

use super::InitData;
use crate::kubeconfig::files::{self, KubeconfigSpec};
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "kubeconfig",
        "Generate all kubeconfig files necessary to establish the control plane and the admin kubeconfig file",
        files::ALL.into_iter().map(file).collect(),
    )
    .with_run(announce)
}

fn announce(data: &mut InitData) -> anyhow::Result<()> {
    data.host.ui().line(format!(
        "[kubeconfig] Using kubeconfig folder {:?}",
        files::kubeconfig_dir().display_str()
    ));
    Ok(())
}

/// The sub-phase of one kubeconfig file.
fn file(spec: &'static KubeconfigSpec) -> Phase<InitData> {
    Phase::leaf(spec.name, spec.help, move |data: &mut InitData| {
        files::ensure(&data.host, &data.control_plane()?, spec)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_phases_are_kubeadms_files_in_order() {
        let names: Vec<&str> = phase().children.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "admin",
                "super-admin",
                "kubelet",
                "controller-manager",
                "scheduler"
            ]
        );
    }
}
