//! `init phase addon`: the addons init installs itself — CoreDNS and kube-proxy, and the pod-network
//! addon of `--pod-network` — from the templates under `addons/`, each skipped when the configuration
//! disables it (`dns.disabled`, `proxy.disabled`, `--pod-network none`); the pod network's phase ends
//! once its DaemonSet is Ready on every node (`pod_network_ready`).

use super::InitData;
use super::api;
use super::pod_network_ready;
use crate::addons::manifest::{self, Edited, Manifest};
use crate::addons::{self, AddonObject};
use crate::config::flags::{InitFlags, PodNetwork};
use crate::error::InvalidInput;
use crate::host::facts::Facts;
use crate::model::Model;
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

/// `--pod-network-manifest`: reads the manifest and recognises its addon, before init resolves its
/// input (the addon is the cluster's pod network: `--pod-network` when given, which the manifest must
/// be, else the one the manifest holds). `--pod-network none` with a manifest is a conflict.
pub fn read_manifest(flags: &mut InitFlags) -> anyhow::Result<Option<Manifest>> {
    let Some(location) = &flags.pod_network_manifest else {
        return Ok(None);
    };
    if flags.pod_network.is_some_and(PodNetwork::is_none) {
        return Err(InvalidInput::one(
            "--pod-network",
            PodNetwork::NONE,
            format!(
                "conflicts with {} {location}: 'none' installs no pod network; leave out one of the two",
                manifest::FLAG
            ),
        )
        .into());
    }
    let manifest = manifest::read(location, flags.pod_network.and_then(PodNetwork::addon))?;
    flags.pod_network = Some(PodNetwork::named(manifest.addon.name).map_err(anyhow::Error::msg)?);
    Ok(Some(manifest))
}

/// Sets the manifest's fields from the resolved model (pod subnets, the pod MTU and interface
/// selection of the advertise address's interface), before anything is written.
pub fn edit_manifest(manifest: Manifest, model: &Model, facts: &Facts) -> anyhow::Result<Edited> {
    let cp = model.control_plane()?;
    let interface =
        crate::model::resolve::init::pod_interface(&model.cluster, cp.advertise_address(), facts);
    let values = addons::pod_network::values(manifest.addon, &cp, interface)?;
    Ok(manifest.edit(&values)?)
}

/// Renders the addon of `--pod-network` from the model, or takes the edited manifest of
/// `--pod-network-manifest` (either shown in a dry run), and applies it.
fn pod_network(data: &mut InitData) -> anyhow::Result<()> {
    let Some(addon) = data.model.cluster.pod_network.addon.addon() else {
        return Ok(());
    };
    // An unmaintained addon (weave) is warned about when init resolves its input.
    let ui = data.host.ui();
    let (text, objects, source) = match &data.pod_network_manifest {
        Some(edited) => {
            for change in &edited.changes {
                ui.note(format!("[addons] {}: set {change}", manifest::FLAG));
            }
            if edited.changes.is_empty() {
                ui.note(format!(
                    "[addons] {}: {} already holds the cluster's values; nothing changed",
                    manifest::FLAG,
                    edited.location
                ));
            }
            (
                edited.text.clone(),
                edited.objects.clone(),
                format!("{} manifest from {}, edited", addon.name, edited.location),
            )
        }
        None => {
            let cp = data.control_plane()?;
            let interface = crate::model::resolve::init::pod_interface(
                &data.model.cluster,
                cp.advertise_address(),
                data.host.facts(),
            )
            .map(|i| crate::model::PodInterface {
                ipip: crate::preflight::kinds::has_ipip(data.host.facts()),
                ..i
            });
            let (text, objects) = addons::pod_network::render(addon, &cp, interface)?;
            let source = format!(
                "{} manifest ({} {})",
                addon.name, addon.data.upstream.project, addon.data.upstream.release
            );
            (text, objects, source)
        }
    };
    if data.host.dry_run() {
        ui.line(format!("[dry-run] Content of the {source}:"));
        for line in text.lines() {
            ui.line(format!("\t{line}"));
        }
    }
    let what = match &data.pod_network_manifest {
        Some(edited) => format!("pod-network addon: {} from {}", addon.name, edited.location),
        None => format!(
            "pod-network addon: {} ({})",
            addon.name, addon.data.upstream.release
        ),
    };
    install(data, &objects, &what)?;
    let gateway = api::gateway(data)?;
    pod_network_ready::wait(
        &gateway,
        ui,
        &addon.data.namespace,
        &addon.data.daemonset,
        pod_network_ready::TIMEOUT,
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
