//! `kubestrap init` and `kubestrap init phase <phase> [sub…]`.

use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::config::flags::InitFlags;
use crate::model::resolve::init::resolve;
use crate::phases::init::{InitData, InitTree, workflow};
use crate::workflow::cluster_undo::ClusterUndo;
use crate::workflow::selection::PhaseSelection;
use crate::workflow::{self, RunSpec, Target};

#[derive(Debug, Args)]
pub struct InitCmd {
    #[command(flatten)]
    pub flags: InitFlags,
    #[command(subcommand)]
    pub sub: Option<InitSub>,
}

#[derive(Debug, Subcommand)]
pub enum InitSub {
    /// Run one phase of init (and `all` or one of its sub-phases)
    Phase(InitPhaseArgs),
}

#[derive(Debug, Args)]
pub struct InitPhaseArgs {
    #[command(subcommand)]
    pub selection: PhaseSelection<InitTree>,
}

pub fn run(global: &GlobalOpts, cmd: InitCmd) -> anyhow::Result<()> {
    let ui = global.ui();
    let host = global.host();
    let init = workflow();
    let known_phases = workflow::phase_paths(&init.tree());
    let mut flags = cmd.flags.clone();
    let manifest = crate::phases::init::addon::read_manifest(&mut flags)?;
    let resolved = resolve(&flags, host.facts(), &known_phases)?;
    let pod_network_manifest = match manifest {
        Some(m) => Some(crate::phases::init::addon::edit_manifest(
            m,
            &resolved.model,
            host.facts(),
        )?),
        None => None,
    };
    for notice in &resolved.notices {
        ui.warn(notice);
    }
    let target = match &cmd.sub {
        Some(InitSub::Phase(args)) => args.selection.target.clone(),
        None => Target::whole(),
    };
    if target.is_whole() {
        ui.line(format!(
            "[init] Using Kubernetes version: {}",
            resolved.model.cluster.kubernetes_version
        ));
    }
    // The discovery endpoint's unit runs this binary: refused before anything is written when it
    // lies in a temporary location.
    let discovery_binary = crate::phases::init::discovery::check_binary(
        &host,
        &resolved.model,
        &target,
        &resolved.options.skip_phases,
    )?;
    let spec = RunSpec {
        target,
        skip: resolved.options.skip_phases.clone(),
        keep_on_failure: resolved.options.keep_on_failure,
    };
    let mut data = InitData {
        model: resolved.model,
        options: resolved.options,
        host,
        cluster_undo: ClusterUndo::default(),
        discovery_binary,
        pod_network_manifest,
    };
    workflow::execute(&init, &mut data, &spec)
}
