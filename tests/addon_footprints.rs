//! Each pod-network addon's footprint (`addons/<name>/addon.yaml`) drives reset's attribution: a node
//! seeded with exactly the artefacts the footprint names — devices, iptables chains and rule comments,
//! ipsets, nft tables, routes of its protocols, CNI configs, IPAM and state directories — beside the
//! user's own look-alikes loses exactly the footprint's and keeps the user's. Judged with `ip`,
//! `iptables-save`, `ipset`, `nft` and `find`, never with reset's own scanner; runs inside private network
//! and mount namespaces.

mod common;

use std::path::Path;
use std::process::Command;

use common::sh;
use kubestrap::podnet::{self, Addon, Names};

const KUBESTRAP: &str = env!("CARGO_BIN_EXE_kubestrap");

/// One concrete name per footprint entry: exact names as they are, prefixes with a suffix.
fn instances(names: &Names, suffix: &str) -> Vec<String> {
    names
        .exact
        .iter()
        .cloned()
        .chain(names.prefix.iter().map(|p| format!("{p}{suffix}")))
        .collect()
}

fn write(root: &Path, path: &str, text: &str) {
    let disk = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
    std::fs::write(disk, text).unwrap();
}

/// The user's state beside the addon's: never touched.
const USER_STATE: &str = "
ip link add usr-dev0 type bridge
iptables -N USER-FW
iptables -A FORWARD -m comment --comment 'user rule' -j ACCEPT
ipset create user-blocklist hash:ip
nft add table inet userfw
ip route add blackhole 198.51.100.0/24 proto static
";

/// Seeds the addon's footprint; returns the files it wrote (node paths).
fn seed(addon: &Addon, root: &Path) -> Vec<String> {
    let f = &addon.data.footprint;
    let mut script = String::new();
    for device in instances(&f.devices, "t1") {
        script.push_str(&format!("ip link add {device} type bridge\n"));
    }
    for chain in instances(&f.chains, "T1") {
        script.push_str(&format!("iptables -N {chain}\n"));
    }
    for comment in instances(&f.rule_comments, " t1") {
        script.push_str(&format!(
            "iptables -A FORWARD -m comment --comment '{comment}' -j ACCEPT\n"
        ));
    }
    for set in instances(&f.ipsets, "t1") {
        script.push_str(&format!("ipset create {set} hash:ip\n"));
    }
    for table in instances(&f.nft_tables, "t1") {
        script.push_str(&format!("nft add table inet {table}\n"));
    }
    for proto in &f.route_protocols {
        script.push_str(&format!(
            "ip route add blackhole 203.0.113.0/24 proto {proto}\n"
        ));
    }
    sh(&script);

    let mut files = Vec::new();
    for conf in &f.cni_configs {
        let text = if conf.ends_with(".conflist") || conf.ends_with(".conf") {
            format!(
                r#"{{"name":"{}","cniVersion":"0.3.1","plugins":[]}}"#,
                f.cni_network
            )
        } else {
            "kubeconfig".to_string()
        };
        write(root, conf, &text);
        files.push(conf.clone());
    }
    for dir in f.ipam_dirs.iter().chain(&f.state_dirs) {
        let file = format!("{dir}/state-t1");
        write(root, &file, "ctr-t1\r\neth0");
        files.push(file);
    }
    for cidr in &f.cidr_files {
        write(root, &cidr.path, &format!("{}=10.244.0.0/16\n", cidr.key));
        files.push(cidr.path.clone());
    }
    files
}

fn reset(root: &Path) -> (i32, String) {
    let out = Command::new(KUBESTRAP)
        .args(["reset", "--force", "--root"])
        .arg(root)
        .args(["--cri-socket", "unix:///nonexistent/kubestrap-test.sock"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn files(root: &Path) -> Vec<String> {
    let out = sh(&format!("cd {} && find . -type f | sort", root.display()));
    out.lines()
        .map(|l| l.trim_start_matches('.').to_string())
        // kubestrap's own lock and archived journal
        .filter(|l| !l.starts_with("/var/lib/kubestrap/"))
        .collect()
}

#[test]
fn each_addons_footprint_is_what_reset_removes() {
    if !common::enter_sandbox("each_addons_footprint_is_what_reset_removes") {
        return;
    }
    common::require(&["ip", "iptables", "iptables-save", "ipset", "nft"]);
    sh(USER_STATE);
    assert!(podnet::all().len() >= 3);
    for addon in podnet::all() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // The user's CNI network and data next to the addon's.
        write(
            root,
            "/etc/cni/net.d/99-user.conflist",
            r#"{"name":"mynet","cniVersion":"0.3.1","plugins":[]}"#,
        );
        write(
            root,
            "/var/lib/cni/networks/mynet/10.1.0.5",
            "ctr-user\r\neth0",
        );
        write(root, "/var/lib/user-data/file", "keep");
        let seeded = seed(addon, root);
        assert!(
            !seeded.is_empty(),
            "{}: no files in the footprint",
            addon.name
        );

        let (code, out) = reset(root);
        assert_eq!(code, 0, "{}: {out}", addon.name);

        let f = &addon.data.footprint;
        let links = sh("ip -o link show");
        for device in instances(&f.devices, "t1") {
            assert!(
                !links.contains(&format!(": {device}:")),
                "{}: {device} is left\n{out}",
                addon.name
            );
        }
        let rules = sh("iptables-save");
        for chain in instances(&f.chains, "T1") {
            assert!(
                !rules.contains(&format!(":{chain} ")),
                "{}: {chain} is left",
                addon.name
            );
        }
        for comment in instances(&f.rule_comments, " t1") {
            assert!(
                !rules.contains(&comment),
                "{}: rule {comment:?} is left",
                addon.name
            );
        }
        let sets = sh("ipset list -n");
        for set in instances(&f.ipsets, "t1") {
            assert!(
                !sets.lines().any(|l| l == set),
                "{}: ipset {set} is left",
                addon.name
            );
        }
        let tables = sh("nft list tables");
        for table in instances(&f.nft_tables, "t1") {
            assert!(
                !tables.contains(&table),
                "{}: nft table {table} is left",
                addon.name
            );
        }
        let routes = sh("ip route show table all");
        assert!(
            !routes.contains("203.0.113.0/24"),
            "{}: a route of its protocols is left\n{routes}",
            addon.name
        );

        // Exactly the user's files stay.
        assert_eq!(
            files(root),
            [
                "/etc/cni/net.d/99-user.conflist",
                "/var/lib/cni/networks/mynet/10.1.0.5",
                "/var/lib/user-data/file",
            ],
            "{}: {out}",
            addon.name
        );
        // And the user's kernel state.
        assert!(links.contains(": usr-dev0:"), "{}", addon.name);
        assert!(rules.contains(":USER-FW ") && rules.contains("user rule"));
        assert!(sets.lines().any(|l| l == "user-blocklist"));
        assert!(tables.contains("table inet userfw"));
        assert!(routes.contains("blackhole 198.51.100.0/24"));
    }
}
