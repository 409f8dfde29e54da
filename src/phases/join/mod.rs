//! The `kubestrap join` workflow: its run data (this node's spec, join's options, the host, and what
//! discovery learnt, found once and kept) and kubeadm's join phase tree. A worker runs `preflight`,
//! `kubelet-start` and `kubelet-wait-bootstrap`; the control-plane phases are skipped for it, as kubeadm
//! skips them. A control-plane node (`--control-plane`) runs them all.

pub mod control_plane;
pub mod discover;
pub mod kubelet_start;
pub mod preflight;
pub mod wait_bootstrap;

use crate::host::Host;
use crate::model::NodeSpec;
use crate::model::resolve::join::JoinOptions;
use crate::workflow::cluster_undo::ClusterUndo;
use crate::workflow::rollback::UndoEntry;
use crate::workflow::selection::PhaseTree;
use crate::workflow::{Phase, PhaseInfo, RunData, Workflow, describe};

pub use discover::Joining;

/// What every join phase reads and writes.
pub struct JoinData {
    pub node: NodeSpec,
    pub options: JoinOptions,
    pub host: Host,
    /// Undoes the API objects a failed run (or an unfinished earlier one) changed; phases that talk to
    /// the API server make their gateway through it ([`ClusterUndo::gateway`]).
    pub cluster_undo: ClusterUndo,
    /// The cluster as discovery found it, once a phase needed it.
    pub joining: Option<Joining>,
}

impl JoinData {
    /// The cluster this node joins: discovery and the cluster's configuration, read at the first call.
    pub fn joining(&mut self) -> anyhow::Result<&Joining> {
        if self.joining.is_none() {
            let found = discover::discover(&self.host, &self.node, &self.options)?;
            self.joining = Some(found);
        }
        self.joining
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("discovery produced no cluster"))
    }
}

impl RunData for JoinData {
    fn host(&self) -> &Host {
        &self.host
    }

    fn extra_undoers(&self) -> Vec<&dyn UndoEntry> {
        vec![
            &self.cluster_undo,
            &control_plane::etcd_join::EtcdMemberUndo,
            &crate::phases::init::etcd::EtcdDataUndo,
        ]
    }
}

/// join's phases in kubeadm's order (kubeadm's names, so its `skipPhases` values work).
pub fn phases() -> Vec<Phase<JoinData>> {
    vec![
        preflight::phase(),
        control_plane::prepare(),
        control_plane::check_etcd(),
        kubelet_start::phase(),
        control_plane::etcd_join(),
        wait_bootstrap::phase(),
        control_plane::wait_control_plane(),
        control_plane::join(),
    ]
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
