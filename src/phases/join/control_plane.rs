//! join's control-plane phases (`control-plane-prepare` and its sub-phases, `etcd-join`,
//! `wait-control-plane`, `control-plane-join mark-control-plane`): skipped for a worker, as kubeadm
//! skips them; a control-plane join is not built yet, so for one they refuse (exit 2).

use super::JoinData;
use crate::error::Refused;
use crate::workflow::Phase;

/// The refusal every control-plane phase gives.
pub fn not_built() -> Refused {
    Refused(
        "joining a control-plane node (--control-plane) is not built yet: kubestrap join makes worker nodes; \
         'kubestrap join phase preflight --control-plane' checks a control-plane candidate"
            .to_string(),
    )
}

fn control_plane_only(name: &'static str, help: &'static str) -> Phase<JoinData> {
    Phase::leaf(name, help, |_data: &mut JoinData| Err(not_built().into()))
        .with_run_if(|data: &JoinData| data.node.is_control_plane())
}

pub fn prepare() -> Phase<JoinData> {
    Phase::group(
        "control-plane-prepare",
        "Prepare the machine for serving a control plane",
        vec![
            control_plane_only(
                "download-certs",
                "Download certificates shared among control-plane nodes from the kubeadm-certs Secret",
            ),
            control_plane_only(
                "certs",
                "Generate the certificates for the new control plane components",
            ),
            control_plane_only(
                "kubeconfig",
                "Generate the kubeconfig for the new control plane components",
            ),
            control_plane_only(
                "control-plane",
                "Generate the manifests for the new control plane components",
            ),
        ],
    )
    .with_run_if(|data: &JoinData| data.node.is_control_plane())
}

pub fn etcd_join() -> Phase<JoinData> {
    control_plane_only("etcd-join", "Join etcd for control plane nodes")
}

pub fn wait_control_plane() -> Phase<JoinData> {
    control_plane_only("wait-control-plane", "Wait for the control plane to start")
}

pub fn join() -> Phase<JoinData> {
    Phase::group(
        "control-plane-join",
        "Join a machine as a control plane instance",
        vec![control_plane_only(
            "mark-control-plane",
            "Mark a node as a control-plane",
        )],
    )
    .with_run_if(|data: &JoinData| data.node.is_control_plane())
}
