//! reset's `containers` phase against a real containerd (private, in the test's namespaces) running pods
//! with CNI networking: every sandbox is stopped (CNI DEL frees the IP and the masquerade rules) and
//! removed, and nothing of the pods is left — judged with ctr, ip, iptables-save and the file system.

mod common;

use std::path::Path;
use std::process::Command;

use common::{containerd, sh};
use kubestrap::host::runtime::cri::api;
use kubestrap::host::runtime::{block_on, cri};

const KUBESTRAP: &str = env!("CARGO_BIN_EXE_kubestrap");

const CONFLIST: &str = r#"{"cniVersion":"0.4.0","name":"cbr0","plugins":[
 {"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

/// Runs `pods` pods with one container each (it exits on TERM) through the CRI.
fn run_pods(endpoint: &str, logs: &Path, pods: usize) {
    block_on(async {
        let mut client = cri::connect(endpoint).await.unwrap();
        for i in 0..pods {
            let config = api::PodSandboxConfig {
                metadata: Some(api::PodSandboxMetadata {
                    name: format!("pod{i}"),
                    uid: format!("uid-{i}"),
                    namespace: "default".into(),
                    attempt: 0,
                }),
                log_directory: logs.join(format!("pod{i}")).display().to_string(),
                ..Default::default()
            };
            let sandbox = client
                .run_pod_sandbox(api::RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .pod_sandbox_id;
            let container = client
                .create_container(api::CreateContainerRequest {
                    pod_sandbox_id: sandbox.clone(),
                    config: Some(api::ContainerConfig {
                        metadata: Some(api::ContainerMetadata {
                            name: "app".into(),
                            attempt: 0,
                        }),
                        image: Some(api::ImageSpec {
                            image: containerd::PAUSE_IMAGE.into(),
                            ..Default::default()
                        }),
                        command: vec![
                            "/bin/sh".into(),
                            "-c".into(),
                            "trap 'exit 0' TERM; sleep 3600 & wait".into(),
                        ],
                        log_path: "app.log".into(),
                        ..Default::default()
                    }),
                    sandbox_config: Some(config),
                })
                .await
                .unwrap()
                .into_inner()
                .container_id;
            client
                .start_container(api::StartContainerRequest {
                    container_id: container,
                })
                .await
                .unwrap();
        }
    })
    .unwrap();
}

#[test]
fn reset_removes_cri_pods_and_their_network_state() {
    if !common::enter_sandbox("reset_removes_cri_pods_and_their_network_state") {
        return;
    }
    let _runtime = common::runtime_lock();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let runtime = containerd::start(
        &dir.path().join("containerd"),
        CONFLIST,
        &root.join("var/lib/cni"),
    );
    let endpoint = format!("unix://{}", runtime.socket.display());

    let version = cri::version(&endpoint).unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    run_pods(&endpoint, &dir.path().join("logs"), 3);
    let ctr = |args: &str| {
        sh(&format!(
            "ctr --address {} -n k8s.io {args}",
            runtime.socket.display()
        ))
    };
    assert_eq!(ctr("containers ls -q").lines().count(), 6);
    assert_eq!(
        sh("ls /run/netns")
            .lines()
            .filter(|l| l.starts_with("cni-"))
            .count(),
        3
    );
    assert!(root.join("var/lib/cni/networks/cbr0/10.244.0.2").exists());
    assert!(sh("iptables-save -t nat").contains("name: \\\"cbr0\\\""));

    let out = Command::new(KUBESTRAP)
        .args([
            "reset",
            "--force",
            "-o",
            "json",
            "--cri-socket",
            &endpoint,
            "--root",
        ])
        .arg(&root)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let containers = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "container")
        .count();
    assert_eq!(containers, 6, "{text}");

    assert_eq!(ctr("containers ls -q").trim(), "", "containers left");
    assert!(!sh("ls /run/netns").contains("cni-"), "pod netns left");
    let ipam = sh(&format!(
        "find {} -type f -name '10.244.*' 2>/dev/null || true",
        root.join("var/lib/cni").display()
    ));
    assert_eq!(ipam.trim(), "", "IPAM reservations left");
    let links = sh("ip -o link show");
    assert!(
        !links.contains(" cni0") && !links.contains(" veth"),
        "{links}"
    );
    let rules = sh("iptables-save");
    assert!(
        !rules.contains("cbr0") && !rules.contains("CNI-"),
        "{rules}"
    );
}
