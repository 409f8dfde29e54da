//! The node lock: one node-changing command (init, join, reset) at a time, under `<root>/var/lib/kubestrap/lock`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};

use super::journal::{now_rfc3339, state_dir};
use super::paths::Root;

pub const LOCK_FILE: &str = "lock";

/// Held for the life of the command; the kernel drops the flock if the process dies.
#[derive(Debug)]
pub struct NodeLock {
    _file: Flock<File>,
}

impl NodeLock {
    /// Takes the lock or fails at once, naming the holder.
    pub fn acquire(root: &Root, command: &str) -> anyhow::Result<NodeLock> {
        let dir = state_dir(root);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, errno)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                if errno == nix::errno::Errno::EWOULDBLOCK {
                    bail!(
                        "another kubestrap command is changing this node: the lock {} is held by {}; \
                         wait for it to finish, or stop it",
                        path.display(),
                        if holder.is_empty() {
                            "an unknown process"
                        } else {
                            holder
                        }
                    );
                }
                bail!("locking {}: {errno}", path.display());
            }
        };
        let holder = format!(
            "pid {} (kubestrap {command}) since {}\n",
            std::process::id(),
            now_rfc3339()
        );
        locked.set_len(0)?;
        locked.seek(SeekFrom::Start(0))?;
        // Not synced: the holder line is only for messages, and a crash releases the flock anyway.
        locked.write_all(holder.as_bytes())?;
        Ok(NodeLock { _file: locked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let first = NodeLock::acquire(&root, "init").unwrap();
        let err = NodeLock::acquire(&root, "reset").unwrap_err().to_string();
        assert!(err.contains("kubestrap init"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        NodeLock::acquire(&root, "reset").unwrap();
    }
}
