//! A real etcd started with exactly the command line of the rendered etcd manifest.
//!
//! kubestrap generates the PKI (`init phase certs all`) and the manifest (`init phase etcd local`)
//! under a temporary `--root`, rendered for the etcd this machine has (Debian's etcd-server
//! 3.4.23, image tag 3.4.23-0). The Pod's `command` runs with its canonical paths mapped under the
//! root, inside its own network namespace, and must serve the healthcheck client, answer the
//! rendered probe paths, and refuse a client without a certificate.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Pod;

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
const SCRIPT: &str = "tests/scripts/etcd-in-netns.sh";

fn require_debian_etcd() {
    let out = Command::new(ETCD)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("{ETCD} is needed (Debian etcd-server, see .ci/apt-packages): {e}")
        });
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains("etcd Version: 3.4."),
        "{ETCD} is not etcd 3.4: {version}"
    );
    assert!(
        Path::new(ETCDCTL).is_file(),
        "{ETCDCTL} is needed (Debian etcd-client)"
    );
}

fn kubestrap(root: &Path, config: &Path, phase: &[&str]) {
    let out = assert_cmd::Command::cargo_bin("kubestrap")
        .unwrap()
        .env_remove("KUBESTRAP_ROOT")
        .args(["init", "phase"])
        .args(phase)
        .arg("--root")
        .arg(root)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubestrap init phase {phase:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--x=/etc/kubernetes/...` and `--x=/var/lib/etcd` point under the test's root.
fn under_root(arg: &str, root: &Path) -> String {
    match arg.split_once('=') {
        Some((name, value))
            if value.starts_with("/etc/kubernetes/") || value.starts_with("/var/lib/etcd") =>
        {
            format!("{name}={}{value}", root.display())
        }
        _ => arg.to_string(),
    }
}

fn probe_path(probe: &Option<k8s_openapi::api::core::v1::Probe>) -> String {
    probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| h.path.clone())
        .expect("the etcd probe has an HTTP path")
}

#[test]
fn the_rendered_etcd_command_runs_a_real_etcd_with_kubestraps_certificates() {
    require_debian_etcd();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {name: cp1}\n\
         localAPIEndpoint: {advertiseAddress: 127.0.0.1}\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\netcd: {local: {imageTag: 3.4.23-0}}\n",
    )
    .unwrap();
    kubestrap(&root, &config, &["certs", "all"]);
    let certs = root.join("etc/kubernetes/pki/etcd");
    for file in [
        "ca.crt",
        "server.crt",
        "server.key",
        "peer.crt",
        "peer.key",
        "healthcheck-client.crt",
        "healthcheck-client.key",
    ] {
        assert!(
            certs.join(file).is_file(),
            "init phase certs all did not write etcd/{file}"
        );
    }
    kubestrap(&root, &config, &["etcd", "local"]);

    let text = std::fs::read_to_string(root.join("etc/kubernetes/manifests/etcd.yaml")).unwrap();
    let pod: Pod = kubestrap::yaml::from_str(&text).unwrap();
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let command = container.command.clone().unwrap();
    assert_eq!(command[0], "etcd");
    let args: Vec<String> = command[1..].iter().map(|a| under_root(a, &root)).collect();

    let log = dir.path().join("etcd.log");
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", SCRIPT])
        .arg(&log)
        .arg(ETCDCTL)
        .arg(&certs)
        .arg(ETCD)
        .args(&args)
        .env("LIVENESS_PATH", probe_path(&container.liveness_probe))
        .env("STARTUP_PATH", probe_path(&container.startup_probe))
        .output()
        .expect("unshare (util-linux) runs the etcd check");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let etcd_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "{report}{}\netcd log:\n{etcd_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("https://127.0.0.1:2379 is healthy"),
        "{report}"
    );
    assert!(
        report.contains("PROBE /health?exclude=NOSPACE&serializable=true: 200"),
        "{report}"
    );
    assert!(
        report.contains("PROBE /health?serializable=false: 200"),
        "{report}"
    );
    // Why the probes follow the etcd version: this etcd has no /livez.
    assert!(report.contains("PROBE /livez: 404"), "{report}");
    assert!(report.contains("NO-CERT-REFUSED"), "{report}");
    assert!(
        root.join("var/lib/etcd/member").is_dir(),
        "etcd did not use the rendered data dir"
    );
}
