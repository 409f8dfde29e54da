//! A private containerd (Debian containerd 1.6) for CRI tests: its own root, state, socket and CNI config
//! dir, `restrict_oom_score_adj = true` (this machine lacks CAP_SYS_RESOURCE), and a locally built pause
//! image (busybox-static) imported as registry.k8s.io/pause:3.9. Run it inside the test's namespaces:
//! /run/containerd and /var/lib/cni are replaced by private mounts first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sh;

pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.9";

pub struct Containerd {
    pub socket: PathBuf,
    child: Child,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds an OCI image layout tarball whose rootfs is busybox-static, with `entrypoint`.
pub fn build_image(dir: &Path, name: &str, entrypoint: &str) -> PathBuf {
    let d = dir.display();
    sh(&format!(
        r#"set -e; cd {d}; rm -rf img; mkdir -p img/rootfs/bin img/blobs/sha256; cp /bin/busybox img/rootfs/bin/busybox
for a in sh sleep; do ln -s busybox img/rootfs/bin/$a; done
tar -C img/rootfs -cf img/layer.tar .; diff=$(sha256sum img/layer.tar | cut -d' ' -f1)
gzip -n img/layer.tar; layer=$(sha256sum img/layer.tar.gz | cut -d' ' -f1); lsize=$(stat -c %s img/layer.tar.gz); mv img/layer.tar.gz img/blobs/sha256/$layer
printf '{{"architecture":"amd64","os":"linux","config":{{"Entrypoint":{entrypoint}}},"rootfs":{{"type":"layers","diff_ids":["sha256:%s"]}}}}' $diff > img/config.json
cfg=$(sha256sum img/config.json | cut -d' ' -f1); csize=$(stat -c %s img/config.json); mv img/config.json img/blobs/sha256/$cfg
printf '{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}}]}}' $cfg $csize $layer $lsize > img/manifest.json
man=$(sha256sum img/manifest.json | cut -d' ' -f1); msize=$(stat -c %s img/manifest.json); mv img/manifest.json img/blobs/sha256/$man
printf '{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{{"io.containerd.image.name":"{name}"}},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}' $man $msize > img/index.json
echo '{{"imageLayoutVersion":"1.0.0"}}' > img/oci-layout
tar -C img -cf image.tar oci-layout index.json blobs"#
    ));
    dir.join("image.tar")
}

/// Starts containerd with a CNI config dir holding `conflist` (named `10-test.conflist`); the CNI's
/// state (/var/lib/cni) is `cni_state`, bind-mounted, so a test root sees the plugins' files.
pub fn start(dir: &Path, conflist: &str, cni_state: &Path) -> Containerd {
    super::require(&[
        "containerd",
        "ctr",
        "runc",
        "/usr/lib/cni/bridge",
        "/bin/busybox",
    ]);
    let d = dir.display();
    sh(&format!(
        r#"mkdir -p {d}/root {d}/state {d}/net.d /run/containerd /var/lib/cni {cni}
mount -t tmpfs tmpfs /run/containerd; mount --bind {cni} /var/lib/cni
containerd config default | sed \
  -e 's|^root = .*|root = "{d}/root"|' -e 's|^state = .*|state = "{d}/state"|' \
  -e 's|^  address = "/run/containerd/containerd.sock"|  address = "{d}/containerd.sock"|' \
  -e 's|restrict_oom_score_adj = false|restrict_oom_score_adj = true|' \
  -e 's|sandbox_image = .*|sandbox_image = "{PAUSE_IMAGE}"|' \
  -e 's|bin_dir = "/opt/cni/bin"|bin_dir = "/usr/lib/cni"|' -e 's|conf_dir = "/etc/cni/net.d"|conf_dir = "{d}/net.d"|' \
  > {d}/config.toml"#,
        cni = cni_state.display()
    ));
    std::fs::write(dir.join("net.d/10-test.conflist"), conflist).unwrap();
    let socket = dir.join("containerd.sock");
    let child = Command::new("containerd")
        .args(["--config"])
        .arg(dir.join("config.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("containerd.log")).unwrap())
        .spawn()
        .expect("containerd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "containerd did not start; see {}/containerd.log",
            d
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let image = build_image(dir, PAUSE_IMAGE, r#"["/bin/sleep","3600"]"#);
    sh(&format!(
        "ctr --address {} -n k8s.io image import --all-platforms {} >/dev/null",
        socket.display(),
        image.display()
    ));
    Containerd { socket, child }
}
