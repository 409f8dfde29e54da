//! The Host gateway: the only code that changes the node. `--root`-aware state paths, journaled and
//! group-committed file writes, live kernel values, the one dry-run plan format, and host facts.
//!
//! Every change of an init or join run goes through [`Host`]: it creates missing parent directories
//! with kubeadm's modes, journals each effect *with its undo* before doing it, and stages file writes
//! so a phase's files become durable together ([`durable`]). In dry-run mode it only records and
//! prints the plan (paths as they are on disk, `--root` included) while keeping an in-memory view so
//! later phases read what earlier ones "wrote". Reset's removals are planned and reported through
//! [`Host::plan_step`] too; they are not undoable, and so are the copies reset keeps ([`keep`]).

pub mod attribution;
pub mod cni;
pub mod command;
pub mod durable;
pub mod facts;
pub mod inventory;
pub mod ipsets;
pub mod ipvs;
pub mod journal;
pub mod keep;
pub mod links;
pub mod listeners;
pub mod lock;
pub mod mounts;
pub mod netfilter;
pub mod netns;
pub mod paths;
pub mod plan;
pub mod routes;
pub mod runtime;
pub mod services;
pub mod sysctl;
pub mod tree;

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

use anyhow::{Context, bail};

use durable::{Batch, Rank};
pub use facts::Facts;
use journal::{Entry, JournalWriter, Outcome, Prior};
pub use paths::{NodePath, Root, well_known};
use plan::{Item, Kind, Verb};

use crate::output::Ui;

/// Mode for directories the tool creates unless a caller asks otherwise (kubeadm: 0755).
pub const DIR_MODE: u32 = 0o755;

/// What undoing one journal entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undone {
    Removed(NodePath),
    Restored(NodePath),
    AlreadyGone(NodePath),
    /// Left in place, with the reason (e.g. a directory that now holds files the tool did not write).
    Kept(NodePath, String),
    /// A live kernel value put back to what it was before the run (`key`, value).
    SysctlRestored(String, String),
    /// Not a file-system entry; the subsystem named by `kind` must undo it.
    Foreign {
        kind: String,
        target: String,
    },
    /// An API object the run created, deleted (named as the cluster gateway's plan names it).
    ObjectDeleted(String),
    /// An API object the run changed or deleted, put back from its journaled copy.
    ObjectRestored(String),
    /// An API object (or a host artefact such as a service) left as it is, with the reason.
    ObjectKept(String, String),
    /// A host artefact put back as it was (a service stopped or started again), by its journal name.
    Reverted(String),
    Nothing,
}

/// What setting a live kernel value did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlSet {
    /// Set (and journaled with the value it had).
    Set,
    /// Dry run: planned only.
    Planned,
    /// It could not be set (e.g. its /proc/sys file does not exist); why.
    Failed(String),
}

#[derive(Debug)]
pub struct Host {
    root: Root,
    facts: Facts,
    dry_run: bool,
    ui: Ui,
    journal: Mutex<Option<JournalWriter>>,
    /// Files written in this run and not yet in place (staged in a batch, or a dry run's).
    overlay: Mutex<BTreeMap<NodePath, Vec<u8>>>,
    overlay_dirs: Mutex<BTreeMap<NodePath, u32>>,
    /// The files staged since the last commit (journaled runs only).
    batch: Mutex<Batch>,
    plan: Mutex<Vec<(Verb, Item)>>,
    /// What a reset removed, kept and left (its removals are reported, not journaled for undo).
    report: Mutex<inventory::Report>,
}

impl Host {
    pub fn new(root: Root, facts: Facts, dry_run: bool, ui: Ui) -> Self {
        Host {
            root,
            facts,
            dry_run,
            ui,
            journal: Mutex::new(None),
            overlay: Mutex::new(BTreeMap::new()),
            overlay_dirs: Mutex::new(BTreeMap::new()),
            batch: Mutex::new(Batch::default()),
            plan: Mutex::new(Vec::new()),
            report: Mutex::new(inventory::Report::default()),
        }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn ui(&self) -> &Ui {
        &self.ui
    }

    /// Where a node path lives on disk.
    pub fn disk(&self, path: &NodePath) -> std::path::PathBuf {
        self.root.disk(path)
    }

    /// A node path as plans and reports show it: where it is on disk.
    pub fn shown(&self, path: &NodePath) -> String {
        self.disk(path).display().to_string()
    }

    /// Starts journaling this command's side effects (not in dry-run mode). Returns the run id.
    pub fn start_journal(&self, command: &str) -> anyhow::Result<Option<String>> {
        if self.dry_run {
            return Ok(None);
        }
        let writer = JournalWriter::start(&self.root, command)?;
        let id = writer.run_id().to_string();
        *lock(&self.journal) = Some(writer);
        Ok(Some(id))
    }

    /// Makes the journal durable now (a command whose effects are not journaled one by one, such as
    /// reset's removals, so its start is on disk before them).
    pub fn sync_journal(&self) -> anyhow::Result<()> {
        match lock(&self.journal).as_mut() {
            Some(writer) => writer.sync(),
            None => Ok(()),
        }
    }

    /// Records the end of the run, after making everything it staged durable and in place.
    pub fn finish_journal(&self, outcome: Outcome) -> anyhow::Result<()> {
        self.commit()?;
        if let Some(writer) = lock(&self.journal).as_mut() {
            writer.append(Entry::RunEnd { outcome })?;
        }
        Ok(())
    }

    /// Journals an effect the caller is about to make outside the file system (an API object, a
    /// kernel change): staged files are committed first and the entry is durable when this returns.
    pub fn journal(&self, entry: Entry) -> anyhow::Result<()> {
        let mut journal = lock(&self.journal);
        let Some(writer) = journal.as_mut() else {
            return Ok(());
        };
        writer.append_deferred(entry)?;
        let mut batch = lock(&self.batch);
        if batch.is_empty() {
            return writer.sync();
        }
        self.commit_locked(writer, &mut batch)
    }

    /// Makes the files staged since the last commit durable and puts them in place: the files and
    /// the journal synced together, renames (backups, then secrets, then the rest), one sync per
    /// directory. The executor commits after each top-level phase; a phase that hands a file it
    /// wrote to another process (starts a unit or a container) commits before it does.
    pub fn commit(&self) -> anyhow::Result<()> {
        let mut journal = lock(&self.journal);
        let Some(writer) = journal.as_mut() else {
            return Ok(());
        };
        let mut batch = lock(&self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        self.commit_locked(writer, &mut batch)
    }

    fn commit_locked(&self, writer: &mut JournalWriter, batch: &mut Batch) -> anyhow::Result<()> {
        let done = batch
            .commit(Some(writer.file()))
            .context("making this phase's files durable")?;
        lock(&self.overlay).clear();
        self.ui.debug(
            3,
            format!(
                "[host] Committed {} file(s) with {} sync(s) issued together",
                done.files, done.syncs
            ),
        );
        Ok(())
    }

    pub fn run_id(&self) -> Option<String> {
        lock(&self.journal).as_ref().map(|w| w.run_id().to_string())
    }

    /// Ends an earlier run that never ended, in the journal this command writes.
    pub fn end_earlier_run(
        &self,
        run: &journal::UnfinishedRun,
        outcome: Outcome,
    ) -> anyhow::Result<()> {
        self.commit()?;
        if let Some(writer) = lock(&self.journal).as_mut() {
            writer.end_earlier_run(run, outcome)?;
        }
        Ok(())
    }

    // ---- the plan ----

    /// Records one step of a dry-run plan and prints it in the one plan format. The same step on an
    /// item already planned is not listed again.
    pub fn plan_step(&self, verb: Verb, item: Item) {
        let mut plan = lock(&self.plan);
        if plan
            .iter()
            .any(|(v, i)| *v == verb && i.kind == item.kind && i.target == item.target)
        {
            return;
        }
        self.ui.line(plan::line(verb.phrase(), &item));
        plan.push((verb, item));
    }

    /// The dry-run plan so far, in order.
    pub fn plan(&self) -> Vec<(Verb, Item)> {
        lock(&self.plan).clone()
    }

    /// The planned changes (every step but those that keep something).
    pub fn planned(&self) -> Vec<Item> {
        self.plan_where(|v| v != Verb::Keep)
    }

    /// What the plan keeps on purpose.
    pub fn plan_kept(&self) -> Vec<Item> {
        self.plan_where(|v| v == Verb::Keep)
    }

    fn plan_where(&self, wanted: impl Fn(Verb) -> bool) -> Vec<Item> {
        lock(&self.plan)
            .iter()
            .filter(|(v, _)| wanted(*v))
            .map(|(_, i)| i.clone())
            .collect()
    }

    // ---- the report (reset) ----

    /// Records what removing (or keeping) one item did; in a dry run, what is kept is a plan step.
    pub fn record(&self, outcome: inventory::Outcome) {
        if self.dry_run
            && let inventory::Outcome::Kept(item) = &outcome
        {
            self.plan_step(Verb::Keep, item.clone());
        }
        lock(&self.report).push(outcome);
    }

    /// The report so far.
    pub fn report(&self) -> inventory::Report {
        lock(&self.report).clone()
    }

    // ---- reading (dry-run and batch aware) ----

    pub fn exists(&self, path: &NodePath) -> bool {
        if lock(&self.overlay).contains_key(path) || lock(&self.overlay_dirs).contains_key(path) {
            return true;
        }
        self.disk(path).exists()
    }

    pub fn read(&self, path: &NodePath) -> std::io::Result<Vec<u8>> {
        if let Some(bytes) = lock(&self.overlay).get(path) {
            return Ok(bytes.clone());
        }
        fs::read(self.disk(path))
    }

    /// Reads a file, `None` when it does not exist.
    pub fn read_optional(&self, path: &NodePath) -> anyhow::Result<Option<Vec<u8>>> {
        match self.read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {path}")),
        }
    }

    pub fn read_string(&self, path: &NodePath) -> anyhow::Result<String> {
        let bytes = self.read(path).with_context(|| format!("reading {path}"))?;
        String::from_utf8(bytes).with_context(|| format!("{path} is not UTF-8 text"))
    }

    /// True when the directory does not exist or holds nothing.
    pub fn dir_is_empty_or_absent(&self, path: &NodePath) -> anyhow::Result<bool> {
        if lock(&self.overlay)
            .keys()
            .any(|p| p.starts_with(path) && p != path)
        {
            return Ok(false);
        }
        match fs::read_dir(self.disk(path)) {
            Ok(mut entries) => Ok(entries.next().is_none()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e).with_context(|| format!("listing {path}")),
        }
    }

    fn journaling(&self) -> bool {
        lock(&self.journal).is_some()
    }

    // ---- writing (journaled) ----

    /// Creates a directory and its missing parents, each journaled (one journal sync for all of
    /// them, before the first is made). Existing directories are left as they are.
    pub fn ensure_dir(&self, path: &NodePath, mode: u32) -> anyhow::Result<()> {
        let mut missing = Vec::new();
        let mut at = Some(path.clone());
        while let Some(dir) = at {
            if self.is_dir(&dir) {
                break;
            }
            at = dir.parent().filter(|p| *p != dir);
            missing.push(dir);
        }
        if missing.is_empty() {
            return Ok(());
        }
        missing.reverse();
        let mode_of = |dir: &NodePath| if dir == path { mode } else { DIR_MODE };
        if self.dry_run {
            for dir in &missing {
                let m = mode_of(dir);
                lock(&self.overlay_dirs).insert(dir.clone(), m);
                self.plan_step(
                    Verb::Create,
                    Item::new(
                        Kind::Path,
                        self.shown(dir),
                        format!("directory, mode {m:04o}"),
                    ),
                );
            }
            return Ok(());
        }
        {
            let mut journal = lock(&self.journal);
            if let Some(writer) = journal.as_mut() {
                for dir in &missing {
                    writer.append_deferred(Entry::MakeDir {
                        path: dir.clone(),
                        mode: mode_of(dir),
                    })?;
                }
                writer.sync()?;
            }
        }
        for dir in &missing {
            let disk = self.disk(dir);
            match fs::create_dir(&disk) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists && disk.is_dir() => continue,
                Err(e) => return Err(e).with_context(|| format!("creating directory {dir}")),
            }
            let m = mode_of(dir);
            fs::set_permissions(&disk, fs::Permissions::from_mode(m))
                .with_context(|| format!("setting mode {m:04o} on {dir}"))?;
            lock(&self.batch).made_dir(&disk);
        }
        Ok(())
    }

    fn is_dir(&self, path: &NodePath) -> bool {
        lock(&self.overlay_dirs).contains_key(path) || self.disk(path).is_dir()
    }

    /// Writes a whole file with the given mode, creating parent directories (0755). An existing
    /// file is backed up first so the journal can restore it. In a journaled run the file is staged
    /// and put in place, durably, at the next commit (reads see it at once); otherwise it is written
    /// durably now. Either way a crash leaves the old file or the new one, never a torn one.
    pub fn write_file(&self, path: &NodePath, contents: &[u8], mode: u32) -> anyhow::Result<()> {
        let parent = path
            .parent()
            .with_context(|| format!("{path} has no parent directory"))?;
        self.ensure_dir(&parent, DIR_MODE)?;
        if self.dry_run {
            lock(&self.overlay).insert(path.clone(), contents.to_vec());
            self.plan_step(
                Verb::Write,
                Item::new(
                    Kind::Path,
                    self.shown(path),
                    format!("mode {mode:04o}, {} bytes", contents.len()),
                ),
            );
            return Ok(());
        }
        let disk = self.disk(path);
        if !self.journaling() {
            return durable::write_now(&disk, contents, mode)
                .with_context(|| format!("writing {path}"));
        }
        // The entry (naming the backup) is journaled before the backup is staged, so a run killed
        // in between leaves nothing the journal does not account for.
        let (prior, old) = match fs::symlink_metadata(&disk) {
            Ok(meta) if meta.is_dir() => bail!("{path} is a directory, expected a file"),
            Ok(_) => {
                let old = fs::read(&disk).with_context(|| format!("backing up {path}"))?;
                let backup = self.backup_path(&relative_of(path));
                (Prior::Backup { path: backup }, Some(old))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => (Prior::Absent, None),
            Err(e) => return Err(e).with_context(|| format!("inspecting {path}")),
        };
        if let Some(writer) = lock(&self.journal).as_mut() {
            writer.append_deferred(Entry::WriteFile {
                path: path.clone(),
                mode,
                prior: prior.clone(),
            })?;
        }
        if let (Prior::Backup { path: backup }, Some(old)) = (&prior, old) {
            self.store_backup(backup, &old)
                .with_context(|| format!("writing backup of {path}"))?;
        }
        self.stage(path, contents, mode, Rank::of_mode(mode))
            .with_context(|| format!("writing {path}"))
    }

    /// Removes a file, saving a copy first: the removal is journaled as a write whose prior state is
    /// that copy (with the file's mode), so undoing it — a rollback, or reset's journal undo — puts the
    /// file back. The copy and the entry are durable before the file goes. A dry run plans it.
    pub fn remove_file(&self, path: &NodePath) -> anyhow::Result<()> {
        if self.dry_run {
            if self.exists(path) {
                self.plan_step(
                    Verb::Remove,
                    Item::new(Kind::Path, self.shown(path), "a copy is kept to undo it"),
                );
            }
            return Ok(());
        }
        self.commit()?;
        let disk = self.disk(path);
        let mode = match fs::symlink_metadata(&disk) {
            Ok(meta) if meta.is_dir() => bail!("{path} is a directory, expected a file"),
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("inspecting {path}")),
        };
        if self.journaling() {
            let old = fs::read(&disk).with_context(|| format!("backing up {path}"))?;
            let backup = self.backup_path(&relative_of(path));
            if let Some(writer) = lock(&self.journal).as_mut() {
                writer.append_deferred(Entry::WriteFile {
                    path: path.clone(),
                    mode,
                    prior: Prior::Backup {
                        path: backup.clone(),
                    },
                })?;
            }
            self.store_backup(&backup, &old)?;
            lock(&self.batch).restage_mode(&self.disk(&backup), mode)?;
            self.commit()?;
        }
        fs::remove_file(&disk).with_context(|| format!("removing {path}"))
    }

    fn stage(
        &self,
        path: &NodePath,
        contents: &[u8],
        mode: u32,
        rank: Rank,
    ) -> std::io::Result<()> {
        lock(&self.batch).stage(&self.disk(path), contents, mode, rank)?;
        lock(&self.overlay).insert(path.clone(), contents.to_vec());
        Ok(())
    }

    /// Saves a copy of something a run is about to change under this run's backup directory
    /// (`<state>/backups/<run>/<relative>`, 0600 in 0700 directories); returns where. A name used
    /// before in this run gets a numbered suffix, so every copy is kept. In a journaled run the copy
    /// is staged and in place, durably, before anything the next commit replaces.
    pub fn save_backup(&self, relative: &str, bytes: &[u8]) -> anyhow::Result<NodePath> {
        let backup = self.backup_path(relative);
        self.store_backup(&backup, bytes)?;
        Ok(backup)
    }

    /// Where the next backup copy of `relative` goes in this run.
    fn backup_path(&self, relative: &str) -> NodePath {
        let run = self.run_id().unwrap_or_else(|| "unjournaled".to_string());
        let base = NodePath::new(well_known::STATE_DIR)
            .join("backups")
            .join(run)
            .join(relative.trim_start_matches('/'));
        let mut backup = base.clone();
        let mut copy = 1;
        while self.exists(&backup) {
            backup = NodePath::new(format!("{}.{copy}", base.display_str()));
            copy += 1;
        }
        backup
    }

    fn store_backup(&self, backup: &NodePath, bytes: &[u8]) -> anyhow::Result<()> {
        let backup_disk = self.disk(backup);
        if let Some(dir) = backup_disk.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        if self.journaling() {
            self.stage(backup, bytes, 0o600, Rank::Backup)
        } else {
            durable::write_now(&backup_disk, bytes, 0o600)
        }
        .with_context(|| format!("writing backup {backup}"))
    }

    // ---- kernel state (journaled) ----

    /// Sets a live kernel parameter (`net.ipv4.ip_forward`), journaling the value it had first so a
    /// rollback of this run puts it back. A dry run plans it.
    pub fn set_sysctl(&self, key: &str, value: &str) -> anyhow::Result<SysctlSet> {
        let live = sysctl::live_path(&self.facts, key);
        let prior = fs::read_to_string(&live).map(|t| t.trim().to_string()).ok();
        if self.dry_run {
            let now = prior.as_deref().unwrap_or("absent");
            self.plan_step(
                Verb::Set,
                Item::new(Kind::Sysctl, key, format!("to {value}, now {now}")),
            );
            return Ok(SysctlSet::Planned);
        }
        let Some(prior) = prior else {
            return Ok(SysctlSet::Failed(format!(
                "could not set {key} live ({} does not exist)",
                live.display()
            )));
        };
        self.journal(Entry::SetSysctl {
            key: key.to_string(),
            value: value.to_string(),
            prior: prior.clone(),
        })?;
        Ok(match fs::write(&live, format!("{value}\n")) {
            Ok(()) => SysctlSet::Set,
            Err(e) => SysctlSet::Failed(format!(
                "could not set {key} live ({}: {e})",
                live.display()
            )),
        })
    }

    // ---- undo ----

    /// Undoes one journal entry. File, directory and sysctl entries are undone here; others are
    /// returned as `Foreign` (the executor's rollback hands those to the gateway that made them).
    pub fn undo(&self, entry: &Entry) -> anyhow::Result<Undone> {
        match entry {
            Entry::WriteFile { path, prior, .. } => {
                // A run killed before its commit leaves the staged copy beside the target.
                let _ = fs::remove_file(durable::temp_path(&self.disk(path)));
                match prior {
                    Prior::Absent => remove_file_if_present(&self.disk(path), path),
                    Prior::Backup { path: backup } => self.restore(path, backup),
                }
            }
            Entry::MakeDir { path, .. } => {
                let disk = self.disk(path);
                match fs::remove_dir(&disk) {
                    Ok(()) => Ok(Undone::Removed(path.clone())),
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        Ok(Undone::AlreadyGone(path.clone()))
                    }
                    Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => Ok(Undone::Kept(
                        path.clone(),
                        "it holds files the journal does not account for".to_string(),
                    )),
                    Err(e) => Err(e).with_context(|| format!("removing directory {path}")),
                }
            }
            Entry::SetSysctl { key, prior, .. } => {
                let live = sysctl::live_path(&self.facts, key);
                fs::write(&live, format!("{prior}\n")).with_context(|| {
                    format!("putting {key} back to {prior} ({})", live.display())
                })?;
                Ok(Undone::SysctlRestored(key.clone(), prior.clone()))
            }
            Entry::Artefact { kind, target, .. } => Ok(Undone::Foreign {
                kind: kind.clone(),
                target: target.clone(),
            }),
            Entry::ApiObject {
                api_version,
                kind,
                namespace,
                name,
                ..
            } => Ok(Undone::Foreign {
                kind: "api-object".to_string(),
                target: plan::api_object_target(api_version, kind, namespace.as_deref(), name),
            }),
            Entry::RunStart { .. } | Entry::RunEnd { .. } => Ok(Undone::Nothing),
        }
    }

    fn restore(&self, path: &NodePath, backup: &NodePath) -> anyhow::Result<Undone> {
        let backup_disk = self.disk(backup);
        match fs::read(&backup_disk) {
            Ok(bytes) => {
                let mode = fs::metadata(&backup_disk)
                    .map(|m| m.permissions().mode() & 0o7777)
                    .unwrap_or(0o600);
                durable::write_now(&self.disk(path), &bytes, mode)
                    .with_context(|| format!("restoring {path} from {backup}"))?;
                let _ = fs::remove_file(&backup_disk);
                Ok(Undone::Restored(path.clone()))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Still staged: the run died before its commit, which puts backups in place before
                // what they back up — so the file was never replaced.
                let staged = durable::temp_path(&backup_disk);
                if fs::remove_file(&staged).is_ok() {
                    return Ok(Undone::Nothing);
                }
                Ok(Undone::Kept(
                    path.clone(),
                    format!("its backup {backup} is gone"),
                ))
            }
            Err(e) => Err(e).with_context(|| format!("reading backup {backup}")),
        }
    }
}

/// A host dropped with files still staged (an early return past the executor) puts them in place.
impl Drop for Host {
    fn drop(&mut self) {
        if let Err(e) = self.commit() {
            self.ui.warn(format!("[host] {e:#}"));
        }
    }
}

/// A node path without its leading `/`, as backups are laid out.
fn relative_of(path: &NodePath) -> String {
    path.canonical()
        .strip_prefix("/")
        .unwrap_or(path.canonical())
        .display()
        .to_string()
}

fn remove_file_if_present(disk: &std::path::Path, path: &NodePath) -> anyhow::Result<Undone> {
    match fs::remove_file(disk) {
        Ok(()) => Ok(Undone::Removed(path.clone())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Undone::AlreadyGone(path.clone())),
        Err(e) => Err(e).with_context(|| format!("removing {path}")),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn host(dir: &std::path::Path, dry_run: bool) -> Host {
        Host::new(Root::new(dir), Facts::default(), dry_run, Ui::default())
    }

    #[test]
    fn write_creates_parents_with_modes_and_journals_everything() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), false);
        h.start_journal("init").unwrap();
        let key = NodePath::new("/etc/kubernetes/pki/ca.key");
        h.write_file(&key, b"secret", 0o600).unwrap();
        assert!(!h.disk(&key).exists(), "staged until the commit");
        assert_eq!(h.read(&key).unwrap(), b"secret", "but read back at once");
        h.commit().unwrap();
        let meta = fs::metadata(h.disk(&key)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let pki = fs::metadata(h.disk(&NodePath::new("/etc/kubernetes/pki"))).unwrap();
        assert_eq!(pki.mode() & 0o777, 0o755);
        let records = journal::read(h.root()).unwrap();
        let made: Vec<_> = records
            .iter()
            .filter_map(|r| match &r.entry {
                Entry::MakeDir { path, .. } => Some(path.display_str()),
                _ => None,
            })
            .collect();
        assert!(made.contains(&"/etc/kubernetes/pki".to_string()));
        assert!(made.contains(&"/etc".to_string()));
    }

    #[test]
    fn undo_removes_new_files_and_restores_overwritten_ones() {
        let dir = tempfile::tempdir().unwrap();
        let existing = NodePath::new("/etc/kubernetes/admin.conf");
        fs::create_dir_all(dir.path().join("etc/kubernetes")).unwrap();
        fs::write(Root::new(dir.path()).disk(&existing), b"old").unwrap();

        let h = host(dir.path(), false);
        h.start_journal("init").unwrap();
        h.write_file(&existing, b"new", 0o600).unwrap();
        let fresh = NodePath::new("/etc/kubernetes/pki/ca.crt");
        h.write_file(&fresh, b"cert", 0o644).unwrap();
        h.commit().unwrap();
        assert_eq!(fs::read(h.disk(&existing)).unwrap(), b"new");
        let records = journal::read(h.root()).unwrap();
        for record in records.iter().rev() {
            h.undo(&record.entry).unwrap();
        }

        assert_eq!(fs::read(h.disk(&existing)).unwrap(), b"old");
        assert!(!h.disk(&fresh).exists());
        assert!(!h.disk(&NodePath::new("/etc/kubernetes/pki")).exists());
        assert!(h.disk(&NodePath::new("/etc/kubernetes")).exists());
    }

    #[test]
    fn the_host_leaves_an_api_object_entry_to_its_owner_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), false);
        let entry = Entry::ApiObject {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            namespace: Some("kube-system".into()),
            name: "kube-proxy".into(),
            change: journal::ApiChange::Created,
        };
        assert_eq!(
            h.undo(&entry).unwrap(),
            Undone::Foreign {
                kind: "api-object".into(),
                target: "apps/v1 DaemonSet kube-system/kube-proxy".into()
            }
        );
    }

    #[test]
    fn a_sysctl_is_journaled_with_its_value_before_and_put_back_by_undo() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        fs::create_dir_all(proc_root.join("sys/net/ipv4")).unwrap();
        let live = proc_root.join("sys/net/ipv4/ip_forward");
        fs::write(&live, "0\n").unwrap();
        let root = dir.path().join("root");
        let facts = Facts::with_roots(&proc_root, dir.path().join("sys"));
        let h = Host::new(Root::new(&root), facts.clone(), false, Ui::default());
        h.start_journal("init").unwrap();
        assert_eq!(
            h.set_sysctl("net.ipv4.ip_forward", "1").unwrap(),
            SysctlSet::Set
        );
        assert_eq!(fs::read_to_string(&live).unwrap(), "1\n");
        let records = journal::read(h.root()).unwrap();
        let entry = &records.last().unwrap().entry;
        assert_eq!(
            entry,
            &Entry::SetSysctl {
                key: "net.ipv4.ip_forward".into(),
                value: "1".into(),
                prior: "0".into()
            }
        );
        assert_eq!(
            h.undo(entry).unwrap(),
            Undone::SysctlRestored("net.ipv4.ip_forward".into(), "0".into())
        );
        assert_eq!(fs::read_to_string(&live).unwrap(), "0\n");
        assert!(matches!(
            h.set_sysctl("net.bridge.nope", "1").unwrap(),
            SysctlSet::Failed(_)
        ));

        let planning = Host::new(Root::new(&root), facts, true, Ui::default());
        assert_eq!(
            planning.set_sysctl("net.ipv4.ip_forward", "1").unwrap(),
            SysctlSet::Planned
        );
        assert_eq!(
            planning.planned(),
            [Item::new(
                Kind::Sysctl,
                "net.ipv4.ip_forward",
                "to 1, now 0"
            )]
        );
        assert_eq!(fs::read_to_string(&live).unwrap(), "0\n");
    }

    #[test]
    fn a_removed_file_comes_back_with_its_mode_on_undo() {
        let dir = tempfile::tempdir().unwrap();
        let unit = NodePath::new("/etc/systemd/system/kubelet.service.d/10-user.conf");
        fs::create_dir_all(dir.path().join("etc/systemd/system/kubelet.service.d")).unwrap();
        let disk = Root::new(dir.path()).disk(&unit);
        fs::write(&disk, b"[Service]\n").unwrap();
        fs::set_permissions(&disk, fs::Permissions::from_mode(0o640)).unwrap();
        let planning = host(dir.path(), true);
        planning.remove_file(&unit).unwrap();
        assert!(disk.exists());
        assert_eq!(planning.planned()[0].reason, "a copy is kept to undo it");

        let h = host(dir.path(), false);
        h.start_journal("init").unwrap();
        h.remove_file(&unit).unwrap();
        assert!(!disk.exists());
        let records = journal::read(h.root()).unwrap();
        assert_eq!(
            h.undo(&records.last().unwrap().entry).unwrap(),
            Undone::Restored(unit.clone())
        );
        assert_eq!(fs::read(&disk).unwrap(), b"[Service]\n");
        assert_eq!(fs::metadata(&disk).unwrap().mode() & 0o777, 0o640);
    }

    #[test]
    fn a_killed_runs_staged_file_is_removed_by_undo() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), false);
        h.start_journal("init").unwrap();
        let key = NodePath::new("/etc/kubernetes/pki/ca.key");
        h.write_file(&key, b"secret", 0o600).unwrap();
        let tmp = durable::temp_path(&h.disk(&key));
        assert!(tmp.exists());
        let records = journal::read(h.root()).unwrap();
        for record in records.iter().rev() {
            h.undo(&record.entry).unwrap();
        }
        assert!(!tmp.exists());
        assert!(!h.disk(&NodePath::new("/etc/kubernetes")).exists());
    }

    #[test]
    fn backups_of_the_same_name_are_all_kept_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), false);
        h.start_journal("init").unwrap();
        let first = h
            .save_backup("api/core/v1/configmaps/default/x.json", b"1")
            .unwrap();
        let second = h
            .save_backup("api/core/v1/configmaps/default/x.json", b"2")
            .unwrap();
        h.commit().unwrap();
        assert_ne!(first, second);
        assert_eq!(fs::read(h.disk(&first)).unwrap(), b"1");
        assert_eq!(fs::read(h.disk(&second)).unwrap(), b"2");
        let meta = fs::metadata(h.disk(&second)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let dir_meta = fs::metadata(h.disk(&second.parent().unwrap())).unwrap();
        assert_eq!(dir_meta.mode() & 0o777, 0o700);
    }

    #[test]
    fn dry_run_writes_nothing_but_later_reads_see_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), true);
        assert_eq!(h.start_journal("init").unwrap(), None);
        let p = NodePath::new("/etc/kubernetes/pki/ca.crt");
        h.write_file(&p, b"cert", 0o644).unwrap();
        assert_eq!(h.read(&p).unwrap(), b"cert");
        assert!(h.exists(&p));
        assert!(
            !h.dir_is_empty_or_absent(&NodePath::new("/etc/kubernetes/pki"))
                .unwrap()
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(h.plan().len() >= 4);
        let shown = dir
            .path()
            .join("etc/kubernetes/pki/ca.crt")
            .display()
            .to_string();
        assert_eq!(
            h.planned().last().unwrap(),
            &Item::new(Kind::Path, shown, "mode 0644, 4 bytes")
        );
    }
}
