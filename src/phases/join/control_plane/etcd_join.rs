//! The stacked-etcd phases of a control-plane join. `check-etcd` (hidden, as in kubeadm; before the
//! kubelet starts): every voting member other than a stale one of this node answers `/health`.
//! `etcd-join`: finds the cluster's etcd members (the `etcd` static pods'
//! `kubeadm.kubernetes.io/etcd.advertise-client-urls` annotations), removes a stale member with this
//! node's name or peer URL (a node that left without `reset`), checks the other voting members again,
//! adds this node's member as a **learner**, writes its static pod with the members as
//! `--initial-cluster` and `--initial-cluster-state=existing`, then promotes it once it has caught up
//! and waits until it serves. Every membership change is journaled: a failed join removes the member it
//! added ([`EtcdMemberUndo`]).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::{JoinData, admin_gateway, joined_model};
use crate::config::types::Arg;
use crate::etcd::{EtcdClient, Member};
use crate::host::journal::Entry;
use crate::host::{Host, NodePath, Undone};
use crate::model::{ControlPlane, EtcdMember, EtcdSpec, Model};
use crate::staticpods::values::ETCD_CLIENT_URLS_ANNOTATION;
use crate::staticpods::{self, Component, HostInputs};
use crate::workflow::rollback::UndoEntry;

/// The journal kind of a member this run added (undone by removing it).
pub const MEMBER_KIND: &str = "etcd-member";
/// The journal kind of a stale member this run removed (not put back: it was dead).
pub const STALE_KIND: &str = "etcd-stale-member";
/// Each etcd request's bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(250);

/// `check-etcd`: refuses the join before the kubelet starts when a voting member (other than a stale
/// one with this node's name or peer URL, which etcd-join replaces) does not answer `/health`.
pub fn check(data: &mut JoinData) -> anyhow::Result<()> {
    let model = joined_model(data)?;
    let cp = model.control_plane()?;
    let Some(me) = cp.etcd_member() else {
        return Ok(());
    };
    let ui = data.host.ui();
    if data.host.dry_run() {
        ui.line("[dry-run] Would check that the etcd cluster is healthy");
        return Ok(());
    }
    ui.line("[check-etcd] Checking that the etcd cluster is healthy");
    let endpoints = member_endpoints(data, &me)?;
    let certs = EtcdCerts::of(&data.host, &cp);
    let (_, members) = first_answering(&certs, &endpoints)?;
    let (_, others) = split_stale(&members, &me);
    check_health(&certs, others)
}

pub fn run(data: &mut JoinData) -> anyhow::Result<()> {
    let model = joined_model(data)?;
    let cp = model.control_plane()?;
    let Some(me) = cp.etcd_member() else {
        data.host
            .ui()
            .line("[etcd] External etcd: no local member to add");
        return Ok(());
    };
    let deadline = data.node.timeouts.etcd_api_call.0;
    if data.host.dry_run() {
        let ui = data.host.ui();
        ui.line(format!(
            "[dry-run] Would remove a stale member named {:?} or with peer URL {} if there is one, check the other members' health again, and add {:?} ({}) as a learner",
            me.name, me.peer_url, me.name, me.peer_url
        ));
        write_manifest(data, &model, &[(me.name.clone(), me.peer_url.clone())])?;
        ui.line(format!(
            "[dry-run] Would promote the learner {:?} to a voting member once it has caught up (within {})",
            me.name, data.node.timeouts.etcd_api_call
        ));
        return Ok(());
    }
    let endpoints = member_endpoints(data, &me)?;
    let certs = EtcdCerts::of(&data.host, &cp);
    let ui = data.host.ui();
    let (client, members) = first_answering(&certs, &endpoints)?;
    let others = replace_stale(&data.host, &certs, &client, &members, &me)?;
    check_health(&certs, &others)?;
    let (added, after) = retry_unhealthy(deadline, || client.add_learner(&me.peer_url))
        .with_context(|| {
            format!(
                "adding the etcd member {:?} ({}) as a learner",
                me.name, me.peer_url
            )
        })?;
    data.host.journal(Entry::Artefact {
        kind: MEMBER_KIND.to_string(),
        target: format!("{} {}", me.name, me.peer_url),
        detail: json!({
            "id": added.id,
            "endpoints": others.iter().filter_map(|m| m.client_urls.first()).collect::<Vec<_>>(),
            "certDir": cp.cert_dir().display_str(),
        }),
    })?;
    ui.line("[etcd] Announced new etcd member joining to the existing etcd cluster");
    let initial: Vec<(String, String)> = after
        .iter()
        .filter_map(|m| {
            let name = if m.id == added.id {
                me.name.clone()
            } else {
                m.name.clone()
            };
            m.peer_urls.first().map(|url| (name, url.clone()))
        })
        .collect();
    write_manifest(data, &model, &initial)?;
    // The kubelet starts the member from the manifest: it must be in place now, not at the phase's end.
    data.host.commit()?;
    ui.line(format!(
        "[etcd] Waiting for the new etcd member to join the cluster. This can take up to {}",
        data.node.timeouts.etcd_api_call
    ));
    let started = Instant::now();
    promote_when_caught_up(&client, &added.id, deadline)
        .with_context(|| format!("promoting the etcd learner {:?}", me.name))?;
    let own = certs.client(&me.client_url)?;
    wait_healthy(&own, deadline.saturating_sub(started.elapsed()))?;
    ui.line(format!(
        "[etcd] The etcd member {:?} is a voting member and healthy after {:.3}s",
        me.name,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The etcd client certificate files of this node (kubeadm's healthcheck client).
struct EtcdCerts {
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl EtcdCerts {
    fn of(host: &Host, cp: &ControlPlane) -> Self {
        Self::in_dir(host, cp.cert_dir())
    }

    fn in_dir(host: &Host, cert_dir: &NodePath) -> Self {
        let etcd = cert_dir.join("etcd");
        EtcdCerts {
            ca: host.disk(&etcd.join("ca.crt")),
            cert: host.disk(&etcd.join("healthcheck-client.crt")),
            key: host.disk(&etcd.join("healthcheck-client.key")),
        }
    }

    fn client(&self, endpoint: &str) -> anyhow::Result<EtcdClient> {
        EtcdClient::new(endpoint, &self.ca, &self.cert, &self.key, REQUEST_TIMEOUT)
    }
}

/// The client URLs of the cluster's etcd members, from the etcd static pods' annotation (this
/// node's own excluded).
fn member_endpoints(data: &JoinData, me: &EtcdMember) -> anyhow::Result<Vec<String>> {
    let gateway = admin_gateway(data)?;
    let pods = gateway
        .list::<Pod>(
            Some("kube-system"),
            Some("component=etcd,tier=control-plane"),
        )
        .context("listing the etcd static pods to find the cluster's etcd members")?;
    let mut endpoints: Vec<String> = pods
        .iter()
        .filter_map(|p| {
            p.metadata
                .annotations
                .as_ref()?
                .get(ETCD_CLIENT_URLS_ANNOTATION)
        })
        .flat_map(|urls| urls.split(','))
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty() && *u != me.client_url)
        .collect();
    endpoints.sort();
    endpoints.dedup();
    if endpoints.is_empty() {
        anyhow::bail!(
            "no etcd member found: no etcd static pod in kube-system carries the {ETCD_CLIENT_URLS_ANNOTATION:?} \
             annotation (is the cluster's etcd external? then its ClusterConfiguration says so)"
        );
    }
    Ok(endpoints)
}

/// A client of the first endpoint that answers a member list, and that list.
fn first_answering(
    certs: &EtcdCerts,
    endpoints: &[String],
) -> anyhow::Result<(EtcdClient, Vec<Member>)> {
    let mut errors = Vec::new();
    for endpoint in endpoints {
        match certs.client(endpoint).and_then(|c| Ok((c.members()?, c))) {
            Ok((members, client)) => return Ok((client, members)),
            Err(e) => errors.push(format!("{endpoint}: {e:#}")),
        }
    }
    anyhow::bail!(
        "no etcd member of the cluster answers: {}",
        errors.join("; ")
    )
}

/// Removes a member with this node's name or peer URL (journaled, not undone); the other members.
fn replace_stale(
    host: &Host,
    certs: &EtcdCerts,
    client: &EtcdClient,
    members: &[Member],
    me: &EtcdMember,
) -> anyhow::Result<Vec<Member>> {
    let (stale, others) = split_stale(members, me);
    for member in stale {
        let what = format!(
            "{:?} (id {}, {})",
            member.name,
            member.id,
            member.peer_urls.join(",")
        );
        host.ui().line(format!(
            "[etcd] The etcd cluster has a stale member {what} with this node's name or peer URL (it left without 'kubestrap reset'): removing it"
        ));
        // Asked of a live member: the stale one may be the endpoint the client knows.
        let remover = others
            .iter()
            .find_map(|m| m.client_urls.first())
            .map(|url| certs.client(url))
            .transpose()?;
        let remover = remover.as_ref().unwrap_or(client);
        retry_unhealthy(Duration::from_secs(15), || {
            remover.remove_member(&member.id)
        })
        .with_context(|| format!("removing the stale etcd member {what}"))?;
        host.journal(Entry::Artefact {
            kind: STALE_KIND.to_string(),
            target: format!("{} {}", member.name, member.peer_urls.join(",")),
            detail: json!({"id": member.id}),
        })?;
    }
    Ok(others.into_iter().cloned().collect())
}

/// The members with this node's name or peer URL (stale: a node that left without reset), and the others.
fn split_stale<'m>(members: &'m [Member], me: &EtcdMember) -> (Vec<&'m Member>, Vec<&'m Member>) {
    members
        .iter()
        .partition(|m| m.name == me.name || m.peer_urls.contains(&me.peer_url))
}

/// Every voting member other than this node's answers `/health`.
fn check_health<'m>(
    certs: &EtcdCerts,
    members: impl IntoIterator<Item = &'m Member>,
) -> anyhow::Result<()> {
    let mut unhealthy = Vec::new();
    for member in members.into_iter().filter(|m| !m.is_learner) {
        let Some(url) = member.client_urls.first() else {
            unhealthy.push(format!(
                "{:?} has no client URL (it never started)",
                member.name
            ));
            continue;
        };
        if let Err(e) = certs.client(url).and_then(|c| c.healthy()) {
            unhealthy.push(format!("{:?} at {url}: {e:#}", member.name));
        }
    }
    if !unhealthy.is_empty() {
        anyhow::bail!(
            "the etcd cluster is not healthy, so no member is added: {}",
            unhealthy.join("; ")
        );
    }
    Ok(())
}

/// etcd refuses membership changes for a few seconds after the last one, or while its leader has not
/// heard from a quorum ("unhealthy cluster"); that answer is retried until `within` passes.
fn retry_unhealthy<T>(
    within: Duration,
    mut call: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    loop {
        match call() {
            Err(e)
                if format!("{e:#}").contains("unhealthy cluster") && started.elapsed() < within =>
            {
                std::thread::sleep(POLL);
            }
            other => return other,
        }
    }
}

/// Promotes the learner, retrying while etcd says it has not caught up with the leader.
fn promote_when_caught_up(client: &EtcdClient, id: &str, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match client.promote(id) {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() < within => {
                let text = format!("{e:#}");
                let waiting = [
                    "in sync with leader",
                    "unhealthy cluster",
                    "not started",
                    "did not answer",
                ]
                .iter()
                .any(|s| text.contains(s));
                if !waiting {
                    return Err(e);
                }
                std::thread::sleep(POLL);
            }
            Err(e) => {
                return Err(e.context(format!(
                    "the learner did not catch up with the leader within {}s (timeouts.etcdAPICall); \
                     see this node's etcd log",
                    within.as_secs()
                )));
            }
        }
    }
}

fn wait_healthy(client: &EtcdClient, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match client.healthy() {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() >= within => {
                return Err(e.context("the new etcd member did not become healthy"));
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// The etcd static pod for a member joining `initial` (name, peer URL), rendered with init's code:
/// kubeadm passes `--initial-cluster` and `--initial-cluster-state=existing` the same way.
fn write_manifest(
    data: &JoinData,
    model: &Model,
    initial: &[(String, String)],
) -> anyhow::Result<()> {
    let mut joining = model.clone();
    if let EtcdSpec::Local(local) = &mut joining.cluster.etcd {
        let cluster = initial
            .iter()
            .map(|(name, url)| format!("{name}={url}"))
            .collect::<Vec<_>>()
            .join(",");
        local.extra_args.push(Arg::new("initial-cluster", cluster));
        local
            .extra_args
            .push(Arg::new("initial-cluster-state", "existing"));
    }
    let cp = joining.control_plane()?;
    data.host
        .ui()
        .line("[etcd] Creating static Pod manifest for \"etcd\"");
    let inputs = HostInputs::gather(&data.host, cp.cert_dir());
    staticpods::create(
        &data.host,
        &cp,
        &inputs,
        Component::Etcd,
        data.options.patches_dir.as_deref(),
    )?;
    Ok(())
}

/// Rollback's handler of [`MEMBER_KIND`] (the member is removed through the other members, with the
/// node's healthcheck client certificate, still on disk: it was written before the member was added)
/// and [`STALE_KIND`] (kept: a dead member is not put back).
#[derive(Debug, Default)]
pub struct EtcdMemberUndo;

impl UndoEntry for EtcdMemberUndo {
    fn undo(&self, host: &Host, entry: &Entry) -> Option<anyhow::Result<Undone>> {
        if let Some((target, _)) = entry.artefact(STALE_KIND) {
            return Some(Ok(Undone::ObjectKept(
                format!("etcd member {target}"),
                "a stale member that was removed is not put back".to_string(),
            )));
        }
        let (target, detail) = entry.artefact(MEMBER_KIND)?;
        Some(remove_added(host, target, detail))
    }
}

fn remove_added(host: &Host, target: &str, detail: &serde_json::Value) -> anyhow::Result<Undone> {
    let id = detail["id"].as_str().unwrap_or_default();
    let cert_dir = NodePath::new(detail["certDir"].as_str().unwrap_or("/etc/kubernetes/pki"));
    let certs = EtcdCerts::in_dir(host, &cert_dir);
    let endpoints: Vec<String> = detail["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect();
    let mut errors = Vec::new();
    for endpoint in &endpoints {
        let removed = certs.client(endpoint).and_then(|client| {
            if !client.members()?.iter().any(|m| m.id == id) {
                return Ok(false);
            }
            retry_unhealthy(Duration::from_secs(15), || client.remove_member(id))?;
            Ok(true)
        });
        match removed {
            Ok(true) => return Ok(Undone::ObjectDeleted(format!("etcd member {target}"))),
            Ok(false) => return Ok(Undone::Nothing),
            Err(e) => errors.push(format!("{endpoint}: {e:#}")),
        }
    }
    Ok(Undone::ObjectKept(
        format!("etcd member {target}"),
        format!(
            "no etcd member answered ({}): remove it with 'etcdctl member remove {id}'",
            errors.join("; ")
        ),
    ))
}
