//! The `--dry-run` plan of `init` and of `reset` on a seeded node, as the Host gateway prints it, against
//! goldens written by hand (tests/golden/dry-run/). Random content is redacted: the `--root` prefix
//! (`<root>`), the binary's path, the backup's timestamp and the sizes of keys, certificates, kubeconfigs and the node record (`<n> bytes`). The
//! manifests' contents that a dry run prints after their plan step (tab-indented) are left out: the
//! static-pod goldens (tests/golden/v1.34.3) pin them. A mismatch prints the
//! difference and leaves the actual output beside the test's temporary root; nothing re-blesses a golden.
//! The reset half runs in private network and mount namespaces, so the machine's own state stays out.

mod common;

use std::path::Path;
use std::process::Command;

const KUBESTRAP: &str = env!("CARGO_BIN_EXE_kubestrap");
const NODE: [&str; 4] = [
    "--node-name",
    "cp1",
    "--apiserver-advertise-address",
    "192.0.2.10",
];

fn kubestrap(root: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(KUBESTRAP);
    for (name, _) in std::env::vars() {
        if name.to_ascii_lowercase().ends_with("_proxy") || name.starts_with("KUBESTRAP_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .arg("--root")
        .arg(root)
        .args(args)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A generated bootstrap token (`abcdef.0123456789abcdef`) and its Secret's name replaced by
/// placeholders.
fn redact_token(line: &str) -> String {
    let mut out = line.to_string();
    for (marker, placeholder) in [
        ("Using token: ", "<token>"),
        ("--token ", "<token>"),
        ("bootstrap-token-", "<id>"),
    ] {
        if let Some(at) = out.find(marker) {
            let start = at + marker.len();
            let len = out[start..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.'))
                .unwrap_or(out.len() - start);
            out.replace_range(start..start + len, placeholder);
        }
    }
    out
}

/// `backup-<timestamp>` for reset's backup directory (`backup-20260102T030405Z`).
fn redact_backup(line: &str) -> String {
    match line.find("/backup-") {
        Some(at) if line.len() >= at + 24 => {
            format!("{}/backup-<timestamp>{}", &line[..at], &line[at + 24..])
        }
        _ => line.to_string(),
    }
}

/// The root prefix, the binary's path (`<kubestrap>`, which the discovery unit runs), generated tokens
/// and random sizes replaced by placeholders.
fn redact(text: &str, root: &Path) -> String {
    let root = root.display().to_string();
    text.lines()
        .filter(|line| !line.starts_with('\t'))
        .map(|line| {
            let line = redact_backup(&redact_token(
                &line
                    .replace(&root, "<root>")
                    .replace(KUBESTRAP, "<kubestrap>"),
            ));
            let random = ["/pki/", ".conf ", "/cluster.yaml ", ".service "]
                .iter()
                .any(|m| line.contains(m));
            match (random, line.rfind(", "), line.rfind(" bytes)")) {
                (true, Some(from), Some(to)) if line.starts_with("[dry-run] Would write ") => {
                    format!("{}, <n>{}", &line[..from], &line[to..])
                }
                _ => line,
            }
        })
        .map(|l| l + "\n")
        .collect()
}

fn golden(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/dry-run")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_golden(name: &str, actual: &str, keep_at: &Path) {
    let expected = golden(name);
    if expected == actual {
        return;
    }
    let saved = keep_at.with_extension(format!("{name}.actual"));
    std::fs::write(&saved, actual).unwrap();
    let diff: Vec<String> = expected
        .lines()
        .zip(actual.lines())
        .enumerate()
        .filter(|(_, (e, a))| e != a)
        .take(10)
        .map(|(i, (e, a))| format!("line {}:\n  golden: {e}\n  actual: {a}", i + 1))
        .collect();
    panic!(
        "{name} differs from its golden ({} vs {} lines; actual output in {}):\n{}",
        expected.lines().count(),
        actual.lines().count(),
        saved.display(),
        diff.join("\n")
    );
}

#[test]
fn init_dry_run_plan_matches_its_golden() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut args = vec!["init", "--dry-run", "--skip-phases", "preflight"];
    args.extend(NODE);
    let (ok, out, err) = kubestrap(root, &args);
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        std::fs::read_dir(root).unwrap().count(),
        0,
        "a dry run wrote something"
    );
    assert_golden("init.txt", &redact(&out, root), root);
}

#[test]
fn reset_dry_run_plan_of_a_seeded_node_matches_its_golden() {
    if !common::enter_sandbox("reset_dry_run_plan_of_a_seeded_node_matches_its_golden") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The node's files only: the seeded node runs no kubelet or API server.
    let mut args = vec![
        "init",
        "--skip-phases",
        "preflight,kubelet-start,wait-control-plane,upload-config,upload-certs,mark-control-plane,\
         bootstrap-token,kubelet-finalize,addon,discovery,show-join-command",
    ];
    args.extend(NODE);
    let (ok, out, err) = kubestrap(root, &args);
    assert!(ok, "{out}\n{err}");
    let r = root.display();
    common::sh(&format!(
        "K={r}/var/lib/kubelet; mkdir -p $K/pods/p1/volumes/kubernetes.io~secret/token {r}/var/lib/cni/networks/cbr0 {r}/var/lib/cni/results {r}/var/lib/etcd/member && \
         mount -t tmpfs -o size=64k tmpfs $K/pods/p1/volumes/kubernetes.io~secret/token && \
         printf 'sandbox1\\r\\neth0' > {r}/var/lib/cni/networks/cbr0/10.244.0.2 && \
         echo '{{}}' > {r}/var/lib/cni/results/cbr0-sandbox1-eth0 && echo '{{}}' > {r}/var/lib/cni/results/cni-loopback-sandbox1-lo && \
         echo '{{}}' > {r}/var/lib/cni/results/cni-loopback-other-lo && mkdir -p {r}/var/lib/etcd/member/snap && echo db > {r}/var/lib/etcd/member/snap/db"
    ));
    let before = common::sh(&format!("find {r} | sort"));
    let (ok, out, err) = kubestrap(
        root,
        &[
            "reset",
            "--dry-run",
            "--cri-socket",
            "unix:///nonexistent/kubestrap-test.sock",
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        common::sh(&format!("find {r} | sort")),
        before,
        "a dry run changed the root"
    );
    assert_golden("reset.txt", &redact(&out, root), root);
}
