//! `kubestrap reset` on a seeded dirty node inside private network and mount namespaces. "Nothing left"
//! and "the user's state survives" are judged with independent tools (ip, iptables-save, nft, ipset,
//! findmnt, the file system), never with reset's own scanner.

mod common;

use std::path::Path;
use std::process::Command;

use common::sh;
use kubestrap::host::{Facts, Host, NodePath, Root};
use kubestrap::output::Ui;

const KUBESTRAP: &str = env!("CARGO_BIN_EXE_kubestrap");

fn reset(root: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(KUBESTRAP)
        .args(["reset", "--root"])
        .arg(root)
        .args([
            "--cri-socket",
            "unix:///nonexistent/kubestrap-test.sock",
            "-o",
            "json",
        ])
        .args(extra)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        format!("{stdout}\n{stderr}"),
    )
}

/// Files init would have written, through the journal (so reset attributes them to kubestrap).
fn journal_init_files(root: &Path) {
    let host = Host::new(Root::new(root), Facts::default(), false, Ui::default());
    host.start_journal("init").unwrap();
    host.write_file(&NodePath::new("/etc/cni/net.d/10-flannel.conflist"),
        br#"{"name":"cbr0","cniVersion":"0.4.0","plugins":[{"type":"flannel","delegate":{"isDefaultGateway":true}}]}"#, 0o644).unwrap();
    host.write_file(
        &NodePath::new("/etc/sysctl.d/99-kubestrap.conf"),
        b"net.ipv4.ip_forward = 1\n",
        0o644,
    )
    .unwrap();
    host.write_file(
        &NodePath::new("/etc/kubernetes/manifests/kube-controller-manager.yaml"),
        b"    - --cluster-cidr=10.244.0.0/16\n    - --service-cluster-ip-range=10.96.0.0/12\n",
        0o600,
    )
    .unwrap();
    host.write_file(&NodePath::new("/etc/kubernetes/pki/ca.crt"), b"cert", 0o644)
        .unwrap();
    host.write_file(
        &NodePath::new("/etc/kubernetes/kubelet.conf"),
        b"kubeconfig",
        0o600,
    )
    .unwrap();
    host.write_file(
        &NodePath::new("/var/lib/kubelet/config.yaml"),
        b"kind: KubeletConfiguration\n",
        0o644,
    )
    .unwrap();
}

/// The dirty node: mounts, links, netfilter (v4/v6, nft/legacy), nft tables, ipsets, routes, CNI state —
/// and the user's own state beside it.
fn seed(root: &Path, pods: usize) {
    let r = root.display();
    sh(&format!(
        r#"
K={r}/var/lib/kubelet
mkdir -p $K/pods {r}/user-data {r}/outside {r}/etc/cni/net.d {r}/var/lib/cni/networks/cbr0 {r}/var/lib/cni/networks/podman {r}/var/lib/cni/results {r}/run/flannel
echo precious > {r}/user-data/volume.txt; echo keep > {r}/outside/file
for i in $(seq 1 {pods}); do
  d=$K/pods/pod$i/volumes/kubernetes.io~secret/token; mkdir -p $d; mount -t tmpfs -o size=64k tmpfs $d; echo s > $d/token
  mkdir -p $d/nested; mount -t tmpfs -o size=64k tmpfs $d/nested
  echo "ctr-$i" > {r}/var/lib/cni/networks/cbr0/10.244.0.$((i+1)); echo '{{}}' > {r}/var/lib/cni/results/cbr0-ctr-$i-eth0
done
echo 10.244.0.2 > {r}/var/lib/cni/networks/cbr0/last_reserved_ip.0
echo podctr > {r}/var/lib/cni/networks/podman/10.88.0.2; echo '{{}}' > {r}/var/lib/cni/results/podman-podctr-eth0
echo '{{"name":"podman","plugins":[]}}' > {r}/etc/cni/net.d/87-podman-bridge.conflist
echo 'FLANNEL_NETWORK=10.244.0.0/16' > {r}/run/flannel/subnet.env
pv=$K/pods/pod1/volumes/kubernetes.io~local-volume/pv1; mkdir -p $pv; mount --bind {r}/user-data $pv
ln -s {r}/outside $K/pods/pod1/link-out
busy=$K/pods/pod2/volumes/kubernetes.io~empty-dir/busy; mkdir -p $busy; mount -t tmpfs tmpfs $busy
(cd $busy && exec sleep 30) </dev/null >/dev/null 2>&1 &

ip link add eth-up type bridge; ip addr add 192.0.2.2/24 dev eth-up; ip link set eth-up up
ip route add default via 192.0.2.1 dev eth-up; ip route add 198.51.100.0/24 via 192.0.2.1
ip link add cni0 type bridge; ip addr add 10.244.0.1/24 dev cni0; ip link set cni0 up
for i in $(seq 1 {pods}); do ip link add vethp$i type veth peer name ceth$i; ip link set vethp$i master cni0; done
ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning dev lo; ip link set flannel.1 up
ip route add 10.244.7.0/24 via 10.244.7.0 dev flannel.1 onlink
ip link add cali1a2b3c type veth peer name calipeer1
ip tuntap add tunl0 mode tun; ip tuntap add kube-ipvs0 mode tap; ip addr add 10.96.0.10/32 dev kube-ipvs0
ip link add weave type bridge; ip link add vethwe-bridge type veth peer name vethwe-datapath
ip link add docker0 type bridge
ip route add blackhole 10.244.3.0/26 proto bird
ip route add blackhole 10.244.4.0/26

ipset create KUBE-CLUSTER-IP hash:ip,port,ip; ipset create felix-calico-hosts-4 hash:ip; ipset create cali40all-ipam-pools hash:net
ipset create weave-npc-ingress hash:ip; ipset create user-blocklist hash:ip
for t in iptables ip6tables iptables-legacy ip6tables-legacy; do
  $t -t nat -N KUBE-SERVICES; $t -t nat -N KUBE-SVC-ABC; $t -t nat -A KUBE-SERVICES -j KUBE-SVC-ABC
  $t -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
  $t -N KUBE-FIREWALL; $t -A INPUT -j KUBE-FIREWALL; $t -N FLANNEL-FWD; $t -A FORWARD -j FLANNEL-FWD
  $t -N cali-INPUT; $t -A INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT
  $t -N WEAVE-NPC; $t -A FORWARD -j WEAVE-NPC
  $t -N USER-FW; $t -A INPUT -p tcp --dport 22 -j USER-FW; $t -A USER-FW -j ACCEPT
  $t -t nat -N CNI-0a1b2c3d; $t -t nat -A CNI-0a1b2c3d -j ACCEPT
  $t -t nat -A POSTROUTING -m comment --comment 'name: "cbr0" id: "ctr-1"' -j CNI-0a1b2c3d
  $t -t nat -N CNI-podman99; $t -t nat -A CNI-podman99 -j ACCEPT
  $t -t nat -A POSTROUTING -m comment --comment 'name: "podman" id: "podctr"' -j CNI-podman99
done
iptables -t nat -A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-SVC-ABC
iptables -A cali-INPUT -m set --match-set felix-calico-hosts-4 src -j ACCEPT
iptables -A USER-FW -m set --match-set user-blocklist src -j DROP
nft add table ip kube-proxy; nft add chain ip kube-proxy services; nft add table ip6 kube-proxy
nft add table ip calico-arp; nft add table inet userfw
"#
    ));
}

fn assert_clean_and_user_state_intact(root: &Path) {
    let r = root.display();
    let links = sh("ip -o link show");
    for gone in [
        "cni0",
        "flannel.1",
        "vethp1",
        "cali1a2b3c",
        "calipeer1",
        "tunl0",
        "kube-ipvs0",
        "weave:",
        "vethwe-",
    ] {
        assert!(
            !links.contains(&format!(" {gone}")),
            "{gone} left:\n{links}"
        );
    }
    for kept in ["eth-up", "docker0"] {
        assert!(
            links.contains(&format!(" {kept}")),
            "{kept} was removed:\n{links}"
        );
    }
    for save in [
        "iptables-nft-save",
        "ip6tables-nft-save",
        "iptables-legacy-save",
        "ip6tables-legacy-save",
    ] {
        let rules = sh(save);
        for gone in [
            "KUBE-",
            "FLANNEL",
            "cali-",
            "cali:",
            "WEAVE",
            "CNI-0a1b2c3d",
            "cbr0",
        ] {
            assert!(!rules.contains(gone), "{save}: {gone} left:\n{rules}");
        }
        for kept in [
            ":USER-FW",
            "-A INPUT -p tcp -m tcp --dport 22 -j USER-FW",
            "CNI-podman99",
            "name: \\\"podman\\\"",
        ] {
            assert!(rules.contains(kept), "{save}: {kept} missing:\n{rules}");
        }
    }
    assert!(sh("iptables-nft-save").contains("--match-set user-blocklist src -j DROP"));
    let tables = sh("nft list tables");
    assert!(
        !tables.contains("kube-proxy") && !tables.contains("calico"),
        "{tables}"
    );
    assert!(tables.contains("table inet userfw"), "{tables}");
    let sets = sh("ipset list -n");
    assert_eq!(sets.trim(), "user-blocklist", "{sets}");
    let routes = sh("ip route show");
    assert!(!routes.contains("10.244."), "{routes}");
    assert!(
        routes.contains("default via 192.0.2.1") && routes.contains("198.51.100.0/24"),
        "{routes}"
    );
    let mounts = sh(&format!(
        "findmnt -rn -o TARGET | grep -F '{r}/var/lib/kubelet' || true"
    ));
    assert!(mounts.trim().is_empty(), "mounts left:\n{mounts}");
    let kubelet_files = sh(&format!("find {r}/var/lib/kubelet -mindepth 1"));
    assert!(kubelet_files.trim().is_empty(), "{kubelet_files}");
    assert_eq!(
        std::fs::read_to_string(root.join("user-data/volume.txt")).unwrap(),
        "precious\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("outside/file")).unwrap(),
        "keep\n"
    );
    assert!(!root.join("var/lib/cni/networks/cbr0").exists());
    assert!(root.join("var/lib/cni/networks/podman/10.88.0.2").exists());
    assert!(root.join("var/lib/cni/results/podman-podctr-eth0").exists());
    assert!(!root.join("var/lib/cni/results/cbr0-ctr-1-eth0").exists());
    assert!(
        root.join("etc/cni/net.d/87-podman-bridge.conflist")
            .exists()
    );
    assert!(!root.join("etc/cni/net.d/10-flannel.conflist").exists());
    assert!(!root.join("etc/sysctl.d/99-kubestrap.conf").exists());
    assert!(!root.join("etc/kubernetes/kubelet.conf").exists());
    assert!(!root.join("run/flannel").exists());
    for dir in ["etc/kubernetes/manifests", "etc/kubernetes/pki"] {
        let entries = std::fs::read_dir(root.join(dir))
            .map(|e| e.count())
            .unwrap_or(0);
        assert_eq!(entries, 0, "{dir} is not empty");
    }
}

#[test]
fn reset_cleans_a_dirty_node_keeps_the_users_state_and_is_idempotent() {
    if !common::enter_sandbox("reset_cleans_a_dirty_node_keeps_the_users_state_and_is_idempotent") {
        return;
    }
    common::require(&[
        "ip",
        "iptables-nft-save",
        "iptables-legacy-save",
        "ip6tables-legacy",
        "nft",
        "ipset",
        "findmnt",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    journal_init_files(root);
    seed(root, 24);

    let (planned_code, plan, output) = reset(root, &["--dry-run"]);
    assert_eq!(planned_code, 0, "{output}");
    let planned = plan["planned"].as_array().unwrap();
    assert!(
        planned
            .iter()
            .any(|i| i["kind"] == "link" && i["target"] == "flannel.1"),
        "{output}"
    );
    assert!(
        planned.iter().any(
            |i| i["kind"] == "iptables-chain" && i["target"] == "ipv6/legacy/nat/KUBE-SERVICES"
        ),
        "{output}"
    );
    assert!(
        sh("ip -o link show").contains(" cni0"),
        "a dry run changed the host"
    );

    let (code, report, output) = reset(root, &["--force"]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(report["left"], serde_json::json!([]), "{output}");
    assert_eq!(report["reboot_required"], false);
    let removed = report["removed"].as_array().unwrap();
    let has = |kind: &str, target: &str| {
        removed
            .iter()
            .any(|i| i["kind"] == kind && i["target"].as_str().unwrap().contains(target))
    };
    assert!(has("mount", "volumes/kubernetes.io~secret/token/nested"));
    assert!(has("ipset", "felix-calico-hosts-4"));
    assert!(has("nft-table", "ip kube-proxy"));
    assert!(has("route", "blackhole 10.244.3.0/26 proto bird"));
    assert!(has("ipam-reservation", "cbr0/10.244.0.2"));
    assert!(has("sysctl", "net.ipv4.ip_forward"));
    assert!(has(
        "iptables-rule",
        "ipv4/legacy/filter/-A INPUT -j KUBE-FIREWALL"
    ));
    let kept = report["kept"].as_array().unwrap();
    assert!(
        kept.iter().any(|i| i["target"]
            .as_str()
            .unwrap()
            .ends_with("87-podman-bridge.conflist")),
        "{output}"
    );
    assert!(
        kept.iter()
            .any(|i| i["kind"] == "ipset" && i["target"] == "user-blocklist")
    );
    assert_clean_and_user_state_intact(root);

    let (code, again, output) = reset(root, &["--force"]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        again["removed"],
        serde_json::json!([]),
        "second reset removed something: {output}"
    );
    assert_eq!(again["left"], serde_json::json!([]));
}

#[test]
fn reset_of_a_node_never_initialised_is_a_clean_no_op() {
    if !common::enter_sandbox("reset_of_a_node_never_initialised_is_a_clean_no_op") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    sh("ip link add docker0 type bridge; iptables -N USER-FW; nft add table inet userfw");
    // The ResetConfiguration's dryRun needs neither a terminal nor --force, and changes nothing.
    let config = dir.path().join("reset.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\ndryRun: true\n",
    )
    .unwrap();
    sh("ip link add cni0 type bridge");
    let (code, plan, output) = reset(dir.path(), &["--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(plan["planned"][0]["target"], "cni0", "{output}");
    assert!(sh("ip -o link show").contains(" cni0"));
    sh("ip link delete cni0");

    let (code, report, output) = reset(dir.path(), &["--force"]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(report["removed"], serde_json::json!([]), "{output}");
    assert_eq!(report["left"], serde_json::json!([]));
    assert!(sh("iptables-save").contains(":USER-FW"));
}

#[test]
fn a_device_the_kernel_refuses_to_delete_is_left_with_reboot_required() {
    if !common::enter_sandbox("a_device_the_kernel_refuses_to_delete_is_left_with_reboot_required")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // An `ip` that answers like the kernel does for ipip's fallback device, alone or in a batch.
    std::fs::write(
        bin.join("ip"),
        "#!/bin/sh\ncase \"$*\" in\n  'link delete dev tunl0') echo 'RTNETLINK answers: Operation not permitted' >&2; exit 2;;\n  *-batch*) grep -v ' dev tunl0$' | /usr/sbin/ip \"$@\"; exit 1;;\nesac\nexec /usr/sbin/ip \"$@\"\n",
    )
    .unwrap();
    sh(&format!(
        "chmod +x {}/ip; ip tuntap add tunl0 mode tun; ip link add flannel.1 type vxlan id 1 dstport 8472 dev lo",
        bin.display()
    ));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new(KUBESTRAP)
        .args([
            "reset",
            "--force",
            "-o",
            "json",
            "--cri-socket",
            "unix:///nonexistent/x.sock",
            "--root",
        ])
        .arg(dir.path())
        .env("PATH", path)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["reboot_required"], true);
    let left = report["left"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{report}");
    assert_eq!(left[0]["target"], "tunl0");
    assert_eq!(left[0]["reboot_required"], true);
    assert!(
        left[0]["reason"]
            .as_str()
            .unwrap()
            .contains("Operation not permitted")
    );
    assert!(!sh("ip -o link show").contains("flannel.1"));
}

#[test]
fn reset_without_a_terminal_or_force_refuses_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kubelet_conf = dir.path().join("etc/kubernetes/kubelet.conf");
    std::fs::create_dir_all(kubelet_conf.parent().unwrap()).unwrap();
    std::fs::write(&kubelet_conf, "x").unwrap();
    let out = Command::new(KUBESTRAP)
        .args(["reset", "--root"])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert!(kubelet_conf.exists());
    let bad = Command::new(KUBESTRAP)
        .args([
            "reset",
            "--force",
            "--skip-phases",
            "cleanup-node/nope",
            "--root",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cleanup-node/nope"));
}

#[test]
fn a_subtree_whose_mount_will_not_go_is_never_deleted() {
    if !common::enter_sandbox("a_subtree_whose_mount_will_not_go_is_never_deleted") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let k = root.join("var/lib/kubelet");
    let locked = k.join("pods/p1/volumes/kubernetes.io~secret/locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::write(k.join("config.yaml"), "x").unwrap();
    // Mounted here, then seen from a new user namespace: the kernel locks it there, so no unmount
    // (not even a lazy detach) can take it away — a real refusal, not a simulated one.
    sh(&format!(
        "mount -t tmpfs tmpfs {0}; echo data > {0}/secret",
        locked.display()
    ));
    let skip = "remove-etcd-member,cleanup-node/containers,cleanup-node/netns,cleanup-node/netfilter,cleanup-node/ipsets,\
                cleanup-node/links,cleanup-node/routes,cleanup-node/ipvs-conntrack";
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(KUBESTRAP)
        .args([
            "reset",
            "--force",
            "-o",
            "json",
            "--cri-socket",
            "unix:///nonexistent/x.sock",
            "--skip-phases",
            skip,
            "--root",
        ])
        .arg(root)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let left = report["left"].as_array().unwrap();
    assert!(
        left.iter()
            .any(|i| i["kind"] == "mount" && i["target"] == locked.display().to_string()),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(locked.join("secret")).unwrap(),
        "data\n"
    );
    assert!(
        !k.join("config.yaml").exists(),
        "the rest of the kubelet dir is cleaned: {text}"
    );
}

/// The Node object reset deletes is the one the kubelet's credentials name, not the host name.
#[test]
fn the_node_name_comes_from_the_kubelets_credentials() {
    if !common::enter_sandbox("the_node_name_comes_from_the_kubelets_credentials") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let init = Command::new(KUBESTRAP)
        .arg("--root")
        .arg(root)
        .args([
            "init",
            "--node-name",
            "cp-renamed",
            "--apiserver-advertise-address",
            "192.0.2.10",
        ])
        .args([
            "--skip-phases",
            "preflight,etcd,control-plane,kubelet-start,wait-control-plane,kubelet-finalize,upload-config,upload-certs,mark-control-plane,bootstrap-token,addon,discovery",
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let (code, _, output) = reset(root, &["--dry-run"]);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("[dry-run] Would delete api-object v1 Node cp-renamed\n"),
        "{output}"
    );
}
