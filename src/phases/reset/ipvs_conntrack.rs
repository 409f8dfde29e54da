//! `cleanup-node/ipvs-conntrack`: IPVS virtual servers inside the service CIDR and conntrack entries for
//! it, where the kernel has them.

use super::ResetData;
use crate::host::ipvs;
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf(
        "ipvs-conntrack",
        "Delete IPVS services and conntrack entries of the service CIDR",
        run,
    )
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Deleting IPVS virtual servers and conntrack entries of the service CIDR");
    match ipvs::scan(data.host.facts()) {
        None => data.host.ui().debug(1, "[reset] this kernel has no IPVS"),
        Some(servers) => {
            for vs in servers {
                let found = ipvs::attribute(&vs, &data.scope);
                data.apply(&found, |f| ipvs::remove(&vs, f));
            }
        }
    }
    if data.dry_run() {
        return Ok(());
    }
    for cidr in data.scope.service_cidrs.clone() {
        match ipvs::flush_conntrack(&cidr) {
            Ok(Some(n)) if n > 0 => data
                .host
                .ui()
                .line(format!("[reset] Deleted {n} conntrack entries for {cidr}")),
            Ok(_) => {}
            Err(e) => data
                .host
                .ui()
                .warn(format!("[reset] conntrack entries for {cidr}: {e:#}")),
        }
    }
    Ok(())
}
