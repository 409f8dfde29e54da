//! A failure injected at each init phase, after `--fix` set a live sysctl in preflight: the rollback
//! leaves the root byte-identical to before (files, directories, modes, symlinks, the sysctl drop-in;
//! kubestrap's own journal and lock under `<root>/var/lib/kubestrap` excepted) and puts the live value
//! back. Runs inside private network and mount namespaces: the sysctl is the namespace's own.
//!
//! Failures are injected without any hook in the tool: a directory stands where the phase must write
//! a file (the user's, so it is part of "before"), or, for preflight, a user's manifest fails a check.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use common::sh;

const KUBESTRAP: &str = env!("CARGO_BIN_EXE_kubestrap");
const NODE: [&str; 4] = [
    "--node-name",
    "cp1",
    "--apiserver-advertise-address",
    "192.0.2.10",
];
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const FORWARD_CHECK: &str = "FileContent--proc-sys-net-ipv4-ip_forward";

fn kubestrap(root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(KUBESTRAP);
    for (name, _) in std::env::vars() {
        if name.to_ascii_lowercase().ends_with("_proxy") || name.starts_with("KUBESTRAP_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--root").arg(root).args(args).output().unwrap()
}

/// Every entry under the root but kubestrap's own state: type, mode, owner and content.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if rel == "var/lib/kubestrap" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let head = format!("{:o} {}:{}", meta.mode(), meta.uid(), meta.gid());
            let what = if meta.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(root, &path, out);
                "dir".to_string()
            } else {
                format!("file {:?}", std::fs::read(&path).unwrap())
            };
            out.insert(rel, format!("{head} {what}"));
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The user's own state on the node before init (it must survive the rollback untouched).
fn seed_user_state(root: &Path) {
    let r = root.display();
    sh(&format!(
        "mkdir -p {r}/etc/sysctl.d {r}/etc/kubernetes {r}/home/admin && \
         echo 'vm.swappiness = 10' > {r}/etc/sysctl.d/10-user.conf && chmod 640 {r}/etc/sysctl.d/10-user.conf && \
         echo notes > {r}/home/admin/notes && ln -s ../home/admin/notes {r}/etc/notes-link"
    ));
}

/// The preflight errors of this root that the run ignores: all but the sysctl `--fix` sets (and,
/// for the preflight case, the check the injected failure trips).
fn ignored_errors(root: &Path, keep: &[&str]) -> String {
    let out = kubestrap(
        root,
        &[&["init", "phase", "preflight", "-o", "json"][..], &NODE].concat(),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "preflight JSON: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let ids: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail" && c["severity"] == "error")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&FORWARD_CHECK), "ip_forward is off: {ids:?}");
    ids.into_iter()
        .filter(|id| *id != FORWARD_CHECK && !keep.contains(id))
        .collect::<Vec<_>>()
        .join(",")
}

struct Case {
    phase: &'static str,
    /// A path (under the root) where the user has something that makes the phase fail.
    blocker: &'static str,
    /// A directory (the phase cannot write its file there), or a file (preflight trips on it).
    dir: bool,
    /// Checks that must not be ignored.
    keep: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        phase: "preflight",
        blocker: "etc/kubernetes/manifests/kube-apiserver.yaml",
        dir: false,
        keep: &["FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"],
    },
    Case {
        phase: "certs",
        blocker: "etc/kubernetes/pki/front-proxy-client.crt",
        dir: true,
        keep: &[],
    },
    Case {
        phase: "kubeconfig",
        blocker: "etc/kubernetes/scheduler.conf",
        dir: true,
        keep: &[],
    },
    Case {
        phase: "etcd",
        blocker: "etc/kubernetes/manifests/etcd.yaml",
        dir: true,
        keep: &[],
    },
    Case {
        phase: "control-plane",
        blocker: "etc/kubernetes/manifests/kube-scheduler.yaml",
        dir: true,
        keep: &[],
    },
];

#[test]
fn a_failure_at_each_init_phase_rolls_back_to_a_byte_identical_root_and_the_live_sysctl() {
    if !common::enter_sandbox(
        "a_failure_at_each_init_phase_rolls_back_to_a_byte_identical_root_and_the_live_sysctl",
    ) {
        return;
    }
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        seed_user_state(root);
        let blocker = root.join(case.blocker);
        std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
        if case.dir {
            std::fs::create_dir(&blocker).unwrap();
        } else {
            std::fs::write(&blocker, "apiVersion: v1\nkind: Pod\n").unwrap();
        }
        sh(&format!("echo 0 > {IP_FORWARD}"));
        let ignore = ignored_errors(root, case.keep);
        let before = snapshot(root);

        // The discovery phase comes after every injected failure (and its unit would run this test's
        // binary, which init refuses).
        let mut args = vec!["init", "--fix", "--skip-phases", "discovery"];
        args.extend(NODE);
        let ignore_flag = format!("--ignore-preflight-errors={ignore}");
        if !ignore.is_empty() {
            args.push(&ignore_flag);
        }
        let out = kubestrap(root, &args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "{}: init succeeded:\n{text}",
            case.phase
        );
        assert!(
            text.contains(&format!("error execution phase {}", case.phase)),
            "{}: failed elsewhere:\n{text}",
            case.phase
        );
        assert!(
            text.contains("[rollback] Put net.ipv4.ip_forward back to 0"),
            "{}: the live value was not journaled and restored:\n{text}",
            case.phase
        );
        assert_eq!(
            sh(&format!("cat {IP_FORWARD}")).trim(),
            "0",
            "{}: live value",
            case.phase
        );
        let after = snapshot(root);
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        assert!(
            changed.is_empty(),
            "{}: the rollback left the root changed at {changed:?}\n{text}",
            case.phase
        );
    }
}

/// The discovery phase run by an installed binary (a copy under a tmpfs on /mnt, in the sandbox's own
/// mount namespace) on a node whose PID 1 is systemd (a fixture /proc) with a `systemctl` that records
/// its calls and fails to start the unit: the unit was enabled and journaled before the failure, so the
/// rollback disables and stops it (`systemctl disable --now`) and removes the unit file, the serving
/// certificate and everything earlier phases wrote.
#[test]
fn a_failure_starting_the_discovery_unit_disables_it_and_removes_its_files() {
    if !common::enter_sandbox(
        "a_failure_starting_the_discovery_unit_disables_it_and_removes_its_files",
    ) {
        return;
    }
    sh(&format!(
        "mount -t tmpfs tmpfs /mnt && mkdir -p /mnt/bin /mnt/fake /mnt/proc/1 && cp {KUBESTRAP} /mnt/bin/kubestrap && \
         echo systemd > /mnt/proc/1/comm && \
         printf '#!/bin/sh\\necho \"$*\" >> /mnt/systemctl.log\\n\
         [ \"$1\" = enable ] && grep ^ExecStart= \"$FAKE_UNIT\" >> /mnt/systemctl.log\\n\
         [ \"$1\" = restart ] && {{ echo \"Job for $2 failed.\" >&2; exit 1; }}\\nexit 0\\n' > /mnt/fake/systemctl && \
         chmod +x /mnt/fake/systemctl"
    ));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let unit = root.join("etc/systemd/system/kubestrap-discovery.service");
    let mut cmd = Command::new("/mnt/bin/kubestrap");
    for (name, _) in std::env::vars() {
        if name.to_ascii_lowercase().ends_with("_proxy") || name.starts_with("KUBESTRAP_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .arg("--root")
        .arg(root)
        .args([
            "init",
            "--skip-phases",
            "preflight,kubelet-start,wait-control-plane,upload-config,upload-certs,mark-control-plane,\
             bootstrap-token,kubelet-finalize,addon,show-join-command",
        ])
        .args(NODE)
        .env("KUBESTRAP_PROC_ROOT", "/mnt/proc")
        .env("FAKE_UNIT", &unit)
        .env(
            "PATH",
            format!("/mnt/fake:{}", std::env::var("PATH").unwrap_or_default()),
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("error execution phase discovery") && text.contains("Job for"),
        "{text}"
    );
    let calls = std::fs::read_to_string("/mnt/systemctl.log").unwrap();
    assert_eq!(
        calls,
        format!(
            "daemon-reload\nenable kubestrap-discovery.service\n\
             ExecStart=/mnt/bin/kubestrap --root {} discovery serve --port 9898\n\
             restart kubestrap-discovery.service\ndisable --now kubestrap-discovery.service\n",
            root.display()
        ),
        "{text}"
    );
    assert!(!unit.exists(), "the unit file is removed\n{text}");
    let left: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["var"], "only kubestrap's own state is left\n{text}");
    assert!(
        sh(&format!("find {}/var -type f", root.display()))
            .lines()
            .all(|l| l.contains("/var/lib/kubestrap/")),
        "{text}"
    );
}
