//! `join phase kubelet-wait-bootstrap`: waits for the kubelet's healthz, then for its TLS bootstrap
//! (`kubelet.conf` written and working) and this node's Node object, within the v1beta4 `tlsBootstrap`
//! timeout; then removes `bootstrap-kubelet.conf`, as kubeadm does.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;

use super::JoinData;
use crate::cluster::{Client, Gateway, Retry};
use crate::host::NodePath;
use crate::kubelet::files::{BOOTSTRAP_KUBECONFIG, KUBECONFIG};
use crate::phases::init::wait_control_plane::wait_kubelet;
use crate::workflow::Phase;

pub const NAME: &str = "kubelet-wait-bootstrap";
/// How often the API server is asked for the Node once kubelet.conf exists.
const POLL: Duration = Duration::from_millis(50);
/// How often kubelet.conf's existence is checked before (a stat: the TLS bootstrap's end is seen at once).
const POLL_FILE: Duration = Duration::from_millis(20);

pub fn phase() -> Phase<JoinData> {
    Phase::leaf(NAME, "Wait for the kubelet to bootstrap itself", run)
}

fn run(data: &mut JoinData) -> anyhow::Result<()> {
    let host = &data.host;
    let ui = host.ui();
    let name = &data.node.name;
    let timeouts = &data.node.timeouts;
    if host.dry_run() {
        ui.line(format!(
            "[dry-run] Would wait for the kubelet's TLS bootstrap ({KUBECONFIG}) and the Node {name:?}, then remove {BOOTSTRAP_KUBECONFIG}"
        ));
        return Ok(());
    }
    wait_kubelet(ui, timeouts.kubelet_health_check)?;
    ui.line("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap");
    let started = Instant::now();
    let deadline = timeouts.tls_bootstrap.0;
    let kubeconfig = NodePath::new(KUBECONFIG);
    let mut last = format!("{KUBECONFIG} does not exist yet");
    loop {
        match registered(data, &kubeconfig) {
            Ok(true) => break,
            Ok(false) => last = format!("the Node {name:?} is not registered yet"),
            Err(e) => last = format!("{e:#}"),
        }
        if started.elapsed() >= deadline {
            anyhow::bail!(
                "the kubelet did not complete its TLS bootstrap and register the Node {name:?} within {} \
                 (timeouts.tlsBootstrap): {last}. Check that its certificate signing request was approved \
                 ('kubectl get csr' on a control plane) and the kubelet's log ('journalctl -xeu kubelet')",
                timeouts.tls_bootstrap
            );
        }
        let written = data.host.exists(&kubeconfig);
        std::thread::sleep(if written { POLL } else { POLL_FILE });
    }
    ui.line(format!(
        "[kubelet-start] The kubelet completed its TLS bootstrap and the Node {name:?} registered after {:.3}s",
        started.elapsed().as_secs_f64()
    ));
    let bootstrap = NodePath::new(BOOTSTRAP_KUBECONFIG);
    if host.exists(&bootstrap) {
        host.remove_file(&bootstrap)?;
    }
    if data.node.is_control_plane() {
        // control-plane-join prints the control plane's message at the end.
        return Ok(());
    }
    ui.line(
        "\nThis node has joined the cluster:\n\
         * Certificate signing request was sent to apiserver and a response was received.\n\
         * The Kubelet was informed of the new secure connection details.\n\n\
         Run 'kubectl get nodes' on the control-plane to see this node join the cluster.",
    );
    Ok(())
}

/// Whether kubelet.conf works and the API server has this node's Node.
fn registered(data: &JoinData, kubeconfig: &NodePath) -> anyhow::Result<bool> {
    let Some(connection) = crate::kubeconfig::connection::connection(&data.host, kubeconfig)?
    else {
        anyhow::bail!("{KUBECONFIG} does not exist yet");
    };
    let client =
        Client::connect_within(&connection, Duration::from_secs(5))?.with_retry(Retry::once());
    let gateway = Gateway::new(&data.host, client);
    Ok(gateway.get::<Node>(None, &data.node.name)?.is_some())
}
