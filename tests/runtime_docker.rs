//! The Docker subsystem against the machine's shared Docker engine, through bollard: `info` answers, and
//! removal takes only Kubernetes' containers (named `k8s_*` or labelled `io.kubernetes.*`) and keeps the
//! user's. The test touches only containers it labelled itself.

mod common;

use std::time::Duration;

use common::sh;
use kubestrap::host::inventory::Outcome;
use kubestrap::host::runtime::docker;

/// Removes every container carrying the test's label, and its image, however the test ends.
struct Cleanup {
    label: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("sh")
            .args(["-c", &format!(
                "docker ps -aq --filter label={} | xargs -r docker rm -f >/dev/null 2>&1; docker rmi {} >/dev/null 2>&1",
                self.label, self.image
            )])
            .status();
    }
}

#[test]
fn docker_teardown_takes_kubernetes_containers_only() {
    common::require(&["docker", "/bin/busybox"]);
    let _engine = common::runtime_lock();
    let info = docker::info().expect("the Docker engine must be running");
    assert!(
        !info.cgroup_driver.is_empty() && !info.server_version.is_empty(),
        "{info:?}"
    );

    let tag = format!("reset-{}", std::process::id());
    let label = format!("kubestrap-test.{tag}");
    let image = format!("kubestrap-test-busybox:{tag}");
    let _cleanup = Cleanup {
        label: label.clone(),
        image: image.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    sh(&format!(
        "mkdir -p {d}/rootfs/bin && cp /bin/busybox {d}/rootfs/bin/ && ln -s busybox {d}/rootfs/bin/sh && ln -s busybox {d}/rootfs/bin/sleep
         tar -C {d}/rootfs -cf {d}/rootfs.tar . && docker import {d}/rootfs.tar {image} >/dev/null"
    ));
    let cmd = "trap 'exit 0' TERM; sleep 3600 & wait";
    sh(&format!(
        "docker run -d --label {label}=1 --name k8s_POD_{tag} {image} sh -c \"{cmd}\" >/dev/null
         docker run -d --label {label}=1 --label io.kubernetes.pod.name=p --name app-{tag} {image} sh -c \"{cmd}\" >/dev/null
         docker create --label {label}=1 --name k8s_stopped_{tag} {image} sh >/dev/null
         docker run -d --label {label}=1 --name user-{tag} {image} sh -c \"{cmd}\" >/dev/null"
    ));

    let mine: Vec<_> = docker::scan()
        .unwrap()
        .into_iter()
        .filter(|c| c.labels.contains(&label))
        .collect();
    assert_eq!(mine.len(), 4);
    let outcomes = docker::remove(&mine, Duration::from_secs(5)).unwrap();
    let removed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Removed(_)))
        .count();
    let kept: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Kept(i) => Some(i.target.clone()),
            _ => None,
        })
        .collect();
    let left = sh(&format!(
        "docker ps -a --filter label={label} --format '{{{{.Names}}}}'"
    ));
    assert_eq!(removed, 3, "{outcomes:?}");
    assert_eq!(kept.len(), 1);
    assert!(kept[0].ends_with(&format!("user-{tag}")));
    assert_eq!(left.trim(), format!("user-{tag}"));
}
