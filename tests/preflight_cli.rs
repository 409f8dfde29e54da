//! `kubestrap init phase preflight` and `join phase preflight` as a user runs them, against real
//! kernel state: each test runs the binary inside its own network and mount namespaces
//! (`unshare --net --mount`), with a `--root` tree for the node's state files.

mod preflight_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use preflight_support::{PrivateContainerd, require, write_file};
use serde_json::Value;

fn kubestrap() -> PathBuf {
    assert_cmd::cargo::cargo_bin("kubestrap")
}

/// Runs a shell script in fresh network and mount namespaces; `$K` is the kubestrap binary.
fn in_namespaces(script: &str, envs: &[(&str, &str)]) -> Output {
    Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--fork",
            "sh",
            "-c",
        ])
        .arg(format!("ip link set lo up && {script}"))
        .env("K", kubestrap())
        .envs(envs.iter().copied())
        .output()
        .expect("unshare (util-linux) runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A node whose every error-level check can pass inside a fresh namespace: a `--root` tree for its
/// state, a tree of the host's own files (machine id, resolv.conf, containerd's configuration; read
/// through KUBESTRAP_HOST_FILES_ROOT, never under `--root`), a kubelet of the right version on PATH, a private containerd holding the
/// control-plane images, and a configuration with an advertise address on the namespace's loopback
/// and a cgroup driver that suits PID 1 (for the kubelet and containerd alike).
struct Node {
    dir: tempfile::TempDir,
    containerd: PrivateContainerd,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let containerd = PrivateContainerd::start();
        let images = Command::new(kubestrap())
            .args(["config", "images", "list"])
            .output()
            .unwrap();
        let images: Vec<String> = text(&images.stdout).lines().map(str::to_string).collect();
        assert!(images.len() >= 6, "{images:?}");
        containerd.import(&images);
        let node = Node { dir, containerd };
        node.write("host/etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        node.write("host/etc/resolv.conf", "nameserver 192.0.2.53\n");
        node.write("bin/kubelet", "#!/bin/sh\necho 'Kubernetes v1.34.3'\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            node.path("bin/kubelet"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap();
        let driver = if pid1.trim() == "systemd" {
            "systemd"
        } else {
            "cgroupfs"
        };
        node.write(
            "host/etc/containerd/config.toml",
            &format!(
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = {}\n",
                driver == "systemd"
            ),
        );
        node.write(
            "init.yaml",
            &format!(
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 198.51.100.7\n\
                 nodeRegistration:\n  name: localhost\n  criSocket: {}\n---\n\
                 apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: {driver}\n",
                node.containerd.endpoint()
            ),
        );
        node
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, body: &str) {
        write_file(&self.path(rel), body);
    }

    fn root(&self) -> String {
        self.path("root").display().to_string()
    }

    fn envs(&self) -> Vec<(&'static str, String)> {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        vec![
            ("PATH", path),
            ("ROOT", self.root()),
            (
                "KUBESTRAP_HOST_FILES_ROOT",
                self.path("host").display().to_string(),
            ),
            ("CONFIG", self.path("init.yaml").display().to_string()),
        ]
    }

    /// `init phase preflight` in fresh namespaces, after `setup` (shell) ran there; `after` runs
    /// next (its output on stderr). The exit code is kubestrap's; a listener the setup started
    /// (its pid in `$LPID`) is stopped.
    fn init_preflight(&self, setup: &str, extra_args: &str, after: &str) -> Output {
        let script = format!(
            "LPID=; ip addr add 198.51.100.7/32 dev lo && echo 1 > /proc/sys/net/ipv4/ip_forward && {setup} \
             \"$K\" init phase preflight --config \"$CONFIG\" --root \"$ROOT\" {extra_args}; rc=$?; \
             {{ {after}; }} >&2; [ -n \"$LPID\" ] && kill $LPID; exit $rc"
        );
        let envs = self.envs();
        let borrowed: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        in_namespaces(&script, &borrowed)
    }
}

fn checks(output: &Output) -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not the JSON report ({e}):\n{}\nstderr:\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    });
    doc["checks"].as_array().unwrap().clone()
}

fn check<'a>(checks: &'a [Value], id: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {checks:#?}"))
}

fn errors(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["status"] == "fail" && c["severity"] == "error")
        .map(|c| format!("{}: {}", c["id"], c["message"]))
        .collect()
}

#[test]
fn a_clean_node_passes_and_a_populated_root_fails_with_every_error_at_once() {
    let node = Node::new();
    let clean = node.init_preflight("", "-o json", "true");
    let all = checks(&clean);
    assert!(
        clean.status.success(),
        "errors on a clean node: {:#?}\nstderr: {}",
        errors(&all),
        text(&clean.stderr)
    );
    assert!(all.len() >= 40, "{} checks ran", all.len());
    for c in &all {
        let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["id", "message", "remediation", "severity", "status"],
            "{c}"
        );
        assert!(["pass", "fail", "skip"].contains(&c["status"].as_str().unwrap()));
        assert!(["error", "warning"].contains(&c["severity"].as_str().unwrap()));
    }
    assert_eq!(check(&all, "Port-6443")["status"], "pass");
    assert_eq!(
        check(&all, "AdvertiseAddress")["message"],
        "198.51.100.7 is on lo"
    );

    node.write(
        "root/etc/kubernetes/manifests/kube-apiserver.yaml",
        "kind: Pod\n",
    );
    node.write("root/etc/kubernetes/manifests/etcd.yaml", "kind: Pod\n");
    node.write("root/var/lib/etcd/member/snap/db", "x");
    node.write(
        "root/var/lib/kubelet/config.yaml",
        "kind: KubeletConfiguration\n",
    );
    node.write("root/etc/kubernetes/admin.conf", "kind: Config\n");
    let populated = node.init_preflight("", "", "true");
    assert_eq!(populated.status.code(), Some(1));
    let stdout = text(&populated.stdout);
    let stderr = text(&populated.stderr);
    for expected in [
        "[preflight] Some fatal errors occurred:",
        "\t[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists",
        "\t[ERROR FileAvailable--etc-kubernetes-manifests-etcd.yaml]: /etc/kubernetes/manifests/etcd.yaml already exists",
        "\t[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty (it holds member)",
        "\t[ERROR DirAvailable--var-lib-kubelet]: /var/lib/kubelet is not empty (it holds config.yaml)",
        "Run 'kubestrap reset'",
        "error: error execution phase preflight: preflight checks failed",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        stdout.starts_with("[preflight] Running pre-flight checks\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\t[WARNING FileAvailable--etc-kubernetes-admin.conf]: /etc/kubernetes/admin.conf already exists"),
        "{stdout}"
    );
    assert!(
        !stderr.contains(&node.root()) && !stdout.contains(&node.root()),
        "messages name canonical paths, not the --root prefix"
    );

    let ignored = node.init_preflight(
        "",
        "--ignore-preflight-errors=fileavailable--etc-kubernetes-manifests-kube-apiserver.yaml,\
         FILEAVAILABLE--etc-kubernetes-manifests-etcd.yaml,DirAvailable--var-lib-etcd,dirAvailable--var-lib-kubelet -o json",
        "true",
    );
    let after = checks(&ignored);
    assert!(ignored.status.success(), "{:#?}", errors(&after));
    let etcd_dir = check(&after, "DirAvailable--var-lib-etcd");
    assert_eq!(etcd_dir["status"], "fail");
    assert_eq!(etcd_dir["severity"], "warning");
    let everything = node.init_preflight("", "--ignore-preflight-errors=all", "true");
    assert!(everything.status.success(), "{}", text(&everything.stderr));
    assert!(text(&everything.stdout).contains("[WARNING DirAvailable--var-lib-etcd]"));
}

#[test]
fn a_port_held_by_a_listener_is_named_with_its_process() {
    let node = Node::new();
    let listener = "python3 -c 'import socket,time\n\
                    s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                    s.bind((\"127.0.0.1\", 6443)); s.listen(); time.sleep(30)' >/dev/null 2>&1 & LPID=$!; \
                    for i in $(seq 100); do grep -q ':192B 00000000:0000 0A' /proc/net/tcp && break; sleep 0.05; done;";
    let held = node.init_preflight(listener, "-o json", "true");
    assert_eq!(held.status.code(), Some(1), "{}", text(&held.stderr));
    let all = checks(&held);
    let port = check(&all, "Port-6443");
    assert_eq!(port["status"], "fail");
    assert_eq!(port["severity"], "error");
    let message = port["message"].as_str().unwrap();
    assert!(
        message.starts_with("Port 6443 is in use by python3 (pid "),
        "{message}"
    );
    assert_eq!(check(&all, "Port-10250")["status"], "pass");
    assert_eq!(check(&all, "Port-9898")["status"], "pass");
    // --discovery-port 0 disables the endpoint: its port check is skipped, saying why.
    let disabled = node.init_preflight("", "--discovery-port 0 -o json", "true");
    let all = checks(&disabled);
    let port = check(&all, "Port-0");
    assert_eq!(port["status"], "skip", "{port}");
    assert!(
        port["message"]
            .as_str()
            .unwrap()
            .contains("--discovery-port is not 0"),
        "{port}"
    );
}

#[test]
fn ip_forward_off_in_a_namespace_fails_and_fix_turns_it_on_through_a_drop_in() {
    let node = Node::new();
    let off = "echo 0 > /proc/sys/net/ipv4/ip_forward &&";
    let id = "FileContent--proc-sys-net-ipv4-ip_forward";

    let failed = node.init_preflight(off, "-o json", "true");
    assert_eq!(failed.status.code(), Some(1));
    let result = check(&checks(&failed), id).clone();
    assert_eq!(result["status"], "fail");
    assert_eq!(
        result["message"],
        "/proc/sys/net/ipv4/ip_forward contents are not set to 1 (it is 0)"
    );

    let live = "echo \"live=$(cat /proc/sys/net/ipv4/ip_forward)\"";
    let planned = node.init_preflight(off, "--fix --dry-run -o json", live);
    assert!(
        text(&planned.stderr).contains("live=0"),
        "{}",
        text(&planned.stderr)
    );
    assert!(
        !node.path("root/etc/sysctl.d").exists(),
        "a dry run writes nothing"
    );

    let fixed = node.init_preflight(off, "--fix -o json", live);
    let stderr = text(&fixed.stderr);
    assert!(stderr.contains("live=1"), "{stderr}");
    let result = check(&checks(&fixed), id).clone();
    assert_eq!(result["status"], "pass", "{result}");
    let drop_in =
        std::fs::read_to_string(node.path("root/etc/sysctl.d/99-kubestrap.conf")).unwrap();
    assert!(drop_in.contains("net.ipv4.ip_forward = 1\n"), "{drop_in}");
    let journal =
        std::fs::read_to_string(node.path("root/var/lib/kubestrap/journal.jsonl")).unwrap();
    assert!(
        journal.contains(
            "\"op\":\"set-sysctl\",\"key\":\"net.ipv4.ip_forward\",\"value\":\"1\",\"prior\":\"0\""
        ),
        "{journal}"
    );
    assert!(
        journal.contains("/etc/sysctl.d/99-kubestrap.conf"),
        "{journal}"
    );
}

#[test]
fn leftovers_of_another_pod_network_and_overlapping_routes_are_named() {
    require(&["ip", "ipset"]);
    let node = Node::new();
    let seeded = node.init_preflight(
        "ip link add pf-user type bridge && ip link set pf-user up && ip addr add 192.0.2.2/24 dev pf-user && \
         ip route add default via 192.0.2.1 && ip route add 10.0.0.0/8 via 192.0.2.1 && \
         ip route add unreachable 10.244.0.0/16 && ip route add blackhole 10.96.0.0/12 && \
         ip link add cni0 type bridge && ip addr add 10.88.0.1/16 dev cni0 && \
         ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning dev lo && \
         ip link add docker0 type bridge && \
         ipset create felix-calico-hosts-4 hash:ip && ipset create user-blocklist hash:ip &&",
        "-o json",
        "true",
    );
    assert_eq!(seeded.status.code(), Some(1));
    let all = checks(&seeded);
    let links = check(&all, "CNILinks");
    assert_eq!(links["status"], "fail");
    let message = links["message"].as_str().unwrap();
    assert!(message.contains("cni0 10.88.0.1/16 (flannel)"), "{message}");
    assert!(message.contains("flannel.1 (flannel)"), "{message}");
    assert!(
        message.contains("the pod range is 10.244.0.0/16"),
        "{message}"
    );
    assert!(!message.contains("docker0"), "{message}");
    assert!(
        links["remediation"]
            .as_str()
            .unwrap()
            .contains("kubestrap reset")
    );
    let sets = check(&all, "CNIIpsets")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sets.contains("felix-calico-hosts-4 (calico"), "{sets}");
    assert!(!sets.contains("user-blocklist"), "{sets}");
    for (id, range) in [
        ("PodSubnetRoutes", "10.244.0.0/16"),
        ("ServiceSubnetRoutes", "10.96.0.0/12"),
    ] {
        let routes = check(&all, id);
        assert_eq!(routes["status"], "fail", "{routes}");
        assert_eq!(
            routes["message"],
            format!(
                "host routes overlap the {} range: '10.0.0.0/8 via 192.0.2.1 dev pf-user' overlaps {range}",
                if id == "PodSubnetRoutes" {
                    "pod"
                } else {
                    "service"
                }
            )
        );
    }
    assert_eq!(check(&all, "CRI")["status"], "pass");
    assert_eq!(check(&all, "ImagePull")["status"], "pass");
}

#[test]
fn join_preflight_runs_the_worker_or_the_control_plane_set() {
    let node = Node::new();
    let envs = node.envs();
    let borrowed: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let join = |extra: &str| {
        in_namespaces(
            &format!(
                "ip addr add 198.51.100.8/32 dev lo && \"$K\" join phase preflight 198.51.100.1:6443 \
                 --token abcdef.0123456789abcdef --discovery-token-unsafe-skip-ca-verification \
                 --node-name localhost --root \"$ROOT\" -o json {extra}"
            ),
            &borrowed,
        )
    };
    let worker_run = join("--cri-socket unix:///nonexistent/kubestrap-preflight.sock");
    assert_eq!(worker_run.status.code(), Some(1));
    let worker = checks(&worker_run);
    let cri = check(&worker, "CRI");
    assert_eq!(cri["status"], "fail");
    assert!(
        cri["message"]
            .as_str()
            .unwrap()
            .starts_with("container runtime is not running: connecting to the CRI socket /nonexistent/kubestrap-preflight.sock"),
        "{cri}"
    );
    let ids: Vec<&str> = worker.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&"FileAvailable--etc-kubernetes-pki-ca.crt"),
        "{ids:?}"
    );
    assert!(ids.contains(&"DirAvailable--etc-kubernetes-manifests"));
    assert!(!ids.contains(&"Port-6443") && !ids.contains(&"NumCPU"));

    let control_plane = checks(&join(&format!(
        "--control-plane --apiserver-advertise-address 198.51.100.8 --cri-socket {}",
        node.containerd.endpoint()
    )));
    assert_eq!(check(&control_plane, "CRI")["status"], "pass");
    assert_eq!(check(&control_plane, "ImagePull")["status"], "skip");
    let ids: Vec<&str> = control_plane
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"Port-6443") && ids.contains(&"NumCPU") && ids.contains(&"Port-2379"));
    assert!(!ids.contains(&"FileAvailable--etc-kubernetes-pki-ca.crt"));
    assert_eq!(
        check(&control_plane, "AdvertiseAddress")["message"],
        "198.51.100.8 is on lo"
    );
    assert_eq!(check(&control_plane, "HTTPProxy")["status"], "pass");
}

#[test]
fn join_refuses_to_run_as_a_whole_and_names_bad_input() {
    let root = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(kubestrap())
            .args(args)
            .arg("--root")
            .arg(root.path())
            .output()
            .unwrap()
    };
    let whole = run(&[
        "join",
        "198.51.100.1:6443",
        "--token",
        "abcdef.0123456789abcdef",
    ]);
    assert_eq!(whole.status.code(), Some(2));
    let bad = run(&[
        "join",
        "phase",
        "preflight",
        "198.51.100.1:6443",
        "--token",
        "not-a-token",
        "--discovery-token-unsafe-skip-ca-verification",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = text(&bad.stderr);
    assert!(
        stderr.contains("discovery.bootstrapToken.token"),
        "{stderr}"
    );
    assert!(!Path::new(&root.path().join("var/lib/kubestrap/journal.jsonl")).exists());
}

#[test]
fn unknown_ignore_ids_are_named_but_do_not_stop_the_run() {
    let node = Node::new();
    let out = node.init_preflight("", "--ignore-preflight-errors=NoSuchCheck", "true");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("there is no check named \"nosuchcheck\""),
        "{}",
        text(&out.stderr)
    );
}
