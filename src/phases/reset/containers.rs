//! `cleanup-node/containers`: Kubernetes' containers through the CRI socket (every pod sandbox; running
//! containers get TERM, then KILL after the grace period, before their sandbox is stopped so CNI DEL runs)
//! and through the Docker Engine API (`k8s_*` / `io.kubernetes.*` only).

use std::path::Path;

use super::ResetData;
use crate::host::inventory::{Found, Kind, Owner};
use crate::host::runtime::{DEFAULT_GRACE, cri, docker, socket_path};
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf(
        "containers",
        "Remove Kubernetes' containers (CRI and Docker)",
        run,
    )
}

/// The Docker socket named by DOCKER_HOST, else the default.
fn docker_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| h.starts_with("unix://"))
        .map(|h| h.trim_start_matches("unix://").to_string())
        .unwrap_or_else(|| "/var/run/docker.sock".to_string())
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Removing Kubernetes-managed containers");
    let endpoint = data.settings.cri_socket.clone();
    if Path::new(socket_path(&endpoint)).exists() {
        match cri::scan(&endpoint) {
            Ok((sandboxes, containers)) => {
                if data.dry_run() {
                    for c in &containers {
                        data.plan(cri::attribute_container(c).item("made by Kubernetes"));
                    }
                    for s in &sandboxes {
                        data.plan(cri::attribute_sandbox(s).item("made by Kubernetes"));
                    }
                } else {
                    match cri::remove_all(&endpoint, &sandboxes, &containers, DEFAULT_GRACE) {
                        Ok(outcomes) => data.record(outcomes),
                        Err(e) => data.step_failed(
                            Found::new(
                                Kind::Container,
                                format!("cri:{endpoint}"),
                                Owner::Kubernetes,
                            ),
                            &e,
                        ),
                    }
                }
            }
            Err(e) => data.step_failed(
                Found::new(
                    Kind::Container,
                    format!("cri:{endpoint}"),
                    Owner::Kubernetes,
                ),
                &e,
            ),
        }
    } else {
        data.host
            .ui()
            .debug(1, format!("[reset] no CRI socket at {endpoint}"));
    }
    if Path::new(&docker_socket()).exists() {
        match docker::scan() {
            Ok(all) => {
                let ours: Vec<_> = all
                    .into_iter()
                    .filter(|c| docker::attribute(c).owner.is_cluster())
                    .collect();
                if data.dry_run() {
                    for c in &ours {
                        data.plan(docker::attribute(c).item("made by Kubernetes"));
                    }
                } else if !ours.is_empty() {
                    match docker::remove(&ours, DEFAULT_GRACE) {
                        Ok(outcomes) => data.record(outcomes),
                        Err(e) => data.step_failed(
                            Found::new(Kind::Container, "docker", Owner::Kubernetes),
                            &e,
                        ),
                    }
                }
            }
            Err(e) => data
                .host
                .ui()
                .warn(format!("[reset] Docker engine did not answer: {e:#}")),
        }
    }
    Ok(())
}
