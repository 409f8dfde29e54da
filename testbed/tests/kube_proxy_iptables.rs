//! The kube-proxy double on a three-node testbed cluster (kubestrap's control-plane files): its real
//! iptables rules route a ClusterIP and a NodePort Service to every endpoint from every node (and
//! from outside for the NodePort), traffic from outside clusterCIDR is masqueraded, a Service
//! without endpoints is rejected, a deleted Service's chains go, bad configurations fail as
//! kube-proxy fails, and `kubestrap reset` removes every rule and chain the proxy made and nothing
//! else (judged with iptables-save against the node's rules from before the proxy ran).
//!
//! Until the kubelet double runs API pods, kube-proxy runs as a static pod with the files kubeadm's
//! DaemonSet mounts (config.conf from its ConfigMap, a kubeconfig with the `kube-proxy` service
//! account's token bound to `system:node-proxier`, as kubeadm binds it). The endpoints are echo
//! servers on the nodes' own addresses (a selector-less Service with a test-written EndpointSlice).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod support;

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::scenario::{self, ADMIN, Source, Timings};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::json;
use support::{CLUSTER_CIDR, WAIT, kubectl, proxy_config};

/// An HTTP server on the node's own address answering `/hostname` and `/clientip`, as agnhost's
/// netexec does.
const ECHO: &str = r#"import http.server, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0]
        body = {"/hostname": socket.gethostname(), "/clientip": "%s:%d" % self.client_address,
                "/whoami": "%s %s" % (socket.gethostname(), self.client_address[0])}.get(path)
        if body is None:
            self.send_response(404); self.end_headers(); return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"#;

const ECHO_UNIT: &str = "[Unit]\nDescription=test echo server\n\n[Service]\nExecStart=/usr/bin/python3 /root/echo.py 8080\nRestart=always\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n";

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

/// One HTTP/1.0 GET from the test process (outside every node).
fn get_from_outside(addr: &str, path: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(3))
        .with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("malformed response")?;
    ensure!(head.starts_with("HTTP/1.0 200"), "{head}");
    Ok(body.to_string())
}

#[test]
fn kube_proxy_routes_services_masquerades_and_reset_removes_its_rules() -> Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(3))?;
    let mut timings = Timings::default();
    scenario::three_node_cluster(&cluster, Source::Kubestrap, &mut timings, started)?;
    let cp = cluster.node("node1")?;
    let nodes: Vec<&Node> = ["node1", "node2", "node3"]
        .iter()
        .map(|n| cluster.node(n))
        .collect::<Result<_>>()?;
    let node3 = nodes[2];
    let before_proxy = saved_rules(node3)?;
    ensure!(!before_proxy.contains("KUBE-"), "{before_proxy}");

    support::start_kube_proxy(cp, &nodes, |node| {
        if node == "node3" {
            "  masqueradeAll: true\n"
        } else {
            ""
        }
    })?;
    for node in &nodes {
        node.write_file("/root/echo.py", ECHO.as_bytes(), 0o644)?;
        node.write_file(
            "/etc/systemd/system/tb-echo.service",
            ECHO_UNIT.as_bytes(),
            0o644,
        )?;
        node.systemctl(&["daemon-reload"])?.check("daemon-reload")?;
        node.systemctl(&["start", "tb-echo"])?
            .check("start tb-echo")?;
    }

    // A NodePort Service whose endpoints are the three echo servers.
    let ips: Vec<String> = nodes.iter().map(|n| n.ip.clone()).collect();
    let endpoints: Vec<_> = nodes
        .iter()
        .map(|n| json!({"addresses": [n.ip], "conditions": {"ready": true}, "nodeName": n.name}))
        .collect();
    scenario::apply(
        cp,
        ADMIN,
        &[
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty", "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
        ],
    )?;
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

    let proxy_started = Instant::now();
    for node in &nodes {
        wait_until(
            &format!("kube-proxy's web chains on {}", node.name),
            WAIT,
            || {
                let nat = node.exec(&["iptables-save", "-t", "nat"])?.stdout;
                Ok(nat.contains("\"default/web:http cluster IP\"")
                    && nat.matches("-j DNAT --to-destination").count() >= 3)
            },
        )
        .with_context(|| {
            format!(
                "{}\n{}",
                node.pod_log("kube-proxy", "kube-proxy"),
                cluster.diagnostics()
            )
        })?;
    }
    eprintln!(
        "rules on every node {:.1?} after the manifests",
        proxy_started.elapsed()
    );
    // The `kubernetes` Service routes to the API server from every node.
    for node in &nodes {
        let out =
            node.sh("curl -sk -m 3 -o /dev/null -w '%{http_code}' https://10.96.0.1/livez")?;
        ensure!(
            out.stdout.trim() == "200",
            "{}: kubernetes Service: {out:?}",
            node.name
        );
    }

    // ClusterIP and NodePort reach every endpoint from every node.
    let all: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
    for node in &nodes {
        let seen: BTreeSet<String> = answers_from(node, &cluster_ip, "/hostname", 30)?
            .into_iter()
            .collect();
        ensure!(
            seen == all,
            "{} → {cluster_ip}: answered by {seen:?}",
            node.name
        );
        let target = &ips[(nodes.iter().position(|n| n.name == node.name).unwrap_or(0) + 1) % 3];
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
    // From outside the cluster (the test process, outside clusterCIDR): a NodePort answer from
    // another node's endpoint shows node1's address as the client — masqueraded.
    let mut masqueraded = 0;
    for _ in 0..30 {
        let answer = get_from_outside(&format!("{}:30080", ips[0]), "/whoami")?;
        let (host, client) = answer.split_once(' ').context("malformed /whoami")?;
        if host != "node1" {
            ensure!(
                client == ips[0],
                "{host} saw the outside client as {client}, not node1's {}: not masqueraded",
                ips[0]
            );
            masqueraded += 1;
        }
    }
    ensure!(
        masqueraded > 0,
        "no answer from another node's endpoint in 30 tries"
    );
    // The rules as configured: traffic from outside clusterCIDR is marked on node1; node3
    // (masqueradeAll) marks all of it.
    let nat1 = node_nat(nodes[0])?;
    ensure!(
        nat1.lines().any(
            |l| l.contains(&format!("! -s {CLUSTER_CIDR}")) && l.ends_with("-j KUBE-MARK-MASQ")
        ),
        "{nat1}"
    );
    let nat3 = node_nat(node3)?;
    ensure!(
        nat3.lines()
            .any(|l| l.contains("default/web:http cluster IP") && l.ends_with("-j KUBE-MARK-MASQ"))
            && !nat3.contains(&format!("! -s {CLUSTER_CIDR}")),
        "{nat3}"
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
