//! `join phase kubelet-start`: discovery (once), then this node's files — the node record
//! (`cluster.yaml`, as init records its model), the cluster CA, `bootstrap-kubelet.conf` — and the
//! kubelet's files and start, with init's own code (`phases::init::kubelet_start::start`). Every file is
//! journaled (also `kubelet.conf`, which the kubelet writes): a failed join removes them and puts the
//! kubelet service back.

use super::JoinData;
use crate::host::NodePath;
use crate::host::journal::{Entry, Prior};
use crate::kubelet::files::{BOOTSTRAP_KUBECONFIG, KUBECONFIG};
use crate::model::record;
use crate::patches::PatchSet;
use crate::phases::init::kubelet_start;
use crate::workflow::Phase;

pub const NAME: &str = "kubelet-start";

pub fn phase() -> Phase<JoinData> {
    Phase::leaf(
        NAME,
        "Write kubelet settings, certificates and (re)start the kubelet",
        run,
    )
}

fn run(data: &mut JoinData) -> anyhow::Result<()> {
    let patches = match &data.options.patches_dir {
        Some(dir) => Some(PatchSet::cached(dir, data.host.ui())?),
        None => None,
    };
    let ca_cert_path = data.options.ca_cert_path.clone();
    let joining = data.joining()?.clone();
    let host = &data.host;
    let ui = host.ui();
    record::write(host, &joining.model, "join")?;
    if host.exists(&ca_cert_path) {
        let present = host.read(&ca_cert_path)?;
        if present != joining.ca_pem {
            anyhow::bail!(
                "{} exists and is not the cluster's CA: this node belongs to another cluster; run 'kubestrap reset' first",
                host.shown(&ca_cert_path)
            );
        }
    } else {
        if let Some(dir) = ca_cert_path.parent() {
            host.ensure_dir(&dir, 0o755)?;
        }
        ui.line(format!(
            "[kubelet-start] Writing the cluster CA certificate to {:?}",
            ca_cert_path.display_str()
        ));
        host.write_file(&ca_cert_path, &joining.ca_pem, 0o644)?;
    }
    let bootstrap = NodePath::new(BOOTSTRAP_KUBECONFIG);
    ui.line(format!(
        "[kubelet-start] Writing the kubelet's bootstrap kubeconfig {BOOTSTRAP_KUBECONFIG:?} (API server {})",
        joining.server
    ));
    host.write_file(&bootstrap, joining.bootstrap.to_yaml()?.as_bytes(), 0o600)?;
    claim_kubelet_conf(host)?;
    // As kubeadm join: the kubelet registers the Node with nodeRegistration.taints.
    kubelet_start::start(
        host,
        &joining.model,
        patches.as_deref(),
        crate::kubelet::files::Taints::ByKubelet,
    )
}

/// The kubelet writes `kubelet.conf` at the end of its TLS bootstrap: journaled as this run's before
/// the kubelet starts, so that a failed join removes it with the rest (and reset with the journal).
fn claim_kubelet_conf(host: &crate::host::Host) -> anyhow::Result<()> {
    let path = NodePath::new(KUBECONFIG);
    if host.dry_run() || host.exists(&path) {
        return Ok(());
    }
    host.journal(Entry::WriteFile {
        path,
        mode: 0o600,
        prior: Prior::Absent,
    })
}
