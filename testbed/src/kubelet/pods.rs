//! The pod workers: static pods (the manifests in staticPodPath) and the API pods bound to this node
//! run through the node's container runtime (CRI), one sandbox per pod, its init containers one
//! after the other, then its containers, restarted by the pod's restartPolicy with the kubelet's
//! back-off, probed as the spec says, killed and re-created when a manifest changes and killed
//! when a manifest is removed or an API pod is deleted. Every pass relists the runtime (as the
//! kubelet's PLEG does): a restarted kubelet adopts the pods it left running, a pod whose sandbox
//! was stopped or removed behind its back gets a new one, and pods the kubelet does not want
//! (orphans) are killed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kubestrap::host::runtime::cri::api;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::cri::{CONTAINER_NAME, Cri, POD_UID, PodIdentity, RESTART_COUNT, Snapshot};
use crate::common::time;
use crate::logf;

const COMPONENT: &str = "kubelet";

/// The kubelet's view of one container of a pod.
#[derive(Debug)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// The container's entry of the pod spec.
    pub spec: Value,
    /// An init container (runs to completion before the next one and the containers).
    pub init: bool,
    /// A run that ended for good (restartPolicy, or an init container that completed):
    /// exit code, reason, finishedAt.
    pub terminated: Option<(i32, String, String)>,
    /// The runtime's id of the current (or last) run.
    pub id: Option<String>,
    pub running: bool,
    pub restart_count: u32,
    pub started_at: Option<String>,
    pub ready: bool,
    pub started: bool,
    pub last_exit: Option<(i32, String)>,
    pub waiting: Option<(String, String)>,
    next_start: Option<Instant>,
    /// The wait before the next restart after a crash (zero until the first one: the kubelet
    /// restarts a container at once the first time).
    backoff: Duration,
    generation: u64,
}

/// A value of a container's env an API pod resolves when the container starts.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvValue {
    Text(String),
    /// A fieldRef known only once the sandbox exists (`status.podIP`, `status.podIPs`).
    Field(String),
}

/// An API pod bound to this node, with what the kubelet prepared for it (volumes written, env
/// from ConfigMaps, Secrets and the downward API), or why it could not.
#[derive(Debug, Clone)]
pub struct ApiPod {
    pub manifest: Value,
    pub env: BTreeMap<String, Vec<(String, EnvValue)>>,
    pub error: Option<String>,
}

/// API pods by uid, kept by the node agent from the API server.
pub type ApiPods = Arc<Mutex<BTreeMap<String, ApiPod>>>;

/// The key of an API pod in the pod workers' map (static pods are keyed by their manifest file).
pub fn api_key(uid: &str) -> PathBuf {
    PathBuf::from("api").join(uid)
}

#[derive(Debug)]
pub struct StaticPod {
    /// The manifest file of a static pod, `api/<uid>` for an API pod.
    pub file: PathBuf,
    /// Whether the pod comes from the API server (not a manifest file).
    pub api: bool,
    /// The sandbox's pod IPs (none on the node's network).
    pub ips: Vec<String>,
    pub uid: String,
    pub manifest: Value,
    /// The runtime's sandbox of the pod, once there is one.
    pub sandbox_id: Option<String>,
    /// The sandbox attempt: a pod whose sandbox went away gets a new one with the next attempt.
    pub attempt: u32,
    pub containers: Vec<Container>,
    pub seen: String,
    pub error: Option<String>,
}

impl StaticPod {
    pub fn name(&self) -> &str {
        self.manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
    }
    pub fn namespace(&self) -> &str {
        self.manifest["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
    }

    pub fn host_network(&self) -> bool {
        self.manifest["spec"]["hostNetwork"]
            .as_bool()
            .unwrap_or(false)
    }

    /// The pod's hostname: the node's on the node's network, else spec.hostname or its name.
    fn hostname<'a>(&'a self, node_name: &'a str) -> &'a str {
        if self.host_network() || !self.api {
            return node_name;
        }
        self.manifest["spec"]["hostname"]
            .as_str()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| {
                let name = self.name();
                &name[..name.len().min(63)]
            })
    }

    fn identity<'a>(&'a self, rt: &'a Runtime) -> PodIdentity<'a> {
        let node_name = rt.node_name.as_str();
        PodIdentity {
            name: if self.api {
                self.name().to_string()
            } else {
                format!("{}-{node_name}", self.name())
            },
            namespace: self.namespace(),
            uid: &self.uid,
            attempt: self.attempt,
            manifest: &self.manifest,
            hostname: self.hostname(node_name),
            source: if self.api { "api" } else { "file" },
            dns: if self.api {
                Some(rt.dns_config(&self.manifest))
            } else {
                None
            },
            hosts: (self.api && !self.host_network()).then(|| self.hosts_file()),
        }
    }

    fn hosts_file(&self) -> PathBuf {
        PathBuf::from("/var/lib/kubelet/pods")
            .join(&self.uid)
            .join("etc-hosts")
    }

    fn grace(&self) -> Duration {
        let seconds = self.manifest["metadata"]["deletionGracePeriodSeconds"]
            .as_u64()
            .or(self.manifest["spec"]["terminationGracePeriodSeconds"].as_u64())
            .unwrap_or(30);
        Duration::from_secs(seconds.min(30))
    }

    fn restart_policy(&self) -> &str {
        self.manifest["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
    }

    /// The index of the first init container that has not completed yet.
    fn pending_init(&self) -> Option<usize> {
        self.containers
            .iter()
            .position(|c| c.init && c.terminated.as_ref().is_none_or(|t| t.0 != 0))
    }

    fn running_ids(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter(|c| c.running)
            .filter_map(|c| c.id.clone())
            .collect()
    }
}

pub type Pods = Arc<Mutex<BTreeMap<PathBuf, StaticPod>>>;

/// Where the kubelet double runs, its pods and its container runtime.
#[derive(Clone)]
pub struct Runtime {
    pub node_name: String,
    pub node_ip: String,
    pub manifest_dir: Option<PathBuf>,
    pub pods: Pods,
    pub cri: Cri,
    /// The API pods bound to this node (empty without an API server).
    pub api_pods: ApiPods,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    pub resolv_conf: PathBuf,
}

/// A pod to kill: its sandbox, its running containers and their grace period.
struct Doomed {
    what: String,
    sandbox: String,
    running: Vec<String>,
    grace: Duration,
}

/// An RFC 3339 time from the CRI's nanoseconds.
fn rfc3339(nanos: i64) -> Option<String> {
    let t = ::time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).ok()?;
    (nanos > 0).then(|| time::format_seconds(t))
}

/// The static pod's UID (kubernetes.io/config.hash): derived from the manifest and the node.
pub fn config_hash(node: &str, content: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"\0file\0");
    h.update(content);
    hex::encode(&h.finalize()[..16])
}

/// Parses and checks a manifest as the kubelet's file source does.
pub fn parse_manifest(text: &str) -> Result<Value> {
    let pod: Value = serde_saphyr::from_str(text).context("invalid pod manifest")?;
    if pod["kind"].as_str() != Some("Pod") || pod["apiVersion"].as_str() != Some("v1") {
        bail!(
            "invalid pod: the manifest is not a v1 Pod (kind {:?}, apiVersion {:?})",
            pod["kind"],
            pod["apiVersion"]
        );
    }
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty() || !crate::apiserver::validation::is_dns_subdomain(name) {
        bail!("invalid pod: metadata.name {name:?} is not a valid name");
    }
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if containers.is_empty() {
        bail!("invalid pod: spec.containers: Required value");
    }
    for (i, c) in containers.iter().enumerate() {
        if c["name"]
            .as_str()
            .is_none_or(|n| !crate::apiserver::validation::is_dns_label(n))
        {
            bail!(
                "invalid pod: spec.containers[{i}].name: Invalid value: {}",
                c["name"]
            );
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            bail!("invalid pod: spec.containers[{i}].image: Required value");
        }
    }
    for (i, v) in pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let allowed = v["hostPath"].is_object() || v["emptyDir"].is_object();
        if !allowed {
            bail!(
                "invalid pod: spec.volumes[{i}]: static pods may only use hostPath and emptyDir volumes (they cannot reference API objects)"
            );
        }
    }
    Ok(pod)
}

/// Checks a hostPath volume's type as the kubelet does before starting the pod, creating the
/// path for the *OrCreate types.
fn check_host_path(path: &Path, kind: &str) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).ok();
    match kind {
        "DirectoryOrCreate" if meta.is_none() => {
            std::fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        }
        "DirectoryOrCreate" | "Directory" => match meta {
            Some(m) if m.is_dir() => {}
            _ => bail!(
                "hostPath type check failed: {} is not a directory",
                path.display()
            ),
        },
        "FileOrCreate" if meta.is_none() => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, b"").with_context(|| format!("create {}", path.display()))?;
        }
        "FileOrCreate" | "File" => match meta {
            Some(m) if m.is_file() => {}
            _ => bail!(
                "hostPath type check failed: {} is not a file",
                path.display()
            ),
        },
        "Socket" => match meta {
            Some(m) if m.file_type().is_socket() => {}
            _ => bail!(
                "hostPath type check failed: {} is not a socket file",
                path.display()
            ),
        },
        "" if meta.is_none() => std::fs::create_dir_all(path)?,
        _ => {}
    }
    Ok(())
}

/// The container's `env`, resolved as the kubelet does for a static pod (the image's own variables,
/// PATH among them, are the runtime's).
fn container_env(rt: &Runtime, pod: &Value, c: &Value) -> Result<Vec<(String, String)>> {
    static_env(rt, pod, c)
}

/// An API pod's prepared env with the pod's IPs filled in.
fn resolve_env(
    prepared: &[(String, EnvValue)],
    ips: &[String],
    node_ip: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (name, value) in prepared {
        let value = match value {
            EnvValue::Text(t) => t.clone(),
            EnvValue::Field(f) => match f.as_str() {
                "status.podIP" => ips.first().cloned().unwrap_or_else(|| node_ip.to_string()),
                "status.podIPs" => {
                    if ips.is_empty() {
                        node_ip.to_string()
                    } else {
                        ips.join(",")
                    }
                }
                _ => String::new(),
            },
        };
        let expanded = expand(&value, &env);
        env.retain(|(k, _)| k != name);
        env.push((name.clone(), expanded));
    }
    env
}

/// `$(VAR)` references to variables defined earlier, as the kubelet expands them (`$$` escapes).
pub fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn static_env(rt: &Runtime, pod: &Value, c: &Value) -> Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if let Some(field) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match field {
                "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => {
                    rt.node_ip.clone()
                }
                "spec.nodeName" => rt.node_name.clone(),
                "metadata.name" => pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                "metadata.namespace" => pod["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string(),
                other => bail!(
                    "CreateContainerConfigError: unsupported fieldRef {other:?} in a static pod"
                ),
            }
        } else if e["valueFrom"].is_object() {
            bail!(
                "CreateContainerConfigError: static pods cannot take env values from API objects ({name})"
            );
        } else {
            String::new()
        };
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    }
    Ok(env)
}

impl Runtime {
    /// The manifests on disk now: file → (uid, pod), skipping invalid ones with a log line.
    fn desired(
        &self,
        reported: &mut BTreeMap<PathBuf, String>,
    ) -> BTreeMap<PathBuf, (String, Value)> {
        let mut out = BTreeMap::new();
        let Some(dir) = &self.manifest_dir else {
            return out;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| n.starts_with('.'));
            if hidden || !path.is_file() {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let uid = config_hash(&self.node_name, &bytes);
            match parse_manifest(&String::from_utf8_lossy(&bytes)) {
                Ok(pod) => {
                    out.insert(path, (uid, pod));
                }
                Err(e) => {
                    if reported.get(&path) != Some(&uid) {
                        logf!(
                            COMPONENT,
                            "Could not process manifest file {}: {e:#}",
                            path.display()
                        );
                        reported.insert(path, uid);
                    }
                }
            }
        }
        out
    }

    /// The API pods to run: bound here, neither terminating nor finished.
    fn desired_api(&self) -> BTreeMap<PathBuf, (String, Value)> {
        let Ok(pods) = self.api_pods.lock() else {
            return BTreeMap::new();
        };
        pods.iter()
            .filter(|(_, p)| p.manifest["metadata"]["deletionTimestamp"].is_null())
            .filter(|(_, p)| {
                !matches!(
                    p.manifest["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                )
            })
            .map(|(uid, p)| (api_key(uid), (uid.clone(), p.manifest.clone())))
            .collect()
    }

    /// The DNS config of a pod's sandbox, by its dnsPolicy as the kubelet's DNS configurer
    /// resolves it: ClusterFirst (pods off the node's network) and ClusterFirstWithHostNet use
    /// clusterDNS with the cluster's search path and `ndots:5`, Default the kubelet's resolvConf,
    /// None only the pod's dnsConfig, which is merged into the others.
    pub fn dns_config(&self, pod: &Value) -> api::DnsConfig {
        let spec = &pod["spec"];
        let host_network = spec["hostNetwork"].as_bool().unwrap_or(false);
        let policy = spec["dnsPolicy"].as_str().unwrap_or("ClusterFirst");
        let node = std::fs::read_to_string(&self.resolv_conf).unwrap_or_default();
        let field = |key: &str| -> Vec<String> {
            node.lines()
                .filter_map(|l| l.strip_prefix(key))
                .flat_map(|rest| rest.split_whitespace().map(str::to_string))
                .collect()
        };
        let default = api::DnsConfig {
            servers: field("nameserver "),
            searches: field("search "),
            options: field("options "),
        };
        let cluster_first = match policy {
            "ClusterFirstWithHostNet" => true,
            "ClusterFirst" => !host_network,
            _ => false,
        } && !self.cluster_dns.is_empty();
        let mut dns = if policy == "None" {
            api::DnsConfig::default()
        } else if cluster_first {
            let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
            let domain = &self.cluster_domain;
            let mut searches = vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.clone(),
            ];
            searches.extend(default.searches.clone());
            api::DnsConfig {
                servers: self.cluster_dns.clone(),
                searches,
                options: vec!["ndots:5".into()],
            }
        } else {
            default
        };
        let extra = &spec["dnsConfig"];
        for s in extra["nameservers"].as_array().into_iter().flatten() {
            if let Some(s) = s.as_str() {
                dns.servers.push(s.to_string());
            }
        }
        for s in extra["searches"].as_array().into_iter().flatten() {
            if let Some(s) = s.as_str() {
                dns.searches.push(s.to_string());
            }
        }
        for o in extra["options"].as_array().into_iter().flatten() {
            let Some(name) = o["name"].as_str() else {
                continue;
            };
            dns.options.retain(|x| x.split(':').next() != Some(name));
            dns.options.push(match o["value"].as_str() {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            });
        }
        dns
    }

    /// The kubelet-managed /etc/hosts of a pod on the pod network.
    fn write_hosts(&self, pod: &StaticPod) -> Result<()> {
        let mut text = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        let hostname = pod.hostname(&self.node_name);
        let names = match pod.manifest["spec"]["subdomain"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            Some(sub) => format!(
                "{hostname}.{sub}.{}.svc.{}\t{hostname}",
                pod.namespace(),
                self.cluster_domain
            ),
            None => hostname.to_string(),
        };
        for ip in &pod.ips {
            text.push_str(&format!("{ip}\t{names}\n"));
        }
        let aliases = pod.manifest["spec"]["hostAliases"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !aliases.is_empty() {
            text.push_str("\n# Entries added by HostAliases.\n");
            for a in aliases {
                let names: Vec<&str> = a["hostnames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                text.push_str(&format!(
                    "{}\t{}\n",
                    a["ip"].as_str().unwrap_or_default(),
                    names.join("\t")
                ));
            }
        }
        let path = pod.hosts_file();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
    }

    fn new_pod(&self, file: PathBuf, uid: String, manifest: Value) -> StaticPod {
        let api = file.starts_with("api");
        let init = manifest["spec"]["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let containers = init
            .iter()
            .map(|c| (c, true))
            .chain(
                manifest["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| (c, false)),
            )
            .map(|(c, init)| Container {
                name: c["name"].as_str().unwrap_or_default().to_string(),
                image: c["image"].as_str().unwrap_or_default().to_string(),
                spec: c.clone(),
                init,
                terminated: None,
                id: None,
                running: false,
                restart_count: 0,
                started_at: None,
                ready: false,
                started: false,
                last_exit: None,
                waiting: Some((
                    if init {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    }
                    .into(),
                    String::new(),
                )),
                next_start: Some(Instant::now()),
                backoff: Duration::ZERO,
                generation: 0,
            })
            .collect();
        StaticPod {
            file,
            api,
            ips: Vec::new(),
            uid,
            manifest,
            sandbox_id: None,
            attempt: 0,
            containers,
            seen: time::now(),
            error: None,
        }
    }

    /// Takes over the pod's ready sandbox and containers if the runtime has them (a kubelet
    /// restarted while its pods kept running).
    fn adopt(&self, pod: &mut StaticPod, snapshot: &Snapshot) {
        let Some(sandbox) = snapshot
            .sandboxes
            .iter()
            .filter(|s| s.labels.get(POD_UID) == Some(&pod.uid))
            .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
            .max_by_key(|s| s.created_at)
        else {
            return;
        };
        pod.sandbox_id = Some(sandbox.id.clone());
        pod.ips = self.cri.sandbox_ips(&sandbox.id).unwrap_or_default();
        pod.attempt = sandbox.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
        for c in &mut pod.containers {
            let Some(found) = snapshot
                .containers_of(&sandbox.id)
                .filter(|r| r.labels.get(CONTAINER_NAME) == Some(&c.name))
                .max_by_key(|r| r.created_at)
            else {
                continue;
            };
            c.id = Some(found.id.clone());
            c.running = true;
            c.restart_count = found
                .annotations
                .get(RESTART_COUNT)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            c.started_at = self
                .cri
                .container_status(&found.id)
                .ok()
                .and_then(|s| rfc3339(s.started_at));
            c.waiting = None;
            c.next_start = None;
        }
        logf!(
            COMPONENT,
            "Adopted static pod {}/{} from the runtime (sandbox {})",
            pod.namespace(),
            pod.name(),
            sandbox.id
        );
    }

    fn doomed(&self, pod: &StaticPod, why: &str) -> Option<Doomed> {
        Some(Doomed {
            what: format!(
                "{} {}/{} ({why})",
                if pod.api { "pod" } else { "static pod" },
                pod.namespace(),
                pod.name()
            ),
            sandbox: pod.sandbox_id.clone()?,
            running: pod.running_ids(),
            grace: pod.grace(),
        })
    }

    /// Queues a pod that is no longer wanted for killing (if it has a sandbox).
    fn kill_stale(&self, doomed: &mut BTreeMap<String, Doomed>, pod: &StaticPod) {
        let why = if pod.api {
            "it was deleted or is no longer bound here"
        } else {
            "its manifest changed or was removed"
        };
        if let Some(d) = self.doomed(pod, why) {
            doomed.insert(d.sandbox.clone(), d);
        }
    }

    fn kill(&self, doomed: &Doomed) {
        logf!(
            COMPONENT,
            "Killing {} (sandbox {})",
            doomed.what,
            doomed.sandbox
        );
        if let Err(e) = self
            .cri
            .kill_pod(&doomed.sandbox, &doomed.running, doomed.grace)
        {
            logf!(COMPONENT, "Failed to kill {}: {e:#}", doomed.what);
        }
    }

    /// Records the end of a container's run: the restart happens at once the first time, then
    /// after the back-off (10 s doubling to 5 min; reset after 10 minutes of running).
    fn record_exit(pod_name: &str, c: &mut Container, code: i32, finished: Option<String>) {
        let ran = c
            .started_at
            .as_deref()
            .and_then(time::parse)
            .map(|t| time::unix_now() - t.unix_timestamp())
            .unwrap_or(0);
        c.running = false;
        c.ready = false;
        c.started = false;
        c.last_exit = Some((code, finished.unwrap_or_else(time::now)));
        c.restart_count += 1;
        let wait = if c.backoff.is_zero() || ran > 600 {
            c.backoff = Duration::from_secs(10);
            Duration::ZERO
        } else {
            let wait = c.backoff;
            c.backoff = (c.backoff * 2).min(Duration::from_secs(300));
            wait
        };
        c.next_start = Some(Instant::now() + wait);
        c.waiting = Some((
            "CrashLoopBackOff".into(),
            format!(
                "back-off {}s restarting failed container={} pod={pod_name}",
                wait.as_secs(),
                c.name,
            ),
        ));
        logf!(
            COMPONENT,
            "Container {} of static pod {pod_name} exited with code {code}; restarting in {}s",
            c.name,
            wait.as_secs()
        );
    }

    /// Starts container `index` of the pod (its sandbox first, if it has none): image, sandbox,
    /// env (an API pod's fieldRefs to its IPs need the sandbox), create, start.
    fn start_container(&self, pod: &mut StaticPod, index: usize) -> Result<(), (String, String)> {
        let fail = |reason: &str, e: anyhow::Error| (reason.to_string(), format!("{e:#}"));
        let image = pod.containers[index].image.clone();
        self.cri
            .ensure_image(&image)
            .map_err(|e| fail("ErrImagePull", e))?;
        let sandbox_config = pod.identity(self).sandbox_config(&pod.seen);
        let sandbox = match &pod.sandbox_id {
            Some(id) => id.clone(),
            None => {
                std::fs::create_dir_all(pod.identity(self).log_directory())
                    .context("create the pod's log directory")
                    .map_err(|e| fail("CreatePodSandboxError", e))?;
                let id = self
                    .cri
                    .run_sandbox(sandbox_config.clone())
                    .map_err(|e| fail("CreatePodSandboxError", e))?;
                pod.sandbox_id = Some(id.clone());
                pod.ips = self.cri.sandbox_ips(&id).unwrap_or_default();
                id
            }
        };
        if pod.api && !pod.host_network() {
            self.write_hosts(pod)
                .map_err(|e| fail("CreateContainerConfigError", e))?;
        }
        let spec = pod.containers[index].spec.clone();
        let env = if pod.api {
            let prepared = self
                .api_pods
                .lock()
                .ok()
                .and_then(|p| {
                    p.get(&pod.uid)?
                        .env
                        .get(&pod.containers[index].name)
                        .cloned()
                })
                .unwrap_or_default();
            resolve_env(&prepared, &pod.ips, &self.node_ip)
        } else {
            container_env(self, &pod.manifest, &spec)
                .map_err(|e| fail("CreateContainerConfigError", e))?
        };
        let restart_count = pod.containers[index].restart_count;
        let config = pod
            .identity(self)
            .container_config(&spec, restart_count, env, pod.grace())
            .map_err(|e| fail("CreateContainerConfigError", e))?;
        let c = &mut pod.containers[index];
        if let Some(previous) = c.id.take()
            && let Err(e) = self.cri.remove_container(&previous)
        {
            logf!(
                COMPONENT,
                "Failed to remove the previous run of {}: {e:#}",
                c.name
            );
        }
        let id = self
            .cri
            .create_container(&sandbox, config, sandbox_config)
            .map_err(|e| fail("CreateContainerError", e))?;
        c.id = Some(id.clone());
        self.cri
            .start_container(&id)
            .map_err(|e| fail("RunContainerError", e))?;
        c.running = true;
        c.started_at = Some(time::now());
        c.waiting = None;
        c.ready = false;
        c.started = false;
        c.generation += 1;
        logf!(
            COMPONENT,
            "Started container {} of pod {}/{} (container {id})",
            c.name,
            pod.manifest["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default"),
            pod.manifest["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
        );
        Ok(())
    }

    /// What keeps the pod's volumes from being set up: the API pod's preparation error, or a
    /// hostPath type check, as the volume manager does before a start.
    fn volume_error(&self, pod: &StaticPod) -> Option<String> {
        if pod.api
            && let Some(e) = self
                .api_pods
                .lock()
                .ok()
                .and_then(|p| p.get(&pod.uid).and_then(|a| a.error.clone()))
        {
            return Some(e);
        }
        pod.manifest["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|v| {
                let path = v["hostPath"]["path"].as_str()?;
                check_host_path(
                    Path::new(path),
                    v["hostPath"]["type"].as_str().unwrap_or_default(),
                )
                .err()
                .map(|e| {
                    format!(
                        "MountVolume.SetUp failed for volume {:?} : {e:#}",
                        v["name"].as_str().unwrap_or_default()
                    )
                })
            })
    }

    /// Brings one wanted pod to its desired state against the relisted runtime.
    fn sync_pod(
        &self,
        pod: &mut StaticPod,
        snapshot: &Snapshot,
        started: &mut Vec<(PathBuf, usize, u64)>,
    ) {
        let volume_error = self.volume_error(pod);
        if let Some(e) = &volume_error
            && pod.error.as_ref() != Some(e)
        {
            logf!(COMPONENT, "{e}");
        }
        pod.error = volume_error;
        if pod.error.is_some() {
            return;
        }
        if let Some(id) = pod.sandbox_id.clone()
            && !snapshot.sandbox_ready(&id)
        {
            logf!(
                COMPONENT,
                "The sandbox of static pod {}/{} was stopped or removed; killing it and starting a new one",
                pod.namespace(),
                pod.name()
            );
            if let Err(e) = self.cri.kill_pod(&id, &[], Duration::ZERO) {
                logf!(COMPONENT, "Failed to remove sandbox {id}: {e:#}");
            }
            pod.sandbox_id = None;
            pod.ips.clear();
            pod.attempt += 1;
            for c in &mut pod.containers {
                // A new sandbox runs the init containers again, as the kubelet does.
                c.terminated = None;
                if c.running {
                    c.running = false;
                    c.ready = false;
                    c.started = false;
                    c.restart_count += 1;
                    c.last_exit = Some((137, time::now()));
                }
                c.id = None;
                c.next_start = Some(Instant::now());
            }
        }
        let pod_name = format!("{}_{}", pod.name(), pod.namespace());
        let policy = pod.restart_policy().to_string();
        for i in 0..pod.containers.len() {
            let c = &mut pod.containers[i];
            if c.running {
                let id = c.id.clone().unwrap_or_default();
                match snapshot.container_state(&id) {
                    Some(api::ContainerState::ContainerRunning) => continue,
                    Some(_) => {
                        let (code, finished) = match self.cri.container_status(&id) {
                            Ok(s) => (s.exit_code, rfc3339(s.finished_at)),
                            Err(_) => (137, None),
                        };
                        Self::exited(&pod_name, &policy, c, code, finished);
                    }
                    None => {
                        // Removed behind the kubelet's back: start it again at once.
                        Self::record_exit(&pod_name, c, 137, None);
                        c.id = None;
                        c.next_start = Some(Instant::now());
                    }
                }
            }
        }
        // Init containers one at a time, in order; the containers once all have completed.
        let pending_init = pod.pending_init();
        for i in 0..pod.containers.len() {
            let c = &pod.containers[i];
            let allowed = match pending_init {
                Some(first) => c.init && i == first,
                None => !c.init,
            };
            if !allowed || c.running || c.terminated.is_some() {
                continue;
            }
            if pod.containers[i]
                .next_start
                .is_some_and(|t| Instant::now() >= t)
            {
                match self.start_container(pod, i) {
                    Ok(()) => {
                        let c = &mut pod.containers[i];
                        c.next_start = None;
                        started.push((pod.file.clone(), i, c.generation));
                    }
                    Err((reason, message)) => {
                        let c = &mut pod.containers[i];
                        if c.waiting.as_ref().map(|(_, m)| m) != Some(&message) {
                            logf!(
                                COMPONENT,
                                "Error starting container {}: {reason}: {message}",
                                c.name
                            );
                        }
                        c.waiting = Some((reason, message));
                        c.next_start = Some(Instant::now() + Duration::from_secs(10));
                    }
                }
            }
        }
    }

    /// The end of a container's run under the pod's restartPolicy: an init container that
    /// completed, or a container that is not restarted (Never; OnFailure after success), ends for
    /// good; otherwise it is restarted after the back-off.
    fn exited(
        pod_name: &str,
        policy: &str,
        c: &mut Container,
        code: i32,
        finished: Option<String>,
    ) {
        let restart = match policy {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => !c.init || code != 0,
        };
        if restart {
            Self::record_exit(pod_name, c, code, finished);
            return;
        }
        c.running = false;
        c.ready = false;
        c.started = false;
        c.waiting = None;
        c.next_start = None;
        let reason = if code == 0 { "Completed" } else { "Error" };
        c.terminated = Some((code, reason.into(), finished.unwrap_or_else(time::now)));
        logf!(
            COMPONENT,
            "Container {} of pod {pod_name} terminated with code {code}",
            c.name
        );
    }

    /// One pass of the pod workers: relist the runtime, kill removed, changed and orphaned pods,
    /// then start new pods and restart exited containers once their back-off has passed.
    fn sync(&self, reported: &mut BTreeMap<PathBuf, String>) -> Vec<(PathBuf, usize, u64)> {
        let mut started = Vec::new();
        let mut desired = self.desired(reported);
        desired.extend(self.desired_api());
        let Some(snapshot) = self.cri.relist() else {
            return started;
        };
        let mut doomed = BTreeMap::new();
        {
            let Ok(mut pods) = self.pods.lock() else {
                return started;
            };
            let stale: Vec<PathBuf> = pods
                .iter()
                .filter(|(file, pod)| desired.get(*file).is_none_or(|(uid, _)| *uid != pod.uid))
                .map(|(file, _)| file.clone())
                .collect();
            for file in stale {
                if let Some(mut pod) = pods.remove(&file) {
                    // A deleted API pod is killed with its deletion's grace period.
                    if pod.api
                        && let Some(latest) =
                            self.api_pods.lock().ok().and_then(|p| {
                                p.get(&pod.uid).map(|a| a.manifest["metadata"].clone())
                            })
                    {
                        pod.manifest["metadata"] = latest;
                    }
                    self.kill_stale(&mut doomed, &pod);
                }
            }
            for (file, (uid, manifest)) in &desired {
                if !pods.contains_key(file) {
                    let mut pod = self.new_pod(file.clone(), uid.clone(), manifest.clone());
                    self.adopt(&mut pod, &snapshot);
                    pods.insert(file.clone(), pod);
                }
            }
            let tracked: HashSet<&str> = pods
                .values()
                .filter_map(|p| p.sandbox_id.as_deref())
                .collect();
            for s in &snapshot.sandboxes {
                if tracked.contains(s.id.as_str()) || doomed.contains_key(&s.id) {
                    continue;
                }
                let meta = s.metadata.clone().unwrap_or_default();
                doomed.insert(
                    s.id.clone(),
                    Doomed {
                        what: format!("pod {}/{} (no longer wanted)", meta.namespace, meta.name),
                        sandbox: s.id.clone(),
                        running: snapshot
                            .containers_of(&s.id)
                            .filter(|c| c.state == api::ContainerState::ContainerRunning as i32)
                            .map(|c| c.id.clone())
                            .collect(),
                        grace: Duration::from_secs(30),
                    },
                );
            }
        }
        for d in doomed.values() {
            self.kill(d);
        }
        let Ok(mut pods) = self.pods.lock() else {
            return started;
        };
        for pod in pods.values_mut() {
            self.sync_pod(pod, &snapshot, &mut started);
        }
        started
    }

    /// Runs the pod workers forever.
    pub async fn run(self, period: Duration) {
        let mut reported = BTreeMap::new();
        loop {
            let rt = self.clone();
            let mut r = std::mem::take(&mut reported);
            let started = tokio::task::spawn_blocking(move || {
                let s = rt.sync(&mut r);
                (s, r)
            })
            .await;
            if let Ok((started, r)) = started {
                reported = r;
                for (file, index, generation) in started {
                    tokio::spawn(super::probes::run(self.clone(), file, index, generation));
                }
            }
            tokio::time::sleep(period).await;
        }
    }

    /// Kills a container through the runtime (a failed liveness or startup probe); the pod
    /// workers restart it.
    pub async fn kill_container(&self, file: &Path, index: usize, generation: u64) {
        let target = self.pods.lock().ok().and_then(|pods| {
            let pod = pods.get(file)?;
            let c = pod.containers.get(index)?;
            (c.generation == generation && c.running).then(|| (c.id.clone(), pod.grace()))
        });
        if let Some((Some(id), grace)) = target
            && let Err(e) = self.cri.stop_container(&id, grace).await
        {
            logf!(COMPONENT, "Failed to kill container {id}: {e:#}");
        }
    }

    /// Records a probe result for the container's current run.
    pub fn set_probe_state(
        &self,
        file: &Path,
        index: usize,
        generation: u64,
        started: Option<bool>,
        ready: Option<bool>,
    ) -> bool {
        let Ok(mut pods) = self.pods.lock() else {
            return false;
        };
        match pods.get_mut(file).and_then(|p| p.containers.get_mut(index)) {
            Some(c) if c.generation == generation && c.running => {
                if let Some(s) = started {
                    c.started = s;
                }
                if let Some(r) = ready {
                    c.ready = r;
                }
                true
            }
            _ => false,
        }
    }

    /// The manifest of a running container, if that run is still current.
    pub fn container_manifest(&self, file: &Path, index: usize, generation: u64) -> Option<Value> {
        let pods = self.pods.lock().ok()?;
        let pod = pods.get(file)?;
        let c = pod.containers.get(index)?;
        (c.generation == generation && c.running).then(|| c.spec.clone())
    }

    /// Where a container's probes go: the pod's IP (the node's on the node's network) and the
    /// container's runtime id (exec probes), if that run is still current.
    pub fn probe_target(
        &self,
        file: &Path,
        index: usize,
        generation: u64,
    ) -> Option<(String, String)> {
        let pods = self.pods.lock().ok()?;
        let pod = pods.get(file)?;
        let c = pod.containers.get(index)?;
        (c.generation == generation && c.running).then(|| {
            (
                pod.ips
                    .first()
                    .cloned()
                    .unwrap_or_else(|| self.node_ip.clone()),
                c.id.clone().unwrap_or_default(),
            )
        })
    }
}

fn container_status(c: &Container) -> Value {
    let container_id =
        c.id.as_ref()
            .map(|id| format!("{}://{id}", crate::cri::service::RUNTIME_NAME));
    let state = match (c.running, &c.terminated, &c.waiting) {
        (true, _, _) => json!({"running": {"startedAt": c.started_at}}),
        (false, Some((code, reason, at)), _) => json!({"terminated": {
            "exitCode": code, "reason": reason, "startedAt": c.started_at, "finishedAt": at,
            "containerID": container_id,
        }}),
        (false, None, Some((reason, message))) => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        (false, None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
    };
    let mut status = json!({
        "name": c.name,
        "image": c.image,
        "imageID": format!("testbed://{}", c.image),
        "ready": c.ready,
        "started": c.started,
        "restartCount": c.restart_count,
        "state": state,
    });
    if let Some(id) = container_id.filter(|_| c.running || c.terminated.is_some()) {
        status["containerID"] = json!(id);
    }
    if let Some((code, at)) = &c.last_exit {
        status["lastState"] = json!({"terminated": {"exitCode": code, "finishedAt": at, "reason": if *code == 0 { "Completed" } else { "Error" }}});
    }
    status
}

/// The pod status the kubelet reports: a static pod's (on its mirror pod) or an API pod's.
pub fn pod_status(pod: &StaticPod, node_ip: &str) -> Value {
    let (init, app): (Vec<&Container>, Vec<&Container>) =
        pod.containers.iter().partition(|c| c.init);
    let statuses: Vec<Value> = app.iter().map(|c| container_status(c)).collect();
    let all_ready = app.iter().all(|c| c.ready);
    let initialized = pod.pending_init().is_none();
    let finished = app.iter().all(|c| c.terminated.is_some());
    let running = app.iter().all(|c| c.running);
    let now = time::now();
    let condition = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
    let phase = if finished && !app.is_empty() {
        if app
            .iter()
            .all(|c| c.terminated.as_ref().is_some_and(|t| t.0 == 0))
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if initialized && (running || app.iter().any(|c| c.running || c.restart_count > 0)) {
        "Running"
    } else {
        "Pending"
    };
    let ips: Vec<String> = if pod.ips.is_empty() && (pod.host_network() || !pod.api) {
        vec![node_ip.to_string()]
    } else {
        pod.ips.clone()
    };
    let qos = if pod.containers.iter().any(|c| {
        c.spec["resources"]["requests"].is_object() || c.spec["resources"]["limits"].is_object()
    }) {
        "Burstable"
    } else {
        "BestEffort"
    };
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition(
                "PodReadyToStartContainers",
                pod.error.is_none() && (!pod.api || pod.sandbox_id.is_some()),
            ),
            condition("Initialized", initialized),
            condition("Ready", all_ready && !finished),
            condition("ContainersReady", all_ready && !finished),
            condition("PodScheduled", true),
        ],
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "startTime": pod.seen,
        "qosClass": if pod.api { qos } else { "Burstable" },
        "containerStatuses": statuses,
    });
    if let Some(first) = ips.first() {
        status["podIP"] = json!(first);
        status["podIPs"] = json!(ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>());
    }
    if !init.is_empty() {
        status["initContainerStatuses"] =
            json!(init.iter().map(|c| container_status(c)).collect::<Vec<_>>());
    }
    if let Some(e) = &pod.error {
        status["message"] = json!(e);
        status["phase"] = json!("Pending");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(resolv: &Path) -> Runtime {
        Runtime {
            node_name: "node2".into(),
            node_ip: "10.213.0.12".into(),
            manifest_dir: None,
            pods: Arc::new(Mutex::new(BTreeMap::new())),
            cri: Cri::new("unix:///nonexistent.sock").unwrap(),
            api_pods: Arc::new(Mutex::new(BTreeMap::new())),
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            resolv_conf: resolv.to_path_buf(),
        }
    }

    #[test]
    fn dns_policy_decides_the_sandbox_dns_config() {
        let dir = tempfile::tempdir().unwrap();
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(
            &resolv,
            "nameserver 10.213.0.53\nsearch example.org\noptions ndots:0\n",
        )
        .unwrap();
        let rt = runtime(&resolv);
        let pod = |spec: Value| json!({"metadata": {"namespace": "web"}, "spec": spec});
        let first = rt.dns_config(&pod(json!({})));
        assert_eq!(first.servers, ["10.96.0.10"]);
        assert_eq!(
            first.searches,
            [
                "web.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "example.org"
            ]
        );
        assert_eq!(first.options, ["ndots:5"]);
        // On the node's network ClusterFirst falls back to the kubelet's resolvConf …
        let host = rt.dns_config(&pod(json!({"hostNetwork": true})));
        assert_eq!(host.servers, ["10.213.0.53"]);
        assert_eq!(host.options, ["ndots:0"]);
        // … unless the pod asks for ClusterFirstWithHostNet.
        let with = rt.dns_config(&pod(
            json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
        ));
        assert_eq!(with.servers, ["10.96.0.10"]);
        let none = rt.dns_config(&pod(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}})));
        assert_eq!(none.servers, ["1.1.1.1"]);
        assert_eq!(none.searches, ["a.b"]);
        assert_eq!(none.options, ["ndots:2", "edns0"]);
        let merged = rt.dns_config(&pod(
            json!({"dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}),
        ));
        assert_eq!(merged.options, ["ndots:1"]);
    }

    #[test]
    fn env_values_expand_earlier_variables_and_pod_ips() {
        let prepared = vec![
            ("NODE".to_string(), EnvValue::Text("node2".into())),
            ("IP".to_string(), EnvValue::Field("status.podIP".into())),
            ("IPS".to_string(), EnvValue::Field("status.podIPs".into())),
            (
                "URL".to_string(),
                EnvValue::Text("http://$(IP):80/$(NODE)/$(MISSING)/$$(NODE)".into()),
            ),
        ];
        let ips = ["10.244.1.5".to_string(), "fd00:10:244:1::5".to_string()];
        let env = resolve_env(&prepared, &ips, "10.213.0.12");
        assert_eq!(env[1], ("IP".into(), "10.244.1.5".into()));
        assert_eq!(env[2], ("IPS".into(), "10.244.1.5,fd00:10:244:1::5".into()));
        assert_eq!(env[3].1, "http://10.244.1.5:80/node2/$(MISSING)/$(NODE)");
        // On the node's network the pod's IP is the node's.
        assert_eq!(
            resolve_env(&prepared, &[], "10.213.0.12")[1].1,
            "10.213.0.12"
        );
    }

    #[test]
    fn init_containers_gate_the_containers_and_restart_policy_ends_runs() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(&dir.path().join("resolv.conf"));
        let manifest = json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"restartPolicy": "OnFailure", "initContainers": [{"name": "seed", "image": "busybox"}],
                     "containers": [{"name": "main", "image": "busybox"}]}});
        let mut pod = rt.new_pod(api_key("u1"), "u1".into(), manifest);
        assert!(pod.api && pod.containers[0].init && !pod.containers[1].init);
        assert_eq!(pod.pending_init(), Some(0));
        let status = pod_status(&pod, "10.213.0.12");
        assert_eq!(status["phase"], "Pending");
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert!(
            status["podIP"].is_null(),
            "no IP before the sandbox: {status}"
        );
        pod.containers[0].running = true;
        Runtime::exited("p_default", "OnFailure", &mut pod.containers[0], 0, None);
        assert_eq!(pod.pending_init(), None);
        pod.containers[1].running = true;
        Runtime::exited("p_default", "OnFailure", &mut pod.containers[1], 1, None);
        assert!(
            pod.containers[1].terminated.is_none(),
            "a failure is restarted under OnFailure"
        );
        assert_eq!(pod.containers[1].restart_count, 1);
        pod.containers[1].running = true;
        Runtime::exited("p_default", "OnFailure", &mut pod.containers[1], 0, None);
        pod.ips = vec!["10.244.1.7".into()];
        let status = pod_status(&pod, "10.213.0.12");
        assert_eq!(status["phase"], "Succeeded");
        assert_eq!(status["podIP"], "10.244.1.7");
        assert_eq!(
            status["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
    }

    #[test]
    fn manifests_are_checked_like_the_file_source() {
        let good = "apiVersion: v1\nkind: Pod\nmetadata: {name: etcd, namespace: kube-system}\nspec:\n  containers: [{name: etcd, image: registry.k8s.io/etcd:3.4.23-0, command: [etcd]}]\n  volumes: [{name: d, hostPath: {path: /var/lib/etcd, type: DirectoryOrCreate}}]\n";
        assert!(parse_manifest(good).is_ok());
        assert!(parse_manifest(&good.replace("kind: Pod", "kind: Deployment")).is_err());
        assert!(
            parse_manifest(&good.replace(
                "hostPath: {path: /var/lib/etcd, type: DirectoryOrCreate}",
                "secret: {secretName: x}"
            ))
            .is_err()
        );
        assert!(parse_manifest(&good.replace("name: etcd,", "name: Etcd,")).is_err());
    }

    #[test]
    fn host_path_types() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("a/b");
        check_host_path(&made, "DirectoryOrCreate").unwrap();
        assert!(made.is_dir());
        let file = dir.path().join("c/kubeconfig");
        check_host_path(&file, "FileOrCreate").unwrap();
        assert!(file.is_file());
        assert!(check_host_path(&dir.path().join("missing"), "Directory").is_err());
        assert!(check_host_path(&made, "File").is_err());
    }
}
