//! `cleanup-node/files`: undoes the journal in reverse (files and directories kubestrap wrote; backups
//! restored), then sweeps kubeadm's paths (manifests, PKI, kubeconfigs, the kubelet dir) and the CNI state
//! of our networks. Foreign CNI configs are listed, not deleted; persistent-volume data under the kubelet
//! dir stays unless `--purge-volumes`; no symlink is followed and no mount is crossed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::ResetData;
use crate::host::inventory::{Found, Kind, Outcome, Owner};
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

/// The kubelet's own file beside a volume's mount point (CSI: the driver, volume handle and mode).
const VOLUME_METADATA: &str = "vol_data.json";

/// Whether a directory holds a file at any depth. Symlinks are not files here: the link is the
/// kubelet's, whatever it points to (reset removes the link itself and never follows it).
fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| match std::fs::symlink_metadata(e.path()) {
                Ok(m) if m.is_dir() => has_files(&e.path()),
                Ok(m) => !m.file_type().is_symlink(),
                Err(_) => false,
            })
    })
}

/// Whether a volume directory holds data of its own: a file other than the kubelet's metadata.
fn has_data(volume: &Path) -> bool {
    std::fs::read_dir(volume).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| match std::fs::symlink_metadata(e.path()) {
                Ok(m) if m.is_dir() => has_files(&e.path()),
                Ok(m) if m.file_type().is_symlink() => false,
                Ok(_) => e.file_name() != VOLUME_METADATA,
                Err(_) => false,
            })
    })
}

fn entries(dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
}

/// The pod volumes under the kubelet dir (`pods/<uid>/volumes/<plugin>/<volume>`) that hold
/// persistent-volume data, decided by what is behind their mounts rather than by the plugin's name:
/// - a volume with a mount reset unmounted (`unmounted`) had its data behind that mount; what is left
///   beside it is the kubelet's metadata (`vol_data.json`), which goes — unless files now sit in the
///   unmounted mount point itself, written to the disk below the mount, which are data;
/// - a volume with no mount is data when it holds a file other than that metadata, except for the
///   plugins whose content lives only as long as the pod (secrets, config maps, empty dirs…).
///
/// Symlinks are never data. `look_below` is false in a dry run, where the mounts are still there and
/// what is below them cannot be seen.
pub fn persistent_volumes(
    kubelet: &Path,
    unmounted: &BTreeSet<PathBuf>,
    look_below: bool,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pod in entries(&kubelet.join("pods")) {
        for plugin in entries(&pod.path().join("volumes")) {
            let name = plugin.file_name().to_string_lossy().into_owned();
            let ephemeral = EPHEMERAL_VOLUMES.contains(&name.as_str());
            for volume in entries(&plugin.path()) {
                let path = volume.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.file_type().is_symlink() {
                    continue;
                }
                if !meta.is_dir() {
                    if !ephemeral && path.file_name().is_some_and(|n| n != VOLUME_METADATA) {
                        out.push(path);
                    }
                    continue;
                }
                let mounts: Vec<&PathBuf> =
                    unmounted.iter().filter(|m| m.starts_with(&path)).collect();
                let data = if mounts.is_empty() {
                    !ephemeral && has_data(&path)
                } else {
                    look_below && mounts.iter().any(|m| has_files(m))
                };
                if data {
                    out.push(path);
                }
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
            data.plan_all(
                keys.iter()
                    .map(|k| k.item("our sysctl drop-in; the live value is left as is")),
            );
            data.plan(file.item("made by kubestrap"));
        } else {
            data.record(sysctl::remove(&file, &keys));
        }
    }

    undo_journal(data, &mut systemd_changed)?;

    // kubeadm's directories (contents) and kubeconfig files.
    let kubelet = mounts::resolve_top(&data.host.disk(&NodePath::new(well_known::KUBELET_DIR)))?;
    if !data.settings.purge_volumes {
        for pv in persistent_volumes(&kubelet, &data.unmounted, !data.dry_run()) {
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
    // The discovery endpoint's unit, when the journal that wrote it is gone (its undo removed it).
    let discovery_unit = data
        .host
        .disk(&NodePath::new(crate::discovery::unit::UNIT_PATH));
    if std::fs::symlink_metadata(&discovery_unit).is_ok() {
        systemd_changed = true;
    }
    clear(data, &discovery_unit, false, Owner::Kubestrap, &protection);
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
            data.plan_all(
                mine.iter()
                    .map(|(_, f)| f.item(format!("made by {}", f.owner))),
            );
        } else {
            data.record(cni::remove_ipam_network(&root, network, &mine));
        }
    }
    let sandboxes = cni::cluster_sandboxes(&state, &data.scope, &known_networks);
    for path in &state.cached {
        let found = cni::attribute_cached(&root, path, &data.scope, &known_networks, &sandboxes);
        data.apply(&found, cni::remove_file);
    }
    // The pod-network addons' own state directories (`state-dirs` of each folder's footprint).
    for (dir, owner) in cni::addon_state_dirs() {
        clear(data, &data.host.disk(&dir), false, owner, &protection);
    }

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
        data.plan(Found::new(Kind::Path, path.display().to_string(), owner).item(what));
        for (kept, why) in protection.keep.iter().filter(|(p, _)| p.starts_with(path)) {
            data.record([Found::new(Kind::Path, kept.display().to_string(), owner).kept(why)]);
        }
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
            // Reset leaves live kernel values as they are (the drop-in goes with the files).
            Entry::SetSysctl { .. } => continue,
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
                data.plan(found.item(what));
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
    fn persistent_volumes_are_judged_by_what_is_behind_their_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path();
        let put = |rel: &str, text: &str| {
            let p = k.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        // A CSI volume whose mount reset removed: only the kubelet's metadata is left.
        let csi = "pods/p1/volumes/kubernetes.io~csi/pv1";
        put(&format!("{csi}/vol_data.json"), "{}");
        std::fs::create_dir_all(k.join(csi).join("mount")).unwrap();
        // The same, but data was written below its mount point.
        let shadowed = "pods/p1/volumes/kubernetes.io~csi/pv2";
        put(&format!("{shadowed}/vol_data.json"), "{}");
        put(&format!("{shadowed}/mount/data"), "x");
        // A local volume with data and no mount; a secret; a symlink in a volumes dir.
        put("pods/p1/volumes/kubernetes.io~local-volume/pv3/data", "x");
        put("pods/p1/volumes/kubernetes.io~secret/tok/t", "x");
        std::fs::create_dir_all(k.join("pods/p2/volumes/kubernetes.io~local-volume")).unwrap();
        std::os::unix::fs::symlink(
            k.join("pods/p1"),
            k.join("pods/p2/volumes/kubernetes.io~local-volume/link"),
        )
        .unwrap();
        // A volume left with only its metadata by an earlier reset.
        put("pods/p3/volumes/kubernetes.io~csi/pv4/vol_data.json", "{}");
        let unmounted: BTreeSet<PathBuf> =
            [k.join(csi).join("mount"), k.join(shadowed).join("mount")].into();
        assert_eq!(
            persistent_volumes(k, &unmounted, true),
            vec![
                k.join("pods/p1/volumes/kubernetes.io~csi/pv2"),
                k.join("pods/p1/volumes/kubernetes.io~local-volume/pv3"),
            ]
        );
    }
}
