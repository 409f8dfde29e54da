//! The node lock through the real binary: a second node-changing command fails at once, naming the holder.

use assert_cmd::Command;
use kubestrap::host::Root;
use kubestrap::host::lock::NodeLock;

#[test]
fn init_refuses_while_another_command_holds_the_lock() {
    let root = tempfile::tempdir().unwrap();
    let _held = NodeLock::acquire(&Root::new(root.path()), "reset").unwrap();
    let out = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args([
            "init",
            "--node-name",
            "cp-1",
            "--apiserver-advertise-address",
            "192.0.2.10",
        ])
        .args(["phase", "certs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kubestrap reset"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
}

#[test]
fn dry_run_neither_locks_nor_journals() {
    let root = tempfile::tempdir().unwrap();
    let _held = NodeLock::acquire(&Root::new(root.path()), "reset").unwrap();
    let before: Vec<_> = walk(root.path());
    let out = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args([
            "--dry-run",
            "init",
            "--node-name",
            "cp-1",
            "--apiserver-advertise-address",
            "192.0.2.10",
        ])
        .args(["phase", "certs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(walk(root.path()), before);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}
