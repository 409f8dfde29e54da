//! The `kubestrap init` workflow: its run data (the model, init's options, the host) and its ordered
//! phase list. Before its phases, an init run that changes the node records the model it uses
//! (`/var/lib/kubestrap/cluster.yaml`), journaled like every other file.

pub mod addon;
pub mod api;
pub mod bootstrap_token;
pub mod certs;
pub mod control_plane;
pub mod discovery;
pub mod etcd;
pub mod kubeconfig;
pub mod kubelet_finalize;
pub mod kubelet_start;
pub mod mark_control_plane;
pub mod pod_network_ready;
pub mod preflight;
pub mod show_join_command;
pub mod upload_certs;
pub mod upload_config;
pub mod wait_control_plane;

use crate::host::Host;
use crate::model::resolve::init::InitOptions;
use crate::model::{ControlPlane, Model, record};
use crate::workflow::cluster_undo::ClusterUndo;
use crate::workflow::rollback::UndoEntry;
use crate::workflow::selection::PhaseTree;
use crate::workflow::{Phase, PhaseInfo, RunData, Target, Workflow, command_line, describe};

/// What every init phase reads and writes.
pub struct InitData {
    pub model: Model,
    pub options: InitOptions,
    pub host: Host,
    /// Undoes the API objects a failed run (or an unfinished earlier one) changed; phases that talk to
    /// the API server make their gateway through it ([`ClusterUndo::gateway`]).
    pub cluster_undo: ClusterUndo,
    /// The kubestrap binary the discovery endpoint's unit runs; `None` when the discovery phase does
    /// not run or the endpoint is disabled (`--discovery-port 0`).
    pub discovery_binary: Option<std::path::PathBuf>,
    /// `--pod-network-manifest`, edited: what the pod-network phase applies instead of rendering.
    pub pod_network_manifest: Option<crate::addons::manifest::Edited>,
}

impl InitData {
    /// The control-plane view of the model (init always makes a control-plane node).
    pub fn control_plane(&self) -> anyhow::Result<ControlPlane<'_>> {
        Ok(self.model.control_plane()?)
    }
}

impl RunData for InitData {
    fn host(&self) -> &Host {
        &self.host
    }

    fn extra_undoers(&self) -> Vec<&dyn UndoEntry> {
        vec![&self.cluster_undo, &etcd::EtcdDataUndo]
    }
}

/// init's phases in kubeadm's order. Only phases that work are registered.
pub fn phases() -> Vec<Phase<InitData>> {
    vec![
        preflight::phase(),
        certs::phase(),
        kubeconfig::phase(),
        etcd::phase(),
        control_plane::phase(),
        kubelet_start::phase(),
        wait_control_plane::phase(),
        upload_config::phase(),
        upload_certs::phase(),
        mark_control_plane::phase(),
        bootstrap_token::phase(),
        kubelet_finalize::phase(),
        addon::phase(),
        discovery::phase(),
        show_join_command::phase(),
    ]
}

/// The init workflow: its phases, after recording the model (not for a preflight-only run, which
/// changes nothing but what `--fix` applies).
pub fn workflow() -> Workflow<InitData> {
    Workflow::new("init", phases()).with_prologue(|data: &mut InitData, target: &Target| {
        if target.top() == Some(preflight::NAME) {
            return Ok(());
        }
        record::write(&data.host, &data.model, &command_line("init", target))
    })
}

/// The phase tree for the command line.
#[derive(Debug, Clone, Copy)]
pub struct InitTree;

impl PhaseTree for InitTree {
    fn tree() -> Vec<PhaseInfo> {
        describe(&phases())
    }
}
