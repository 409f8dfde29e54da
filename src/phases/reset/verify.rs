//! `verify`: rescans every category reset cleans and reports whatever of the cluster's is still there
//! (and why, where a phase said so) — so the report never claims a clean host that is not. Categories whose
//! phase was skipped are not judged; a scanner that fails is a warning, not a verdict.

use std::collections::BTreeSet;
use std::path::Path;

use super::ResetData;
use super::files::KUBECONFIG_FILES;
use crate::host::inventory::{Found, Kind, Owner};
use crate::host::runtime::{cri, socket_path};
use crate::host::{
    NodePath, cni, ipsets, ipvs, links, mounts, netfilter, netns, routes, well_known,
};
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf("verify", "Rescan the host and report what is left", run)
}

fn skipped(data: &ResetData, child: &str) -> bool {
    data.settings
        .skip_phases
        .iter()
        .any(|s| s == "cleanup-node" || s == &format!("cleanup-node/{child}"))
}

/// The cluster's items of one category (named as its phase) still on the host.
fn scan_category(data: &ResetData, category: &str) -> anyhow::Result<Vec<Found>> {
    let facts = data.host.facts();
    let default_devs: Vec<String> = [
        facts.default_route_interface().ok().flatten(),
        facts.default_route_interface_v6().ok().flatten(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut out = Vec::new();
    match category {
        "containers" => {
            let endpoint = &data.settings.cri_socket;
            if Path::new(socket_path(endpoint)).exists() {
                out.extend(cri::scan(endpoint)?.0.iter().map(cri::attribute_sandbox));
            }
        }
        "mounts" => {
            let kubelet =
                mounts::resolve_top(&data.host.disk(&NodePath::new(well_known::KUBELET_DIR)))?;
            out.extend(
                mounts::under(&mounts::scan(facts)?, &kubelet, false)
                    .into_iter()
                    .map(|m| {
                        Found::new(
                            Kind::Mount,
                            m.mount_point.display().to_string(),
                            Owner::Kubernetes,
                        )
                    }),
            );
        }
        "netns" => out.extend(
            netns::scan(Path::new(netns::NETNS_DIR))?
                .iter()
                .map(|n| netns::attribute(n)),
        ),
        "netfilter" => {
            for table in netfilter::scan(facts)? {
                let plan = netfilter::attribute(&table, &data.scope);
                out.extend(netfilter::planned(&table, &plan));
            }
            out.extend(netfilter::scan_nft()?.iter().map(netfilter::attribute_nft));
        }
        "ipsets" => out.extend(ipsets::scan()?.iter().map(ipsets::attribute)),
        "links" => {
            let all = links::scan()?;
            out.extend(
                links::attribute(&all, default_devs.first().map(String::as_str))
                    .into_iter()
                    .map(|(_, f)| f),
            );
        }
        "routes" => {
            let attributed =
                links::attribute(&links::scan()?, default_devs.first().map(String::as_str));
            let cluster_links: BTreeSet<String> = attributed
                .iter()
                .filter(|(_, f)| f.owner.is_cluster())
                .map(|(l, _)| l.name.clone())
                .collect();
            for route in routes::scan()? {
                out.push(routes::attribute(
                    &route,
                    &data.scope,
                    &cluster_links,
                    &default_devs,
                ));
            }
        }
        "ipvs-conntrack" => out.extend(
            ipvs::scan(facts)
                .unwrap_or_default()
                .iter()
                .map(|vs| ipvs::attribute(vs, &data.scope)),
        ),
        "files" => {
            let state = cni::scan(data.host.root());
            out.extend(
                state
                    .reservations
                    .iter()
                    .map(|r| cni::attribute_reservation(r, &data.scope)),
            );
            for name in KUBECONFIG_FILES {
                let path = data
                    .host
                    .disk(&NodePath::new(well_known::KUBERNETES_DIR).join(name));
                if path.exists() {
                    out.push(Found::new(
                        Kind::Path,
                        path.display().to_string(),
                        Owner::Kubernetes,
                    ));
                }
            }
            for dir in [
                NodePath::new(well_known::MANIFESTS_DIR),
                data.settings.cert_dir.clone(),
            ] {
                let entries = std::fs::read_dir(data.host.disk(&dir))
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok);
                out.extend(entries.map(|e| {
                    Found::new(
                        Kind::Path,
                        e.path().display().to_string(),
                        Owner::Kubernetes,
                    )
                }));
            }
        }
        _ => {}
    }
    out.retain(|f| f.owner.is_cluster());
    Ok(out)
}

/// The categories verify judges, in phase order.
pub const CATEGORIES: &[&str] = &[
    "containers",
    "mounts",
    "netns",
    "netfilter",
    "ipsets",
    "links",
    "routes",
    "ipvs-conntrack",
    "files",
];

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    if data.dry_run() {
        return Ok(());
    }
    data.phase("Verifying that nothing of the cluster is left");
    let report = data.report();
    let already: BTreeSet<(Kind, String)> = report
        .left
        .iter()
        .chain(report.kept.iter())
        .map(|i| (i.kind, i.target.clone()))
        .collect();
    let judged: Vec<&str> = CATEGORIES
        .iter()
        .copied()
        .filter(|c| !skipped(data, c))
        .collect();
    for category in judged {
        match scan_category(data, category) {
            Ok(found) => {
                for f in found {
                    if !already.contains(&(f.kind, f.target.clone())) {
                        data.record([f.left(
                            format!("still present after reset (made by {})", f.owner),
                            false,
                        )]);
                    }
                }
            }
            Err(e) => data
                .host
                .ui()
                .warn(format!("[reset] could not verify {category}: {e:#}")),
        }
    }
    Ok(())
}
