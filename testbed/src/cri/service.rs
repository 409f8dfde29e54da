//! The runtime double's RuntimeService: version and status, the runtime configuration (its cgroup
//! driver, from `SystemdCgroup` in /etc/containerd/config.toml as containerd 2 reports it), pod
//! sandboxes and containers (run, create, start, stop, remove, list with filters, status) over the
//! store. RPCs not listed here
//! answer `Unimplemented` (exec, attach, port-forward, stats, events, checkpoints, resource updates).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kubestrap::host::runtime::cri::api;
use tonic::{Request, Response, Status};

use super::images;
use super::server::runtime_service_server::RuntimeService;
use super::store::{ContainerRecord, MountRecord, Phase, SandboxRecord, Store, now_nanos};

/// The runtime's name in `Version` (and in the kubelet's container ids, `testbed://<id>`).
pub const RUNTIME_NAME: &str = "testbed";

#[derive(Clone)]
pub struct Runtime {
    pub store: Store,
    /// What `RuntimeConfig` answers, read once at start as containerd does.
    pub cgroup_driver: api::CgroupDriver,
}

/// containerd's configuration file.
pub const CONFIG: &str = "/etc/containerd/config.toml";

/// The driver a containerd configuration selects: `SystemdCgroup = true` → systemd; otherwise
/// (no file, no setting) containerd's default, cgroupfs.
pub fn cgroup_driver(config: Option<&str>) -> api::CgroupDriver {
    match config.and_then(kubestrap::kubelet::cgroup::systemd_cgroup_setting) {
        Some(true) => api::CgroupDriver::Systemd,
        _ => api::CgroupDriver::Cgroupfs,
    }
}

fn map(from: &HashMap<String, String>) -> BTreeMap<String, String> {
    from.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn hash_map(from: &BTreeMap<String, String>) -> HashMap<String, String> {
    from.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Whether every pair of a label selector is among the labels.
fn selected(selector: &HashMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// An id filter matches the id or a prefix of it, as containerd's truncated ids do.
fn id_matches(filter: &str, id: &str) -> bool {
    filter.is_empty() || id.starts_with(filter)
}

fn sandbox_state(s: &SandboxRecord) -> api::PodSandboxState {
    if s.ready {
        api::PodSandboxState::SandboxReady
    } else {
        api::PodSandboxState::SandboxNotready
    }
}

fn sandbox_metadata(s: &SandboxRecord) -> api::PodSandboxMetadata {
    api::PodSandboxMetadata {
        name: s.name.clone(),
        uid: s.uid.clone(),
        namespace: s.namespace.clone(),
        attempt: s.attempt,
    }
}

fn container_state(c: &ContainerRecord) -> api::ContainerState {
    match c.phase {
        Phase::Created => api::ContainerState::ContainerCreated,
        Phase::Running => api::ContainerState::ContainerRunning,
        Phase::Exited => api::ContainerState::ContainerExited,
    }
}

fn image_spec(c: &ContainerRecord) -> api::ImageSpec {
    api::ImageSpec {
        image: images::normalize(&c.image),
        user_specified_image: c.image.clone(),
        ..Default::default()
    }
}

pub fn container_status(c: &ContainerRecord) -> api::ContainerStatus {
    api::ContainerStatus {
        id: c.id.clone(),
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: c.attempt,
        }),
        state: container_state(c) as i32,
        created_at: c.created_at,
        started_at: c.started_at,
        finished_at: c.finished_at,
        exit_code: c.exit_code,
        image: Some(image_spec(c)),
        image_ref: images::image_id(&c.image),
        image_id: images::image_id(&c.image),
        reason: c.reason.clone(),
        message: c.message.clone(),
        labels: hash_map(&c.labels),
        annotations: hash_map(&c.annotations),
        mounts: c
            .mounts
            .iter()
            .map(|m| api::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.clone(),
                readonly: m.readonly,
                ..Default::default()
            })
            .collect(),
        log_path: c.log_path.clone(),
        ..Default::default()
    }
}

fn sandbox_record(config: api::PodSandboxConfig, runtime_handler: String) -> SandboxRecord {
    let metadata = config.metadata.unwrap_or_default();
    SandboxRecord {
        id: String::new(),
        name: metadata.name,
        uid: metadata.uid,
        namespace: metadata.namespace,
        attempt: metadata.attempt,
        hostname: config.hostname,
        log_directory: config.log_directory,
        labels: map(&config.labels),
        annotations: map(&config.annotations),
        runtime_handler,
        created_at: 0,
        ready: false,
    }
}

fn container_record(
    sandbox: &SandboxRecord,
    config: api::ContainerConfig,
) -> Result<ContainerRecord, Status> {
    let metadata = config
        .metadata
        .ok_or_else(|| Status::invalid_argument("container config must include metadata"))?;
    if metadata.name.is_empty() {
        return Err(Status::invalid_argument(
            "container metadata must include a name",
        ));
    }
    let image = config.image.map(|i| i.image).unwrap_or_default();
    images::binaries(&image).map_err(|_| {
        Status::not_found(format!(
            "failed to get image \"{image}\": image \"{}\": not found",
            images::normalize(&image)
        ))
    })?;
    let log_path = match (sandbox.log_directory.as_str(), config.log_path.as_str()) {
        (_, "") => String::new(),
        ("", relative) => relative.to_string(),
        (dir, relative) => std::path::Path::new(dir)
            .join(relative)
            .to_string_lossy()
            .into_owned(),
    };
    Ok(ContainerRecord {
        sandbox_id: sandbox.id.clone(),
        name: metadata.name,
        attempt: metadata.attempt,
        image,
        command: config.command,
        args: config.args,
        working_dir: config.working_dir,
        envs: config
            .envs
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect(),
        mounts: config
            .mounts
            .into_iter()
            .map(|m| MountRecord {
                container_path: m.container_path,
                host_path: m.host_path,
                readonly: m.readonly,
            })
            .collect(),
        labels: map(&config.labels),
        annotations: map(&config.annotations),
        log_path,
        ..Default::default()
    })
}

/// The NetworkReady condition: a CNI network configuration exists, as containerd's CRI plugin
/// reports once a CNI plugin has written one.
pub fn network_condition() -> api::RuntimeCondition {
    let ready = std::fs::read_dir("/etc/cni/net.d")
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.ends_with(".conf") || name.ends_with(".conflist") || name.ends_with(".json")
            })
        })
        .unwrap_or(false);
    api::RuntimeCondition {
        r#type: "NetworkReady".into(),
        status: ready,
        reason: if ready { "" } else { "NetworkPluginNotReady" }.into(),
        message: if ready {
            ""
        } else {
            "Network plugin returns error: cni plugin not initialized"
        }
        .into(),
    }
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn runtime_config(
        &self,
        _request: Request<api::RuntimeConfigRequest>,
    ) -> Result<Response<api::RuntimeConfigResponse>, Status> {
        Ok(Response::new(api::RuntimeConfigResponse {
            linux: Some(api::LinuxRuntimeConfiguration {
                cgroup_driver: self.cgroup_driver as i32,
            }),
        }))
    }

    async fn version(
        &self,
        _request: Request<api::VersionRequest>,
    ) -> Result<Response<api::VersionResponse>, Status> {
        Ok(Response::new(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn status(
        &self,
        _request: Request<api::StatusRequest>,
    ) -> Result<Response<api::StatusResponse>, Status> {
        Ok(Response::new(api::StatusResponse {
            status: Some(api::RuntimeStatus {
                conditions: vec![
                    api::RuntimeCondition {
                        r#type: "RuntimeReady".into(),
                        status: true,
                        ..Default::default()
                    },
                    network_condition(),
                ],
            }),
            ..Default::default()
        }))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<api::RunPodSandboxRequest>,
    ) -> Result<Response<api::RunPodSandboxResponse>, Status> {
        let request = request.into_inner();
        let config = request
            .config
            .ok_or_else(|| Status::invalid_argument("sandbox config is required"))?;
        if config.metadata.as_ref().is_none_or(|m| m.name.is_empty()) {
            return Err(Status::invalid_argument(
                "sandbox config must include metadata with a name",
            ));
        }
        let id = self
            .store
            .add_sandbox(sandbox_record(config, request.runtime_handler))?;
        Ok(Response::new(api::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<api::StopPodSandboxRequest>,
    ) -> Result<Response<api::StopPodSandboxResponse>, Status> {
        self.store
            .stop_sandbox(&request.into_inner().pod_sandbox_id)
            .await?;
        Ok(Response::new(api::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<api::RemovePodSandboxRequest>,
    ) -> Result<Response<api::RemovePodSandboxResponse>, Status> {
        self.store
            .remove_sandbox(&request.into_inner().pod_sandbox_id)
            .await?;
        Ok(Response::new(api::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<api::PodSandboxStatusRequest>,
    ) -> Result<Response<api::PodSandboxStatusResponse>, Status> {
        let s = self.store.sandbox(&request.into_inner().pod_sandbox_id)?;
        let node = api::NamespaceMode::Node as i32;
        Ok(Response::new(api::PodSandboxStatusResponse {
            status: Some(api::PodSandboxStatus {
                id: s.id.clone(),
                metadata: Some(sandbox_metadata(&s)),
                state: sandbox_state(&s) as i32,
                created_at: s.created_at,
                // Every testbed pod uses the node's network: the kubelet reports the node's address.
                network: Some(api::PodSandboxNetworkStatus::default()),
                linux: Some(api::LinuxPodSandboxStatus {
                    namespaces: Some(api::Namespace {
                        options: Some(api::NamespaceOption {
                            network: node,
                            pid: node,
                            ipc: node,
                            ..Default::default()
                        }),
                    }),
                }),
                labels: hash_map(&s.labels),
                annotations: hash_map(&s.annotations),
                runtime_handler: s.runtime_handler.clone(),
            }),
            timestamp: now_nanos(),
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<api::ListPodSandboxRequest>,
    ) -> Result<Response<api::ListPodSandboxResponse>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let items = self
            .store
            .sandboxes()?
            .iter()
            .filter(|s| id_matches(&filter.id, &s.id))
            .filter(|s| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|v| v.state == sandbox_state(s) as i32)
            })
            .filter(|s| selected(&filter.label_selector, &s.labels))
            .map(|s| api::PodSandbox {
                id: s.id.clone(),
                metadata: Some(sandbox_metadata(s)),
                state: sandbox_state(s) as i32,
                created_at: s.created_at,
                labels: hash_map(&s.labels),
                annotations: hash_map(&s.annotations),
                runtime_handler: s.runtime_handler.clone(),
            })
            .collect();
        Ok(Response::new(api::ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        request: Request<api::CreateContainerRequest>,
    ) -> Result<Response<api::CreateContainerResponse>, Status> {
        let request = request.into_inner();
        let sandbox = self.store.sandbox(&request.pod_sandbox_id)?;
        let config = request
            .config
            .ok_or_else(|| Status::invalid_argument("container config is required"))?;
        let id = self
            .store
            .add_container(container_record(&sandbox, config)?)?;
        Ok(Response::new(api::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        request: Request<api::StartContainerRequest>,
    ) -> Result<Response<api::StartContainerResponse>, Status> {
        self.store.start(&request.into_inner().container_id)?;
        Ok(Response::new(api::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<api::StopContainerRequest>,
    ) -> Result<Response<api::StopContainerResponse>, Status> {
        let request = request.into_inner();
        let timeout = Duration::from_secs(u64::try_from(request.timeout).unwrap_or(0));
        self.store.stop(&request.container_id, timeout).await?;
        Ok(Response::new(api::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<api::RemoveContainerRequest>,
    ) -> Result<Response<api::RemoveContainerResponse>, Status> {
        self.store
            .remove_container(&request.into_inner().container_id)
            .await?;
        Ok(Response::new(api::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<api::ListContainersRequest>,
    ) -> Result<Response<api::ListContainersResponse>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let containers = self
            .store
            .containers()?
            .iter()
            .filter(|c| id_matches(&filter.id, &c.id))
            .filter(|c| id_matches(&filter.pod_sandbox_id, &c.sandbox_id))
            .filter(|c| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|v| v.state == container_state(c) as i32)
            })
            .filter(|c| selected(&filter.label_selector, &c.labels))
            .map(|c| api::Container {
                id: c.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: Some(api::ContainerMetadata {
                    name: c.name.clone(),
                    attempt: c.attempt,
                }),
                image: Some(image_spec(c)),
                image_ref: images::image_id(&c.image),
                image_id: images::image_id(&c.image),
                state: container_state(c) as i32,
                created_at: c.created_at,
                labels: hash_map(&c.labels),
                annotations: hash_map(&c.annotations),
            })
            .collect();
        Ok(Response::new(api::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        request: Request<api::ContainerStatusRequest>,
    ) -> Result<Response<api::ContainerStatusResponse>, Status> {
        let c = self.store.container(&request.into_inner().container_id)?;
        Ok(Response::new(api::ContainerStatusResponse {
            status: Some(container_status(&c)),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_driver_is_containerds_setting_or_its_default() {
        assert_eq!(
            cgroup_driver(Some(crate::driver::image::CONTAINERD_CONFIG)),
            api::CgroupDriver::Systemd
        );
        assert_eq!(
            cgroup_driver(Some("[x]\n  SystemdCgroup = false\n")),
            api::CgroupDriver::Cgroupfs
        );
        assert_eq!(cgroup_driver(None), api::CgroupDriver::Cgroupfs);
    }

    #[test]
    fn filters_select_by_id_prefix_and_labels() {
        assert!(id_matches("", "abc"));
        assert!(id_matches("ab", "abc"));
        assert!(!id_matches("b", "abc"));
        let labels: BTreeMap<String, String> = [
            (
                "io.kubernetes.pod.name".to_string(),
                "etcd-node1".to_string(),
            ),
            ("tier".to_string(), "control-plane".to_string()),
        ]
        .into();
        let want = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(selected(&want(&[]), &labels));
        assert!(selected(&want(&[("tier", "control-plane")]), &labels));
        assert!(!selected(&want(&[("tier", "node")]), &labels));
        assert!(!selected(&want(&[("missing", "x")]), &labels));
    }

    #[test]
    fn containers_need_a_present_image_and_log_under_the_sandbox() {
        let sandbox = sandbox_record(
            api::PodSandboxConfig {
                metadata: Some(api::PodSandboxMetadata {
                    name: "kube-scheduler-node1".into(),
                    uid: "u1".into(),
                    namespace: "kube-system".into(),
                    attempt: 0,
                }),
                log_directory: "/var/log/pods/kube-system_kube-scheduler-node1_u1".into(),
                ..Default::default()
            },
            String::new(),
        );
        let config = |image: &str| api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: "kube-scheduler".into(),
                attempt: 2,
            }),
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            log_path: "kube-scheduler/2.log".into(),
            ..Default::default()
        };
        let record =
            container_record(&sandbox, config("registry.k8s.io/kube-scheduler:v1.34.3")).unwrap();
        assert_eq!(
            record.log_path,
            "/var/log/pods/kube-system_kube-scheduler-node1_u1/kube-scheduler/2.log"
        );
        assert_eq!(record.attempt, 2);
        let missing = container_record(&sandbox, config("registry.k8s.io/coredns/coredns:v1.12.1"))
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
    }
}
