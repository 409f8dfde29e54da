//! Static pods: the manifests in staticPodPath run as sandboxed processes (one per container),
//! restarted with the kubelet's back-off when they exit, probed as their manifests say, restarted
//! when their manifest changes and stopped when it is removed. A restarted kubelet adopts the
//! processes it left running, as a real kubelet finds its containers again.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::sandbox::{MountSpec, SandboxSpec};
use crate::common::time;
use crate::logf;

const RUNTIME_DIR: &str = "/run/testbed-cri";
const COMPONENT: &str = "kubelet";

/// What runs for one container.
#[derive(Debug)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub pid: Option<i32>,
    child: Option<Child>,
    start_ticks: Option<u64>,
    pub restart_count: u32,
    pub started_at: Option<String>,
    pub ready: bool,
    pub started: bool,
    pub last_exit: Option<(i32, String)>,
    pub waiting: Option<(String, String)>,
    next_start: Option<Instant>,
    backoff: Duration,
    generation: u64,
}

#[derive(Debug)]
pub struct StaticPod {
    pub file: PathBuf,
    pub uid: String,
    pub manifest: Value,
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
}

pub type Pods = Arc<Mutex<BTreeMap<PathBuf, StaticPod>>>;

/// Where the kubelet double runs and what it needs to start containers.
#[derive(Clone)]
pub struct Runtime {
    pub node_name: String,
    pub node_ip: String,
    pub manifest_dir: Option<PathBuf>,
    pub pods: Pods,
    pub exe: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct SavedContainer {
    name: String,
    pid: i32,
    start_ticks: u64,
    restart_count: u32,
    started_at: String,
}

#[derive(Serialize, Deserialize)]
struct SavedPod {
    file: PathBuf,
    uid: String,
    containers: Vec<SavedContainer>,
}

/// The binaries an image provides, and the version it stands for. Images the testbed cannot run
/// fail as an image pull would.
fn image_binaries(image: &str) -> Result<&'static [&'static str], String> {
    let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let name = repo.rsplit('/').next().unwrap_or(repo);
    match name {
        "kube-apiserver" => Ok(&["kube-apiserver"]),
        "kube-controller-manager" => Ok(&["kube-controller-manager"]),
        "kube-scheduler" => Ok(&["kube-scheduler"]),
        "etcd" => {
            let installed = installed_etcd_minor();
            let wanted: String = tag.split('.').take(2).collect::<Vec<_>>().join(".");
            match installed {
                Some(v) if v == wanted => Ok(&["etcd", "etcdctl", "etcdutl"]),
                Some(v) => Err(format!(
                    "image {image:?} is not available in the testbed: it provides etcd {v}; render etcd with an etcd.local.imageTag of {v}"
                )),
                None => Err("no etcd binary is installed on this node".into()),
            }
        }
        _ => Err(format!(
            "image {image:?} is not available in the testbed (no registry; only the control-plane images are provided)"
        )),
    }
}

fn installed_etcd_minor() -> Option<String> {
    let out = Command::new("etcd").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next()?.split_whitespace().last()?;
    Some(version.split('.').take(2).collect::<Vec<_>>().join("."))
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

fn container_env(rt: &Runtime, pod: &Value, c: &Value) -> Result<Vec<(String, String)>> {
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOSTNAME".to_string(), rt.node_name.clone()),
        (
            "TESTBED_IMAGE".to_string(),
            c["image"].as_str().unwrap_or_default().to_string(),
        ),
    ];
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

fn sandbox_spec(rt: &Runtime, pod: &Value, uid: &str, c: &Value) -> Result<SandboxSpec> {
    let image = c["image"].as_str().unwrap_or_default();
    let provided = image_binaries(image).map_err(|e| anyhow!("ErrImagePull: {e}"))?;
    let mut argv: Vec<String> = c["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    argv.extend(
        c["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string)),
    );
    let program = argv.first().cloned().ok_or_else(|| {
        anyhow!(
            "CreateContainerError: the testbed's images have no default entrypoint; set command"
        )
    })?;
    let base = Path::new(&program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let absolute_ok = !program.contains('/')
        || ["/usr/local/bin/", "/usr/bin/", "/bin/"]
            .iter()
            .any(|d| program == format!("{d}{base}"));
    if !provided.contains(&base) || !absolute_ok {
        bail!(
            "RunContainerError: exec: {program:?}: executable file not found in $PATH (image {image} provides {provided:?})"
        );
    }
    let volumes: BTreeMap<String, Value> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_string(),
                v.clone(),
            )
        })
        .collect();
    let pod_dir = PathBuf::from(RUNTIME_DIR).join(uid);
    let mut mounts = Vec::new();
    for vm in c["volumeMounts"].as_array().into_iter().flatten() {
        let vname = vm["name"].as_str().unwrap_or_default();
        let volume = volumes.get(vname).ok_or_else(|| {
            anyhow!("CreateContainerConfigError: volumeMount {vname:?} names no volume of the pod")
        })?;
        let target = vm["mountPath"].as_str().unwrap_or_default().to_string();
        let source = if let Some(path) = volume["hostPath"]["path"].as_str() {
            match vm["subPath"].as_str().filter(|s| !s.is_empty()) {
                Some(sub) => Path::new(path).join(sub),
                None => PathBuf::from(path),
            }
        } else {
            let dir = pod_dir.join("volumes").join(vname);
            std::fs::create_dir_all(&dir)?;
            dir
        };
        mounts.push(MountSpec {
            source,
            target,
            read_only: vm["readOnly"].as_bool().unwrap_or(false),
        });
    }
    let name = c["name"].as_str().unwrap_or_default();
    Ok(SandboxSpec {
        rootfs: pod_dir.join(name).join("rootfs"),
        image_dirs: ["/usr", "/host", "/opt/testbed"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect(),
        mounts,
        argv,
        env: container_env(rt, pod, c)?,
        workdir: c["workingDir"].as_str().map(str::to_string),
    })
}

fn proc_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

fn alive(pid: i32, ticks: Option<u64>) -> bool {
    match proc_start_ticks(pid) {
        Some(t) => ticks.is_none_or(|expected| expected == t),
        None => false,
    }
}

fn stop_process(pid: i32, grace: Duration) {
    let group = Pid::from_raw(-pid);
    let _ = kill(group, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && proc_start_ticks(pid).is_some() {
        std::thread::sleep(Duration::from_millis(50));
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
    let _ = kill(group, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(
        Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

impl Runtime {
    fn state_file(&self, uid: &str) -> PathBuf {
        PathBuf::from(RUNTIME_DIR).join(uid).join("state.json")
    }

    fn save(&self, pod: &StaticPod) {
        let saved = SavedPod {
            file: pod.file.clone(),
            uid: pod.uid.clone(),
            containers: pod
                .containers
                .iter()
                .filter_map(|c| {
                    Some(SavedContainer {
                        name: c.name.clone(),
                        pid: c.pid?,
                        start_ticks: c.start_ticks?,
                        restart_count: c.restart_count,
                        started_at: c.started_at.clone().unwrap_or_default(),
                    })
                })
                .collect(),
        };
        let path = self.state_file(&pod.uid);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Ok(text) = serde_json::to_string(&saved) {
            let _ = std::fs::write(path, text);
        }
    }

    fn load_saved(&self) -> Vec<SavedPod> {
        let Ok(entries) = std::fs::read_dir(RUNTIME_DIR) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("state.json")).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect()
    }

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

    fn new_pod(&self, file: PathBuf, uid: String, manifest: Value) -> StaticPod {
        let containers = manifest["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| Container {
                name: c["name"].as_str().unwrap_or_default().to_string(),
                image: c["image"].as_str().unwrap_or_default().to_string(),
                pid: None,
                child: None,
                start_ticks: None,
                restart_count: 0,
                started_at: None,
                ready: false,
                started: false,
                last_exit: None,
                waiting: Some(("ContainerCreating".into(), String::new())),
                next_start: Some(Instant::now()),
                backoff: Duration::ZERO,
                generation: 0,
            })
            .collect();
        StaticPod {
            file,
            uid,
            manifest,
            containers,
            seen: time::now(),
            error: None,
        }
    }

    fn grace(pod: &StaticPod) -> Duration {
        let seconds = pod.manifest["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        Duration::from_secs(seconds.min(30))
    }

    fn stop_pod(&self, pod: &mut StaticPod) {
        logf!(
            COMPONENT,
            "Killing static pod {}/{} (uid {})",
            pod.namespace(),
            pod.name(),
            pod.uid
        );
        let grace = Self::grace(pod);
        for c in &mut pod.containers {
            if let Some(pid) = c.pid.take() {
                stop_process(pid, grace);
            }
            if let Some(mut child) = c.child.take() {
                let _ = child.try_wait();
            }
        }
        let _ = std::fs::remove_dir_all(PathBuf::from(RUNTIME_DIR).join(&pod.uid));
    }

    /// Adopts processes a previous kubelet left running for manifests that did not change; stops
    /// the others.
    pub fn adopt(&self) {
        let mut reported = BTreeMap::new();
        let desired = self.desired(&mut reported);
        let Ok(mut pods) = self.pods.lock() else {
            return;
        };
        for saved in self.load_saved() {
            let current = desired
                .get(&saved.file)
                .filter(|(uid, _)| *uid == saved.uid);
            let all_alive = saved
                .containers
                .iter()
                .all(|c| alive(c.pid, Some(c.start_ticks)));
            match current {
                Some((uid, manifest)) if all_alive && !saved.containers.is_empty() => {
                    let mut pod = self.new_pod(saved.file.clone(), uid.clone(), manifest.clone());
                    for c in &mut pod.containers {
                        if let Some(s) = saved.containers.iter().find(|s| s.name == c.name) {
                            c.pid = Some(s.pid);
                            c.start_ticks = Some(s.start_ticks);
                            c.restart_count = s.restart_count;
                            c.started_at = Some(s.started_at.clone());
                            c.waiting = None;
                            c.next_start = None;
                        }
                    }
                    logf!(
                        COMPONENT,
                        "Adopted running static pod {}/{}",
                        pod.namespace(),
                        pod.name()
                    );
                    pods.insert(saved.file.clone(), pod);
                }
                _ => {
                    for c in &saved.containers {
                        if alive(c.pid, Some(c.start_ticks)) {
                            stop_process(c.pid, Duration::from_secs(5));
                        }
                    }
                    let _ = std::fs::remove_dir_all(PathBuf::from(RUNTIME_DIR).join(&saved.uid));
                }
            }
        }
    }

    fn start_container(&self, pod: &mut StaticPod, index: usize) -> Result<()> {
        let spec_c = pod.manifest["spec"]["containers"][index].clone();
        let spec = sandbox_spec(self, &pod.manifest, &pod.uid, &spec_c)?;
        let c = &mut pod.containers[index];
        let spec_path = PathBuf::from(RUNTIME_DIR)
            .join(&pod.uid)
            .join(format!("{}.json", c.name));
        if let Some(parent) = spec_path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&spec_path, serde_json::to_string(&spec)?)?;
        let log_dir = PathBuf::from("/var/log/pods")
            .join(format!(
                "{}_{}_{}",
                pod.manifest["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default"),
                pod.manifest["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default(),
                pod.uid
            ))
            .join(&c.name);
        std::fs::create_dir_all(&log_dir)?;
        let log = std::fs::File::create(log_dir.join(format!("{}.log", c.restart_count)))?;
        let child = Command::new(&self.exe)
            .arg("pod-exec")
            .arg(&spec_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("start the container process")?;
        let pid = i32::try_from(child.id()).unwrap_or(0);
        c.pid = Some(pid);
        c.child = Some(child);
        c.start_ticks = proc_start_ticks(pid);
        c.started_at = Some(time::now());
        c.waiting = None;
        c.ready = false;
        c.started = false;
        c.generation += 1;
        logf!(
            COMPONENT,
            "Started container {} of static pod {}/{} (pid {pid})",
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

    /// One pass of the pod workers: start new pods, stop removed or changed ones, restart exited
    /// containers once their back-off has passed.
    fn sync(&self, reported: &mut BTreeMap<PathBuf, String>) -> Vec<(PathBuf, usize, u64)> {
        let desired = self.desired(reported);
        let mut started = Vec::new();
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
                self.stop_pod(&mut pod);
            }
        }
        for (file, (uid, manifest)) in desired {
            let pod = pods
                .entry(file.clone())
                .or_insert_with(|| self.new_pod(file.clone(), uid, manifest));
            let mut volume_error = None;
            for v in pod.manifest["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(path) = v["hostPath"]["path"].as_str()
                    && let Err(e) = check_host_path(
                        Path::new(path),
                        v["hostPath"]["type"].as_str().unwrap_or_default(),
                    )
                {
                    volume_error = Some(format!(
                        "MountVolume.SetUp failed for volume {:?} : {e:#}",
                        v["name"].as_str().unwrap_or_default()
                    ));
                }
            }
            if let Some(e) = &volume_error {
                if pod.error.as_ref() != Some(e) {
                    logf!(COMPONENT, "{e}");
                }
                pod.error = volume_error;
                continue;
            }
            pod.error = None;
            for i in 0..pod.containers.len() {
                let c = &mut pod.containers[i];
                if let Some(pid) = c.pid {
                    let exited = match &mut c.child {
                        Some(child) => match child.try_wait() {
                            Ok(Some(status)) => Some(status.code().unwrap_or(137)),
                            Ok(None) => None,
                            Err(_) => Some(1),
                        },
                        None if !alive(pid, c.start_ticks) => Some(0),
                        None => None,
                    };
                    let Some(code) = exited else {
                        continue;
                    };
                    let ran = c
                        .started_at
                        .as_deref()
                        .and_then(time::parse)
                        .map(|t| time::unix_now() - t.unix_timestamp())
                        .unwrap_or(0);
                    c.pid = None;
                    c.child = None;
                    c.ready = false;
                    c.started = false;
                    c.last_exit = Some((code, time::now()));
                    c.restart_count += 1;
                    c.backoff = if ran > 600 || c.backoff.is_zero() {
                        Duration::from_secs(10)
                    } else {
                        (c.backoff * 2).min(Duration::from_secs(300))
                    };
                    c.next_start = Some(Instant::now() + c.backoff);
                    c.waiting = Some((
                        "CrashLoopBackOff".into(),
                        format!(
                            "back-off {}s restarting failed container={} pod={}_{}",
                            c.backoff.as_secs(),
                            c.name,
                            pod.manifest["metadata"]["name"]
                                .as_str()
                                .unwrap_or_default(),
                            pod.manifest["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or("default")
                        ),
                    ));
                    logf!(
                        COMPONENT,
                        "Container {} of static pod {} exited with code {code}; restarting in {}s",
                        c.name,
                        pod.manifest["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default(),
                        c.backoff.as_secs()
                    );
                    continue;
                }
                if c.next_start.is_some_and(|t| Instant::now() >= t) {
                    match self.start_container(pod, i) {
                        Ok(()) => {
                            let c = &mut pod.containers[i];
                            c.next_start = None;
                            started.push((pod.file.clone(), i, c.generation));
                        }
                        Err(e) => {
                            let message = format!("{e:#}");
                            let reason = message
                                .split(':')
                                .next()
                                .unwrap_or("CreateContainerError")
                                .to_string();
                            let c = &mut pod.containers[i];
                            if c.waiting.as_ref().map(|(_, m)| m) != Some(&message) {
                                logf!(COMPONENT, "Error starting container {}: {message}", c.name);
                            }
                            c.waiting = Some((reason, message));
                            c.next_start = Some(Instant::now() + Duration::from_secs(10));
                        }
                    }
                }
            }
            self.save(pod);
        }
        started
    }

    /// Runs the pod workers forever.
    pub async fn run(self, period: Duration) {
        self.adopt();
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

    /// Kills a container (liveness failure); the pod workers restart it.
    pub fn kill_container(&self, file: &Path, index: usize, generation: u64) {
        let Ok(pods) = self.pods.lock() else {
            return;
        };
        if let Some(c) = pods.get(file).and_then(|p| p.containers.get(index))
            && c.generation == generation
            && let Some(pid) = c.pid
        {
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
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
            Some(c) if c.generation == generation && c.pid.is_some() => {
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
        (c.generation == generation && c.pid.is_some())
            .then(|| pod.manifest["spec"]["containers"][index].clone())
    }
}

/// The pod status the kubelet reports for a static pod (mirror pod status).
pub fn pod_status(pod: &StaticPod, node_ip: &str) -> Value {
    let statuses: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| {
            let state = match (&c.pid, &c.waiting) {
                (Some(_), _) => json!({"running": {"startedAt": c.started_at}}),
                (None, Some((reason, message))) => json!({"waiting": {"reason": reason, "message": message}}),
                (None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
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
            if let Some(pid) = c.pid {
                status["containerID"] = json!(format!("testbed://{}-{pid}", c.name));
            }
            if let Some((code, at)) = &c.last_exit {
                status["lastState"] = json!({"terminated": {"exitCode": code, "finishedAt": at, "reason": if *code == 0 { "Completed" } else { "Error" }}});
            }
            status
        })
        .collect();
    let all_ready = pod.containers.iter().all(|c| c.ready);
    let running = pod.containers.iter().all(|c| c.pid.is_some());
    let now = time::now();
    let condition = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
    let mut status = json!({
        "phase": if running || pod.containers.iter().any(|c| c.restart_count > 0) { "Running" } else { "Pending" },
        "conditions": [
            condition("PodReadyToStartContainers", pod.error.is_none()),
            condition("Initialized", true),
            condition("Ready", all_ready),
            condition("ContainersReady", all_ready),
            condition("PodScheduled", true),
        ],
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "podIP": node_ip,
        "podIPs": [{"ip": node_ip}],
        "startTime": pod.seen,
        "qosClass": "Burstable",
        "containerStatuses": statuses,
    });
    if let Some(e) = &pod.error {
        status["message"] = json!(e);
        status["phase"] = json!("Pending");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn images_map_to_binaries() {
        assert_eq!(
            image_binaries("registry.k8s.io/kube-apiserver:v1.34.3").unwrap(),
            &["kube-apiserver"]
        );
        assert!(image_binaries("registry.k8s.io/coredns/coredns:v1.12.1").is_err());
    }
}
