//! The Docker Engine API (through bollard): facts for preflight (`info`: cgroup driver, log driver),
//! and the teardown of Kubernetes' containers only — named `k8s_*` or labelled `io.kubernetes.*`.

use std::time::Duration;

use anyhow::Context;
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;

use super::{PARALLEL_STOPS, block_on};
use crate::host::Facts;
use crate::host::inventory::{Found, Kind, Outcome, Owner};

/// What preflight needs from `docker info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerInfo {
    pub cgroup_driver: String,
    pub cgroup_version: String,
    pub logging_driver: String,
    pub server_version: String,
}

/// A container as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerContainer {
    pub id: String,
    /// The first name, without the leading `/`.
    pub name: String,
    pub labels: Vec<String>,
    pub running: bool,
}

async fn connect() -> anyhow::Result<Docker> {
    // DOCKER_HOST or the default socket; the version is negotiated down to what the engine speaks.
    let docker = Docker::connect_with_unix_defaults().context("connecting to the Docker engine")?;
    docker
        .negotiate_version()
        .await
        .context("negotiating the Docker API version (is the engine running?)")
}

pub fn info() -> anyhow::Result<DockerInfo> {
    block_on(async {
        let docker = connect().await?;
        let info = docker.info().await.context("docker info")?;
        Ok(DockerInfo {
            cgroup_driver: info
                .cgroup_driver
                .map(|d| d.to_string())
                .unwrap_or_default(),
            cgroup_version: info
                .cgroup_version
                .map(|v| v.to_string())
                .unwrap_or_default(),
            logging_driver: info.logging_driver.unwrap_or_default(),
            server_version: info.server_version.unwrap_or_default(),
        })
    })?
}

/// The json-file log driver's `max-size` from the engine's daemon.json (`log-opts`), if set. The
/// file is the host's (a host fact, not state under `--root`).
pub fn log_max_size(facts: &Facts) -> anyhow::Result<Option<String>> {
    let path = "/etc/docker/daemon.json";
    let Some(bytes) = facts.read_host_file(path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    Ok(value
        .get("log-opts")
        .and_then(|o| o.get("max-size"))
        .and_then(|v| v.as_str())
        .map(str::to_string))
}

/// Every container (running or not).
pub fn scan() -> anyhow::Result<Vec<DockerContainer>> {
    block_on(async {
        let docker = connect().await?;
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .context("listing Docker containers")?;
        Ok(list
            .into_iter()
            .map(|c| DockerContainer {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                labels: c
                    .labels
                    .map(|l| l.into_keys().collect())
                    .unwrap_or_default(),
                running: c.state.is_some_and(|s| s.to_string() == "running"),
            })
            .collect())
    })?
}

/// Kubernetes' containers by the dockershim/cri-dockerd conventions; all others are someone else's.
pub fn attribute(c: &DockerContainer) -> Found {
    let ours =
        c.name.starts_with("k8s_") || c.labels.iter().any(|l| l.starts_with("io.kubernetes."));
    let owner = if ours {
        Owner::Kubernetes
    } else {
        Owner::Foreign("Docker (not a Kubernetes container)")
    };
    Found::new(
        Kind::Container,
        format!("docker:{} {}", short(&c.id), c.name),
        owner,
    )
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Stops (TERM, KILL after `grace`) and removes the given containers; foreign ones are kept.
pub fn remove(containers: &[DockerContainer], grace: Duration) -> anyhow::Result<Vec<Outcome>> {
    block_on(async {
        let docker = connect().await?;
        let grace_secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        Ok(futures_util::stream::iter(containers.iter().cloned())
            .map(|c| {
                let docker = docker.clone();
                async move {
                    let found = attribute(&c);
                    if !found.owner.is_cluster() {
                        return found.kept_foreign();
                    }
                    if c.running
                        && let Err(e) = docker
                            .stop_container(
                                &c.id,
                                Some(StopContainerOptions {
                                    t: Some(grace_secs),
                                    signal: None,
                                }),
                            )
                            .await
                        && !is_not_found(&e)
                    {
                        return found.left(format!("docker stop: {e}"), false);
                    }
                    match docker
                        .remove_container(
                            &c.id,
                            Some(RemoveContainerOptions {
                                force: true,
                                ..Default::default()
                            }),
                        )
                        .await
                    {
                        Ok(()) => found.removed(),
                        Err(e) if is_not_found(&e) => found.removed(),
                        Err(e) => found.left(format!("docker rm: {e}"), false),
                    }
                }
            })
            .buffer_unordered(PARALLEL_STOPS)
            .collect()
            .await)
    })?
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubernetes_containers_are_ours() {
        let k8s = DockerContainer {
            id: "0123456789abcdef".into(),
            name: "k8s_POD_x".into(),
            labels: vec![],
            running: true,
        };
        let labelled = DockerContainer {
            id: "1".into(),
            name: "x".into(),
            labels: vec!["io.kubernetes.pod.name".into()],
            running: false,
        };
        let user = DockerContainer {
            id: "2".into(),
            name: "web".into(),
            labels: vec!["com.example".into()],
            running: true,
        };
        assert_eq!(attribute(&k8s).target, "docker:0123456789ab k8s_POD_x");
        assert!(attribute(&k8s).owner.is_cluster());
        assert!(attribute(&labelled).owner.is_cluster());
        assert!(!attribute(&user).owner.is_cluster());
    }

    #[test]
    fn reads_log_max_size_from_daemon_json() {
        let dir = tempfile::tempdir().unwrap();
        let facts = Facts::default().with_host_files_root(dir.path());
        assert_eq!(log_max_size(&facts).unwrap(), None);
        std::fs::create_dir_all(dir.path().join("etc/docker")).unwrap();
        std::fs::write(
            dir.path().join("etc/docker/daemon.json"),
            r#"{"log-driver":"json-file","log-opts":{"max-size":"100m"}}"#,
        )
        .unwrap();
        assert_eq!(log_max_size(&facts).unwrap().as_deref(), Some("100m"));
    }
}
