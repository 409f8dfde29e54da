//! A testbed node's PID 1 and service manager: starts the enabled units at boot, starts, stops and
//! restarts services on request (from `systemctl`), restarts them by their Restart= policy,
//! writes /run/<service>.pid, reaps every orphan, and stops everything on SIGTERM.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::units::{self, Restart, Unit};

pub const SOCKET: &str = "/run/testbed/init.sock";
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub argv: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    pub code: i32,
    pub out: String,
    pub err: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Inactive,
    Active,
    Failed,
    AutoRestart,
}

struct Service {
    unit: Unit,
    state: State,
    pid: Option<i32>,
    since: String,
    restart_at: Option<Instant>,
    exit_status: i32,
    stopping: bool,
}

#[derive(Default)]
struct Manager {
    services: BTreeMap<String, Service>,
}

fn pidfile(name: &str) -> PathBuf {
    PathBuf::from("/run").join(format!("{}.pid", name.trim_end_matches(".service")))
}

pub fn is_enabled(name: &str) -> bool {
    Path::new(WANTS).join(name).exists()
}

impl Manager {
    fn spawn(&mut self, name: &str) -> Result<i32> {
        let unit = units::load(name)?;
        let argv = unit.command()?;
        let env = unit.environment()?;
        std::fs::create_dir_all("/var/log/testbed")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!(
                "/var/log/testbed/{}.log",
                name.trim_end_matches(".service")
            ))?;
        let program = argv.first().cloned().unwrap_or_default();
        let child = Command::new(&program)
            .args(&argv[1..])
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("Failed to execute {program}"))?;
        let pid = i32::try_from(child.id()).unwrap_or(0);
        std::fs::write(pidfile(name), format!("{pid}\n"))?;
        self.services.insert(
            name.to_string(),
            Service {
                unit,
                state: State::Active,
                pid: Some(pid),
                since: crate::common::time::now(),
                restart_at: None,
                exit_status: 0,
                stopping: false,
            },
        );
        Ok(pid)
    }

    fn start(&mut self, name: &str) -> Reply {
        if let Some(s) = self.services.get(name)
            && s.pid.is_some()
        {
            return Reply::default();
        }
        match self.spawn(name) {
            Ok(_) => Reply::default(),
            Err(e) => {
                let not_found = e.to_string().contains("not found");
                Reply {
                    code: if not_found { 5 } else { 1 },
                    out: String::new(),
                    err: if not_found {
                        format!("Failed to start {name}: Unit {name} not found.\n")
                    } else {
                        format!("Job for {name} failed: {e:#}\n")
                    },
                }
            }
        }
    }

    fn stop(&mut self, name: &str) -> Reply {
        if !self.services.contains_key(name) && units::find_unit(name).is_none() {
            return Reply {
                code: 5,
                err: format!("Failed to stop {name}: Unit {name} not loaded.\n"),
                ..Default::default()
            };
        }
        if let Some(s) = self.services.get_mut(name) {
            s.restart_at = None;
            s.state = State::Inactive;
            if let Some(pid) = s.pid {
                s.stopping = true;
                let _ = kill(Pid::from_raw(-pid), Signal::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Ok(WaitStatus::StillAlive) => {
                            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                            let _ = waitpid(Pid::from_raw(pid), None);
                            break;
                        }
                        _ => break,
                    }
                }
                s.pid = None;
                s.stopping = false;
                let _ = std::fs::remove_file(pidfile(name));
            }
        }
        Reply::default()
    }

    fn enable(&mut self, name: &str, enable: bool) -> Reply {
        let Some(path) = units::find_unit(name) else {
            return Reply {
                code: 1,
                err: format!("Failed to enable unit: Unit file {name} does not exist.\n"),
                ..Default::default()
            };
        };
        let link = Path::new(WANTS).join(name);
        let result = if enable {
            std::fs::create_dir_all(WANTS).and_then(|_| {
                if link.exists() {
                    Ok(())
                } else {
                    std::os::unix::fs::symlink(&path, &link)
                }
            })
        } else {
            std::fs::remove_file(&link).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
        };
        match result {
            Ok(()) if enable => Reply {
                err: format!("Created symlink {} → {}.\n", link.display(), path.display()),
                ..Default::default()
            },
            Ok(()) => Reply {
                err: format!("Removed \"{}\".\n", link.display()),
                ..Default::default()
            },
            Err(e) => Reply {
                code: 1,
                err: format!(
                    "Failed to {} unit: {e}\n",
                    if enable { "enable" } else { "disable" }
                ),
                ..Default::default()
            },
        }
    }

    fn active_state(&self, name: &str) -> (&'static str, &'static str) {
        match self.services.get(name).map(|s| s.state) {
            Some(State::Active) => ("active", "running"),
            Some(State::Failed) => ("failed", "failed"),
            Some(State::AutoRestart) => ("activating", "auto-restart"),
            _ => ("inactive", "dead"),
        }
    }

    /// Handles one systemctl command line.
    fn command(&mut self, argv: &[String]) -> Reply {
        let quiet = argv.iter().any(|a| a == "-q" || a == "--quiet");
        let now = argv.iter().any(|a| a == "--now");
        let value_only = argv.iter().any(|a| a == "--value");
        let mut properties: Vec<String> = Vec::new();
        let mut words = Vec::new();
        let mut iter = argv.iter();
        while let Some(a) = iter.next() {
            match a.as_str() {
                "-p" | "--property" => properties.extend(
                    iter.next()
                        .into_iter()
                        .flat_map(|p| p.split(',').map(str::to_string)),
                ),
                p if p.starts_with("--property=") => {
                    properties.extend(p["--property=".len()..].split(',').map(str::to_string))
                }
                p if p.starts_with('-') => {}
                w => words.push(w.to_string()),
            }
        }
        let Some(verb) = words.first().cloned() else {
            return Reply {
                code: 1,
                err: "Too few arguments.\n".into(),
                ..Default::default()
            };
        };
        let names: Vec<String> = words[1..].iter().map(|n| units::unit_name(n)).collect();
        let mut reply = Reply::default();
        let merge = |r: Reply, reply: &mut Reply| {
            reply.out.push_str(&r.out);
            reply.err.push_str(&r.err);
            if r.code != 0 {
                reply.code = r.code;
            }
        };
        match verb.as_str() {
            "daemon-reload" | "daemon-reexec" | "reset-failed" => {}
            "start" => names.iter().for_each(|n| merge(self.start(n), &mut reply)),
            "stop" => names.iter().for_each(|n| merge(self.stop(n), &mut reply)),
            "restart" | "reload-or-restart" | "try-restart" => {
                for n in &names {
                    let running = self.services.get(n).is_some_and(|s| s.pid.is_some());
                    merge(self.stop(n), &mut reply);
                    if verb != "try-restart" || running {
                        merge(self.start(n), &mut reply);
                    }
                }
            }
            "enable" | "disable" => {
                let enable = verb == "enable";
                for n in &names {
                    merge(self.enable(n, enable), &mut reply);
                    if now {
                        merge(
                            if enable { self.start(n) } else { self.stop(n) },
                            &mut reply,
                        );
                    }
                }
            }
            "is-active" | "is-failed" => {
                for n in &names {
                    let (state, _) = self.active_state(n);
                    if !quiet {
                        reply.out.push_str(&format!("{state}\n"));
                    }
                    let ok = if verb == "is-active" {
                        state == "active"
                    } else {
                        state == "failed"
                    };
                    if !ok {
                        reply.code = if verb == "is-active" { 3 } else { 1 };
                    }
                }
            }
            "is-enabled" => {
                for n in &names {
                    if units::find_unit(n).is_none() {
                        reply.code = 1;
                        reply.err.push_str(&format!(
                            "Failed to get unit file state for {n}: No such file or directory\n"
                        ));
                        continue;
                    }
                    let enabled = is_enabled(n);
                    if !quiet {
                        reply
                            .out
                            .push_str(if enabled { "enabled\n" } else { "disabled\n" });
                    }
                    if !enabled {
                        reply.code = 1;
                    }
                }
            }
            "status" => {
                for n in &names {
                    if units::find_unit(n).is_none() {
                        reply.code = 4;
                        reply
                            .err
                            .push_str(&format!("Unit {n} could not be found.\n"));
                        continue;
                    }
                    let (state, sub) = self.active_state(n);
                    let service = self.services.get(n);
                    reply.out.push_str(&format!(
                        "● {n} - {}\n     Loaded: loaded ({}; {})\n     Active: {state} ({sub}){}\n",
                        service.map(|s| s.unit.description.clone()).unwrap_or_default(),
                        units::find_unit(n).map(|p| p.display().to_string()).unwrap_or_default(),
                        if is_enabled(n) { "enabled" } else { "disabled" },
                        service.map(|s| format!(" since {}", s.since)).unwrap_or_default(),
                    ));
                    if let Some(pid) = service.and_then(|s| s.pid) {
                        reply.out.push_str(&format!("   Main PID: {pid}\n"));
                    }
                    if state != "active" {
                        reply.code = 3;
                    }
                }
            }
            "show" => {
                for n in &names {
                    let (state, sub) = self.active_state(n);
                    let service = self.services.get(n);
                    let all = [
                        ("Id", n.clone()),
                        (
                            "LoadState",
                            if units::find_unit(n).is_some() {
                                "loaded".into()
                            } else {
                                "not-found".into()
                            },
                        ),
                        ("ActiveState", state.to_string()),
                        ("SubState", sub.to_string()),
                        (
                            "MainPID",
                            service.and_then(|s| s.pid).unwrap_or(0).to_string(),
                        ),
                        (
                            "ExecMainStatus",
                            service.map(|s| s.exit_status).unwrap_or(0).to_string(),
                        ),
                        (
                            "UnitFileState",
                            if is_enabled(n) {
                                "enabled".into()
                            } else {
                                "disabled".into()
                            },
                        ),
                    ];
                    for (key, value) in all {
                        if properties.is_empty() || properties.iter().any(|p| p == key) {
                            if value_only {
                                reply.out.push_str(&format!("{value}\n"));
                            } else {
                                reply.out.push_str(&format!("{key}={value}\n"));
                            }
                        }
                    }
                }
            }
            "list-unit-files" => {
                for dir in units::UNIT_DIRS {
                    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                        let n = entry.file_name().to_string_lossy().to_string();
                        if n.ends_with(".service") {
                            reply.out.push_str(&format!(
                                "{n} {}\n",
                                if is_enabled(&n) {
                                    "enabled"
                                } else {
                                    "disabled"
                                }
                            ));
                        }
                    }
                }
            }
            other => {
                reply.code = 1;
                reply.err = format!("Unknown command verb {other}.\n");
            }
        }
        reply
    }

    /// Reaps exited children, records service exits and schedules Restart= restarts.
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.exited(pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.exited(pid.as_raw(), 128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    fn exited(&mut self, pid: i32, code: i32) {
        for (name, s) in self.services.iter_mut() {
            if s.pid != Some(pid) || s.stopping {
                continue;
            }
            s.pid = None;
            s.exit_status = code;
            let _ = std::fs::remove_file(pidfile(name));
            let restart = match s.unit.restart {
                Restart::Always => true,
                Restart::OnFailure => code != 0,
                Restart::No => false,
            };
            if restart {
                s.state = State::AutoRestart;
                s.restart_at = Some(Instant::now() + s.unit.restart_sec);
            } else {
                s.state = if code == 0 {
                    State::Inactive
                } else {
                    State::Failed
                };
            }
        }
    }

    fn restart_due(&mut self) {
        let due: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| s.restart_at.is_some_and(|t| Instant::now() >= t))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            if let Err(e) = self.spawn(&name) {
                if let Some(s) = self.services.get_mut(&name) {
                    s.state = State::AutoRestart;
                    s.restart_at = Some(Instant::now() + s.unit.restart_sec);
                }
                eprintln!("init: restarting {name} failed: {e:#}");
            }
        }
    }
}

fn serve(manager: &mut Manager, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(r) => manager.command(&r.argv),
        Err(e) => Reply {
            code: 1,
            err: format!("bad request: {e}\n"),
            ..Default::default()
        },
    };
    let mut stream = stream;
    let _ = writeln!(
        stream,
        "{}",
        serde_json::to_string(&reply).unwrap_or_default()
    );
}

/// Where the node's writable /usr layer lives (a Docker volume that survives a node restart).
const USR_LAYER: &str = "/var/lib/testbed-usr";

/// Mounts a writable overlay over /usr whose lower layer is the host's /usr (bind-mounted
/// read-only at /host/usr), then routes the kubelet package's and control-plane binaries to the
/// testbed's multi-call binary, as the image's symlink farm does.
fn overlay_usr() -> Result<()> {
    use nix::mount::{MsFlags, mount};
    use std::os::unix::fs::symlink;
    let layer = Path::new(USR_LAYER);
    if !layer.is_dir() || !Path::new("/host/usr/bin").is_dir() {
        return Ok(());
    }
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    std::fs::create_dir_all(&upper)?;
    std::fs::create_dir_all(&work)?;
    let data = format!(
        "lowerdir=/host/usr,upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        "/usr",
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .context("mount overlay on /usr")?;
    std::fs::create_dir_all("/usr/local/bin")?;
    let links = crate::driver::image::DOUBLES_IN_USR_BIN
        .iter()
        .map(|n| (format!("/usr/bin/{n}"), "/opt/testbed/bin/tbnode"))
        .chain(
            crate::driver::image::DOUBLES_IN_USR_LOCAL_BIN
                .iter()
                .map(|n| (format!("/usr/local/bin/{n}"), "/opt/testbed/bin/tbnode")),
        )
        .chain([(
            "/usr/local/bin/kubestrap".to_string(),
            "/opt/testbed/bin/kubestrap",
        )]);
    for (link, target) in links {
        if std::fs::read_link(&link).is_ok_and(|t| t == Path::new(target)) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        symlink(target, &link).with_context(|| format!("link {link}"))?;
    }
    Ok(())
}

pub fn main(_args: &[String]) -> i32 {
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("init: {e:#}");
            1
        }
    }
}

fn run() -> Result<()> {
    let handler = SigAction::new(
        SigHandler::Handler(on_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        sigaction(Signal::SIGTERM, &handler)?;
        sigaction(Signal::SIGINT, &handler)?;
    }
    std::fs::create_dir_all("/run/systemd/system")?;
    if std::fs::read_to_string("/etc/machine-id")
        .map(|id| id.trim().is_empty())
        .unwrap_or(true)
    {
        let mut id = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut id);
        std::fs::write("/etc/machine-id", format!("{}\n", hex::encode(id)))?;
    }
    std::fs::create_dir_all("/run/testbed")?;
    if let Err(e) = overlay_usr() {
        eprintln!("init: /usr stays read-only: {e:#}");
    }
    super::network::boot();
    let _ = std::fs::remove_file(SOCKET);
    let listener = UnixListener::bind(SOCKET)?;
    listener.set_nonblocking(true)?;
    let mut manager = Manager::default();
    for entry in std::fs::read_dir(WANTS).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let reply = manager.start(&name);
        if reply.code != 0 {
            eprint!("init: {}", reply.err);
        }
    }
    while !STOP.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                serve(&mut manager, stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
        manager.reap();
        manager.restart_due();
    }
    let names: Vec<String> = manager.services.keys().cloned().collect();
    for name in names {
        manager.stop(&name);
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    Ok(())
}
