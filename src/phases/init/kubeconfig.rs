//! `init phase kubeconfig`: the admin, super-admin, kubelet, controller-manager and scheduler kubeconfigs.

use super::InitData;
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "kubeconfig",
        "Generate all kubeconfig files",
        None,
        Vec::new(),
    )
}
