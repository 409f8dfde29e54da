//! `cleanup-node/links`: deletes the cluster's network devices (bridge ports first); the device carrying
//! the default route and every foreign device stay.

use super::ResetData;
use crate::host::inventory::{Found, Outcome};
use crate::host::links;
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf("links", "Delete the cluster's network devices", run)
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Deleting network devices");
    let default_dev = data.host.facts().default_route_interface().ok().flatten();
    let all = links::scan()?;
    let attributed = links::attribute(&all, default_dev.as_deref());
    let (ours, foreign): (Vec<_>, Vec<_>) = attributed
        .into_iter()
        .partition(|(_, f)| f.owner.is_cluster());
    for (link, found) in foreign {
        // Name only the well-known foreign devices (docker0, podman's bridges), not every NIC.
        if crate::host::attribution::match_name(crate::host::attribution::link_rules(), &link.name)
            .is_some()
        {
            data.record([found.kept_foreign()]);
        }
    }
    let ordered: Vec<Found> = links::removal_order(ours)
        .into_iter()
        .map(|(link, found)| {
            data.cluster_links.insert(link.name);
            found
        })
        .collect();
    if data.dry_run() {
        data.plan_all(
            ordered
                .iter()
                .map(|f| f.item(format!("made by {}", f.owner))),
        );
        return Ok(());
    }
    for outcome in links::remove_many(&ordered) {
        if let Outcome::Left { item, .. } = &outcome {
            data.host.ui().warn(format!(
                "[reset] could not delete {}: {}",
                item.target, item.reason
            ));
        }
        data.record([outcome]);
    }
    Ok(())
}
