//! The kubelet a host runs before it joins a cluster: the kubelet package's service, started without
//! a configuration, holds port 10250 and writes a self-signed serving certificate under
//! `/var/lib/kubelet/pki`. Such a kubelet is not in kubelet-start's way (it is stopped and its
//! self-generated files removed); a configured kubelet or a foreign process on the port is.

use std::path::Path;

use crate::host::listeners::{self, Listener};
use crate::host::services;
use crate::host::{Host, NodePath, well_known};

/// Files a kubelet makes for itself when it runs without a configuration, relative to
/// `/var/lib/kubelet`: its self-signed serving pair and its resource managers' checkpoints.
pub const SELF_GENERATED_FILES: &[&str] = &[
    "pki/kubelet.crt",
    "pki/kubelet.key",
    "cpu_manager_state",
    "memory_manager_state",
    "dra_manager_state",
    "device-plugins/kubelet_internal_checkpoint",
    "device-plugins/kubelet.sock",
    "pod-resources/kubelet.sock",
];

/// Directories such a kubelet makes (empty but for the files above).
pub const SELF_GENERATED_DIRS: &[&str] = &[
    "pki",
    "pods",
    "plugins",
    "plugins_registry",
    "pod-resources",
    "device-plugins",
    "checkpoints",
];

/// Flags that mean a kubelet was configured (it is someone's node, not a package default).
const CONFIGURING_FLAGS: &[&str] = &[
    "--config",
    "--kubeconfig",
    "--bootstrap-kubeconfig",
    "--pod-manifest-path",
];

/// What `/var/lib/kubelet` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletDir {
    /// Absent or empty.
    Empty,
    /// Only a standalone kubelet's own files (these files, relative paths).
    SelfGenerated(Vec<String>),
    /// Something else (the first entries found, relative paths).
    Other(Vec<String>),
}

/// Who holds the kubelet's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortHolder {
    Free,
    /// The node's kubelet service, with no configuration.
    StandaloneKubelet(Listener),
    /// The node's kubelet service, configured (the reason names what configures it).
    ConfiguredKubelet(Listener, String),
    /// Another process, or one this tool cannot see.
    Foreign(Option<Listener>),
}

/// The state of `/var/lib/kubelet` (state under `--root`).
pub fn kubelet_dir(host: &Host) -> anyhow::Result<KubeletDir> {
    let dir = NodePath::new(well_known::KUBELET_DIR);
    if host.dir_is_empty_or_absent(&dir)? {
        return Ok(KubeletDir::Empty);
    }
    let mut own = Vec::new();
    let mut other = Vec::new();
    walk(&host.disk(&dir), "", &mut own, &mut other)?;
    own.sort();
    other.sort();
    Ok(if other.is_empty() {
        KubeletDir::SelfGenerated(own)
    } else {
        KubeletDir::Other(other)
    })
}

fn walk(
    disk: &Path,
    prefix: &str,
    own: &mut Vec<String>,
    other: &mut Vec<String>,
) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(disk)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() && SELF_GENERATED_DIRS.contains(&relative.as_str()) {
            walk(&entry.path(), &relative, own, other)?;
        } else if !kind.is_dir() && SELF_GENERATED_FILES.contains(&relative.as_str()) {
            if !kind.is_socket_like() {
                own.push(relative);
            }
        } else {
            other.push(relative);
        }
    }
    Ok(())
}

/// Sockets are not files to remove (their listener goes with the kubelet), nor a reason to refuse.
trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket()
    }
}

/// Who holds `port`: free (it can be bound), the kubelet service with or without a configuration,
/// or something else.
pub fn port_holder(host: &Host, port: u16) -> PortHolder {
    if std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).is_ok()
        && std::net::TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, port))
            .map_or_else(|e| e.kind() != std::io::ErrorKind::AddrInUse, |_| true)
    {
        return PortHolder::Free;
    }
    let facts = host.facts();
    let Some(listener) = listeners::listener(facts, port) else {
        return PortHolder::Foreign(None);
    };
    if services::main_pid(facts, super::UNIT) != Some(listener.pid) {
        return PortHolder::Foreign(Some(listener));
    }
    let flag = listener.command_line.iter().skip(1).find_map(|arg| {
        CONFIGURING_FLAGS
            .iter()
            .find(|f| arg == *f || arg.starts_with(&format!("{f}=")))
    });
    match flag {
        Some(flag) => {
            let why = format!("it runs with {flag}");
            PortHolder::ConfiguredKubelet(listener, why)
        }
        None => PortHolder::StandaloneKubelet(listener),
    }
}

/// What kubelet-start does about the kubelet already on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// The standalone kubelet's self-generated files to remove (node paths).
    pub remove: Vec<NodePath>,
    /// Said to the user (a preflight warning, a kubelet-start line).
    pub message: String,
}

/// `Some` when the node runs (or ran) only the package's standalone kubelet: its files may go.
pub fn takeover(holder: &PortHolder, dir: &KubeletDir) -> Option<Takeover> {
    let files = match dir {
        KubeletDir::Empty => Vec::new(),
        KubeletDir::SelfGenerated(files) => files.clone(),
        KubeletDir::Other(_) => return None,
    };
    let remove: Vec<NodePath> = files
        .iter()
        .map(|f| NodePath::new(well_known::KUBELET_DIR).join(f))
        .collect();
    let listed = remove
        .iter()
        .map(NodePath::display_str)
        .collect::<Vec<_>>()
        .join(", ");
    let message = match (holder, remove.is_empty()) {
        (PortHolder::StandaloneKubelet(l), true) => format!(
            "port {} is held by the node's kubelet service (pid {}) running without a configuration: \
             kubelet-start stops it and starts it again configured",
            super::PORT,
            l.pid
        ),
        (PortHolder::StandaloneKubelet(l), false) => format!(
            "port {} is held by the node's kubelet service (pid {}) running without a configuration: \
             kubelet-start stops it, removes its self-generated files ({listed}) and starts it again configured",
            super::PORT,
            l.pid
        ),
        (PortHolder::Free, false) => format!(
            "{} holds only a standalone kubelet's self-generated files ({listed}): kubelet-start removes them",
            well_known::KUBELET_DIR
        ),
        _ => return None,
    };
    Some(Takeover { remove, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Facts, Root};
    use crate::output::Ui;

    fn host(dir: &Path) -> Host {
        Host::new(Root::new(dir), Facts::default(), false, Ui::default())
    }

    fn touch(root: &Path, relative: &str) {
        let path = root.join("var/lib/kubelet").join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn only_a_standalone_kubelets_own_files_count_as_self_generated() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path());
        assert_eq!(kubelet_dir(&h).unwrap(), KubeletDir::Empty);
        touch(dir.path(), "pki/kubelet.crt");
        touch(dir.path(), "pki/kubelet.key");
        touch(dir.path(), "cpu_manager_state");
        std::fs::create_dir_all(dir.path().join("var/lib/kubelet/pods")).unwrap();
        assert_eq!(
            kubelet_dir(&h).unwrap(),
            KubeletDir::SelfGenerated(vec![
                "cpu_manager_state".into(),
                "pki/kubelet.crt".into(),
                "pki/kubelet.key".into()
            ])
        );
        touch(dir.path(), "config.yaml");
        touch(dir.path(), "pki/kubelet-client-current.pem");
        assert_eq!(
            kubelet_dir(&h).unwrap(),
            KubeletDir::Other(vec![
                "config.yaml".into(),
                "pki/kubelet-client-current.pem".into()
            ])
        );
    }

    #[test]
    fn a_takeover_only_for_the_standalone_kubelet_and_its_files() {
        let kubelet = Listener {
            pid: 42,
            name: "kubelet".into(),
            command_line: vec!["/usr/bin/kubelet".into()],
        };
        let files = KubeletDir::SelfGenerated(vec!["pki/kubelet.crt".into()]);
        let standalone = PortHolder::StandaloneKubelet(kubelet.clone());
        let plan = takeover(&standalone, &files).unwrap();
        assert_eq!(
            plan.remove,
            [NodePath::new("/var/lib/kubelet/pki/kubelet.crt")]
        );
        assert!(plan.message.contains("pid 42"), "{}", plan.message);
        assert!(takeover(&standalone, &KubeletDir::Other(vec!["config.yaml".into()])).is_none());
        let configured = PortHolder::ConfiguredKubelet(kubelet.clone(), "--config".into());
        assert!(takeover(&configured, &files).is_none());
        assert!(takeover(&PortHolder::Foreign(Some(kubelet)), &KubeletDir::Empty).is_none());
        assert!(takeover(&PortHolder::Free, &KubeletDir::Empty).is_none());
        assert!(takeover(&PortHolder::Free, &files).is_some());
    }
}
