//! Test support for preflight: a private containerd (own socket, root and state, in its own mount
//! namespace with a private /run) and a minimal OCI image to import into it without a registry.

#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

pub use common::{RuntimeLock, require, runtime_lock};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Writes a file, creating its parent directories.
pub fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A containerd that only this test talks to; stopped (and its files removed) on drop.
pub struct PrivateContainerd {
    dir: tempfile::TempDir,
    child: Child,
    _runtime: RuntimeLock,
}

impl PrivateContainerd {
    pub fn start() -> PrivateContainerd {
        require(&["containerd", "ctr", "unshare"]);
        let runtime = runtime_lock();
        let dir = tempfile::Builder::new()
            .prefix("preflight-containerd-")
            .tempdir()
            .unwrap();
        let d = dir.path().display().to_string();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.internal.v1.opt\", \"io.containerd.snapshotter.v1.aufs\", \
             \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.devmapper\"]\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n[ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"{d}/net.d\"\n"
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = File::create(dir.path().join("containerd.log")).unwrap();
        // A private /run keeps containerd's fixed paths (/run/containerd/{s,runc,fifo}) off the machine's.
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--fork",
                "--kill-child",
                "sh",
                "-c",
                "mount -t tmpfs tmpfs /run && exec containerd --config \"$1\"",
                "sh",
            ])
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let containerd = PrivateContainerd {
            dir,
            child,
            _runtime: runtime,
        };
        let started = Instant::now();
        while kubestrap::host::runtime::cri::version(&containerd.endpoint()).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the private containerd did not answer: {}",
                std::fs::read_to_string(containerd.dir.path().join("containerd.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        containerd
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Imports one tiny image under each of the names into the CRI's namespace (`k8s.io`).
    pub fn import(&self, names: &[String]) {
        let tar = oci_image_tar(self.dir.path(), names);
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["-n", "k8s.io", "images", "import", "--all-platforms"])
            .arg(&tar)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctr images import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        // unshare --kill-child takes containerd with it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An OCI image layout (one empty layer) tagged with every name, packed as a tar file.
pub fn oci_image_tar(dir: &Path, names: &[String]) -> PathBuf {
    let layout = dir.join("oci-layout-dir");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| -> (String, usize) {
        let digest = sha256_hex(bytes);
        std::fs::write(blobs.join(&digest), bytes).unwrap();
        (format!("sha256:{digest}"), bytes.len())
    };
    let empty_tar = vec![0u8; 1024];
    let diff_id = format!("sha256:{}", sha256_hex(&empty_tar));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &empty_tar).unwrap();
    let (layer, layer_size) = blob(&gz.finish().unwrap());
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    });
    let (config_digest, config_size) = blob(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) = blob(manifest.to_string().as_bytes());
    let manifests: Vec<serde_json::Value> = names
        .iter()
        .map(|name| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": manifest_size,
                "annotations": {"io.containerd.image.name": name}
            })
        })
        .collect();
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": manifests}).to_string(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let tar = dir.join("image.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&layout)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .unwrap();
    assert!(status.success(), "tar");
    tar
}

/// The machine's Docker engine socket; the tests that use it fail when there is none.
pub fn require_docker_engine() {
    assert!(
        Path::new("/var/run/docker.sock").exists(),
        "this test needs the machine's Docker engine at /var/run/docker.sock (it only reads `docker info`)"
    );
}
