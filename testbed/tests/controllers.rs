//! The controller-manager and scheduler doubles on a real three-node testbed cluster (kubestrap's
//! control-plane files, a dual-stack pod subnet): node IPAM, DaemonSets, Deployments and their
//! ReplicaSets, EndpointSlices and Endpoints, garbage collection, and the scheduler's
//! Unschedulable reason. The pods' images cannot be pulled, so the kubelet doubles report them
//! waiting in ErrImagePull (a status that then stays the same) and the test plays the kubelet where
//! a pod must become Ready: once the kubelet has reported, it writes the pod's status through the
//! status subresource. (tests/pods.rs runs pods for real.) One cluster serves every step.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, Source, Timings};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::{Value, json};

mod support;
use support::{get, items, kubectl};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until `check` gives Some, returning it (the step's error carries the diagnostics).
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let mut found = None;
    wait_until(what, WAIT, || {
        found = check()?;
        Ok(found.is_some())
    })?;
    found.context("unreachable: waited value missing")
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Plays the kubelet: Running, Ready (or not) and the given IPs, through pods/status, once the
/// node's kubelet has reported the pod waiting on its unpullable image (it reports a status only
/// when its own view changes, and that one does not).
fn set_pod_status(node: &Node, pod: &str, ips: &[String], ready: bool) -> Result<()> {
    wait_for(&format!("the kubelet's report on {pod}"), || {
        let p = get(node, &["pod", pod])?;
        let reason = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
        Ok((reason == "ErrImagePull" || p["status"]["phase"] == "Running").then_some(()))
    })?;
    let status = json!({"status": {
        "phase": "Running",
        "podIP": ips[0],
        "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
        "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": "2024-01-01T00:00:00Z"}],
    }});
    kubectl(
        node,
        &[
            "patch",
            "pod",
            pod,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
    )?;
    Ok(())
}

/// An address for a pod in its node's pod CIDRs (host part `host`), one per family.
fn pod_ips(nodes: &[Value], node_name: &str, host: u8) -> Result<Vec<String>> {
    let node = nodes
        .iter()
        .find(|n| name_of(n) == node_name)
        .with_context(|| format!("node {node_name}"))?;
    let mut ips = Vec::new();
    for cidr in node["spec"]["podCIDRs"].as_array().into_iter().flatten() {
        let net: ipnet::IpNet = cidr.as_str().unwrap_or_default().parse()?;
        let ip = match net {
            ipnet::IpNet::V4(v4) => std::net::IpAddr::from(std::net::Ipv4Addr::from(
                u32::from(v4.network()) + u32::from(host),
            )),
            ipnet::IpNet::V6(v6) => std::net::IpAddr::from(std::net::Ipv6Addr::from(
                u128::from(v6.network()) + u128::from(host),
            )),
        };
        ips.push(ip.to_string());
    }
    ensure!(!ips.is_empty(), "node {node_name} has no pod CIDRs");
    Ok(ips)
}

#[test]
fn controllers_and_scheduler_on_a_three_node_cluster() -> Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(3))?;
    let cp = cluster.node("node1")?;
    let mut settings = ClusterSettings::for_node(cp);
    settings.pod_subnet = Some("10.244.0.0/22,fd00:10:244::/56".into());
    scenario::three_node_cluster_with(
        &cluster,
        Source::Kubestrap,
        &settings,
        &mut Timings::default(),
        started,
    )?;
    // A CNI config makes the runtimes report NetworkReady, so the nodes turn Ready and lose the
    // node controller's not-ready taints.
    for name in ["node1", "node2", "node3"] {
        cluster.node(name)?.write_file(
            "/etc/cni/net.d/10-testbed.conflist",
            br#"{"cniVersion": "1.0.0", "name": "testbed", "plugins": [{"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}}]}"#,
            0o644,
        )?;
    }
    let mut steps: Vec<(&str, Duration)> = vec![("cluster", started.elapsed())];
    let mut step = |name: &'static str, f: &dyn Fn() -> Result<()>| -> Result<()> {
        let t = Instant::now();
        f().with_context(|| format!("step {name:?}\n{}", cluster.diagnostics()))?;
        steps.push((name, t.elapsed()));
        Ok(())
    };
    step("node IPAM", &|| node_ipam(&cluster))?;
    step("bad IPAM flags", &|| bad_ipam_flags(cp))?;
    step("unschedulable reason", &|| unschedulable(&cluster))?;
    step("daemonsets", &|| daemon_sets(&cluster))?;
    step("deployment", &|| deployment_and_endpoints(&cluster))?;
    step("garbage collection", &|| garbage_collection(&cluster))?;
    let torn = cluster.teardown()?;
    eprintln!("controllers: {steps:?}, teardown {:?}", torn.duration);
    Ok(())
}

/// Every node gets one /24 of the IPv4 range and one /64 of the IPv6 range, in order; a node
/// beyond the range gets none until a deleted node's subnets are released.
fn node_ipam(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    let nodes = wait_for("pod CIDRs on three nodes", || {
        let nodes = items(cp, &["nodes"])?;
        Ok((nodes.len() == 3
            && nodes.iter().all(|n| {
                n["spec"]["podCIDRs"]
                    .as_array()
                    .is_some_and(|c| c.len() == 2)
            }))
        .then_some(nodes))
    })?;
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    for node in &nodes {
        let cidrs = &node["spec"]["podCIDRs"];
        ensure!(
            node["spec"]["podCIDR"] == cidrs[0],
            "podCIDR is podCIDRs[0]: {node}"
        );
        v4.insert(cidrs[0].as_str().unwrap_or_default().to_string());
        v6.insert(cidrs[1].as_str().unwrap_or_default().to_string());
    }
    ensure!(
        v4 == BTreeSet::from(["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"].map(String::from)),
        "sequential /24s of 10.244.0.0/22: {v4:?}"
    );
    ensure!(
        v6 == BTreeSet::from(
            [
                "fd00:10:244::/64",
                "fd00:10:244:1::/64",
                "fd00:10:244:2::/64"
            ]
            .map(String::from)
        ),
        "sequential /64s of fd00:10:244::/56: {v6:?}"
    );
    // A fourth node takes the last /24; a fifth finds the range full until the fourth is gone.
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    scenario::apply(cp, scenario::ADMIN, &[node("extra-a")])?;
    let a = wait_for("a pod CIDR for extra-a", || {
        let n = get(cp, &["node", "extra-a"])?;
        Ok(n["spec"]["podCIDR"].as_str().map(str::to_string))
    })?;
    ensure!(a == "10.244.3.0/24", "the next free /24: {a}");
    scenario::apply(cp, scenario::ADMIN, &[node("extra-b")])?;
    wait_for("CIDRNotAvailable for extra-b", || {
        let events = items(
            cp,
            &["events", "--field-selector", "involvedObject.name=extra-b"],
        )?;
        Ok(events
            .iter()
            .any(|e| e["reason"] == "CIDRNotAvailable")
            .then_some(()))
    })?;
    ensure!(
        get(cp, &["node", "extra-b"])?["spec"]["podCIDR"].is_null(),
        "a full range assigns nothing"
    );
    kubectl(cp, &["delete", "node", "extra-a"])?;
    let b = wait_for("extra-a's released subnets going to extra-b", || {
        let n = get(cp, &["node", "extra-b"])?;
        Ok(n["spec"]["podCIDRs"]
            .as_array()
            .filter(|c| c.len() == 2)
            .cloned())
    })?;
    ensure!(
        b[0] == "10.244.3.0/24" && b[1] == "fd00:10:244:4::/64",
        "released /24 reused, next /64: {b:?}"
    );
    kubectl(cp, &["delete", "node", "extra-b"])?;
    Ok(())
}

/// A bad node-IPAM value makes the controller manager exit 1 at controller start, with the real
/// message, as the real one does.
fn bad_ipam_flags(cp: &Node) -> Result<()> {
    for (flags, message) in [
        (
            "--cluster-cidr=10.244.0.0/16 --node-cidr-mask-size=8",
            "Controller: Invalid --cluster-cidr, mask size of cluster CIDR must be less than or equal to --node-cidr-mask-size configured for CIDR family",
        ),
        (
            "--cluster-cidr=10.244.0.0/16,10.245.0.0/16",
            "len of ClusterCIDRs==2 and they are not configured as dual stack (at least one from each IPFamily",
        ),
        (
            "--cluster-cidr=10.244.0.0/16,fd00::/56 --node-cidr-mask-size=24",
            "usage of --node-cidr-mask-size is not allowed with dual-stack clusters",
        ),
    ] {
        let out = cp.sh(&format!(
            "timeout 20 kube-controller-manager --kubeconfig=/etc/kubernetes/controller-manager.conf --leader-elect=false --secure-port=0 --controllers=nodeipam --allocate-node-cidrs=true {flags}"
        ))?;
        ensure!(out.code == 1, "exit 1 for {flags}: {out:?}");
        ensure!(
            out.stderr.contains("\"Error starting controller\"")
                && out.stderr.contains(message)
                && out.stderr.contains("controller=\"node-ipam-controller\""),
            "{flags}: {}",
            out.stderr
        );
    }
    Ok(())
}

fn pod(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "testbed.invalid/app:3.10"}]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn pod_scheduled(cp: &Node, name: &str) -> Result<Value> {
    let p = get(cp, &["pod", name])?;
    Ok(p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "PodScheduled")
        .cloned()
        .unwrap_or(Value::Null))
}

/// A pod that tolerates nothing stays Pending on tainted nodes, with the scheduler's reason; a
/// nodeSelector no node matches says so; untainting lets it be bound (PodScheduled=True).
fn unschedulable(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    wait_for("Ready nodes without condition taints", || {
        let nodes = items(cp, &["nodes"])?;
        Ok(nodes
            .iter()
            .all(|n| n["spec"]["taints"].as_array().is_none_or(|t| t.is_empty()))
            .then_some(()))
    })?;
    kubectl(
        cp,
        &[
            "taint",
            "nodes",
            "--all",
            "testbed.example/reserved=yes:NoSchedule",
        ],
    )?;
    scenario::apply(
        cp,
        scenario::ADMIN,
        &[
            pod("plain", json!({})),
            pod(
                "picky",
                json!({"nodeSelector": {"disk": "nvme"}, "tolerations": [{"key": "testbed.example/reserved", "operator": "Exists"}]}),
            ),
        ],
    )?;
    let plain = wait_for("PodScheduled=False on plain", || {
        let c = pod_scheduled(cp, "plain")?;
        Ok((c["status"] == "False").then_some(c))
    })?;
    ensure!(plain["reason"] == "Unschedulable", "{plain}");
    ensure!(
        plain["message"]
            == "0/3 nodes are available: 3 node(s) had untolerated taint {testbed.example/reserved: yes}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..",
        "{plain}"
    );
    let picky = wait_for("PodScheduled=False on picky", || {
        let c = pod_scheduled(cp, "picky")?;
        Ok((c["status"] == "False").then_some(c))
    })?;
    ensure!(
        picky["message"]
            == "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..",
        "{picky}"
    );
    let events = items(
        cp,
        &[
            "events",
            "--field-selector",
            "involvedObject.name=plain,reason=FailedScheduling",
        ],
    )?;
    ensure!(!events.is_empty(), "a FailedScheduling event is recorded");
    kubectl(
        cp,
        &["taint", "nodes", "--all", "testbed.example/reserved-"],
    )?;
    let bound = wait_for("plain bound after the taint is gone", || {
        let p = get(cp, &["pod", "plain"])?;
        Ok(p["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(|_| p.clone()))
    })?;
    ensure!(
        pod_scheduled(cp, "plain")?["status"] == "True",
        "binding sets PodScheduled=True: {bound}"
    );
    ensure!(
        get(cp, &["pod", "picky"])?["spec"]["nodeName"].is_null(),
        "picky still matches no node"
    );
    kubectl(cp, &["delete", "pod", "plain", "picky", "--wait=false"])?;
    Ok(())
}

fn daemon_set(name: &str, spec: Value) -> Value {
    let mut pod_spec = spec;
    pod_spec["containers"] = json!([{"name": "agent", "image": "testbed.invalid/app:3.10"}]);
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"ds": name}}, "template": {"metadata": {"labels": {"ds": name}}, "spec": pod_spec}}})
}

fn pods_of(cp: &Node, selector: &str) -> Result<Vec<Value>> {
    items(cp, &["pods", "-l", selector])
}

/// One pod per eligible node: the control-plane taint keeps untolerating DaemonSets off node1,
/// a toleration lets one on, a nodeSelector narrows to the labelled node; pods are pinned
/// through matchFields, carry the default daemon tolerations, are bound by the scheduler; the
/// status counts follow, readiness included.
fn daemon_sets(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    kubectl(
        cp,
        &[
            "taint",
            "node",
            "node1",
            "node-role.kubernetes.io/control-plane:NoSchedule",
        ],
    )?;
    kubectl(cp, &["label", "node", "node3", "testbed.example/edge=true"])?;
    scenario::apply(
        cp,
        scenario::ADMIN,
        &[
            daemon_set("agent", json!({})),
            daemon_set(
                "everywhere",
                json!({"tolerations": [{"operator": "Exists"}]}),
            ),
            daemon_set(
                "edge",
                json!({"nodeSelector": {"testbed.example/edge": "true"}}),
            ),
        ],
    )?;
    let placed = |selector: &str| -> Result<Option<BTreeSet<String>>> {
        let pods = pods_of(cp, selector)?;
        if pods.iter().any(|p| p["spec"]["nodeName"].is_null()) {
            return Ok(None);
        }
        Ok(Some(
            pods.iter()
                .map(|p| {
                    p["spec"]["nodeName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect(),
        ))
    };
    let expect = |selector: &str, nodes: &[&str]| -> Result<()> {
        let wanted: BTreeSet<String> = nodes.iter().map(|n| n.to_string()).collect();
        let count = nodes.len();
        wait_for(&format!("{selector} on {nodes:?}"), || {
            Ok(placed(selector)?.filter(|p| {
                *p == wanted && pods_of(cp, selector).map(|l| l.len()).unwrap_or(0) == count
            }))
        })?;
        Ok(())
    };
    expect("ds=agent", &["node2", "node3"])?;
    expect("ds=everywhere", &["node1", "node2", "node3"])?;
    expect("ds=edge", &["node3"])?;
    let agent_pods = pods_of(cp, "ds=agent")?;
    for p in &agent_pods {
        let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
        let terms = &p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        ensure!(
            *terms
                == json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]),
            "pinned to its node: {p}"
        );
        let tolerations = p["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ] {
            ensure!(
                tolerations
                    .iter()
                    .any(|t| t["key"] == key && t["effect"] == effect && t["operator"] == "Exists"),
                "{key}:{effect} tolerated: {p}"
            );
        }
        ensure!(
            p["metadata"]["labels"]["controller-revision-hash"].is_string()
                && p["metadata"]["labels"]["pod-template-generation"] == "1",
            "{p}"
        );
        ensure!(
            p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
                && p["metadata"]["ownerReferences"][0]["controller"] == true,
            "{p}"
        );
    }
    let revisions = items(cp, &["controllerrevisions", "-l", "ds=agent"])?;
    ensure!(
        revisions.len() == 1 && revisions[0]["revision"] == 1,
        "{revisions:?}"
    );
    let status =
        |name: &str| -> Result<Value> { Ok(get(cp, &["daemonset", name])?["status"].clone()) };
    let counts = |s: &Value| {
        [
            "desiredNumberScheduled",
            "currentNumberScheduled",
            "numberReady",
            "numberAvailable",
            "updatedNumberScheduled",
            "numberMisscheduled",
        ]
        .map(|f| s[f].as_i64().unwrap_or(0))
    };
    wait_for("agent's status before readiness", || {
        let s = status("agent")?;
        Ok((counts(&s) == [2, 2, 0, 0, 2, 0] && s["observedGeneration"] == 1).then_some(()))
    })?;
    let nodes = items(cp, &["nodes"])?;
    for (i, p) in agent_pods.iter().enumerate() {
        let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
        set_pod_status(cp, &name_of(p), &pod_ips(&nodes, node, 10 + i as u8)?, true)?;
    }
    wait_for("agent's status after readiness", || {
        Ok((counts(&status("agent")?) == [2, 2, 2, 2, 2, 0]).then_some(()))
    })?;
    let rollout = kubectl(
        cp,
        &["rollout", "status", "daemonset/agent", "--timeout=20s"],
    )?;
    ensure!(
        rollout.contains("successfully rolled out"),
        "kubectl reads the status as complete: {rollout}"
    );
    wait_for("everywhere's status", || {
        Ok((counts(&status("everywhere")?) == [3, 3, 0, 0, 3, 0]).then_some(()))
    })?;
    // node3 loses the label: edge's pod there is deleted and nothing is desired.
    kubectl(cp, &["label", "node", "node3", "testbed.example/edge-"])?;
    wait_for("edge gone from node3", || {
        let s = status("edge")?;
        Ok((pods_of(cp, "ds=edge")?.is_empty() && counts(&s) == [0, 0, 0, 0, 0, 0]).then_some(()))
    })?;
    kubectl(cp, &["delete", "daemonset", "everywhere", "edge"])?;
    Ok(())
}

fn web(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                        {"name": "web", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]}}}})
}

fn ready_all(cp: &Node, pods: &[Value], nodes: &[Value], base: u8) -> Result<()> {
    for (i, p) in pods.iter().enumerate() {
        let node = p["spec"]["nodeName"].as_str().context("a bound pod")?;
        set_pod_status(
            cp,
            &name_of(p),
            &pod_ips(nodes, node, base + i as u8)?,
            true,
        )?;
    }
    Ok(())
}

fn slice_endpoints(cp: &Node) -> Result<Vec<Value>> {
    let slices = items(
        cp,
        &["endpointslices", "-l", "kubernetes.io/service-name=web"],
    )?;
    Ok(slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .collect())
}

/// Deployment → ReplicaSet → pods, scaling, readiness in the status, a new template rolling to a
/// new ReplicaSet; the Service's EndpointSlices and Endpoints follow ready pods.
fn deployment_and_endpoints(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    let nodes = items(cp, &["nodes"])?;
    scenario::apply(
        cp,
        scenario::ADMIN,
        &[
            web(2, "testbed.invalid/app:3.10"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        ],
    )?;
    let bound = |n: usize| -> Result<Option<Vec<Value>>> {
        let pods = pods_of(cp, "app=web")?;
        Ok(
            (pods.len() == n && pods.iter().all(|p| p["spec"]["nodeName"].is_string()))
                .then_some(pods),
        )
    };
    let pods = wait_for("two bound web pods", || bound(2))?;
    let sets = items(cp, &["replicasets", "-l", "app=web"])?;
    ensure!(sets.len() == 1, "{sets:?}");
    let rs = &sets[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .context("pod-template-hash")?
        .to_string();
    ensure!(
        name_of(rs) == format!("web-{hash}")
            && rs["spec"]["selector"]["matchLabels"]["pod-template-hash"] == hash.as_str(),
        "{rs}"
    );
    ensure!(
        rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
            && rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1",
        "{rs}"
    );
    for p in &pods {
        ensure!(
            p["metadata"]["labels"]["pod-template-hash"] == hash.as_str()
                && p["metadata"]["ownerReferences"][0]["name"] == name_of(rs).as_str(),
            "{p}"
        );
        ensure!(
            p["spec"]["nodeName"] != "node1",
            "node1's control-plane taint is respected: {p}"
        );
    }
    // Placeholder slice and empty Endpoints while nothing is ready-with-an-IP.
    let slices = wait_for("the placeholder slice", || {
        let slices = items(
            cp,
            &["endpointslices", "-l", "kubernetes.io/service-name=web"],
        )?;
        Ok((!slices.is_empty()).then_some(slices))
    })?;
    ensure!(
        slices[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
            == "endpointslice-controller.k8s.io"
            && slices[0]["addressType"] == "IPv4",
        "{slices:?}"
    );
    ensure!(
        slices[0]["metadata"]["ownerReferences"][0]["kind"] == "Service",
        "{slices:?}"
    );
    ready_all(cp, &pods, &nodes, 20)?;
    let endpoints = wait_for("two ready endpoints", || {
        let e = slice_endpoints(cp)?;
        Ok((e.len() == 2 && e.iter().all(|e| e["conditions"]["ready"] == true)).then_some(e))
    })?;
    for e in &endpoints {
        let node = e["nodeName"].as_str().unwrap_or_default();
        let ip = e["addresses"][0].as_str().unwrap_or_default();
        ensure!(
            pod_ips(&nodes, node, 0)?[0]
                .rsplit_once('.')
                .map(|(n, _)| n)
                == ip.rsplit_once('.').map(|(n, _)| n),
            "address in its node's pod CIDR: {e}"
        );
        ensure!(
            e["targetRef"]["kind"] == "Pod"
                && e["conditions"]["serving"] == true
                && e["conditions"]["terminating"] == false,
            "{e}"
        );
    }
    let slices = items(
        cp,
        &["endpointslices", "-l", "kubernetes.io/service-name=web"],
    )?;
    ensure!(
        slices.len() == 1
            && slices[0]["ports"] == json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        "the named targetPort resolved: {slices:?}"
    );
    let subsets = wait_for("Endpoints with two addresses", || {
        let ep = get(cp, &["endpoints", "web"])?;
        Ok(
            (ep["subsets"][0]["addresses"].as_array().map_or(0, Vec::len) == 2)
                .then_some(ep["subsets"].clone()),
        )
    })?;
    ensure!(
        subsets[0]["ports"] == json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        "{subsets}"
    );
    wait_for("deployment status with two available", || {
        let s = get(cp, &["deployment", "web"])?["status"].clone();
        let available = s["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Available" && c["status"] == "True");
        Ok((s["replicas"] == 2
            && s["readyReplicas"] == 2
            && s["availableReplicas"] == 2
            && s["updatedReplicas"] == 2
            && s["observedGeneration"] == 1
            && available)
            .then_some(()))
    })?;
    let rollout = kubectl(
        cp,
        &["rollout", "status", "deployment/web", "--timeout=20s"],
    )?;
    ensure!(
        rollout.contains("successfully rolled out"),
        "kubectl reads the status as complete: {rollout}"
    );

    // Scale up: four pods, the new ones not ready → in notReadyAddresses and ready=false.
    kubectl(cp, &["scale", "deployment", "web", "--replicas=4"])?;
    let pods = wait_for("four bound web pods", || bound(4))?;
    let fresh: Vec<Value> = pods
        .iter()
        .filter(|p| p["status"]["podIP"].is_null())
        .cloned()
        .collect();
    ensure!(fresh.len() == 2, "two new pods: {pods:?}");
    let mut unready = fresh.clone();
    let ready_one = unready.pop().context("one new pod")?;
    ready_all(cp, std::slice::from_ref(&ready_one), &nodes, 30)?;
    let node = unready[0]["spec"]["nodeName"].as_str().unwrap_or_default();
    set_pod_status(
        cp,
        &name_of(&unready[0]),
        &pod_ips(&nodes, node, 40)?,
        false,
    )?;
    let endpoints = wait_for("four endpoints, one not ready", || {
        let e = slice_endpoints(cp)?;
        Ok((e.len() == 4
            && e.iter()
                .filter(|e| e["conditions"]["ready"] == false)
                .count()
                == 1)
            .then_some(e))
    })?;
    let not_ready = endpoints
        .iter()
        .find(|e| e["conditions"]["ready"] == false)
        .context("not ready")?;
    ensure!(
        not_ready["targetRef"]["name"] == name_of(&unready[0]).as_str()
            && not_ready["conditions"]["serving"] == false,
        "{not_ready}"
    );
    wait_for("Endpoints: three ready, one not", || {
        let ep = get(cp, &["endpoints", "web"])?;
        let s = &ep["subsets"][0];
        Ok((s["addresses"].as_array().map_or(0, Vec::len) == 3
            && s["notReadyAddresses"].as_array().map_or(0, Vec::len) == 1)
            .then_some(()))
    })?;

    // A terminating pod (held by a finalizer) is serving and terminating in the slice, and leaves Endpoints.
    let leaving = name_of(&ready_one);
    kubectl(
        cp,
        &[
            "patch",
            "pod",
            &leaving,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["testbed.example/hold"]}}"#,
        ],
    )?;
    kubectl(cp, &["delete", "pod", &leaving, "--wait=false"])?;
    wait_for("a terminating endpoint", || {
        let e = slice_endpoints(cp)?;
        Ok(e.iter()
            .any(|e| {
                e["targetRef"]["name"] == leaving.as_str()
                    && e["conditions"]
                        == json!({"ready": false, "serving": true, "terminating": true})
            })
            .then_some(()))
    })?;
    wait_for("Endpoints without the terminating pod", || {
        let ep = get(cp, &["endpoints", "web"])?;
        Ok((!ep["subsets"].to_string().contains(&leaving)).then_some(()))
    })?;
    kubectl(
        cp,
        &[
            "patch",
            "pod",
            &leaving,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    )?;

    // Scale down to one: the unready and unscheduled go first; slices follow.
    kubectl(cp, &["scale", "deployment", "web", "--replicas=1"])?;
    let left = wait_for("one web pod", || bound(1))?;
    ensure!(
        left[0]["status"]["conditions"][0]["status"] == "True",
        "the pod kept is a ready one: {left:?}"
    );
    wait_for("one endpoint", || {
        Ok((slice_endpoints(cp)?.len() == 1).then_some(()))
    })?;

    // A new template: a second ReplicaSet; the old one goes to zero once the new pod is available.
    kubectl(
        cp,
        &[
            "set",
            "image",
            "deployment/web",
            "web=testbed.invalid/app:3.9",
        ],
    )?;
    let new_pod = wait_for("the new template's pod", || {
        let pods = pods_of(cp, "app=web")?;
        Ok(pods.into_iter().find(|p| {
            p["metadata"]["labels"]["pod-template-hash"] != hash.as_str()
                && p["spec"]["nodeName"].is_string()
        }))
    })?;
    ensure!(
        items(cp, &["replicasets", "-l", "app=web"])?.len() == 2,
        "a second ReplicaSet"
    );
    ready_all(cp, std::slice::from_ref(&new_pod), &nodes, 50)?;
    wait_for("the rollout to finish", || {
        let pods = pods_of(cp, "app=web")?;
        let d = get(cp, &["deployment", "web"])?;
        let old = get(cp, &[&format!("replicaset/web-{hash}")])?;
        Ok((pods.len() == 1
            && name_of(&pods[0]) == name_of(&new_pod)
            && old["spec"]["replicas"] == 0
            && d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
            && d["status"]["updatedReplicas"] == 1)
            .then_some(()))
    })?;
    Ok(())
}

/// Deleting owners: background (kubectl's default) removes a Deployment's ReplicaSets and pods
/// and a Service's EndpointSlices; orphaning keeps dependents without the reference; foreground
/// keeps the owner until its dependents are gone.
fn garbage_collection(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    kubectl(cp, &["delete", "deployment", "web"])?;
    wait_for("web's ReplicaSets and pods collected", || {
        Ok((items(cp, &["replicasets", "-l", "app=web"])?.is_empty()
            && pods_of(cp, "app=web")?.is_empty())
        .then_some(()))
    })?;
    kubectl(cp, &["delete", "service", "web"])?;
    wait_for("web's EndpointSlices and Endpoints gone", || {
        let slices = items(
            cp,
            &["endpointslices", "-l", "kubernetes.io/service-name=web"],
        )?;
        let endpoints = cp.kubectl(&["get", "endpoints", "web"])?;
        Ok((slices.is_empty() && !endpoints.ok()).then_some(()))
    })?;

    scenario::apply(cp, scenario::ADMIN, &[web(1, "testbed.invalid/app:3.10")])?;
    let rs = wait_for("a ReplicaSet for the orphan test", || {
        let sets = items(cp, &["replicasets", "-l", "app=web"])?;
        Ok(sets
            .first()
            .filter(|rs| rs["status"]["replicas"] == 1)
            .cloned())
    })?;
    kubectl(cp, &["delete", "deployment", "web", "--cascade=orphan"])?;
    let orphan = get(cp, &["replicaset", &name_of(&rs)])?;
    ensure!(
        orphan["metadata"]["ownerReferences"].is_null()
            || orphan["metadata"]["ownerReferences"] == json!([]),
        "orphaned: {orphan}"
    );
    ensure!(
        pods_of(cp, "app=web")?.len() == 1,
        "the orphan keeps its pod"
    );
    // Foreground: the ReplicaSet waits (foregroundDeletion finalizer) while its pod, held by a
    // finalizer, is being deleted; both go once the pod's finalizer is lifted.
    let held = name_of(&pods_of(cp, "app=web")?[0]);
    kubectl(
        cp,
        &[
            "patch",
            "pod",
            &held,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["testbed.example/hold"]}}"#,
        ],
    )?;
    kubectl(
        cp,
        &[
            "delete",
            "replicaset",
            &name_of(&rs),
            "--cascade=foreground",
            "--wait=false",
        ],
    )?;
    wait_for("the pod deleted first", || {
        Ok((!get(cp, &["pod", &held])?["metadata"]["deletionTimestamp"].is_null()).then_some(()))
    })?;
    let waiting = get(cp, &["replicaset", &name_of(&rs)])?;
    ensure!(
        waiting["metadata"]["finalizers"] == json!(["foregroundDeletion"])
            && waiting["metadata"]["deletionTimestamp"].is_string(),
        "the owner waits for its dependents: {waiting}"
    );
    kubectl(
        cp,
        &[
            "patch",
            "pod",
            &held,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    )?;
    wait_for("foreground deletion of the ReplicaSet", || {
        Ok((items(cp, &["replicasets", "-l", "app=web"])?.is_empty()
            && pods_of(cp, "app=web")?.is_empty())
        .then_some(()))
    })?;
    kubectl(
        cp,
        &["delete", "daemonset", "agent", "--cascade=foreground"],
    )?;
    ensure!(
        pods_of(cp, "ds=agent")?.is_empty()
            && items(cp, &["controllerrevisions", "-l", "ds=agent"])?.is_empty(),
        "agent's pods and history gone"
    );
    Ok(())
}
