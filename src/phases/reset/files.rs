//! `cleanup-node/files`: undoes the journal in reverse (files and directories kubestrap wrote; backups
//! restored), then sweeps kubeadm's paths (manifests, PKI, kubeconfigs, the kubelet dir) and the CNI state
//! of our networks. Foreign CNI configs are listed, not deleted; persistent-volume data under the kubelet
//! dir stays unless `--purge-volumes`; no symlink is followed and no mount is crossed.

use std::path::{Path, PathBuf};

use super::ResetData;
use crate::host::inventory::{Addon, Found, Kind, Outcome, Owner};
use crate::host::journal::{self, Entry, Prior};
use crate::host::tree::{self, Protection};
use crate::host::{NodePath, Undone, cni, mounts, services, sysctl, well_known};
use crate::workflow::Phase;

/// kubeadm's kubeconfig files.
pub const KUBECONFIG_FILES: &[&str] = &[
    "admin.conf",
    "super-admin.conf",
    "kubelet.conf",
    "bootstrap-kubelet.conf",
    "controller-manager.conf",
    "scheduler.conf",
];

/// Volume plugins whose data lives only as long as the pod (everything else is persistent).
const EPHEMERAL_VOLUMES: &[&str] = &[
    "kubernetes.io~secret",
    "kubernetes.io~configmap",
    "kubernetes.io~projected",
    "kubernetes.io~empty-dir",
    "kubernetes.io~downward-api",
];

pub fn phase() -> Phase<ResetData> {
    Phase::leaf(
        "files",
        "Delete the cluster's files, CNI state and kubestrap's journaled files",
        run,
    )
}

fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| match std::fs::symlink_metadata(e.path()) {
                Ok(m) if m.is_dir() => has_files(&e.path()),
                Ok(_) => true,
                Err(_) => false,
            })
    })
}

/// Persistent-volume directories with data under the kubelet dir.
pub fn persistent_volumes(kubelet: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let pods = std::fs::read_dir(kubelet.join("pods"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok);
    for pod in pods {
        let plugins = std::fs::read_dir(pod.path().join("volumes"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok);
        for plugin in plugins {
            let name = plugin.file_name().to_string_lossy().into_owned();
            if !EPHEMERAL_VOLUMES.contains(&name.as_str()) && has_files(&plugin.path()) {
                out.push(plugin.path());
            }
        }
    }
    out
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Deleting files and directories");
    let root = data.host.root().clone();
    let mount_points: Vec<PathBuf> = mounts::scan(data.host.facts())?
        .into_iter()
        .map(|m| m.mount_point)
        .collect();
    let mut protection = Protection {
        keep: Vec::new(),
        left: data.protected.clone(),
    };
    protection.left.extend(
        mount_points
            .iter()
            .map(|p| (p.clone(), "still a mount point: not crossed".to_string())),
    );

    // Our sysctl drop-ins, reported key by key, before the journal undo removes the files silently.
    let mut systemd_changed = false;
    for drop_in in sysctl::scan(&root) {
        let (file, keys) = sysctl::attribute(&root, &drop_in, &data.journal_files);
        if !file.owner.is_cluster() {
            continue;
        }
        if data.dry_run() {
            data.planned.extend(
                keys.iter()
                    .map(|k| k.item("our sysctl drop-in; the live value is left as is")),
            );
            data.planned.push(file.item("made by kubestrap"));
        } else {
            data.record(sysctl::remove(&file, &keys));
        }
    }

    undo_journal(data, &mut systemd_changed)?;

    // kubeadm's directories (contents) and kubeconfig files.
    let kubelet = mounts::resolve_top(&data.host.disk(&NodePath::new(well_known::KUBELET_DIR)))?;
    if !data.settings.purge_volumes {
        for pv in persistent_volumes(&kubelet) {
            protection.keep.push((
                pv,
                "persistent-volume data (--purge-volumes removes it)".to_string(),
            ));
        }
    }
    let mut dirs: Vec<(PathBuf, Owner)> = vec![
        (
            data.host.disk(&NodePath::new(well_known::MANIFESTS_DIR)),
            Owner::Kubernetes,
        ),
        (kubelet, Owner::Kubernetes),
        (data.host.disk(&data.settings.cert_dir), Owner::Kubernetes),
    ];
    if data.settings.cleanup_tmp_dir {
        dirs.push((
            data.host.disk(&NodePath::new(well_known::TMP_DIR)),
            Owner::Kubernetes,
        ));
    }
    for (dir, owner) in dirs {
        clear(data, &dir, true, owner, &protection);
    }
    for name in KUBECONFIG_FILES {
        let path = data
            .host
            .disk(&NodePath::new(well_known::KUBERNETES_DIR).join(name));
        clear(data, &path, false, Owner::Kubernetes, &protection);
    }

    // CNI: our configs went with the journal; foreign ones are listed. State of our networks goes.
    let state = cni::scan(&root);
    let mut known_networks = std::collections::BTreeSet::new();
    for conf in &state.conf_files {
        let found = cni::attribute_conf(&root, conf, &data.journal_files);
        if let Some(n) = &conf.network {
            known_networks.insert(n.clone());
        }
        data.apply(&found, cni::remove_file);
    }
    let reservations: Vec<_> = state
        .reservations
        .iter()
        .map(|r| (r.clone(), cni::attribute_reservation(r, &data.scope)))
        .collect();
    for network in &state.ipam_networks {
        let owner = data.scope.cni_network_owner(network);
        let mine: Vec<_> = reservations
            .iter()
            .filter(|(r, _)| &r.network == network)
            .cloned()
            .collect();
        if !owner.is_cluster() {
            data.record(mine.iter().map(|(_, f)| f.kept_foreign()));
        } else if data.dry_run() {
            data.planned.extend(
                mine.iter()
                    .map(|(_, f)| f.item(format!("made by {}", f.owner))),
            );
        } else {
            data.record(cni::remove_ipam_network(&root, network, &mine));
        }
    }
    for path in &state.cached {
        let found = cni::attribute_cached(&root, path, &data.scope, &known_networks);
        data.apply(&found, cni::remove_file);
    }
    let (flannel_cache, owner) = cni::flannel_cache();
    clear(
        data,
        &data.host.disk(&flannel_cache),
        false,
        owner,
        &protection,
    );
    let flannel_run = data.host.disk(&NodePath::new(well_known::FLANNEL_RUN_DIR));
    clear(
        data,
        &flannel_run,
        false,
        Owner::Addon(Addon::Flannel),
        &protection,
    );

    if systemd_changed && !data.dry_run() {
        services::daemon_reload(data.host.facts())?;
    }
    if !data.dry_run() {
        archive_journal(data)?;
    }
    Ok(())
}

/// Deletes a file or a directory tree (contents only when `keep_top`), or plans it in a dry run.
fn clear(data: &mut ResetData, path: &Path, keep_top: bool, owner: Owner, protection: &Protection) {
    let exists = std::fs::symlink_metadata(path).is_ok();
    if !exists || (keep_top && !has_entries(path)) {
        return;
    }
    if data.dry_run() {
        let what = if keep_top {
            "its contents"
        } else {
            "made by the cluster"
        };
        data.planned
            .push(Found::new(Kind::Path, path.display().to_string(), owner).item(what));
        return;
    }
    data.record(tree::remove_tree(path, keep_top, owner, protection));
}

fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut e| e.next().is_some())
}

/// Undoes every journaled file effect, newest first.
fn undo_journal(data: &mut ResetData, systemd_changed: &mut bool) -> anyhow::Result<()> {
    let entries: Vec<Entry> = data.journal.iter().rev().cloned().collect();
    for entry in entries {
        let path = match &entry {
            Entry::WriteFile { path, .. } | Entry::MakeDir { path, .. } => path.clone(),
            Entry::Artefact { kind, target, .. } => {
                data.host.ui().debug(
                    2,
                    format!("[reset] journaled {kind} {target}: found by the sweep"),
                );
                continue;
            }
            _ => continue,
        };
        let disk = data.host.disk(&path).display().to_string();
        let found = Found::new(Kind::Path, disk, Owner::Kubestrap);
        if path.starts_with(&NodePath::new(well_known::SYSTEMD_DIR)) {
            *systemd_changed = true;
        }
        if data.dry_run() {
            if data.host.exists(&path) {
                let what = match &entry {
                    Entry::WriteFile {
                        prior: Prior::Backup { .. },
                        ..
                    } => "restore the version from before kubestrap",
                    Entry::MakeDir { .. } => "remove the directory if empty",
                    _ => "made by kubestrap",
                };
                data.planned.push(found.item(what));
            }
            continue;
        }
        let outcome = match data.host.undo(&entry) {
            Ok(Undone::Removed(_)) => found.removed(),
            Ok(Undone::Restored(_)) => {
                Outcome::Removed(found.item("restored the version from before kubestrap"))
            }
            Ok(Undone::Kept(_, why)) => {
                // A directory that still holds others' files is expected, not a failure.
                if matches!(entry, Entry::MakeDir { .. }) {
                    continue;
                }
                found.left(why, false)
            }
            Ok(_) => continue,
            Err(e) => found.left(format!("{e:#}"), false),
        };
        data.record([outcome]);
    }
    Ok(())
}

/// Moves the undone journal aside so the next init starts a fresh one and a second reset has nothing to undo.
fn archive_journal(data: &ResetData) -> anyhow::Result<()> {
    let path = journal::journal_path(data.host.root());
    if path.exists() {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let archived = path.with_file_name(format!("journal-undone-{stamp}.jsonl"));
        std::fs::rename(&path, &archived)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistent_volume_dirs_with_data_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path();
        std::fs::create_dir_all(k.join("pods/p1/volumes/kubernetes.io~csi/pv1/mount")).unwrap();
        std::fs::write(
            k.join("pods/p1/volumes/kubernetes.io~csi/pv1/mount/data"),
            "x",
        )
        .unwrap();
        std::fs::create_dir_all(k.join("pods/p1/volumes/kubernetes.io~secret/tok")).unwrap();
        std::fs::write(k.join("pods/p1/volumes/kubernetes.io~secret/tok/t"), "x").unwrap();
        std::fs::create_dir_all(k.join("pods/p2/volumes/kubernetes.io~local-volume/empty"))
            .unwrap();
        assert_eq!(
            persistent_volumes(k),
            vec![k.join("pods/p1/volumes/kubernetes.io~csi")]
        );
    }
}
