//! The node image: a tiny root filesystem made by `docker import` in about a second. The host's
//! /usr is bind-mounted at /host/usr and the image's /usr is a farm of symlinks into it, so the node
//! runs the host's etcd, kubectl and tools while the image adds the kubelet package's files
//! (/usr/bin/kubelet, kubelet.service), the container runtime's (/usr/bin/containerd,
//! containerd.service) and the testbed's systemctl. Cached by a hash of its layout.
//! At boot the node's init mounts a writable overlay over /usr (lower: /host/usr, upper: a Docker
//! volume at /var/lib/testbed-usr), so hostPath volumes under /usr (the controller-manager's
//! flexvolume dir) can be created as on a real host; the symlink farm is only what init boots from.

use std::os::unix::fs::symlink;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::docker::{LABEL, docker};

/// Bump when the layout below changes.
const LAYOUT_VERSION: &str = "9";

/// The kubelet package's unit (binary-install layout under /etc/systemd/system).
pub const KUBELET_UNIT: &str = "[Unit]\nDescription=kubelet: The Kubernetes Node Agent\nDocumentation=https://kubernetes.io/docs/\nWants=network-online.target\nAfter=network-online.target\n\n[Service]\nExecStart=/usr/bin/kubelet\nRestart=always\nStartLimitInterval=0\nRestartSec=10\n\n[Install]\nWantedBy=multi-user.target\n";

/// The container runtime's unit, as containerd's release ships it (`KillMode=process`: stopping the
/// runtime leaves the containers running), enabled at boot.
pub const CONTAINERD_UNIT: &str = "[Unit]\nDescription=containerd container runtime\nDocumentation=https://containerd.io\nAfter=network.target local-fs.target\n\n[Service]\nExecStart=/usr/bin/containerd\nKillMode=process\nDelegate=yes\nRestart=always\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n";

/// containerd's configuration as a Kubernetes host sets it up: the runc runtime with the systemd
/// cgroup driver (the runtime double reports it through the CRI `RuntimeConfig` call).
pub const CONTAINERD_CONFIG: &str = "version = 3\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";

/// The drop-in the kubeadm package ships, for tests that start a kubelet before kubestrap's own
/// kubelet-start phase writes one.
pub const KUBEADM_DROPIN: &str = "[Service]\nEnvironment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"\nEnvironment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nEnvironmentFile=-/etc/default/kubelet\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n";

/// Binaries the image routes to the testbed's multi-call binary.
pub const DOUBLES_IN_USR_BIN: &[&str] = &[
    "kubelet",
    "systemctl",
    "containerd",
    "calico-node",
    "weave-npc",
];
pub const DOUBLES_IN_USR_LOCAL_BIN: &[&str] = &[
    "kube-proxy",
    "coredns",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "agnhost",
];

fn entries(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The image tag for the current host and layout.
pub fn tag() -> String {
    let mut h = Sha256::new();
    h.update(LAYOUT_VERSION);
    h.update(KUBELET_UNIT);
    h.update(CONTAINERD_UNIT);
    h.update(CONTAINERD_CONFIG);
    for name in entries("/usr")
        .iter()
        .chain(entries("/usr/bin").iter())
        .chain(entries(CNI_PLUGINS).iter())
    {
        h.update(name);
        h.update(b"\0");
    }
    format!(
        "kubestrap-testbed-node:{}",
        &hex::encode(h.finalize())[..12]
    )
}

/// Where Debian's containernetworking-plugins installs the CNI plugins; the image links each into
/// /opt/cni/bin, where runtimes look for them and addons install their own.
pub const CNI_PLUGINS: &str = "/usr/lib/cni";

fn write_tree(root: &Path) -> Result<()> {
    for (link, to) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        symlink(to, root.join(link))?;
    }
    let usr = root.join("usr");
    std::fs::create_dir_all(usr.join("bin"))?;
    std::fs::create_dir_all(usr.join("local/bin"))?;
    for top in entries("/usr") {
        if top != "bin" && top != "local" {
            symlink(format!("/host/usr/{top}"), usr.join(&top))?;
        }
    }
    for name in entries("/usr/bin") {
        if !DOUBLES_IN_USR_BIN.contains(&name.as_str()) {
            symlink(format!("/host/usr/bin/{name}"), usr.join("bin").join(&name))?;
        }
    }
    for name in DOUBLES_IN_USR_BIN {
        symlink("/opt/testbed/bin/tbnode", usr.join("bin").join(name))?;
    }
    for name in DOUBLES_IN_USR_LOCAL_BIN {
        symlink("/opt/testbed/bin/tbnode", usr.join("local/bin").join(name))?;
    }
    symlink(
        "/opt/testbed/bin/kubestrap",
        usr.join("local/bin/kubestrap"),
    )?;
    let bin = root.join("opt/testbed/bin");
    std::fs::create_dir_all(&bin)?;
    symlink("tbnode", bin.join("systemd"))?;
    // The flannel-cni-plugin image's `/flannel` (its init container copies it to /opt/cni/bin).
    let plugin = root.join(crate::addons::flannel::cni::PLUGIN_PATH.trim_start_matches('/'));
    if let Some(dir) = plugin.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&plugin, crate::addons::flannel::cni::PLUGIN_SCRIPT)?;
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let cni = root.join("opt/cni/bin");
    std::fs::create_dir_all(&cni)?;
    for plugin in entries(CNI_PLUGINS) {
        symlink(format!("{CNI_PLUGINS}/{plugin}"), cni.join(&plugin))?;
    }
    let etc = root.join("etc");
    std::fs::create_dir_all(etc.join("systemd/system/multi-user.target.wants"))?;
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )?;
    std::fs::write(etc.join("group"), "root:x:0:\nnogroup:x:65534:\n")?;
    std::fs::write(
        etc.join("nsswitch.conf"),
        "passwd: files\ngroup: files\nhosts: files dns\n",
    )?;
    std::fs::write(
        etc.join("os-release"),
        "PRETTY_NAME=\"kubestrap testbed node\"\nNAME=\"kubestrap testbed\"\nID=debian\nVERSION_ID=\"12\"\n",
    )?;
    std::fs::write(etc.join("machine-id"), "")?;
    for (unit, text) in [
        ("kubelet.service", KUBELET_UNIT),
        ("containerd.service", CONTAINERD_UNIT),
    ] {
        std::fs::write(etc.join("systemd/system").join(unit), text)?;
        symlink(
            format!("/etc/systemd/system/{unit}"),
            etc.join("systemd/system/multi-user.target.wants")
                .join(unit),
        )?;
    }
    std::fs::create_dir_all(etc.join("containerd"))?;
    std::fs::write(etc.join("containerd/config.toml"), CONTAINERD_CONFIG)?;
    std::fs::create_dir_all(root.join("var"))?;
    symlink("/run", root.join("var/run"))?;
    for dir in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "root",
        "var/lib",
        "var/log",
        "etc/kubernetes/manifests",
        "host/usr",
        "var/lib/testbed-usr",
    ] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    Ok(())
}

/// Makes sure the node image exists (building it when missing) and returns its tag.
pub fn ensure() -> Result<String> {
    let tag = tag();
    if docker(&["image", "inspect", "--format", "{{.Id}}", &tag], None)?.ok() {
        return Ok(tag);
    }
    let dir = std::env::temp_dir().join(format!("kubestrap-testbed-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root)?;
    write_tree(&root).context("assemble the node root filesystem")?;
    let tarball = dir.join("node.tar");
    let tar = std::process::Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .output()
        .context("run tar")?;
    if !tar.status.success() {
        anyhow::bail!("tar failed: {}", String::from_utf8_lossy(&tar.stderr));
    }
    let label = format!("LABEL {LABEL}.image=node");
    let path = tarball.to_string_lossy().to_string();
    docker(&["import", "--change", &label, &path, &tag], None)?
        .check("docker import of the node image")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(tag)
}
