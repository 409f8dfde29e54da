//! The CoreDNS double on a three-node testbed cluster with the kube-proxy double on every node:
//! the `kube-dns` Service's ClusterIP answers from every node; a Service created after CoreDNS
//! started resolves (A, SRV, PTR) and answers NXDOMAIN once deleted; the `kubernetes` Service
//! resolves; an external name is forwarded to the upstream in the pod's resolv.conf; a Corefile
//! with an unknown plugin keeps the CoreDNS pod from becoming Ready; and `pods/proxy` reaches a
//! pod's HTTP port through the API server, with the real server's authorization.
//!
//! CoreDNS runs as kubeadm's DNS add-on deploys it (ConfigMap, `system:coredns` RBAC, service
//! account, Deployment of two pods on the pod network, the `kube-dns` Service at 10.96.0.10), and
//! kube-proxy as kubeadm's DaemonSet; until kubestrap's online init renders them, the test applies
//! these objects itself. The test process asks CoreDNS through a NodePort Service of its own
//! (`kube-dns-test`, UDP 30053) — kube-proxy's UDP NodePort path.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use kubestrap_testbed::driver::scenario::{self, ADMIN};
use kubestrap_testbed::driver::{Node, wait_until};
use serde_json::Value;
use serde_json::json;
use support::{COREFILE, DNS_IP, WAIT, coredns_addon, kubectl, text};

/// One query to `server` from the test process; the answer message.
fn query(server: &str, name: &str, rtype: RecordType) -> Result<Message> {
    let mut m = Message::new();
    m.set_id(0x2a2a);
    m.set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name)?, rtype));
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(3)))?;
    socket.send_to(&m.to_vec()?, server.parse::<SocketAddr>()?)?;
    let mut buf = vec![0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .with_context(|| format!("{name} {rtype} from {server}"))?;
    Ok(Message::from_vec(&buf[..n])?)
}

fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// The addresses a node's glibc resolver gets for `name` with the `kube-dns` ClusterIP as its only
/// nameserver (a private mount namespace with its own resolv.conf): the real client path, through
/// kube-proxy's DNAT.
fn resolve_on(node: &Node, name: &str) -> Result<Option<String>> {
    let out = node.sh(&format!(
        "printf 'nameserver {DNS_IP}\\noptions ndots:5 timeout:2 attempts:2\\n' > /tmp/resolv.kube-dns; \
         unshare -m sh -c 'mount --bind /tmp/resolv.kube-dns /etc/resolv.conf && getent ahostsv4 {name}'"
    ))?;
    match out.code {
        0 => Ok(out.stdout.split_whitespace().next().map(str::to_string)),
        2 => Ok(None),
        _ => bail!("getent on {}: {out:?}", node.name),
    }
}

#[test]
fn coredns_serves_the_cluster_domain_forwards_and_pods_proxy() -> Result<()> {
    let started = Instant::now();
    let cluster = support::cluster_with_pod_network()?;
    let cp = cluster.node("node1")?;
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    support::start_kube_proxy(&cluster, &support::proxy_config(""))?;
    support::pod_network_masquerade(&cluster)?;

    // kubeadm's DNS add-on: RBAC, service account, ConfigMap, Deployment and the kube-dns Service.
    let mut objects = support::kube_dns_objects();
    objects.extend([
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns-test", "namespace": "kube-system"},
            "spec": {"type": "NodePort", "selector": {"k8s-app": "kube-dns"}, "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53, "nodePort": 30053},
                {"name": "ready", "port": 8181, "protocol": "TCP", "targetPort": 8181, "nodePort": 30181},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153, "nodePort": 30153}]}}),
        support::netexec_daemonset("client"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "client"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    ]);
    objects.extend(coredns_addon("coredns", COREFILE, 2));
    let dns_started = Instant::now();
    scenario::apply(cp, ADMIN, &objects)?;
    support::ready_pods(cp, "kube-system", "k8s-app=kube-dns", 2)?;
    let ready_at = dns_started.elapsed();
    let dns = format!("{}:30053", nodes[0].ip);
    wait_until("CoreDNS answers through its NodePort", WAIT, || {
        Ok(query(&dns, "kubernetes.default.svc.cluster.local.", RecordType::A).is_ok())
    })?;

    // The kubernetes Service, from the test process and through the kube-dns ClusterIP on every node.
    let m = query(&dns, "kubernetes.default.svc.cluster.local.", RecordType::A)?;
    ensure!(
        addresses(&m) == ["10.96.0.1".parse::<IpAddr>()?] && m.authoritative(),
        "{m:?}"
    );
    // Each node's kube-proxy programs the kube-dns endpoints on its own sync, as the real one
    // does: a node may lag the NodePort answer above by a sync period.
    for node in &nodes {
        wait_until(
            &format!(
                "{} to resolve the kubernetes Service through {DNS_IP}",
                node.name
            ),
            WAIT,
            || {
                Ok(
                    resolve_on(node, "kubernetes.default.svc.cluster.local")?.as_deref()
                        == Some("10.96.0.1"),
                )
            },
        )?;
    }
    let ptr = query(&dns, "1.0.96.10.in-addr.arpa.", RecordType::PTR)?;
    ensure!(
        matches!(ptr.answers().first().map(|r| r.data()), Some(RData::PTR(p)) if p.0.to_ascii() == "kubernetes.default.svc.cluster.local."),
        "{ptr:?}"
    );

    // A Service made after CoreDNS started resolves once its watch sees it, and is NXDOMAIN
    // once deleted.
    let late = "late.default.svc.cluster.local.";
    ensure!(query(&dns, late, RecordType::A)?.response_code() == ResponseCode::NXDomain);
    scenario::apply(
        cp,
        ADMIN,
        &[
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "late", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
        ],
    )?;
    let late_ip: IpAddr = kubectl(
        cp,
        &["get", "service", "late", "-o", "jsonpath={.spec.clusterIP}"],
    )?
    .parse()?;
    let created = Instant::now();
    wait_until("the new Service resolves", WAIT, || {
        Ok(addresses(&query(&dns, late, RecordType::A)?) == [late_ip])
    })?;
    eprintln!(
        "a new Service resolved {:.1?} after its creation",
        created.elapsed()
    );
    wait_until(
        &format!("node3 to resolve the new Service through {DNS_IP}"),
        WAIT,
        || {
            Ok(
                resolve_on(nodes[2], "late.default.svc.cluster.local")?.as_deref()
                    == Some(late_ip.to_string().as_str()),
            )
        },
    )?;
    let srv = query(
        &dns,
        "_http._tcp.late.default.svc.cluster.local.",
        RecordType::SRV,
    )?;
    ensure!(
        matches!(srv.answers().first().map(|r| r.data()), Some(RData::SRV(s)) if s.port() == 80 && s.target().to_ascii() == late),
        "{srv:?}"
    );
    kubectl(cp, &["delete", "service", "late"])?;
    wait_until("the deleted Service is NXDOMAIN", WAIT, || {
        Ok(query(&dns, late, RecordType::A)?.response_code() == ResponseCode::NXDomain)
    })?;
    // Both CoreDNS replicas watch on their own; either may answer through the ClusterIP.
    wait_until(
        "node1 to get NXDOMAIN for the deleted Service",
        WAIT,
        || Ok(resolve_on(nodes[0], "late.default.svc.cluster.local")?.is_none()),
    )?;

    // A name outside the cluster domain goes to the upstream in the pod's resolv.conf (dnsPolicy
    // Default: the node's, the cluster's test DNS server): a node container's name, which only
    // Docker's resolver behind it knows.
    let external = format!("{}.", nodes[0].container);
    let m = query(&dns, &external, RecordType::A)?;
    ensure!(
        addresses(&m) == [nodes[0].ip.parse::<IpAddr>()?] && !m.authoritative(),
        "{external}: {m:?}"
    );
    let (code, metrics) = support::http_get(&format!("{}:30153", nodes[0].ip), "/metrics")?;
    ensure!(
        code == 200 && metrics.contains("coredns_dns_requests_total"),
        "{metrics}"
    );

    // Names in pods, and /dial through pods/proxy: the client on node1 reaches the web Service by
    // its name (its resolv.conf names the kubelet's clusterDNS) and a pod on node3 by its IP.
    let clients = support::ready_pods(cp, "default", "app=client", 3)?;
    let on = |node: &str| {
        clients
            .iter()
            .find(|p| text(p, "/spec/nodeName") == node)
            .cloned()
            .unwrap_or_default()
    };
    let (client1, server3) = (on("node1"), on("node3"));
    let (responses, errors) = support::dial_via_proxy(
        cp,
        &client1,
        "web.default.svc.cluster.local",
        80,
        "hostname",
        20,
    )?;
    let seen: std::collections::BTreeSet<String> = responses.into_iter().collect();
    ensure!(
        seen.len() == 3,
        "web by name from node1's client: {seen:?}, errors {errors:?}"
    );
    let (responses, errors) = support::dial_via_proxy(
        cp,
        &client1,
        text(&server3, "/status/podIP"),
        8080,
        "hostname",
        3,
    )?;
    ensure!(
        responses.len() == 3
            && responses
                .iter()
                .all(|r| r == text(&server3, "/metadata/name")),
        "node1 → node3 pod: {responses:?} {errors:?}"
    );

    // A Corefile with a plugin CoreDNS does not know: its pod never becomes Ready.
    let bad = COREFILE.replace("    loop\n", "    loop\n    frobnicate on\n");
    scenario::apply(cp, ADMIN, &coredns_addon("coredns-bad", &bad, 1))?;
    let mut bad_pod = String::new();
    wait_until("the bad Corefile's pod restarting", WAIT, || {
        let list: Value = serde_json::from_str(&kubectl(
            cp,
            &[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=coredns-bad",
                "-o",
                "json",
            ],
        )?)?;
        let pod = &list["items"][0];
        bad_pod = text(pod, "/metadata/name").to_string();
        let status = &pod["status"]["containerStatuses"][0];
        Ok(status["restartCount"].as_u64().unwrap_or(0) >= 1 && status["ready"] == false)
    })?;
    let log = kubectl(cp, &["logs", "-n", "kube-system", &bad_pod]).unwrap_or_default();
    let log = if log.is_empty() {
        nodes
            .iter()
            .map(|n| {
                n.sh("cat /var/log/pods/kube-system_coredns-bad-*/coredns/*.log 2>/dev/null")
                    .map(|o| o.stdout)
                    .unwrap_or_default()
            })
            .collect::<String>()
    } else {
        log
    };
    ensure!(log.contains("Unknown directive 'frobnicate'"), "{log}");

    // pods/proxy needs the pods/proxy permission: the coredns service account (which may list
    // pods) is refused with the real Forbidden message.
    let token = support::service_account_token(cp, "kube-system", "coredns")?;
    let server = format!("--server=https://{}:6443", cp.ip);
    let path = format!(
        "/api/v1/namespaces/default/pods/{}:8080/proxy/hostname",
        text(&server3, "/metadata/name")
    );
    let denied = cp.exec(&[
        "kubectl",
        "--token",
        &token,
        &server,
        "--certificate-authority=/etc/kubernetes/pki/ca.crt",
        "get",
        "--raw",
        &path,
    ])?;
    ensure!(
        denied.code != 0
            && denied.stderr.contains(
                "cannot get resource \"pods/proxy\" in API group \"\" in the namespace \"default\""
            ),
        "{denied:?}"
    );
    cluster.teardown()?;
    eprintln!(
        "proxy_dns: CoreDNS ready {ready_at:.1?} after its objects, all {:.1?}",
        started.elapsed()
    );
    Ok(())
}
