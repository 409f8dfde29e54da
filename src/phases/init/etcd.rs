//! `init phase etcd local`: the static-pod manifest of a local etcd member.

use super::InitData;
use crate::host::well_known::MANIFESTS_DIR;
use crate::staticpods::{self, Component, HostInputs};
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "etcd",
        "Generate static Pod manifest file for local etcd",
        vec![
            Phase::leaf(
                "local",
                "Generate the static Pod manifest file for a local, single-node local etcd instance",
                run_local,
            )
            .with_run_if(|data: &InitData| !data.model.cluster.etcd.is_external()),
        ],
    )
}

fn run_local(data: &mut InitData) -> anyhow::Result<()> {
    data.host.ui().line(format!(
        "[etcd] Creating static Pod manifest for local etcd in {MANIFESTS_DIR:?}"
    ));
    let cp = data.control_plane()?;
    let inputs = HostInputs::gather(&data.host, cp.cert_dir());
    let patches = data.options.patches_dir.as_deref();
    staticpods::create(&data.host, &cp, &inputs, Component::Etcd, patches)?;
    Ok(())
}
