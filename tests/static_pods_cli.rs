//! `kubestrap init phase etcd|control-plane` through the real binary: console lines, `--root`,
//! `--dry-run`, `--skip-phases`, `--patches`, external etcd.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

const MANIFESTS: &str = "etc/kubernetes/manifests";

/// The binary with a node identity, rooted at `root`, without the caller's proxy variables.
fn kubestrap(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kubestrap").unwrap();
    for (name, _) in std::env::vars() {
        if name.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("KUBESTRAP_ROOT").arg("--root").arg(root);
    cmd
}

fn node_flags() -> [&'static str; 4] {
    [
        "--node-name",
        "cp1",
        "--apiserver-advertise-address",
        "192.168.8.201",
    ]
}

fn manifest(root: &Path, name: &str) -> PathBuf {
    root.join(MANIFESTS).join(format!("{name}.yaml"))
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn etcd_local_writes_etcd_yaml_with_kubeadms_line() {
    let root = tempfile::tempdir().unwrap();
    let out = stdout_of(
        kubestrap(root.path())
            .args(["init", "phase", "etcd", "local"])
            .args(node_flags()),
    );
    assert_eq!(
        out,
        "[etcd] Creating static Pod manifest for local etcd in \"/etc/kubernetes/manifests\"\n"
    );
    let text = std::fs::read_to_string(manifest(root.path(), "etcd")).unwrap();
    assert!(
        text.contains("- --initial-cluster=cp1=https://192.168.8.201:2380\n"),
        "{text}"
    );
}

#[test]
fn control_plane_all_writes_three_manifests_in_order() {
    let root = tempfile::tempdir().unwrap();
    let out = stdout_of(
        kubestrap(root.path())
            .args(["init", "phase", "control-plane", "all"])
            .args(node_flags()),
    );
    assert_eq!(
        out,
        "[control-plane] Using manifest folder \"/etc/kubernetes/manifests\"\n\
         [control-plane] Creating static Pod manifest for \"kube-apiserver\"\n\
         [control-plane] Creating static Pod manifest for \"kube-controller-manager\"\n\
         [control-plane] Creating static Pod manifest for \"kube-scheduler\"\n"
    );
    for name in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(manifest(root.path(), name).is_file(), "{name}");
    }
    assert!(!manifest(root.path(), "etcd").exists());
}

#[test]
fn one_sub_phase_and_skip_phases() {
    let root = tempfile::tempdir().unwrap();
    kubestrap(root.path())
        .args(["init", "phase", "control-plane", "scheduler"])
        .args(node_flags())
        .assert()
        .success();
    assert!(manifest(root.path(), "kube-scheduler").is_file());
    assert!(!manifest(root.path(), "kube-apiserver").exists());

    let root = tempfile::tempdir().unwrap();
    kubestrap(root.path())
        .args([
            "init",
            "phase",
            "control-plane",
            "all",
            "--skip-phases",
            "control-plane/scheduler",
        ])
        .args(node_flags())
        .assert()
        .success();
    assert!(manifest(root.path(), "kube-apiserver").is_file());
    assert!(!manifest(root.path(), "kube-scheduler").exists());
}

#[test]
fn dry_run_prints_the_manifest_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let out = stdout_of(
        kubestrap(root.path())
            .args(["init", "phase", "etcd", "local", "--dry-run"])
            .args(node_flags()),
    );
    assert!(
        out.contains(&format!(
            "[dry-run] Would write path {} (mode 0600",
            root.path()
                .join("etc/kubernetes/manifests/etcd.yaml")
                .display()
        )),
        "{out}"
    );
    assert!(out.contains("\t    - --name=cp1\n"), "{out}");
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "dry run wrote files"
    );
}

#[test]
fn patches_are_applied_and_reported() {
    let root = tempfile::tempdir().unwrap();
    let patches = tempfile::tempdir().unwrap();
    std::fs::write(
        patches.path().join("kube-scheduler+json.yaml"),
        "- op: add\n  path: /spec/containers/0/command/-\n  value: --v=5\n",
    )
    .unwrap();
    let out = stdout_of(
        kubestrap(root.path())
            .args(["init", "phase", "control-plane", "scheduler", "--patches"])
            .arg(patches.path())
            .args(node_flags()),
    );
    assert!(
        out.contains(&format!(
            "[patches] Reading patches from path {:?}\n",
            patches.path().display().to_string()
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "[patches] Applied patch of type \"application/json-patch+json\" to target \"kube-scheduler\"\n"
        ),
        "{out}"
    );
    let text = std::fs::read_to_string(manifest(root.path(), "kube-scheduler")).unwrap();
    assert!(text.contains("    - --v=5\n"), "{text}");
}

#[test]
fn a_bad_patch_file_name_is_invalid_input_and_nothing_is_written() {
    let root = tempfile::tempdir().unwrap();
    let patches = tempfile::tempdir().unwrap();
    std::fs::write(patches.path().join("etcd+yolo.yaml"), "a: 1\n").unwrap();
    let assert = kubestrap(root.path())
        .args(["init", "phase", "etcd", "local", "--patches"])
        .arg(patches.path())
        .args(node_flags())
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(
        err.contains("--patches") && err.contains("etcd+yolo.yaml"),
        "{err}"
    );
    assert!(!root.path().join("etc").exists());
}

#[test]
fn a_patch_that_breaks_the_pod_fails_and_rolls_back() {
    let root = tempfile::tempdir().unwrap();
    let patches = tempfile::tempdir().unwrap();
    std::fs::write(
        patches.path().join("kube-scheduler+merge.yaml"),
        "spec: {hostNetwork: yes-please}\n",
    )
    .unwrap();
    let assert = kubestrap(root.path())
        .args(["init", "phase", "control-plane", "all", "--patches"])
        .arg(patches.path())
        .args(node_flags())
        .assert()
        .code(1);
    let output = assert.get_output();
    let err = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        err.contains("error execution phase control-plane/scheduler"),
        "{err}"
    );
    assert!(err.contains("spec.hostNetwork"), "{err}");
    let out = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(out.contains("[rollback] Undid"), "{out}");
    // The API server and controller-manager manifests written before the failure are gone again.
    for name in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(
            !manifest(root.path(), name).exists(),
            "{name} was left behind"
        );
    }
}

#[test]
fn external_etcd_skips_the_local_etcd_manifest() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {name: cp1}\n\
         localAPIEndpoint: {advertiseAddress: 192.168.8.201}\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
         etcd:\n  external:\n    endpoints: [\"https://10.0.0.5:2379\"]\n",
    )
    .unwrap();
    let out = stdout_of(
        kubestrap(root.path())
            .args(["init", "phase", "etcd", "local", "--config"])
            .arg(&config),
    );
    assert_eq!(out, "");
    assert!(!manifest(root.path(), "etcd").exists());
    kubestrap(root.path())
        .args(["init", "phase", "control-plane", "apiserver", "--config"])
        .arg(&config)
        .assert()
        .success();
    let text = std::fs::read_to_string(manifest(root.path(), "kube-apiserver")).unwrap();
    assert!(
        text.contains("- --etcd-servers=https://10.0.0.5:2379\n"),
        "{text}"
    );
}
