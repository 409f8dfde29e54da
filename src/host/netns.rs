//! Named network namespaces under /run/netns: scan, attribute (`cni-*` is the CNI's, made for pods) and remove.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, umount2};

use super::inventory::{Found, Kind, Outcome, Owner};

/// Where `ip netns` and the CNI keep named namespaces (kernel state, not re-rooted).
pub const NETNS_DIR: &str = "/run/netns";

/// Names of the namespaces in `dir`.
pub fn scan(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("listing {}", dir.display()))),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// `cni-<uuid>` namespaces are made by the container runtime's CNI for pods; others are someone else's.
pub fn attribute(name: &str) -> Found {
    let owner = if name.starts_with("cni-") {
        Owner::Kubernetes
    } else {
        Owner::Foreign("the user or another runtime")
    };
    Found::new(Kind::Netns, name, owner)
}

/// Removes a named namespace as `ip netns delete` does: detach its bind mount, then unlink the file.
pub fn remove(dir: &Path, found: &Found) -> Outcome {
    if !found.owner.is_cluster() {
        return found.kept_foreign();
    }
    let path: PathBuf = dir.join(&found.target);
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return found.left(format!("detaching {}: {}", path.display(), e.desc()), false),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => found.removed(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => found.removed(),
        Err(e) => found.left(format!("removing {}: {e}", path.display()), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cni_namespaces_are_ours() {
        assert!(attribute("cni-0b1c2d3e-aaaa").owner.is_cluster());
        assert!(!attribute("testns").owner.is_cluster());
    }

    #[test]
    fn removes_plain_files_and_keeps_foreign_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cni-1"), "").unwrap();
        std::fs::write(dir.path().join("mine"), "").unwrap();
        let names = scan(dir.path()).unwrap();
        assert_eq!(names, vec!["cni-1", "mine"]);
        let outcomes: Vec<_> = names
            .iter()
            .map(|n| remove(dir.path(), &attribute(n)))
            .collect();
        assert!(matches!(outcomes[0], Outcome::Removed(_)));
        assert!(matches!(outcomes[1], Outcome::Kept(_)));
        assert_eq!(scan(dir.path()).unwrap(), vec!["mine"]);
        assert!(scan(&dir.path().join("absent")).unwrap().is_empty());
    }
}
