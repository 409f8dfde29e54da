//! The node as one object: `--root`-aware state paths, journaled file operations, dry-run, and host facts.
//!
//! Every write of a state file goes through [`Host`]: it creates missing parent directories with
//! kubeadm's modes, journals each effect before doing it, and in dry-run mode only records and
//! prints the plan while keeping an in-memory view so later phases can read what earlier ones
//! "wrote".

pub mod attribution;
pub mod cni;
pub mod command;
pub mod facts;
pub mod inventory;
pub mod ipsets;
pub mod ipvs;
pub mod journal;
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
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::Mutex;

use anyhow::{Context, bail};
use serde::Serialize;

pub use facts::Facts;
use journal::{Entry, JournalWriter, Outcome, Prior};
pub use paths::{NodePath, Root, well_known};

use crate::output::Ui;

/// Mode for directories the tool creates unless a caller asks otherwise (kubeadm: 0755).
pub const DIR_MODE: u32 = 0o755;

/// One step of a dry-run plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Planned {
    MakeDir {
        path: String,
        mode: String,
    },
    WriteFile {
        path: String,
        mode: String,
        bytes: usize,
    },
}

/// What undoing one journal entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undone {
    Removed(NodePath),
    Restored(NodePath),
    AlreadyGone(NodePath),
    /// Left in place, with the reason (e.g. a directory that now holds files the tool did not write).
    Kept(NodePath, String),
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

#[derive(Debug)]
pub struct Host {
    root: Root,
    facts: Facts,
    dry_run: bool,
    ui: Ui,
    journal: Mutex<Option<JournalWriter>>,
    /// Dry-run view: files "written" in this run (`None` = removed).
    overlay: Mutex<BTreeMap<NodePath, Vec<u8>>>,
    overlay_dirs: Mutex<BTreeMap<NodePath, u32>>,
    plan: Mutex<Vec<Planned>>,
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
            plan: Mutex::new(Vec::new()),
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

    /// Records the end of the run.
    pub fn finish_journal(&self, outcome: Outcome) -> anyhow::Result<()> {
        if let Some(writer) = lock(&self.journal).as_mut() {
            writer.append(Entry::RunEnd { outcome })?;
        }
        Ok(())
    }

    /// Appends an entry for a side effect outside the file system (done by a host subsystem).
    pub fn journal(&self, entry: Entry) -> anyhow::Result<()> {
        if let Some(writer) = lock(&self.journal).as_mut() {
            writer.append(entry)?;
        }
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
        if let Some(writer) = lock(&self.journal).as_mut() {
            writer.end_earlier_run(run, outcome)?;
        }
        Ok(())
    }

    /// The dry-run plan so far.
    pub fn plan(&self) -> Vec<Planned> {
        lock(&self.plan).clone()
    }

    // ---- reading (dry-run aware) ----

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

    // ---- writing (journaled) ----

    /// Creates a directory and its missing parents, each journaled. Existing directories are left as they are.
    pub fn ensure_dir(&self, path: &NodePath, mode: u32) -> anyhow::Result<()> {
        if self.is_dir(path) {
            return Ok(());
        }
        if let Some(parent) = path.parent()
            && parent != *path
        {
            self.ensure_dir(&parent, DIR_MODE)?;
        }
        if self.dry_run {
            lock(&self.overlay_dirs).insert(path.clone(), mode);
            self.record_plan(Planned::MakeDir {
                path: path.display_str(),
                mode: format!("{mode:04o}"),
            });
            return Ok(());
        }
        self.journal(Entry::MakeDir {
            path: path.clone(),
            mode,
        })?;
        let disk = self.disk(path);
        match fs::create_dir(&disk) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists && disk.is_dir() => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("creating directory {path}")),
        }
        fs::set_permissions(&disk, fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting mode {mode:04o} on {path}"))?;
        Ok(())
    }

    fn is_dir(&self, path: &NodePath) -> bool {
        lock(&self.overlay_dirs).contains_key(path) || self.disk(path).is_dir()
    }

    /// Writes a whole file atomically with the given mode, creating parent directories (0755).
    /// An existing file is backed up first so the journal can restore it.
    pub fn write_file(&self, path: &NodePath, contents: &[u8], mode: u32) -> anyhow::Result<()> {
        let parent = path
            .parent()
            .with_context(|| format!("{path} has no parent directory"))?;
        self.ensure_dir(&parent, DIR_MODE)?;
        if self.dry_run {
            lock(&self.overlay).insert(path.clone(), contents.to_vec());
            self.record_plan(Planned::WriteFile {
                path: path.display_str(),
                mode: format!("{mode:04o}"),
                bytes: contents.len(),
            });
            return Ok(());
        }
        let disk = self.disk(path);
        let prior = match fs::symlink_metadata(&disk) {
            Ok(meta) if meta.is_dir() => bail!("{path} is a directory, expected a file"),
            Ok(_) => Prior::Backup {
                path: self.back_up(path)?,
            },
            Err(e) if e.kind() == ErrorKind::NotFound => Prior::Absent,
            Err(e) => return Err(e).with_context(|| format!("inspecting {path}")),
        };
        self.journal(Entry::WriteFile {
            path: path.clone(),
            mode,
            prior,
        })?;
        write_atomically(&disk, contents, mode).with_context(|| format!("writing {path}"))
    }

    /// Removes a file, saving a copy first: the removal is journaled as a write whose prior state is
    /// that copy, so undoing it (a rollback, or reset's journal undo) puts the file back.
    pub fn remove_file(&self, path: &NodePath) -> anyhow::Result<()> {
        if self.dry_run {
            if self.exists(path) {
                self.ui.line(format!(
                    "[dry-run] Would remove file {:?}",
                    path.display_str()
                ));
            }
            return Ok(());
        }
        let disk = self.disk(path);
        let meta = match fs::symlink_metadata(&disk) {
            Ok(meta) if meta.is_dir() => bail!("{path} is a directory, expected a file"),
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("inspecting {path}")),
        };
        let backup = self.back_up(path)?;
        fs::set_permissions(
            self.disk(&backup),
            fs::Permissions::from_mode(meta.mode() & 0o7777),
        )
        .with_context(|| format!("keeping the mode of {path} in its backup"))?;
        self.journal(Entry::WriteFile {
            path: path.clone(),
            mode: meta.mode() & 0o7777,
            prior: Prior::Backup { path: backup },
        })?;
        fs::remove_file(&disk).with_context(|| format!("removing {path}"))
    }

    fn back_up(&self, path: &NodePath) -> anyhow::Result<NodePath> {
        let relative = path
            .canonical()
            .strip_prefix("/")
            .unwrap_or(path.canonical())
            .display()
            .to_string();
        let bytes = fs::read(self.disk(path)).with_context(|| format!("backing up {path}"))?;
        self.save_backup(&relative, &bytes)
            .with_context(|| format!("writing backup of {path}"))
    }

    /// Saves a copy of something a run is about to change under this run's backup directory
    /// (`<state>/backups/<run>/<relative>`, 0600 in 0700 directories); returns where. A name used
    /// before in this run gets a numbered suffix, so every copy is kept.
    pub fn save_backup(&self, relative: &str, bytes: &[u8]) -> anyhow::Result<NodePath> {
        let run = self.run_id().unwrap_or_else(|| "unjournaled".to_string());
        let base = NodePath::new(well_known::STATE_DIR)
            .join("backups")
            .join(run)
            .join(relative.trim_start_matches('/'));
        let mut backup = base.clone();
        let mut copy = 1;
        while self.disk(&backup).exists() {
            backup = NodePath::new(format!("{}.{copy}", base.display_str()));
            copy += 1;
        }
        let backup_disk = self.disk(&backup);
        if let Some(dir) = backup_disk.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        write_atomically(&backup_disk, bytes, 0o600)
            .with_context(|| format!("writing backup {backup}"))?;
        Ok(backup)
    }

    fn record_plan(&self, step: Planned) {
        let text = match &step {
            Planned::MakeDir { path, mode } => {
                format!("[dry-run] Would create directory {path:?} (mode {mode})")
            }
            Planned::WriteFile { path, mode, bytes } => {
                format!("[dry-run] Would write file {path:?} (mode {mode}, {bytes} bytes)")
            }
        };
        self.ui.line(text);
        lock(&self.plan).push(step);
    }

    // ---- undo ----

    /// Undoes one journal entry. File entries are undone here; others are returned as `Foreign`
    /// (the executor's rollback hands those to the gateway that made them).
    pub fn undo(&self, entry: &Entry) -> anyhow::Result<Undone> {
        match entry {
            Entry::WriteFile { path, prior, .. } => match prior {
                Prior::Absent => remove_file_if_present(&self.disk(path), path),
                Prior::Backup { path: backup } => {
                    let backup_disk = self.disk(backup);
                    match fs::read(&backup_disk) {
                        Ok(bytes) => {
                            let mode = fs::metadata(&backup_disk)
                                .map(|m| m.permissions().mode() & 0o7777)
                                .unwrap_or(0o600);
                            write_atomically(&self.disk(path), &bytes, mode)
                                .with_context(|| format!("restoring {path} from {backup}"))?;
                            let _ = fs::remove_file(&backup_disk);
                            Ok(Undone::Restored(path.clone()))
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Undone::Kept(
                            path.clone(),
                            format!("its backup {backup} is gone"),
                        )),
                        Err(e) => Err(e).with_context(|| format!("reading backup {backup}")),
                    }
                }
            },
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
}

fn remove_file_if_present(disk: &std::path::Path, path: &NodePath) -> anyhow::Result<Undone> {
    match fs::remove_file(disk) {
        Ok(()) => Ok(Undone::Removed(path.clone())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Undone::AlreadyGone(path.clone())),
        Err(e) => Err(e).with_context(|| format!("removing {path}")),
    }
}

/// Writes to a temporary file created with the final mode (so secrets are never world-readable),
/// syncs it, and renames it over the target.
fn write_atomically(target: &std::path::Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(std::path::Path::new("/"));
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    let tmp = dir.join(format!(".{name}.kubestrap-tmp"));
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, target)
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
    }
}
