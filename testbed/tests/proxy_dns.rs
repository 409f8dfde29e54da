//! The CoreDNS double on a three-node testbed cluster with the kube-proxy double on every node:
//! the `kube-dns` Service's ClusterIP answers from every node; a Service created after CoreDNS
//! started resolves (A, SRV, PTR) and answers NXDOMAIN once deleted; the `kubernetes` Service
//! resolves; an external name is forwarded to the upstream in the pod's resolv.conf; a Corefile
//! with an unknown plugin keeps the CoreDNS pod from becoming Ready; and `pods/proxy` reaches a
//! pod's HTTP port through the API server, with the real server's authorization.
//!
//! Until the kubelet double runs API pods, CoreDNS runs as a host-network static pod with the
//! files kubeadm's Deployment mounts (the Corefile from its ConfigMap, the `coredns` service
//! account's credentials bound to kubeadm's `system:coredns` ClusterRole), and the `kube-dns`
//! Service's endpoints are a test-written EndpointSlice.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use kubestrap_testbed::driver::scenario::{self, ADMIN, Source, Timings};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::json;
use support::{WAIT, http_get, kubectl};

/// kubeadm's Corefile.
const COREFILE: &str = ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n    loop\n    reload\n    loadbalance\n}\n";

const DNS_IP: &str = "10.96.0.10";

fn coredns_manifest(name: &str, dir: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  hostNetwork: true
  priorityClassName: system-cluster-critical
  containers:
  - name: coredns
    image: registry.k8s.io/coredns/coredns:v1.12.1
    command: [/usr/local/bin/coredns]
    args: [-conf, /etc/coredns/Corefile]
    env:
    - name: KUBERNETES_SERVICE_HOST
      value: 10.96.0.1
    - name: KUBERNETES_SERVICE_PORT
      value: "443"
    livenessProbe:
      httpGet:
        path: /health
        port: 8080
      initialDelaySeconds: 60
      failureThreshold: 5
    readinessProbe:
      httpGet:
        path: /ready
        port: 8181
      periodSeconds: 1
    volumeMounts:
    - name: config-volume
      mountPath: /etc/coredns
      readOnly: true
    - name: sa
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
  volumes:
  - name: config-volume
    hostPath:
      path: {dir}
      type: Directory
  - name: sa
    hostPath:
      path: {dir}/sa
      type: Directory
"#
    )
}

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
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(3))?;
    let mut timings = Timings::default();
    scenario::three_node_cluster(&cluster, Source::Kubestrap, &mut timings, started)?;
    let cp = cluster.node("node1")?;
    let nodes: Vec<&Node> = ["node1", "node2", "node3"]
        .iter()
        .map(|n| cluster.node(n))
        .collect::<Result<_>>()?;
    let (node2, node3) = (nodes[1], nodes[2]);
    support::start_kube_proxy(cp, &nodes, |_| "")?;

    // What kubeadm's DNS add-on creates: the ClusterRole, its binding, the service account, and
    // the kube-dns Service at the tenth service address.
    scenario::apply(
        cp,
        ADMIN,
        &[
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
                "rules": [
                    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
                    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "system:coredns"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
                "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
                "spec": {"clusterIP": DNS_IP, "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kube-dns-1", "namespace": "kube-system", "labels": {"kubernetes.io/service-name": "kube-dns"}},
                "addressType": "IPv4",
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}, {"name": "metrics", "port": 9153, "protocol": "TCP"}],
                "endpoints": [{"addresses": [node2.ip], "conditions": {"ready": true}, "nodeName": "node2"}]}),
        ],
    )?;
    let token = support::service_account_token(cp, "kube-system", "coredns")?;
    let ca = cp.read_string("/etc/kubernetes/pki/ca.crt")?;
    for (node, name, corefile) in [
        (node2, "coredns", COREFILE.to_string()),
        (
            node3,
            "coredns-bad",
            COREFILE.replace("    loop\n", "    loop\n    frobnicate on\n"),
        ),
    ] {
        let dir = "/etc/testbed-coredns";
        node.write_file(&format!("{dir}/Corefile"), corefile.as_bytes(), 0o644)?;
        node.write_file(&format!("{dir}/sa/token"), token.as_bytes(), 0o600)?;
        node.write_file(&format!("{dir}/sa/ca.crt"), ca.as_bytes(), 0o644)?;
        node.write_file(&format!("{dir}/sa/namespace"), b"kube-system", 0o644)?;
        node.write_file(
            &format!("/etc/kubernetes/manifests/{name}.yaml"),
            coredns_manifest(name, dir).as_bytes(),
            0o600,
        )?;
    }
    support::wait_for_proxies(&cluster, &nodes)?;
    let dns = format!("{}:53", node2.ip);
    wait_until("CoreDNS ready", WAIT, || {
        Ok(http_get(&format!("{}:8181", node2.ip), "/ready").is_ok_and(|(code, _)| code == 200))
    })
    .with_context(|| {
        format!(
            "{}\n{}",
            node2.pod_log("coredns", "coredns"),
            cluster.diagnostics()
        )
    })?;
    let ready_at = started.elapsed();
    let (code, body) = http_get(&format!("{}:8080", node2.ip), "/health")?;
    ensure!(code == 200 && body == "OK", "health: {code} {body}");

    // The kubernetes Service, from the test process and through the kube-dns ClusterIP on every node.
    let m = query(&dns, "kubernetes.default.svc.cluster.local.", RecordType::A)?;
    ensure!(
        addresses(&m) == ["10.96.0.1".parse::<IpAddr>()?] && m.authoritative(),
        "{m:?}"
    );
    for node in &nodes {
        ensure!(
            resolve_on(node, "kubernetes.default.svc.cluster.local")?.as_deref()
                == Some("10.96.0.1"),
            "{} could not resolve the kubernetes Service through {DNS_IP}",
            node.name
        );
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
    ensure!(
        resolve_on(node3, "late.default.svc.cluster.local")?.as_deref()
            == Some(late_ip.to_string().as_str()),
        "node3 through {DNS_IP}"
    );
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
    ensure!(resolve_on(nodes[0], "late.default.svc.cluster.local")?.is_none());

    // A name outside the cluster domain goes to the upstream in the pod's resolv.conf: the
    // container names Docker's resolver on the cluster's network knows.
    let external = format!("{}.", nodes[0].container);
    let m = query(&dns, &external, RecordType::A)?;
    ensure!(
        addresses(&m) == [nodes[0].ip.parse::<IpAddr>()?] && !m.authoritative(),
        "{external}: {m:?}"
    );
    let (code, metrics) = http_get(&format!("{}:9153", node2.ip), "/metrics").or_else(
        |_| -> Result<(u16, String)> {
            let out = node2.exec(&["curl", "-s", "http://127.0.0.1:9153/metrics"])?;
            Ok((200, out.stdout))
        },
    )?;
    ensure!(
        code == 200 && metrics.contains("coredns_dns_requests_total"),
        "{metrics}"
    );

    // A Corefile with a plugin CoreDNS does not know: the pod never becomes Ready.
    wait_until("the bad Corefile's pod restarting", WAIT, || {
        let pod: serde_json::Value = serde_json::from_str(&kubectl(
            cp,
            &[
                "get",
                "pod",
                "-n",
                "kube-system",
                "coredns-bad-node3",
                "-o",
                "json",
            ],
        )?)?;
        let status = &pod["status"]["containerStatuses"][0];
        Ok(status["restartCount"].as_u64().unwrap_or(0) >= 1 && status["ready"] == false)
    })?;
    ensure!(
        node3
            .pod_log("coredns-bad", "coredns")
            .contains("Unknown directive 'frobnicate'"),
        "{}",
        node3.pod_log("coredns-bad", "coredns")
    );
    ensure!(http_get(&format!("{}:8181", node3.ip), "/ready").is_err());

    // pods/proxy: admin.conf reaches the CoreDNS pod's health port through the API server; a
    // service account without the pods/proxy permission is refused as by the real server.
    let proxied = kubectl(
        cp,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/kube-system/pods/coredns-node2:8080/proxy/health",
        ],
    )?;
    ensure!(proxied == "OK", "{proxied}");
    let server = format!("--server=https://{}:6443", cp.ip);
    let denied = cp.exec(&[
        "kubectl",
        "--token",
        &token,
        &server,
        "--certificate-authority=/etc/kubernetes/pki/ca.crt",
        "get",
        "--raw",
        "/api/v1/namespaces/kube-system/pods/coredns-node2:8080/proxy/health",
    ])?;
    ensure!(
        denied.code != 0
            && denied.stderr.contains("cannot get resource \"pods/proxy\" in API group \"\" in the namespace \"kube-system\""),
        "{denied:?}"
    );
    cluster.teardown()?;
    eprintln!(
        "proxy_dns: CoreDNS ready at {ready_at:.1?}, all {:.1?}",
        started.elapsed()
    );
    Ok(())
}
