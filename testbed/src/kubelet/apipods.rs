//! The kubelet's API pod source and status manager: the pods bound to this node (listed every
//! second), each prepared once as the volume manager and the env resolution do — configMap,
//! secret, projected (service-account token through TokenRequest, `kube-root-ca.crt`, downward API)
//! and downwardAPI volumes written under /var/lib/kubelet/pods/<uid>/volumes, env from values,
//! fieldRefs, configMapKeyRef, secretKeyRef and envFrom — then handed to the pod workers; their
//! status posted through pods/status when it changes; a pod deleted with a grace period finally
//! deleted (grace 0) once its containers are gone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

use super::cri::volume_dir;
use super::pods::{ApiPod, EnvValue, Runtime, api_key, pod_status};
use crate::common::client::{ApiClient, PatchType};
use crate::logf;

const COMPONENT: &str = "kubelet";

/// Objects read while preparing one pod (each read once).
struct Reads<'a> {
    client: &'a ApiClient,
    namespace: String,
    cache: HashMap<String, Option<Value>>,
}

impl Reads<'_> {
    async fn object(&mut self, kind: &str, name: &str) -> Result<Option<Value>> {
        let key = format!("{kind}/{name}");
        if let Some(v) = self.cache.get(&key) {
            return Ok(v.clone());
        }
        let path = format!("/api/v1/namespaces/{}/{kind}/{name}", self.namespace);
        let value = match self.client.get(&path).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => bail!("get {kind} {:?}: {e}", name),
        };
        self.cache.insert(key, value.clone());
        Ok(value)
    }

    /// The decoded key → bytes of a ConfigMap (data + binaryData) or a Secret (data, base64).
    async fn data(&mut self, kind: &str, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        let Some(obj) = self.object(kind, name).await? else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        let b64 = base64::engine::general_purpose::STANDARD;
        for (k, v) in obj["data"].as_object().into_iter().flatten() {
            let text = v.as_str().unwrap_or_default();
            let bytes = if kind == "secrets" {
                b64.decode(text)
                    .with_context(|| format!("secret {name:?} key {k:?}"))?
            } else {
                text.as_bytes().to_vec()
            };
            out.insert(k.clone(), bytes);
        }
        for (k, v) in obj["binaryData"].as_object().into_iter().flatten() {
            out.insert(
                k.clone(),
                b64.decode(v.as_str().unwrap_or_default())
                    .unwrap_or_default(),
            );
        }
        Ok(Some(out))
    }
}

fn kind_name(kind: &str) -> &'static str {
    if kind == "secrets" {
        "secret"
    } else {
        "configmap"
    }
}

/// A downward API field of the pod.
fn field(pod: &Value, path: &str, node_ip: &str) -> Result<Option<EnvValue>> {
    let meta = &pod["metadata"];
    let text = |v: &Value| Some(EnvValue::Text(v.as_str().unwrap_or_default().to_string()));
    let map_lines = |v: &Value| {
        let mut lines: Vec<String> = v
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
            .collect();
        lines.sort();
        Some(EnvValue::Text(lines.join("\n")))
    };
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => text(&meta["name"]),
        "metadata.namespace" => text(&meta["namespace"]),
        "metadata.uid" => text(&meta["uid"]),
        "metadata.labels" => map_lines(&meta["labels"]),
        "metadata.annotations" => map_lines(&meta["annotations"]),
        "spec.nodeName" => text(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => text(&pod["spec"]["serviceAccountName"]),
        "status.hostIP" | "status.hostIPs" => Some(EnvValue::Text(node_ip.to_string())),
        "status.podIP" | "status.podIPs" => Some(EnvValue::Field(path.to_string())),
        _ => {
            if let Some(k) = keyed("metadata.labels['") {
                text(&meta["labels"][k.as_str()])
            } else if let Some(k) = keyed("metadata.annotations['") {
                text(&meta["annotations"][k.as_str()])
            } else {
                bail!("unsupported fieldRef {path:?}")
            }
        }
    })
}

fn write_file(dir: &Path, relative: &str, bytes: &[u8], mode: u32) -> Result<()> {
    if relative.starts_with('/') || relative.split('/').any(|p| p == "..") {
        bail!("invalid path {relative:?}");
    }
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn mode_of(v: &Value, default: u32) -> u32 {
    v.as_u64()
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(default)
}

/// key → (path, mode) as a configMap/secret source's items say (every key when none).
fn selected(
    data: &BTreeMap<String, Vec<u8>>,
    items: &Value,
    default_mode: u32,
    what: &str,
) -> Result<Vec<(String, Vec<u8>, u32)>> {
    match items.as_array() {
        Some(items) => items
            .iter()
            .map(|item| {
                let key = item["key"].as_str().unwrap_or_default();
                let bytes = data.get(key).ok_or_else(|| {
                    anyhow!("configmap references non-existent config key: {key} ({what})")
                })?;
                Ok((
                    item["path"].as_str().unwrap_or(key).to_string(),
                    bytes.clone(),
                    mode_of(&item["mode"], default_mode),
                ))
            })
            .collect(),
        None => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), default_mode))
            .collect()),
    }
}

async fn object_source(
    reads: &mut Reads<'_>,
    kind: &str,
    source: &Value,
    name_field: &str,
    default_mode: u32,
) -> Result<Vec<(String, Vec<u8>, u32)>> {
    let name = source[name_field].as_str().unwrap_or_default();
    match reads.data(kind, name).await? {
        Some(data) => selected(&data, &source["items"], default_mode, name),
        None if source["optional"].as_bool() == Some(true) => Ok(Vec::new()),
        None => bail!("{} {name:?} not found", kind_name(kind)),
    }
}

async fn downward_items(
    pod: &Value,
    items: &Value,
    default_mode: u32,
    node_ip: &str,
) -> Result<Vec<(String, Vec<u8>, u32)>> {
    let mut out = Vec::new();
    for item in items.as_array().into_iter().flatten() {
        let Some(path) = item["fieldRef"]["fieldPath"].as_str() else {
            continue;
        };
        let value = match field(pod, path, node_ip)? {
            Some(EnvValue::Text(t)) => t,
            _ => bail!("downward API volumes cannot use {path:?}"),
        };
        out.push((
            item["path"].as_str().unwrap_or_default().to_string(),
            value.into_bytes(),
            mode_of(&item["mode"], default_mode),
        ));
    }
    Ok(out)
}

/// The token of a projected serviceAccountToken source, through TokenRequest bound to the pod.
async fn token(client: &ApiClient, pod: &Value, source: &Value) -> Result<Vec<u8>> {
    let meta = &pod["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or("default");
    let account = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let mut spec = json!({
        "expirationSeconds": source["expirationSeconds"].as_i64().unwrap_or(3600),
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
    });
    if let Some(aud) = source["audience"].as_str().filter(|a| !a.is_empty()) {
        spec["audiences"] = json!([aud]);
    }
    let body =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    let answer = client
        .create(
            &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"),
            &body,
        )
        .await
        .map_err(|e| anyhow!("failed to fetch token: {e}"))?;
    Ok(answer["status"]["token"]
        .as_str()
        .ok_or_else(|| anyhow!("TokenRequest returned no token"))?
        .as_bytes()
        .to_vec())
}

/// Writes the pod's volumes that come from the API.
async fn volumes(
    client: &ApiClient,
    reads: &mut Reads<'_>,
    pod: &Value,
    node_ip: &str,
) -> Result<()> {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or_default();
        if volume["hostPath"].is_object() {
            continue;
        }
        let dir = volume_dir(uid, volume)?;
        std::fs::create_dir_all(&dir)?;
        let failed =
            |e: anyhow::Error| anyhow!("MountVolume.SetUp failed for volume {name:?} : {e:#}");
        let files = if let Some(source) = volume["configMap"]
            .as_object()
            .map(|_| &volume["configMap"])
        {
            let mode = mode_of(&source["defaultMode"], 0o644);
            object_source(reads, "configmaps", source, "name", mode)
                .await
                .map_err(failed)?
        } else if volume["secret"].is_object() {
            let source = &volume["secret"];
            let mode = mode_of(&source["defaultMode"], 0o644);
            object_source(reads, "secrets", source, "secretName", mode)
                .await
                .map_err(failed)?
        } else if volume["downwardAPI"].is_object() {
            let source = &volume["downwardAPI"];
            let mode = mode_of(&source["defaultMode"], 0o644);
            downward_items(pod, &source["items"], mode, node_ip)
                .await
                .map_err(failed)?
        } else if volume["projected"].is_object() {
            let projected = &volume["projected"];
            let mode = mode_of(&projected["defaultMode"], 0o644);
            let mut files = Vec::new();
            for source in projected["sources"].as_array().into_iter().flatten() {
                if source["serviceAccountToken"].is_object() {
                    let t = &source["serviceAccountToken"];
                    let bytes = token(client, pod, t).await.map_err(failed)?;
                    files.push((
                        t["path"].as_str().unwrap_or("token").to_string(),
                        bytes,
                        mode,
                    ));
                } else if source["configMap"].is_object() {
                    files.extend(
                        object_source(reads, "configmaps", &source["configMap"], "name", mode)
                            .await
                            .map_err(failed)?,
                    );
                } else if source["secret"].is_object() {
                    files.extend(
                        object_source(reads, "secrets", &source["secret"], "name", mode)
                            .await
                            .map_err(failed)?,
                    );
                } else if source["downwardAPI"].is_object() {
                    files.extend(
                        downward_items(pod, &source["downwardAPI"]["items"], mode, node_ip)
                            .await
                            .map_err(failed)?,
                    );
                }
            }
            files
        } else {
            Vec::new()
        };
        for (path, bytes, mode) in files {
            write_file(&dir, &path, &bytes, mode).map_err(failed)?;
        }
    }
    Ok(())
}

/// The Service environment the kubelet gives every container before its own env: the
/// `kubernetes` Service of `default` always, and with `enableServiceLinks` (the default) every
/// Service of the pod's namespace that has a cluster IP (`<NAME>_SERVICE_HOST`, `_SERVICE_PORT`,
/// `_SERVICE_PORT_<PORT NAME>`, and the Docker-link style `<NAME>_PORT…` variables).
async fn service_links(reads: &mut Reads<'_>, pod: &Value) -> Result<Vec<(String, String)>> {
    let list = reads
        .client
        .get("/api/v1/services")
        .await
        .map_err(|e| anyhow!("list services: {e}"))?;
    let links = pod["spec"]["enableServiceLinks"].as_bool() != Some(false);
    let services: Vec<&Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            let (ns, name) = (
                s["metadata"]["namespace"].as_str().unwrap_or_default(),
                s["metadata"]["name"].as_str().unwrap_or_default(),
            );
            (ns == "default" && name == "kubernetes") || (links && ns == reads.namespace)
        })
        .collect();
    Ok(service_env(&services))
}

/// The variables of [`service_links`] for these Services, sorted by Service name.
pub fn service_env(services: &[&Value]) -> Vec<(String, String)> {
    let mut sorted: Vec<&&Value> = services.iter().collect();
    sorted.sort_by_key(|s| {
        s["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    let mut out: Vec<(String, String)> = Vec::new();
    for s in sorted {
        let ip = s["spec"]["clusterIP"].as_str().unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = s["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = s["spec"]["ports"].as_array().cloned().unwrap_or_default();
        let Some(first) = ports.first() else {
            continue;
        };
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{name}_SERVICE_PORT"), first["port"].to_string()));
        for p in &ports {
            if let Some(pname) = p["name"].as_str().filter(|n| !n.is_empty()) {
                out.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pname.to_uppercase().replace('-', "_")
                    ),
                    p["port"].to_string(),
                ));
            }
        }
        let proto = |p: &Value| p["protocol"].as_str().unwrap_or("TCP").to_string();
        out.push((
            format!("{name}_PORT"),
            format!("{}://{host}:{}", proto(first).to_lowercase(), first["port"]),
        ));
        for p in &ports {
            let prefix = format!("{name}_PORT_{}_{}", p["port"], proto(p));
            out.push((
                prefix.clone(),
                format!("{}://{host}:{}", proto(p).to_lowercase(), p["port"]),
            ));
            out.push((format!("{prefix}_PROTO"), proto(p).to_lowercase()));
            out.push((format!("{prefix}_PORT"), p["port"].to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// Every container's env, in order (envFrom first, then env), as the kubelet resolves it.
async fn env(
    reads: &mut Reads<'_>,
    pod: &Value,
    node_ip: &str,
) -> Result<BTreeMap<String, Vec<(String, EnvValue)>>> {
    let mut out = BTreeMap::new();
    let containers = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod["spec"][*k].as_array().cloned().unwrap_or_default());
    let links = service_links(reads, pod).await?;
    for c in containers {
        let cname = c["name"].as_str().unwrap_or_default().to_string();
        let mut vars: Vec<(String, EnvValue)> = links
            .iter()
            .map(|(k, v)| (k.clone(), EnvValue::Text(v.clone())))
            .collect();
        for from in c["envFrom"].as_array().into_iter().flatten() {
            let prefix = from["prefix"].as_str().unwrap_or_default();
            let (kind, source) = if from["configMapRef"].is_object() {
                ("configmaps", &from["configMapRef"])
            } else {
                ("secrets", &from["secretRef"])
            };
            let name = source["name"].as_str().unwrap_or_default();
            match reads.data(kind, name).await? {
                Some(data) => {
                    for (k, v) in data {
                        vars.push((
                            format!("{prefix}{k}"),
                            EnvValue::Text(String::from_utf8_lossy(&v).into_owned()),
                        ));
                    }
                }
                None if source["optional"].as_bool() == Some(true) => {}
                None => bail!("{} {name:?} not found", kind_name(kind)),
            }
        }
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap_or_default().to_string();
            let from = &e["valueFrom"];
            let value = if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
                field(pod, path, node_ip)?
            } else if from["configMapKeyRef"].is_object() || from["secretKeyRef"].is_object() {
                let (kind, r) = if from["configMapKeyRef"].is_object() {
                    ("configmaps", &from["configMapKeyRef"])
                } else {
                    ("secrets", &from["secretKeyRef"])
                };
                let object = r["name"].as_str().unwrap_or_default();
                let key = r["key"].as_str().unwrap_or_default();
                let optional = r["optional"].as_bool() == Some(true);
                match reads.data(kind, object).await? {
                    Some(data) => match data.get(key) {
                        Some(v) => Some(EnvValue::Text(String::from_utf8_lossy(v).into_owned())),
                        None if optional => None,
                        None => bail!(
                            "couldn't find key {key} in {} {}/{object}",
                            kind_name(kind)
                                .replace("configmap", "ConfigMap")
                                .replace("secret", "Secret"),
                            reads.namespace
                        ),
                    },
                    None if optional => None,
                    None => bail!("{} {object:?} not found", kind_name(kind)),
                }
            } else if from.is_object() {
                bail!("env {name}: unsupported valueFrom {from}");
            } else {
                Some(EnvValue::Text(
                    e["value"].as_str().unwrap_or_default().to_string(),
                ))
            };
            if let Some(value) = value {
                vars.push((name, value));
            }
        }
        out.insert(cname, vars);
    }
    Ok(out)
}

/// Prepares one pod: its volumes and env, or the error that keeps it from starting.
async fn prepare(client: &ApiClient, pod: &Value, node_ip: &str) -> ApiPod {
    let mut reads = Reads {
        client,
        namespace: pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        cache: HashMap::new(),
    };
    let result = async {
        volumes(client, &mut reads, pod, node_ip).await?;
        env(&mut reads, pod, node_ip)
            .await
            .map_err(|e| anyhow!("CreateContainerConfigError: {e:#}"))
    }
    .await;
    match result {
        Ok(env) => ApiPod {
            manifest: pod.clone(),
            env,
            error: None,
        },
        Err(e) => ApiPod {
            manifest: pod.clone(),
            env: BTreeMap::new(),
            error: Some(format!("{e:#}")),
        },
    }
}

/// The API pods bound to this node, their preparation, status and final deletion.
pub struct ApiPodManager {
    pub client: ApiClient,
    pub runtime: Runtime,
    /// The status last posted per pod uid (without times).
    posted: HashMap<String, Value>,
    /// Pods gone from the API whose directory under /var/lib/kubelet/pods is still to be removed
    /// (once the pod workers have killed them).
    orphans: HashSet<String>,
}

impl ApiPodManager {
    pub fn new(client: ApiClient, runtime: Runtime) -> ApiPodManager {
        ApiPodManager {
            client,
            runtime,
            posted: HashMap::new(),
            orphans: HashSet::new(),
        }
    }

    /// One pass: list, prepare the new ones, forget the gone ones, post statuses, finish
    /// deletions.
    pub async fn sync(&mut self) {
        let node = self.runtime.node_name.clone();
        let listed = match self
            .client
            .get(&format!(
                "/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
            ))
            .await
        {
            Ok(list) => list["items"].as_array().cloned().unwrap_or_default(),
            Err(e) => {
                logf!(COMPONENT, "Failed to list the pods bound to {node}: {e}");
                return;
            }
        };
        let pods: Vec<Value> = listed
            .into_iter()
            .filter(|p| p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null())
            .collect();
        let known: HashMap<String, bool> = self
            .runtime
            .api_pods
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.error.is_some()))
                    .collect()
            })
            .unwrap_or_default();
        let mut uids = HashSet::new();
        for pod in &pods {
            let uid = pod["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            uids.insert(uid.clone());
            match known.get(&uid) {
                Some(false) => {
                    if let Ok(mut map) = self.runtime.api_pods.lock()
                        && let Some(entry) = map.get_mut(&uid)
                    {
                        entry.manifest = pod.clone();
                    }
                }
                _ => {
                    let prepared = prepare(&self.client, pod, &self.runtime.node_ip).await;
                    if let Some(e) = &prepared.error
                        && !known.contains_key(&uid)
                    {
                        logf!(
                            COMPONENT,
                            "Pod {}/{}: {e}",
                            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
                            pod["metadata"]["name"].as_str().unwrap_or_default()
                        );
                    }
                    if let Ok(mut map) = self.runtime.api_pods.lock() {
                        map.insert(uid, prepared);
                    }
                }
            }
        }
        if let Ok(mut map) = self.runtime.api_pods.lock() {
            self.orphans
                .extend(map.keys().filter(|uid| !uids.contains(*uid)).cloned());
            map.retain(|uid, _| uids.contains(uid));
        }
        self.clean_up();
        self.posted.retain(|uid, _| uids.contains(uid));
        for pod in &pods {
            self.post(pod).await;
        }
    }

    /// Removes the directories (volumes, etc-hosts) of deleted pods the pod workers no longer run,
    /// as the kubelet's orphaned-pod cleanup does.
    fn clean_up(&mut self) {
        let running: HashSet<String> = self
            .runtime
            .pods
            .lock()
            .map(|pods| {
                pods.values()
                    .filter(|p| p.api)
                    .map(|p| p.uid.clone())
                    .collect()
            })
            .unwrap_or_default();
        self.orphans.retain(|uid| {
            if running.contains(uid) {
                return true;
            }
            let dir = Path::new("/var/lib/kubelet/pods").join(uid);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => {
                    logf!(COMPONENT, "Failed to clean up {}: {e}", dir.display());
                    true
                }
            }
        });
    }

    /// Posts the pod's status if it changed; deletes a terminating pod whose containers are gone.
    async fn post(&mut self, pod: &Value) {
        let meta = &pod["metadata"];
        let uid = meta["uid"].as_str().unwrap_or_default().to_string();
        let namespace = meta["namespace"].as_str().unwrap_or("default");
        let name = meta["name"].as_str().unwrap_or_default();
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
        let status = self.runtime.pods.lock().ok().and_then(|pods| {
            pods.get(&api_key(&uid))
                .map(|p| pod_status(p, &self.runtime.node_ip))
        });
        let Some(status) = status else {
            if !meta["deletionTimestamp"].is_null() {
                let options = json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}});
                match self.client.delete_with(&path, &options).await {
                    Ok(_) => logf!(
                        COMPONENT,
                        "Deleted pod {namespace}/{name} after its containers ended"
                    ),
                    Err(e) if e.is_not_found() || e.is_conflict() => {}
                    Err(e) => logf!(COMPONENT, "Failed to delete pod {namespace}/{name}: {e}"),
                }
            }
            return;
        };
        let mut comparable = status.clone();
        super::node::strip_times(&mut comparable);
        if self.posted.get(&uid) == Some(&comparable) {
            return;
        }
        match self
            .client
            .patch(
                &format!("{path}/status"),
                PatchType::Merge,
                &json!({"status": status}),
            )
            .await
        {
            Ok(_) => {
                self.posted.insert(uid, comparable);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => logf!(
                COMPONENT,
                "Failed to update status for pod {namespace}/{name}: {e}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_fields_and_selected_keys() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "shop", "uid": "u",
                                      "labels": {"b": "2", "a": "1"}, "annotations": {"note": "x"}},
                         "spec": {"nodeName": "node2", "serviceAccountName": "robot"}});
        let text = |path: &str| match field(&pod, path, "10.213.0.12").unwrap() {
            Some(EnvValue::Text(t)) => t,
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(text("metadata.name"), "web-1");
        assert_eq!(text("metadata.labels"), "a=\"1\"\nb=\"2\"");
        assert_eq!(text("metadata.labels['b']"), "2");
        assert_eq!(text("metadata.annotations['note']"), "x");
        assert_eq!(text("spec.serviceAccountName"), "robot");
        assert_eq!(text("status.hostIP"), "10.213.0.12");
        assert_eq!(
            field(&pod, "status.podIP", "").unwrap(),
            Some(EnvValue::Field("status.podIP".into()))
        );
        assert!(field(&pod, "spec.volumes", "").is_err());

        let data: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into();
        let all = selected(&data, &Value::Null, 0o644, "cm").unwrap();
        assert_eq!(all.len(), 2);
        let items = json!([{"key": "b", "path": "dir/b.txt", "mode": 0o600}]);
        assert_eq!(
            selected(&data, &items, 0o644, "cm").unwrap(),
            vec![("dir/b.txt".to_string(), b"2".to_vec(), 0o600)]
        );
        assert!(selected(&data, &json!([{"key": "c", "path": "c"}]), 0o644, "cm").is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(write_file(dir.path(), "../escape", b"x", 0o644).is_err());
        write_file(dir.path(), "dir/b.txt", b"2", 0o600).unwrap();
        assert_eq!(std::fs::read(dir.path().join("dir/b.txt")).unwrap(), b"2");
    }

    #[test]
    fn service_links_as_the_kubelet_names_them() {
        let kubernetes = json!({"metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}});
        let headless = json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}});
        let dns = json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": {"clusterIP": "10.96.0.10",
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}});
        let env = super::service_env(&[&kubernetes, &headless, &dns]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        assert_eq!(get("KUBE_DNS_PORT"), Some("udp://10.96.0.10:53"));
        assert_eq!(get("KUBE_DNS_PORT_53_TCP_PROTO"), Some("tcp"));
        assert_eq!(get("KUBE_DNS_SERVICE_PORT_DNS_TCP"), Some("53"));
        assert!(get("DB_SERVICE_HOST").is_none());
    }
}
