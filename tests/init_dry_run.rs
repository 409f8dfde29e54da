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
        "Would apply api-object v1 ConfigMap kube-system/kubeadm-config (",
        "Would apply api-object v1 ConfigMap kube-system/kubelet-config (",
        "Would apply api-object v1 ConfigMap kube-system/kubestrap-config (",
        "Would apply api-object v1 Secret kube-system/bootstrap-token-abcdef (",
        "Would apply api-object v1 ConfigMap kube-public/cluster-info (",
        "Would apply api-object rbac.authorization.k8s.io/v1 ClusterRoleBinding kubeadm:node-autoapprove-bootstrap (",
        "Would apply api-object apps/v1 Deployment kube-system/coredns (",
        "Would apply api-object apps/v1 DaemonSet kube-system/kube-proxy (",
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
    assert!(control_plane.contains("Would apply api-object v1 Secret kube-system/kubeadm-certs ("));
    assert!(control_plane.contains("uploaded-certs will be deleted in two hours"));
}

/// The pod-network phase renders the chosen addon's folder with no cluster reachable (the manifest is
/// shown, its objects planned), warns about weave, installs nothing with `--pod-network none`, and
/// refuses an addon's unknown name and a pod subnet of a family the addon lacks (exit 2).
#[test]
fn the_pod_network_phase_renders_the_chosen_addon_and_none_installs_nothing() {
    let flannel = dry_run(&["--pod-network-cidr", "10.32.0.0/16"]);
    assert!(
        flannel.contains("\t      \"Network\": \"10.32.0.0/16\","),
        "{flannel}"
    );
    assert!(
        flannel.contains("Would apply api-object apps/v1 DaemonSet kube-flannel/kube-flannel-ds (")
    );
    assert!(flannel.contains("[addons] Applied pod-network addon: flannel (v0.27.4)"));
    assert!(
        flannel.contains("  kubectl -n kube-flannel rollout status daemonset/kube-flannel-ds\n")
    );
    assert!(!flannel.contains("You should now deploy a pod network"));

    let calico = dry_run(&["--pod-network", "calico"]);
    assert!(calico.contains(
        "Would apply api-object apiextensions.k8s.io/v1 CustomResourceDefinition ippools.crd.projectcalico.org ("
    ));
    assert!(
        calico.contains("\t          value: \"10.244.0.0/16\""),
        "one default pod CIDR:\n{calico}"
    );
    assert!(calico.contains("[addons] Applied pod-network addon: calico (v3.30.0)"));
    assert!(!calico.contains("kube-flannel"));

    let none = dry_run(&["--pod-network", "none"]);
    assert!(!none.contains("pod-network addon"), "{none}");
    assert!(!none.contains("manifest ("), "{none}");
    assert!(none.contains("You should now deploy a pod network to the cluster."));
    let skipped = dry_run(&["--skip-phases", "addon/pod-network"]);
    assert!(!skipped.contains("pod-network addon"), "{skipped}");
    assert!(skipped.contains("You should now deploy a pod network to the cluster."));

    // The phase on its own renders with no cluster reachable.
    let root = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args([
            "init",
            "phase",
            "addon",
            "pod-network",
            "--dry-run",
            "--pod-network",
            "weave",
            "--node-name",
            "cp1",
            "--apiserver-advertise-address",
            "192.0.2.10",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("\t          value: \"10.244.0.0/16\""),
        "{stdout}"
    );
    assert!(stdout.contains("[addons] Applied pod-network addon: weave (v2.8.1)"));
    assert!(
        format!("{stdout}{stderr}").contains("Weave Net is archived upstream"),
        "{stdout}{stderr}"
    );

    for (args, says) in [
        (&["--pod-network", "cilium"][..], "cilium"),
        (
            &[
                "--pod-network",
                "weave",
                "--pod-network-cidr",
                "fd00:10:244::/56",
            ][..],
            "does not support the IPv6 pod subnet",
        ),
    ] {
        let out = Command::cargo_bin("kubestrap")
            .unwrap()
            .arg("--root")
            .arg(root.path())
            .args(["init", "--dry-run", "--node-name", "cp1"])
            .args(["--apiserver-advertise-address", "192.0.2.10"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
