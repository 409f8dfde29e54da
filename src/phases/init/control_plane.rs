//! `init phase control-plane`: static-pod manifests of the API server, controller manager and scheduler.

use super::InitData;
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "control-plane",
        "Generate all static Pod manifest files necessary to establish the control plane",
        None,
        Vec::new(),
    )
}
