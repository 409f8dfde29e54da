//! `cleanup-node/netns`: deletes the CNI's pod network namespaces (`cni-*`); other namespaces stay.

use std::path::Path;

use super::ResetData;
use crate::host::netns::{self, NETNS_DIR};
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf("netns", "Delete the CNI's pod network namespaces", run)
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Deleting pod network namespaces");
    let dir = Path::new(NETNS_DIR);
    for name in netns::scan(dir)? {
        let found = netns::attribute(&name);
        if found.owner.is_cluster() {
            data.apply(&found, |f| netns::remove(dir, f));
        }
    }
    Ok(())
}
