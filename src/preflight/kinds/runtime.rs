//! Container-runtime checks, through the host's runtime clients: the CRI socket answers, the
//! control-plane images are there (or pulled), and the runtime's cgroup driver and log rotation
//! suit the kubelet (Docker through its API, containerd through its configuration).

use std::time::Duration;

use super::super::Outcome;
use super::super::context::Probe;
use crate::host::runtime::{cri, docker};
use crate::kubelet::cgroup;

/// `CRI`: the runtime answers `Version` on the CRI socket.
pub fn cri_answers(probe: &Probe) -> anyhow::Result<Outcome> {
    let endpoint = &probe.node.node.cri_socket;
    Ok(match cri::version(endpoint) {
        Ok(v) => Outcome::Pass(format!(
            "{} {} answers on {endpoint} (CRI {})",
            v.runtime_name, v.runtime_version, v.runtime_api_version
        )),
        Err(e) => Outcome::Fail(format!(
            "container runtime is not running: {}",
            crate::error::describe(&e)
        )),
    })
}

/// `ImagePull`: every image the control plane needs is in the runtime, or is pulled now
/// (`imagePullPolicy`: `Never` only looks, `Always` pulls every image).
pub fn images(probe: &Probe, pull_timeout_secs: u64) -> anyhow::Result<Outcome> {
    let node = probe.node;
    if node.images.is_empty() {
        return Ok(Outcome::Skip(
            "the images are the cluster's, known after discovery".to_string(),
        ));
    }
    let endpoint = &node.node.cri_socket;
    let present = match cri::images_present(endpoint, &node.images) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Outcome::Skip(format!(
                "not checked: the container runtime does not answer (see the CRI check): {e:#}"
            )));
        }
    };
    let policy = node.node.image_pull_policy.as_str();
    let wanted: Vec<&String> = present
        .iter()
        .filter(|(_, here)| policy == "Always" || !here)
        .map(|(image, _)| image)
        .collect();
    if wanted.is_empty() {
        return Ok(Outcome::Pass(format!(
            "all {} images are present",
            present.len()
        )));
    }
    let list: Vec<&str> = wanted.iter().map(|s| s.as_str()).collect();
    if policy == "Never" {
        return Ok(Outcome::Fail(format!(
            "images missing and imagePullPolicy is Never: {}",
            list.join(", ")
        )));
    }
    if probe.host.dry_run() {
        return Ok(Outcome::Warn(format!(
            "would pull (dry run): {}",
            list.join(", ")
        )));
    }
    let ui = probe.host.ui();
    ui.line("[preflight] Pulling images required for setting up a Kubernetes cluster");
    ui.line(
        "[preflight] This might take a minute or two, depending on the speed of your internet connection",
    );
    let timeout = Duration::from_secs(pull_timeout_secs);
    let failures: Vec<String> = wanted
        .iter()
        .filter_map(|image| {
            cri::pull_image(endpoint, image, timeout)
                .err()
                .map(|e| format!("failed to pull image {image}: {e:#}"))
        })
        .collect();
    Ok(if failures.is_empty() {
        Outcome::Pass(format!("pulled {}", list.join(", ")))
    } else {
        Outcome::Fail(failures.join("; "))
    })
}

/// `docker info` through the Docker API, or the failure that names what could not be read.
fn engine_info(what: &str) -> Result<docker::DockerInfo, Outcome> {
    docker::info()
        .map_err(|e| Outcome::Fail(format!("cannot read the Docker engine's {what}: {e:#}")))
}

/// `DockerCgroupDriver`: the Docker engine's cgroup driver is the kubelet's.
pub fn docker_cgroup_driver(probe: &Probe) -> anyhow::Result<Outcome> {
    let info = match engine_info("cgroup driver") {
        Ok(i) => i,
        Err(unreachable) => return Ok(unreachable),
    };
    let kubelet = &super::kubelet::chosen_driver(probe).kubelet.name;
    let engine = &info.cgroup_driver;
    Ok(if engine == kubelet {
        Outcome::Pass(format!(
            "the Docker engine {} and the kubelet both use the {engine} cgroup driver",
            info.server_version
        ))
    } else if probe.node.runtime_is_docker() {
        Outcome::Fail(format!(
            "detected \"{engine}\" as the Docker cgroup driver, but the kubelet uses \"{kubelet}\": the kubelet \
             cannot run pods through cri-dockerd with different drivers"
        ))
    } else {
        Outcome::Warn(format!(
            "the Docker engine uses the \"{engine}\" cgroup driver and the kubelet \"{kubelet}\": Docker is not the \
             kubelet's runtime here, but two managers of one cgroup tree become unstable under resource pressure"
        ))
    })
}

/// `DockerLogRotation`: the engine's json-file log driver has a `max-size`.
pub fn docker_log_rotation(probe: &Probe) -> anyhow::Result<Outcome> {
    let info = match engine_info("log driver") {
        Ok(i) => i,
        Err(unreachable) => return Ok(unreachable),
    };
    Ok(match info.logging_driver.as_str() {
        "json-file" => match docker::log_max_size(probe.facts())? {
            Some(size) => Outcome::Pass(format!(
                "the json-file log driver rotates at max-size {size}"
            )),
            None => Outcome::Fail(
                "the Docker engine logs containers with the json-file driver and no max-size \
                 (log-opts in /etc/docker/daemon.json): container logs grow until the disk is full"
                    .to_string(),
            ),
        },
        "local" => Outcome::Pass("the local log driver rotates logs by default".to_string()),
        other => Outcome::Pass(format!(
            "the {other} log driver keeps no growing files under /var/lib/docker"
        )),
    })
}

/// `ContainerdCgroupDriver`: containerd runs containers with the kubelet's cgroup driver.
pub fn containerd_cgroup_driver(probe: &Probe) -> anyhow::Result<Outcome> {
    if !probe.node.node.cri_socket.contains("containerd") {
        return Ok(Outcome::Skip(format!(
            "the runtime at {} is not containerd",
            probe.node.node.cri_socket
        )));
    }
    let found = cgroup::containerd_driver(probe.facts())?;
    let containerd = found.name.as_str();
    let source = found.source.describe();
    let kubelet = &super::kubelet::chosen_driver(probe).kubelet.name;
    Ok(if containerd == kubelet {
        Outcome::Pass(format!(
            "containerd and the kubelet both use the {containerd} cgroup driver ({source})"
        ))
    } else {
        Outcome::Fail(format!(
            "containerd uses the {containerd} cgroup driver ({source}) but the kubelet uses {kubelet}: \
             pods would fail to start"
        ))
    })
}
