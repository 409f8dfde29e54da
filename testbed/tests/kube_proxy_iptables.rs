//! The kube-proxy double on a three-node testbed cluster (kubestrap's control-plane files, node
//! IPAM, the test pod network), deployed as kubeadm's proxy add-on deploys it (ConfigMap, service
//! account bound to `system:node-proxier`, DaemonSet): its real iptables rules route a ClusterIP and
//! a NodePort Service to every endpoint (agnhost netexec pods on every node) from every node, from a
//! pod and from outside; traffic from outside clusterCIDR is masqueraded and pod traffic is not; a
//! Service without endpoints is rejected; a deleted Service's chains go; bad configurations fail as
//! kube-proxy fails; and `kubestrap reset` removes every rule and chain the proxy made and nothing
//! else (judged with iptables-save against the node's rules from before the proxy ran). Until
//! kubestrap's online init renders the add-on, the test applies kubeadm's objects itself.

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{Result, ensure};
use kubestrap_testbed::driver::Node;
use kubestrap_testbed::driver::scenario::{self, ADMIN};
use kubestrap_testbed::driver::wait_until;
use serde_json::json;
use support::{CLUSTER_CIDR, WAIT, http_get, kubectl, proxy_config, text};

/// The node's rules as `iptables-save` prints them (v4 and v6), without counters and comments, and
/// without tables that hold nothing but empty built-in chains (a table, once used, stays in the
/// kernel: the same rules, whether listed or not).
fn saved_rules(node: &Node) -> Result<String> {
    let out = node
        .sh("iptables-save; echo '# v6'; ip6tables-save")?
        .check("iptables-save")?;
    let mut kept = Vec::new();
    let mut table: Vec<String> = Vec::new();
    for line in out.stdout.lines() {
        if line.starts_with('#') && line != "# v6" {
            continue;
        }
        // Chain policies carry packet counters: `:INPUT ACCEPT [12:3456]`.
        let line = match line.rfind(" [") {
            Some(i) if line.starts_with(':') => &line[..i],
            _ => line,
        };
        table.push(line.to_string());
        if line == "COMMIT" || line == "# v6" {
            let used = table
                .iter()
                .any(|l| l.starts_with("-A") || (l.starts_with(':') && l.ends_with(" -")));
            if used || line == "# v6" {
                kept.append(&mut table);
            }
            table.clear();
        }
    }
    kept.append(&mut table);
    Ok(kept.join("\n"))
}

/// `tries` GETs of `path` through `url_host` on `node`: the bodies that answered.
fn answers_from(node: &Node, url_host: &str, path: &str, tries: usize) -> Result<Vec<String>> {
    let out = node.sh(&format!(
        "for i in $(seq {tries}); do curl -s -m 3 http://{url_host}{path}; echo; done"
    ))?;
    Ok(out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[test]
fn kube_proxy_routes_services_masquerades_and_reset_removes_its_rules() -> Result<()> {
    let started = Instant::now();
    let cluster = support::cluster_with_pod_network()?;
    let cp = cluster.node("node1")?;
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    let node3 = nodes[2];
    let before_proxy = saved_rules(node3)?;
    ensure!(!before_proxy.contains("KUBE-"), "{before_proxy}");

    let proxy_started = Instant::now();
    support::start_kube_proxy(&cluster, &proxy_config(""))?;
    eprintln!(
        "kube-proxy routing on every node {:.1?} after the DaemonSet",
        proxy_started.elapsed()
    );
    scenario::apply(
        cp,
        ADMIN,
        &[
            support::netexec_daemonset("web"),
            support::netexec_daemonset("client"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "NodePort", "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080, "protocol": "TCP"},
                        {"name": "udp", "port": 81, "targetPort": 8081, "nodePort": 30081, "protocol": "UDP"}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty", "namespace": "default"},
                "spec": {"selector": {"app": "nothing"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
        ],
    )?;
    let web = support::ready_pods(cp, "default", "app=web", 3)?;
    let clients = support::ready_pods(cp, "default", "app=client", 3)?;
    let all: BTreeSet<String> = web
        .iter()
        .map(|p| text(p, "/metadata/name").to_string())
        .collect();
    let cluster_ip = kubectl(
        cp,
        &["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"],
    )?;
    let empty_ip = kubectl(
        cp,
        &[
            "get",
            "service",
            "empty",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )?;
    for node in &nodes {
        wait_until(&format!("web's endpoints on {}", node.name), WAIT, || {
            let nat = node_nat(node)?;
            Ok(nat.contains("\"default/web:http cluster IP\"")
                && nat.matches("default/web:http -> ").count() == 3
                && nat.matches("default/web:udp -> ").count() == 3)
        })?;
    }

    // ClusterIP and NodePort reach every endpoint from every node.
    let ips: Vec<String> = nodes.iter().map(|n| n.ip.clone()).collect();
    for (i, node) in nodes.iter().enumerate() {
        let seen: BTreeSet<String> = answers_from(node, &cluster_ip, "/hostname", 30)?
            .into_iter()
            .collect();
        ensure!(
            seen == all,
            "{} → {cluster_ip}: answered by {seen:?}",
            node.name
        );
        let target = &ips[(i + 1) % 3];
        let seen: BTreeSet<String> =
            answers_from(node, &format!("{target}:30080"), "/hostname", 30)?
                .into_iter()
                .collect();
        ensure!(
            seen == all,
            "{} → {target}:30080: answered by {seen:?}",
            node.name
        );
    }
    // From a pod (agnhost's /dial through pods/proxy): the ClusterIP reaches every endpoint, and the
    // endpoints see the pod's own address — pod traffic (inside clusterCIDR) is not masqueraded.
    let client1 = clients
        .iter()
        .find(|p| text(p, "/spec/nodeName") == "node1")
        .cloned()
        .unwrap_or_default();
    let (responses, errors) =
        support::dial_via_proxy(cp, &client1, &cluster_ip, 80, "hostname", 30)?;
    let seen: BTreeSet<String> = responses.into_iter().collect();
    ensure!(
        seen == all,
        "client on node1 → {cluster_ip}: {seen:?}, errors {errors:?}"
    );
    let (responses, errors) =
        support::dial_protocol(cp, &client1, "udp", &cluster_ip, 81, "hostname", 30)?;
    let seen: BTreeSet<String> = responses.into_iter().collect();
    ensure!(
        seen == all,
        "client on node1 → udp {cluster_ip}:81: {seen:?}, errors {errors:?}"
    );
    let (responses, errors) =
        support::dial_via_proxy(cp, &client1, &cluster_ip, 80, "clientip", 10)?;
    let pod_ip = text(&client1, "/status/podIP");
    ensure!(
        !responses.is_empty()
            && responses
                .iter()
                .all(|r| r.rsplit_once(':').map(|(h, _)| h) == Some(pod_ip)),
        "endpoints saw {responses:?} (errors {errors:?}), not the client pod's {pod_ip}"
    );
    // From outside the cluster (the test process, outside clusterCIDR) a NodePort connection is
    // masqueraded: every endpoint sees one of node1's own addresses, never the outside client.
    let node1_cidr = kubectl(
        cp,
        &["get", "node", "node1", "-o", "jsonpath={.spec.podCIDR}"],
    )?;
    let node1_gateway = node1_cidr.trim_end_matches("0/24").to_string() + "1";
    for _ in 0..20 {
        let (code, client) = http_get(&format!("{}:30080", ips[0]), "/clientip")?;
        let host = client.rsplit_once(':').map(|(h, _)| h).unwrap_or_default();
        ensure!(
            code == 200 && (host == ips[0] || host == node1_gateway),
            "an endpoint saw the outside client as {client}: not masqueraded behind node1 ({}, {node1_gateway})",
            ips[0]
        );
    }
    let nat1 = node_nat(nodes[0])?;
    ensure!(
        nat1.lines().any(
            |l| l.contains(&format!("! -s {CLUSTER_CIDR}")) && l.ends_with("-j KUBE-MARK-MASQ")
        ),
        "{nat1}"
    );

    // A Service without endpoints is rejected at once (connection refused, not a timeout).
    let refused = cp.sh(&format!("curl -s -m 5 http://{empty_ip}/; echo \"rc=$?\""))?;
    ensure!(refused.stdout.contains("rc=7"), "{refused:?}");

    // Deleting the Service removes its chains on every node.
    kubectl(cp, &["delete", "service", "web"])?;
    for node in &nodes {
        wait_until(&format!("web's chains gone on {}", node.name), WAIT, || {
            Ok(!node_nat(node)?.contains("default/web:http"))
        })?;
    }

    // masqueradeAll, through the ConfigMap: every node marks all ClusterIP traffic.
    kubectl(
        cp,
        &["delete", "daemonset", "-n", "kube-system", "kube-proxy"],
    )?;
    support::start_kube_proxy(&cluster, &proxy_config("  masqueradeAll: true\n"))?;
    wait_until("masqueradeAll in node3's rules", WAIT, || {
        let nat3 = node_nat(node3)?;
        Ok(nat3.lines().any(|l| {
            l.contains("default/kubernetes:https cluster IP")
                && l.contains("-j KUBE-MARK-MASQ")
                && !l.contains("! -s")
        }))
    })?;

    // Bad configurations fail as kube-proxy fails.
    for (config, wanted) in [
        (
            proxy_config("").replace("mode: \"\"", "mode: ipvs"),
            "not implemented by the testbed's kube-proxy double",
        ),
        (
            proxy_config("").replace("mode: \"\"", "mode: nftables"),
            "not implemented by the testbed's kube-proxy double",
        ),
        (
            proxy_config("").replace(CLUSTER_CIDR, "10.244.0.0/33"),
            "KubeProxyConfiguration.ClusterCIDR: Invalid value: \"10.244.0.0/33\"",
        ),
    ] {
        node3.write_file("/root/bad-proxy.conf", config.as_bytes(), 0o644)?;
        let out = node3.exec(&["/usr/local/bin/kube-proxy", "--config=/root/bad-proxy.conf"])?;
        ensure!(out.code == 1 && out.stderr.contains(wanted), "{out:?}");
    }

    // kubestrap reset on node3 removes every KUBE-* rule and chain, and nothing else.
    ensure!(saved_rules(node3)?.contains("KUBE-SERVICES"));
    node3.write_file(ADMIN, &cp.read_file(ADMIN)?, 0o600)?;
    node3
        .kubestrap(&["reset", "--force"])?
        .check("kubestrap reset on node3")?;
    let after = saved_rules(node3)?;
    ensure!(
        after == before_proxy,
        "node3's rules after reset differ from before kube-proxy ran:\n--- before\n{before_proxy}\n--- after\n{after}"
    );
    cluster.teardown()?;
    eprintln!("kube_proxy_iptables: {:.1?}", started.elapsed());
    Ok(())
}

fn node_nat(node: &Node) -> Result<String> {
    Ok(node.exec(&["iptables-save", "-t", "nat"])?.stdout)
}
