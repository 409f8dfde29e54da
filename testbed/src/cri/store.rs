//! The runtime double's state: pod sandboxes and containers with the metadata, labels and annotations
//! their creator gave them, the processes of running containers (each in its own process group, so
//! that stopping the runtime's service leaves them running), and the images pulled. Everything is
//! saved under /run/testbed-cri, so a restarted runtime finds the containers it left running.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tonic::Status;

use super::images;
use super::sandbox::{MountSpec, SandboxSpec};
use crate::logf;

const COMPONENT: &str = "containerd";

/// Nanoseconds since the epoch, the CRI's timestamps.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A new object id: 64 hex digits, as containerd's.
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex::encode(bytes)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
    pub hostname: String,
    pub log_directory: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub runtime_handler: String,
    pub created_at: i64,
    pub ready: bool,
    /// The sandbox's network namespace (None: the node's network).
    #[serde(default)]
    pub netns: Option<String>,
    /// The pod IPs the pod network gave it, primary first.
    #[serde(default)]
    pub ips: Vec<String>,
    /// The resolv.conf its containers get (from the sandbox's DNS config; None: the node's).
    #[serde(default)]
    pub resolv_conf: Option<String>,
    /// Whether its network was torn down (CNI DEL done).
    #[serde(default)]
    pub network_down: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    #[default]
    Created,
    Running,
    Exited,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountRecord {
    pub container_path: String,
    pub host_path: String,
    pub readonly: bool,
}

/// What a container runs, as its creator asked, and how its run went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: String,
    pub envs: Vec<(String, String)>,
    pub mounts: Vec<MountRecord>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Absolute path of the log file ("" when the creator asked for none).
    pub log_path: String,
    pub phase: Phase,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub pid: Option<i32>,
    pub start_ticks: Option<u64>,
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    sandboxes: BTreeMap<String, SandboxRecord>,
    containers: BTreeMap<String, ContainerRecord>,
    pulled: BTreeSet<String>,
    /// Containers whose process this runtime started and waits for; the others (found running
    /// after a restart of the runtime) are polled.
    #[serde(skip)]
    waited: HashSet<String>,
}

/// The shared state and where it is kept.
#[derive(Clone)]
pub struct Store {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
    exe: PathBuf,
}

fn not_found(kind: &str, id: &str) -> Status {
    Status::not_found(format!(
        "an error occurred when try to find {kind} \"{id}\": not found"
    ))
}

fn proc_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    // A zombie is not running any more.
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

fn alive(pid: i32, ticks: Option<u64>) -> bool {
    proc_start_ticks(pid).is_some_and(|t| ticks.is_none_or(|expected| expected == t))
}

impl Store {
    /// Loads the saved state from `dir` (empty when there is none).
    pub fn open(dir: &Path, exe: PathBuf) -> Store {
        let state = std::fs::read_to_string(dir.join("state.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        Store {
            state: Arc::new(Mutex::new(state)),
            dir: dir.to_path_buf(),
            exe,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, Status> {
        self.state
            .lock()
            .map_err(|_| Status::internal("the runtime's state lock is poisoned"))
    }

    fn save(&self, state: &State) {
        let _ = std::fs::create_dir_all(&self.dir);
        let tmp = self.dir.join("state.json.tmp");
        if let Ok(text) = serde_json::to_string(state)
            && std::fs::write(&tmp, text).is_ok()
        {
            let _ = std::fs::rename(&tmp, self.dir.join("state.json"));
        }
    }

    pub fn sandboxes(&self) -> Result<Vec<SandboxRecord>, Status> {
        Ok(self.lock()?.sandboxes.values().cloned().collect())
    }

    pub fn sandbox(&self, id: &str) -> Result<SandboxRecord, Status> {
        self.lock()?
            .sandboxes
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("sandbox", id))
    }

    pub fn containers(&self) -> Result<Vec<ContainerRecord>, Status> {
        self.poll_unwaited();
        Ok(self.lock()?.containers.values().cloned().collect())
    }

    pub fn container(&self, id: &str) -> Result<ContainerRecord, Status> {
        self.poll_unwaited();
        self.lock()?
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("container", id))
    }

    pub fn add_sandbox(&self, mut sandbox: SandboxRecord) -> Result<String, Status> {
        let mut state = self.lock()?;
        if sandbox.id.is_empty() {
            sandbox.id = new_id();
        }
        sandbox.created_at = now_nanos();
        sandbox.ready = true;
        let id = sandbox.id.clone();
        logf!(
            COMPONENT,
            "RunPodSandbox for {}/{} (uid {}) returns sandbox id {id}",
            sandbox.namespace,
            sandbox.name,
            sandbox.uid
        );
        write_sandbox_files(&self.dir.join(&id), &sandbox)
            .map_err(|e| Status::internal(format!("write the sandbox's files: {e}")))?;
        state.sandboxes.insert(id.clone(), sandbox);
        self.save(&state);
        Ok(id)
    }

    /// Records a created container; its name must be unique in its sandbox for its attempt.
    pub fn add_container(&self, mut container: ContainerRecord) -> Result<String, Status> {
        let mut state = self.lock()?;
        let sandbox = state
            .sandboxes
            .get(&container.sandbox_id)
            .ok_or_else(|| not_found("sandbox", &container.sandbox_id))?;
        if !sandbox.ready {
            return Err(Status::failed_precondition(format!(
                "sandbox container \"{}\" is not running",
                sandbox.id
            )));
        }
        let reserved = format!(
            "{}_{}_{}_{}_{}",
            container.name, sandbox.name, sandbox.namespace, sandbox.uid, container.attempt
        );
        if let Some(holder) = state.containers.values().find(|c| {
            c.sandbox_id == container.sandbox_id
                && c.name == container.name
                && c.attempt == container.attempt
        }) {
            return Err(Status::already_exists(format!(
                "failed to reserve container name \"{reserved}\": name \"{reserved}\" is reserved for \"{}\"",
                holder.id
            )));
        }
        container.id = new_id();
        container.created_at = now_nanos();
        container.phase = Phase::Created;
        let id = container.id.clone();
        state.containers.insert(id.clone(), container);
        self.save(&state);
        Ok(id)
    }

    pub fn record_pull(&self, image: &str) {
        if let Ok(mut state) = self.lock() {
            state.pulled.insert(image.to_string());
            self.save(&state);
        }
    }

    pub fn forget_pull(&self, image: &str) {
        if let Ok(mut state) = self.lock() {
            state.pulled.remove(image);
            self.save(&state);
        }
    }

    /// The images pulled or used by a container.
    pub fn images_known(&self) -> BTreeSet<String> {
        self.lock()
            .map(|state| {
                state
                    .pulled
                    .iter()
                    .cloned()
                    .chain(
                        state
                            .containers
                            .values()
                            .map(|c| images::normalize(&c.image)),
                    )
                    .collect()
            })
            .unwrap_or_default()
    }

    fn container_dir(&self, c: &ContainerRecord) -> PathBuf {
        self.dir.join(&c.sandbox_id).join(&c.id)
    }

    /// Starts a created container's process: `tbnode pod-exec` sets up its root and execs its command.
    pub fn start(&self, id: &str) -> Result<(), Status> {
        let mut state = self.lock()?;
        let c = state
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("container", id))?;
        if c.phase != Phase::Created {
            return Err(Status::failed_precondition(format!(
                "container {id} is in {:?} state, not created",
                c.phase
            )));
        }
        let sandbox = match state.sandboxes.get(&c.sandbox_id) {
            Some(s) if s.ready => s.clone(),
            _ => {
                return Err(Status::failed_precondition(format!(
                    "sandbox container \"{}\" is not running",
                    c.sandbox_id
                )));
            }
        };
        let started = sandbox_spec(&self.container_dir(&c), &c, &sandbox, &self.dir)
            .map_err(|e| format!("failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: {e}: unknown"))
            .and_then(|spec| self.spawn(&c, &spec).map_err(|e| format!("failed to start containerd task: {e}")));
        let Some(record) = state.containers.get_mut(id) else {
            return Err(not_found("container", id));
        };
        match started {
            Ok(child) => {
                let pid = i32::try_from(child.id()).unwrap_or(0);
                record.pid = Some(pid);
                record.start_ticks = proc_start_ticks(pid);
                record.started_at = now_nanos();
                record.phase = Phase::Running;
                state.waited.insert(id.to_string());
                self.save(&state);
                drop(state);
                let store = self.clone();
                let id = id.to_string();
                std::thread::spawn(move || {
                    let mut child = child;
                    let code = match child.wait() {
                        Ok(status) => status
                            .code()
                            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                        Err(_) => 255,
                    };
                    store.exited(
                        &id,
                        pid,
                        code,
                        if code == 0 { "Completed" } else { "Error" },
                    );
                });
                Ok(())
            }
            Err(message) => {
                let now = now_nanos();
                record.phase = Phase::Exited;
                record.started_at = now;
                record.finished_at = now;
                record.exit_code = 128;
                record.reason = "StartError".into();
                record.message = message.clone();
                self.save(&state);
                Err(Status::unknown(message))
            }
        }
    }

    fn spawn(
        &self,
        c: &ContainerRecord,
        spec: &SandboxSpec,
    ) -> anyhow::Result<std::process::Child> {
        let dir = self.container_dir(c);
        std::fs::create_dir_all(&dir)?;
        let spec_path = dir.join("spec.json");
        std::fs::write(&spec_path, serde_json::to_string(spec)?)?;
        let (stdout, stderr) = if c.log_path.is_empty() {
            (Stdio::null(), Stdio::null())
        } else {
            let path = Path::new(&c.log_path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            (Stdio::from(log.try_clone()?), Stdio::from(log))
        };
        let child = Command::new(&self.exe)
            .arg("pod-exec")
            .arg(&spec_path)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()?;
        logf!(
            COMPONENT,
            "StartContainer for {} ({}) returns successfully (pid {})",
            c.id,
            c.name,
            child.id()
        );
        Ok(child)
    }

    /// Records the end of a container's process run `pid`.
    fn exited(&self, id: &str, pid: i32, code: i32, reason: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.waited.remove(id);
        if let Some(c) = state.containers.get_mut(id)
            && c.pid == Some(pid)
            && c.phase == Phase::Running
        {
            c.phase = Phase::Exited;
            c.exit_code = code;
            c.finished_at = now_nanos();
            c.reason = reason.to_string();
            c.pid = None;
            logf!(
                COMPONENT,
                "Container {id} ({}) exited with code {code}",
                c.name
            );
            self.save(&state);
        }
    }

    /// Marks running containers this runtime does not wait for (adopted after a restart) exited
    /// once their process is gone; their exit code is unknown.
    pub fn poll_unwaited(&self) {
        let gone: Vec<(String, i32)> = match self.state.lock() {
            Ok(state) => state
                .containers
                .values()
                .filter(|c| c.phase == Phase::Running && !state.waited.contains(&c.id))
                .filter_map(|c| c.pid.map(|pid| (c.id.clone(), pid, c.start_ticks)))
                .filter(|(_, pid, ticks)| !alive(*pid, *ticks))
                .map(|(id, pid, _)| (id, pid))
                .collect(),
            Err(_) => return,
        };
        for (id, pid) in gone {
            self.exited(&id, pid, 255, "Unknown");
        }
    }

    /// Runs `cmd` inside a running container (its mount, network and UTS namespaces, root and
    /// working directory, with its environment) and returns stdout, stderr and the exit code; a
    /// command still running after `timeout` (when not zero) is killed, as containerd's ExecSync.
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>, i32), Status> {
        let Some(pid) = self.running_pid(id)? else {
            return Err(Status::unknown(format!(
                "failed to exec in container: container {id} is not running"
            )));
        };
        if cmd.is_empty() {
            return Err(Status::invalid_argument("cmd must not be empty"));
        }
        let env = self.container(id)?.envs;
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={pid}"))
            .args(["--mount", "--net", "--uts", "--root", "--wd", "--"])
            .args(cmd)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| Status::internal(format!("failed to exec in container: {e}")))?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if !timeout.is_zero() && Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Status::deadline_exceeded(format!(
                        "command {cmd:?} timed out after {}s",
                        timeout.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(Status::internal(e.to_string())),
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Status::internal(e.to_string()))?;
        let code = out
            .status
            .code()
            .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
        Ok((out.stdout, out.stderr, code))
    }

    fn running_pid(&self, id: &str) -> Result<Option<i32>, Status> {
        self.poll_unwaited();
        let state = self.lock()?;
        let c = state
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        Ok(match c.phase {
            Phase::Running => c.pid,
            _ => None,
        })
    }

    async fn wait_exit(&self, id: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            match self.running_pid(id) {
                Ok(Some(_)) => {}
                _ => return true,
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops a container: SIGTERM to its process group, SIGKILL once `timeout` has passed (at once
    /// for a zero timeout), as containerd does. Stopping a stopped container is not an error.
    pub async fn stop(&self, id: &str, timeout: Duration) -> Result<(), Status> {
        let Some(pid) = self.running_pid(id)? else {
            return Ok(());
        };
        let group = Pid::from_raw(-pid);
        if !timeout.is_zero() {
            logf!(
                COMPONENT,
                "StopContainer for {id} with timeout {}s",
                timeout.as_secs()
            );
            let _ = kill(group, Signal::SIGTERM);
            if self.wait_exit(id, timeout).await {
                return Ok(());
            }
        }
        let _ = kill(group, Signal::SIGKILL);
        if self.wait_exit(id, Duration::from_secs(10)).await {
            Ok(())
        } else {
            Err(Status::deadline_exceeded(format!(
                "container {id} (pid {pid}) did not exit after SIGKILL"
            )))
        }
    }

    /// Removes a container, killing it first if it runs. Removing a removed container is not an error.
    pub async fn remove_container(&self, id: &str) -> Result<(), Status> {
        match self.stop(id, Duration::ZERO).await {
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            other => other?,
        }
        let mut state = self.lock()?;
        if let Some(c) = state.containers.remove(id) {
            let _ = std::fs::remove_dir_all(self.container_dir(&c));
            logf!(
                COMPONENT,
                "RemoveContainer for {id} ({}) returns successfully",
                c.name
            );
        }
        self.save(&state);
        Ok(())
    }

    fn sandbox_containers(&self, sandbox_id: &str) -> Result<Vec<String>, Status> {
        Ok(self
            .lock()?
            .containers
            .values()
            .filter(|c| c.sandbox_id == sandbox_id)
            .map(|c| c.id.clone())
            .collect())
    }

    /// Stops a sandbox: its running containers are killed (as containerd does; the kubelet stops
    /// them with their grace period first) and the sandbox is no longer ready.
    pub async fn stop_sandbox(&self, id: &str) -> Result<(), Status> {
        self.sandbox(id)?;
        for container in self.sandbox_containers(id)? {
            match self.stop(&container, Duration::ZERO).await {
                Err(e) if e.code() != tonic::Code::NotFound => return Err(e),
                _ => {}
            }
        }
        let network = self
            .lock()?
            .sandboxes
            .get(id)
            .and_then(|s| (!s.network_down).then(|| s.netns.clone()).flatten());
        if let Some(netns) = network {
            let sandbox = id.to_string();
            let error = tokio::task::spawn_blocking(move || {
                super::network::teardown(&sandbox, Some(Path::new(&netns)))
            })
            .await
            .unwrap_or_else(|e| Some(e.to_string()));
            if let Some(e) = error {
                logf!(COMPONENT, "Failed to destroy network for sandbox {id}: {e}");
            }
        }
        let mut state = self.lock()?;
        if let Some(s) = state.sandboxes.get_mut(id) {
            s.network_down = true;
        }
        if let Some(s) = state.sandboxes.get_mut(id)
            && s.ready
        {
            s.ready = false;
            logf!(
                COMPONENT,
                "StopPodSandbox for {id} ({}/{}) returns successfully",
                s.namespace,
                s.name
            );
        }
        self.save(&state);
        Ok(())
    }

    /// Removes a sandbox and its containers, stopping it first. Removing a removed sandbox is not an error.
    pub async fn remove_sandbox(&self, id: &str) -> Result<(), Status> {
        match self.stop_sandbox(id).await {
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            other => other?,
        }
        for container in self.sandbox_containers(id)? {
            self.remove_container(&container).await?;
        }
        let mut state = self.lock()?;
        if let Some(s) = state.sandboxes.remove(id) {
            logf!(
                COMPONENT,
                "RemovePodSandbox for {id} ({}/{}) returns successfully",
                s.namespace,
                s.name
            );
        }
        let _ = std::fs::remove_dir_all(self.dir.join(id));
        self.save(&state);
        Ok(())
    }
}

/// The sandbox of one container process: the image's binaries, the container's mounts and its
/// command line, checked against what the image provides as a real runtime would at start. A
/// container of a pod-network sandbox joins the sandbox's network namespace and gets its hostname
/// and resolv.conf; one on the node's network sees the node's files.
fn sandbox_spec(
    dir: &Path,
    c: &ContainerRecord,
    sandbox: &SandboxRecord,
    state_dir: &Path,
) -> Result<SandboxSpec, String> {
    let hostname = sandbox.hostname.as_str();
    let provided = images::binaries(&c.image)
        .map_err(|e| format!("image \"{}\" is not present: {e}", c.image))?;
    // As containerd does, an empty command takes the image's entrypoint.
    let command: Vec<String> = if c.command.is_empty() {
        images::entrypoint(&c.image)
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        c.command.clone()
    };
    let program = command
        .first()
        .cloned()
        .ok_or_else(|| "no command specified and the image has no entrypoint".to_string())?;
    let argv: Vec<String> = command.iter().chain(&c.args).cloned().collect();
    let base = Path::new(&program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let image_paths = images::image_paths(&c.image);
    let on_path = !program.contains('/')
        || ["/usr/local/bin/", "/usr/bin/", "/bin/"]
            .iter()
            .any(|d| program == format!("{d}{base}"))
        || image_paths.contains(&program.as_str());
    let image_files = images::files(&c.image);
    let in_image = image_files.iter().any(|(path, _)| *path == program);
    if !in_image && (!provided.contains(&base) || !on_path) {
        return Err(format!(
            "exec: \"{program}\": executable file not found in $PATH (image {} provides {provided:?})",
            c.image
        ));
    }
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOSTNAME".to_string(), hostname.to_string()),
        ("TESTBED_IMAGE".to_string(), c.image.clone()),
    ];
    for (key, value) in &c.envs {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    let files = state_dir.join(&sandbox.id);
    let mut etc_files = Vec::new();
    if sandbox.netns.is_some() {
        etc_files.push((files.join("hostname"), "/etc/hostname".to_string()));
    }
    if sandbox.resolv_conf.is_some() {
        etc_files.push((files.join("resolv.conf"), "/etc/resolv.conf".to_string()));
    }
    Ok(SandboxSpec {
        rootfs: dir.join("rootfs"),
        // The node's /host holds only usr (the host's, which the image's links point into):
        // binding /host/usr leaves /host free for mounts such as calico's /host/etc/cni/net.d.
        image_dirs: ["/usr", "/host/usr", "/opt/testbed"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect(),
        mounts: c
            .mounts
            .iter()
            .map(|m| MountSpec {
                source: PathBuf::from(&m.host_path),
                target: m.container_path.clone(),
                read_only: m.readonly,
            })
            .chain(image_files.iter().map(|(path, source)| MountSpec {
                source: PathBuf::from(source),
                target: path.to_string(),
                read_only: true,
            }))
            .collect(),
        argv,
        env,
        image_links: image_paths.iter().map(|p| p.to_string()).collect(),
        workdir: Some(c.working_dir.clone()).filter(|w| !w.is_empty()),
        netns: sandbox.netns.as_ref().map(PathBuf::from),
        hostname: sandbox.netns.as_ref().map(|_| hostname.to_string()),
        etc_files,
    })
}

/// Writes the files a sandbox's containers share (hostname, resolv.conf) under `dir`.
pub fn write_sandbox_files(dir: &Path, sandbox: &SandboxRecord) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("hostname"), format!("{}\n", sandbox.hostname))?;
    if let Some(text) = &sandbox.resolv_conf {
        std::fs::write(dir.join("resolv.conf"), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(command: &[&str]) -> ContainerRecord {
        ContainerRecord {
            id: "c1".into(),
            sandbox_id: "s1".into(),
            name: "kube-scheduler".into(),
            image: "registry.k8s.io/kube-scheduler:v1.34.3".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            args: vec!["--v=2".into()],
            envs: vec![("PATH".into(), "/bin".into())],
            mounts: vec![MountRecord {
                container_path: "/etc/kubernetes/scheduler.conf".into(),
                host_path: "/etc/kubernetes/scheduler.conf".into(),
                readonly: true,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_image_decides_what_a_container_can_run() {
        let dir = Path::new("/run/testbed-cri/s1/c1");
        let spec =
            sandbox_spec(dir, &container(&["kube-scheduler"]), &host_sandbox(), dir).unwrap();
        assert_eq!(spec.argv, ["kube-scheduler", "--v=2"]);
        assert_eq!(spec.rootfs, dir.join("rootfs"));
        assert!(spec.env.contains(&("PATH".into(), "/bin".into())));
        assert!(spec.env.contains(&("HOSTNAME".into(), "node1".into())));
        assert!(spec.mounts[0].read_only);
        let wrong = sandbox_spec(dir, &container(&["etcd"]), &host_sandbox(), dir).unwrap_err();
        assert!(wrong.contains("executable file not found"), "{wrong}");
        assert!(
            sandbox_spec(
                dir,
                &container(&["/opt/kube-scheduler"]),
                &host_sandbox(),
                dir
            )
            .is_err()
        );
        assert!(
            sandbox_spec(dir, &container(&[]), &host_sandbox(), dir)
                .unwrap_err()
                .contains("no command")
        );
    }

    fn host_sandbox() -> SandboxRecord {
        SandboxRecord {
            id: "s1".into(),
            name: "kube-scheduler-node1".into(),
            uid: "u".into(),
            namespace: "kube-system".into(),
            attempt: 0,
            hostname: "node1".into(),
            log_directory: String::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            runtime_handler: String::new(),
            created_at: 0,
            ready: true,
            netns: None,
            ips: Vec::new(),
            resolv_conf: None,
            network_down: false,
        }
    }

    #[test]
    fn a_pod_network_container_joins_the_sandbox_namespace_and_files() {
        let dir = Path::new("/run/testbed-cri/s1/c1");
        let mut sandbox = host_sandbox();
        sandbox.netns = Some("/var/run/netns/cni-s1".into());
        sandbox.hostname = "web-0".into();
        sandbox.resolv_conf = Some("nameserver 10.96.0.10\n".into());
        let state = Path::new("/run/testbed-cri");
        let spec = sandbox_spec(dir, &container(&["kube-scheduler"]), &sandbox, state).unwrap();
        assert_eq!(spec.netns, Some(PathBuf::from("/var/run/netns/cni-s1")));
        assert_eq!(spec.hostname.as_deref(), Some("web-0"));
        assert!(
            spec.etc_files
                .contains(&(state.join("s1/resolv.conf"), "/etc/resolv.conf".into()))
        );
        let host =
            sandbox_spec(dir, &container(&["kube-scheduler"]), &host_sandbox(), state).unwrap();
        assert!(host.netns.is_none() && host.etc_files.is_empty());
    }

    #[test]
    fn names_are_reserved_per_sandbox_and_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), PathBuf::from("/nonexistent"));
        let sandbox = store
            .add_sandbox(SandboxRecord {
                id: String::new(),
                name: "kube-scheduler-node1".into(),
                uid: "u".into(),
                namespace: "kube-system".into(),
                attempt: 0,
                hostname: "node1".into(),
                log_directory: String::new(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                runtime_handler: String::new(),
                created_at: 0,
                ready: false,
                netns: None,
                ips: Vec::new(),
                resolv_conf: None,
                network_down: false,
            })
            .unwrap();
        let mut c = container(&["kube-scheduler"]);
        c.sandbox_id = sandbox.clone();
        store.add_container(c.clone()).unwrap();
        let again = store.add_container(c.clone()).unwrap_err();
        assert_eq!(again.code(), tonic::Code::AlreadyExists);
        c.attempt = 1;
        store.add_container(c).unwrap();
        // The state survives a restart of the runtime.
        let reopened = Store::open(dir.path(), PathBuf::from("/nonexistent"));
        assert_eq!(reopened.containers().unwrap().len(), 2);
        assert_eq!(
            reopened.sandbox(&sandbox).unwrap().name,
            "kube-scheduler-node1"
        );
    }
}
