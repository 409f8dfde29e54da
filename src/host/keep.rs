//! Copies reset keeps before it wipes something (the last etcd member's snapshot, the PKI): made
//! through the Host gateway, so a dry run plans them (`save path …`) and a real run writes them durably
//! (temporary name, sync, rename, one directory sync) in 0700 directories and reports them as kept.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::durable::{self, Batch, Rank};
use super::plan::{Item, Kind, Verb};
use super::{Host, NodePath};

/// Mode of the directories that hold saved copies (they hold private keys).
const SAVE_DIR_MODE: u32 = 0o700;

impl Host {
    /// Saves the file `make` writes at the path it is given (an etcd snapshot streamed to disk) as
    /// `path`: written under a temporary name beside it, synced and renamed. A dry run plans it.
    pub fn save_made(
        &self,
        path: &NodePath,
        what: &str,
        make: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if self.dry_run {
            self.plan_step(Verb::Save, Item::new(Kind::Path, self.shown(path), what));
            return Ok(());
        }
        let disk = self.disk(path);
        make_private_dirs(&disk)?;
        let temp = durable::temp_path(&disk);
        let made = make(&temp).and_then(|()| put_in_place(&temp, &disk, 0o600));
        if made.is_err() {
            let _ = fs::remove_file(&temp);
        }
        made.with_context(|| format!("saving {}", disk.display()))
    }

    /// Copies a file (kept 0600: an etcd db holds the cluster's secrets) to `to`, durably; `false`
    /// when there is nothing to copy. A dry run plans it.
    pub fn save_file_copy(
        &self,
        from: &NodePath,
        to: &NodePath,
        what: &str,
    ) -> anyhow::Result<bool> {
        let source = self.disk(from);
        if !source.is_file() {
            return Ok(false);
        }
        self.save_made(to, what, |temp| {
            fs::copy(&source, temp)
                .map(|_| ())
                .with_context(|| format!("copying {}", source.display()))
        })?;
        Ok(true)
    }

    /// Copies a tree of regular files (symlinks are not followed, modes are kept) to `to`, all synced
    /// together; the number of files, 0 when `from` is not a directory. A dry run plans it.
    pub fn save_tree_copy(
        &self,
        from: &NodePath,
        to: &NodePath,
        what: &str,
    ) -> anyhow::Result<usize> {
        let source = self.disk(from);
        if !source.is_dir() {
            return Ok(0);
        }
        let mut files = Vec::new();
        list_files(&source, Path::new(""), &mut files)?;
        if self.dry_run {
            self.plan_step(Verb::Save, Item::new(Kind::Path, self.shown(to), what));
            return Ok(files.len());
        }
        let target = self.disk(to);
        let mut batch = Batch::default();
        for (relative, mode) in &files {
            let dest = target.join(relative);
            make_private_dirs(&dest)?;
            if let Some(dir) = dest.parent() {
                batch.made_dir(dir);
            }
            let bytes = fs::read(source.join(relative))
                .with_context(|| format!("reading {}", source.join(relative).display()))?;
            batch
                .stage(&dest, &bytes, *mode, Rank::of_mode(*mode))
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        batch
            .commit(None)
            .with_context(|| format!("making the copy {} durable", target.display()))?;
        Ok(files.len())
    }
}

/// The parent directories of `file`, made 0700 where missing.
fn make_private_dirs(file: &Path) -> anyhow::Result<()> {
    let Some(dir) = file.parent() else {
        return Ok(());
    };
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(SAVE_DIR_MODE))
                .with_context(|| format!("setting mode 0700 on {}", d.display()))?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", d.display())),
        }
    }
    Ok(())
}

/// Syncs a finished temporary file, sets its mode, renames it into place and syncs the directory.
fn put_in_place(temp: &Path, target: &Path, mode: u32) -> anyhow::Result<()> {
    let file = fs::File::open(temp)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.sync_all()?;
    fs::rename(temp, target)?;
    if let Some(dir) = target.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Regular files under `dir` (relative paths, with their modes), not following symlinks.
fn list_files(dir: &Path, prefix: &Path, out: &mut Vec<(PathBuf, u32)>) -> anyhow::Result<()> {
    let here = dir.join(prefix);
    let mut entries: Vec<_> = fs::read_dir(&here)
        .with_context(|| format!("listing {}", here.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let meta = fs::symlink_metadata(entry.path())?;
        let relative = prefix.join(entry.file_name());
        if meta.is_dir() {
            list_files(dir, &relative, out)?;
        } else if meta.is_file() {
            out.push((relative, meta.permissions().mode() & 0o7777));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Facts, Root};
    use crate::output::Ui;
    use std::os::unix::fs::MetadataExt;

    fn host(dir: &Path, dry_run: bool) -> Host {
        Host::new(Root::new(dir), Facts::default(), dry_run, Ui::default())
    }

    fn seed(dir: &Path) {
        fs::create_dir_all(dir.join("etc/kubernetes/pki/etcd")).unwrap();
        fs::write(dir.join("etc/kubernetes/pki/ca.crt"), "cert").unwrap();
        fs::write(dir.join("etc/kubernetes/pki/etcd/ca.key"), "key").unwrap();
        fs::set_permissions(
            dir.join("etc/kubernetes/pki/etcd/ca.key"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("etc/kubernetes/pki/link")).unwrap();
        fs::create_dir_all(dir.join("var/lib/etcd/member/snap")).unwrap();
        fs::write(dir.join("var/lib/etcd/member/snap/db"), "db").unwrap();
    }

    #[test]
    fn a_dry_run_plans_the_copies_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        let h = host(dir.path(), true);
        let backup = NodePath::new("/var/lib/kubestrap/backup-x");
        assert!(
            h.save_file_copy(
                &NodePath::new("/var/lib/etcd/member/snap/db"),
                &backup.join("etcd-snapshot.db"),
                "the etcd db file"
            )
            .unwrap()
        );
        assert_eq!(
            h.save_tree_copy(
                &NodePath::new("/etc/kubernetes/pki"),
                &backup.join("pki"),
                "the PKI"
            )
            .unwrap(),
            2
        );
        assert!(!dir.path().join("var/lib/kubestrap").exists());
        let shown = |p: &str| dir.path().join(p).display().to_string();
        assert_eq!(
            h.plan(),
            [
                (
                    Verb::Save,
                    Item::new(
                        Kind::Path,
                        shown("var/lib/kubestrap/backup-x/etcd-snapshot.db"),
                        "the etcd db file"
                    )
                ),
                (
                    Verb::Save,
                    Item::new(
                        Kind::Path,
                        shown("var/lib/kubestrap/backup-x/pki"),
                        "the PKI"
                    )
                ),
            ]
        );
    }

    #[test]
    fn the_copies_keep_modes_follow_no_symlink_and_sit_in_private_directories() {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        let h = host(dir.path(), false);
        let backup = NodePath::new("/var/lib/kubestrap/backup-x");
        h.save_made(&backup.join("etcd-snapshot.db"), "a snapshot", |temp| {
            fs::write(temp, "snapshot")?;
            Ok(())
        })
        .unwrap();
        h.save_tree_copy(
            &NodePath::new("/etc/kubernetes/pki"),
            &backup.join("pki"),
            "the PKI",
        )
        .unwrap();
        let b = dir.path().join("var/lib/kubestrap/backup-x");
        assert_eq!(fs::read(b.join("etcd-snapshot.db")).unwrap(), b"snapshot");
        assert_eq!(
            fs::metadata(b.join("etcd-snapshot.db")).unwrap().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read(b.join("pki/ca.crt")).unwrap(), b"cert");
        assert_eq!(
            fs::metadata(b.join("pki/etcd/ca.key")).unwrap().mode() & 0o777,
            0o600
        );
        assert!(!b.join("pki/link").exists());
        for d in [&b, &b.join("pki"), &b.join("pki/etcd")] {
            assert_eq!(
                fs::metadata(d).unwrap().mode() & 0o777,
                0o700,
                "{}",
                d.display()
            );
        }
        assert_eq!(
            fs::read_dir(&b).unwrap().count(),
            2,
            "no temporary file left"
        );
        let failed = h.save_made(&backup.join("other.db"), "x", |temp| {
            fs::write(temp, "half")?;
            anyhow::bail!("etcd went away")
        });
        assert!(failed.is_err());
        assert_eq!(
            fs::read_dir(&b).unwrap().count(),
            2,
            "a failed save leaves nothing"
        );
    }
}
