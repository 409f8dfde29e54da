//! The kubelet double's side of the CRI: a client of the node's container runtime (kubestrap's own
//! client, reconnected when the runtime was down), blocking calls for the pod workers, the runtime's
//! health for the Node's Ready condition, and the translation of a static pod into the sandbox and
//! container configs the real kubelet sends (metadata, `io.kubernetes.*` labels and annotations,
//! log paths under /var/log/pods, hostPath and emptyDir volumes as mounts).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use kubestrap::host::runtime::cri::{self, api};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;
use tonic::Status;
use tonic::transport::Channel;

use crate::logf;
use api::runtime_service_client::RuntimeServiceClient;

const COMPONENT: &str = "kubelet";

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";

/// What the runtime last said about itself (for the Node's Ready condition).
#[derive(Debug, Clone, Default)]
pub struct RuntimeHealth {
    pub reachable: bool,
    /// `<name>://<version>`, as the Node's `containerRuntimeVersion`.
    pub version: String,
    pub network_ready: bool,
    pub network_reason: String,
    pub network_message: String,
}

/// The pods and containers the runtime has, as one relist (the kubelet's PLEG).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub sandboxes: Vec<api::PodSandbox>,
    pub containers: Vec<api::Container>,
}

impl Snapshot {
    pub fn sandbox_ready(&self, id: &str) -> bool {
        self.sandboxes
            .iter()
            .any(|s| s.id == id && s.state == api::PodSandboxState::SandboxReady as i32)
    }

    pub fn container_state(&self, id: &str) -> Option<api::ContainerState> {
        self.containers
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| api::ContainerState::try_from(c.state).ok())
    }

    pub fn containers_of<'a>(
        &'a self,
        sandbox: &'a str,
    ) -> impl Iterator<Item = &'a api::Container> {
        self.containers
            .iter()
            .filter(move |c| c.pod_sandbox_id == sandbox)
    }
}

/// A connection to the runtime at `endpoint`, made on first use and again after a failure.
///
/// The connection lives on an async runtime of its own: the pod workers call the CRI while holding
/// the pods lock, which the kubelet's other tasks take too, so the gRPC connection must never wait
/// for a worker thread of the kubelet's runtime that is blocked on that lock.
#[derive(Clone)]
pub struct Cri {
    endpoint: String,
    client: Arc<Mutex<Option<RuntimeServiceClient<Channel>>>>,
    runtime: &'static Runtime,
    pub health: Arc<Mutex<RuntimeHealth>>,
    /// Whether the runtime's first failure to answer has been logged.
    down_reported: Arc<AtomicBool>,
}

impl Cri {
    /// One per kubelet process: its runtime lives as long as the process.
    pub fn new(endpoint: &str) -> Result<Cri> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cri-client")
            .enable_all()
            .build()
            .context("start the CRI client's async runtime")?;
        Ok(Cri {
            endpoint: endpoint.to_string(),
            client: Arc::new(Mutex::new(None)),
            runtime: Box::leak(Box::new(runtime)),
            health: Arc::new(Mutex::new(RuntimeHealth::default())),
            down_reported: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn client(&self) -> Result<RuntimeServiceClient<Channel>> {
        let cached = self.client.lock().ok().and_then(|c| c.clone());
        if let Some(client) = cached {
            return Ok(client);
        }
        let client = cri::connect(&self.endpoint).await?;
        if let Ok(mut slot) = self.client.lock() {
            *slot = Some(client.clone());
        }
        Ok(client)
    }

    fn forget_on_unavailable(&self, status: &Status) {
        if status.code() == tonic::Code::Unavailable
            && let Ok(mut slot) = self.client.lock()
        {
            *slot = None;
        }
    }

    /// One RuntimeService call (on the client's runtime); errors carry the runtime's message.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let client = self.client().await?;
        match f(client).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => {
                self.forget_on_unavailable(&status);
                Err(anyhow!("{}", status.message()))
            }
        }
    }

    /// One call from the pod workers' blocking thread.
    fn blocking<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.runtime.block_on(self.call(f))
    }

    /// Relists the runtime's pods and containers and refreshes its health; says once when the
    /// runtime stops answering.
    pub fn relist(&self) -> Option<Snapshot> {
        let listed = self.blocking(|mut c| async move {
            let sandboxes = c
                .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                .await?
                .into_inner()
                .items;
            let containers = c
                .list_containers(api::ListContainersRequest { filter: None })
                .await?
                .into_inner()
                .containers;
            let status = c
                .status(api::StatusRequest { verbose: false })
                .await?
                .into_inner();
            let version = c
                .version(api::VersionRequest {
                    version: "v1".into(),
                })
                .await?
                .into_inner();
            Ok(tonic::Response::new((
                sandboxes, containers, status, version,
            )))
        });
        let health = match &listed {
            Ok((_, _, status, version)) => {
                let network = status
                    .status
                    .iter()
                    .flat_map(|s| &s.conditions)
                    .find(|c| c.r#type == "NetworkReady");
                RuntimeHealth {
                    reachable: true,
                    version: format!("{}://{}", version.runtime_name, version.runtime_version),
                    network_ready: network.is_some_and(|c| c.status),
                    network_reason: network.map(|c| c.reason.clone()).unwrap_or_default(),
                    network_message: network.map(|c| c.message.clone()).unwrap_or_default(),
                }
            }
            Err(_) => RuntimeHealth::default(),
        };
        let was_reachable = self
            .health
            .lock()
            .map(|mut h| std::mem::replace(&mut *h, health).reachable)
            .unwrap_or(false);
        match listed {
            Ok((sandboxes, containers, _, _)) => Some(Snapshot {
                sandboxes,
                containers,
            }),
            Err(e) => {
                if was_reachable || !self.down_reported.swap(true, Ordering::SeqCst) {
                    logf!(
                        COMPONENT,
                        "Container runtime at {} is not answering: {e:#}",
                        self.endpoint
                    );
                }
                None
            }
        }
    }

    pub fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        let request = api::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        self.blocking(|mut c| async move { c.container_status(request).await })?
            .status
            .ok_or_else(|| anyhow!("the runtime returned no status for container {id}"))
    }

    /// StopContainer with the pod's grace period (TERM, then KILL).
    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let request = api::StopContainerRequest {
            container_id: id.to_string(),
            timeout: i64::try_from(grace.as_secs()).unwrap_or(30),
        };
        self.call(|mut c| async move { c.stop_container(request).await })
            .await
            .map(|_| ())
    }

    /// StopContainer from the kubelet's async tasks (a failed probe).
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let (cri, id) = (self.clone(), id.to_string());
        self.runtime
            .spawn(async move { cri.stop(&id, grace).await })
            .await
            .context("the CRI client's task failed")?
    }

    pub fn remove_container(&self, id: &str) -> Result<()> {
        let request = api::RemoveContainerRequest {
            container_id: id.to_string(),
        };
        self.blocking(|mut c| async move { c.remove_container(request).await })
            .map(|_| ())
    }

    /// Kills a pod as the kubelet does: its running containers get their grace period (together),
    /// then the sandbox is stopped and removed.
    pub fn kill_pod(&self, sandbox: &str, running: &[String], grace: Duration) -> Result<()> {
        let sandbox = sandbox.to_string();
        let running = running.to_vec();
        self.runtime.block_on(async {
            // A container that cannot be stopped gently is killed with its sandbox below, and
            // RemovePodSandbox stops a sandbox that is still running: only its failure counts.
            let stops = running.iter().map(|id| self.stop(id, grace));
            for (id, result) in running
                .iter()
                .zip(futures_util::future::join_all(stops).await)
            {
                if let Err(e) = result {
                    logf!(COMPONENT, "StopContainer {id} failed: {e:#}");
                }
            }
            let stop = api::StopPodSandboxRequest {
                pod_sandbox_id: sandbox.clone(),
            };
            let _ = self
                .call(|mut c| async move { c.stop_pod_sandbox(stop).await })
                .await;
            let remove = api::RemovePodSandboxRequest {
                pod_sandbox_id: sandbox,
            };
            self.call(|mut c| async move { c.remove_pod_sandbox(remove).await })
                .await
                .map(|_| ())
        })
    }

    /// The sandbox's pod IPs (primary first; none on the node's network).
    pub fn sandbox_ips(&self, id: &str) -> Result<Vec<String>> {
        let request = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: false,
        };
        let status = self
            .blocking(|mut c| async move { c.pod_sandbox_status(request).await })?
            .status
            .unwrap_or_default();
        let network = status.network.unwrap_or_default();
        Ok(std::iter::once(network.ip)
            .filter(|ip| !ip.is_empty())
            .chain(network.additional_ips.into_iter().map(|p| p.ip))
            .collect())
    }

    /// ExecSync in a container (an exec probe): exit code and output.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i32, String)> {
        let request = api::ExecSyncRequest {
            container_id: id.to_string(),
            cmd,
            timeout: i64::try_from(timeout.as_secs()).unwrap_or(1),
        };
        let cri = self.clone();
        let response = self
            .runtime
            .spawn(async move {
                cri.call(|mut c| async move { c.exec_sync(request).await })
                    .await
            })
            .await
            .context("the CRI client's task failed")??;
        let mut output = String::from_utf8_lossy(&response.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&response.stderr));
        Ok((response.exit_code, output))
    }

    pub fn run_sandbox(&self, config: api::PodSandboxConfig) -> Result<String> {
        let request = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        Ok(self
            .blocking(|mut c| async move { c.run_pod_sandbox(request).await })?
            .pod_sandbox_id)
    }

    /// Pulls the image unless the runtime has it (`imagePullPolicy: IfNotPresent`).
    pub fn ensure_image(&self, image: &str) -> Result<()> {
        let images = [image.to_string()];
        let present = cri::images_present(&self.endpoint, &images)?;
        if present.iter().all(|(_, here)| *here) {
            return Ok(());
        }
        cri::pull_image(&self.endpoint, image, Duration::from_secs(60)).map(|_| ())
    }

    pub fn create_container(
        &self,
        sandbox: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let request = api::CreateContainerRequest {
            pod_sandbox_id: sandbox.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        Ok(self
            .blocking(|mut c| async move { c.create_container(request).await })?
            .container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<()> {
        let request = api::StartContainerRequest {
            container_id: id.to_string(),
        };
        self.blocking(|mut c| async move { c.start_container(request).await })
            .map(|_| ())
    }
}

/// What the kubelet knows about one pod when it talks to the runtime.
pub struct PodIdentity<'a> {
    /// The pod's name as the kubelet names static pods: `<manifest name>-<node name>`.
    pub name: String,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub attempt: u32,
    pub manifest: &'a Value,
    pub hostname: &'a str,
    /// `kubernetes.io/config.source`: `file` for a static pod, `api` for a pod from the API.
    pub source: &'a str,
    /// The sandbox's DNS config (the pod's dnsPolicy resolved by the kubelet).
    pub dns: Option<api::DnsConfig>,
    /// The kubelet-managed /etc/hosts of a pod on the pod network.
    pub hosts: Option<PathBuf>,
}

impl PodIdentity<'_> {
    /// `/var/log/pods/<namespace>_<name>_<uid>`.
    pub fn log_directory(&self) -> PathBuf {
        PathBuf::from("/var/log/pods")
            .join(format!("{}_{}_{}", self.namespace, self.name, self.uid))
    }

    fn pod_labels(&self) -> HashMap<String, String> {
        [
            (POD_NAME, self.name.clone()),
            (POD_NAMESPACE, self.namespace.to_string()),
            (POD_UID, self.uid.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn sandbox_config(&self, seen: &str) -> api::PodSandboxConfig {
        let string_map = |v: &Value| -> HashMap<String, String> {
            v.as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        };
        let mut labels = string_map(&self.manifest["metadata"]["labels"]);
        labels.extend(self.pod_labels());
        let mut annotations = string_map(&self.manifest["metadata"]["annotations"]);
        for (k, v) in [
            ("kubernetes.io/config.hash", self.uid),
            ("kubernetes.io/config.seen", seen),
            ("kubernetes.io/config.source", self.source),
        ] {
            annotations.insert(k.to_string(), v.to_string());
        }
        let spec = &self.manifest["spec"];
        let mode = |host: bool| {
            if host {
                api::NamespaceMode::Node as i32
            } else {
                api::NamespaceMode::Pod as i32
            }
        };
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: self.name.clone(),
                uid: self.uid.to_string(),
                namespace: self.namespace.to_string(),
                attempt: self.attempt,
            }),
            hostname: self.hostname.to_string(),
            log_directory: self.log_directory().to_string_lossy().into_owned(),
            dns_config: self.dns.clone(),
            labels,
            annotations,
            linux: Some(api::LinuxPodSandboxConfig {
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(api::NamespaceOption {
                        network: mode(spec["hostNetwork"].as_bool().unwrap_or(false)),
                        pid: mode(spec["hostPID"].as_bool().unwrap_or(false)),
                        ipc: mode(spec["hostIPC"].as_bool().unwrap_or(false)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The config of container `c` (of the pod's spec) for run `restart_count`, with the pod's
    /// resolved env.
    pub fn container_config(
        &self,
        c: &Value,
        restart_count: u32,
        env: Vec<(String, String)>,
        grace: Duration,
    ) -> Result<api::ContainerConfig> {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        };
        let mut labels = self.pod_labels();
        labels.insert(CONTAINER_NAME.into(), name.clone());
        let hash = Sha256::digest(c.to_string().as_bytes());
        let annotations = [
            ("io.kubernetes.container.hash", hex::encode(&hash[..4])),
            (RESTART_COUNT, restart_count.to_string()),
            (
                "io.kubernetes.container.terminationMessagePath",
                c["terminationMessagePath"]
                    .as_str()
                    .unwrap_or("/dev/termination-log")
                    .to_string(),
            ),
            (
                "io.kubernetes.container.terminationMessagePolicy",
                c["terminationMessagePolicy"]
                    .as_str()
                    .unwrap_or("File")
                    .to_string(),
            ),
            (
                "io.kubernetes.pod.terminationGracePeriod",
                grace.as_secs().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: name.clone(),
                attempt: restart_count,
            }),
            image: Some(api::ImageSpec {
                image: c["image"].as_str().unwrap_or_default().to_string(),
                ..Default::default()
            }),
            command: strings(&c["command"]),
            args: strings(&c["args"]),
            working_dir: c["workingDir"].as_str().unwrap_or_default().to_string(),
            envs: env
                .into_iter()
                .map(|(key, value)| api::KeyValue { key, value })
                .collect(),
            mounts: self.mounts(c)?,
            labels,
            annotations,
            log_path: format!("{name}/{restart_count}.log"),
            ..Default::default()
        })
    }

    /// The container's volumeMounts as CRI mounts: hostPath volumes as they are, the others from
    /// the pod's directory under /var/lib/kubelet/pods (with subPath), and the kubelet-managed
    /// /etc/hosts of a pod-network pod.
    fn mounts(&self, c: &Value) -> Result<Vec<api::Mount>> {
        let volumes = self.manifest["spec"]["volumes"].as_array();
        let mut mounts = Vec::new();
        for vm in c["volumeMounts"].as_array().into_iter().flatten() {
            let vname = vm["name"].as_str().unwrap_or_default();
            let volume = volumes
                .into_iter()
                .flatten()
                .find(|v| v["name"].as_str() == Some(vname))
                .ok_or_else(|| anyhow!("volumeMount {vname:?} names no volume of the pod"))?;
            let base = if let Some(path) = volume["hostPath"]["path"].as_str() {
                PathBuf::from(path)
            } else {
                let dir = volume_dir(self.uid, volume)?;
                std::fs::create_dir_all(&dir)?;
                dir
            };
            let host_path = match vm["subPath"].as_str().filter(|s| !s.is_empty()) {
                Some(sub) => base.join(sub),
                None => base,
            };
            mounts.push(api::Mount {
                container_path: vm["mountPath"].as_str().unwrap_or_default().to_string(),
                host_path: host_path.to_string_lossy().into_owned(),
                readonly: vm["readOnly"].as_bool().unwrap_or(false),
                ..Default::default()
            });
        }
        if let Some(hosts) = &self.hosts {
            mounts.push(api::Mount {
                container_path: "/etc/hosts".into(),
                host_path: hosts.to_string_lossy().into_owned(),
                ..Default::default()
            });
        }
        Ok(mounts)
    }
}

/// The plugin directory name of a volume kind the kubelet materializes itself.
pub fn volume_plugin(volume: &Value) -> Option<&'static str> {
    [
        ("emptyDir", "kubernetes.io~empty-dir"),
        ("configMap", "kubernetes.io~configmap"),
        ("secret", "kubernetes.io~secret"),
        ("projected", "kubernetes.io~projected"),
        ("downwardAPI", "kubernetes.io~downward-api"),
    ]
    .iter()
    .find(|(kind, _)| volume[*kind].is_object())
    .map(|(_, dir)| *dir)
}

/// `/var/lib/kubelet/pods/<uid>/volumes/<plugin>/<name>` of a volume.
pub fn volume_dir(uid: &str, volume: &Value) -> Result<PathBuf> {
    let name = volume["name"].as_str().unwrap_or_default();
    let plugin = volume_plugin(volume)
        .ok_or_else(|| anyhow!("volume {name:?}: this kubelet supports hostPath, emptyDir, configMap, secret, projected and downwardAPI volumes"))?;
    Ok(PathBuf::from("/var/lib/kubelet/pods")
        .join(uid)
        .join("volumes")
        .join(plugin)
        .join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_static_pod_becomes_the_configs_the_kubelet_sends() {
        let manifest = json!({
            "metadata": {"name": "kube-scheduler", "namespace": "kube-system", "labels": {"tier": "control-plane"}},
            "spec": {
                "hostNetwork": true,
                "containers": [{
                    "name": "kube-scheduler", "image": "registry.k8s.io/kube-scheduler:v1.34.3",
                    "command": ["kube-scheduler", "--v=2"],
                    "volumeMounts": [{"name": "kubeconfig", "mountPath": "/etc/kubernetes/scheduler.conf", "readOnly": true}]
                }],
                "volumes": [{"name": "kubeconfig", "hostPath": {"path": "/etc/kubernetes/scheduler.conf", "type": "FileOrCreate"}}]
            }
        });
        let pod = PodIdentity {
            name: "kube-scheduler-node1".into(),
            namespace: "kube-system",
            uid: "0123abcd",
            attempt: 1,
            manifest: &manifest,
            hostname: "node1",
            source: "file",
            dns: None,
            hosts: None,
        };
        let sandbox = pod.sandbox_config("2026-01-01T00:00:00Z");
        let meta = sandbox.metadata.clone().unwrap();
        assert_eq!(
            (
                meta.name.as_str(),
                meta.namespace.as_str(),
                meta.uid.as_str(),
                meta.attempt
            ),
            ("kube-scheduler-node1", "kube-system", "0123abcd", 1)
        );
        assert_eq!(sandbox.labels[POD_UID], "0123abcd");
        assert_eq!(sandbox.labels["tier"], "control-plane");
        assert_eq!(sandbox.annotations["kubernetes.io/config.source"], "file");
        assert_eq!(
            sandbox.log_directory,
            "/var/log/pods/kube-system_kube-scheduler-node1_0123abcd"
        );
        let config = pod
            .container_config(
                &manifest["spec"]["containers"][0],
                3,
                vec![("A".into(), "b".into())],
                Duration::from_secs(30),
            )
            .unwrap();
        assert_eq!(config.labels[CONTAINER_NAME], "kube-scheduler");
        assert_eq!(config.labels[POD_NAME], "kube-scheduler-node1");
        assert_eq!(config.labels[POD_NAMESPACE], "kube-system");
        assert_eq!(config.annotations[RESTART_COUNT], "3");
        assert_eq!(config.metadata.unwrap().attempt, 3);
        assert_eq!(config.log_path, "kube-scheduler/3.log");
        assert_eq!(config.mounts[0].host_path, "/etc/kubernetes/scheduler.conf");
        assert!(config.mounts[0].readonly);
        let mut broken = manifest.clone();
        broken["spec"]["volumes"] = json!([]);
        let pod = PodIdentity {
            manifest: &broken,
            ..pod
        };
        assert!(
            pod.container_config(
                &broken["spec"]["containers"][0],
                0,
                Vec::new(),
                Duration::ZERO
            )
            .is_err()
        );
    }
}
