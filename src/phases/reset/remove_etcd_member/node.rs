//! Deleting this node's Node object through the cluster gateway with admin.conf's credentials (a
//! control plane), else kubelet.conf's (a joined worker: the Node authorizer lets a node delete its
//! own Node), when the file exists and its API server answers.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;

use super::super::ResetData;
use crate::cluster::{Client, Deletion, Gateway, ObjectRef, Retry};
use crate::host::inventory::Outcome;
use crate::host::plan::{Item, Kind};
use crate::host::{NodePath, well_known};
use crate::kubeconfig;
use crate::pki::inspect::CertInfo;

/// This node's name as the cluster knows it: the CN of the kubelet's client certificate
/// (`system:node:<name>`), else the node record's, else the kubelet's `--hostname-override`, else
/// the lowercased host name.
pub fn node_name(data: &ResetData) -> Option<String> {
    kubelet_identity(data)
        .or_else(|| data.record.as_ref().map(|m| m.node.name.clone()))
        .or_else(|| {
            let flags = data
                .host
                .read_string(&NodePath::new(well_known::KUBELET_DIR).join("kubeadm-flags.env"))
                .unwrap_or_default();
            super::flag_values(&flags, "--hostname-override")
                .into_iter()
                .next()
        })
        .or_else(|| data.host.facts().hostname().ok().map(|h| h.to_lowercase()))
}

/// The node name in kubelet.conf's client certificate (embedded, or the file it points at).
fn kubelet_identity(data: &ResetData) -> Option<String> {
    let path = NodePath::new(well_known::KUBERNETES_DIR).join("kubelet.conf");
    let config = kubeconfig::load(&data.host, &path).ok()??;
    let user = &config.current().ok()?.user.user;
    let pem = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => data.0.clone(),
        (None, Some(file)) => data.host.read(&NodePath::new(file)).ok()?,
        (None, None) => return None,
    };
    let cert = CertInfo::from_pem(&pem).ok()?;
    cert.common_name
        .strip_prefix("system:node:")
        .map(str::to_string)
}

/// How long reset keeps trying to reach the API server, and each connection attempt's bound: a
/// restarting server answers within it, a dead or unroutable one does not hold reset up.
const API_RETRY: Duration = Duration::from_secs(5);

/// The kubeconfigs the Node is deleted with, in order: a control plane's admin.conf, a worker's
/// kubelet.conf.
const KUBECONFIGS: [&str; 2] = ["admin.conf", "kubelet.conf"];

/// Deletes the Node object through the cluster gateway with admin.conf's credentials, else
/// kubelet.conf's. Without either it is skipped; an API server that does not answer is only a
/// warning, as with kubeadm.
pub fn delete_node(data: &mut ResetData) {
    let mut found = None;
    for name in KUBECONFIGS {
        let path = NodePath::new(well_known::KUBERNETES_DIR).join(name);
        match kubeconfig::connection::connection(&data.host, &path) {
            Ok(Some(c)) => {
                found = Some(c);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                data.host.ui().warn(format!(
                    "[reset] Could not use {path} to delete this node's Node object: {e:#}"
                ));
            }
        }
    }
    let Some(connection) = found else { return };
    let Some(name) = node_name(data) else { return };
    let outcome = if data.dry_run() {
        Gateway::planning(&data.host).and_then(|gateway| {
            gateway.delete::<Node>(None, &name)?;
            Ok(gateway.plan())
        })
    } else {
        Client::connect_within(&connection, API_RETRY).and_then(|client| {
            let gateway = Gateway::new(&data.host, client.with_retry(Retry::within(API_RETRY)));
            match gateway.delete::<Node>(None, &name)? {
                Deletion::Deleted => Ok(vec![Item::new(
                    Kind::ApiObject,
                    ObjectRef::of::<Node>(None, &name)?.target(),
                    format!(
                        "this node's Node object, deleted through {}",
                        gateway_server(&gateway)
                    ),
                )]),
                Deletion::Absent | Deletion::Planned => Ok(Vec::new()),
            }
        })
    };
    match outcome {
        // The gateway planned it (and printed it) in the host's plan.
        Ok(_) if data.dry_run() => {}
        Ok(items) if items.is_empty() => data
            .host
            .ui()
            .debug(1, format!("[reset] no Node object {name:?} in the cluster")),
        Ok(items) => {
            data.host
                .ui()
                .line(format!("[reset] Deleted the Node object {name:?}"));
            data.record(items.into_iter().map(Outcome::Removed));
        }
        Err(e) => data.host.ui().warn(format!(
            "[reset] Could not delete the Node object {name:?}: {e}"
        )),
    }
}

fn gateway_server(gateway: &Gateway<'_>) -> String {
    gateway
        .client()
        .map(|c| c.server().to_string())
        .unwrap_or_default()
}
