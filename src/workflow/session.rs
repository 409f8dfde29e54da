//! One node-changing command from start to end: the node lock, the journal's run markers, recovering an
//! earlier run that started and never ended, and on failure the rollback (or, with
//! `--keep-on-failure`, leaving the run's effects in place). Dry runs take no lock and write no journal.
//! A reset is never rolled back ([`rollback::is_undoable`]).

use super::rollback::{self, RollbackReport, UndoEntry};
use crate::host::Host;
use crate::host::journal::{self, Outcome, UnfinishedRun};
use crate::host::lock::NodeLock;

/// What a command does about an earlier run that never ended (its process was killed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Say so and roll it back before this run (init, join: a re-run then converges).
    RollBack,
    /// Refuse to run until it is dealt with (maintenance commands such as `certs renew`, which must not
    /// undo a half-made node nor build on one).
    Refuse,
    /// Leave it: the command undoes every run itself (reset).
    Leave,
}

/// A running command: holds the node lock until it is finished.
#[derive(Debug)]
pub struct Session {
    _lock: Option<NodeLock>,
    command: String,
    recovered: Vec<(UnfinishedRun, RollbackReport)>,
}

impl Session {
    /// Takes the lock, journals the run's start and, with [`Recovery::RollBack`], rolls back every
    /// earlier run that never ended (newest first).
    pub fn begin(
        host: &Host,
        command: &str,
        recovery: Recovery,
        undoers: &[&dyn UndoEntry],
    ) -> anyhow::Result<Session> {
        let lock = if host.dry_run() {
            None
        } else {
            Some(NodeLock::acquire(host.root(), command)?)
        };
        let earlier = journal::unfinished_runs(&journal::read(host.root())?);
        if recovery == Recovery::Refuse
            && let Some(run) = earlier.last()
        {
            anyhow::bail!(
                "{}: run it again (it rolls the unfinished run back first) or 'kubestrap reset' before '{command}'",
                describe(run)
            );
        }
        host.start_journal(command)?;
        if !rollback::is_undoable(command) {
            // A reset's removals are not journaled one by one: its start is on disk before them.
            host.sync_journal()?;
        }
        let mut recovered = Vec::new();
        if recovery == Recovery::RollBack {
            for run in earlier.iter().rev() {
                if let Some(report) = recover(host, run, undoers)? {
                    recovered.push((run.clone(), report));
                }
            }
        }
        Ok(Session {
            _lock: lock,
            command: command.to_string(),
            recovered,
        })
    }

    /// The earlier runs this session rolled back, with what their rollback did.
    pub fn recovered(&self) -> &[(UnfinishedRun, RollbackReport)] {
        &self.recovered
    }

    /// Journals how the run ended. After a failure the run's own effects are rolled back, unless
    /// `keep_on_failure`. Returns the run's result.
    pub fn finish(
        self,
        host: &Host,
        result: anyhow::Result<()>,
        keep_on_failure: bool,
        undoers: &[&dyn UndoEntry],
    ) -> anyhow::Result<()> {
        let ui = host.ui();
        let err = match result {
            Ok(()) => return host.finish_journal(Outcome::Succeeded),
            Err(err) if host.dry_run() => return Err(err),
            Err(err) => err,
        };
        host.finish_journal(Outcome::Failed)?;
        if !rollback::is_undoable(&self.command) {
            return Err(err);
        }
        if keep_on_failure {
            ui.warn(
                "[rollback] --keep-on-failure: this run's changes are left in place for inspection; 'kubestrap reset' removes them",
            );
            return Err(err);
        }
        let Some(run) = host.run_id() else {
            return Err(err);
        };
        match journal::read(host.root()) {
            Ok(records) => {
                let mine = journal::run_records(&records, &run);
                let report = rollback::roll_back(&mine, host, undoers);
                if report.undone > 0 {
                    ui.line(format!(
                        "[rollback] Undid {} change(s) made by this run",
                        report.undone
                    ));
                }
                host.finish_journal(Outcome::RolledBack)?;
            }
            Err(read_err) => ui.warn(format!(
                "[rollback] could not read the journal to undo this run's changes: {read_err:#}; run 'kubestrap reset'"
            )),
        }
        Err(err)
    }
}

fn describe(run: &UnfinishedRun) -> String {
    format!(
        "an earlier run ('kubestrap {}', pid {}, started {}) did not finish",
        run.command, run.pid, run.started
    )
}

/// Reports an earlier run that never ended and undoes its effects (in a dry run: only reports). A
/// reset that never ended is closed without undoing what it removed. Returns the rollback's report.
fn recover(
    host: &Host,
    run: &UnfinishedRun,
    undoers: &[&dyn UndoEntry],
) -> anyhow::Result<Option<RollbackReport>> {
    let ui = host.ui();
    let what = describe(run);
    if host.dry_run() {
        ui.line(format!(
            "[dry-run] {what}: a real run rolls back its changes first"
        ));
        return Ok(None);
    }
    let what = format!("{}{}", what[..1].to_uppercase(), &what[1..]);
    if !rollback::is_undoable(&run.command) {
        ui.line(format!(
            "[recover] {what}: what it removed stays removed; run 'kubestrap reset' again to finish it"
        ));
        host.end_earlier_run(run, Outcome::Failed)?;
        return Ok(None);
    }
    ui.line(format!("[recover] {what}: rolling back its changes first"));
    let records = journal::read(host.root())?;
    let theirs = journal::run_records(&records, &run.run);
    let report = rollback::roll_back(&theirs, host, undoers);
    ui.line(format!(
        "[recover] Undid {} change(s) made by that run",
        report.undone
    ));
    if !report.left.is_empty() || !report.failed.is_empty() {
        ui.warn(format!(
            "[recover] {} change(s) of that run are still in place (listed above)",
            report.left.len() + report.failed.len()
        ));
    }
    host.end_earlier_run(run, Outcome::RolledBack)?;
    Ok(Some(report))
}
