//! Durable file writes at group-commit cost: a batch of staged files made durable together.
//!
//! A staged file is written in full to a temporary file beside its target (created with its final
//! mode) and not synced. [`Batch::commit`] then syncs every temporary file and the journal at once on a
//! small pool of threads (the disk sees them together and the caller waits about once), renames the
//! files into place — backups first, then secrets (keys, kubeconfigs: no group or other bits), then
//! the rest, so a crash never leaves a certificate without its key — and syncs each directory it
//! renamed into once, again together. `syncfs` is not used: it would flush every other writer's data.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads that issue a batch's syncs; a phase's files are a few dozen at most.
const SYNC_THREADS: usize = 8;

/// When a staged file is renamed into place, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// A copy of a file about to be replaced: in place before the replacement.
    Backup,
    /// A file only its owner may read (a private key, a kubeconfig with one).
    Secret,
    /// Everything else (certificates, manifests, configuration).
    Plain,
}

impl Rank {
    /// The rank of a file written with `mode`.
    pub fn of_mode(mode: u32) -> Rank {
        if mode & 0o077 == 0 {
            Rank::Secret
        } else {
            Rank::Plain
        }
    }
}

#[derive(Debug)]
struct Staged {
    target: PathBuf,
    tmp: PathBuf,
    file: File,
    rank: Rank,
}

/// Files written but not yet durable nor in place, and directories made since the last commit.
#[derive(Debug, Default)]
pub struct Batch {
    staged: Vec<Staged>,
    /// Parents of directories made in this batch: synced at commit so the new entries last.
    made_in: BTreeSet<PathBuf>,
}

/// What one commit did (for tests and `-v` output).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub files: usize,
    pub syncs: usize,
}

/// The temporary file a target is staged in: hidden, beside it, so the rename stays in one directory.
pub fn temp_path(target: &Path) -> PathBuf {
    let dir = target.parent().unwrap_or(Path::new("/"));
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    dir.join(format!(".{name}.kubestrap-tmp"))
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty() && self.made_in.is_empty()
    }

    /// Writes `contents` to the target's temporary file with `mode` (never wider, so a secret is
    /// never readable by others), replacing an earlier staging of the same target.
    pub fn stage(
        &mut self,
        target: &Path,
        contents: &[u8],
        mode: u32,
        rank: Rank,
    ) -> std::io::Result<()> {
        self.staged.retain(|s| s.target != target);
        let tmp = temp_path(target);
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        self.staged.push(Staged {
            target: target.to_path_buf(),
            tmp,
            file,
            rank,
        });
        Ok(())
    }

    /// Gives a staged file another mode (a backup keeps the mode of the file it copies).
    pub fn restage_mode(&mut self, target: &Path, mode: u32) -> std::io::Result<()> {
        match self.staged.iter().find(|s| s.target == target) {
            Some(s) => s.file.set_permissions(fs::Permissions::from_mode(mode)),
            None => Ok(()),
        }
    }

    /// Notes a directory made in this batch: its parent is synced at commit.
    pub fn made_dir(&mut self, dir: &Path) {
        if let Some(parent) = dir.parent() {
            self.made_in.insert(parent.to_path_buf());
        }
    }

    /// Makes the batch durable and puts it in place: the staged files and `journal` synced together,
    /// renames in rank order, then each touched directory synced once (together).
    pub fn commit(&mut self, journal: Option<&File>) -> std::io::Result<Committed> {
        let mut staged = std::mem::take(&mut self.staged);
        let made_in = std::mem::take(&mut self.made_in);
        let mut done = Committed::default();
        if staged.is_empty() && made_in.is_empty() {
            return Ok(done);
        }
        let mut syncs: Vec<&File> = staged.iter().map(|s| &s.file).collect();
        syncs.extend(journal);
        done.syncs += syncs.len();
        sync_together(&syncs)?;
        staged.sort_by_key(|s| s.rank);
        let mut dirs: BTreeSet<PathBuf> = made_in;
        for s in &staged {
            fs::rename(&s.tmp, &s.target)?;
            if let Some(dir) = s.target.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        done.files = staged.len();
        drop(staged);
        let dir_files: Vec<File> = dirs.iter().filter_map(|d| File::open(d).ok()).collect();
        let refs: Vec<&File> = dir_files.iter().collect();
        done.syncs += refs.len();
        sync_together(&refs)?;
        Ok(done)
    }

    /// Drops what is staged without putting it in place (the temporary files are removed).
    pub fn discard(&mut self) {
        for s in self.staged.drain(..) {
            let _ = fs::remove_file(&s.tmp);
        }
        self.made_in.clear();
    }
}

/// `fdatasync`s every file, on up to [`SYNC_THREADS`] threads at once; the first error is returned
/// after all have been tried.
pub fn sync_together(files: &[&File]) -> std::io::Result<()> {
    match files {
        [] => return Ok(()),
        [one] => return one.sync_data(),
        _ => {}
    }
    let next = AtomicUsize::new(0);
    let threads = files.len().min(SYNC_THREADS);
    // The workers start together, so the first one spawned does not take every file alone.
    let start = Barrier::new(threads);
    let results: Vec<std::io::Result<()>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    let mut result = Ok(());
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(at) else { break };
                        if let Err(e) = file.sync_data()
                            && result.is_ok()
                        {
                            result = Err(e);
                        }
                    }
                    result
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a sync thread panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Writes one file durably on its own (temporary file, sync, rename, directory sync): for writes
/// outside a journaled run, where there is no batch to join.
pub fn write_now(target: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut batch = Batch::default();
    batch.stage(target, contents, mode, Rank::of_mode(mode))?;
    batch.commit(None).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn nothing_is_in_place_before_the_commit_and_everything_after() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a.key");
        let crt = dir.path().join("a.crt");
        let mut batch = Batch::default();
        batch.stage(&crt, b"cert", 0o644, Rank::Plain).unwrap();
        batch.stage(&key, b"key", 0o600, Rank::Secret).unwrap();
        assert!(!key.exists() && !crt.exists());
        assert!(temp_path(&key).exists());
        assert_eq!(fs::metadata(temp_path(&key)).unwrap().mode() & 0o777, 0o600);
        let journal = File::create(dir.path().join("journal")).unwrap();
        let done = batch.commit(Some(&journal)).unwrap();
        assert_eq!(done.files, 2);
        assert_eq!(done.syncs, 4, "two files, the journal, one directory");
        assert_eq!(fs::read(&key).unwrap(), b"key");
        assert_eq!(fs::read(&crt).unwrap(), b"cert");
        assert!(!temp_path(&key).exists());
        assert!(batch.is_empty());
    }

    #[test]
    fn staging_a_target_again_keeps_the_last_contents() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.conf");
        let mut batch = Batch::default();
        batch.stage(&f, b"one", 0o644, Rank::Plain).unwrap();
        batch.stage(&f, b"two", 0o644, Rank::Plain).unwrap();
        assert_eq!(batch.commit(None).unwrap().files, 1);
        assert_eq!(fs::read(&f).unwrap(), b"two");
    }

    #[test]
    fn secrets_rank_before_plain_files() {
        assert_eq!(Rank::of_mode(0o600), Rank::Secret);
        assert_eq!(Rank::of_mode(0o644), Rank::Plain);
        assert!(Rank::Backup < Rank::Secret && Rank::Secret < Rank::Plain);
    }

    #[test]
    fn a_discarded_batch_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        let mut batch = Batch::default();
        batch.stage(&f, b"x", 0o600, Rank::Secret).unwrap();
        batch.discard();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
