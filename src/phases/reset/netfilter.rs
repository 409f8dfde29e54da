//! `cleanup-node/netfilter`: iptables chains and rules (v4, v6; nft and legacy) and nft tables of
//! kube-proxy and the supported addons. Rules that are not ours are never touched.

use super::ResetData;
use crate::host::inventory::{Found, Kind, Owner};
use crate::host::netfilter;
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf(
        "netfilter",
        "Remove the cluster's iptables chains and rules and nft tables",
        run,
    )
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Removing iptables rules and chains (IPv4, IPv6; nft and legacy) and nft tables");
    let facts = data.host.facts().clone();
    match netfilter::scan(&facts) {
        Ok(tables) => {
            for table in &tables {
                let plan = netfilter::attribute(table, &data.scope);
                if data.dry_run() {
                    for f in netfilter::planned(table, &plan) {
                        data.plan(f.item(format!("made by {}", f.owner)));
                    }
                } else {
                    data.record(netfilter::remove(table, &plan));
                }
            }
        }
        Err(e) => data.step_failed(
            Found::new(Kind::IptablesChain, "iptables", Owner::Kubernetes),
            &e,
        ),
    }
    match netfilter::scan_nft() {
        Ok(tables) => {
            for table in tables {
                let found = netfilter::attribute_nft(&table);
                if found.owner.is_cluster() {
                    data.apply(&found, |f| netfilter::remove_nft(&table, f));
                }
            }
        }
        Err(e) => data.step_failed(Found::new(Kind::NftTable, "nft", Owner::Kubernetes), &e),
    }
    Ok(())
}
