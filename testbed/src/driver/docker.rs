//! The Docker CLI, and the machine-wide lock that keeps Docker-based tests one at a time on the
//! shared engine (command-line clusters never take it: they live beside test runs).

use std::fs::File;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use nix::fcntl::{Flock, FlockArg};

/// The label every container, network and volume of a test run carries (value: the run id).
pub const LABEL: &str = super::identity::TEST_LABEL;

/// Lock file shared by every process that drives the engine for the testbed.
/// One lock for every test of the project that uses the shared Docker engine or starts a containerd
/// (tests/common/mod.rs in the root package takes the same file), so those tests run one at a time.
const LOCK_PATH: &str = "/tmp/kubestrap-shared-runtime.lock";

/// Output of a finished command as text.
#[derive(Debug, Clone)]
pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Fails with the command's output when it did not succeed.
    pub fn check(self, what: &str) -> Result<Finished> {
        if self.ok() {
            Ok(self)
        } else {
            bail!(
                "{what} failed with exit code {}:\n{}{}",
                self.code,
                self.stdout,
                self.stderr
            )
        }
    }
}

impl From<Output> for Finished {
    fn from(o: Output) -> Self {
        Finished {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `docker <args>`, optionally feeding stdin.
pub fn docker(args: &[&str], stdin: Option<&[u8]>) -> Result<Finished> {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .context("run the docker CLI (is it installed?)")?;
    if let Some(input) = stdin {
        let mut pipe = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("docker stdin unavailable"))?;
        pipe.write_all(input)?;
    }
    Ok(child.wait_with_output()?.into())
}

/// Fails loudly when no Docker engine answers: Docker-based tests never skip.
pub fn require_engine() -> Result<()> {
    let out = docker(&["version", "--format", "{{.Server.Version}}"], None)?;
    if !out.ok() || out.stdout.trim().is_empty() {
        bail!(
            "the testbed needs a running Docker engine, and none answers: {}{}\n(start dockerd; Docker-based tests do not skip)",
            out.stdout,
            out.stderr
        );
    }
    Ok(())
}

/// Holds the engine for one test at a time; released when the last clone is dropped. A test that
/// holds it can hand a clone to `Cluster::start_holding` to start a cluster under the same hold.
#[derive(Clone)]
pub struct EngineLock {
    _lock: Arc<Flock<File>>,
}

impl EngineLock {
    /// Waits until no other holder is left (other processes, or other threads of this one).
    pub fn acquire() -> Result<EngineLock> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_PATH)
            .with_context(|| format!("open {LOCK_PATH}"))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| anyhow!("lock {LOCK_PATH}: {e}"))?;
        Ok(EngineLock {
            _lock: Arc::new(lock),
        })
    }
}

/// Removes every container, network and volume carrying the test-run label. Only called while
/// holding the engine lock, so nothing so labelled can belong to a live run; command-line clusters
/// carry another label key and are never selected.
pub fn sweep_leftovers() -> Result<()> {
    let filter = format!("label={LABEL}");
    let containers =
        docker(&["ps", "-aq", "--filter", &filter], None)?.check("list testbed containers")?;
    let ids: Vec<&str> = containers.stdout.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids);
        docker(&args, None)?.check("remove leftover testbed containers")?;
    }
    let networks = docker(&["network", "ls", "-q", "--filter", &filter], None)?
        .check("list testbed networks")?;
    for id in networks.stdout.split_whitespace() {
        docker(&["network", "rm", id], None)?.check("remove a leftover testbed network")?;
    }
    let volumes = docker(&["volume", "ls", "-q", "--filter", &filter], None)?
        .check("list testbed volumes")?;
    for name in volumes.stdout.split_whitespace() {
        docker(&["volume", "rm", "-f", name], None)?.check("remove a leftover testbed volume")?;
    }
    Ok(())
}
