//! reset's `remove-etcd-member` against a real multi-member etcd (Debian etcd-server, TLS in kubeadm's
//! layout, members on 127.0.0.x in a private network namespace): removing a member leaves the others
//! healthy; the last member is skipped fast and backed up before its data is wiped. And the etcd client's
//! calls a control-plane join makes (learner add, promote, health, remove) against the same etcd.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::sh;

const KUBESTRAP: &str = env!("CARGO_BIN_EXE_kubestrap");

/// etcd processes this test started; killed on drop.
struct Members(Vec<Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A CA and certificates in kubeadm's etcd layout under `<pki>/etcd/`, valid for 127.0.0.1–3.
fn make_pki(pki: &Path) {
    let d = pki.join("etcd");
    std::fs::create_dir_all(&d).unwrap();
    sh(&format!(
        r#"cd {d}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=etcd-ca 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4\nextendedKeyUsage=serverAuth,clientAuth\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
for n in server peer; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key -out $n.csr -subj /CN=member 2>/dev/null
  openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $n.crt -days 1 -extfile server.ext 2>/dev/null
done
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout healthcheck-client.key -out hc.csr -subj /CN=kube-etcd-healthcheck-client 2>/dev/null
openssl x509 -req -in hc.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out healthcheck-client.crt -days 1 -extfile client.ext 2>/dev/null
rm -f *.csr *.ext"#,
        d = d.display()
    ));
}

fn start_member(
    pki: &Path,
    name: &str,
    ip: &str,
    data_dir: &Path,
    cluster: &str,
    log: &Path,
) -> Child {
    start_member_in(pki, name, ip, data_dir, cluster, "new", log)
}

/// A member of a `new` cluster, or one joining an `existing` one.
fn start_member_in(
    pki: &Path,
    name: &str,
    ip: &str,
    data_dir: &Path,
    cluster: &str,
    state: &str,
    log: &Path,
) -> Child {
    let p = pki.join("etcd");
    let f = |n: &str| p.join(n).display().to_string();
    Command::new("etcd")
        .args([
            format!("--name={name}"),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls=https://{ip}:2379"),
            format!("--advertise-client-urls=https://{ip}:2379"),
            format!("--listen-peer-urls=https://{ip}:2380"),
            format!("--initial-advertise-peer-urls=https://{ip}:2380"),
            format!("--initial-cluster={cluster}"),
            format!("--initial-cluster-state={state}"),
            format!("--cert-file={}", f("server.crt")),
            format!("--key-file={}", f("server.key")),
            "--client-cert-auth=true".into(),
            format!("--trusted-ca-file={}", f("ca.crt")),
            format!("--peer-cert-file={}", f("peer.crt")),
            format!("--peer-key-file={}", f("peer.key")),
            "--peer-client-cert-auth=true".into(),
            format!("--peer-trusted-ca-file={}", f("ca.crt")),
            "--logger=zap".into(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("etcd must be installed (Debian etcd-server)")
}

fn etcdctl(pki: &Path, endpoints: &str, args: &str) -> std::process::Output {
    let p = pki.join("etcd");
    Command::new("sh")
        .args([
            "-c",
            &format!(
                "ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert={p}/ca.crt --cert={p}/healthcheck-client.crt --key={p}/healthcheck-client.key --dial-timeout=2s --command-timeout=3s {args}",
                p = p.display()
            ),
        ])
        .output()
        .unwrap()
}

fn wait_healthy(pki: &Path, endpoints: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = etcdctl(pki, endpoints, "endpoint health");
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "etcd did not become healthy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node root whose etcd manifest names this member and whose PKI is the test's.
fn node_root(dir: &Path, pki: &Path, name: &str, ip: &str) -> PathBuf {
    let root = dir.join(format!("root-{name}"));
    std::fs::create_dir_all(root.join("etc/kubernetes/manifests")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/etcd")).unwrap();
    sh(&format!(
        "cp -r {} {}/etc/kubernetes/pki",
        pki.display(),
        root.display()
    ));
    std::fs::write(
        root.join("etc/kubernetes/manifests/etcd.yaml"),
        format!("    - --advertise-client-urls=https://{ip}:2379\n    - --data-dir=/var/lib/etcd\n    - --initial-advertise-peer-urls=https://{ip}:2380\n    - --name={name}\n"),
    )
    .unwrap();
    root
}

fn reset(root: &Path) -> (i32, serde_json::Value, String, Duration) {
    reset_with(root, &["--force"])
}

fn reset_with(root: &Path, extra: &[&str]) -> (i32, serde_json::Value, String, Duration) {
    let started = Instant::now();
    let out = Command::new(KUBESTRAP)
        .arg("reset")
        .args(extra)
        .args([
            "-o",
            "json",
            "--cri-socket",
            "unix:///nonexistent/x.sock",
            "--root",
        ])
        .arg(root)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let took = started.elapsed();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
        text,
        took,
    )
}

#[test]
fn removing_a_member_keeps_the_others_healthy_and_the_last_member_is_backed_up() {
    if !common::enter_sandbox(
        "removing_a_member_keeps_the_others_healthy_and_the_last_member_is_backed_up",
    ) {
        return;
    }
    common::require(&["etcd", "etcdctl", "openssl"]);
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    make_pki(&pki);
    let cluster = "m1=https://127.0.0.1:2380,m2=https://127.0.0.2:2380,m3=https://127.0.0.3:2380";
    let root3 = node_root(dir.path(), &pki, "m3", "127.0.0.3");
    let mut members = Members(Vec::new());
    for (name, ip, data) in [
        ("m1", "127.0.0.1", dir.path().join("m1")),
        ("m2", "127.0.0.2", dir.path().join("m2")),
        ("m3", "127.0.0.3", root3.join("var/lib/etcd")),
    ] {
        members.0.push(start_member(
            &pki,
            name,
            ip,
            &data,
            cluster,
            &dir.path().join(format!("{name}.log")),
        ));
    }
    let all = "https://127.0.0.1:2379,https://127.0.0.2:2379,https://127.0.0.3:2379";
    wait_healthy(&pki, all);

    // A single-member cluster beside it: the member is not removed, reset does not wait on it, and it is
    // backed up. It runs while the three-member cluster passes etcd's settling time for reconfiguration.
    let pki1 = dir.path().join("pki1");
    make_pki(&pki1);
    let root1 = node_root(dir.path(), &pki1, "solo", "127.0.0.4");
    let _solo = Members(vec![start_member(
        &pki1,
        "solo",
        "127.0.0.4",
        &root1.join("var/lib/etcd"),
        "solo=https://127.0.0.4:2380",
        &dir.path().join("solo.log"),
    )]);
    wait_healthy(&pki1, "https://127.0.0.4:2379");
    // The dry run plans the backup through the Host gateway (the snapshot and the PKI copy) and
    // writes nothing.
    let (code, plan, output, _) = reset_with(&root1, &["--dry-run"]);
    assert_eq!(code, 0, "{output}");
    let planned = plan["planned"].as_array().unwrap();
    for (file, reason) in [
        ("etcd-snapshot.db", "an etcd snapshot of the last member"),
        ("pki", "a copy of the PKI"),
    ] {
        assert!(
            planned.iter().any(|i| i["kind"] == "path"
                && i["target"]
                    .as_str()
                    .unwrap()
                    .contains("/var/lib/kubestrap/backup-")
                && i["target"].as_str().unwrap().ends_with(file)
                && i["reason"].as_str().unwrap().starts_with(reason)),
            "{file}: {output}"
        );
    }
    assert!(
        !root1.join("var/lib/kubestrap").exists(),
        "the dry run wrote a backup"
    );
    let (code, report, output, took) = reset(&root1);
    assert_eq!(code, 0, "{output}");
    assert!(
        took < Duration::from_secs(10),
        "the last member took {took:?}"
    );
    assert!(
        !report["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "etcd-member"),
        "{output}"
    );
    let backup = std::fs::read_dir(root1.join("var/lib/kubestrap"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("backup-"))
        .expect("a backup directory")
        .path();
    assert!(
        std::fs::metadata(backup.join("etcd-snapshot.db"))
            .unwrap()
            .len()
            > 0
    );
    assert!(backup.join("pki/etcd/ca.crt").exists());
    assert_eq!(
        std::fs::read(backup.join("pki/etcd/ca.key")).unwrap(),
        std::fs::read(pki1.join("etcd/ca.key")).unwrap(),
        "the PKI copy holds the keys"
    );
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&backup).unwrap().mode() & 0o777, 0o700);
    }
    assert!(
        report["kept"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "path"
                && i["target"] == backup.display().to_string()
                && i["reason"].as_str().unwrap().contains("snapshot")),
        "the report lists the backup as kept: {output}"
    );
    assert!(root1.join("var/lib/etcd").exists());
    assert_eq!(
        std::fs::read_dir(root1.join("var/lib/etcd"))
            .unwrap()
            .count(),
        0
    );
    assert!(
        !root1.join("etc/kubernetes/pki/etcd/ca.crt").exists(),
        "the PKI is wiped after the backup"
    );

    let (code, report, output, _) = reset(&root3);
    assert_eq!(code, 0, "{output}");
    let removed = report["removed"].as_array().unwrap();
    assert!(
        removed
            .iter()
            .any(|i| i["kind"] == "etcd-member" && i["target"] == "m3 https://127.0.0.3:2380"),
        "{output}"
    );
    let list = etcdctl(&pki, "https://127.0.0.1:2379", "member list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("m1") && list.contains("m2") && !list.contains("m3"),
        "{list}"
    );
    wait_healthy(&pki, "https://127.0.0.1:2379,https://127.0.0.2:2379");
    assert_eq!(
        std::fs::read_dir(root3.join("var/lib/etcd"))
            .unwrap()
            .count(),
        0,
        "m3's data dir was not emptied"
    );
    assert!(
        !root3
            .join("var/lib/kubestrap")
            .read_dir()
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("backup-")),
        "a member that was not the last needs no backup"
    );
}

#[test]
fn a_learner_added_through_the_gateway_is_promoted_once_it_has_caught_up() {
    use kubestrap::etcd::EtcdClient;
    if !common::enter_sandbox(
        "a_learner_added_through_the_gateway_is_promoted_once_it_has_caught_up",
    ) {
        return;
    }
    common::require(&["etcd", "etcdctl", "openssl"]);
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    make_pki(&pki);
    let mut members = Members(vec![start_member(
        &pki,
        "l1",
        "127.0.0.1",
        &dir.path().join("l1"),
        "l1=https://127.0.0.1:2380",
        &dir.path().join("l1.log"),
    )]);
    wait_healthy(&pki, "https://127.0.0.1:2379");
    let p = pki.join("etcd");
    let client = |endpoint: &str| {
        EtcdClient::new(
            endpoint,
            &p.join("ca.crt"),
            &p.join("healthcheck-client.crt"),
            &p.join("healthcheck-client.key"),
            Duration::from_secs(5),
        )
        .unwrap()
    };
    let first = client("https://127.0.0.1:2379");
    first.healthy().unwrap();
    let (added, after) = first.add_learner("https://127.0.0.2:2380").unwrap();
    assert!(added.is_learner && added.name.is_empty(), "{added:?}");
    assert_eq!(after.len(), 2);
    // Not started: not in sync with the leader, so not promotable.
    let err = format!("{:#}", first.promote(&added.id).unwrap_err());
    assert!(err.contains("in sync with leader"), "{err}");
    members.0.push(start_member_in(
        &pki,
        "l2",
        "127.0.0.2",
        &dir.path().join("l2"),
        "l1=https://127.0.0.1:2380,l2=https://127.0.0.2:2380",
        "existing",
        &dir.path().join("l2.log"),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = first.promote(&added.id) {
        assert!(Instant::now() < deadline, "never promoted: {e:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = first.members().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|m| !m.is_learner), "{list:?}");
    assert!(list.iter().any(|m| m.name == "l2"), "{list:?}");
    client("https://127.0.0.2:2379").healthy().unwrap();
    // The undo of a failed join: the member goes through the other one, the cluster stays healthy.
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = first.remove_member(&added.id) {
        assert!(
            format!("{e:#}").contains("unhealthy cluster") && Instant::now() < deadline,
            "{e:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(first.members().unwrap().len(), 1);
    first.healthy().unwrap();
}
