//! `kubestrap init` and `kubestrap init phase <phase> [sub]`.

use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::config::flags::InitFlags;
use crate::host::journal::Outcome;
use crate::host::lock::NodeLock;
use crate::host::{Host, Undone};
use crate::phases::init::{InitData, InitTree, phases};
use crate::workflow::selection::{PhaseSelection, PhaseTree};
use crate::workflow::{self, Target};

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
    let settings = crate::config::init::resolve(&cmd.flags, host.facts())?;
    workflow::validate_skip_list(&InitTree::tree(), &settings.skip_phases)?;
    if let Some(dir) = &settings.patches_dir {
        crate::patches::check_dir(std::path::Path::new(dir))?;
    }
    for notice in &settings.notices {
        ui.warn(notice);
    }
    let target = match &cmd.sub {
        Some(InitSub::Phase(args)) => args.selection.target.clone(),
        None => Target::default(),
    };
    let command = match &target.phase {
        Some(p) => format!(
            "init phase {p}{}",
            target
                .child
                .as_ref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default()
        ),
        None => "init".to_string(),
    };
    if target.phase.is_none() {
        ui.line(format!(
            "[init] Using Kubernetes version: {}",
            settings.kubernetes_version
        ));
    }
    let _lock = if host.dry_run() {
        None
    } else {
        Some(NodeLock::acquire(host.root(), &command)?)
    };
    host.start_journal(&command)?;
    let skip = settings.skip_phases.clone();
    let mut data = InitData { settings, host };
    let result = workflow::run(&phases(), &mut data, &target, &skip, &ui);
    finish(&data.host, result)
}

/// Journals the outcome; after a failure, rolls back this run's side effects and reports them.
pub fn finish(host: &Host, result: anyhow::Result<()>) -> anyhow::Result<()> {
    let ui = host.ui();
    match result {
        Ok(()) => {
            host.finish_journal(Outcome::Succeeded)?;
            Ok(())
        }
        Err(err) if host.dry_run() => Err(err),
        Err(err) => {
            host.finish_journal(Outcome::Failed)?;
            match host.roll_back_run() {
                Ok(undone) => {
                    let mut removed = 0;
                    for u in &undone {
                        match u {
                            Undone::Removed(_)
                            | Undone::Restored(_)
                            | Undone::ObjectDeleted(_)
                            | Undone::ObjectRestored(_) => removed += 1,
                            Undone::Kept(path, why) => ui.warn(format!("[rollback] kept {path}: {why}")),
                            Undone::ObjectKept(target, why) => {
                                ui.warn(format!("[rollback] kept {target}: {why}"))
                            }
                            Undone::Foreign { kind, target } => {
                                ui.warn(format!("[rollback] {kind} {target} is left for 'kubestrap reset'"))
                            }
                            Undone::AlreadyGone(_) | Undone::Nothing => {}
                        }
                    }
                    if removed > 0 {
                        ui.line(format!("[rollback] Undid {removed} change(s) made by this run"));
                    }
                }
                Err(rollback_err) => ui.warn(format!(
                    "[rollback] could not undo this run's changes: {rollback_err:#}; run 'kubestrap reset'"
                )),
            }
            Err(err)
        }
    }
}
