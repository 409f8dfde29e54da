//! `init phase addon`: the addons init installs itself — CoreDNS and kube-proxy — from the templates
//! under `addons/`, each skipped when the configuration disables it (`dns.disabled`, `proxy.disabled`).

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
                    install(data, &objects, "CoreDNS")
                },
            )
            .with_run_if(|data: &InitData| !data.model.cluster.dns.disabled),
            Phase::leaf(
                "kube-proxy",
                "Install the kube-proxy addon to a Kubernetes cluster",
                |data: &mut InitData| {
                    let objects = addons::kube_proxy(&data.control_plane()?)?;
                    install(data, &objects, "kube-proxy")
                },
            )
            .with_run_if(|data: &InitData| !data.model.cluster.proxy.disabled),
        ],
    )
}

fn install(data: &InitData, objects: &[AddonObject], name: &str) -> anyhow::Result<()> {
    let gateway = api::gateway(data)?;
    for object in objects {
        object.apply(&gateway)?;
    }
    data.host
        .ui()
        .line(format!("[addons] Applied essential addon: {name}"));
    Ok(())
}
