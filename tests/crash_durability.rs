//! Crash safety of the group-committed writes: `init phase certs all` and `init phase kubeconfig all`
//! killed with SIGKILL at random points, many times. Each kill is checked to have landed mid-run (the
//! journal holds the run's `run-start` without its `run-end`); after each, every file present parses
//! completely, no certificate lacks its key, and a plain re-run converges to a complete PKI.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubestrap::host::Root;
use kubestrap::host::journal::{self, Entry};
use kubestrap::kubeconfig::KubeConfig;
use kubestrap::pki::inspect::CertInfo;
use kubestrap::pki::keys;

const KUBESTRAP: &str = env!("CARGO_BIN_EXE_kubestrap");
const NODE: [&str; 4] = [
    "--node-name",
    "cp1",
    "--apiserver-advertise-address",
    "192.0.2.10",
];
/// Kills that must land mid-run (others come before the journal starts or after the run ended, and
/// do not count): the proof that the test exercised what it claims.
const MID_RUN_KILLS: usize = 50;
const MAX_ROUNDS: usize = 200;

fn command(root: &Path, phase: &str) -> Command {
    let mut cmd = Command::new(KUBESTRAP);
    for (name, _) in std::env::vars() {
        if name.to_ascii_lowercase().ends_with("_proxy") || name.starts_with("KUBESTRAP_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--root")
        .arg(root)
        .args(["init", "phase", phase, "all"])
        .args(NODE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn run_ok(root: &Path, phase: &str) {
    let out = command(root, phase).output().unwrap();
    assert!(
        out.status.success(),
        "init phase {phase} all: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small deterministic generator (xorshift); the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Files at their final names (staged temporary files are not in place, by design).
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.map(|e| e.unwrap()) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "kubestrap" {
                out.extend(files(&path));
            }
        } else if !name.ends_with(".kubestrap-tmp") {
            out.push(path);
        }
    }
    out
}

/// Every file present parses completely; every certificate has its key (and `sa.pub` its `sa.key`).
fn check_consistent(root: &Path, when: &str) {
    for path in files(&root.join("etc/kubernetes")) {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        if name.ends_with(".crt") {
            CertInfo::from_pem(&bytes).unwrap_or_else(|e| panic!("{when}: {name}: {e}"));
            let key = path.with_extension("key");
            assert!(key.exists(), "{when}: {name} without its key");
        } else if name.ends_with(".key") {
            keys::parse_private_key_pem(&bytes).unwrap_or_else(|e| panic!("{when}: {name}: {e}"));
        } else if name.ends_with(".pub") {
            assert!(
                String::from_utf8_lossy(&bytes).ends_with("-----END PUBLIC KEY-----\n"),
                "{when}: {name} is torn"
            );
            assert!(
                path.with_extension("key").exists(),
                "{when}: {name} without sa.key"
            );
        } else if name.ends_with(".conf") {
            KubeConfig::parse(&String::from_utf8(bytes).unwrap())
                .unwrap_or_else(|e| panic!("{when}: {name}: {e}"));
        } else {
            panic!("{when}: unexpected file {name}");
        }
    }
}

fn temp_files(root: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(root)
        .args(["-name", "*.kubestrap-tmp"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Starts the command and returns once its run has begun: the journal grew by its `run-start`.
fn start(root: &Path, phase: &str) -> std::process::Child {
    let journal_file = journal::journal_path(&Root::new(root));
    let size = || {
        std::fs::metadata(&journal_file)
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let before = size();
    let mut child = command(root, phase).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while size() == before && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    child
}

fn time_after_start(root: &Path, phase: &str) -> Duration {
    let mut child = start(root, phase);
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success(), "init phase {phase} all failed");
    started.elapsed()
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Whether the journal shows a run of `command` that started and never ended.
fn killed_mid_run(root: &Path) -> bool {
    let records = journal::read(&Root::new(root)).unwrap();
    journal::unfinished_runs(&records)
        .iter()
        .any(|r| r.command.starts_with("init phase"))
}

fn complete(root: &Path) -> usize {
    let pki = root.join("etc/kubernetes/pki");
    let certs = files(&pki)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .count();
    let confs = files(&root.join("etc/kubernetes"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .count();
    certs + confs
}

#[test]
fn sigkill_at_random_points_leaves_whole_files_and_a_rerun_converges() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);

    // How long each command runs here once its journal run began, to spread the kills over it.
    let reference = tempfile::tempdir().unwrap();
    let certs_time = time_after_start(reference.path(), "certs");
    let certs_only = complete(reference.path());
    let kubeconfig_time = time_after_start(reference.path(), "kubeconfig");
    let expected = complete(reference.path());
    eprintln!("certs all {certs_time:?}, kubeconfig all {kubeconfig_time:?}");

    // A node whose certificates are complete, copied for the rounds that kill `kubeconfig all`.
    let with_certs = tempfile::tempdir().unwrap();
    run_ok(with_certs.path(), "certs");

    let mut mid_run = 0;
    let mut round = 0;
    while mid_run < MID_RUN_KILLS && round < MAX_ROUNDS {
        round += 1;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (phase, span) = if round % 2 == 0 {
            ("certs", certs_time)
        } else {
            copy_tree(with_certs.path(), root);
            ("kubeconfig", kubeconfig_time)
        };
        // The kill comes at a random point after the run began (its journal exists), up to the
        // run's whole length: most land mid-run, some after it ended.
        let delay = Duration::from_micros(rng.below(span.as_micros() as u64 + 1));
        let mut child = start(root, phase);
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let when = format!("round {round} ({phase}, killed after {delay:?}, seed {seed})");
        if killed_mid_run(root) {
            mid_run += 1;
        }
        check_consistent(root, &when);

        // A re-run of the killed command rolls the killed run back and converges.
        run_ok(root, phase);
        check_consistent(root, &format!("{when}, re-run"));
        let want = if phase == "certs" {
            certs_only
        } else {
            expected
        };
        assert_eq!(complete(root), want, "{when}: re-run incomplete");
        assert!(
            temp_files(root).is_empty(),
            "{when}: {:?}",
            temp_files(root)
        );
        let records = journal::read(&Root::new(root)).unwrap();
        assert!(journal::unfinished_runs(&records).is_empty(), "{when}");
        assert!(
            records
                .iter()
                .any(|r| matches!(&r.entry, Entry::RunStart { .. })),
            "{when}"
        );
    }
    eprintln!("{mid_run} of {round} kills landed mid-run");
    assert!(
        mid_run >= MID_RUN_KILLS,
        "only {mid_run} of {round} kills landed mid-run (seed {seed})"
    );
}
