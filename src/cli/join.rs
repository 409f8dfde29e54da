//! `kubestrap join phase <phase>`: joining a node to a cluster, one phase at a time. The whole
//! workflow (`kubestrap join` without `phase`) is refused until all of join's phases exist.

use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::config::flags::JoinFlags;
use crate::host::lock::NodeLock;
use crate::phases::join::{JoinData, JoinTree, phases};
use crate::workflow;
use crate::workflow::selection::{PhaseSelection, PhaseTree};

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
    let endpoint = args.selection.positional.as_deref();
    let settings = crate::config::join::resolve(endpoint, &cmd.flags, host.facts())?;
    workflow::validate_skip_list(&JoinTree::tree(), &settings.skip_phases)?;
    for notice in &settings.notices {
        ui.warn(notice);
    }
    let target = args.selection.target.clone();
    let command = format!("join phase {}", target.phase.as_deref().unwrap_or_default());
    let _lock = if host.dry_run() {
        None
    } else {
        Some(NodeLock::acquire(host.root(), &command)?)
    };
    host.start_journal(&command)?;
    let skip = settings.skip_phases.clone();
    let mut data = JoinData { settings, host };
    let result = workflow::run(&phases(), &mut data, &target, &skip, &ui);
    super::init::finish(&data.host, result)
}
