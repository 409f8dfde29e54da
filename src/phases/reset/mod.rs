//! The `kubestrap reset` workflow: its settings, its run data (the host — whose gateway holds the plan
//! and the report —, the node record, cluster scope) and its ordered phase list.

pub mod containers;
pub mod files;
pub mod ipsets;
pub mod ipvs_conntrack;
pub mod links;
pub mod mounts;
pub mod netfilter;
pub mod netns;
pub mod preflight;
pub mod remove_etcd_member;
pub mod routes;
pub mod scope;
pub mod stop_kubelet;
pub mod verify;

use std::collections::BTreeSet;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::host::attribution::ClusterScope;
use crate::host::inventory::{Found, Item, Outcome, Report};
use crate::host::journal::{self, Entry};
use crate::host::plan::Verb;
use crate::host::{Host, NodePath};
use crate::model::{Model, record};
use crate::workflow::selection::PhaseTree;
use crate::workflow::session::Recovery;
use crate::workflow::{Phase, PhaseInfo, RunData, Target, Workflow, describe};

/// Reset's resolved settings (flags over the ResetConfiguration over defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetSettings {
    pub cert_dir: NodePath,
    pub cri_socket: String,
    pub cleanup_tmp_dir: bool,
    pub force: bool,
    /// `--dry-run` or the ResetConfiguration's `dryRun`.
    pub dry_run: bool,
    pub purge_volumes: bool,
    pub no_backup: bool,
    pub skip_phases: Vec<String>,
    pub ignore_preflight_errors: Vec<String>,
    /// `MNT_FORCE`, `MNT_DETACH`, `MNT_EXPIRE`, `UMOUNT_NOFOLLOW` for the first unmount attempt.
    pub unmount_flags: Vec<String>,
}

/// What every reset phase reads and writes.
pub struct ResetData {
    pub settings: ResetSettings,
    pub host: Host,
    /// The model this node was set up with (`cluster.yaml`); `None` on a node kubestrap did not set up
    /// (kubeadm's, or made by hand), where the scope is read from the manifests instead.
    pub record: Option<Model>,
    /// Our CNI networks and the cluster's address ranges, found before anything is deleted.
    pub scope: ClusterScope,
    /// Files the journal says kubestrap wrote (CNI configs, sysctl and systemd drop-ins, …).
    pub journal_files: BTreeSet<NodePath>,
    /// Every journal entry of every run, oldest first.
    pub journal: Vec<Entry>,
    /// Subtrees that must not be deleted (an unmount there failed), with the reason.
    pub protected: Vec<(PathBuf, String)>,
    /// Mount points under the kubelet dir that the mounts phase unmounted (in a dry run: would).
    pub unmounted: BTreeSet<PathBuf>,
    /// Links the links phase deleted or found gone (routes through them are gone with them).
    pub cluster_links: BTreeSet<String>,
    progress: ProgressBar,
}

impl ResetData {
    /// Run data with nothing read yet: [`ResetData::load`] reads the node once the lock is held.
    pub fn new(settings: ResetSettings, host: Host) -> Self {
        let progress = if host.ui().interactive() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        } else {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        };
        ResetData {
            settings,
            host,
            record: None,
            scope: ClusterScope::with_addon_networks(),
            journal_files: BTreeSet::new(),
            journal: Vec::new(),
            protected: Vec::new(),
            unmounted: BTreeSet::new(),
            cluster_links: BTreeSet::new(),
            progress,
        }
    }

    /// Reads the journal and the node record and finds the cluster's scope, before anything is deleted.
    /// An unreadable record is reported and the scope is read from the manifests instead.
    pub fn load(&mut self) -> anyhow::Result<()> {
        let records = journal::standing(journal::read(self.host.root())?);
        self.journal = records.into_iter().map(|r| r.entry).collect();
        self.journal_files = self
            .journal
            .iter()
            .filter_map(|e| match e {
                Entry::WriteFile { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        self.record = match record::read(&self.host) {
            Ok(found) => found.map(|r| r.model()),
            Err(e) => {
                self.host.ui().warn(format!(
                    "[reset] {e:#}; the cluster's scope is read from the static-pod manifests instead"
                ));
                None
            }
        };
        let (scope, source) =
            scope::discover(&self.host, self.record.as_ref(), &self.journal_files);
        let list = |nets: &[ipnet::IpNet]| {
            nets.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        self.host.ui().debug(
            1,
            format!(
                "[reset] The cluster's scope, from {source}: pod CIDRs [{}], service CIDRs [{}], CNI networks [{}]",
                list(&scope.pod_cidrs),
                list(&scope.service_cidrs),
                scope.cni_networks.iter().cloned().collect::<Vec<_>>().join(",")
            ),
        );
        self.scope = scope;
        Ok(())
    }

    pub fn dry_run(&self) -> bool {
        self.host.dry_run()
    }

    /// Announces a phase (a progress line, and the spinner's message on a terminal).
    pub fn phase(&self, text: &str) {
        self.progress.set_message(text.to_string());
        self.progress.tick();
        self.host.ui().line(format!("[reset] {text}"));
    }

    pub fn finish_progress(&self) {
        self.progress.finish_and_clear();
    }

    /// Removes an attributed item, or in a dry run plans it; someone else's items are kept.
    pub fn apply(&mut self, found: &Found, remove: impl FnOnce(&Found) -> Outcome) {
        if !found.owner.is_cluster() {
            self.record([found.kept_foreign()]);
        } else if self.dry_run() {
            self.plan(found.item(format!("made by {}", found.owner)));
        } else {
            self.record([remove(found)]);
        }
    }

    /// Dry run: plans removing an item, through the Host gateway (which prints it once).
    pub fn plan(&self, item: Item) {
        self.host.plan_step(Verb::Remove, item);
    }

    pub fn plan_all(&self, items: impl IntoIterator<Item = Item>) {
        for item in items {
            self.plan(item);
        }
    }

    /// Records outcomes in the Host gateway's report; in a dry run what is kept is part of the plan.
    pub fn record(&mut self, outcomes: impl IntoIterator<Item = Outcome>) {
        for outcome in outcomes {
            self.host.record(outcome);
        }
    }

    /// The report so far (the Host gateway's).
    pub fn report(&self) -> Report {
        self.host.report()
    }

    /// Records a failure of a whole step (a tool that would not run) as a left item.
    pub fn step_failed(&mut self, found: Found, err: &anyhow::Error) {
        self.host.ui().warn(format!("{}: {err:#}", found.target));
        self.record([found.left(format!("{err:#}"), false)]);
    }
}

/// reset's phases in order.
pub fn phases() -> Vec<Phase<ResetData>> {
    vec![
        preflight::phase(),
        remove_etcd_member::phase(),
        Phase::group(
            "cleanup-node",
            "Run cleanup node.",
            vec![
                stop_kubelet::phase(),
                containers::phase(),
                mounts::phase(),
                netns::phase(),
                netfilter::phase(),
                ipsets::phase(),
                links::phase(),
                routes::phase(),
                ipvs_conntrack::phase(),
                files::phase(),
            ],
        ),
        verify::phase(),
    ]
}

impl RunData for ResetData {
    fn host(&self) -> &Host {
        &self.host
    }
}

/// The reset workflow. It undoes every run itself, so an unfinished earlier run is not rolled back
/// first; the node is read (journal, record, scope) once the lock is held.
pub fn workflow() -> Workflow<ResetData> {
    Workflow::new("reset", phases())
        .with_recovery(Recovery::Leave)
        .with_prologue(|data: &mut ResetData, _target: &Target| data.load())
}

/// The phase tree for the command line.
#[derive(Debug, Clone, Copy)]
pub struct ResetTree;

impl PhaseTree for ResetTree {
    fn tree() -> Vec<PhaseInfo> {
        describe(&phases())
    }
}
