//! The `kubestrap join` workflow: its run data and its ordered phase list.

pub mod preflight;

use crate::config::join::JoinSettings;
use crate::host::Host;
use crate::workflow::selection::PhaseTree;
use crate::workflow::{Phase, PhaseInfo, describe};

/// What every join phase reads and writes.
pub struct JoinData {
    pub settings: JoinSettings,
    pub host: Host,
}

/// join's phases in kubeadm's order. Only phases that work are registered.
pub fn phases() -> Vec<Phase<JoinData>> {
    vec![preflight::phase()]
}

/// The phase tree for the command line.
#[derive(Debug, Clone, Copy)]
pub struct JoinTree;

impl PhaseTree for JoinTree {
    fn tree() -> Vec<PhaseInfo> {
        describe(&phases())
    }

    fn positional() -> Option<(&'static str, &'static str)> {
        Some((
            "api-server-endpoint",
            "The API server endpoint (host:port) to discover the cluster through",
        ))
    }
}
