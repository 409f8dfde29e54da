//! `init phase certs`: the cluster PKI (kubeadm-behaviour.md §2), one sub-phase per CA, leaf and the sa key.

use super::InitData;
use crate::pki::{store, table};
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "certs",
        "Certificate generation",
        Some(announce),
        vec![
            ca::<0>(),
            leaf::<0>(),
            leaf::<1>(),
            ca::<1>(),
            leaf::<2>(),
            ca::<2>(),
            leaf::<3>(),
            leaf::<4>(),
            leaf::<5>(),
            leaf::<6>(),
            Phase::leaf(
                "sa",
                "Generate a private key for signing service account tokens along with its public key",
                run_sa,
            ),
        ],
    )
}

fn announce(data: &mut InitData) -> anyhow::Result<()> {
    data.host.ui().line(format!(
        "[certs] Using certificateDir folder {:?}",
        data.settings.cert_dir.display_str()
    ));
    Ok(())
}

/// The sub-phase of `table::CAS[I]`; the etcd CA only runs with a local etcd.
fn ca<const I: usize>() -> Phase<InitData> {
    let spec = table::CAS[I];
    let phase = Phase::leaf(spec.name, spec.help, run_ca::<I>);
    if spec.etcd {
        phase.with_run_if(local_etcd)
    } else {
        phase
    }
}

/// The sub-phase of `table::LEAVES[I]`; etcd certificates only run with a local etcd.
fn leaf<const I: usize>() -> Phase<InitData> {
    let spec = table::LEAVES[I];
    let phase = Phase::leaf(spec.name, spec.help, run_leaf::<I>);
    if spec.is_etcd() {
        phase.with_run_if(local_etcd)
    } else {
        phase
    }
}

fn run_ca<const I: usize>(data: &mut InitData) -> anyhow::Result<()> {
    store::ensure_ca(&data.host, &data.settings, table::CAS[I])
}

fn run_leaf<const I: usize>(data: &mut InitData) -> anyhow::Result<()> {
    store::ensure_leaf(&data.host, &data.settings, table::LEAVES[I])
}

fn run_sa(data: &mut InitData) -> anyhow::Result<()> {
    store::ensure_service_account_key(&data.host, &data.settings)
}

fn local_etcd(data: &InitData) -> bool {
    !data.settings.external_etcd
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
