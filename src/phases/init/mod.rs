//! The `kubestrap init` workflow: its run data and its ordered phase list.

pub mod certs;
pub mod control_plane;
pub mod etcd;
pub mod kubeconfig;
pub mod preflight;

use crate::config::init::InitSettings;
use crate::host::Host;
use crate::workflow::selection::PhaseTree;
use crate::workflow::{Phase, PhaseInfo, describe};

/// What every init phase reads and writes.
pub struct InitData {
    pub settings: InitSettings,
    pub host: Host,
}

/// init's phases in kubeadm's order. Only phases that work are registered.
pub fn phases() -> Vec<Phase<InitData>> {
    vec![
        preflight::phase(),
        certs::phase(),
        kubeconfig::phase(),
        etcd::phase(),
        control_plane::phase(),
    ]
}

/// The phase tree for the command line.
#[derive(Debug, Clone, Copy)]
pub struct InitTree;

impl PhaseTree for InitTree {
    fn tree() -> Vec<PhaseInfo> {
        describe(&phases())
    }
}
