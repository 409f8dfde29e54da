//! A run killed mid-phase (SIGKILL) and a plain re-run: the re-run reports the unfinished run, rolls it
//! back and succeeds, instead of tripping over the half-written state in preflight.
//!
//! The run is stopped at a known point without any hook in the tool: the kube-apiserver manifest it is
//! about to replace is a named pipe, and backing it up blocks (after the certs, the kubeconfigs and the
//! etcd manifest were written) until the test kills the process. Both runs ignore the preflight check of
//! that manifest, so the leftovers the killed run wrote are what decides.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use kubestrap::host::Root;
use kubestrap::host::journal::{self, Entry, Outcome};
use serde_json::Value;

const NODE: [&str; 4] = [
    "--node-name",
    "cp1",
    "--apiserver-advertise-address",
    "192.0.2.10",
];

fn kubestrap(root: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::cargo_bin("kubestrap").unwrap();
    for (name, _) in std::env::vars() {
        if name.to_ascii_lowercase().ends_with("_proxy") || name.starts_with("KUBESTRAP_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--root").arg(root);
    cmd
}

/// The preflight errors this machine has on a fresh root (no kubelet, no runtime, a documentation
/// address…): ignored in both runs, so the leftovers checks are the ones that decide.
fn host_preflight_errors() -> String {
    let fresh = tempfile::tempdir().unwrap();
    let out = kubestrap(fresh.path())
        .args(["init", "phase", "preflight", "-o", "json"])
        .args(NODE)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "preflight JSON: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let failing: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail" && c["severity"] == "error")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for leftover in ["FileAvailable", "DirAvailable"] {
        assert!(
            !failing.iter().any(|id| id.starts_with(leftover)),
            "a fresh root has no leftovers: {failing:?}"
        );
    }
    failing.join(",")
}

/// The pipe the first run blocks on.
const BLOCKER: &str = "etc/kubernetes/manifests/kube-apiserver.yaml";
const BLOCKER_CHECK: &str = "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml";

/// The phases that need a kubelet and a running control plane, which this test has none of.
const API_PHASES: &str = "kubelet-start,wait-control-plane,kubelet-finalize,upload-config,upload-certs,mark-control-plane,bootstrap-token,addon,discovery";

fn init_args(root: &Path, ignore: &str) -> std::process::Command {
    let mut cmd = kubestrap(root);
    cmd.arg("init")
        .args(NODE)
        .arg(format!(
            "--ignore-preflight-errors={ignore},{BLOCKER_CHECK}"
        ))
        .arg(format!("--skip-phases={API_PHASES}"));
    cmd
}

fn wait_for(what: &str, path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
            }
            panic!("init ended ({status}) before {what}: {err}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ca(root: &Path) -> Vec<u8> {
    std::fs::read(root.join("etc/kubernetes/pki/ca.crt")).unwrap()
}

#[test]
fn a_killed_init_is_rolled_back_by_the_next_and_the_next_succeeds() {
    let ignore = host_preflight_errors();
    let root = tempfile::tempdir().unwrap();
    let pipe: PathBuf = root.path().join(BLOCKER);
    std::fs::create_dir_all(pipe.parent().unwrap()).unwrap();
    nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();

    // 1. The first run blocks in control-plane/apiserver, after the etcd manifest; it is killed there.
    let mut first = init_args(root.path(), &ignore)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "the etcd manifest",
        &root.path().join("etc/kubernetes/manifests/etcd.yaml"),
        &mut first,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        first.try_wait().unwrap().is_none(),
        "init waits on the pipe"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let killed_ca = ca(root.path());
    let records = journal::read(&Root::new(root.path())).unwrap();
    let unfinished = journal::unfinished_runs(&records);
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    assert_eq!(unfinished[0].command, "init");
    assert!(root.path().join("var/lib/kubestrap/cluster.yaml").exists());

    // 2. The half-written state is what preflight trips over (a dry run plans, it does not recover).
    let dry = init_args(root.path(), &ignore)
        .arg("--dry-run")
        .output()
        .unwrap();
    let dry_out =
        String::from_utf8_lossy(&dry.stdout).to_string() + &String::from_utf8_lossy(&dry.stderr);
    assert_eq!(dry.status.code(), Some(1), "{dry_out}");
    assert!(
        dry_out.contains("did not finish: a real run rolls back its changes first"),
        "{dry_out}"
    );
    assert!(
        dry_out.contains("[ERROR FileAvailable--etc-kubernetes-manifests-etcd.yaml]"),
        "{dry_out}"
    );

    // 3. The admin removes what made the run hang; a plain re-run reports the unfinished run, rolls it
    // back and succeeds.
    std::fs::remove_file(&pipe).unwrap();
    let rerun = init_args(root.path(), &ignore).output().unwrap();
    let stdout = String::from_utf8_lossy(&rerun.stdout);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stdout}{stderr}");
    let pid = unfinished[0].pid;
    assert!(
        stdout.contains(&format!(
            "[recover] An earlier run ('kubestrap init', pid {pid}, started {}) did not finish: rolling back its changes first",
            unfinished[0].started
        )),
        "{stdout}"
    );
    let undone: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("[recover] Undid "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of undone changes: {stdout}"));
    assert!(
        undone > 20,
        "the certs and kubeconfigs of the killed run: {undone}"
    );
    assert_ne!(
        ca(root.path()),
        killed_ca,
        "the CA was made again, not reused"
    );
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let path = root
            .path()
            .join(format!("etc/kubernetes/manifests/{name}.yaml"));
        assert!(path.is_file(), "{name}");
    }

    let records = journal::read(&Root::new(root.path())).unwrap();
    assert!(journal::unfinished_runs(&records).is_empty());
    let ends: Vec<(String, Outcome)> = records
        .iter()
        .filter_map(|r| match r.entry {
            Entry::RunEnd { outcome } => Some((r.run.clone(), outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert_eq!(ends[0], (unfinished[0].run.clone(), Outcome::RolledBack));
    assert_eq!(ends[1].1, Outcome::Succeeded);
}
