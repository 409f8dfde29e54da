//! `init phase addon`: the addons init installs itself — CoreDNS and kube-proxy, and the pod-network
//! addon of `--pod-network` — from the templates under `addons/`, each skipped when the configuration
//! disables it (`dns.disabled`, `proxy.disabled`, `--pod-network none`).

use super::InitData;
use super::api;
use crate::addons::{self, AddonObject};
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "addon",
        "Install required addons for passing conformance tests",
        vec![
            Phase::leaf(
                "coredns",
                "Install the CoreDNS addon to a Kubernetes cluster",
                |data: &mut InitData| {
                    let objects = addons::coredns(&data.control_plane()?)?;
                    install(data, &objects, "essential addon: CoreDNS")
                },
            )
            .with_run_if(|data: &InitData| !data.model.cluster.dns.disabled),
            Phase::leaf(
                "kube-proxy",
                "Install the kube-proxy addon to a Kubernetes cluster",
                |data: &mut InitData| {
                    let objects = addons::kube_proxy(&data.control_plane()?)?;
                    install(data, &objects, "essential addon: kube-proxy")
                },
            )
            .with_run_if(|data: &InitData| !data.model.cluster.proxy.disabled),
            Phase::leaf(
                "pod-network",
                "Install the chosen pod-network addon (flannel, calico or weave)",
                pod_network,
            )
            .with_run_if(|data: &InitData| !data.model.cluster.pod_network.addon.is_none()),
        ],
    )
}

/// Renders the addon of `--pod-network` from the model (shown in a dry run) and applies it.
fn pod_network(data: &mut InitData) -> anyhow::Result<()> {
    let Some(addon) = data.model.cluster.pod_network.addon.addon() else {
        return Ok(());
    };
    // An unmaintained addon (weave) is warned about when init resolves its input.
    let ui = data.host.ui();
    let cp = data.control_plane()?;
    let interface = crate::model::resolve::init::pod_interface(
        &data.model.cluster,
        cp.advertise_address(),
        data.host.facts(),
    )
    .map(|i| crate::model::PodInterface {
        ipip: crate::preflight::kinds::read_kernel_config(data.host.facts())
            .map(|config| config.lookup("NET_IPIP").is_some()),
        ..i
    });
    let (text, objects) = addons::pod_network::render(addon, &cp, interface)?;
    if data.host.dry_run() {
        ui.line(format!(
            "[dry-run] Content of the {} manifest ({} {}):",
            addon.name, addon.data.upstream.project, addon.data.upstream.release
        ));
        for line in text.lines() {
            ui.line(format!("\t{line}"));
        }
    }
    install(
        data,
        &objects,
        &format!(
            "pod-network addon: {} ({})",
            addon.name, addon.data.upstream.release
        ),
    )
}

fn install(data: &InitData, objects: &[AddonObject], what: &str) -> anyhow::Result<()> {
    let gateway = api::gateway(data)?;
    for object in objects {
        object.apply(&gateway)?;
    }
    data.host.ui().line(format!("[addons] Applied {what}"));
    Ok(())
}
