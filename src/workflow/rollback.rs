//! Rolling back a run: its journal entries undone newest first, each by the gateway that owns the
//! entry's kind (files and directories: the host; API objects: the cluster gateway), and the outcome
//! reported as `[rollback] …` lines.

use crate::host::journal::{Entry, Record};
use crate::host::{Host, Undone};
use crate::output::Ui;

/// Undoes the journal entries of one kind. A gateway that makes journaled effects implements it, and
/// the run data lists it in [`super::RunData::undoers`], so adding an entry kind adds a handler here
/// rather than a branch in the executor.
pub trait UndoEntry {
    /// `None` when the entry is not of this handler's kinds.
    fn undo(&self, entry: &Entry) -> Option<anyhow::Result<Undone>>;
}

/// The host undoes what it journals itself: files written and directories made.
impl UndoEntry for Host {
    fn undo(&self, entry: &Entry) -> Option<anyhow::Result<Undone>> {
        match entry {
            Entry::WriteFile { .. } | Entry::MakeDir { .. } => Some(Host::undo(self, entry)),
            _ => None,
        }
    }
}

/// What an entry no handler claims comes to: run markers need nothing; other effects stay for
/// `kubestrap reset`, which sweeps them by attribution.
fn unclaimed(entry: &Entry) -> Undone {
    match entry {
        Entry::Artefact { kind, target, .. } => Undone::Foreign {
            kind: kind.clone(),
            target: target.clone(),
        },
        Entry::RunStart { .. } | Entry::RunEnd { .. } => Undone::Nothing,
        Entry::WriteFile { path, .. } | Entry::MakeDir { path, .. } => Undone::Kept(
            path.clone(),
            "no handler for this journal entry".to_string(),
        ),
    }
}

/// The tally of one rollback.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollbackReport {
    /// Effects undone (removed or restored).
    pub undone: usize,
    /// Effects left in place, with the reason (printed as they happen).
    pub left: Vec<String>,
    /// Entries whose undo failed.
    pub failed: Vec<String>,
}

impl RollbackReport {
    pub fn is_clean(&self) -> bool {
        self.left.is_empty() && self.failed.is_empty()
    }
}

/// Undoes `records` (one run's, in journal order) newest first. Every entry is tried even when one
/// fails; problems are printed as warnings and counted.
pub fn roll_back(records: &[&Record], handlers: &[&dyn UndoEntry], ui: &Ui) -> RollbackReport {
    let mut report = RollbackReport::default();
    for record in records.iter().rev() {
        let entry = &record.entry;
        let outcome = handlers
            .iter()
            .find_map(|h| h.undo(entry))
            .unwrap_or_else(|| Ok(unclaimed(entry)));
        match outcome {
            Ok(Undone::Removed(_) | Undone::Restored(_)) => report.undone += 1,
            Ok(Undone::AlreadyGone(_) | Undone::Nothing) => {}
            Ok(Undone::Kept(path, why)) => {
                // A directory the run made that now holds others' files is expected, not a problem.
                if !matches!(entry, Entry::MakeDir { .. }) {
                    ui.warn(format!("[rollback] kept {path}: {why}"));
                    report.left.push(format!("{path}: {why}"));
                }
            }
            Ok(Undone::Foreign { kind, target }) => {
                ui.warn(format!(
                    "[rollback] {kind} {target} is left for 'kubestrap reset'"
                ));
                report.left.push(format!("{kind} {target}"));
            }
            Err(e) => {
                ui.warn(format!("[rollback] could not undo {entry:?}: {e:#}"));
                report.failed.push(format!("{e:#}"));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::journal::{self, Outcome};
    use crate::host::{Facts, NodePath, Root};

    /// A stand-in for a gateway with its own entry kind (here: artefacts of kind `test`).
    struct Recorder(std::cell::RefCell<Vec<String>>);

    impl UndoEntry for Recorder {
        fn undo(&self, entry: &Entry) -> Option<anyhow::Result<Undone>> {
            match entry {
                Entry::Artefact { kind, target, .. } if kind == "test" => {
                    self.0.borrow_mut().push(target.clone());
                    Some(Ok(Undone::Nothing))
                }
                _ => None,
            }
        }
    }

    #[test]
    fn entries_go_to_their_handler_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(
            Root::new(dir.path()),
            Facts::default(),
            false,
            Ui::default(),
        );
        host.start_journal("init").unwrap();
        let file = NodePath::new("/etc/kubernetes/a.conf");
        host.write_file(&file, b"x", 0o600).unwrap();
        for target in ["one", "two"] {
            host.journal(Entry::Artefact {
                kind: "test".into(),
                target: target.into(),
                detail: serde_json::Value::Null,
            })
            .unwrap();
        }
        host.journal(Entry::Artefact {
            kind: "sysctl".into(),
            target: "net.ipv4.ip_forward".into(),
            detail: serde_json::Value::Null,
        })
        .unwrap();
        host.finish_journal(Outcome::Failed).unwrap();
        let records = journal::read(host.root()).unwrap();
        let run = host.run_id().unwrap();
        let mine = journal::run_records(&records, &run);
        let recorder = Recorder(Default::default());
        let report = roll_back(&mine, &[&host, &recorder], &Ui::default());
        assert_eq!(*recorder.0.borrow(), ["two", "one"]);
        assert!(!host.disk(&file).exists());
        assert_eq!(report.left, ["sysctl net.ipv4.ip_forward"]);
        assert!(report.undone >= 2, "{report:?}");
        assert!(report.failed.is_empty());
    }
}
