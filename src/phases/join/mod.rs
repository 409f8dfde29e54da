//! The `kubestrap join` workflow: its run data (this node's spec, join's options, the host) and its
//! ordered phase list. The cluster part of the model is learnt by discovery (the join issue adds it).

pub mod preflight;

use crate::host::Host;
use crate::model::NodeSpec;
use crate::model::resolve::join::JoinOptions;
use crate::workflow::cluster_undo::ClusterUndo;
use crate::workflow::rollback::UndoEntry;
use crate::workflow::selection::PhaseTree;
use crate::workflow::{Phase, PhaseInfo, RunData, Workflow, describe};

/// What every join phase reads and writes.
pub struct JoinData {
    pub node: NodeSpec,
    pub options: JoinOptions,
    pub host: Host,
    /// Undoes the API objects a failed run (or an unfinished earlier one) changed; phases that talk to
    /// the API server make their gateway through it ([`ClusterUndo::gateway`]).
    pub cluster_undo: ClusterUndo,
}

impl RunData for JoinData {
    fn host(&self) -> &Host {
        &self.host
    }

    fn extra_undoers(&self) -> Vec<&dyn UndoEntry> {
        vec![&self.cluster_undo]
    }
}

/// join's phases in kubeadm's order. Only phases that work are registered.
pub fn phases() -> Vec<Phase<JoinData>> {
    vec![preflight::phase()]
}

pub fn workflow() -> Workflow<JoinData> {
    Workflow::new("join", phases())
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
