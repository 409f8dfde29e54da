//! The one executor of init, join and reset: a [`Workflow`] (command name, phase tree, optional
//! prologue) run on the workflow's data inside a [`Session`] — lock, run markers, recovery of an
//! unfinished earlier run, `--skip-phases`, dry run, and rollback of a failed run.

use super::rollback::UndoEntry;
use super::session::{Recovery, Session};
use super::{Phase, PhaseInfo, Target, describe};
use crate::host::Host;

/// What a workflow's run data gives the executor.
pub trait RunData {
    fn host(&self) -> &Host;

    /// Handlers of the journal entries this workflow's gateways make beyond the host's own (files
    /// and directories), tried in order when a run is rolled back: init and join list their
    /// [`super::cluster_undo::ClusterUndo`] for `api-object` entries.
    fn extra_undoers(&self) -> Vec<&dyn UndoEntry> {
        Vec::new()
    }

    /// Every handler: the host's, then the extra ones.
    fn undoers(&self) -> Vec<&dyn UndoEntry> {
        let mut all: Vec<&dyn UndoEntry> = vec![self.host()];
        all.extend(self.extra_undoers());
        all
    }
}

/// Work done after the session began and before the selected phases (init records the model here).
pub type Prologue<D> = Box<dyn Fn(&mut D, &Target) -> anyhow::Result<()>>;

/// A command's workflow.
pub struct Workflow<D> {
    /// `init`, `join`, `reset`.
    pub command: &'static str,
    pub phases: Vec<Phase<D>>,
    pub prologue: Option<Prologue<D>>,
    pub recovery: Recovery,
}

impl<D> Workflow<D> {
    pub fn new(command: &'static str, phases: Vec<Phase<D>>) -> Self {
        Workflow {
            command,
            phases,
            prologue: None,
            recovery: Recovery::RollBack,
        }
    }

    pub fn with_prologue(
        mut self,
        prologue: impl Fn(&mut D, &Target) -> anyhow::Result<()> + 'static,
    ) -> Self {
        self.prologue = Some(Box::new(prologue));
        self
    }

    pub fn with_recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    pub fn tree(&self) -> Vec<PhaseInfo> {
        describe(&self.phases)
    }

    /// The command line this run is journaled and locked under (`init phase certs apiserver`).
    pub fn command_line(&self, target: &Target) -> String {
        command_line(self.command, target)
    }
}

/// `init`, or `init phase certs apiserver`.
pub fn command_line(command: &str, target: &Target) -> String {
    if target.is_whole() {
        command.to_string()
    } else {
        format!("{command} phase {target}")
    }
}

/// How to run a workflow this time.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub target: Target,
    pub skip: Vec<String>,
    /// Leave a failed run's effects for inspection instead of rolling them back.
    pub keep_on_failure: bool,
}

/// Runs the workflow: begins the session, runs the prologue and the selected phases, then ends the
/// session (rolling back after a failure unless `keep_on_failure`).
pub fn execute<D: RunData>(
    workflow: &Workflow<D>,
    data: &mut D,
    spec: &RunSpec,
) -> anyhow::Result<()> {
    let command = workflow.command_line(&spec.target);
    let session = Session::begin(data.host(), &command, workflow.recovery, &data.undoers())?;
    let ui = data.host().ui().clone();
    let mut result = Ok(());
    if let Some(prologue) = &workflow.prologue {
        result = prologue(data, &spec.target);
    }
    if result.is_ok() {
        // Each top-level phase's files become durable together when it ends.
        let commit = |d: &D| d.host().commit();
        result = super::run_with(
            &workflow.phases,
            data,
            &spec.target,
            &spec.skip,
            &ui,
            &commit,
        );
    }
    session.finish(data.host(), result, spec.keep_on_failure, &data.undoers())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::journal::{self, ApiChange, Entry, Outcome};
    use crate::host::{Facts, NodePath, Root, Undone};
    use crate::output::Ui;

    struct Data {
        host: Host,
    }

    impl RunData for Data {
        fn host(&self) -> &Host {
            &self.host
        }
    }

    fn write(path: &'static str) -> impl Fn(&mut Data) -> anyhow::Result<()> {
        move |d: &mut Data| d.host.write_file(&NodePath::new(path), b"x", 0o600)
    }

    fn workflow(fail: bool) -> Workflow<Data> {
        Workflow::new(
            "init",
            vec![
                Phase::leaf("one", "", write("/etc/kubernetes/one")),
                Phase::leaf("two", "", move |d: &mut Data| {
                    write("/etc/kubernetes/two")(d)?;
                    if fail {
                        anyhow::bail!("two failed")
                    }
                    Ok(())
                }),
            ],
        )
    }

    fn data(dir: &std::path::Path) -> Data {
        Data {
            host: Host::new(Root::new(dir), Facts::default(), false, Ui::default()),
        }
    }

    fn outcomes(dir: &std::path::Path) -> Vec<Outcome> {
        journal::read(&Root::new(dir))
            .unwrap()
            .into_iter()
            .filter_map(|r| match r.entry {
                Entry::RunEnd { outcome } => Some(outcome),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_failed_run_is_rolled_back_and_journaled_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let err = execute(&workflow(true), &mut data(dir.path()), &RunSpec::default()).unwrap_err();
        assert_eq!(err.to_string(), "error execution phase two");
        assert!(!dir.path().join("etc/kubernetes/one").exists());
        assert!(!dir.path().join("etc").exists());
        assert_eq!(outcomes(dir.path()), [Outcome::Failed, Outcome::RolledBack]);
    }

    #[test]
    fn keep_on_failure_leaves_the_effects() {
        let dir = tempfile::tempdir().unwrap();
        let spec = RunSpec {
            keep_on_failure: true,
            ..Default::default()
        };
        execute(&workflow(true), &mut data(dir.path()), &spec).unwrap_err();
        assert!(dir.path().join("etc/kubernetes/two").exists());
        assert_eq!(outcomes(dir.path()), [Outcome::Failed]);
    }

    #[test]
    fn an_unfinished_earlier_run_is_rolled_back_before_the_next() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A run whose process died: started, wrote, never ended.
            let d = data(dir.path());
            d.host.start_journal("init").unwrap();
            d.host
                .write_file(&NodePath::new("/etc/kubernetes/stale"), b"x", 0o600)
                .unwrap();
        }
        let mut d = data(dir.path());
        let spec = RunSpec {
            target: Target::phase(["one"]),
            ..Default::default()
        };
        execute(&workflow(false), &mut d, &spec).unwrap();
        assert!(!dir.path().join("etc/kubernetes/stale").exists());
        assert!(dir.path().join("etc/kubernetes/one").exists());
        assert!(!dir.path().join("etc/kubernetes/two").exists());
        assert_eq!(
            outcomes(dir.path()),
            [Outcome::RolledBack, Outcome::Succeeded]
        );
        let records = journal::read(&Root::new(dir.path())).unwrap();
        assert!(journal::unfinished_runs(&records).is_empty());
        assert!(records.iter().any(|r| matches!(
            &r.entry,
            Entry::RunStart { command, .. } if command == "init phase one"
        )));
    }

    /// Records the `api-object` entries it is asked to undo.
    struct ApiRecorder(std::cell::RefCell<Vec<String>>);

    impl UndoEntry for ApiRecorder {
        fn undo(&self, _host: &Host, entry: &Entry) -> Option<anyhow::Result<Undone>> {
            let Entry::ApiObject { name, .. } = entry else {
                return None;
            };
            self.0.borrow_mut().push(name.clone());
            Some(Ok(Undone::ObjectRestored(name.clone())))
        }
    }

    #[test]
    fn a_reset_is_not_rolled_back_neither_when_it_fails_nor_when_it_never_ended() {
        let dir = tempfile::tempdir().unwrap();
        let mut reset = workflow(true);
        reset.command = "reset";
        let d = &mut data(dir.path());
        execute(&reset, d, &RunSpec::default()).unwrap_err();
        assert!(dir.path().join("etc/kubernetes/two").exists());
        assert_eq!(outcomes(dir.path()), [Outcome::Failed]);

        // A reset killed after it deleted this node's Node object: the next init does not put it back.
        let d = data(dir.path());
        d.host.start_journal("reset").unwrap();
        d.host
            .journal(Entry::ApiObject {
                api_version: "v1".into(),
                kind: "Node".into(),
                namespace: None,
                name: "node1".into(),
                change: ApiChange::Deleted {
                    backup: NodePath::new(
                        "/var/lib/kubestrap/backups/r/api/core/v1/nodes/node1.json",
                    ),
                },
            })
            .unwrap();
        drop(d);
        let d = data(dir.path());
        let api = ApiRecorder(Default::default());
        let session =
            Session::begin(&d.host, "init", Recovery::RollBack, &[&d.host, &api]).unwrap();
        assert!(session.recovered().is_empty());
        session.finish(&d.host, Ok(()), false, &[&d.host]).unwrap();
        assert!(api.0.borrow().is_empty(), "{:?}", api.0.borrow());
        assert_eq!(
            outcomes(dir.path()),
            [Outcome::Failed, Outcome::Failed, Outcome::Succeeded]
        );
    }

    #[test]
    fn a_maintenance_command_refuses_while_a_run_is_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(dir.path());
        d.host.start_journal("init").unwrap();
        drop(d);
        let d = data(dir.path());
        let err = Session::begin(&d.host, "certs renew all", Recovery::Refuse, &d.undoers())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'kubestrap init'") && err.contains("did not finish"),
            "{err}"
        );
    }

    #[test]
    fn a_dry_run_neither_journals_nor_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let d = Data {
            host: Host::new(Root::new(dir.path()), Facts::default(), true, Ui::default()),
        };
        let mut d = d;
        execute(&workflow(false), &mut d, &RunSpec::default()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
