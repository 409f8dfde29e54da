//! API pods on real pod networking, on one three-node testbed cluster (kubestrap's control-plane
//! files, node IPAM from a /16): a test-written CNI config per node (bridge + host-local from the
//! node's podCIDR) and host-gw routes; a DaemonSet and a Deployment of agnhost netexec run with
//! readiness probes; pods get IPs from their node's podCIDR in namespaces of their own; real TCP
//! exchanges pod → pod on one node and across nodes, the server seeing the client's pod IP;
//! scaling moves the EndpointSlice; deleting a node's route breaks exactly that node pair; a
//! node restart brings its pods back with networking; a bad image shows ErrImagePull; a pod that
//! tolerates nothing stays Pending with the scheduler's reason; pod volumes, env and DNS as the
//! kubelet sets them up; teardown leaves nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, Source, Timings};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, podnet, wait_until};
use serde_json::{Value, json};

mod support;
use support::{get, items, kubectl, text};

const WAIT: Duration = Duration::from_secs(60);
const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let mut found = None;
    wait_until(what, WAIT, || {
        found = check()?;
        Ok(found.is_some())
    })?;
    found.context("unreachable: waited value missing")
}

/// A netexec server with a readiness probe on /healthz.
fn netexec_template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
        "name": "netexec", "image": AGNHOST, "command": ["agnhost", "netexec", "--http-port=8080"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }]}})
}

fn workloads(replicas: i64) -> Vec<Value> {
    vec![
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "client", "namespace": "default"},
               "spec": {"selector": {"matchLabels": {"app": "client"}}, "template": netexec_template(json!({"app": "client"}))}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": netexec_template(json!({"app": "web"}))}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    ]
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Waits until `count` pods with the label are Ready and bound; returns them.
fn ready_pods(cp: &Node, selector: &str, count: usize) -> Result<Vec<Value>> {
    wait_for(&format!("{count} ready pods {selector}"), || {
        let pods: Vec<Value> = items(cp, &["pods", "-l", selector])?
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        Ok((pods.len() == count && pods.iter().all(ready)).then_some(pods))
    })
}

/// The pod of `pods` on `node`.
fn on<'a>(pods: &'a [Value], node: &str) -> Result<&'a Value> {
    pods.iter()
        .find(|p| p["spec"]["nodeName"] == node)
        .with_context(|| format!("no pod on {node} among {}", pods.len()))
}

/// From `client` (on its node), netexec's /dial to `server`'s /clientip: what the server saw as
/// the connection's source address, or the dial's error.
fn dial(
    cluster: &Cluster,
    client: &Value,
    server: &Value,
) -> Result<std::result::Result<String, String>> {
    let node = cluster.node(text(client, "/spec/nodeName"))?;
    let url = format!(
        "http://{}:8080/dial?request=clientip&protocol=http&host={}&port=8080&tries=1",
        text(client, "/status/podIP"),
        text(server, "/status/podIP")
    );
    let out = node.exec(&["curl", "-sS", "--max-time", "8", &url])?;
    if !out.ok() {
        bail!("curl {url} on {}: {}", node.name, out.stderr);
    }
    let answer: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("dial answer {:?}", out.stdout))?;
    Ok(match answer["responses"][0].as_str() {
        Some(seen) => Ok(seen.to_string()),
        None => Err(answer["errors"].to_string()),
    })
}

/// The dial works and the server saw the client's pod IP.
fn expect_reaches(cluster: &Cluster, client: &Value, server: &Value) -> Result<()> {
    let seen = dial(cluster, client, server)?.map_err(|e| {
        anyhow::anyhow!(
            "{} → {} failed: {e}",
            text(client, "/metadata/name"),
            text(server, "/metadata/name")
        )
    })?;
    let ip = text(client, "/status/podIP");
    ensure!(
        seen.rsplit_once(':').map(|(host, _)| host) == Some(ip),
        "the server saw {seen}, not the client's pod IP {ip}"
    );
    Ok(())
}

#[test]
fn pods_on_a_real_pod_network() -> Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(3))?;
    let cp = cluster.node("node1")?;
    let mut settings = ClusterSettings::for_node(cp);
    settings.pod_subnet = Some("10.244.0.0/16".into());
    scenario::three_node_cluster_with(
        &cluster,
        Source::Kubestrap,
        &settings,
        &mut Timings::default(),
        started,
    )?;
    let cidrs = podnet::install(&cluster)?;
    let mut steps: Vec<(&str, Duration)> = vec![("cluster", started.elapsed())];
    let mut step = |name: &'static str, f: &dyn Fn() -> Result<()>| -> Result<()> {
        let t = Instant::now();
        f().with_context(|| format!("step {name:?}\n{}", cluster.diagnostics()))?;
        steps.push((name, t.elapsed()));
        Ok(())
    };
    step("node set-up", &|| node_setup(&cluster))?;
    step("workloads", &|| run_workloads(&cluster, &cidrs))?;
    step("traffic", &|| traffic(&cluster))?;
    step("scaling", &|| scaling(&cluster))?;
    step("route", &|| route_loss(&cluster, &cidrs))?;
    step("pod inputs", &|| pod_inputs(&cluster))?;
    step("bad image", &|| bad_image(&cluster))?;
    step("taints", &|| untolerated(&cluster))?;
    step("node restart", &|| node_restart(&cluster, &cidrs))?;
    let torn = cluster.teardown()?;
    eprintln!("pods: {steps:?}, teardown {:?}", torn.duration);
    Ok(())
}

/// What the node image gives each node: writable /proc/sys/net, the unreachable pod range, the
/// REJECT of the service range after nat, the private upstream DNS server, the CNI plugins.
fn node_setup(cluster: &Cluster) -> Result<()> {
    let node = cluster.node("node2")?;
    let check = |script: &str| -> Result<String> { Ok(node.sh(script)?.check(script)?.stdout) };
    check("echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet")?;
    ensure!(
        !node.sh("echo 1 > /proc/sys/kernel/panic")?.ok(),
        "kernel.* stays read-only"
    );
    let routes = check("ip route show type unreachable")?;
    ensure!(routes.contains("10.244.0.0/16"), "{routes}");
    let rules = check("iptables -S TESTBED-UNHANDLED")?;
    ensure!(
        rules.contains("-d 10.96.0.0/12") && rules.contains("REJECT"),
        "{rules}"
    );
    let resolv = check("cat /etc/resolv.conf")?;
    let dns = cluster.subnet.trim_end_matches("0/24").to_string() + "53";
    ensure!(resolv.contains(&format!("nameserver {dns}")), "{resolv}");
    let node1 = cluster.node("node1")?;
    let answer = check(&format!("getent hosts {} || true", node1.container))?;
    ensure!(
        answer.contains(&node1.ip),
        "node1's container name resolves through the cluster's DNS server: {answer:?}"
    );
    ensure!(
        check("readlink /opt/cni/bin/bridge")?.trim() == "/usr/lib/cni/bridge",
        "the CNI plugins are linked into /opt/cni/bin"
    );
    // A ClusterIP no datapath handles fails at once (rejected), instead of timing out.
    let t = Instant::now();
    let out = node.exec(&["curl", "-sS", "--max-time", "5", "http://10.96.0.99/"])?;
    ensure!(
        !out.ok()
            && out.stderr.contains("Couldn't connect")
            && t.elapsed() < Duration::from_secs(3),
        "{}",
        out.stderr
    );
    Ok(())
}

fn run_workloads(cluster: &Cluster, cidrs: &BTreeMap<String, Vec<String>>) -> Result<()> {
    let cp = cluster.node("node1")?;
    scenario::apply(cp, scenario::ADMIN, &workloads(3))?;
    let clients = ready_pods(cp, "app=client", 3)?;
    let webs = ready_pods(cp, "app=web", 3)?;
    for p in clients.iter().chain(&webs) {
        let node = text(p, "/spec/nodeName");
        let ip: std::net::IpAddr = text(p, "/status/podIP").parse()?;
        let cidr: ipnet::IpNet = cidrs[node][0].parse()?;
        ensure!(cidr.contains(&ip), "{ip} is in {node}'s {cidr}");
        ensure!(text(p, "/status/hostIP") == cluster.node(node)?.ip, "{p}");
    }
    // Each server runs in a network namespace of its own.
    for node in &cluster.nodes {
        let out = node
            .sh("readlink /proc/1/ns/net; for p in $(pgrep -x agnhost); do readlink /proc/$p/ns/net; done")?
            .check("namespaces")?
            .stdout;
        let mut lines = out.lines();
        let host = lines.next().unwrap_or_default().to_string();
        let pods: Vec<&str> = lines.collect();
        ensure!(
            !pods.is_empty() && pods.iter().all(|ns| *ns != host),
            "{}: node {host}, pods {pods:?}",
            node.name
        );
    }
    let ds = get(cp, &["daemonset", "client"])?;
    ensure!(ds["status"]["numberReady"] == 3, "{}", ds["status"]);
    wait_for("the deployment available", || {
        let d = get(cp, &["deployment", "web"])?;
        Ok((d["status"]["availableReplicas"] == 3).then_some(()))
    })
}

fn traffic(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    let clients = ready_pods(cp, "app=client", 3)?;
    let webs = ready_pods(cp, "app=web", 3)?;
    for client in &clients {
        for server in &webs {
            expect_reaches(cluster, client, server)?;
        }
    }
    Ok(())
}

fn endpoints(cp: &Node) -> Result<Vec<String>> {
    let slices = items(
        cp,
        &["endpointslices", "-l", "kubernetes.io/service-name=web"],
    )?;
    let mut ips: Vec<String> = slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    ips.sort();
    Ok(ips)
}

fn scaling(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    for replicas in [5usize, 2] {
        kubectl(
            cp,
            &["scale", "deployment/web", &format!("--replicas={replicas}")],
        )?;
        let pods = ready_pods(cp, "app=web", replicas)?;
        let mut want: Vec<String> = pods
            .iter()
            .map(|p| text(p, "/status/podIP").to_string())
            .collect();
        want.sort();
        wait_for(&format!("{replicas} ready endpoints"), || {
            Ok((endpoints(cp)? == want).then_some(()))
        })?;
    }
    kubectl(cp, &["scale", "deployment/web", "--replicas=3"])?;
    ready_pods(cp, "app=web", 3).map(|_| ())
}

/// node1 loses its route to node2's pods: both directions of node1–node2 fail (the reply has no
/// way back), every other pair works.
fn route_loss(cluster: &Cluster, cidrs: &BTreeMap<String, Vec<String>>) -> Result<()> {
    let cp = cluster.node("node1")?;
    let clients = ready_pods(cp, "app=client", 3)?;
    let n2 = &cidrs["node2"][0];
    cp.exec(&["ip", "route", "del", n2])?
        .check("delete the route")?;
    let result = (|| -> Result<()> {
        for a in ["node1", "node2", "node3"] {
            for b in ["node1", "node2", "node3"] {
                if a == b {
                    continue;
                }
                let broken = [a, b] == ["node1", "node2"] || [a, b] == ["node2", "node1"];
                let outcome = dial(cluster, on(&clients, a)?, on(&clients, b)?)?;
                ensure!(
                    outcome.is_err() == broken,
                    "{a} → {b}: {outcome:?} (broken expected: {broken})"
                );
            }
        }
        Ok(())
    })();
    podnet::add_routes(cluster, cidrs, cp)?;
    result?;
    expect_reaches(cluster, on(&clients, "node1")?, on(&clients, "node2")?)
}

/// Volumes (configMap, secret, the service-account token and CA, downward API, emptyDir shared
/// with an init container), env from fieldRefs and key refs, resolv.conf and hosts as the kubelet
/// writes them, an exec readiness probe.
fn pod_inputs(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "inputs", "namespace": "default", "labels": {"tier": "probe"}},
    "spec": {"nodeName": "node3", "restartPolicy": "Always",
        "initContainers": [{"name": "seed", "image": "busybox:1.36", "command": ["sh", "-c", "echo seeded > /data/seed"],
                            "volumeMounts": [{"name": "work", "mountPath": "/data"}]}],
        "containers": [{"name": "main", "image": "busybox:1.36",
            "command": ["sh", "-c", "env > /data/env; cat /etc/resolv.conf > /data/resolv; cat /etc/hosts > /data/hosts; hostname > /data/hostname; touch /data/ready; exec sleep 3600"],
            "env": [
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "GREETING", "value": "hello $(NODE)"},
            ],
            "readinessProbe": {"exec": {"command": ["cat", "/data/ready"]}, "periodSeconds": 1},
            "volumeMounts": [
                {"name": "work", "mountPath": "/data"},
                {"name": "settings", "mountPath": "/etc/settings"},
                {"name": "creds", "mountPath": "/etc/creds"},
                {"name": "info", "mountPath": "/etc/info"},
            ]}],
        "volumes": [
            {"name": "work", "emptyDir": {}},
            {"name": "settings", "configMap": {"name": "settings"}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 256}},
            {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        ]}});
    scenario::apply(
        cp,
        scenario::ADMIN,
        &[
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"}, "data": {"color": "blue"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "default"}, "stringData": {"password": "s3cret"}}),
            pod,
        ],
    )?;
    let p = wait_for("inputs ready", || {
        let p = get(cp, &["pod", "inputs"])?;
        Ok(ready(&p).then_some(p))
    })?;
    ensure!(
        p["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed",
        "{}",
        p["status"]
    );
    let node = cluster.node("node3")?;
    let uid = text(&p, "/metadata/uid");
    let volumes = format!("/var/lib/kubelet/pods/{uid}/volumes");
    let read = |path: &str| node.read_string(path);
    let work = format!("{volumes}/kubernetes.io~empty-dir/work");
    ensure!(
        read(&format!("{work}/seed"))?.trim() == "seeded",
        "the init container ran first"
    );
    let env = read(&format!("{work}/env"))?;
    let ip = text(&p, "/status/podIP");
    for want in [
        format!("POD_IP={ip}"),
        "NODE=node3".into(),
        "COLOR=blue".into(),
        "PASSWORD=s3cret".into(),
        "GREETING=hello node3".into(),
    ] {
        ensure!(env.lines().any(|l| l == want), "{want} in {env}");
    }
    let resolv = read(&format!("{work}/resolv"))?;
    ensure!(
        resolv.contains("nameserver 10.96.0.10")
            && resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv.contains("options ndots:5"),
        "ClusterFirst: {resolv}"
    );
    let hosts = read(&format!("{work}/hosts"))?;
    ensure!(hosts.contains(&format!("{ip}\tinputs")), "{hosts}");
    ensure!(
        read(&format!("{work}/hostname"))?.trim() == "inputs",
        "the pod's hostname"
    );
    ensure!(
        read(&format!("{volumes}/kubernetes.io~configmap/settings/color"))? == "blue",
        "configMap volume"
    );
    let secret = node
        .sh(&format!("stat -c %a {volumes}/kubernetes.io~secret/creds/password; cat {volumes}/kubernetes.io~secret/creds/password"))?
        .check("secret volume")?
        .stdout;
    ensure!(secret == "400\ns3cret", "{secret:?}");
    ensure!(
        read(&format!("{volumes}/kubernetes.io~downward-api/info/labels"))? == "tier=\"probe\"",
        "downwardAPI volume"
    );
    // The ServiceAccount admission's projected volume: a bound token the API server accepts.
    let projected = p["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|v| {
            v["name"]
                .as_str()
                .filter(|n| n.starts_with("kube-api-access-"))
        })
        .context("the kube-api-access volume")?
        .to_string();
    let sa = format!("{volumes}/kubernetes.io~projected/{projected}");
    ensure!(
        read(&format!("{sa}/namespace"))? == "default",
        "namespace file"
    );
    ensure!(
        read(&format!("{sa}/ca.crt"))? == cp.read_string("/etc/kubernetes/pki/ca.crt")?,
        "kube-root-ca.crt"
    );
    let token = read(&format!("{sa}/token"))?;
    let review = node
        .exec(&[
            "curl",
            "-sS",
            "--cacert",
            &format!("{sa}/ca.crt"),
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!(
                "https://{}:6443/api/v1/namespaces/default/pods/inputs",
                cp.ip
            ),
        ])?
        .check("a request with the pod's token")?
        .stdout;
    ensure!(
        review.contains("forbidden") && review.contains("system:serviceaccount:default:default"),
        "the API server authenticates the token as the pod's account: {review}"
    );
    // Graceful deletion: the kubelet stops the containers, then deletes the pod (kubectl waits for
    // that) and removes the pod's directory.
    kubectl(
        cp,
        &["delete", "pod", "inputs", "--wait=true", "--timeout=30s"],
    )?;
    wait_for("the pod's containers and directory gone", || {
        let left = node.exec(&["pgrep", "-x", "sleep"])?.stdout;
        let dir = node.exists(&format!("/var/lib/kubelet/pods/{uid}"))?;
        Ok((left.trim().is_empty() && !dir).then_some(()))
    })
}

fn bad_image(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    scenario::apply(
        cp,
        scenario::ADMIN,
        &[
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typo", "namespace": "default"},
                 "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/agnhostt:2.53", "command": ["agnhost", "pause"]}]}}),
        ],
    )?;
    let waiting = wait_for("ErrImagePull", || {
        let p = get(cp, &["pod", "typo"])?;
        let w = p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        Ok((w["reason"] == "ErrImagePull").then_some(w))
    })?;
    ensure!(
        text(&waiting, "/message").contains("failed to pull and unpack image"),
        "{waiting}"
    );
    kubectl(cp, &["delete", "pod", "typo", "--timeout=30s"])?;
    Ok(())
}

fn untolerated(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    for node in ["node1", "node2", "node3"] {
        kubectl(
            cp,
            &[
                "taint",
                "node",
                node,
                "testbed.example/closed=yes:NoSchedule",
            ],
        )?;
    }
    scenario::apply(
        cp,
        scenario::ADMIN,
        &[
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "outsider", "namespace": "default"},
                 "spec": {"containers": [{"name": "c", "image": AGNHOST, "command": ["agnhost", "pause"]}]}}),
        ],
    )?;
    let condition = wait_for("outsider unschedulable", || {
        let p = get(cp, &["pod", "outsider"])?;
        Ok(p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
            .cloned())
    })?;
    ensure!(
        condition["reason"] == "Unschedulable"
            && text(&condition, "/message").starts_with(
                "0/3 nodes are available: 3 node(s) had untolerated taint {testbed.example/closed: yes}."
            ),
        "{condition}"
    );
    for node in ["node1", "node2", "node3"] {
        kubectl(cp, &["taint", "node", node, "testbed.example/closed-"])?;
    }
    let p = wait_for("outsider running once the taints are gone", || {
        let p = get(cp, &["pod", "outsider"])?;
        Ok((p["status"]["phase"] == "Running").then_some(p))
    })?;
    ensure!(p["spec"]["nodeName"].is_string(), "{p}");
    kubectl(cp, &["delete", "pod", "outsider", "--timeout=30s"])?;
    Ok(())
}

/// node3 is powered off and on: its kubelet runs its pods again in new sandboxes, with IPs from
/// its podCIDR, and they are reachable once the test has added node3's routes again.
fn node_restart(cluster: &Cluster, cidrs: &BTreeMap<String, Vec<String>>) -> Result<()> {
    let cp = cluster.node("node1")?;
    let node3 = cluster.node("node3")?;
    let before = ready_pods(cp, "app=client", 3)?;
    let old = on(&before, "node3")?.clone();
    node3.stop()?;
    node3.start()?;
    podnet::add_routes(cluster, cidrs, node3)?;
    let routes = node3.sh("ip route show type unreachable")?.stdout;
    ensure!(
        routes.contains("10.244.0.0/16"),
        "the unreachable route is back: {routes}"
    );
    wait_for("node3's pods running again and reachable", || {
        let clients = items(cp, &["pods", "-l", "app=client"])?;
        let Ok(client3) = on(&clients, "node3") else {
            return Ok(None);
        };
        if !ready(client3)
            || client3["status"]["containerStatuses"][0]["containerID"]
                == old["status"]["containerStatuses"][0]["containerID"]
        {
            return Ok(None);
        }
        let client1 = on(&clients, "node1")?;
        Ok(
            match (
                dial(cluster, client1, client3)?,
                dial(cluster, client3, client1)?,
            ) {
                (Ok(_), Ok(_)) => Some(()),
                _ => None,
            },
        )
    })?;
    let clients = ready_pods(cp, "app=client", 3)?;
    expect_reaches(cluster, on(&clients, "node1")?, on(&clients, "node3")?)?;
    expect_reaches(cluster, on(&clients, "node3")?, on(&clients, "node2")?)
}
