//! The command line's state directory: each cluster's own copies of the binaries its nodes run
//! (`<state>/<cluster>/bin/{tbnode,kubestrap}`, bind-mounted read-only into the nodes, so a rebuild
//! or `cargo clean` never changes a running cluster), and the lock `up` and `down` take.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use nix::fcntl::{Flock, FlockArg};

use crate::driver::Binaries;

/// Where clusters keep their state unless `--state-dir`/`KUBESTRAP_TESTBED_STATE` says.
pub fn default_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("kubestrap-testbed"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            anyhow!("HOME is not set: give the state directory with --state-dir or KUBESTRAP_TESTBED_STATE")
        })?;
    Ok(PathBuf::from(home).join(".local/state/kubestrap-testbed"))
}

/// The state directory, made absolute (it is recorded in the clusters' labels and its files are
/// bind-mounted, so it must name the same place from anywhere).
#[derive(Debug, Clone)]
pub struct StateRoot {
    path: PathBuf,
}

impl StateRoot {
    /// The directory given, or the default one, without creating it (commands that only read
    /// write nothing): resolved when it exists, else made absolute.
    pub fn locate(given: Option<&Path>) -> Result<StateRoot> {
        let path = match given {
            Some(p) => p.to_path_buf(),
            None => default_root()?,
        };
        let path = if path.exists() {
            path.canonicalize()
        } else {
            std::path::absolute(&path)
        }
        .with_context(|| format!("resolve the state directory {}", path.display()))?;
        Ok(StateRoot { path })
    }

    /// Creates the directory (for `up`) and resolves it.
    pub fn create(self) -> Result<StateRoot> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("create the state directory {}", self.path.display()))?;
        StateRoot::locate(Some(&self.path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn cluster_dir(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Names of the clusters that have a directory here.
    pub fn cluster_dirs(&self) -> Result<Vec<String>> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .with_context(|| format!("read {}", self.path.display()))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| crate::driver::identity::check_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Serialises `up` and `down` of this directory's clusters (held until dropped).
    pub fn lock(&self) -> Result<Flock<File>> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("create the state directory {}", self.path.display()))?;
        let path = self.path.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| anyhow!("lock {}: {e}", path.display()))
    }

    /// Copies the binaries into the cluster's directory (made here; it must not exist yet) and
    /// returns the copies' paths.
    pub fn install_binaries(&self, name: &str, from: &Binaries) -> Result<Binaries> {
        let bin = self.cluster_dir(name).join("bin");
        std::fs::create_dir_all(&bin).with_context(|| format!("create {}", bin.display()))?;
        let installed = Binaries {
            tbnode: bin.join("tbnode"),
            kubestrap: bin.join("kubestrap"),
        };
        for (source, target) in [
            (&from.tbnode, &installed.tbnode),
            (&from.kubestrap, &installed.kubestrap),
        ] {
            if !source.is_file() {
                bail!("{} is not a file", source.display());
            }
            let partial = target.with_extension("partial");
            std::fs::copy(source, &partial)
                .with_context(|| format!("copy {} to {}", source.display(), partial.display()))?;
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
            std::fs::rename(&partial, target)?;
        }
        Ok(installed)
    }

    /// Removes a cluster's directory and checks it is gone.
    pub fn remove(&self, name: &str) -> Result<()> {
        let dir = self.cluster_dir(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", dir.display())),
        }
        if dir.exists() {
            bail!("{} is still there after its removal", dir.display());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_gets_its_own_executable_copies_and_loses_them_on_removal() {
        let tmp = tempfile::tempdir().unwrap();
        let build = tmp.path().join("build");
        std::fs::create_dir_all(&build).unwrap();
        std::fs::write(build.join("tbnode"), b"tbnode v1").unwrap();
        std::fs::write(build.join("my-kubestrap"), b"kubestrap v1").unwrap();
        let from = Binaries {
            tbnode: build.join("tbnode"),
            kubestrap: build.join("my-kubestrap"),
        };
        // Locating the state directory writes nothing; `up` creates it, resolved.
        let root = StateRoot::locate(Some(&tmp.path().join("state/../state"))).unwrap();
        assert!(!tmp.path().join("state").exists());
        assert!(root.cluster_dirs().unwrap().is_empty());
        let root = root.create().unwrap();
        assert_eq!(
            root.path(),
            tmp.path().canonicalize().unwrap().join("state")
        );

        let copies = root.install_binaries("demo", &from).unwrap();
        assert_eq!(copies.kubestrap, root.path().join("demo/bin/kubestrap"));
        // A rebuild in the build tree does not change the cluster's copies.
        std::fs::write(build.join("my-kubestrap"), b"kubestrap v2").unwrap();
        assert_eq!(std::fs::read(&copies.kubestrap).unwrap(), b"kubestrap v1");
        assert_eq!(std::fs::read(&copies.tbnode).unwrap(), b"tbnode v1");
        let mode = std::fs::metadata(&copies.tbnode)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(root.cluster_dirs().unwrap(), ["demo"]);

        root.remove("demo").unwrap();
        assert!(!root.cluster_dir("demo").exists());
        assert!(root.cluster_dirs().unwrap().is_empty());
        root.remove("demo").unwrap();
    }

    #[test]
    fn a_missing_binary_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::locate(Some(tmp.path())).unwrap();
        let from = Binaries {
            tbnode: tmp.path().join("nowhere/tbnode"),
            kubestrap: tmp.path().join("nowhere/kubestrap"),
        };
        let err = root.install_binaries("demo", &from).unwrap_err();
        assert!(err.to_string().contains("nowhere/tbnode"), "{err}");
    }
}
