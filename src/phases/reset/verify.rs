//! `verify`: rescans every category reset cleans and reports whatever of the cluster's is still there
//! (and why, where a phase said so) — so the report never claims a clean host that is not.

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

/// Everything of the cluster's still on the host, by category (phase name).
pub fn leftovers(data: &ResetData) -> anyhow::Result<Vec<(&'static str, Found)>> {
    let mut out: Vec<(&'static str, Found)> = Vec::new();
    let facts = data.host.facts();
    if Path::new(socket_path(&data.settings.cri_socket)).exists()
        && let Ok((sandboxes, _)) = cri::scan(&data.settings.cri_socket)
    {
        out.extend(
            sandboxes
                .iter()
                .map(|s| ("containers", cri::attribute_sandbox(s))),
        );
    }
    let kubelet = mounts::resolve_top(&data.host.disk(&NodePath::new(well_known::KUBELET_DIR)))?;
    for m in mounts::under(&mounts::scan(facts)?, &kubelet, false) {
        out.push((
            "mounts",
            Found::new(
                Kind::Mount,
                m.mount_point.display().to_string(),
                Owner::Kubernetes,
            ),
        ));
    }
    for name in netns::scan(Path::new(netns::NETNS_DIR))? {
        out.push(("netns", netns::attribute(&name)));
    }
    for table in netfilter::scan(facts)? {
        let plan = netfilter::attribute(&table, &data.scope);
        out.extend(
            netfilter::planned(&table, &plan)
                .into_iter()
                .map(|f| ("netfilter", f)),
        );
    }
    out.extend(
        netfilter::scan_nft()?
            .iter()
            .map(|t| ("netfilter", netfilter::attribute_nft(t))),
    );
    out.extend(
        ipsets::scan()?
            .iter()
            .map(|s| ("ipsets", ipsets::attribute(s))),
    );
    let default_devs: Vec<String> = [
        facts.default_route_interface().ok().flatten(),
        facts.default_route_interface_v6().ok().flatten(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let attributed = links::attribute(&links::scan()?, default_devs.first().map(String::as_str));
    let cluster_links: BTreeSet<String> = attributed
        .iter()
        .filter(|(_, f)| f.owner.is_cluster())
        .map(|(l, _)| l.name.clone())
        .collect();
    out.extend(attributed.into_iter().map(|(_, f)| ("links", f)));
    for route in routes::scan()? {
        out.push((
            "routes",
            routes::attribute(&route, &data.scope, &cluster_links, &default_devs),
        ));
    }
    for vs in ipvs::scan(facts).unwrap_or_default() {
        out.push(("ipvs-conntrack", ipvs::attribute(&vs, &data.scope)));
    }
    let root = data.host.root();
    let state = cni::scan(root);
    out.extend(
        state
            .reservations
            .iter()
            .map(|r| ("files", cni::attribute_reservation(r, &data.scope))),
    );
    for name in KUBECONFIG_FILES {
        let path = data
            .host
            .disk(&NodePath::new(well_known::KUBERNETES_DIR).join(name));
        if path.exists() {
            out.push((
                "files",
                Found::new(Kind::Path, path.display().to_string(), Owner::Kubernetes),
            ));
        }
    }
    for dir in [
        NodePath::new(well_known::MANIFESTS_DIR),
        data.settings.cert_dir.clone(),
    ] {
        for entry in std::fs::read_dir(data.host.disk(&dir))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            out.push((
                "files",
                Found::new(
                    Kind::Path,
                    entry.path().display().to_string(),
                    Owner::Kubernetes,
                ),
            ));
        }
    }
    out.retain(|(_, f)| f.owner.is_cluster());
    Ok(out)
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    if data.dry_run() {
        return Ok(());
    }
    data.phase("Verifying that nothing of the cluster is left");
    let already: BTreeSet<(Kind, String)> = data
        .report
        .left
        .iter()
        .chain(data.report.kept.iter())
        .map(|i| (i.kind, i.target.clone()))
        .collect();
    for (category, found) in leftovers(data)? {
        if skipped(data, category) || already.contains(&(found.kind, found.target.clone())) {
            continue;
        }
        data.report.push(found.left(
            format!("still present after reset (made by {})", found.owner),
            false,
        ));
    }
    Ok(())
}
