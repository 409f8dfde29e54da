//! `init phase certs`: the cluster PKI, one sub-phase per CA, leaf and the sa key.

use super::InitData;
use crate::pki::store;
use crate::pki::table::{self, CaSpec, LeafSpec};
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    let mut children = Vec::new();
    for ca in table::CAS {
        children.push(ca_phase(ca));
        children.extend(ca.leaves().map(leaf_phase));
    }
    children.push(Phase::leaf(
        "sa",
        "Generate a private key for signing service account tokens along with its public key",
        |data: &mut InitData| store::ensure_service_account_key(&data.host, &data.control_plane()?),
    ));
    Phase::group("certs", "Certificate generation", children).with_run(announce)
}

fn announce(data: &mut InitData) -> anyhow::Result<()> {
    data.host.ui().line(format!(
        "[certs] Using certificateDir folder {:?}",
        data.model.cluster.certificates.dir.display_str()
    ));
    Ok(())
}

/// A CA's sub-phase; the etcd CA only runs with a local etcd.
fn ca_phase(spec: &'static CaSpec) -> Phase<InitData> {
    let phase = Phase::leaf(spec.name, spec.help, move |data: &mut InitData| {
        store::ensure_ca(&data.host, &data.control_plane()?, spec)
    });
    if spec.etcd {
        phase.with_run_if(local_etcd)
    } else {
        phase
    }
}

/// A leaf's sub-phase; etcd certificates only run with a local etcd.
fn leaf_phase(spec: &'static LeafSpec) -> Phase<InitData> {
    let phase = Phase::leaf(spec.name, spec.help, move |data: &mut InitData| {
        store::ensure_leaf(&data.host, &data.control_plane()?, spec)
    });
    if spec.is_etcd() {
        phase.with_run_if(local_etcd)
    } else {
        phase
    }
}

fn local_etcd(data: &InitData) -> bool {
    !data.model.cluster.etcd.is_external()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_phases_follow_kubeadms_generation_order() {
        let names: Vec<&str> = phase().children.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "ca",
                "apiserver",
                "apiserver-kubelet-client",
                "front-proxy-ca",
                "front-proxy-client",
                "etcd-ca",
                "etcd-server",
                "etcd-peer",
                "etcd-healthcheck-client",
                "apiserver-etcd-client",
                "sa"
            ]
        );
        let conditional: Vec<&str> = phase()
            .children
            .iter()
            .filter(|c| c.run_if.is_some())
            .map(|c| c.name)
            .collect();
        assert_eq!(
            conditional,
            [
                "etcd-ca",
                "etcd-server",
                "etcd-peer",
                "etcd-healthcheck-client",
                "apiserver-etcd-client"
            ]
        );
    }
}
