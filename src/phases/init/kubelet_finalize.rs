//! `init phase kubelet-finalize`: once the kubelet has written its rotating client certificate
//! (`kubelet-client-current.pem`), kubelet.conf refers to that file instead of the embedded
//! certificate, and the kubelet is restarted to use it, as kubeadm's `enable-client-cert-rotation`.

use super::InitData;
use crate::host::NodePath;
use crate::host::services;
use crate::kubeconfig;
use crate::kubelet::{self, files, finalize};
use crate::workflow::Phase;

pub const NAME: &str = "kubelet-finalize";

pub fn phase() -> Phase<InitData> {
    Phase::group(
        NAME,
        "Updates settings relevant to the kubelet after TLS bootstrap",
        vec![Phase::leaf(
            "enable-client-cert-rotation",
            "Enable kubelet client certificate rotation",
            enable_client_cert_rotation,
        )],
    )
}

fn enable_client_cert_rotation(data: &mut InitData) -> anyhow::Result<()> {
    let host = &data.host;
    let pem = finalize::rotating_pem(&data.model);
    if !host.exists(&pem) {
        host.ui().line(format!(
            "[kubelet-finalize] {pem} does not exist: the kubelet does not rotate its client certificate; {} keeps its embedded one",
            files::KUBECONFIG
        ));
        return Ok(());
    }
    let path = NodePath::new(files::KUBECONFIG);
    host.ui().line(format!(
        "[kubelet-finalize] Updating {:?} to point to a rotatable kubelet client certificate and key",
        files::KUBECONFIG
    ));
    let Some(mut config) = kubeconfig::load(host, &path)? else {
        anyhow::bail!("{path} does not exist: run 'kubestrap init phase kubeconfig kubelet' first");
    };
    finalize::point_at(&mut config, &data.model.node.name, &pem)
        .map_err(|e| anyhow::anyhow!("{path}: {e:#}"))?;
    host.write_file(&path, config.to_yaml()?.as_bytes(), 0o600)?;
    if host.dry_run() {
        host.ui().line("[dry-run] Would restart the kubelet");
        return Ok(());
    }
    services::try_restart(host.facts(), kubelet::UNIT)
}
