//! The kubelet's API-side duties: register the Node, post its status (Ready only while the container
//! runtime answers and reports NetworkReady), renew its Lease in kube-node-lease, keep one
//! mirror pod per static pod with the static pod's status, and run the API pod source
//! (`apipods`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::config::KubeletConfig;
use super::cri::RuntimeHealth;
use super::flags::KubeletFlags;
use super::pods::{Runtime, pod_status};
use crate::common::client::{ApiClient, PatchType};
use crate::common::time;
use crate::logf;

const COMPONENT: &str = "kubelet";

pub struct NodeAgent {
    pub client: ApiClient,
    pub config: KubeletConfig,
    pub flags: KubeletFlags,
    pub runtime: Runtime,
    pub version: String,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn memory_kib() -> u64 {
    read_trimmed("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

impl NodeAgent {
    fn node_name(&self) -> &str {
        &self.runtime.node_name
    }

    fn runtime_health(&self) -> RuntimeHealth {
        self.runtime
            .cri
            .health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    fn conditions(&self) -> Value {
        let now = time::now();
        let c = |t: &str, status: &str, reason: &str, message: &str| json!({"type": t, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now});
        let health = self.runtime_health();
        let ready = if !health.reachable {
            c(
                "Ready",
                "False",
                "KubeletNotReady",
                "container runtime is down",
            )
        } else if !health.network_ready {
            c(
                "Ready",
                "False",
                "KubeletNotReady",
                &format!(
                    "container runtime network not ready: NetworkReady=false reason:{} message:{}",
                    health.network_reason, health.network_message
                ),
            )
        } else {
            c(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        };
        json!([
            c(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available"
            ),
            c(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure"
            ),
            c(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available"
            ),
            ready,
        ])
    }

    fn status(&self) -> Value {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let capacity = json!({
            "cpu": cpus.to_string(),
            "memory": format!("{}Ki", memory_kib()),
            "pods": self.config.max_pods.to_string(),
            "ephemeral-storage": "100Gi",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
        });
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        json!({
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": self.conditions(),
            "addresses": [
                {"type": "InternalIP", "address": self.runtime.node_ip},
                {"type": "Hostname", "address": self.node_name()},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.config.port}},
            "nodeInfo": {
                "machineID": read_trimmed("/etc/machine-id"),
                "systemUUID": read_trimmed("/etc/machine-id"),
                "bootID": read_trimmed("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": kernel,
                "osImage": "kubestrap testbed node",
                "containerRuntimeVersion": self.runtime_health().version,
                "kubeletVersion": self.version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        })
    }

    /// POSTs the Node (or takes the existing one) and returns its uid.
    async fn register(&self) -> String {
        let name = self.node_name().to_string();
        let mut labels = json!({
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        });
        for (k, v) in &self.flags.node_labels {
            labels[k.as_str()] = json!(v);
        }
        let mut node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            },
            "spec": {},
            "status": self.status(),
        });
        if !self.config.register_with_taints.is_empty() {
            node["spec"]["taints"] = json!(self.config.register_with_taints);
        }
        if let Some(id) = &self.config.provider_id {
            node["spec"]["providerID"] = json!(id);
        }
        loop {
            match self.client.create("/api/v1/nodes", &node).await {
                Ok(created) => {
                    logf!(COMPONENT, "Successfully registered node {name}");
                    return created["metadata"]["uid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                }
                Err(e) if e.is_conflict() => {
                    match self.client.get(&format!("/api/v1/nodes/{name}")).await {
                        Ok(existing) => {
                            logf!(COMPONENT, "Node {name} was previously registered");
                            return existing["metadata"]["uid"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string();
                        }
                        Err(e) => logf!(COMPONENT, "Unable to register node with API server: {e}"),
                    }
                }
                Err(e) => logf!(COMPONENT, "Unable to register node with API server: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn post_status(&self) {
        let path = format!("/api/v1/nodes/{}/status", self.node_name());
        if let Err(e) = self
            .client
            .patch(
                &path,
                PatchType::Strategic,
                &json!({"status": self.status()}),
            )
            .await
        {
            logf!(COMPONENT, "Error updating node status, will retry: {e}");
        }
    }

    async fn renew_lease(&self, node_uid: &str) {
        let name = self.node_name().to_string();
        let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}");
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": "kube-node-lease",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}],
            },
            "spec": {"holderIdentity": name, "leaseDurationSeconds": self.config.node_lease_duration_seconds, "renewTime": time::now_micro()},
        });
        let result = match self.client.get(&path).await {
            Ok(mut current) => {
                current["spec"]["renewTime"] = lease["spec"]["renewTime"].clone();
                current["spec"]["holderIdentity"] = json!(name);
                self.client.replace(&path, &current).await
            }
            Err(e) if e.is_not_found() => {
                self.client
                    .create(
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                        &lease,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            logf!(COMPONENT, "Failed to update lease: {e}");
        }
    }

    /// The mirror pods the static pods call for, keyed by pod name.
    fn desired_mirrors(&self, node_uid: &str) -> BTreeMap<(String, String), (Value, Value)> {
        let mut out = BTreeMap::new();
        let Ok(pods) = self.runtime.pods.lock() else {
            return out;
        };
        for pod in pods.values().filter(|p| !p.api) {
            let mut mirror = pod.manifest.clone();
            let name = format!("{}-{}", pod.name(), self.node_name());
            let namespace = pod.namespace().to_string();
            mirror["metadata"]["name"] = json!(name);
            mirror["metadata"]["namespace"] = json!(namespace);
            for (k, v) in [
                ("kubernetes.io/config.hash", pod.uid.clone()),
                ("kubernetes.io/config.mirror", pod.uid.clone()),
                ("kubernetes.io/config.seen", pod.seen.clone()),
                ("kubernetes.io/config.source", "file".into()),
            ] {
                mirror["metadata"]["annotations"][k] = json!(v);
            }
            mirror["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": self.node_name(), "uid": node_uid, "controller": true}]);
            mirror["spec"]["nodeName"] = json!(self.node_name());
            if let Some(o) = mirror.as_object_mut() {
                o.remove("status");
            }
            out.insert(
                (namespace, name),
                (mirror, pod_status(pod, &self.runtime.node_ip)),
            );
        }
        out
    }

    async fn sync_mirrors(&self, node_uid: &str, posted: &mut BTreeMap<(String, String), Value>) {
        let desired = self.desired_mirrors(node_uid);
        let selector = format!(
            "/api/v1/pods?fieldSelector=spec.nodeName%3D{}",
            self.node_name()
        );
        let existing = match self.client.get(&selector).await {
            Ok(list) => list["items"].as_array().cloned().unwrap_or_default(),
            Err(e) => {
                logf!(COMPONENT, "Failed to list pods for mirror pod sync: {e}");
                return;
            }
        };
        let mut current: BTreeMap<(String, String), Value> = BTreeMap::new();
        for pod in existing {
            if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null() {
                continue;
            }
            let key = (
                pod["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            let wanted_hash = desired
                .get(&key)
                .map(|(m, _)| m["metadata"]["annotations"]["kubernetes.io/config.mirror"].clone());
            if wanted_hash.as_ref()
                != Some(&pod["metadata"]["annotations"]["kubernetes.io/config.mirror"])
            {
                let path = format!("/api/v1/namespaces/{}/pods/{}", key.0, key.1);
                let options =
                    json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0});
                match self.client.delete_with(&path, &options).await {
                    Ok(_) => logf!(
                        COMPONENT,
                        "Deleted mirror pod {}/{} (static pod changed or removed)",
                        key.0,
                        key.1
                    ),
                    Err(e) => logf!(
                        COMPONENT,
                        "Failed deleting a mirror pod {}/{}: {e}",
                        key.0,
                        key.1
                    ),
                }
                posted.remove(&key);
                continue;
            }
            current.insert(key, pod);
        }
        for (key, (mirror, status)) in desired {
            let (namespace, name) = &key;
            if !current.contains_key(&key) {
                match self
                    .client
                    .create(&format!("/api/v1/namespaces/{namespace}/pods"), &mirror)
                    .await
                {
                    Ok(_) => logf!(COMPONENT, "Created mirror pod {namespace}/{name}"),
                    Err(e) if e.is_conflict() => {}
                    Err(e) => {
                        logf!(
                            COMPONENT,
                            "Failed creating a mirror pod for {namespace}/{name}: {e}"
                        );
                        continue;
                    }
                }
            }
            let mut comparable = status.clone();
            strip_times(&mut comparable);
            if posted.get(&key) == Some(&comparable) {
                continue;
            }
            let path = format!("/api/v1/namespaces/{namespace}/pods/{name}/status");
            match self
                .client
                .patch(&path, PatchType::Merge, &json!({"status": status}))
                .await
            {
                Ok(_) => {
                    posted.insert(key, comparable);
                }
                Err(e) => logf!(
                    COMPONENT,
                    "Failed to update status for pod {namespace}/{name}: {e}"
                ),
            }
        }
    }

    /// Registration, then status, lease and mirror pods forever.
    pub async fn run(self) {
        if !self.config.register_node {
            return;
        }
        let uid = self.register().await;
        let mut posted = BTreeMap::new();
        let mut api_pods =
            super::apipods::ApiPodManager::new(self.client.clone(), self.runtime.clone());
        let mut last_status = tokio::time::Instant::now() - Duration::from_secs(3600);
        let mut last_lease = last_status;
        let mut last_ready = None;
        loop {
            let health = self.runtime_health();
            let ready = (health.reachable, health.network_ready);
            if last_status.elapsed() >= self.config.node_status_update_frequency
                || last_ready != Some(ready)
            {
                self.post_status().await;
                last_status = tokio::time::Instant::now();
                last_ready = Some(ready);
            }
            if last_lease.elapsed()
                >= Duration::from_secs((self.config.node_lease_duration_seconds / 4).max(1) as u64)
            {
                self.renew_lease(&uid).await;
                last_lease = tokio::time::Instant::now();
            }
            self.sync_mirrors(&uid, &mut posted).await;
            api_pods.sync().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

pub fn strip_times(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("lastTransitionTime");
            map.remove("lastProbeTime");
            for value in map.values_mut() {
                strip_times(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_times),
        _ => {}
    }
}
