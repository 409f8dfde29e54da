//! Shared helpers of the PKI test suites: running kubestrap on a fresh --root, reading certificates, openssl.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use kubestrap::kubeconfig::KubeConfig;
use kubestrap::pki::inspect::CertInfo;

/// A fresh --root for one test.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Self {
        Node {
            dir: tempfile::Builder::new()
                .prefix("pki-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The on-disk location of a node path.
    pub fn disk(&self, node_path: &str) -> PathBuf {
        self.root().join(node_path.trim_start_matches('/'))
    }

    pub fn pki(&self, name: &str) -> PathBuf {
        self.disk(&format!("/etc/kubernetes/pki/{name}"))
    }

    pub fn kubestrap(&self, args: &[&str]) -> Output {
        let mut cmd = Command::cargo_bin("kubestrap").unwrap();
        cmd.arg("--root").arg(self.root()).args(args);
        cmd.env_remove("KUBESTRAP_ROOT");
        cmd.output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubestrap(args);
        assert!(
            out.status.success(),
            "kubestrap {args:?} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit code `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.kubestrap(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "kubestrap {args:?}:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    pub fn cert(&self, name: &str) -> CertInfo {
        CertInfo::from_pem(&std::fs::read(self.pki(name)).unwrap()).unwrap()
    }

    pub fn kubeconfig(&self, file: &str) -> KubeConfig {
        let path = self.disk(&format!("/etc/kubernetes/{file}"));
        KubeConfig::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// Every file under the root except the tool's own state, with its bytes.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let state = self.root().join("var/lib/kubestrap");
        walk(self.root(), &mut |p| {
            if !p.starts_with(&state) {
                out.insert(
                    p.strip_prefix(self.root()).unwrap().to_path_buf(),
                    std::fs::read(p).unwrap(),
                );
            }
        });
        out
    }

    pub fn mode(&self, node_path: &str) -> u32 {
        std::fs::metadata(self.disk(node_path))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }
}

pub fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, f);
        } else {
            f(&path);
        }
    }
}

/// Node-identity flags every init phase needs here.
pub const NODE: &[&str] = &[
    "--node-name",
    "pki-node",
    "--apiserver-advertise-address",
    "192.0.2.10",
];

pub fn args<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra.iter()).copied().collect()
}

/// Runs an openssl command and returns stdout; fails the test loudly if openssl is missing or fails.
pub fn openssl(args: &[&str], dir: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed (Debian package openssl, listed in .ci/apt-packages)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `openssl verify -CAfile <ca> <leaf>` must say OK.
pub fn openssl_verify(pki: &Path, ca: &str, leaf: &str) {
    let out = openssl(&["verify", "-CAfile", ca, leaf], pki);
    assert!(out.contains(&format!("{leaf}: OK")), "{out}");
}
