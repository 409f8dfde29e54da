//! `kubestrap reset` and `kubestrap reset phase <phase> [sub]`: settings, the confirmation rule, the run,
//! and the report (text, or `-o json|yaml`; exit 1 when something is left).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::GlobalOpts;
use crate::config::defaults::{DEFAULT_CERT_DIR, DEFAULT_CRI_SOCKET};
use crate::error::{FieldError, InvalidInput, Refused};
use crate::host::inventory::{Item, Report};
use crate::host::{Facts, Host, NodePath, Root};
use crate::phases::reset::{ResetData, ResetSettings, ResetTree, workflow};
use crate::workflow::selection::{PhaseSelection, PhaseTree};
use crate::workflow::{self, RunSpec, Target};

#[derive(Debug, Args)]
pub struct ResetCmd {
    /// Reset the node without prompting for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Path to a kubeadm configuration file (ResetConfiguration)
    #[arg(long, allow_hyphen_values = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The path to the directory where the certificates are stored
    #[arg(long, allow_hyphen_values = true, value_name = "DIR")]
    pub cert_dir: Option<String>,
    /// Cleanup the "/etc/kubernetes/tmp" directory
    #[arg(long)]
    pub cleanup_tmp_dir: bool,
    /// Path to the CRI socket to connect
    #[arg(long, allow_hyphen_values = true, value_name = "SOCKET")]
    pub cri_socket: Option<String>,
    /// Phases to skip (comma-separated; `cleanup-node/netfilter` names a sub-phase)
    #[arg(
        long,
        allow_hyphen_values = true,
        value_delimiter = ',',
        value_name = "PHASES"
    )]
    pub skip_phases: Vec<String>,
    /// Checks whose errors are shown as warnings (`all` ignores every check)
    #[arg(
        long,
        allow_hyphen_values = true,
        value_delimiter = ',',
        value_name = "CHECKS"
    )]
    pub ignore_preflight_errors: Vec<String>,
    /// Also delete persistent-volume data under the kubelet directory
    #[arg(long)]
    pub purge_volumes: bool,
    /// Do not back up the last etcd member's data and the PKI before wiping them
    #[arg(long)]
    pub no_backup: bool,
    #[command(subcommand)]
    pub sub: Option<ResetSub>,
}

#[derive(Debug, Subcommand)]
pub enum ResetSub {
    /// Run one phase of reset (and `all` or one of its sub-phases)
    Phase(ResetPhaseArgs),
}

#[derive(Debug, Args)]
pub struct ResetPhaseArgs {
    #[command(subcommand)]
    pub selection: PhaseSelection<ResetTree>,
}

/// Flags over the ResetConfiguration over kubeadm's defaults; invalid values are exit 2.
pub fn resolve(global: &GlobalOpts, cmd: &ResetCmd) -> anyhow::Result<ResetSettings> {
    let file = match &cmd.config {
        Some(path) => crate::config::load::read_file(path)?
            .reset
            .unwrap_or_default(),
        None => Default::default(),
    };
    let mut errors: Vec<FieldError> = crate::config::validate::reset_configuration(&file);
    let cert_dir = cmd
        .cert_dir
        .clone()
        .or(file.certificates_dir.clone())
        .unwrap_or_else(|| DEFAULT_CERT_DIR.to_string());
    crate::config::validate::absolute_path("--cert-dir", &cert_dir, &mut errors);
    let cri_socket = cmd
        .cri_socket
        .clone()
        .or(file.cri_socket.clone())
        .unwrap_or_else(|| DEFAULT_CRI_SOCKET.to_string());
    crate::config::validate::cri_socket("--cri-socket", &cri_socket, &mut errors);
    let mut ignore = file.ignore_preflight_errors.clone().unwrap_or_default();
    ignore.extend(cmd.ignore_preflight_errors.iter().cloned());
    crate::config::validate::ignore_preflight_errors(
        "--ignore-preflight-errors",
        &ignore,
        &mut errors,
    );
    let mut skip = file.skip_phases.clone().unwrap_or_default();
    skip.extend(cmd.skip_phases.iter().map(|s| s.trim().to_string()));
    let known_phases = workflow::phase_paths(&ResetTree::tree());
    crate::config::validate::phase_list("--skip-phases", &skip, &known_phases, &mut errors);
    InvalidInput::check(errors)?;
    let force = cmd.force || file.force.unwrap_or(false);
    let dry_run = global.dry_run || file.dry_run.unwrap_or(false);
    if !force && !dry_run && (global.quiet || !std::io::stdin().is_terminal()) {
        return Err(Refused(
            "reset deletes cluster state and needs confirmation, but stdin is not a terminal (or --quiet was given); pass --force to reset without a prompt".to_string(),
        )
        .into());
    }
    Ok(ResetSettings {
        cert_dir: NodePath::new(cert_dir),
        cri_socket,
        cleanup_tmp_dir: cmd.cleanup_tmp_dir || file.cleanup_tmp_dir.unwrap_or(false),
        force,
        dry_run,
        purge_volumes: cmd.purge_volumes,
        no_backup: cmd.no_backup,
        skip_phases: skip,
        ignore_preflight_errors: ignore,
        unmount_flags: file.unmount_flags.clone().unwrap_or_default(),
    })
}

/// `--dry-run -o json`: the exact plan.
#[derive(Debug, Serialize)]
struct Plan<'a> {
    planned: &'a [Item],
    kept: &'a [Item],
}

pub fn run(global: &GlobalOpts, cmd: ResetCmd) -> anyhow::Result<()> {
    let settings = resolve(global, &cmd)?;
    let host = Host::new(
        Root::new(&global.root),
        Facts::from_env(),
        settings.dry_run,
        global.ui(),
    );
    let ui = host.ui().clone();
    let spec = RunSpec {
        target: match &cmd.sub {
            Some(ResetSub::Phase(args)) => args.selection.target.clone(),
            None => Target::whole(),
        },
        skip: settings.skip_phases.clone(),
        keep_on_failure: false,
    };
    let mut data = ResetData::new(settings, host);
    let result = workflow::execute(&workflow(), &mut data, &spec);
    data.finish_progress();
    result?;
    if data.dry_run() {
        // Each step was printed by the Host gateway as it was planned; the document is the same plan.
        let planned = data.host.planned();
        let kept = data.host.plan_kept();
        let plan = Plan {
            planned: &planned,
            kept: &kept,
        };
        return ui.result(&plan, || render_plan(&planned, &kept));
    }
    let report = data.report();
    ui.result(&report, || render_report(&report, ui.verbosity >= 1))?;
    if !report.left.is_empty() {
        anyhow::bail!(
            "reset left {} item(s) behind{}; see the report above",
            report.left.len(),
            if report.reboot_required {
                ", and a reboot is required to remove some of them"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn lines(title: &str, items: &[Item]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut out = format!("{title}:\n");
    for i in items {
        out.push_str(&format!(
            "  {:<16} {}  ({})\n",
            i.kind.name(),
            i.target,
            i.reason
        ));
    }
    out
}

/// The closing line of a dry run's text output (the steps themselves were printed as planned).
fn render_plan(planned: &[Item], kept: &[Item]) -> String {
    if planned.is_empty() {
        return "[dry-run] Nothing of a cluster to remove on this host\n".to_string();
    }
    format!(
        "[dry-run] {} change(s) planned, {} item(s) kept\n",
        planned.len(),
        kept.len()
    )
}

/// The text report: counts and what was kept or left; every removed item too with `-v 1`.
fn render_report(report: &Report, list_removed: bool) -> String {
    let mut out = format!("\n[reset] Removed {} item(s)\n", report.removed.len());
    if list_removed {
        out.push_str(&lines("[reset] Removed", &report.removed));
    }
    out.push_str(&lines("[reset] Kept", &report.kept));
    out.push_str(&lines("[reset] Left behind", &report.left));
    if report.reboot_required {
        out.push_str(
            "[reset] A reboot is required: the kernel holds some of the items left behind\n",
        );
    }
    out
}
