//! `remove-etcd-member`: with a local etcd (per the node record, else its static-pod manifest), removes this node's member
//! through etcd's API with the healthcheck-client certificate — skipped at once when it is the last member
//! or etcd does not answer — backs up the last member's data (snapshot + PKI copy, unless `--no-backup`),
//! and deletes the data dir's contents. When admin.conf reaches an API server, this node's Node object is
//! deleted too.

use std::time::Duration;

use super::ResetData;
use super::scope::flag_values;
use crate::etcd::{EtcdClient, Member};
use crate::host::inventory::{Found, Kind, Owner};
use crate::host::tree::{self, Protection};
use crate::host::{NodePath, well_known};
use crate::model::EtcdMember;
use crate::workflow::Phase;

pub mod node;

const ETCD_TIMEOUT: Duration = Duration::from_secs(5);
const REMOVE_RETRY_FOR: Duration = Duration::from_secs(15);

pub fn phase() -> Phase<ResetData> {
    Phase::leaf("remove-etcd-member", "Remove a local etcd member.", run)
}

/// What the local etcd manifest says about this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEtcd {
    pub name: String,
    pub data_dir: NodePath,
    pub client_url: String,
    pub peer_url: String,
}

pub fn read_manifest(text: &str) -> LocalEtcd {
    let first = |flag: &str| {
        flag_values(text, flag)
            .into_iter()
            .next()
            .unwrap_or_default()
    };
    let client = first("--advertise-client-urls");
    LocalEtcd {
        name: first("--name"),
        data_dir: NodePath::new(
            Some(first("--data-dir"))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| well_known::ETCD_DATA_DIR.to_string()),
        ),
        client_url: if client.is_empty() {
            "https://127.0.0.1:2379".to_string()
        } else {
            client
        },
        peer_url: first("--initial-advertise-peer-urls"),
    }
}

impl From<EtcdMember> for LocalEtcd {
    fn from(member: EtcdMember) -> Self {
        LocalEtcd {
            name: member.name,
            data_dir: member.data_dir,
            client_url: member.client_url,
            peer_url: member.peer_url,
        }
    }
}

/// Where this node's local etcd member is known from.
enum MemberSource {
    /// The node record says this node runs a local member.
    Record(LocalEtcd),
    /// The etcd static-pod manifest (a node without a record).
    Manifest(LocalEtcd),
    /// No local member: the record says etcd is external or the node is a worker, or (without a record)
    /// there is no etcd manifest.
    None,
}

fn member_source(data: &ResetData, manifest: &NodePath) -> anyhow::Result<MemberSource> {
    if let Some(model) = &data.record {
        let member = model.control_plane().ok().and_then(|cp| cp.etcd_member());
        return Ok(member.map_or(MemberSource::None, |m| MemberSource::Record(m.into())));
    }
    Ok(match data.host.read_optional(manifest)? {
        Some(text) => MemberSource::Manifest(read_manifest(&String::from_utf8_lossy(&text))),
        None => MemberSource::None,
    })
}

/// This node's member: by name, else by peer URL.
pub fn find_self<'a>(members: &'a [Member], local: &LocalEtcd) -> Option<&'a Member> {
    members
        .iter()
        .find(|m| !local.name.is_empty() && m.name == local.name)
        .or_else(|| {
            members
                .iter()
                .find(|m| m.peer_urls.contains(&local.peer_url))
        })
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    node::delete_node(data);
    let manifest = NodePath::new(well_known::MANIFESTS_DIR).join("etcd.yaml");
    let local = match member_source(data, &manifest)? {
        MemberSource::Manifest(local) => local,
        MemberSource::Record(local) => {
            if !data.host.exists(&manifest) && !data.host.exists(&local.data_dir) {
                data.host.ui().line(
                    "[reset] The node record names a local etcd member, but it was never set up here (no manifest, no data)",
                );
                return Ok(());
            }
            local
        }
        MemberSource::None => {
            data.host
                .ui()
                .line("[reset] No etcd config found. Assuming external etcd");
            data.host
                .ui()
                .line("[reset] Please, manually reset etcd to prevent further issues");
            return Ok(());
        }
    };
    let etcd_pki = data.settings.cert_dir.join("etcd");
    let disk = |name: &str| data.host.disk(&etcd_pki.join(name));
    let connect = |endpoint: &str| {
        EtcdClient::new(
            endpoint,
            &disk("ca.crt"),
            &disk("healthcheck-client.crt"),
            &disk("healthcheck-client.key"),
            ETCD_TIMEOUT,
        )
    };
    let client = connect(&local.client_url);
    let target = format!("{} {}", local.name, local.peer_url);
    let members = client.and_then(|c| Ok((c.members()?, c)));
    let mut last_member = true;
    match members {
        Ok((members, client)) => match find_self(&members, &local) {
            Some(me) if members.len() > 1 => {
                last_member = false;
                let found = Found::new(Kind::EtcdMember, target.clone(), Owner::Kubernetes);
                let id = me.id.clone();
                // Asked of another member: a member asked to remove itself stops before it answers.
                let remover = members
                    .iter()
                    .filter(|m| m.id != me.id)
                    .find_map(|m| m.client_urls.first())
                    .and_then(|url| connect(url).ok())
                    .unwrap_or(client);
                data.apply(&found, |f| match remove_with_retry(&remover, &id) {
                    Ok(()) => f.removed(),
                    Err(e) => f.left(format!("{e:#}"), false),
                });
            }
            Some(_) => {
                data.host
                    .ui()
                    .warn("[reset] This is the last member of the etcd cluster: it is not removed");
                if !data.settings.no_backup {
                    back_up(data, Some(&client), &local)?;
                }
            }
            None => data.host.ui().warn(format!(
                "[reset] {target} is not a member of the etcd cluster at {}",
                local.client_url
            )),
        },
        Err(e) => {
            data.host.ui().warn(format!(
                "[reset] Failed to remove the etcd member (etcd did not answer): {e:#}"
            ));
            data.record([Found::new(Kind::EtcdMember, target, Owner::Kubernetes)
                .kept("etcd did not answer: membership unchanged; if other members exist, remove this one with etcdctl member remove")]);
            if !data.settings.no_backup {
                back_up(data, None, &local)?;
            }
        }
    }
    let dir = data.host.disk(&local.data_dir);
    if data.dry_run() {
        if dir.exists() {
            data.plan(
                Found::new(Kind::Path, dir.display().to_string(), Owner::Kubernetes)
                    .item("the etcd data directory's contents"),
            );
        }
        return Ok(());
    }
    let outcomes = tree::remove_tree(&dir, true, Owner::Kubernetes, &Protection::default());
    data.record(outcomes);
    if last_member || dir.exists() {
        data.host.ui().line(format!(
            "[reset] Deleted contents of the etcd data directory: {}",
            dir.display()
        ));
    }
    Ok(())
}

/// etcd refuses membership changes until its leader has been connected to a quorum for a few seconds
/// ("unhealthy cluster"); that answer is retried for a bounded time, any other is final.
fn remove_with_retry(client: &EtcdClient, id: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + REMOVE_RETRY_FOR;
    loop {
        match client.remove_member(id) {
            Err(e)
                if format!("{e:#}").contains("unhealthy cluster")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

/// Saves an etcd snapshot (or, when etcd is down, a copy of its db file) and the PKI under
/// `<root>/var/lib/kubestrap/backup-<timestamp>/`, through the Host gateway: a dry run plans both, a
/// real run writes them durably and reports the backup as kept.
fn back_up(data: &ResetData, client: Option<&EtcdClient>, local: &LocalEtcd) -> anyhow::Result<()> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "now".to_string());
    let host = &data.host;
    let backup = NodePath::new(well_known::STATE_DIR).join(format!("backup-{stamp}"));
    let snapshot = backup.join("etcd-snapshot.db");
    let db = local.data_dir.join("member/snap/db");
    let saved = match client {
        Some(client) => {
            match host.save_made(&snapshot, "an etcd snapshot of the last member", |to| {
                client.snapshot(to).map(|_| ())
            }) {
                Ok(()) => true,
                Err(e) => {
                    host.ui().warn(format!(
                        "[reset] etcd snapshot failed: {e:#}; copying the db file instead"
                    ));
                    copy_db(data, &db, &snapshot)
                }
            }
        }
        None => copy_db(data, &db, &snapshot),
    };
    let cert_dir = &data.settings.cert_dir;
    host.save_tree_copy(
        cert_dir,
        &backup.join("pki"),
        &format!("a copy of the PKI {}", host.shown(cert_dir)),
    )?;
    if host.dry_run() {
        return Ok(());
    }
    let shown = host.shown(&backup);
    host.ui().line(format!(
        "[reset] Backed up {}the PKI to {shown}",
        if saved { "an etcd snapshot and " } else { "" },
    ));
    host.record(
        Found::new(Kind::Path, shown, Owner::Kubestrap).kept(format!(
            "a backup of the last etcd member: {}the PKI (--no-backup skips it)",
            if saved { "its snapshot and " } else { "" }
        )),
    );
    Ok(())
}

/// The db file of a member that does not answer, copied as its snapshot; whether it was.
fn copy_db(data: &ResetData, db: &NodePath, snapshot: &NodePath) -> bool {
    match data.host.save_file_copy(
        db,
        snapshot,
        "a copy of the etcd db file, as etcd did not answer",
    ) {
        Ok(copied) => copied,
        Err(e) => {
            data.host
                .ui()
                .warn(format!("[reset] copying the etcd db file failed: {e:#}"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_member_from_the_manifest() {
        let text = "    - --advertise-client-urls=https://10.0.0.5:2379\n    - --data-dir=/var/lib/etcd\n    - --initial-advertise-peer-urls=https://10.0.0.5:2380\n    - --name=cp1\n";
        let local = read_manifest(text);
        assert_eq!(local.name, "cp1");
        assert_eq!(local.client_url, "https://10.0.0.5:2379");
        let members = vec![
            Member {
                id: "1".into(),
                name: "cp0".into(),
                peer_urls: vec!["https://10.0.0.4:2380".into()],
                client_urls: vec![],
                is_learner: false,
            },
            Member {
                id: "2".into(),
                name: "".into(),
                peer_urls: vec!["https://10.0.0.5:2380".into()],
                client_urls: vec![],
                is_learner: false,
            },
        ];
        assert_eq!(find_self(&members, &local).unwrap().id, "2");
    }
}
