//! The `--root`-aware path type: every host state path the tool reads or writes on disk is a `NodePath`.
//!
//! A `NodePath` holds the canonical path, as it would be on a real node and as it is written inside
//! manifests and kubeconfigs. Its on-disk location is the canonical path under the `--root` prefix.
//! Paths that are never re-rooted (/proc, /sys, sockets, `--config`) are not `NodePath`s.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// A canonical absolute host path (e.g. `/etc/kubernetes/pki/ca.crt`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct NodePath(PathBuf);

impl NodePath {
    /// Makes a node path from an absolute path; `.` and `..` components are resolved lexically so a
    /// path can never climb out of the root prefix.
    pub fn new(path: impl AsRef<Path>) -> Self {
        let mut clean = PathBuf::from("/");
        for component in path.as_ref().components() {
            match component {
                Component::Normal(part) => clean.push(part),
                Component::ParentDir => {
                    clean.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        NodePath(clean)
    }

    pub fn canonical(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, relative: impl AsRef<Path>) -> NodePath {
        NodePath::new(self.0.join(relative))
    }

    pub fn parent(&self) -> Option<NodePath> {
        self.0.parent().map(NodePath::new)
    }

    pub fn file_name(&self) -> Option<&str> {
        self.0.file_name().and_then(|n| n.to_str())
    }

    pub fn starts_with(&self, other: &NodePath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// The path as a string for messages and for writing into files.
    pub fn display_str(&self) -> String {
        self.0.display().to_string()
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// The `--root` prefix under which node paths live on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root(dir.into())
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    pub fn is_real_root(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// Where a node path lives on disk.
    pub fn disk(&self, path: &NodePath) -> PathBuf {
        let relative = path.0.strip_prefix("/").unwrap_or(&path.0);
        self.0.join(relative)
    }

    /// The node path of an on-disk path under this root, if it is under it.
    pub fn node_path_of(&self, disk: &Path) -> Option<NodePath> {
        disk.strip_prefix(&self.0).ok().map(NodePath::new)
    }
}

/// Well-known canonical locations (kubeadm's constants).
pub mod well_known {
    pub const KUBERNETES_DIR: &str = "/etc/kubernetes";
    pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";
    pub const TMP_DIR: &str = "/etc/kubernetes/tmp";
    pub const DEFAULT_CERT_DIR: &str = "/etc/kubernetes/pki";
    pub const KUBELET_DIR: &str = "/var/lib/kubelet";
    pub const ETCD_DATA_DIR: &str = "/var/lib/etcd";
    pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
    pub const CNI_STATE_DIR: &str = "/var/lib/cni";
    pub const FLANNEL_RUN_DIR: &str = "/run/flannel";
    pub const SYSTEMD_DIR: &str = "/etc/systemd/system";
    pub const SYSCTL_DIR: &str = "/etc/sysctl.d";
    pub const STATE_DIR: &str = "/var/lib/kubestrap";

    /// The state paths `--root` prefixes (docs/cli.md lists the same), besides the paths a
    /// configuration names (cert dir, etcd data dir, external etcd files). Everything else the tool
    /// reads about the host is a host fact (`host::facts`), never under `--root`.
    pub const STATE_PATHS: [&str; 9] = [
        KUBERNETES_DIR,
        KUBELET_DIR,
        ETCD_DATA_DIR,
        CNI_CONF_DIR,
        CNI_STATE_DIR,
        FLANNEL_RUN_DIR,
        SYSTEMD_DIR,
        SYSCTL_DIR,
        STATE_DIR,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerooting_keeps_paths_inside_the_root() {
        let root = Root::new("/tmp/r");
        assert_eq!(
            root.disk(&NodePath::new("/etc/kubernetes/pki/ca.crt")),
            PathBuf::from("/tmp/r/etc/kubernetes/pki/ca.crt")
        );
        assert_eq!(
            root.disk(&NodePath::new("/etc/../../../../escape")),
            PathBuf::from("/tmp/r/escape")
        );
        assert_eq!(
            Root::new("/").disk(&NodePath::new("/var/lib/etcd")),
            PathBuf::from("/var/lib/etcd")
        );
    }

    #[test]
    fn node_path_of_inverts_disk() {
        let root = Root::new("/tmp/r");
        let p = NodePath::new("/var/lib/kubelet/config.yaml");
        assert_eq!(root.node_path_of(&root.disk(&p)), Some(p));
        assert_eq!(root.node_path_of(Path::new("/elsewhere")), None);
    }
}
