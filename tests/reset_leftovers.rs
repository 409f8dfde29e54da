//! What reset used to leave behind, so that the next init started dirty: the kubelet's metadata beside
//! a CSI volume whose mount reset removed, a symlink in a pod's volumes directory, and the CNI result
//! cache of containerd's `cni-loopback` network for this cluster's sandboxes. Judged with `find` and
//! `findmnt`, never with reset's own scanner; runs inside private network and mount namespaces.

mod common;

use std::path::Path;
use std::process::Command;

use common::sh;

const KUBESTRAP: &str = env!("CARGO_BIN_EXE_kubestrap");

fn reset(root: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(KUBESTRAP)
        .args(["reset", "--root"])
        .arg(root)
        .args(["--cri-socket", "unix:///nonexistent/kubestrap-test.sock"])
        .args(extra)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A node after pods ran: a CSI volume (its data behind a mount), a local volume with data and no
/// mount, a symlink in a pod's volumes dir, and CNI state of ours and of another runtime user.
fn seed(root: &Path) {
    let r = root.display();
    sh(&format!(
        r#"
K={r}/var/lib/kubelet
csi=$K/pods/pod-a/volumes/kubernetes.io~csi/pvc-1
mkdir -p $csi/mount {r}/backend
mount -t tmpfs -o size=64k tmpfs $csi/mount; echo volume-data > $csi/mount/data
echo '{{"driverName":"csi.example.com","volumeHandle":"vol-1"}}' > $csi/vol_data.json
mkdir -p $K/pods/pod-a/volumes/kubernetes.io~local-volume/pv-data
echo precious > $K/pods/pod-a/volumes/kubernetes.io~local-volume/pv-data/file
mkdir -p {r}/outside $K/pods/pod-b/volumes/kubernetes.io~local-volume
echo keep > {r}/outside/file
ln -s {r}/outside $K/pods/pod-b/volumes/kubernetes.io~local-volume/link
N={r}/var/lib/cni
mkdir -p $N/networks/cbr0 $N/networks/podman $N/results
printf 'sandbox-ours\r\neth0' > $N/networks/cbr0/10.244.0.5
printf 'sandbox-podman\r\neth0' > $N/networks/podman/10.88.0.5
echo '{{}}' > $N/results/cbr0-sandbox-ours-eth0
echo '{{}}' > $N/results/cni-loopback-sandbox-ours-lo
echo '{{}}' > $N/results/cni-loopback-sandbox-podman-lo
echo '{{}}' > $N/results/podman-sandbox-podman-eth0
"#
    ));
}

fn found(root: &Path, args: &str) -> Vec<String> {
    let out = sh(&format!("find {} {args}", root.display()));
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn reset_leaves_no_volume_metadata_links_or_loopback_results_of_ours() {
    if !common::enter_sandbox("reset_leaves_no_volume_metadata_links_or_loopback_results_of_ours") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    seed(root);
    let r = root.display().to_string();

    // The plan lists every item once, each path as it is on disk.
    let (code, plan, err) = reset(root, &["--dry-run"]);
    assert_eq!(code, 0, "{plan}\n{err}");
    let steps: Vec<&str> = plan
        .lines()
        .filter(|l| l.starts_with("[dry-run] Would "))
        .collect();
    let unique: std::collections::BTreeSet<&&str> = steps.iter().collect();
    assert_eq!(unique.len(), steps.len(), "an item listed twice:\n{plan}");
    for step in &steps {
        if let Some(rest) = step.split(" path ").nth(1) {
            assert!(rest.starts_with(&r), "not the on-disk path: {step}");
        }
    }
    assert!(
        plan.contains(&format!(
            "[dry-run] Would remove path {r}/var/lib/cni/results/cni-loopback-sandbox-ours-lo"
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "[dry-run] Would keep path {r}/var/lib/cni/results/cni-loopback-sandbox-podman-lo"
        )),
        "{plan}"
    );

    let (code, out, err) = reset(root, &["--force", "-o", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");

    let kubelet = format!("{r}/var/lib/kubelet");
    let mounts = sh(&format!(
        "findmnt -rn -o TARGET | grep -F '{kubelet}' || true"
    ));
    assert!(mounts.trim().is_empty(), "mounts left:\n{mounts}");
    assert!(
        found(root, "-name vol_data.json").is_empty(),
        "{:?}",
        found(root, "-path '*kubelet*'")
    );
    assert!(
        found(root, "-path '*/var/lib/kubelet/*' -type l").is_empty(),
        "a symlink is left"
    );
    assert_eq!(
        found(root, "-path '*/var/lib/kubelet/*' -type f"),
        [format!(
            "{kubelet}/pods/pod-a/volumes/kubernetes.io~local-volume/pv-data/file"
        )],
        "only the persistent-volume data stays without --purge-volumes"
    );
    assert_eq!(sh(&format!("cat {r}/outside/file")), "keep\n");
    let results = found(root, "-path '*/var/lib/cni/results/*' -type f");
    assert_eq!(
        results,
        [
            format!("{r}/var/lib/cni/results/cni-loopback-sandbox-podman-lo"),
            format!("{r}/var/lib/cni/results/podman-sandbox-podman-eth0"),
        ],
        "ours are gone (attributed by sandbox id), podman's stay"
    );

    let (code, out, err) = reset(root, &["--force", "--purge-volumes", "-o", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        found(root, "-path '*/var/lib/kubelet/*'").is_empty(),
        "--purge-volumes removes the data too"
    );
}
