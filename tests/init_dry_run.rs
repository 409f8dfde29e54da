//! `kubestrap init --dry-run` through every phase on an empty root: the API phases plan their objects
//! without a server, and the closing message honours `--skip-token-print`, `--upload-certs` with a
//! control-plane endpoint, and `--schedule-on-control-plane`.

use assert_cmd::cargo::CommandCargoExt;
use std::process::Command;

const TOKEN: &str = "abcdef.0123456789abcdef";
const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn dry_run(extra: &[&str]) -> String {
    let root = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args([
            "--dry-run",
            "init",
            "--node-name",
            "cp1",
            "--apiserver-advertise-address",
            "192.0.2.10",
            "--ignore-preflight-errors=all",
            "--token",
            TOKEN,
        ])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "a dry run writes nothing"
    );
    stdout
}

#[test]
fn the_api_phases_plan_and_the_join_commands_follow_the_flags() {
    let plain = dry_run(&[]);
    for planned in [
        "Would apply the ConfigMap \"kube-system/kubeadm-config\"",
        "Would apply the ConfigMap \"kube-system/kubelet-config\"",
        "Would apply the ConfigMap \"kube-system/kubestrap-config\"",
        "Would apply the Secret \"kube-system/bootstrap-token-abcdef\"",
        "Would apply the ConfigMap \"kube-public/cluster-info\"",
        "Would apply the ClusterRoleBinding \"kubeadm:node-autoapprove-bootstrap\"",
        "Would apply the Deployment \"kube-system/coredns\"",
        "Would apply the DaemonSet \"kube-system/kube-proxy\"",
        "[upload-certs] Skipping phase. Please see --upload-certs",
        "by adding the taints [node-role.kubernetes.io/control-plane:NoSchedule]",
        "Your Kubernetes control-plane has initialized successfully!",
    ] {
        assert!(plain.contains(planned), "{planned}\n{plain}");
    }
    assert!(plain.contains(&format!(
        "kubestrap join 192.0.2.10:6443 --token {TOKEN} \\\n\t--discovery-token-ca-cert-hash sha256:"
    )));
    assert!(
        !plain.contains("\t--control-plane"),
        "no endpoint, no control-plane command"
    );

    let withheld = dry_run(&["--skip-token-print", "--schedule-on-control-plane"]);
    assert!(!withheld.contains("0123456789abcdef"), "{withheld}");
    assert!(withheld.contains("--token <value withheld>"), "{withheld}");
    assert!(withheld.contains("[bootstrap-token] Using token: abcdef.<secret>"));
    assert!(!withheld.contains("by adding the taints"), "{withheld}");

    let control_plane = dry_run(&[
        "--control-plane-endpoint",
        "lb.example",
        "--upload-certs",
        "--certificate-key",
        KEY,
    ]);
    assert!(
        control_plane.contains(&format!(
            "  kubestrap join lb.example:6443 --token {TOKEN} \\\n\t--discovery-token-ca-cert-hash sha256:"
        )),
        "{control_plane}"
    );
    assert!(control_plane.contains(&format!("\t--control-plane --certificate-key {KEY}\n")));
    assert!(control_plane.contains("Would apply the Secret \"kube-system/kubeadm-certs\""));
    assert!(control_plane.contains("uploaded-certs will be deleted in two hours"));
}
