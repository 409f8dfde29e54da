//! Shared set-up of the proxy and DNS tests: a three-node cluster with a pod network, kube-proxy
//! as kubeadm's proxy add-on deploys it (the `kube-proxy` ConfigMap, service account,
//! `system:node-proxier` binding and DaemonSet), and agnhost netexec workloads. Until kubestrap's
//! online init renders the add-ons, the tests apply these objects themselves. The kubectl helpers
//! (`kubectl`, `get`, `items`, `text`) serve the pods and controllers tests too, and the timed-output
//! helpers (`timed_lines`, `line_at`, `since`) the init and join benchmarks; `cluster_with_flannel` (init +
//! joins with kubestrap's default flannel) and `verify` (`kubestrap verify network -o json`) the
//! pod-network tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, ADMIN, Source, Timings};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, podnet, wait_until};
use serde_json::{Value, json};

pub const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";

pub const WAIT: Duration = Duration::from_secs(40);
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";

pub fn kubectl(node: &Node, args: &[&str]) -> Result<String> {
    Ok(node
        .kubectl(args)?
        .check(&format!("kubectl {}", args.join(" ")))?
        .stdout)
}

/// `kubectl get … -o json`, parsed.
pub fn get(node: &Node, args: &[&str]) -> Result<Value> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend(["-o", "json"]);
    let out = node
        .kubectl(&full)?
        .check(&format!("kubectl {}", full.join(" ")))?;
    Ok(serde_json::from_str(&out.stdout)?)
}

/// The `items` of a `kubectl get` list.
pub fn items(node: &Node, args: &[&str]) -> Result<Vec<Value>> {
    Ok(get(node, args)?["items"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// kubeadm's KubeProxyConfiguration for a cluster with podSubnet 10.244.0.0/16 (the fields it
/// sets); `extra` lands inside `iptables:`, the last mapping.
pub fn proxy_config(extra: &str) -> String {
    format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nbindAddress: 0.0.0.0\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\nclusterCIDR: {CLUSTER_CIDR}\nconfigSyncPeriod: 0s\nmode: \"\"\niptables:\n  minSyncPeriod: 0s\n  syncPeriod: 0s\n{extra}"
    )
}

/// A service account (created if missing) and a token for it.
pub fn service_account_token(cp: &Node, namespace: &str, name: &str) -> Result<String> {
    let _ = cp.kubectl(&["create", "serviceaccount", name, "-n", namespace])?;
    Ok(kubectl(
        cp,
        &["create", "token", name, "-n", namespace, "--duration=2h"],
    )?
    .trim()
    .to_string())
}

/// A started three-node cluster (kubestrap's control-plane files, node IPAM from 10.244.0.0/16)
/// with the test pod network on every node.
pub fn cluster_with_pod_network() -> Result<Cluster> {
    let started = std::time::Instant::now();
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(3))?;
    let cp = cluster.node("node1")?;
    let mut settings = ClusterSettings::for_node(cp);
    settings.pod_subnet = Some(CLUSTER_CIDR.into());
    scenario::three_node_cluster_with(
        &cluster,
        Source::Kubestrap,
        &settings,
        &mut Timings::default(),
        started,
    )?;
    podnet::install(&cluster)?;
    Ok(cluster)
}

/// A started three-node cluster made by kubestrap alone: `kubestrap init` on node1 with its default
/// pod network (flannel, on the testbed's flannel double) and the printed `kubestrap join` on node2
/// and node3; returns once flannel and kube-proxy are Ready on the three nodes and CoreDNS's two pods
/// are Ready. Also returns init's stdout.
pub fn cluster_with_flannel() -> Result<(Cluster, String)> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(3))?;
    let cp = cluster.node("node1")?;
    let init = init_with_config(cp)?;
    let command = scenario::printed_join_command(&init.stdout).context("the join command")?;
    for name in ["node2", "node3"] {
        let joined = scenario::run_join_command(cluster.node(name)?, &command)?;
        anyhow::ensure!(joined.ok(), "join on {name}: {joined:?}");
    }
    let ready = |ns: &str, ds: &str| -> Result<bool> {
        let d = get(cp, &["daemonset", ds, "-n", ns])?;
        Ok(d["status"]["desiredNumberScheduled"] == 3 && d["status"]["numberReady"] == 3)
    };
    wait_until(
        "flannel and kube-proxy Ready on three nodes",
        Duration::from_secs(90),
        || Ok(ready("kube-flannel", "kube-flannel-ds")? && ready("kube-system", "kube-proxy")?),
    )
    .with_context(|| cluster.diagnostics())?;
    ready_pods(cp, "kube-system", "k8s-app=kube-dns", 2).with_context(|| cluster.diagnostics())?;
    Ok((cluster, init.stdout))
}

/// kubeadm's proxy add-on: ConfigMap (config.conf, kubeconfig.conf with the service account's
/// token file), service account, `kubeadm:node-proxier` binding and the DaemonSet.
pub fn kube_proxy_addon(cp: &Node, config: &str) -> Vec<Value> {
    let settings = ClusterSettings::for_node(cp);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    server: {}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    namespace: default\n    user: default\n  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
        settings.server()
    );
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kube-proxy", "namespace": "kube-system"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "kubeadm:node-proxier"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-proxier"},
            "subjects": [{"kind": "ServiceAccount", "name": "kube-proxy", "namespace": "kube-system"}]}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}},
            "data": {"config.conf": config, "kubeconfig.conf": kubeconfig}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"k8s-app": "kube-proxy"}},
            "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}}, "updateStrategy": {"type": "RollingUpdate"},
                "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}}, "spec": {
                    "containers": [{"name": "kube-proxy", "image": format!("registry.k8s.io/kube-proxy:{}", kubestrap_testbed::DEFAULT_KUBERNETES_VERSION),
                        "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"],
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}],
                        "securityContext": {"privileged": true},
                        "volumeMounts": [{"mountPath": "/var/lib/kube-proxy", "name": "kube-proxy"},
                            {"mountPath": "/run/xtables.lock", "name": "xtables-lock"}]}],
                    "hostNetwork": true, "priorityClassName": "system-node-critical", "serviceAccountName": "kube-proxy",
                    "tolerations": [{"operator": "Exists"}],
                    "volumes": [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}}]}}}}),
    ]
}

/// An agnhost netexec DaemonSet (one pod per node, readiness on /healthz).
pub fn netexec_daemonset(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": {
            "terminationGracePeriodSeconds": 2, "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "netexec", "image": AGNHOST, "args": ["netexec", "--http-port=8080"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}}]}}}})
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Waits until `count` pods with the label are Ready; returns them.
pub fn ready_pods(cp: &Node, namespace: &str, selector: &str, count: usize) -> Result<Vec<Value>> {
    let mut found = Vec::new();
    wait_until(&format!("{count} ready pods {selector}"), WAIT, || {
        let out = kubectl(
            cp,
            &["get", "pods", "-n", namespace, "-l", selector, "-o", "json"],
        )?;
        let list: Value = serde_json::from_str(&out)?;
        let pods: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
        let done = pods.len() == count && pods.iter().all(is_ready);
        if done {
            found = pods;
        }
        Ok(done)
    })?;
    Ok(found)
}

pub fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// agnhost's `/dial` from `pod`, through the API server's pods/proxy: its responses and errors.
pub fn dial_via_proxy(
    cp: &Node,
    pod: &Value,
    host: &str,
    port: u16,
    request: &str,
    tries: u32,
) -> Result<(Vec<String>, Vec<String>)> {
    dial_protocol(cp, pod, "http", host, port, request, tries)
}

/// [`dial_via_proxy`] with the protocol (`http`, `udp`).
pub fn dial_protocol(
    cp: &Node,
    pod: &Value,
    protocol: &str,
    host: &str,
    port: u16,
    request: &str,
    tries: u32,
) -> Result<(Vec<String>, Vec<String>)> {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}:8080/proxy/dial?request={request}&protocol={protocol}&host={host}&port={port}&tries={tries}",
        text(pod, "/metadata/namespace"),
        text(pod, "/metadata/name")
    );
    let out = kubectl(cp, &["get", "--raw", &path])?;
    let answer: Value =
        serde_json::from_str(&out).with_context(|| format!("/dial answered {out:?}"))?;
    let list = |k: &str| -> Vec<String> {
        answer[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    Ok((list("responses"), list("errors")))
}

/// Applies kube-proxy's add-on and waits until every node routes the `kubernetes` Service.
pub fn start_kube_proxy(cluster: &Cluster, config: &str) -> Result<()> {
    let cp = cluster.node("node1")?;
    scenario::apply(cp, ADMIN, &kube_proxy_addon(cp, config))?;
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    wait_for_proxies(cluster, &nodes)
}

/// Waits until every node's nat table routes the `kubernetes` Service.
pub fn wait_for_proxies(cluster: &Cluster, nodes: &[&Node]) -> Result<()> {
    for node in nodes {
        wait_until(
            &format!("kube-proxy's rules on {}", node.name),
            WAIT,
            || {
                let nat = node.exec(&["iptables-save", "-t", "nat"])?.stdout;
                Ok(nat.contains("\"default/kubernetes:https cluster IP\""))
            },
        )
        .with_context(|| cluster.diagnostics())?;
    }
    Ok(())
}

/// One HTTP/1.0 GET from the test process (outside every node): the status code and the body.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(3))
        .with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("malformed response")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("malformed status line")?;
    Ok((code, body.to_string()))
}

/// kubeadm's Corefile.
pub const COREFILE: &str = ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n    loop\n    reload\n    loadbalance\n}\n";

/// The kube-dns Service's ClusterIP (kubeadm's: the tenth address of 10.96.0.0/12).
pub const DNS_IP: &str = "10.96.0.10";

/// The pod network's outgoing masquerade, as flannel's ipMasq or calico's natOutgoing add it:
/// pods reach addresses outside the cluster (CoreDNS its upstream) from their node's address.
pub fn pod_network_masquerade(cluster: &Cluster) -> Result<()> {
    for node in &cluster.nodes {
        node.sh(&format!(
            "iptables -t nat -A POSTROUTING -s {cidr} ! -d {cidr} -m comment --comment 'test pod network masquerade' -j MASQUERADE",
            cidr = CLUSTER_CIDR
        ))?
        .check("pod network masquerade")?;
    }
    Ok(())
}

/// kubeadm's DNS add-on's RBAC, service account and the `kube-dns` Service at [`DNS_IP`] (the
/// ConfigMap and Deployment: [`coredns_addon`]).
pub fn kube_dns_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"clusterIP": DNS_IP, "selector": {"k8s-app": "kube-dns"}, "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}),
    ]
}

/// kubeadm's DNS add-on with `corefile`, under `name` (`coredns` is kubeadm's).
pub fn coredns_addon(name: &str, corefile: &str, replicas: u32) -> Vec<Value> {
    let app = if name == "coredns" {
        "kube-dns".to_string()
    } else {
        name.to_string()
    };
    vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "kube-system"}, "data": {"Corefile": corefile}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "kube-system", "labels": {"k8s-app": app}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"k8s-app": app}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"k8s-app": app}}, "spec": {
                    "priorityClassName": "system-cluster-critical", "serviceAccountName": "coredns",
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}, {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                    "containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.12.1",
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": true}],
                        "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"}, {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"}, {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 60, "timeoutSeconds": 5, "failureThreshold": 5},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}, "periodSeconds": 1}}],
                    "dnsPolicy": "Default",
                    "volumes": [{"name": "config-volume", "configMap": {"name": name, "items": [{"key": "Corefile", "path": "Corefile"}]}}]}}}}),
    ]
}

/// Runs `kubestrap <args>` on `node`; each line of its output with the wall-clock time it arrived,
/// and whether it succeeded.
pub fn timed_lines(node: &Node, args: &[&str]) -> Result<(Vec<(SystemTime, String)>, bool)> {
    let mut child = Command::new("docker")
        .args(["exec", &node.container, "kubestrap"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let lines = BufReader::new(stdout)
        .lines()
        .map_while(std::io::Result::ok)
        .map(|l| (SystemTime::now(), l))
        .collect();
    Ok((lines, child.wait()?.success()))
}

/// When the first line starting with `prefix` arrived.
pub fn line_at(lines: &[(SystemTime, String)], prefix: &str) -> Result<SystemTime> {
    lines
        .iter()
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(t, _)| *t)
        .with_context(|| format!("no line {prefix:?} in {lines:?}"))
}

/// `later - earlier`, zero when the clock says otherwise.
pub fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

/// `kubestrap verify network -o json --timeout 90s [extra…]` on `node`: exit code, parsed report,
/// stderr.
pub fn verify(node: &Node, extra: &[&str]) -> Result<(i32, Value, String)> {
    let mut args = vec!["verify", "network", "-o", "json", "--timeout", "90s"];
    args.extend_from_slice(extra);
    let out = node.kubestrap(&args)?;
    let report: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("verify's stdout is not JSON: {out:?}"))?;
    Ok((out.code, report, out.stderr))
}

/// `kubestrap init --config` on `cp` with the testbed's kubestrap configuration for that node
/// (written to /root/kubestrap.yaml), checked for success.
pub fn init_with_config(cp: &Node) -> Result<kubestrap_testbed::driver::docker::Finished> {
    let settings = ClusterSettings::for_node(cp);
    cp.write_file(
        "/root/kubestrap.yaml",
        scenario::kubestrap_config(&settings)?.as_bytes(),
        0o600,
    )?;
    cp.kubestrap(&["init", "--config=/root/kubestrap.yaml"])?
        .check(&format!("kubestrap init on {}", cp.name))
}
