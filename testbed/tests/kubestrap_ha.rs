//! An HA cluster made by kubestrap on one testbed cluster of three nodes behind the load-balancer
//! node (haproxy over every node's :6443; docs/testbed.md): node1 runs `kubestrap init
//! --control-plane-endpoint <lb>:6443 --upload-certs`; on node2 a control-plane join with a wrong
//! certificate key exits 1 naming it and leaves nothing, one without a key exits 2, one that fails after
//! adding its learner (`etcdAPICall: 1ms`) is rolled back and the learner removed, and a dry run plans
//! without adding a member; node2 joins as a control plane with the command init printed; node3's join
//! with node2's etcd unreachable from it stops at check-etcd (exit 1, node2 named, before the kubelet
//! starts) and leaves nothing; then node3 joins, giving a real 3-member etcd (`etcdctl member list`:
//! three voting members) and three control-plane Nodes. kubectl through the endpoint keeps working
//! while node3 is stopped. node3 then loses its state without leaving etcd (`reset --skip-phases
//! remove-etcd-member` and its data wiped; the admin deletes its Node): re-joining under the same name
//! replaces the stale member. Last, `kubestrap reset` of node2 removes its member and Node, leaving a
//! healthy 2-member etcd.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::{Value, json};

const STATE_DIRS: &str = "/etc/kubernetes /var/lib/kubelet /var/lib/kubestrap /var/lib/etcd";
const ETCDCTL: &str = "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 \
    --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
    --key=/etc/kubernetes/pki/etcd/healthcheck-client.key";

#[test]
fn three_control_planes_behind_haproxy_share_one_etcd() -> Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::with_lb(3))?;
    eprintln!("cluster started: {}", elapsed(started));
    let result = run(&cluster, started);
    if result.is_err() {
        eprintln!("{}", cluster.diagnostics());
        if let Some(lb) = &cluster.lb {
            eprintln!(
                "--- haproxy\n{}",
                std::process::Command::new("docker")
                    .args(["logs", "--tail", "60", &lb.container])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned()
                        + &String::from_utf8_lossy(&o.stderr))
                    .unwrap_or_default()
            );
        }
    }
    let at = Instant::now();
    cluster.teardown()?;
    eprintln!("teardown: {}", elapsed(at));
    result
}

fn elapsed(since: Instant) -> String {
    format!("{:.1}s", since.elapsed().as_secs_f64())
}

/// init's configuration: the testbed's, with the load balancer as the control-plane endpoint and
/// short waits.
fn init_config(settings: &ClusterSettings, endpoint: &str) -> Result<String> {
    let init = json!({
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": settings.advertise_address, "bindPort": 6443},
        "nodeRegistration": {"name": settings.node_name},
        "timeouts": {"controlPlaneComponentHealthCheck": "60s", "kubeletHealthCheck": "30s"},
    });
    let cluster = json!({
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "kubernetesVersion": settings.kubernetes_version,
        "controlPlaneEndpoint": endpoint,
        "etcd": {"local": {"imageTag": settings.etcd_tag}},
        "networking": {"serviceSubnet": settings.service_cidr, "dnsDomain": settings.dns_domain},
    });
    kubestrap::yaml::to_documents(&[init, cluster])
}

/// The etcd members node's etcd lists: (name, id, is learner).
fn members(node: &Node) -> Result<Vec<(String, String, bool)>> {
    let out = node
        .sh(&format!("{ETCDCTL} member list -w json"))?
        .check("etcdctl member list")?;
    let list: Value = serde_json::from_str(&out.stdout)?;
    Ok(list["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["ID"].to_string(),
                m["isLearner"].as_bool().unwrap_or(false),
            )
        })
        .collect())
}

/// The etcd members' names, all voting, or an error saying which are learners.
fn voting_names(node: &Node) -> Result<Vec<String>> {
    let list = members(node)?;
    ensure!(
        list.iter().all(|(_, _, learner)| !learner),
        "learners left: {list:?}"
    );
    let mut names: Vec<String> = list.into_iter().map(|(n, _, _)| n).collect();
    names.sort();
    Ok(names)
}

fn state_files(node: &Node) -> Result<String> {
    Ok(node
        .sh(&format!(
            "find {STATE_DIRS} -type f 2>/dev/null | grep -v '^/var/lib/kubestrap/journal.jsonl$' | grep -v '/var/lib/kubestrap/lock' | sort"
        ))?
        .stdout)
}

fn control_plane_nodes(cp: &Node) -> Result<Vec<String>> {
    let out = cp
        .kubectl_with(
            ADMIN,
            &[
                "get",
                "nodes",
                "-l",
                "node-role.kubernetes.io/control-plane",
                "-o",
                "name",
            ],
        )?
        .check("kubectl get control-plane nodes")?;
    let mut names: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("node/").to_string())
        .collect();
    names.sort();
    Ok(names)
}

fn join_control_plane(node: &Node, command: &str) -> Result<()> {
    let at = Instant::now();
    let joined = scenario::run_join_command(node, command)?;
    ensure!(
        joined.ok(),
        "control-plane join on {}: {joined:?}",
        node.name
    );
    ensure!(
        joined
            .stdout
            .contains("a new control plane instance was created"),
        "{}",
        joined.stdout
    );
    eprintln!("{} control-plane join: {}", node.name, elapsed(at));
    Ok(())
}

/// check-etcd: with `down`'s etcd refusing `node`'s connections, `node`'s control-plane join exits 1
/// naming that member before its kubelet starts, and leaves nothing.
fn refused_while_etcd_unhealthy(node: &Node, down: &Node, command: &str) -> Result<()> {
    let rule = format!("OUTPUT -d {} -p tcp --dport 2379 -j REJECT", down.ip);
    let before = state_files(node)?;
    node.sh(&format!("iptables -I {rule}"))?
        .check("block the member's client port")?;
    let at = Instant::now();
    let refused = scenario::run_join_command(node, command);
    node.sh(&format!("iptables -D {rule}"))?
        .check("unblock the member's client port")?;
    let refused = refused?;
    ensure!(
        refused.code == 1,
        "join with an unhealthy member: {refused:?}"
    );
    ensure!(
        refused
            .stdout
            .contains("[check-etcd] Checking that the etcd cluster is healthy")
            && !refused.stdout.contains("[kubelet-start]"),
        "{}",
        refused.stdout
    );
    ensure!(
        refused
            .stderr
            .contains("the etcd cluster is not healthy, so no member is added")
            && refused.stderr.contains(&format!("\"{}\"", down.name)),
        "{}",
        refused.stderr
    );
    let after = state_files(node)?;
    ensure!(
        after == before,
        "the refused join left files:\n{after}\nbefore:\n{before}"
    );
    eprintln!(
        "{} refused by check-etcd, rolled back: {}",
        node.name,
        elapsed(at)
    );
    Ok(())
}

fn run(cluster: &Cluster, started: Instant) -> Result<()> {
    let node1 = cluster.node("node1")?;
    let node2 = cluster.node("node2")?;
    let node3 = cluster.node("node3")?;
    let lb = cluster.lb.as_ref().context("the load-balancer node")?;
    let endpoint = format!("{}:6443", lb.ip);
    let settings = ClusterSettings::for_node(node1);
    node1.write_file(
        "/root/kubestrap.yaml",
        init_config(&settings, &endpoint)?.as_bytes(),
        0o600,
    )?;
    let init = node1
        .kubestrap(&["init", "--config=/root/kubestrap.yaml", "--upload-certs"])?
        .check("kubestrap init --upload-certs on node1")?;
    eprintln!("init: {}", elapsed(started));
    let command =
        scenario::printed_control_plane_join_command(&init.stdout).with_context(|| {
            format!(
                "the control-plane join command in init's output:\n{}",
                init.stdout
            )
        })?;
    ensure!(
        command.contains(&endpoint),
        "the join command names the load balancer {endpoint}: {command}"
    );
    let key = scenario::command_flag(&command, "--certificate-key").context("the key")?;

    // ---- a wrong certificate key: refused before anything is written ----
    let before = state_files(node2)?;
    let wrong = command.replace(&key, &"0".repeat(64));
    let refused = scenario::run_join_command(node2, &wrong)?;
    ensure!(refused.code == 1, "wrong key: {refused:?}");
    ensure!(
        refused
            .stderr
            .contains("does not decrypt with the given --certificate-key"),
        "{}",
        refused.stderr
    );
    ensure!(
        !refused.stderr.contains(&"0".repeat(64)),
        "the key is printed"
    );
    ensure!(
        state_files(node2)? == before,
        "the refused join left files:\n{}",
        state_files(node2)?
    );

    // ---- no certificate key and no shared certificates on the node: exit 2, nothing written ----
    let keyless = command.replace(&format!(" --certificate-key {key}"), "");
    let refused = scenario::run_join_command(node2, &keyless)?;
    ensure!(refused.code == 2, "no key: {refused:?}");
    ensure!(
        refused
            .stderr
            .contains("needs the cluster's shared certificates: give --certificate-key")
            && refused.stderr.contains("/etc/kubernetes/pki/ca.key"),
        "{}",
        refused.stderr
    );
    ensure!(
        state_files(node2)? == before,
        "the key-less join left files"
    );

    // ---- a join that fails after adding its learner is rolled back, the learner removed ----
    let token = scenario::command_flag(&command, "--token").context("--token")?;
    let pin = scenario::command_flag(&command, "--discovery-token-ca-cert-hash").context("pin")?;
    node2.write_file(
        "/root/join.yaml",
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    \
             apiServerEndpoint: {endpoint}\n    token: {token}\n    caCertHashes: [\"{pin}\"]\n\
             controlPlane:\n  certificateKey: {key}\ntimeouts:\n  etcdAPICall: 1ms\n"
        )
        .as_bytes(),
        0o600,
    )?;
    let before = state_files(node2)?;
    let at = Instant::now();
    let failed = node2.kubestrap(&["join", "--config=/root/join.yaml"])?;
    ensure!(
        failed.code == 1 && failed.stderr.contains("promoting the etcd learner"),
        "a join whose learner can not catch up in 1ms: {failed:?}"
    );
    ensure!(
        failed.stdout.contains("Announced new etcd member") && failed.stdout.contains("[rollback]"),
        "{}",
        failed.stdout
    );
    eprintln!("node2 failed join, rolled back: {}", elapsed(at));
    ensure!(
        voting_names(node1)? == ["node1"],
        "the rolled-back join's learner is still a member: {:?}",
        members(node1)?
    );
    let after = state_files(node2)?;
    ensure!(
        after == before,
        "the rolled-back join left files:\n{after}\nbefore:\n{before}"
    );

    // ---- a dry run discovers and plans, changing nothing ----
    let planned = node2.kubestrap(
        &[
            &command.split_whitespace().collect::<Vec<_>>()[1..],
            &["--dry-run"],
        ]
        .concat(),
    )?;
    ensure!(planned.ok(), "dry run: {planned:?}");
    ensure!(
        planned
            .stdout
            .contains("[dry-run] Would check that the etcd cluster is healthy")
            && planned.stdout.contains("as a learner")
            && planned.stdout.contains("--initial-cluster-state=existing"),
        "{}",
        planned.stdout
    );
    ensure!(state_files(node2)? == before, "the dry run wrote files");
    ensure!(voting_names(node1)? == ["node1"]);

    // ---- node2 and node3 join as control planes ----
    join_control_plane(node2, &command)?;
    refused_while_etcd_unhealthy(node3, node2, &command)?;
    ensure!(voting_names(node1)? == ["node1", "node2"]);
    join_control_plane(node3, &command)?;
    ensure!(voting_names(node1)? == ["node1", "node2", "node3"]);
    ensure!(control_plane_nodes(node1)? == ["node1", "node2", "node3"]);
    let apiserver = node2.read_string("/etc/kubernetes/manifests/kube-apiserver.yaml")?;
    ensure!(
        apiserver.contains(&format!(
            "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: {}:6443",
            node2.ip
        )),
        "node2's endpoint is recorded on its API server pod:\n{apiserver}"
    );

    // ---- kubectl through the endpoint while a control plane is stopped ----
    let at = Instant::now();
    node3.stop()?;
    eprintln!("node3 stopped: {}", elapsed(at));
    let at = Instant::now();
    for _ in 0..5 {
        let names = scenario::node_names(node1, ADMIN)?;
        ensure!(names.len() == 3, "{names:?}");
    }
    eprintln!(
        "5 kubectl calls through haproxy with node3 stopped: {}",
        elapsed(at)
    );
    let at = Instant::now();
    node3.start()?;
    eprintln!("node3 started: {}", elapsed(at));

    // ---- node3 loses its state without leaving etcd; re-joining replaces the stale member ----
    let stale_id = members(node1)?
        .into_iter()
        .find(|(n, _, _)| n == "node3")
        .context("node3's member")?
        .1;
    let at = Instant::now();
    node3
        .kubestrap(&["reset", "--force", "--skip-phases", "remove-etcd-member"])?
        .check("reset of node3 without leaving etcd")?;
    eprintln!("node3 reset without leaving etcd: {}", elapsed(at));
    node3
        .sh("rm -rf /var/lib/etcd/member")?
        .check("wipe node3's etcd data")?;
    // Skipping remove-etcd-member also kept the Node, which stays Ready until the controller
    // manager notices the stopped kubelet: join would refuse it, so the admin deletes it first.
    node1
        .kubectl_with(ADMIN, &["delete", "node", "node3"])?
        .check("kubectl delete node node3")?;
    ensure!(members(node1)?.iter().any(|(_, id, _)| *id == stale_id));
    let at = Instant::now();
    let rejoined = scenario::run_join_command(node3, &command)?;
    ensure!(rejoined.ok(), "re-join of node3: {rejoined:?}");
    ensure!(
        rejoined.stdout.contains("stale member"),
        "{}",
        rejoined.stdout
    );
    eprintln!("node3 re-join over its stale member: {}", elapsed(at));
    let after = members(node1)?;
    ensure!(
        !after.iter().any(|(_, id, _)| *id == stale_id),
        "the stale member is still there: {after:?}"
    );
    ensure!(voting_names(node1)? == ["node1", "node2", "node3"]);

    // ---- reset of node2: its member and Node go, a healthy 2-member etcd stays ----
    let at = Instant::now();
    node2
        .kubestrap(&["reset", "--force"])?
        .check("kubestrap reset on node2")?;
    eprintln!("node2 reset: {}", elapsed(at));
    ensure!(voting_names(node1)? == ["node1", "node3"]);
    node1
        .sh(&format!("{ETCDCTL} endpoint health --cluster"))?
        .check("etcd endpoint health of the remaining members")?;
    wait_until("node2's Node deleted", Duration::from_secs(20), || {
        Ok(!scenario::node_names(node1, ADMIN)?.contains(&"node2".to_string()))
    })?;
    let left = node2
        .sh("find /etc/kubernetes /var/lib/kubelet /var/lib/etcd -type f 2>/dev/null")?
        .stdout;
    ensure!(left.trim().is_empty(), "reset left files on node2:\n{left}");
    eprintln!("total: {}", elapsed(started));
    Ok(())
}
