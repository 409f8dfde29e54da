//! sysctl drop-ins in /etc/sysctl.d: scan, attribute (ours only per the journal) and remove, and where a
//! key's live value is. Reset does not flip live values back: other software may rely on them
//! (ip_forward, bridge-nf-call-iptables); only the rollback of the run that set one does.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::facts::Facts;

use super::inventory::{Found, Kind, Outcome, Owner};
use super::paths::{NodePath, Root, well_known};

/// The /proc/sys file of a dotted key (`net.ipv4.ip_forward` → `<proc>/sys/net/ipv4/ip_forward`).
pub fn live_path(facts: &Facts, key: &str) -> PathBuf {
    facts.proc_path(format!("sys/{}", key.replace('.', "/")))
}

/// A drop-in file and the keys it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropIn {
    pub path: NodePath,
    pub keys: Vec<String>,
}

/// The keys a sysctl.d file sets (`key = value`, comments with `#` or `;`).
pub fn parse_keys(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, _)| k.trim().trim_start_matches('-').to_string())
        })
        .collect()
}

pub fn scan(root: &Root) -> Vec<DropIn> {
    let dir = NodePath::new(well_known::SYSCTL_DIR);
    let mut names: Vec<String> = std::fs::read_dir(root.disk(&dir))
        .map(|e| {
            e.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.ends_with(".conf"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let keys = std::fs::read_to_string(root.disk(&path))
                .map(|t| parse_keys(&t))
                .unwrap_or_default();
            DropIn { path, keys }
        })
        .collect()
}

/// The file and one `sysctl` item per key, owned by kubestrap only when the journal wrote the file.
pub fn attribute(
    root: &Root,
    drop_in: &DropIn,
    journal_files: &BTreeSet<NodePath>,
) -> (Found, Vec<Found>) {
    let owner = if journal_files.contains(&drop_in.path) {
        Owner::Kubestrap
    } else {
        Owner::Foreign("the user or the OS")
    };
    let file = Found::new(
        Kind::Path,
        root.disk(&drop_in.path).display().to_string(),
        owner,
    );
    let keys = drop_in
        .keys
        .iter()
        .map(|k| Found::new(Kind::Sysctl, k.clone(), owner))
        .collect();
    (file, keys)
}

/// Removes one of our drop-ins; the keys it set are reported with it (their live values stay).
pub fn remove(file: &Found, keys: &[Found]) -> Vec<Outcome> {
    if !file.owner.is_cluster() {
        return Vec::new();
    }
    let result = match std::fs::remove_file(&file.target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    let mut out = Vec::new();
    match result {
        Ok(()) => {
            out.push(file.removed());
            out.extend(keys.iter().map(|k| {
                Outcome::Removed(k.item("drop-in removed; the live value is left as is"))
            }));
        }
        Err(e) => out.push(file.left(format!("removing: {e}"), false)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_journaled_drop_ins_are_ours() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("etc/sysctl.d")).unwrap();
        std::fs::write(
            dir.path().join("etc/sysctl.d/99-kubestrap.conf"),
            "# k8s\nnet.ipv4.ip_forward = 1\n-net.bridge.bridge-nf-call-iptables=1\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/sysctl.d/10-user.conf"),
            "vm.swappiness=10\n",
        )
        .unwrap();
        let drop_ins = scan(&root);
        assert_eq!(drop_ins.len(), 2);
        let journal: BTreeSet<NodePath> = [NodePath::new("/etc/sysctl.d/99-kubestrap.conf")].into();
        let (user, _) = attribute(&root, &drop_ins[0], &journal);
        assert!(!user.owner.is_cluster());
        assert!(remove(&user, &[]).is_empty());
        let (ours, keys) = attribute(&root, &drop_ins[1], &journal);
        assert_eq!(
            keys.iter().map(|k| k.target.as_str()).collect::<Vec<_>>(),
            vec!["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"]
        );
        assert_eq!(remove(&ours, &keys).len(), 3);
        assert!(!dir.path().join("etc/sysctl.d/99-kubestrap.conf").exists());
        assert!(dir.path().join("etc/sysctl.d/10-user.conf").exists());
    }
}
