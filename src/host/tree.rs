//! Deleting directory trees safely: never follow a symlink (the link itself goes), never cross onto
//! another file system (a mount point inside is left and reported), and never touch protected paths.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::inventory::{Found, Kind, Outcome, Owner};

/// What a tree removal must not delete.
#[derive(Debug, Clone, Default)]
pub struct Protection {
    /// Paths kept on purpose, with the reason (e.g. persistent-volume data).
    pub keep: Vec<(PathBuf, String)>,
    /// Paths that must stay because something could not be undone there (e.g. a mount that would not go).
    pub left: Vec<(PathBuf, String)>,
}

impl Protection {
    fn verdict(&self, path: &Path) -> Option<(bool, &str)> {
        if let Some((_, why)) = self.left.iter().find(|(p, _)| path == p) {
            return Some((false, why));
        }
        self.keep
            .iter()
            .find(|(p, _)| path == p)
            .map(|(_, why)| (true, why.as_str()))
    }
}

/// Removes `dir`'s contents (and `dir` itself unless `keep_top`), staying on `dir`'s file system.
/// Returns the outcome for `dir` plus one for every path that had to stay.
pub fn remove_tree(
    dir: &Path,
    keep_top: bool,
    owner: Owner,
    protection: &Protection,
) -> Vec<Outcome> {
    let found = Found::new(Kind::Path, dir.display().to_string(), owner);
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => return vec![found.left(format!("cannot inspect: {e}"), false)],
    };
    let mut outcomes = Vec::new();
    if !meta.is_dir() {
        outcomes.push(remove_entry(dir, &found));
        return outcomes;
    }
    let clean = remove_children(dir, meta.dev(), owner, protection, &mut outcomes);
    if clean
        && !keep_top
        && let Err(e) = std::fs::remove_dir(dir)
    {
        outcomes.push(found.left(format!("removing the directory: {e}"), false));
        return outcomes;
    }
    if clean {
        outcomes.insert(0, found.removed());
    }
    outcomes
}

fn remove_entry(path: &Path, found: &Found) -> Outcome {
    match std::fs::remove_file(path) {
        Ok(()) => found.removed(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => found.removed(),
        Err(e) => found.left(format!("removing: {e}"), false),
    }
}

/// Deletes everything below `dir`; true when all of it went.
fn remove_children(
    dir: &Path,
    dev: u64,
    owner: Owner,
    protection: &Protection,
    outcomes: &mut Vec<Outcome>,
) -> bool {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            outcomes.push(
                Found::new(Kind::Path, dir.display().to_string(), owner)
                    .left(format!("cannot list: {e}"), false),
            );
            return false;
        }
    };
    let mut clean = true;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let found = Found::new(Kind::Path, path.display().to_string(), owner);
        if let Some((kept, why)) = protection.verdict(&path) {
            outcomes.push(if kept {
                found.kept(why)
            } else {
                found.left(why, false)
            });
            clean = false;
            continue;
        }
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                outcomes.push(found.left(format!("cannot inspect: {e}"), false));
                clean = false;
                continue;
            }
        };
        if meta.is_dir() {
            if meta.dev() != dev {
                outcomes
                    .push(found.left("a mount point (another file system); not crossed", false));
                clean = false;
                continue;
            }
            if remove_children(&path, dev, owner, protection, outcomes) {
                if let Err(e) = std::fs::remove_dir(&path) {
                    outcomes.push(found.left(format!("removing the directory: {e}"), false));
                    clean = false;
                }
            } else {
                clean = false;
            }
        } else {
            // Files, symlinks (never followed), sockets, fifos.
            match remove_entry(&path, &found) {
                Outcome::Removed(_) => {}
                other => {
                    outcomes.push(other);
                    clean = false;
                }
            }
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_contents_without_following_symlinks_and_keeps_protected_paths() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), "data").unwrap();
        let top = dir.path().join("kubelet");
        std::fs::create_dir_all(top.join("pods/p1/volumes/kubernetes.io~csi/pv1")).unwrap();
        std::fs::write(top.join("pods/p1/volumes/kubernetes.io~csi/pv1/data"), "pv").unwrap();
        std::fs::create_dir_all(top.join("pods/p2")).unwrap();
        std::fs::write(top.join("config.yaml"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, top.join("pods/p2/link-out")).unwrap();
        let protection = Protection {
            keep: vec![(
                top.join("pods/p1/volumes/kubernetes.io~csi"),
                "persistent-volume data".into(),
            )],
            left: vec![],
        };
        let outcomes = remove_tree(&top, true, Owner::Kubernetes, &protection);
        assert!(outside.join("precious").exists());
        assert!(
            top.join("pods/p1/volumes/kubernetes.io~csi/pv1/data")
                .exists()
        );
        assert!(!top.join("config.yaml").exists());
        assert!(!top.join("pods/p2").exists());
        assert!(top.exists());
        assert_eq!(outcomes.len(), 1);
        assert!(matches!(&outcomes[0], Outcome::Kept(i) if i.reason == "persistent-volume data"));

        let outcomes = remove_tree(&outside, false, Owner::Kubernetes, &Protection::default());
        assert!(matches!(&outcomes[0], Outcome::Removed(_)));
        assert!(!outside.exists());
        assert!(remove_tree(&outside, false, Owner::Kubernetes, &Protection::default()).is_empty());
    }
}
