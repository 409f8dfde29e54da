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
            start(
                &data.host,
                &data.model,
                patches.as_deref(),
                files::Taints::ByApi,
            )
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

/// The whole phase, for init (and join's kubelet-start, which writes the same files and has the
/// kubelet register the Node with its taints).
pub fn start(
    host: &Host,
    model: &Model,
    patches: Option<&PatchSet>,
    taints: files::Taints,
) -> anyhow::Result<()> {
    let ui = host.ui();
    let settings = host_settings(host, model);
    let rendered = files::render(model, &settings, patches, taints, ui)?;
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
    // The files go into place (durably) before a kubelet may read them.
    host.commit()?;
    if systemd == InitSystem::Systemd {
        ui.line("[kubelet-start] Starting the kubelet");
        // What the kubelet and its pods write there is this run's: preflight found them empty
        // (or holding only a standalone kubelet's files, removed above).
        let mut state_dirs = vec![NodePath::new(well_known::KUBELET_DIR)];
        state_dirs.extend(
            model
                .control_plane()
                .ok()
                .and_then(|cp| cp.etcd_member())
                .map(|member| member.data_dir),
        );
        services::start_kubelet_journaled(
            host,
            kubelet::UNIT,
            &model.node.cri_socket,
            &state_dirs,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::journal;
    use crate::host::{Facts, Root};
    use crate::model::testing::control_plane_model;
    use crate::output::Ui;
    use crate::workflow::rollback::{UndoEntry, roll_back};

    /// A node whose PID 1 is not systemd (nothing is stopped or started), with a drop-in and a
    /// standalone kubelet's certificate already there.
    fn node(dir: &std::path::Path) -> Host {
        std::fs::create_dir_all(dir.join("proc/1")).unwrap();
        std::fs::write(dir.join("proc/1/comm"), "tini\n").unwrap();
        std::fs::write(dir.join("proc/1/cmdline"), b"tini\0").unwrap();
        let root = dir.join("root");
        let drop_in = root.join("etc/systemd/system/kubelet.service.d/10-kubeadm.conf");
        std::fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
        std::fs::write(
            &drop_in,
            "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --the-packages\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("var/lib/kubelet/pki")).unwrap();
        std::fs::write(root.join("var/lib/kubelet/pki/kubelet.crt"), "self-signed").unwrap();
        let facts =
            Facts::with_roots(dir.join("proc"), "/sys").with_host_files_root(dir.join("files"));
        Host::new(Root::new(&root), facts, false, Ui::default())
    }

    #[test]
    fn the_files_are_written_and_a_rollback_restores_the_drop_in_and_the_standalone_files() {
        let dir = tempfile::tempdir().unwrap();
        let host = node(dir.path());
        let model = control_plane_model("");
        host.start_journal("init").unwrap();
        start(&host, &model, None, files::Taints::ByApi).unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join("root").join(p)).unwrap();
        assert!(
            read("etc/systemd/system/kubelet.service.d/10-kubeadm.conf")
                .contains("Written by kubestrap")
        );
        assert!(
            read("var/lib/kubelet/config.yaml")
                .contains("staticPodPath: /etc/kubernetes/manifests")
        );
        assert!(read("var/lib/kubelet/instance-config.yaml").contains("containerRuntimeEndpoint"));
        assert!(read("var/lib/kubelet/kubeadm-flags.env").starts_with("KUBELET_KUBEADM_ARGS=\""));
        // Port 10250 is free here and the directory held only the standalone kubelet's certificate.
        assert!(
            !dir.path()
                .join("root/var/lib/kubelet/pki/kubelet.crt")
                .exists()
        );

        let run = host.run_id().unwrap();
        let records = journal::read(host.root()).unwrap();
        let mine = journal::run_records(&records, &run);
        let handlers: [&dyn UndoEntry; 1] = [&host];
        let report = roll_back(&mine, &host, &handlers);
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(
            read("etc/systemd/system/kubelet.service.d/10-kubeadm.conf"),
            "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --the-packages\n"
        );
        assert_eq!(read("var/lib/kubelet/pki/kubelet.crt"), "self-signed");
        assert!(!dir.path().join("root/var/lib/kubelet/config.yaml").exists());
        assert!(
            !dir.path()
                .join("root/var/lib/kubelet/kubeadm-flags.env")
                .exists()
        );
    }
}
