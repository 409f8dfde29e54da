//! reset's `preflight` phase: the warning and confirmation prompt (unless `--force`), then the checks of
//! the reset role. Until the preflight catalogue provides that role, the one check is kubeadm's
//! `IsPrivilegedUser`; `CHECKS` is the seam where the catalogue plugs in.

use std::io::IsTerminal;

use anyhow::bail;

use super::ResetData;
use crate::workflow::Phase;

/// One reset preflight check: its id (as `--ignore-preflight-errors` names it) and what it verifies.
pub struct ResetCheck {
    pub id: &'static str,
    /// `Err(message)` when the check fails.
    pub run: fn(&ResetData) -> Result<(), String>,
}

/// The reset role's checks.
pub const CHECKS: &[ResetCheck] = &[ResetCheck {
    id: "IsPrivilegedUser",
    run: is_privileged_user,
}];

fn is_privileged_user(_: &ResetData) -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("user is not running as root".to_string())
    }
}

pub fn phase() -> Phase<ResetData> {
    Phase::leaf("preflight", "Run reset pre-flight checks", run)
}

/// True when `--ignore-preflight-errors` covers the check id (case-insensitive; `all` covers every id).
pub fn ignored(list: &[String], id: &str) -> bool {
    list.iter()
        .any(|i| i.eq_ignore_ascii_case("all") || i.eq_ignore_ascii_case(id))
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
    ui.line("[preflight] Running pre-flight checks");
    let mut errors = Vec::new();
    for check in CHECKS {
        if let Err(message) = (check.run)(data) {
            if ignored(&data.settings.ignore_preflight_errors, check.id) {
                ui.warn(format!("[preflight] {}: {message} (ignored)", check.id));
            } else {
                errors.push(format!("[ERROR {}]: {message}", check.id));
            }
        }
    }
    if !errors.is_empty() {
        bail!(
            "[preflight] Some fatal errors occurred:\n\t{}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
            errors.join("\n\t")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_list_matches_ids_case_insensitively() {
        assert!(ignored(&["isprivilegeduser".into()], "IsPrivilegedUser"));
        assert!(ignored(&["ALL".into()], "IsPrivilegedUser"));
        assert!(!ignored(&["Swap".into()], "IsPrivilegedUser"));
    }
}
