//! The resolved model through the real binary: dual-stack lists reach every output as `a,b`, `config
//! view` prints the model init used, and reset takes the cluster's scope from the node record — or, on
//! a node kubeadm made (no record), from the static-pod manifests.

use std::path::Path;

use assert_cmd::Command;
use kubestrap::config::flags::InitFlags;
use kubestrap::host::Facts;
use kubestrap::model::resolve::init::resolve_file;
use kubestrap::pki::inspect::CertInfo;
use serde_json::Value;

const CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n\
    nodeRegistration: {name: cp1}\nlocalAPIEndpoint: {advertiseAddress: 192.168.8.201, bindPort: 7443}\n\
    ---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
    clusterName: lab\ncontrolPlaneEndpoint: lb.example\n\
    networking:\n  podSubnet: 10.32.0.0/12,fd00:10:32::/56\n  serviceSubnet: 10.112.0.0/12,fd00:10:96::/112\n  dnsDomain: lab.local\n\
    apiServer:\n  certSANs: [api.example, 203.0.113.5]\n";

/// The binary rooted at `root`, without the caller's proxy variables.
fn kubestrap(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kubestrap").unwrap();
    for (name, _) in std::env::vars() {
        if name.to_ascii_lowercase().ends_with("_proxy") || name.starts_with("KUBESTRAP_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--root").arg(root);
    cmd
}

/// `kubestrap init` of every offline phase (preflight needs a real node, the others a cluster) from `config`.
fn init(root: &Path, config: &Path) {
    kubestrap(root)
        .args([
            "init",
            "--skip-phases",
            "preflight,kubelet-start,wait-control-plane,upload-config,upload-certs,mark-control-plane,bootstrap-token,kubelet-finalize,addon,discovery",
            "--config",
        ])
        .arg(config)
        .assert()
        .success();
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, CONFIG).unwrap();
    path
}

fn manifest(root: &Path, name: &str) -> String {
    std::fs::read_to_string(root.join(format!("etc/kubernetes/manifests/{name}.yaml"))).unwrap()
}

/// The `--flag=value` arguments of a manifest's command.
fn flag(text: &str, name: &str) -> Option<String> {
    let needle = format!("- --{name}=");
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(needle.as_str()))
        .map(|v| v.trim().trim_matches('"').to_string())
}

#[test]
fn dual_stack_lists_reach_every_output_as_a_comma_list() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    init(root.path(), &write_config(dir.path()));
    let cm = manifest(root.path(), "kube-controller-manager");
    let api = manifest(root.path(), "kube-apiserver");
    assert_eq!(
        flag(&cm, "cluster-cidr").as_deref(),
        Some("10.32.0.0/12,fd00:10:32::/56")
    );
    for text in [&cm, &api] {
        assert_eq!(
            flag(text, "service-cluster-ip-range").as_deref(),
            Some("10.112.0.0/12,fd00:10:96::/112")
        );
    }
    // No argument of any manifest carries a space inside its value.
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        for line in manifest(root.path(), name).lines() {
            if let Some(arg) = line.trim_start().strip_prefix("- --") {
                assert!(!arg.trim_end().contains(' '), "{name}: {line}");
            }
        }
    }
    // The API server's certificate holds the VIP of each service range.
    let cert = CertInfo::from_pem(
        &std::fs::read(root.path().join("etc/kubernetes/pki/apiserver.crt")).unwrap(),
    )
    .unwrap();
    for vip in ["10.112.0.1", "fd00:10:96::1"] {
        assert!(
            cert.ips.contains(&vip.parse().unwrap()),
            "{vip} in {:?}",
            cert.ips
        );
    }
}

#[test]
fn config_view_prints_the_model_init_used() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    init(root.path(), &config);
    let out = kubestrap(root.path())
        .args(["config", "view", "-o", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let viewed: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(viewed["apiVersion"], "kubestrap.io/v1alpha1");
    assert_eq!(viewed["kind"], "NodeRecord");
    assert_eq!(viewed["recordedBy"], "init");

    let file = kubestrap::config::load::parse(CONFIG).unwrap();
    let used = resolve_file(file, &InitFlags::default(), &Facts::default(), &[])
        .unwrap()
        .model;
    assert_eq!(
        viewed["cluster"],
        serde_json::to_value(&used.cluster).unwrap()
    );
    assert_eq!(viewed["node"], serde_json::to_value(&used.node).unwrap());
    assert_eq!(
        viewed["cluster"]["networking"]["podSubnets"],
        serde_json::json!(["10.32.0.0/12", "fd00:10:32::/56"])
    );

    let yaml = kubestrap(root.path())
        .args(["config", "view"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let from_yaml: Value = kubestrap::yaml::from_str(&String::from_utf8(yaml).unwrap()).unwrap();
    assert_eq!(from_yaml, viewed);

    let empty = tempfile::tempdir().unwrap();
    let missing = kubestrap(empty.path())
        .args(["config", "view"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&missing).contains("cluster.yaml does not exist"),
        "{}",
        String::from_utf8_lossy(&missing)
    );
}

/// `reset --dry-run -v 1` with every phase skipped: only the scope line, nothing changed.
fn reset_scope_line(root: &Path) -> String {
    let out = kubestrap(root)
        .args([
            "reset",
            "--dry-run",
            "-v",
            "1",
            "--skip-phases",
            "preflight,remove-etcd-member,cleanup-node,verify",
        ])
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8(out).unwrap();
    text.lines()
        .find(|l| l.contains("The cluster's scope"))
        .unwrap_or_else(|| panic!("no scope line in {text}"))
        .to_string()
}

#[test]
fn reset_takes_the_scope_from_the_record() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    init(root.path(), &write_config(dir.path()));
    // A hand-edited manifest does not change what the cluster's ranges are.
    let cm = root
        .path()
        .join("etc/kubernetes/manifests/kube-controller-manager.yaml");
    let text = std::fs::read_to_string(&cm).unwrap();
    std::fs::write(
        &cm,
        text.replace("10.32.0.0/12,fd00:10:32::/56", "10.99.0.0/16"),
    )
    .unwrap();
    let line = reset_scope_line(root.path());
    assert!(
        line.contains("from the node record /var/lib/kubestrap/cluster.yaml"),
        "{line}"
    );
    assert!(
        line.contains("pod CIDRs [10.32.0.0/12,fd00:10:32::/56]"),
        "{line}"
    );
    assert!(
        line.contains("service CIDRs [10.112.0.0/12,fd00:10:96::/112]"),
        "{line}"
    );
}

#[test]
fn reset_reads_the_manifests_of_a_kubeadm_node_without_a_record() {
    let root = tempfile::tempdir().unwrap();
    let manifests = root.path().join("etc/kubernetes/manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("kube-apiserver.yaml"),
        "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --service-cluster-ip-range=10.100.0.0/16\n",
    )
    .unwrap();
    std::fs::write(
        manifests.join("kube-controller-manager.yaml"),
        "spec:\n  containers:\n  - command:\n    - kube-controller-manager\n    - --cluster-cidr=10.200.0.0/16\n    - --service-cluster-ip-range=10.100.0.0/16\n",
    )
    .unwrap();
    let line = reset_scope_line(root.path());
    assert!(line.contains("from the static-pod manifests"), "{line}");
    assert!(line.contains("pod CIDRs [10.200.0.0/16]"), "{line}");
    assert!(line.contains("service CIDRs [10.100.0.0/16]"), "{line}");
}
