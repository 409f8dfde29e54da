//! A CRI (k8s.io/cri-api runtime.v1) client over a unix socket: `Version` (does the socket answer?),
//! image presence and pulls (for preflight), and the teardown of every pod: containers get TERM then
//! KILL after the grace period, then each sandbox is stopped (so the runtime runs CNI DEL and frees
//! the pod's IP) and removed.

use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::{PARALLEL_STOPS, block_on, socket_path};
use crate::host::inventory::{Found, Kind, Outcome, Owner};

#[allow(clippy::all, missing_docs)]
pub mod api {
    tonic::include_proto!("runtime.v1");
}

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;

/// What the runtime says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersion {
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_api_version: String,
}

/// A pod sandbox as the CRI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub id: String,
    pub namespace: String,
    pub name: String,
}

/// A container as the CRI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub running: bool,
}

/// A gRPC channel over the unix socket; each request may take up to `request_timeout`.
async fn channel(endpoint: &str, request_timeout: Duration) -> anyhow::Result<Channel> {
    let path = socket_path(endpoint).to_string();
    let shown = path.clone();
    Endpoint::try_from("http://[::]:50051")?
        .connect_timeout(Duration::from_secs(5))
        .timeout(request_timeout)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .with_context(|| format!("connecting to the CRI socket {shown}"))
}

/// Connects to a CRI endpoint (`unix:///path` or a path).
pub async fn connect(endpoint: &str) -> anyhow::Result<RuntimeServiceClient<Channel>> {
    Ok(RuntimeServiceClient::new(
        channel(endpoint, Duration::from_secs(60)).await?,
    ))
}

fn image_spec(image: &str) -> Option<api::ImageSpec> {
    Some(api::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

/// Whether each image is present in the runtime's store (`ImageStatus`), in the order given.
pub fn images_present(endpoint: &str, images: &[String]) -> anyhow::Result<Vec<(String, bool)>> {
    block_on(async {
        let mut client = ImageServiceClient::new(channel(endpoint, Duration::from_secs(60)).await?);
        let mut out = Vec::new();
        for image in images {
            let status = client
                .image_status(api::ImageStatusRequest {
                    image: image_spec(image),
                    verbose: false,
                })
                .await
                .with_context(|| format!("CRI ImageStatus {image}"))?
                .into_inner();
            out.push((image.clone(), status.image.is_some()));
        }
        Ok(out)
    })?
}

/// Pulls an image through the runtime (`PullImage`); returns the image reference it reports.
pub fn pull_image(endpoint: &str, image: &str, timeout: Duration) -> anyhow::Result<String> {
    block_on(async {
        let mut client = ImageServiceClient::new(channel(endpoint, timeout).await?);
        let pulled = client
            .pull_image(api::PullImageRequest {
                image: image_spec(image),
                ..Default::default()
            })
            .await
            .map_err(|status| anyhow::anyhow!("{}", status.message()))
            .with_context(|| format!("pulling {image}"))?
            .into_inner();
        Ok(pulled.image_ref)
    })?
}

/// Asks the runtime for its version: the "CRI socket answers" check.
pub fn version(endpoint: &str) -> anyhow::Result<RuntimeVersion> {
    block_on(async {
        let mut client = connect(endpoint).await?;
        let v = client
            .version(api::VersionRequest {
                version: "v1".into(),
            })
            .await
            .with_context(|| format!("CRI Version on {endpoint}"))?
            .into_inner();
        Ok(RuntimeVersion {
            runtime_name: v.runtime_name,
            runtime_version: v.runtime_version,
            runtime_api_version: v.runtime_api_version,
        })
    })?
}

/// The cgroup driver the runtime runs containers with (`RuntimeConfig`, containerd 2.0 and later,
/// CRI-O 1.31 and later): `Ok(None)` when the runtime does not implement the call.
pub fn cgroup_driver(endpoint: &str) -> anyhow::Result<Option<&'static str>> {
    block_on(async {
        let mut client =
            RuntimeServiceClient::new(channel(endpoint, Duration::from_secs(10)).await?);
        match client.runtime_config(api::RuntimeConfigRequest {}).await {
            Ok(reply) => {
                let linux = reply.into_inner().linux.unwrap_or_default();
                Ok(Some(
                    match api::CgroupDriver::try_from(linux.cgroup_driver) {
                        Ok(api::CgroupDriver::Cgroupfs) => "cgroupfs",
                        _ => "systemd",
                    },
                ))
            }
            Err(status) if status.code() == tonic::Code::Unimplemented => Ok(None),
            Err(status) => Err(anyhow::anyhow!("{}", status.message()))
                .with_context(|| format!("CRI RuntimeConfig on {endpoint}")),
        }
    })?
}

/// Where the runtime writes the log of the newest container `container` of pod `pod` (the kubelet's
/// `io.kubernetes.*` labels), and the container's state; `Ok(None)` when there is no such container.
pub fn container_log(
    endpoint: &str,
    namespace: &str,
    pod: &str,
    container: &str,
) -> anyhow::Result<Option<(String, String)>> {
    block_on(async {
        let mut client =
            RuntimeServiceClient::new(channel(endpoint, Duration::from_secs(10)).await?);
        let selector = [
            ("io.kubernetes.pod.namespace", namespace),
            ("io.kubernetes.pod.name", pod),
            ("io.kubernetes.container.name", container),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let listed = client
            .list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    label_selector: selector,
                    ..Default::default()
                }),
            })
            .await
            .context("CRI ListContainers")?
            .into_inner()
            .containers;
        let Some(newest) = listed.into_iter().max_by_key(|c| c.created_at) else {
            return Ok(None);
        };
        let status = client
            .container_status(api::ContainerStatusRequest {
                container_id: newest.id.clone(),
                verbose: false,
            })
            .await
            .context("CRI ContainerStatus")?
            .into_inner()
            .status
            .unwrap_or_default();
        let state = match api::ContainerState::try_from(status.state) {
            Ok(api::ContainerState::ContainerRunning) => "running".to_string(),
            Ok(api::ContainerState::ContainerExited) => {
                format!("exited with code {}", status.exit_code)
            }
            Ok(api::ContainerState::ContainerCreated) => "created, not started".to_string(),
            _ => "in an unknown state".to_string(),
        };
        Ok(Some((status.log_path, state)))
    })?
}

/// Every pod sandbox and container the runtime has.
pub fn scan(endpoint: &str) -> anyhow::Result<(Vec<Sandbox>, Vec<Container>)> {
    block_on(async {
        let mut client = connect(endpoint).await?;
        let sandboxes = client
            .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
            .await
            .context("CRI ListPodSandbox")?
            .into_inner()
            .items
            .into_iter()
            .map(|s| {
                let meta = s.metadata.unwrap_or_default();
                Sandbox {
                    id: s.id,
                    namespace: meta.namespace,
                    name: meta.name,
                }
            })
            .collect();
        let containers = client
            .list_containers(api::ListContainersRequest { filter: None })
            .await
            .context("CRI ListContainers")?
            .into_inner()
            .containers
            .into_iter()
            .map(|c| Container {
                running: c.state == api::ContainerState::ContainerRunning as i32,
                name: c.metadata.unwrap_or_default().name,
                id: c.id,
                sandbox_id: c.pod_sandbox_id,
            })
            .collect();
        Ok((sandboxes, containers))
    })?
}

/// Every CRI pod is the kubelet's.
pub fn attribute_sandbox(s: &Sandbox) -> Found {
    Found::new(
        Kind::Container,
        format!("cri:{} {}/{}", s.id, s.namespace, s.name),
        Owner::Kubernetes,
    )
}

pub fn attribute_container(c: &Container) -> Found {
    Found::new(
        Kind::Container,
        format!("cri:{} {}", c.id, c.name),
        Owner::Kubernetes,
    )
}

/// Stops running containers (TERM, then KILL after `grace`), then stops and removes every sandbox.
pub fn remove_all(
    endpoint: &str,
    sandboxes: &[Sandbox],
    containers: &[Container],
    grace: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    block_on(async {
        let client = connect(endpoint).await?;
        let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let mut outcomes: Vec<Outcome> = futures_util::stream::iter(containers.iter().cloned())
            .map(|c| {
                let mut client = client.clone();
                async move {
                    let found = attribute_container(&c);
                    if c.running
                        && let Err(status) = client
                            .stop_container(api::StopContainerRequest {
                                container_id: c.id.clone(),
                                timeout: grace_secs,
                            })
                            .await
                        && status.code() != tonic::Code::NotFound
                    {
                        return found
                            .left(format!("CRI StopContainer: {}", status.message()), false);
                    }
                    match client
                        .remove_container(api::RemoveContainerRequest {
                            container_id: c.id.clone(),
                        })
                        .await
                    {
                        Ok(_) => found.removed(),
                        Err(s) if s.code() == tonic::Code::NotFound => found.removed(),
                        Err(s) => {
                            found.left(format!("CRI RemoveContainer: {}", s.message()), false)
                        }
                    }
                }
            })
            .buffer_unordered(PARALLEL_STOPS)
            .collect()
            .await;
        let sandbox_outcomes: Vec<Outcome> = futures_util::stream::iter(sandboxes.iter().cloned())
            .map(|s| {
                let mut client = client.clone();
                async move {
                    let found = attribute_sandbox(&s);
                    if let Err(status) = client
                        .stop_pod_sandbox(api::StopPodSandboxRequest {
                            pod_sandbox_id: s.id.clone(),
                        })
                        .await
                        && status.code() != tonic::Code::NotFound
                    {
                        return found
                            .left(format!("CRI StopPodSandbox: {}", status.message()), false);
                    }
                    match client
                        .remove_pod_sandbox(api::RemovePodSandboxRequest {
                            pod_sandbox_id: s.id.clone(),
                        })
                        .await
                    {
                        Ok(_) => found.removed(),
                        Err(st) if st.code() == tonic::Code::NotFound => found.removed(),
                        Err(st) => {
                            found.left(format!("CRI RemovePodSandbox: {}", st.message()), false)
                        }
                    }
                }
            })
            .buffer_unordered(PARALLEL_STOPS)
            .collect()
            .await;
        outcomes.extend(sandbox_outcomes);
        Ok(outcomes)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_that_does_not_answer_is_an_error_naming_it() {
        let err = version("unix:///nonexistent/kubestrap-test.sock").unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/kubestrap-test.sock"),
            "{err:#}"
        );
    }

    #[test]
    fn report_targets_name_the_runtime_and_the_pod() {
        let s = Sandbox {
            id: "abc".into(),
            namespace: "kube-system".into(),
            name: "etcd-node1".into(),
        };
        assert_eq!(
            attribute_sandbox(&s).target,
            "cri:abc kube-system/etcd-node1"
        );
    }
}
