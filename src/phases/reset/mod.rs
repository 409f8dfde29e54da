//! The `kubestrap reset` workflow: its settings, its run data (host, cluster scope, report, plan) and its
//! ordered phase list.

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
use crate::host::{Host, NodePath};
use crate::workflow::selection::PhaseTree;
use crate::workflow::{Phase, PhaseInfo, describe};

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
    /// Our CNI networks and the cluster's address ranges, found before anything is deleted.
    pub scope: ClusterScope,
    /// Files the journal says kubestrap wrote (CNI configs, sysctl and systemd drop-ins, …).
    pub journal_files: BTreeSet<NodePath>,
    /// Every journal entry of every run, oldest first.
    pub journal: Vec<Entry>,
    pub report: Report,
    /// In `--dry-run`: what would be removed.
    pub planned: Vec<Item>,
    /// Subtrees that must not be deleted (an unmount there failed), with the reason.
    pub protected: Vec<(PathBuf, String)>,
    /// Links the links phase deleted or found gone (routes through them are gone with them).
    pub cluster_links: BTreeSet<String>,
    progress: ProgressBar,
}

impl ResetData {
    pub fn new(settings: ResetSettings, host: Host) -> anyhow::Result<Self> {
        let records = journal::read(host.root())?;
        let journal: Vec<Entry> = records.into_iter().map(|r| r.entry).collect();
        let journal_files = journal
            .iter()
            .filter_map(|e| match e {
                Entry::WriteFile { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        let scope = scope::discover(&host, &journal_files);
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
        Ok(ResetData {
            settings,
            host,
            scope,
            journal_files,
            journal,
            report: Report::default(),
            planned: Vec::new(),
            protected: Vec::new(),
            cluster_links: BTreeSet::new(),
            progress,
        })
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

    /// Removes an attributed item, or in a dry run records the plan; someone else's items are kept.
    pub fn apply(&mut self, found: &Found, remove: impl FnOnce(&Found) -> Outcome) {
        if !found.owner.is_cluster() {
            self.report.push(found.kept_foreign());
        } else if self.dry_run() {
            self.planned
                .push(found.item(format!("made by {}", found.owner)));
        } else {
            self.report.push(remove(found));
        }
    }

    /// Records outcomes computed elsewhere.
    pub fn record(&mut self, outcomes: impl IntoIterator<Item = Outcome>) {
        self.report.extend(outcomes);
    }

    /// Records a failure of a whole step (a tool that would not run) as a left item.
    pub fn step_failed(&mut self, found: Found, err: &anyhow::Error) {
        self.host.ui().warn(format!("{}: {err:#}", found.target));
        self.report.push(found.left(format!("{err:#}"), false));
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
            None,
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

/// The phase tree for the command line.
#[derive(Debug, Clone, Copy)]
pub struct ResetTree;

impl PhaseTree for ResetTree {
    fn tree() -> Vec<PhaseInfo> {
        describe(&phases())
    }
}
