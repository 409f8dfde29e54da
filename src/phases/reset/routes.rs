//! `cleanup-node/routes`: calico's `proto bird` routes, blackholes inside the pod CIDR and routes left
//! through cluster devices. Never the default route or the device that carries it.

use super::ResetData;
use crate::host::routes;
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf("routes", "Delete the cluster's routes", run)
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Deleting routes");
    let facts = data.host.facts();
    let default_devs: Vec<String> = [
        facts.default_route_interface().ok().flatten(),
        facts.default_route_interface_v6().ok().flatten(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut cluster_links = data.cluster_links.clone();
    if let Ok(all) = crate::host::links::scan() {
        cluster_links.extend(
            crate::host::links::attribute(&all, default_devs.first().map(String::as_str))
                .into_iter()
                .filter(|(_, f)| f.owner.is_cluster())
                .map(|(l, _)| l.name),
        );
    }
    for route in routes::scan()? {
        let found = routes::attribute(&route, &data.scope, &cluster_links, &default_devs);
        if found.owner.is_cluster() {
            data.apply(&found, |f| routes::remove(&route, f));
        }
    }
    Ok(())
}
