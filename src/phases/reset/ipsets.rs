//! `cleanup-node/ipsets`: destroys the cluster's ipsets, after netfilter removed the rules using them.

use super::ResetData;
use crate::host::inventory::{Found, Kind, Owner};
use crate::host::ipsets;
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf("ipsets", "Destroy the cluster's ipsets", run)
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Destroying ipsets");
    match ipsets::scan() {
        Ok(sets) => {
            for set in sets {
                let found = ipsets::attribute(&set);
                if found.owner.is_cluster() {
                    data.apply(&found, ipsets::remove);
                } else {
                    data.record([found.kept_foreign()]);
                }
            }
        }
        Err(e) => data.step_failed(Found::new(Kind::Ipset, "ipset", Owner::Kubernetes), &e),
    }
    Ok(())
}
