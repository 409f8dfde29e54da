//! The hostPath volumes and mounts of each static Pod (K: `phases/controlplane/volumes.go`, `phases/etcd/local.go`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Component;
use super::args::last_value;
use super::host_inputs::HostInputs;
use crate::config::types::HostPathMount;
use crate::host::NodePath;
use crate::host::well_known::KUBERNETES_DIR;
use crate::model::{ControlPlane, ExternalEtcdSpec};

/// Directories `/etc/ssl/certs` may link into; kubeadm mounts each one that exists on the node.
pub const CA_TRUST_DIRS: [&str; 5] = [
    "/etc/pki/ca-trust",
    "/etc/pki/tls/certs",
    "/etc/ca-certificates",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
];
const CA_CERTS_DIR: &str = "/etc/ssl/certs";
const DEFAULT_FLEXVOLUME_DIR: &str = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec";
const LOCALTIME: &str = "/etc/localtime";
const DIRECTORY_OR_CREATE: &str = "DirectoryOrCreate";
const FILE_OR_CREATE: &str = "FileOrCreate";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountValues {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeValues {
    pub name: String,
    pub host_path: String,
    /// `""` for an extra volume without `pathType`, as kubeadm writes it.
    pub path_type: String,
}

/// Volumes and mounts keyed by name: a later one with the same name replaces the earlier one,
/// and both lists come out sorted by name.
#[derive(Debug, Default)]
struct Mounts {
    volumes: BTreeMap<String, VolumeValues>,
    mounts: BTreeMap<String, MountValues>,
}

impl Mounts {
    fn add(
        &mut self,
        name: &str,
        host_path: &str,
        mount_path: &str,
        read_only: bool,
        path_type: &str,
    ) {
        self.volumes.insert(
            name.to_string(),
            VolumeValues {
                name: name.to_string(),
                host_path: host_path.to_string(),
                path_type: path_type.to_string(),
            },
        );
        self.mounts.insert(
            name.to_string(),
            MountValues {
                name: name.to_string(),
                mount_path: mount_path.to_string(),
                read_only,
            },
        );
    }

    fn add_dir(&mut self, name: &str, path: &str, read_only: bool) {
        self.add(name, path, path, read_only, DIRECTORY_OR_CREATE);
    }

    fn add_extra(&mut self, extra: &[HostPathMount]) {
        for v in extra {
            self.add(
                &v.name,
                &v.host_path,
                &v.mount_path,
                v.read_only.unwrap_or(false),
                v.path_type.as_deref().unwrap_or(""),
            );
        }
    }

    fn into_lists(self) -> (Vec<MountValues>, Vec<VolumeValues>) {
        (
            self.mounts.into_values().collect(),
            self.volumes.into_values().collect(),
        )
    }
}

/// The mounts (in container order) and volumes (sorted by name) of one component.
pub fn volumes(
    component: Component,
    cp: &ControlPlane,
    inputs: &HostInputs,
) -> (Vec<MountValues>, Vec<VolumeValues>) {
    if component == Component::Etcd {
        return etcd_volumes(cp);
    }
    let cert_dir = cp.cert_dir().display_str();
    let cluster = cp.cluster;
    let mut m = Mounts::default();
    match component {
        Component::KubeApiServer | Component::KubeControllerManager => {
            m.add_dir("k8s-certs", &cert_dir, true);
            m.add_dir("ca-certs", CA_CERTS_DIR, true);
            for dir in CA_TRUST_DIRS {
                if inputs.ca_trust_dirs.iter().any(|d| d == dir) {
                    m.add_dir(&dir.replace('/', "-")[1..], dir, true);
                }
            }
        }
        Component::KubeScheduler | Component::Etcd => {}
    }
    match component {
        Component::KubeApiServer => {
            if let Some(external) = cluster.etcd.external() {
                for (i, dir) in external_etcd_cert_dirs(external, &cert_dir)
                    .iter()
                    .enumerate()
                {
                    m.add_dir(&format!("etcd-certs-{i}"), dir, true);
                }
            }
            m.add_extra(&cluster.api_server.extra_volumes);
        }
        Component::KubeControllerManager => {
            let config = format!("{KUBERNETES_DIR}/controller-manager.conf");
            m.add("kubeconfig", &config, &config, true, FILE_OR_CREATE);
            let flex = last_value(
                &cluster.controller_manager.extra_args,
                "flex-volume-plugin-dir",
            )
            .unwrap_or(DEFAULT_FLEXVOLUME_DIR);
            // Writable: third-party volume plugins talk to their backends through sockets here.
            m.add_dir("flexvolume-dir", flex, false);
            m.add_extra(&cluster.controller_manager.extra_volumes);
        }
        Component::KubeScheduler => {
            let config = format!("{KUBERNETES_DIR}/scheduler.conf");
            m.add("kubeconfig", &config, &config, true, FILE_OR_CREATE);
            m.add_extra(&cluster.scheduler.extra_volumes);
        }
        Component::Etcd => {}
    }
    if cp.node.mount_host_localtime {
        m.add("localtime", LOCALTIME, LOCALTIME, true, "File");
    }
    m.into_lists()
}

/// etcd mounts its data directory and `<certDir>/etcd` read-write, in that order (kubeadm lists
/// them literally); its volumes are sorted by name.
fn etcd_volumes(cp: &ControlPlane) -> (Vec<MountValues>, Vec<VolumeValues>) {
    const MOUNT_ORDER: [&str; 3] = ["etcd-data", "etcd-certs", "localtime"];
    let mut m = Mounts::default();
    if let Some(local) = cp.cluster.etcd.local() {
        m.add_dir("etcd-data", &local.data_dir.display_str(), false);
    }
    m.add_dir(
        "etcd-certs",
        &cp.cert_dir().join("etcd").display_str(),
        false,
    );
    if cp.node.mount_host_localtime {
        m.add("localtime", LOCALTIME, LOCALTIME, true, "File");
    }
    let (mut mounts, volumes) = m.into_lists();
    mounts.sort_by_key(|mount| MOUNT_ORDER.iter().position(|name| *name == mount.name));
    (mounts, volumes)
}

/// The directories of external etcd's CA, cert and key that are not already mounted (the cert
/// dir, `/etc/ssl/certs`, the CA-trust dirs), with nested ones folded into their parent.
fn external_etcd_cert_dirs(external: &ExternalEtcdSpec, cert_dir: &str) -> Vec<String> {
    let mut dirs: std::collections::BTreeSet<String> = Default::default();
    for file in external.files() {
        let dir = file
            .parent()
            .map(|p: NodePath| p.display_str())
            .unwrap_or_default();
        let covered = dir.is_empty()
            || dir.starts_with(CA_CERTS_DIR)
            || dir.starts_with(cert_dir)
            || CA_TRUST_DIRS.iter().any(|d| dir.starts_with(d));
        if covered
            || dirs
                .iter()
                .any(|existing| dir.starts_with(existing.as_str()))
        {
            continue;
        }
        dirs.retain(|existing| !existing.starts_with(&dir));
        dirs.insert(dir);
    }
    dirs.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_etcd_dirs_skip_mounted_ones_and_fold_nested_ones() {
        let external = ExternalEtcdSpec {
            endpoints: vec!["https://e:2379".into()],
            ca_file: Some(NodePath::new("/etc/certs/etcd/ca.crt")),
            cert_file: Some(NodePath::new("/etc/kubernetes/pki/etcd/c.crt")),
            key_file: Some(NodePath::new("/etc/certs/k.key")),
        };
        assert_eq!(
            external_etcd_cert_dirs(&external, "/etc/kubernetes/pki"),
            vec!["/etc/certs".to_string()]
        );
    }
}
