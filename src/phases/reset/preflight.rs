//! reset's `preflight` phase: the warning and confirmation prompt (unless `--force`), then the reset role
//! of the preflight catalogue (root, and the tools and runtime reset works through).

use std::io::IsTerminal;

use anyhow::bail;

use super::ResetData;
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf("preflight", "Run reset pre-flight checks", run)
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    let ui = data.host.ui().clone();
    if !data.settings.force && !data.dry_run() {
        ui.line("[reset] WARNING: Changes made to this host by 'kubestrap init' or 'kubestrap join' will be reverted.");
        if ui.quiet || !std::io::stdin().is_terminal() {
            // The command line refuses before this point; a phase run on its own ends here too.
            bail!("reset needs confirmation: run it on a terminal, or pass --force");
        }
        let proceed = dialoguer::Confirm::new()
            .with_prompt("[reset] Are you sure you want to proceed?")
            .default(false)
            .interact()?;
        if !proceed {
            bail!("aborted reset operation");
        }
    }
    crate::preflight::run_reset(
        &data.host,
        &data.settings.cri_socket,
        &data.settings.ignore_preflight_errors,
    )?;
    Ok(())
}
