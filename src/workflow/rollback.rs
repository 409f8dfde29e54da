//! Rolling back a run: its journal entries undone newest first, each by the gateway that owns the
//! entry's kind (files and directories: the host; API objects: [`super::cluster_undo`]), and the
//! outcome reported as `[rollback] …` lines.

use crate::host::journal::{Entry, Record};
use crate::host::plan::api_object_target;
use crate::host::services;
use crate::host::{Host, Undone};

/// Undoes the journal entries of one kind. A gateway that makes journaled effects implements it, and
/// the run data lists it in [`super::RunData::extra_undoers`], so adding an entry kind adds a handler here
/// rather than a branch in the executor.
pub trait UndoEntry {
    /// `None` when the entry is not of this handler's kinds. `host` is the node the run changed (its
    /// root holds the journal's backup copies and the kubeconfigs a handler may connect with).
    fn undo(&self, host: &Host, entry: &Entry) -> Option<anyhow::Result<Undone>>;
}

/// The host undoes what it journals itself: files written, directories made and services stopped
/// or started.
impl UndoEntry for Host {
    fn undo(&self, _host: &Host, entry: &Entry) -> Option<anyhow::Result<Undone>> {
        match entry {
            Entry::WriteFile { .. } | Entry::MakeDir { .. } => Some(Host::undo(self, entry)),
            Entry::Artefact { .. } => services::undo(self, entry),
            _ => None,
        }
    }
}

/// Whether a failed or unfinished run of `command` is rolled back. A reset's is not: what reset
/// removed stays removed (its report said so), and the effects it journals are such removals (this
/// node's Node object, deleted through the cluster gateway), which putting back would undo the reset.
pub fn is_undoable(command: &str) -> bool {
    command.split_whitespace().next() != Some("reset")
}

/// What an entry no handler claims comes to: run markers need nothing; host artefacts stay for
/// `kubestrap reset`, which sweeps them by attribution; files and API objects are kept, and said so.
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
        Entry::ApiObject {
            api_version,
            kind,
            namespace,
            name,
            ..
        } => Undone::ObjectKept(
            api_object_target(api_version, kind, namespace.as_deref(), name),
            "this command has no cluster client to undo it with".to_string(),
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
pub fn roll_back(records: &[&Record], host: &Host, handlers: &[&dyn UndoEntry]) -> RollbackReport {
    let ui = host.ui();
    let mut report = RollbackReport::default();
    for record in records.iter().rev() {
        let entry = &record.entry;
        let outcome = handlers
            .iter()
            .find_map(|h| h.undo(host, entry))
            .unwrap_or_else(|| Ok(unclaimed(entry)));
        match outcome {
            Ok(
                Undone::Removed(_)
                | Undone::Restored(_)
                | Undone::ObjectDeleted(_)
                | Undone::ObjectRestored(_)
                | Undone::Reverted(_),
            ) => report.undone += 1,
            Ok(Undone::AlreadyGone(_) | Undone::Nothing) => {}
            Ok(Undone::Kept(path, why)) => {
                // A directory the run made that now holds others' files is expected, not a problem.
                if !matches!(entry, Entry::MakeDir { .. }) {
                    ui.warn(format!("[rollback] kept {path}: {why}"));
                    report.left.push(format!("{path}: {why}"));
                }
            }
            Ok(Undone::ObjectKept(target, why)) => {
                ui.warn(format!("[rollback] kept {target}: {why}"));
                report.left.push(format!("{target}: {why}"));
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
    use crate::host::journal::{self, ApiChange, Outcome};
    use crate::host::{Facts, NodePath, Root};
    use crate::output::Ui;

    /// A stand-in for the cluster gateway's handler: takes `api-object` entries, records their names.
    struct FakeApi(std::cell::RefCell<Vec<String>>);

    impl UndoEntry for FakeApi {
        fn undo(&self, _host: &Host, entry: &Entry) -> Option<anyhow::Result<Undone>> {
            let Entry::ApiObject { name, .. } = entry else {
                return None;
            };
            self.0.borrow_mut().push(name.clone());
            Some(Ok(Undone::ObjectDeleted(name.clone())))
        }
    }

    fn config_map(name: &str) -> Entry {
        Entry::ApiObject {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("kube-system".into()),
            name: name.into(),
            change: ApiChange::Created,
        }
    }

    /// A failed run that wrote a file, changed two API objects and set a sysctl.
    fn failed_run(dir: &std::path::Path) -> (Host, Vec<journal::Record>) {
        let host = Host::new(Root::new(dir), Facts::default(), false, Ui::default());
        host.start_journal("init").unwrap();
        host.write_file(&NodePath::new("/etc/kubernetes/a.conf"), b"x", 0o600)
            .unwrap();
        for name in ["first", "second"] {
            host.journal(config_map(name)).unwrap();
        }
        host.journal(Entry::Artefact {
            kind: "sysctl".into(),
            target: "net.ipv4.ip_forward".into(),
            detail: serde_json::Value::Null,
        })
        .unwrap();
        host.finish_journal(Outcome::Failed).unwrap();
        let run = host.run_id().unwrap();
        let records = journal::read(host.root()).unwrap();
        let mine = journal::run_records(&records, &run)
            .into_iter()
            .cloned()
            .collect();
        (host, mine)
    }

    #[test]
    fn entries_go_to_their_handler_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (host, records) = failed_run(dir.path());
        let mine: Vec<&journal::Record> = records.iter().collect();
        let api = FakeApi(Default::default());
        let report = roll_back(&mine, &host, &[&host, &api]);
        assert_eq!(*api.0.borrow(), ["second", "first"]);
        assert!(!host.disk(&NodePath::new("/etc/kubernetes/a.conf")).exists());
        assert_eq!(report.left, ["sysctl net.ipv4.ip_forward"]);
        assert_eq!(
            report.undone, 5,
            "a file, /etc, /etc/kubernetes, two objects: {report:?}"
        );
        assert!(report.failed.is_empty());
    }

    #[test]
    fn an_api_object_no_handler_takes_is_reported_as_left_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (host, records) = failed_run(dir.path());
        let mine: Vec<&journal::Record> = records.iter().collect();
        let report = roll_back(&mine, &host, &[&host]);
        assert_eq!(
            report.left,
            [
                "sysctl net.ipv4.ip_forward",
                "v1 ConfigMap kube-system/second: this command has no cluster client to undo it with",
                "v1 ConfigMap kube-system/first: this command has no cluster client to undo it with",
            ]
        );
        assert!(!host.disk(&NodePath::new("/etc/kubernetes/a.conf")).exists());
    }

    #[test]
    fn only_a_reset_is_never_rolled_back() {
        assert!(!is_undoable("reset"));
        assert!(!is_undoable("reset phase cleanup-node"));
        assert!(is_undoable("init"));
        assert!(is_undoable("join phase preflight"));
        assert!(is_undoable("certs renew all"));
    }
}
