//! The CRI runtime double on testbed nodes, through kubestrap's own CRI client: the kubelet's static
//! pods are listed with the kubelet's metadata, survive a stopped kubelet and a restarted runtime,
//! go when removed through the CRI and come back only while their manifest exists; images answer from the testbed's mapping;
//! kubestrap's preflight finds the runtime.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use kubestrap::host::runtime::cri::{self, api};
use kubestrap_testbed::driver::fixture::{ClusterSettings, ControlPlane};
use kubestrap_testbed::driver::scenario::{self, SUPER_ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::Value;

const SCHEDULER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-scheduler.yaml";

/// The node's CRI socket as the test process reaches it.
fn endpoint(node: &Node) -> Result<String> {
    Ok(format!(
        "unix://{}",
        node.host_path(kubestrap_testbed::cri::SOCKET)?.display()
    ))
}

fn pid_of(node: &Node, program: &str) -> Result<Option<String>> {
    let out = node.exec(&["pgrep", "-x", program])?;
    Ok(out.stdout.split_whitespace().next().map(str::to_string))
}

/// Sandbox names (`namespace/name`) the runtime lists.
fn pod_names(endpoint: &str) -> Result<Vec<String>> {
    let (sandboxes, _) = cri::scan(endpoint)?;
    let mut names: Vec<String> = sandboxes
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    names.sort();
    Ok(names)
}

/// The scheduler pod's sandbox and containers, as kubestrap's reset would pass them.
fn scheduler_pod(endpoint: &str) -> Result<(Vec<cri::Sandbox>, Vec<cri::Container>)> {
    let (sandboxes, containers) = cri::scan(endpoint)?;
    let sandboxes: Vec<_> = sandboxes
        .into_iter()
        .filter(|s| s.name == "kube-scheduler-node1")
        .collect();
    let containers = containers
        .into_iter()
        .filter(|c| sandboxes.iter().any(|s| s.id == c.sandbox_id))
        .collect();
    Ok((sandboxes, containers))
}

fn attempt(c: &api::ContainerStatus) -> u32 {
    c.metadata.as_ref().map(|m| m.attempt).unwrap_or_default()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// What the runtime says about one pod's container, by the kubelet's labels.
fn container_by_pod(
    endpoint: &str,
    pod: &str,
) -> Result<(api::ContainerStatus, api::PodSandboxStatus)> {
    runtime()?.block_on(async {
        let mut client = cri::connect(endpoint).await?;
        let selector: HashMap<String, String> =
            [("io.kubernetes.pod.name".to_string(), pod.to_string())].into();
        let listed = client
            .list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    label_selector: selector,
                    state: Some(api::ContainerStateValue {
                        state: api::ContainerState::ContainerRunning as i32,
                    }),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .containers;
        ensure!(
            listed.len() == 1,
            "one running container of {pod}: {listed:?}"
        );
        let status = client
            .container_status(api::ContainerStatusRequest {
                container_id: listed[0].id.clone(),
                verbose: false,
            })
            .await?
            .into_inner()
            .status
            .ok_or_else(|| anyhow!("no container status"))?;
        let sandbox = client
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: listed[0].pod_sandbox_id.clone(),
                verbose: false,
            })
            .await?
            .into_inner()
            .status
            .ok_or_else(|| anyhow!("no sandbox status"))?;
        Ok((status, sandbox))
    })
}

#[test]
fn the_kubelets_pods_are_the_runtimes_and_kubestraps_cri_client_controls_them() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
    let node = cluster.node("node1")?;
    let cp = ControlPlane::generate(ClusterSettings::for_node(node))?;
    cp.write_to(node)?;
    scenario::start_kubelet(node, &cp.settings)?;
    scenario::wait_for_api(node, SUPER_ADMIN, Duration::from_secs(60))?;
    let ep = endpoint(node)?;

    let version = cri::version(&ep)?;
    ensure!(
        version.runtime_name == "testbed" && version.runtime_api_version == "v1",
        "{version:?}"
    );
    // The node's containerd config.toml selects the systemd driver; RuntimeConfig reports it.
    ensure!(
        cri::cgroup_driver(&ep)? == Some("systemd"),
        "RuntimeConfig: {:?}",
        cri::cgroup_driver(&ep)
    );
    let all = [
        "kube-system/etcd-node1",
        "kube-system/kube-apiserver-node1",
        "kube-system/kube-controller-manager-node1",
        "kube-system/kube-scheduler-node1",
    ];
    wait_until("four pods in the runtime", Duration::from_secs(30), || {
        Ok(pod_names(&ep)? == all)
    })
    .with_context(|| cluster.diagnostics())?;
    let (_, containers) = cri::scan(&ep)?;
    ensure!(
        containers.iter().filter(|c| c.running).count() == 4,
        "{containers:?}"
    );

    // The metadata the kubelet gave the pod: the sandbox's uid is the mirror pod's config hash.
    let (container, sandbox) = container_by_pod(&ep, "kube-scheduler-node1")?;
    let meta = sandbox.metadata.clone().unwrap_or_default();
    let get_mirror = || {
        node.kubectl_with(
            SUPER_ADMIN,
            &[
                "get",
                "pod",
                "-n",
                "kube-system",
                "kube-scheduler-node1",
                "-o",
                "json",
            ],
        )
    };
    wait_until(
        "the scheduler's mirror pod",
        Duration::from_secs(30),
        || Ok(get_mirror()?.ok()),
    )?;
    let mirror: Value = serde_json::from_str(&get_mirror()?.stdout)?;
    let runtime_version = format!("testbed://{}", version.runtime_version);
    wait_until(
        "the Node's runtime version",
        Duration::from_secs(15),
        || {
            let jsonpath = "-o=jsonpath={.status.nodeInfo.containerRuntimeVersion}";
            let out = node.kubectl_with(SUPER_ADMIN, &["get", "node", "node1", jsonpath])?;
            Ok(out.stdout.trim() == runtime_version)
        },
    )?;
    ensure!(
        meta.name == "kube-scheduler-node1"
            && meta.namespace == "kube-system"
            && meta.uid == mirror["metadata"]["annotations"]["kubernetes.io/config.hash"],
        "{meta:?} vs {}",
        mirror["metadata"]
    );
    for (key, value) in [
        ("io.kubernetes.pod.name", "kube-scheduler-node1"),
        ("io.kubernetes.pod.namespace", "kube-system"),
        ("io.kubernetes.pod.uid", meta.uid.as_str()),
        ("io.kubernetes.container.name", "kube-scheduler"),
    ] {
        ensure!(
            container.labels.get(key).map(String::as_str) == Some(value),
            "label {key}: {:?}",
            container.labels
        );
    }
    ensure!(
        container.metadata.as_ref().map(|m| m.name.as_str()) == Some("kube-scheduler")
            && container
                .image
                .as_ref()
                .is_some_and(|i| i.image.contains("/kube-scheduler:")),
        "{container:?}"
    );
    let first_restarts = attempt(&container);

    // Images: what the testbed can run is present; anything else fails to pull like a registry.
    let apiserver_image = format!(
        "registry.k8s.io/kube-apiserver:{}",
        kubestrap_testbed::DEFAULT_KUBERNETES_VERSION
    );
    let coredns = "registry.k8s.io/coredns/coredns:v1.12.1".to_string();
    let nginx = "docker.io/library/nginx:1.27".to_string();
    let present = cri::images_present(&ep, &[apiserver_image, coredns, nginx.clone()])?;
    ensure!(
        present.iter().map(|(_, here)| *here).collect::<Vec<_>>() == [true, true, false],
        "{present:?}"
    );
    let pull = cri::pull_image(&ep, &nginx, Duration::from_secs(10))
        .err()
        .ok_or_else(|| anyhow!("pulling nginx succeeded"))?;
    ensure!(
        format!("{pull:#}").contains("failed to pull and unpack image"),
        "{pull:#}"
    );
    let (exec_sync, streaming) = runtime()?.block_on(async {
        let mut client = cri::connect(&ep).await?;
        let sync = client
            .exec_sync(api::ExecSyncRequest {
                container_id: container.id.clone(),
                cmd: vec!["sh".into(), "-c".into(), "echo in; exit 3".into()],
                timeout: 5,
            })
            .await?
            .into_inner();
        let streaming = client
            .exec(api::ExecRequest {
                container_id: container.id.clone(),
                cmd: vec!["true".into()],
                stdout: true,
                ..Default::default()
            })
            .await;
        anyhow::Ok((sync, streaming.err().map(|s| s.code())))
    })?;
    ensure!(
        exec_sync.exit_code == 3 && exec_sync.stdout == b"in\n",
        "ExecSync runs in the container: {exec_sync:?}"
    );
    ensure!(
        streaming == Some(tonic::Code::Unimplemented),
        "{streaming:?}"
    );

    // A stopped kubelet leaves the pods running, as with containerd.
    let etcd_pid = pid_of(node, "etcd")?.ok_or_else(|| anyhow!("etcd is not running"))?;
    node.systemctl(&["stop", "kubelet"])?
        .check("stop the kubelet")?;
    std::thread::sleep(Duration::from_secs(1));
    ensure!(pod_names(&ep)? == all, "pods went with the kubelet");
    ensure!(
        pid_of(node, "etcd")? == Some(etcd_pid.clone()),
        "etcd was restarted"
    );

    // A restarted runtime finds the containers it left running (containerd's KillMode=process).
    node.systemctl(&["restart", "containerd"])?
        .check("restart containerd")?;
    wait_until("the runtime back", Duration::from_secs(10), || {
        Ok(pod_names(&ep).is_ok_and(|p| p == all))
    })?;
    let (_, containers) = cri::scan(&ep)?;
    ensure!(
        containers.iter().filter(|c| c.running).count() == 4,
        "{containers:?}"
    );
    ensure!(
        pid_of(node, "etcd")? == Some(etcd_pid.clone()),
        "etcd was restarted"
    );

    // Removing a pod through the CRI (as reset does) stops its processes.
    let (sandboxes, containers) = scheduler_pod(&ep)?;
    let outcomes = cri::remove_all(&ep, &sandboxes, &containers, Duration::from_secs(10))?;
    ensure!(
        outcomes.len() == 2
            && outcomes
                .iter()
                .all(|o| matches!(o, kubestrap::host::inventory::Outcome::Removed(_))),
        "{outcomes:?}"
    );
    ensure!(
        pid_of(node, "kube-scheduler")?.is_none(),
        "the scheduler still runs"
    );
    ensure!(
        !pod_names(&ep)?
            .iter()
            .any(|p| p.ends_with("kube-scheduler-node1")),
        "its sandbox is listed"
    );

    // A started kubelet adopts the running pods and re-creates the one whose manifest exists.
    node.systemctl(&["start", "kubelet"])?
        .check("start the kubelet")?;
    wait_until("the scheduler back", Duration::from_secs(20), || {
        Ok(pid_of(node, "kube-scheduler")?.is_some() && pod_names(&ep)? == all)
    })
    .with_context(|| cluster.diagnostics())?;
    ensure!(
        pid_of(node, "etcd")? == Some(etcd_pid),
        "etcd was not adopted but restarted"
    );
    ensure!(
        node.service_log("kubelet")
            .contains("Adopted static pod kube-system/etcd"),
        "{}",
        node.service_log("kubelet")
    );

    // A container killed through the CRI is restarted by the running kubelet (its manifest exists).
    let (before, _) = container_by_pod(&ep, "kube-controller-manager-node1")?;
    runtime()?.block_on(async {
        cri::connect(&ep)
            .await?
            .stop_container(api::StopContainerRequest {
                container_id: before.id.clone(),
                timeout: 0,
            })
            .await?;
        anyhow::Ok(())
    })?;
    wait_until(
        "the controller-manager restarted",
        Duration::from_secs(15),
        || {
            Ok(container_by_pod(&ep, "kube-controller-manager-node1")
                .is_ok_and(|(c, _)| c.id != before.id && attempt(&c) == attempt(&before) + 1))
        },
    )
    .with_context(|| cluster.diagnostics())?;

    // A pod whose manifest is gone is killed by the kubelet and not started again.
    let manifest = node.read_file(SCHEDULER_MANIFEST)?;
    node.remove_file(SCHEDULER_MANIFEST)?;
    wait_until("the scheduler's pod gone", Duration::from_secs(40), || {
        Ok(scheduler_pod(&ep)?.0.is_empty() && pid_of(node, "kube-scheduler")?.is_none())
    })?;
    std::thread::sleep(Duration::from_secs(2));
    ensure!(
        scheduler_pod(&ep)?.0.is_empty(),
        "the scheduler came back without its manifest"
    );
    node.write_file(SCHEDULER_MANIFEST, &manifest, 0o600)?;
    wait_until(
        "the scheduler with its manifest back",
        Duration::from_secs(15),
        || {
            Ok(container_by_pod(&ep, "kube-scheduler-node1")
                .is_ok_and(|(c, _)| attempt(&c) == first_restarts))
        },
    )?;
    cluster.teardown()?;
    Ok(())
}

#[test]
fn preflight_finds_the_testbed_runtime() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
    let node = cluster.node("node1")?;
    let out = node.kubestrap(&["init", "phase", "preflight", "-o", "json"])?;
    let report: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("preflight -o json printed: {out:?}"))?;
    let check = |id: &str| -> Result<Value> {
        report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["id"] == id)
            .cloned()
            .ok_or_else(|| anyhow!("no {id} check in {report}"))
    };
    let cri_check = check("CRI")?;
    ensure!(
        cri_check["status"] == "pass"
            && cri_check["message"]
                .as_str()
                .is_some_and(|m| m.contains("testbed") && m.contains("containerd.sock")),
        "{cri_check}"
    );
    // The control-plane and add-on images are present; only those the testbed cannot run (etcd
    // of another minor than the installed one) fail to pull.
    let images = check("ImagePull")?;
    let message = images["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("etcd")
            && !message.contains("kube-apiserver")
            && !message.contains("coredns"),
        "{images}"
    );

    // `config images pull` goes through the same runtime: every image of a cluster with an etcd the
    // testbed runs (and no pod network: `--pod-network none` leaves out the addon's images) pulls, and
    // the default etcd (another minor) fails, naming the image.
    node.write_file(
        "/root/no-addons.yaml",
        b"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ndns:\n  disabled: true\nproxy:\n  disabled: true\netcd:\n  local:\n    imageTag: 3.4.23-0\n",
        0o600,
    )?;
    let pulled = node
        .kubestrap(&[
            "config",
            "images",
            "pull",
            "--config",
            "/root/no-addons.yaml",
            "--pod-network",
            "none",
        ])?
        .check("config images pull")?;
    ensure!(
        pulled
            .stdout
            .lines()
            .filter(|l| l.starts_with("[config/images] Pulled "))
            .count()
            == 5,
        "{pulled:?}"
    );
    let failed = node.kubestrap(&["config", "images", "pull"])?;
    ensure!(
        failed.code == 1
            && failed
                .stderr
                .contains("failed to pull image registry.k8s.io/etcd"),
        "{failed:?}"
    );
    cluster.teardown()?;
    Ok(())
}
