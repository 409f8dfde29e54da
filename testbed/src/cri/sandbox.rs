//! A container's process: `tbnode pod-exec <spec>` (started by the runtime double) makes a private
//! mount namespace whose root holds only the "image" (the node's /usr, read-only), the container's
//! mounts (the pod's volumes) at their paths and the host-network files, then chroots into it and
//! execs the container's command. A manifest that forgets a volume therefore fails here as it would
//! in a real container: the file is simply not there.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountSpec {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub rootfs: PathBuf,
    /// Node directories that make up the image, bound read-only at the same path.
    pub image_dirs: Vec<PathBuf>,
    pub mounts: Vec<MountSpec>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Paths outside /usr where the image holds a binary: links to the multi-call binary.
    #[serde(default)]
    pub image_links: Vec<String>,
    pub workdir: Option<String>,
    /// The sandbox's network namespace to join (None: the node's network).
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// The pod's hostname, in a UTS namespace of its own (pod-network sandboxes).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Files the sandbox provides instead of the node's (source, path in the container).
    #[serde(default)]
    pub etc_files: Vec<(PathBuf, String)>,
}

fn bind(source: &Path, target: &Path, read_only: bool) -> Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind {} on {}", source.display(), target.display()))?;
    if read_only {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .with_context(|| format!("remount {} read-only", target.display()))?;
    }
    Ok(())
}

/// Creates the mount point for `source` (a file or a directory) at `target`.
fn mount_point(source: &Path, target: &Path) -> Result<()> {
    if source.is_dir() {
        std::fs::create_dir_all(target)?;
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !target.exists() {
            std::fs::write(target, b"")?;
        }
    }
    Ok(())
}

fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn setup(spec: &SandboxSpec) -> Result<()> {
    if let Some(netns) = &spec.netns {
        let file = std::fs::File::open(netns)
            .with_context(|| format!("open network namespace {}", netns.display()))?;
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("join network namespace {}", netns.display()))?;
    }
    if let Some(hostname) = &spec.hostname {
        unshare(CloneFlags::CLONE_NEWUTS).context("unshare UTS namespace")?;
        nix::unistd::sethostname(hostname).context("set the pod's hostname")?;
    }
    unshare(CloneFlags::CLONE_NEWNS).context("unshare mount namespace")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("make mounts private")?;
    let root = &spec.rootfs;
    std::fs::create_dir_all(root)?;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=755"),
    )
    .context("mount the container root")?;
    for dir in &spec.image_dirs {
        let target = inside(root, &dir.to_string_lossy());
        std::fs::create_dir_all(&target)?;
        bind(dir, &target, true)?;
    }
    for (link, to) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        std::os::unix::fs::symlink(to, root.join(link))?;
    }
    for path in &spec.image_links {
        let link = inside(root, path);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink("/opt/testbed/bin/tbnode", &link)?;
    }
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc)?;
    std::fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(etc.join("group"), "root:x:0:\n")?;
    std::fs::write(etc.join("nsswitch.conf"), "hosts: files dns\n")?;
    for file in [
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/hostname",
        "/etc/ld.so.cache",
    ] {
        let source = Path::new(file);
        let source = spec
            .etc_files
            .iter()
            .find(|(_, target)| target == file)
            .map(|(s, _)| s.as_path())
            .unwrap_or(source);
        if source.exists() {
            let target = inside(root, file);
            mount_point(source, &target)?;
            bind(source, &target, file == "/etc/ld.so.cache")?;
        }
    }
    for dir in ["/proc", "/dev", "/sys"] {
        let target = inside(root, dir);
        std::fs::create_dir_all(&target)?;
        bind(Path::new(dir), &target, false)?;
    }
    for dir in ["tmp", "run", "var/run", "var/log", "root"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    mount(
        Some("tmpfs"),
        &root.join("tmp"),
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=1777"),
    )?;
    let mut mounts = spec.mounts.clone();
    mounts.sort_by_key(|m| m.target.matches('/').count());
    for m in &mounts {
        let target = inside(root, &m.target);
        mount_point(&m.source, &target)?;
        bind(&m.source, &target, m.read_only)?;
    }
    nix::unistd::chroot(root.as_path()).context("chroot")?;
    let workdir = spec.workdir.clone().unwrap_or_else(|| "/".into());
    nix::unistd::chdir(Path::new(&workdir))
        .with_context(|| format!("chdir to working directory {workdir}"))?;
    Ok(())
}

/// Finds `program` on the container's PATH, inside the new root.
fn resolve(program: &str, env: &[(String, String)]) -> Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| anyhow!("exec: {program:?}: executable file not found in $PATH"))
}

fn exec(spec: &SandboxSpec) -> Result<()> {
    let program = spec.argv.first().ok_or_else(|| anyhow!("no command"))?;
    let binary = resolve(program, &spec.env)?;
    let c = |s: &str| CString::new(s).map_err(|_| anyhow!("NUL in command line"));
    let argv: Vec<CString> = spec.argv.iter().map(|a| c(a)).collect::<Result<_>>()?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| c(&format!("{k}={v}")))
        .collect::<Result<_>>()?;
    let path = c(&binary.to_string_lossy())?;
    nix::unistd::execve(&path, &argv, &env)
        .with_context(|| format!("exec {}", binary.display()))?;
    bail!("exec returned")
}

/// Entry point of `tbnode pod-exec <spec.json>`; never returns on success.
pub fn main(args: &[String]) -> i32 {
    let result = (|| -> Result<()> {
        let path = args
            .first()
            .ok_or_else(|| anyhow!("usage: pod-exec <spec.json>"))?;
        let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
        let spec: SandboxSpec = serde_json::from_str(&text)?;
        setup(&spec).context("failed to create containerd task: failed to create shim task: OCI runtime create failed")?;
        exec(&spec)
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            128
        }
    }
}
