//! Shared helpers for integration tests: private namespaces for kernel-state tests, shell seeding.

#![allow(dead_code)]

pub mod containerd;

use std::process::Command;

const SANDBOX_VAR: &str = "KUBESTRAP_TEST_SANDBOX";

/// Runs the calling test again inside fresh network and mount namespaces (`unshare`), with a private
/// /run/netns. Returns true in the inner run (do the work), false in the outer run (already asserted).
pub fn enter_sandbox(test_name: &str) -> bool {
    if std::env::var(SANDBOX_VAR).as_deref() == Ok(test_name) {
        sh("ip link set lo up; mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns");
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let status = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--fork",
            "--",
        ])
        .arg(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(SANDBOX_VAR, test_name)
        .status()
        .expect("unshare must be installed (util-linux)");
    assert!(status.success(), "{test_name} failed inside its sandbox");
    false
}

/// Held while a test uses the shared Docker engine or runs a containerd: such tests run one at a time
/// across the whole project (the testbed takes the same lock file).
pub struct RuntimeLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

pub fn runtime_lock() -> RuntimeLock {
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/kubestrap-shared-runtime.lock")
        .expect("open the shared runtime lock");
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the shared runtime lock");
    RuntimeLock { _lock: lock }
}

/// Runs a shell script, panicking with its output when it fails.
pub fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-ec", script])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "script failed: {script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails loudly when a tool the test needs is missing.
pub fn require(tools: &[&str]) {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "this test needs `{tool}`: install it (scripts/setup.sh reads .ci/apt-packages)"
        );
    }
}
