//! `init phase kubeconfig`: the admin, super-admin, kubelet, controller-manager and scheduler kubeconfigs (§3).

use super::InitData;
use crate::kubeconfig::files;
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "kubeconfig",
        "Generate all kubeconfig files necessary to establish the control plane and the admin kubeconfig file",
        Some(announce),
        vec![
            file::<0>(),
            file::<1>(),
            file::<2>(),
            file::<3>(),
            file::<4>(),
        ],
    )
}

fn announce(data: &mut InitData) -> anyhow::Result<()> {
    data.host.ui().line(format!(
        "[kubeconfig] Using kubeconfig folder {:?}",
        files::kubeconfig_dir().display_str()
    ));
    Ok(())
}

/// The sub-phase of `files::ALL[I]`.
fn file<const I: usize>() -> Phase<InitData> {
    let spec = files::ALL[I];
    Phase::leaf(spec.name, spec.help, run_file::<I>)
}

fn run_file<const I: usize>(data: &mut InitData) -> anyhow::Result<()> {
    files::ensure(&data.host, &data.settings, files::ALL[I])
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
