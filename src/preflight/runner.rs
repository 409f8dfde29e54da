//! Runs a role's checks: `IsPrivilegedUser` first and alone, then every other check (all failures
//! are collected, none stops the others), `--fix` for the fixable failures, and the ignore list.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::Outcome;
use super::catalogue::{self, Condition, Entry, Severity};
use super::context::{Environment, Probe};
use super::fix::{self, Applied};
use super::kinds::Kind;
use super::report::{CheckResult, Report, Status};
use super::settings::PreflightInput;
use crate::host::Host;

/// The error a failed preflight returns (the workflow adds "error execution phase preflight").
#[derive(Debug, thiserror::Error)]
#[error("preflight checks failed")]
pub struct PreflightFailed;

/// `--ignore-preflight-errors`: ids (case-insensitive) or `all`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    all: bool,
    ids: BTreeSet<String>,
}

impl IgnoreList {
    pub fn new(entries: &[String]) -> Self {
        let ids: BTreeSet<String> = entries
            .iter()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        IgnoreList {
            all: ids.contains("all"),
            ids,
        }
    }

    pub fn ignores(&self, id: &str) -> bool {
        self.all || self.ids.contains(&id.to_lowercase())
    }

    /// Entries that name no check of any role.
    pub fn unknown(&self, node: &PreflightInput) -> anyhow::Result<Vec<String>> {
        let known: BTreeSet<String> = catalogue::catalogue()?
            .iter()
            .map(|e| e.id_for(node).to_lowercase())
            .collect();
        Ok(self
            .ids
            .iter()
            .filter(|id| *id != "all" && !known.contains(*id))
            .cloned()
            .collect())
    }
}

/// The path of the Docker engine's socket, from DOCKER_HOST or the default.
pub fn docker_socket(env: &Environment) -> PathBuf {
    env.var(&["DOCKER_HOST"])
        .and_then(|h| h.strip_prefix("unix://"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// Why a condition does not hold on this node, if it does not.
fn unmet(condition: &Condition, probe: &Probe) -> Option<String> {
    let node = probe.node;
    let (v4, v6) = node.ip_families();
    let holds = match condition {
        Condition::LocalEtcd => node.local_etcd(),
        Condition::ExternalEtcd => node.external_etcd(),
        Condition::Ipv4 => v4,
        Condition::Ipv6 => v6,
        Condition::PodNetworkNeeds(option) => match node.pod_network() {
            Some(network) => network
                .addon()
                .is_some_and(|a| a.data.kernel_config.contains(option)),
            None => {
                return Some(
                    "not applicable yet: the pod network is the cluster's, known after discovery"
                        .to_string(),
                );
            }
        },
        Condition::DockerEngine => node.runtime_is_docker() || docker_socket(probe.env).exists(),
        Condition::DiscoveryEndpoint => node.discovery_port() != 0,
    };
    (!holds).then(|| format!("not applicable: only when {}", condition.describe()))
}

/// Runs one entry's check (conditions first). A check that cannot run is a failure naming why.
fn outcome_of(entry: &Entry, probe: &Probe) -> Outcome {
    if let Some(reason) = entry.when.iter().find_map(|c| unmet(c, probe)) {
        return Outcome::Skip(reason);
    }
    match entry.check.run(probe) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Fail(format!("the check could not run: {e:#}")),
    }
}

fn to_result(
    entry: &Entry,
    probe: &Probe,
    severity: Severity,
    outcome: Outcome,
    ignore: &IgnoreList,
) -> CheckResult {
    let id = entry.id_for(probe.node);
    let (status, severity) = match &outcome {
        Outcome::Pass(_) => (Status::Pass, severity),
        Outcome::Skip(_) => (Status::Skip, severity),
        Outcome::Warn(_) => (Status::Fail, Severity::Warning),
        Outcome::Fail(_) if ignore.ignores(&id) => (Status::Fail, Severity::Warning),
        Outcome::Fail(_) => (Status::Fail, severity),
    };
    CheckResult {
        id,
        severity,
        status,
        message: outcome.message().to_string(),
        remediation: catalogue::render(entry.remediation(probe.node.role), probe.node, false),
    }
}

/// Runs every check of the node's role and returns the report; prints nothing but `--fix` actions.
pub fn evaluate(host: &Host, node: &PreflightInput, env: &Environment) -> anyhow::Result<Report> {
    evaluate_entries(host, node, env, catalogue::for_role(node.role)?)
}

/// Runs the one check of the node's role with this id (as printed; case-insensitive), with its
/// conditions, `--fix` and the ignore list. `None` when the role has no such check.
pub fn evaluate_one(
    host: &Host,
    node: &PreflightInput,
    env: &Environment,
    id: &str,
) -> anyhow::Result<Option<CheckResult>> {
    let entries: Vec<&Entry> = catalogue::for_role(node.role)?
        .into_iter()
        .filter(|e| e.id_for(node).eq_ignore_ascii_case(id))
        .collect();
    Ok(evaluate_entries(host, node, env, entries)?
        .checks
        .into_iter()
        .next())
}

fn evaluate_entries(
    host: &Host,
    node: &PreflightInput,
    env: &Environment,
    entries: Vec<&Entry>,
) -> anyhow::Result<Report> {
    let probe = Probe::new(host, node, env);
    let ignore = IgnoreList::new(&node.ignore_errors);
    let mut report = Report::default();

    // Without root the other checks mean little (kubeadm runs this one first, on its own).
    let (privileged, others): (Vec<&Entry>, Vec<&Entry>) = entries
        .into_iter()
        .partition(|e| e.check == Kind::Privileged);
    for entry in privileged {
        let severity = entry.severity(node.role).unwrap_or(Severity::Error);
        let result = to_result(entry, &probe, severity, outcome_of(entry, &probe), &ignore);
        let fatal = result.is_error();
        report.checks.push(result);
        if fatal {
            return Ok(report);
        }
    }

    let mut outcomes: Vec<(&Entry, Outcome)> = others
        .into_iter()
        .map(|entry| (entry, outcome_of(entry, &probe)))
        .collect();
    if node.fix {
        apply_fixes(host, &probe, &mut outcomes)?;
    }
    for (entry, outcome) in outcomes {
        let severity = entry.severity(node.role).unwrap_or(Severity::Error);
        report
            .checks
            .push(to_result(entry, &probe, severity, outcome, &ignore));
    }
    Ok(report)
}

/// Applies the fixes of failed fixable checks, then checks them again.
fn apply_fixes(
    host: &Host,
    probe: &Probe,
    outcomes: &mut [(&Entry, Outcome)],
) -> anyhow::Result<()> {
    let fixable: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, (entry, outcome))| outcome.is_fail() && entry.check.sysctl_fix().is_some())
        .map(|(i, _)| i)
        .collect();
    let sysctls: Vec<(String, String)> = fixable
        .iter()
        .filter_map(|i| outcomes[*i].0.check.sysctl_fix())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let applied = fix::apply_sysctls(host, &sysctls)?;
    let drop_in = fix::drop_in();
    for (index, result) in fixable.into_iter().zip(applied) {
        let (entry, outcome) = &mut outcomes[index];
        let before = outcome.message().to_string();
        *outcome = match result {
            Applied::Planned => Outcome::Warn(format!(
                "{before}; --fix would set it (and add it to {drop_in}), but this is a dry run"
            )),
            Applied::LiveFailed(why) => {
                Outcome::Fail(format!("{before}; --fix added it to {drop_in} but {why}"))
            }
            Applied::Set => match outcome_of(entry, probe) {
                Outcome::Pass(now) => Outcome::Pass(format!("fixed: {now} (in {drop_in})")),
                other => other,
            },
        };
    }
    Ok(())
}

/// Runs the checks and prints them kubeadm-style (or as a document with `-o json|yaml`).
/// Fails with [`PreflightFailed`] when an error is not ignored.
pub fn run(host: &Host, node: &PreflightInput, env: &Environment) -> anyhow::Result<Report> {
    run_printing(host, node, env, true)
}

/// Like [`run`]; `document` says whether `-o json|yaml` prints the report (not when the command
/// has a result document of its own, as reset has).
pub fn run_printing(
    host: &Host,
    node: &PreflightInput,
    env: &Environment,
    document: bool,
) -> anyhow::Result<Report> {
    let ui = host.ui();
    ui.line("[preflight] Running pre-flight checks");
    for unknown in IgnoreList::new(&node.ignore_errors).unknown(node)? {
        ui.warn(format!(
            "--ignore-preflight-errors: there is no check named {unknown:?}"
        ));
    }
    let report = evaluate(host, node, env)?;
    for line in report.warning_lines() {
        ui.line(line);
    }
    for result in report
        .checks
        .iter()
        .filter(|c| !c.is_error() && !c.is_warning())
    {
        let status = match result.status {
            Status::Pass => "ok",
            _ => "skipped",
        };
        ui.debug(
            1,
            format!("[preflight] {} {status}: {}", result.id, result.message),
        );
    }
    for line in report.error_lines() {
        crate::output::print_error_line(line);
    }
    if document && ui.format.is_document() {
        ui.result(&report, String::new)?;
    }
    if report.has_errors() {
        return Err(PreflightFailed.into());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_list_is_case_insensitive_and_all_matches_everything() {
        let list = IgnoreList::new(&["port-6443".into(), " SWAP ".into()]);
        assert!(list.ignores("Port-6443"));
        assert!(list.ignores("Swap"));
        assert!(!list.ignores("Mem"));
        assert!(IgnoreList::new(&["ALL".into()]).ignores("anything"));
    }

    #[test]
    fn unknown_ignore_ids_are_named() {
        let node = PreflightInput::defaults(super::super::Role::Init, "n");
        let list = IgnoreList::new(&["NumCPU".into(), "NoSuchCheck".into(), "all".into()]);
        assert_eq!(list.unknown(&node).unwrap(), vec!["nosuchcheck"]);
    }
}
