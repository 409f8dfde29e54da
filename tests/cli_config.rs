//! `kubestrap config …`, `version`, `token generate` and `completion` through the real binary.

use assert_cmd::Command;
use serde_json::Value;

fn kubestrap() -> Command {
    Command::cargo_bin("kubestrap").unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = kubestrap().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn docs(text: &str) -> Vec<Value> {
    kubestrap::yaml::documents(text).unwrap()
}

#[test]
fn init_defaults_have_kubeadm_shape_and_our_differences() {
    let text = stdout_of(&["config", "print", "init-defaults"]);
    let d = docs(&text);
    assert_eq!(d.len(), 2);
    let (init, cluster) = (&d[0], &d[1]);
    assert_eq!(init["kind"], "InitConfiguration");
    assert_eq!(init["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(
        init["bootstrapTokens"][0]["token"],
        "abcdef.0123456789abcdef"
    );
    assert_eq!(init["bootstrapTokens"][0]["ttl"], "24h0m0s");
    assert_eq!(
        init["bootstrapTokens"][0]["usages"],
        serde_json::json!(["signing", "authentication"])
    );
    assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], "1.2.3.4");
    assert_eq!(init["localAPIEndpoint"]["bindPort"], 6443);
    assert_eq!(
        init["nodeRegistration"]["criSocket"],
        "unix:///var/run/containerd/containerd.sock"
    );
    assert_eq!(init["nodeRegistration"]["taints"], Value::Null);
    assert_eq!(init["timeouts"]["kubernetesAPICall"], "1m0s");
    assert_eq!(init["timeouts"]["etcdAPICall"], "2m0s");
    assert_eq!(init["timeouts"]["controlPlaneComponentHealthCheck"], "4m0s");
    assert_eq!(cluster["kind"], "ClusterConfiguration");
    assert_eq!(cluster["encryptionAlgorithm"], "ECDSA-P256");
    assert_eq!(cluster["kubernetesVersion"], "v1.34.3");
    assert_eq!(cluster["networking"]["serviceSubnet"], "10.96.0.0/12");
    assert_eq!(cluster["networking"]["dnsDomain"], "cluster.local");
    assert_eq!(cluster["etcd"]["local"]["dataDir"], "/var/lib/etcd");
    assert_eq!(cluster["certificateValidityPeriod"], "8760h0m0s");
    assert_eq!(cluster["caCertificateValidityPeriod"], "87600h0m0s");
    assert_eq!(cluster["apiServer"], serde_json::json!({}));
    // kubeadm's layout: keys sorted.
    let keys: Vec<&str> = text
        .split("---")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn printed_defaults_validate() {
    let dir = tempfile::tempdir().unwrap();
    for which in ["init-defaults", "join-defaults", "reset-defaults"] {
        let path = dir.path().join(format!("{which}.yaml"));
        std::fs::write(&path, stdout_of(&["config", "print", which])).unwrap();
        let out = stdout_of(&["config", "validate", "--config", path.to_str().unwrap()]);
        assert!(out.starts_with("ok:"), "{which}: {out}");
    }
}

#[test]
fn validate_reports_join_problems_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("join.yaml");
    std::fs::write(
        &path,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: [\"md5:abc\"]\n",
    )
    .unwrap();
    let out = kubestrap()
        .args(["config", "validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("discovery.bootstrapToken.caCertHashes[0]"),
        "{stderr}"
    );
    assert!(stderr.contains("md5:abc"), "{stderr}");
}

#[test]
fn images_follow_the_version_table_and_overrides() {
    let text = stdout_of(&["config", "images", "list"]);
    let images: Vec<&str> = text.lines().collect();
    assert_eq!(
        images,
        vec![
            "registry.k8s.io/kube-apiserver:v1.34.3",
            "registry.k8s.io/kube-controller-manager:v1.34.3",
            "registry.k8s.io/kube-scheduler:v1.34.3",
            "registry.k8s.io/kube-proxy:v1.34.3",
            "registry.k8s.io/coredns/coredns:v1.12.1",
            "registry.k8s.io/pause:3.10.1",
            "registry.k8s.io/etcd:3.6.5-0",
            // the default pod network's (flannel), at upstream's registry
            "ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1",
            "ghcr.io/flannel-io/flannel:v0.27.4",
        ]
    );
    // another addon's images, none for `--pod-network none`
    let calico = stdout_of(&["config", "images", "list", "--pod-network", "calico"]);
    assert_eq!(
        calico.lines().skip(7).collect::<Vec<_>>(),
        [
            "quay.io/calico/cni:v3.30.0",
            "quay.io/calico/kube-controllers:v3.30.0",
            "quay.io/calico/node:v3.30.0"
        ]
    );
    let none = stdout_of(&["config", "images", "list", "--pod-network", "none"]);
    assert_eq!(none.lines().collect::<Vec<_>>(), images[..7]);
    let json: Value = serde_json::from_str(&stdout_of(&[
        "config",
        "images",
        "list",
        "--kubernetes-version",
        "v1.36.0",
        "--image-repository",
        "mirror.example/k8s",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["kind"], "Images");
    assert_eq!(json["apiVersion"], "output.kubeadm.k8s.io/v1alpha3");
    let list: Vec<&str> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        list.contains(&"mirror.example/k8s/etcd:3.7.0-0"),
        "{list:?}"
    );
    assert!(
        list.contains(&"mirror.example/k8s/coredns/coredns:v1.14.6"),
        "{list:?}"
    );
    assert!(
        list.contains(&"mirror.example/k8s/pause:3.10.2"),
        "{list:?}"
    );
    // the addon's images go under the mirror too
    assert!(
        list.contains(&"mirror.example/k8s/flannel:v0.27.4"),
        "{list:?}"
    );
}

#[test]
fn images_honour_disabled_addons_and_external_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ndns:\n  disabled: true\nproxy:\n  disabled: true\netcd:\n  external:\n    endpoints: [\"https://10.0.0.9:2379\"]\n",
    )
    .unwrap();
    let text = stdout_of(&[
        "config",
        "images",
        "list",
        "--config",
        path.to_str().unwrap(),
    ]);
    // the control plane's three and pause, then the pod network's two
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(
        !text.contains("etcd") && !text.contains("coredns") && !text.contains("kube-proxy"),
        "{text}"
    );
}

#[test]
fn version_json_and_token_generate() {
    let v: Value = serde_json::from_str(&stdout_of(&["version", "-o", "json"])).unwrap();
    assert_eq!(
        v["clientVersion"]["gitVersion"],
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
    let token = stdout_of(&["token", "generate"]);
    assert!(
        kubestrap::config::validate::is_bootstrap_token(token.trim()),
        "{token}"
    );
}

#[test]
fn completion_scripts_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let text = stdout_of(&["completion", shell]);
        assert!(text.contains("kubestrap"), "{shell}");
    }
}

#[test]
fn images_pull_names_the_runtime_and_refuses_bad_sockets() {
    let out = kubestrap()
        .args([
            "config",
            "images",
            "pull",
            "--cri-socket",
            "unix:///nonexistent/kubestrap-test.sock",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed to pull image registry.k8s.io/kube-apiserver:v1.34.3")
            && stderr.contains("/nonexistent/kubestrap-test.sock"),
        "{stderr}"
    );
    let out = kubestrap()
        .args([
            "config",
            "images",
            "pull",
            "--cri-socket",
            "containerd.sock",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cri-socket"));
    let plan = stdout_of(&["--dry-run", "config", "images", "pull"]);
    assert_eq!(
        plan.lines()
            .filter(|l| l.starts_with("[dry-run] Would pull "))
            .count(),
        9,
        "{plan}"
    );
}
