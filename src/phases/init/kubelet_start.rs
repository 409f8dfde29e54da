//! `init phase kubelet-start`: stops the node's kubelet, takes over from the package's standalone
//! kubelet (its self-generated files go), writes the kubelet's files from the model (config.yaml,
//! instance-config.yaml, kubeadm-flags.env, the 10-kubeadm.conf drop-in) and starts the kubelet
//! through the node's service manager. Every step is journaled, so a rollback restores the files and
//! the drop-in that were there and brings the service back to how it was.

use super::InitData;
use crate::host::services::{self, InitSystem};
use crate::host::{Host, NodePath, well_known};
use crate::kubelet::{self, cgroup, files, standalone};
use crate::model::Model;
use crate::patches::PatchSet;
use crate::workflow::Phase;

pub const NAME: &str = "kubelet-start";

pub fn phase() -> Phase<InitData> {
    Phase::leaf(
        NAME,
        "Write kubelet settings and (re)start the kubelet",
        |data: &mut InitData| {
            let patches = match &data.options.patches_dir {
                Some(dir) => Some(PatchSet::cached(dir, data.host.ui())?),
                None => None,
            };
            start(&data.host, &data.model, patches.as_deref())
        },
    )
}

/// The kubelet binary the drop-in runs: the packaged one, else a binary install's.
fn kubelet_path(host: &Host) -> String {
    ["/usr/bin/kubelet", "/usr/local/bin/kubelet"]
        .into_iter()
        .find(|p| host.facts().host_file_exists(p))
        .unwrap_or("/usr/bin/kubelet")
        .to_string()
}

/// The host facts the kubelet's files depend on, with the cgroup driver chosen.
pub fn host_settings(host: &Host, model: &Model) -> files::HostSettings {
    let facts = host.facts();
    let choice = cgroup::choose(&model.cluster.kubelet, facts, &model.node.cri_socket);
    host.ui().line(format!(
        "[kubelet-start] Using the {:?} cgroup driver ({})",
        choice.kubelet.name,
        choice.kubelet.source.describe()
    ));
    if let Some(disagreement) = choice.disagreement() {
        host.ui().warn(format!("[kubelet-start] {disagreement}"));
    }
    files::HostSettings {
        cgroup_driver: choice.kubelet.name,
        systemd_resolved: services::is_active(facts, "systemd-resolved") == Some(true),
        hostname: facts.hostname().ok().map(|h| h.to_lowercase()),
        kubelet_path: kubelet_path(host),
    }
}

/// The whole phase, for init (and join's kubelet-start, which writes the same files).
pub fn start(host: &Host, model: &Model, patches: Option<&PatchSet>) -> anyhow::Result<()> {
    let ui = host.ui();
    let settings = host_settings(host, model);
    let rendered = files::render(model, &settings, patches, ui)?;
    let systemd = services::init_system(host.facts());
    let takeover = standalone::takeover(
        &standalone::port_holder(host, kubelet::PORT),
        &standalone::kubelet_dir(host)?,
    );
    match &systemd {
        InitSystem::Systemd => services::stop_journaled(host, kubelet::UNIT)?,
        InitSystem::Other(pid1) => ui.warn(format!(
            "[kubelet-start] PID 1 is {pid1}, not systemd: there is no service manager to stop or start the kubelet; \
             start it yourself with the files below ({} runs it)",
            files::DROP_IN
        )),
    }
    if let Some(takeover) = takeover.filter(|t| !t.remove.is_empty()) {
        ui.line(format!(
            "[kubelet-start] Removing the standalone kubelet's self-generated files: {}",
            takeover
                .remove
                .iter()
                .map(NodePath::display_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for path in &takeover.remove {
            host.remove_file(path)?;
        }
    }
    ui.line(format!(
        "[kubelet-start] Writing kubelet environment file with flags to file {:?}",
        files::FLAGS_ENV
    ));
    host.write_file(
        &NodePath::new(files::FLAGS_ENV),
        rendered.flags_env.as_bytes(),
        0o644,
    )?;
    if let Some(instance) = &rendered.instance_config {
        ui.line(format!(
            "[kubelet-start] Writing kubelet configuration to file {:?}",
            files::INSTANCE_CONFIG
        ));
        host.write_file(
            &NodePath::new(files::INSTANCE_CONFIG),
            instance.as_bytes(),
            0o644,
        )?;
    }
    ui.line(format!(
        "[kubelet-start] Writing kubelet configuration to file {:?}",
        files::CONFIG
    ));
    host.write_file(
        &NodePath::new(files::CONFIG),
        rendered.config.as_bytes(),
        0o644,
    )?;
    let drop_in = NodePath::new(files::DROP_IN);
    if host.exists(&drop_in) && host.read(&drop_in)? != rendered.drop_in.as_bytes() {
        ui.line(format!(
            "[kubelet-start] Replacing the kubelet drop-in {:?} (its earlier version is kept in the journal and restored by a rollback or 'kubestrap reset')",
            files::DROP_IN
        ));
    } else {
        ui.line(format!(
            "[kubelet-start] Writing the kubelet drop-in {:?}",
            files::DROP_IN
        ));
    }
    host.write_file(&drop_in, rendered.drop_in.as_bytes(), 0o644)?;
    if systemd == InitSystem::Systemd {
        ui.line("[kubelet-start] Starting the kubelet");
        services::start_kubelet_journaled(
            host,
            kubelet::UNIT,
            &model.node.cri_socket,
            &NodePath::new(well_known::KUBELET_DIR),
        )?;
    }
    Ok(())
}
