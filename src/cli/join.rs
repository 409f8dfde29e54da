//! `kubestrap join phase <phase>`: joining a node to a cluster, one phase at a time. The whole
//! workflow (`kubestrap join` without `phase`) is refused until all of join's phases exist.

use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::config::flags::JoinFlags;
use crate::model::resolve::join::resolve;
use crate::phases::join::{JoinData, JoinTree, workflow};
use crate::workflow::cluster_undo::ClusterUndo;
use crate::workflow::selection::PhaseSelection;
use crate::workflow::{self, RunSpec};

#[derive(Debug, Args)]
pub struct JoinCmd {
    #[command(flatten)]
    pub flags: JoinFlags,
    #[command(subcommand)]
    pub sub: JoinSub,
}

#[derive(Debug, Subcommand)]
pub enum JoinSub {
    /// Run one phase of join
    Phase(JoinPhaseArgs),
}

#[derive(Debug, Args)]
pub struct JoinPhaseArgs {
    #[command(subcommand)]
    pub selection: PhaseSelection<JoinTree>,
}

pub fn run(global: &GlobalOpts, cmd: JoinCmd) -> anyhow::Result<()> {
    let ui = global.ui();
    let host = global.host();
    let JoinSub::Phase(args) = &cmd.sub;
    let join = workflow();
    let known_phases = workflow::phase_paths(&join.tree());
    let endpoint = args.selection.positional.as_deref();
    let resolved = resolve(endpoint, &cmd.flags, host.facts(), &known_phases)?;
    for notice in &resolved.notices {
        ui.warn(notice);
    }
    let spec = RunSpec {
        target: args.selection.target.clone(),
        skip: resolved.options.skip_phases.clone(),
        keep_on_failure: false,
    };
    let mut data = JoinData {
        node: resolved.node,
        options: resolved.options,
        host,
        cluster_undo: ClusterUndo::default(),
    };
    workflow::execute(&join, &mut data, &spec)
}
