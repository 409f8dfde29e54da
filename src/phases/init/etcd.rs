//! `init phase etcd local`: the static-pod manifest of a local etcd member, and its data directory
//! (0700, as kubeadm makes it). A data directory this run found absent or empty is journaled, so that
//! rolling the run back removes the member data etcd wrote into it ([`EtcdDataUndo`]): otherwise a
//! failed init would leave `/var/lib/etcd` non-empty and the next init's preflight would refuse it.

use serde_json::json;

use super::InitData;
use crate::host::inventory::{Outcome, Owner};
use crate::host::journal::Entry;
use crate::host::tree::{Protection, remove_tree};
use crate::host::well_known::MANIFESTS_DIR;
use crate::host::{Host, NodePath, Undone};
use crate::staticpods::{self, Component, HostInputs};
use crate::workflow::Phase;
use crate::workflow::rollback::UndoEntry;

/// The journal kind of a local etcd data directory this run started from nothing.
pub const DATA_DIR_KIND: &str = "etcd-data-dir";

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "etcd",
        "Generate static Pod manifest file for local etcd",
        vec![
            Phase::leaf(
                "local",
                "Generate the static Pod manifest file for a local, single-node local etcd instance",
                run_local,
            )
            .with_run_if(|data: &InitData| !data.model.cluster.etcd.is_external()),
        ],
    )
}

fn run_local(data: &mut InitData) -> anyhow::Result<()> {
    data.host.ui().line(format!(
        "[etcd] Creating static Pod manifest for local etcd in {MANIFESTS_DIR:?}"
    ));
    let cp = data.control_plane()?;
    if let Some(member) = cp.etcd_member() {
        claim_data_dir(&data.host, &member.data_dir)?;
    }
    let inputs = HostInputs::gather(&data.host, cp.cert_dir());
    let patches = data.options.patches_dir.as_deref();
    staticpods::create(&data.host, &cp, &inputs, Component::Etcd, patches)?;
    Ok(())
}

/// Makes the data directory (0700) and, when it was absent or empty, journals it as this run's.
pub fn claim_data_dir(host: &Host, dir: &NodePath) -> anyhow::Result<()> {
    let disk = host.disk(dir);
    let existed = disk.is_dir();
    let empty = match std::fs::read_dir(&disk) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    };
    host.ensure_dir(dir, 0o700)?;
    if empty && !host.dry_run() {
        host.journal(Entry::Artefact {
            kind: DATA_DIR_KIND.to_string(),
            target: dir.display_str(),
            detail: json!({"existed": existed}),
        })?;
    }
    Ok(())
}

/// Rollback's handler of [`DATA_DIR_KIND`] entries: the member data etcd wrote goes (the directory
/// too when the run made it), without following symlinks or crossing mounts. Runs after the kubelet
/// service and its pods were undone (the entry is older), so etcd no longer writes there.
#[derive(Debug, Default)]
pub struct EtcdDataUndo;

impl UndoEntry for EtcdDataUndo {
    fn undo(&self, host: &Host, entry: &Entry) -> Option<anyhow::Result<Undone>> {
        let (target, detail) = entry.artefact(DATA_DIR_KIND)?;
        let dir = NodePath::new(target);
        let existed = detail["existed"].as_bool().unwrap_or(false);
        let outcomes = remove_tree(
            &host.disk(&dir),
            existed,
            Owner::Kubestrap,
            &Protection::default(),
        );
        let left: Vec<String> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Left { item, .. } => Some(format!("{}: {}", item.target, item.reason)),
                _ => None,
            })
            .collect();
        Some(Ok(if left.is_empty() {
            Undone::Removed(dir)
        } else {
            Undone::Kept(dir, left.join("; "))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Facts, Root};
    use crate::output::Ui;

    #[test]
    fn a_rolled_back_data_dir_loses_what_etcd_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(
            Root::new(dir.path()),
            Facts::default(),
            false,
            Ui::default(),
        );
        host.start_journal("init").unwrap();
        let data = NodePath::new("/var/lib/etcd");
        claim_data_dir(&host, &data).unwrap();
        let records = crate::host::journal::read(&Root::new(dir.path())).unwrap();
        let entry = records
            .iter()
            .map(|r| &r.entry)
            .find(|e| matches!(e, Entry::Artefact { kind, .. } if kind == DATA_DIR_KIND))
            .expect("the data dir is journaled")
            .clone();
        let member = host.disk(&data).join("member/snap");
        std::fs::create_dir_all(&member).unwrap();
        std::fs::write(member.join("db"), b"x").unwrap();
        let undone = EtcdDataUndo.undo(&host, &entry).unwrap().unwrap();
        assert_eq!(undone, Undone::Removed(data.clone()));
        assert!(!host.disk(&data).exists());

        // A directory that was there (empty) stays, emptied; one that held data is not claimed.
        std::fs::create_dir_all(host.disk(&data).join("member")).unwrap();
        let kept = Entry::Artefact {
            kind: DATA_DIR_KIND.into(),
            target: "/var/lib/etcd".into(),
            detail: json!({"existed": true}),
        };
        EtcdDataUndo.undo(&host, &kept).unwrap().unwrap();
        assert!(host.disk(&data).is_dir());
        assert_eq!(std::fs::read_dir(host.disk(&data)).unwrap().count(), 0);
        std::fs::write(host.disk(&data).join("old"), b"x").unwrap();
        let other = tempfile::tempdir().unwrap();
        let fresh = Host::new(
            Root::new(other.path()),
            Facts::default(),
            false,
            Ui::default(),
        );
        fresh.start_journal("init").unwrap();
        std::fs::create_dir_all(fresh.disk(&data)).unwrap();
        std::fs::write(fresh.disk(&data).join("old"), b"x").unwrap();
        claim_data_dir(&fresh, &data).unwrap();
        let records = crate::host::journal::read(&Root::new(other.path())).unwrap();
        assert!(
            !records
                .iter()
                .any(|r| matches!(&r.entry, Entry::Artefact { kind, .. } if kind == DATA_DIR_KIND))
        );
    }
}
