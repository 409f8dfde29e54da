//! `kubestrap join [api-server-endpoint]` and `kubestrap join phase <phase> [sub…]`: joining this node to
//! a cluster as a worker, or as another control-plane node (`--control-plane`).

use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::config::flags::JoinFlags;
use crate::model::resolve::join::{DiscoverySource, resolve};
use crate::phases::join::{JoinData, JoinTree, workflow};
use crate::workflow::cluster_undo::ClusterUndo;
use crate::workflow::selection::PhaseSelection;
use crate::workflow::{self, RunSpec, Target};

#[derive(Debug, Args)]
pub struct JoinCmd {
    /// The API server endpoint (host:port) to discover the cluster through
    #[arg(value_name = "API_SERVER_ENDPOINT")]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub flags: JoinFlags,
    #[command(subcommand)]
    pub sub: Option<JoinSub>,
}

#[derive(Debug, Subcommand)]
pub enum JoinSub {
    /// Run one phase of join (and `all` or one of its sub-phases)
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
    let join = workflow();
    let known_phases = workflow::phase_paths(&join.tree());
    let (target, endpoint) = match &cmd.sub {
        // The endpoint may come before `phase` or after the phase's name.
        Some(JoinSub::Phase(args)) => (
            args.selection.target.clone(),
            args.selection
                .positional
                .as_deref()
                .or(cmd.endpoint.as_deref()),
        ),
        None => (Target::whole(), cmd.endpoint.as_deref()),
    };
    let resolved = resolve(endpoint, &cmd.flags, host.facts(), &known_phases)?;
    if let DiscoverySource::File { path } = &resolved.options.discovery {
        crate::discovery::fetch::check_file(path, resolved.options.tls_bootstrap_token.is_some())?;
    }
    for notice in &resolved.notices {
        ui.warn(notice);
    }
    let spec = RunSpec {
        target,
        skip: resolved.options.skip_phases.clone(),
        keep_on_failure: resolved.options.keep_on_failure,
    };
    let mut data = JoinData {
        node: resolved.node,
        options: resolved.options,
        host,
        cluster_undo: ClusterUndo::default(),
        joining: None,
    };
    workflow::execute(&join, &mut data, &spec)
}
