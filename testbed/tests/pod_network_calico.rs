//! calico end to end on one three-node testbed cluster (every step shares it): `kubestrap init
//! --pod-network calico` renders the VXLAN pool (this kernel has no IP-in-IP) and node2 and node3
//! join with the printed command → calico-node is ready on every node, the nodes carry calico's
//! host artefacts and `kubestrap verify network` passes; node3's FDB entry for node2's VTEP deleted
//! → verify names exactly node2↔node3 and exits 1; `kubestrap reset` on every node leaves no cali*
//! device, `vxlan.calico`, cali- chain, `cali:` comment, cali40 ipset, calico file or block route,
//! and keeps a foreign bridge, chain and ipset; the reset nodes switch to flannel (init and joins
//! again) and verify passes; reset again, they come up with weave (after calico's and flannel's
//! host state), verify passes, node3's overlay entry for node2 deleted → verify names exactly
//! node2↔node3, and weave's reset leaves no `weave` bridge, vethwe*, vxlan-6784, WEAVE chain, weave
//! ipset or weave file. A bad CALICO_IPV4POOL_CIDR makes calico-node exit as calico-node does, a bad
//! IPALLOC_RANGE weave's router as weave does.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario;
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};

const POD_SUBNET: &str = "10.244.0.0/16";

/// init on node1 with `pod_network`, then every other node joins with the printed command.
fn bring_up(cluster: &Cluster, pod_network: &str) -> Result<()> {
    let cp = cluster.node("node1")?;
    let mut settings = ClusterSettings::for_node(cp);
    settings.pod_subnet = Some(POD_SUBNET.into());
    cp.write_file(
        "/root/kubestrap.yaml",
        scenario::kubestrap_config(&settings)?.as_bytes(),
        0o600,
    )?;
    let init = cp
        .kubestrap(&[
            "init",
            "--config=/root/kubestrap.yaml",
            &format!("--pod-network={pod_network}"),
        ])?
        .check("kubestrap init on node1")?;
    let command = scenario::printed_join_command(&init.stdout)
        .with_context(|| format!("the join command in init's output:\n{}", init.stdout))?;
    for node in cluster.nodes.iter().skip(1) {
        let joined = scenario::run_join_command(node, &command)?;
        ensure!(joined.ok(), "join on {}: {joined:?}", node.name);
    }
    Ok(())
}

/// The DaemonSet `namespace/name` has a ready pod on each of `nodes` nodes.
fn daemonset_ready(cp: &Node, namespace: &str, name: &str, nodes: usize) -> Result<()> {
    wait_until(
        &format!("{name} ready on {nodes} nodes"),
        Duration::from_secs(90),
        || {
            let ds = support::get(cp, &["daemonset", name, "-n", namespace])?;
            let ready = ds["status"]["numberReady"].as_u64().unwrap_or(0);
            let desired = ds["status"]["desiredNumberScheduled"].as_u64().unwrap_or(0);
            Ok(desired == nodes as u64 && ready == desired)
        },
    )
}

fn sh(node: &Node, script: &str) -> Result<String> {
    Ok(node.sh(script)?.check(script)?.stdout)
}

/// Every trace of calico on a node, judged with ip, iptables-save, ipset, nft and find.
fn calico_traces(node: &Node) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for line in sh(node, "ip -o link show")?.lines() {
        let name = line.split(": ").nth(1).unwrap_or_default();
        if name.starts_with("cali") || name.starts_with("vxlan.calico") || name.starts_with("tunl0")
        {
            found.push(format!("link {name}"));
        }
    }
    for line in sh(node, "iptables-nft-save")?.lines() {
        if line.contains("cali-") || line.contains("cali:") {
            found.push(format!("iptables {line}"));
        }
    }
    for name in sh(node, "ipset list -n")?.lines() {
        if name.starts_with("cali4") || name.starts_with("cali6") || name.starts_with("felix-") {
            found.push(format!("ipset {name}"));
        }
    }
    if sh(node, "nft list tables")?.contains("calico") {
        found.push("an nft calico table".into());
    }
    for line in sh(node, "ip route show table all")?.lines() {
        // The testbed node's own `unreachable` routes (set at its boot) are not calico's.
        let pods = line.contains("10.244.") && !line.starts_with("unreachable ");
        if line.contains("proto 80") || line.contains("proto bird") || pods {
            found.push(format!("route {line}"));
        }
    }
    for path in sh(
        node,
        "find /etc/cni/net.d /var/lib/calico /var/run/calico /var/lib/cni/networks/k8s-pod-network \
         -mindepth 0 2>/dev/null || true",
    )?
    .lines()
    {
        if path.contains("calico") || path.contains("k8s-pod-network") {
            found.push(format!("file {path}"));
        }
    }
    Ok(found)
}

/// Every trace of weave on a node.
fn weave_traces(node: &Node) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for line in sh(node, "ip -o link show")?.lines() {
        let name = line.split(": ").nth(1).unwrap_or_default();
        if name.starts_with("weave") || name.starts_with("vethwe") || name.starts_with("vxlan-6784")
        {
            found.push(format!("link {name}"));
        }
    }
    for line in sh(node, "iptables-nft-save")?.lines() {
        if line.contains("WEAVE") {
            found.push(format!("iptables {line}"));
        }
    }
    for name in sh(node, "ipset list -n")?.lines() {
        if name.starts_with("weave") {
            found.push(format!("ipset {name}"));
        }
    }
    for path in sh(
        node,
        "find /etc/cni/net.d /var/lib/weave /var/lib/cni/networks/weave -mindepth 0 2>/dev/null || true",
    )?
    .lines()
    {
        if path.contains("weave") {
            found.push(format!("file {path}"));
        }
    }
    Ok(found)
}

/// Things kubestrap did not make: they must survive reset.
const FOREIGN: &str = "ip link add br-user type bridge && ip link set br-user up && iptables-nft -N USER-CHAIN && \
     ipset create user-set hash:ip && ip route add 192.168.250.0/24 dev br-user";
const FOREIGN_CHECK: &str = "ip link show br-user >/dev/null && iptables-nft -S USER-CHAIN >/dev/null && \
     ipset list -n | grep -qx user-set && ip route show 192.168.250.0/24 | grep -q br-user";

#[test]
fn calico_networks_pods_is_verified_and_resets_clean() -> Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(3))?;
    let result = run(&cluster, started);
    if result.is_err() {
        eprintln!("{}", cluster.diagnostics());
    }
    cluster.teardown()?;
    eprintln!("total {:?}", started.elapsed());
    result
}

fn run(cluster: &Cluster, started: Instant) -> Result<()> {
    let cp = cluster.node("node1")?;
    bring_up(cluster, "calico")?;
    daemonset_ready(cp, "kube-system", "calico-node", 3)?;
    eprintln!("calico ready on 3 nodes: {:?}", started.elapsed());

    // The rendered pool is VXLAN here, and calico-node made its artefacts with their real names.
    let cm = support::get(cp, &["configmap", "calico-config", "-n", "kube-system"])?;
    ensure!(cm["data"]["calico_backend"] == "vxlan", "{cm}");
    let pool = support::get(
        cp,
        &["ippools.crd.projectcalico.org", "default-ipv4-ippool"],
    )?;
    ensure!(
        pool["spec"]["cidr"] == POD_SUBNET && pool["spec"]["vxlanMode"] == "Always",
        "{pool}"
    );
    let blocks = support::items(cp, &["ipamblocks.crd.projectcalico.org"])?;
    ensure!(blocks.len() == 3, "one block per node: {blocks:?}");
    for node in &cluster.nodes {
        let traces = calico_traces(node)?.join("\n");
        for needle in [
            "link vxlan.calico",
            "ipset cali40all-ipam-pools",
            "ipset cali40masq-ipam-pools",
            "-A cali-nat-outgoing -m comment --comment \"cali:",
            "file /etc/cni/net.d/10-calico.conflist",
        ] {
            ensure!(
                traces.contains(needle),
                "{needle:?} on {}:\n{traces}",
                node.name
            );
        }
    }

    // CoreDNS's pods are wired as calico wires them: a cali* host side with proxy ARP and a /32
    // route to the pod.
    let mut wired = 0;
    for node in &cluster.nodes {
        for veth in sh(
            node,
            "ip -o link show | grep -o 'cali[0-9a-f]\\{11\\}' | sort -u",
        )?
        .lines()
        {
            let proxy_arp = sh(
                node,
                &format!("cat /proc/sys/net/ipv4/conf/{veth}/proxy_arp"),
            )?;
            let routes = sh(node, &format!("ip route show dev {veth}"))?;
            ensure!(
                proxy_arp.trim() == "1",
                "proxy ARP on {veth} of {}",
                node.name
            );
            ensure!(
                routes.contains("10.244.") && routes.contains("scope link"),
                "{veth}: {routes}"
            );
            wired += 1;
        }
    }
    ensure!(wired >= 2, "CoreDNS's two pods have cali* veths ({wired})");
    let (code, report, stderr) = support::verify(cp, &[])?;
    ensure!(
        code == 0 && report["status"] == "pass",
        "verify on a healthy calico cluster: {stderr}\n{report:#}"
    );
    eprintln!("verify passed: {:?}", started.elapsed());

    // node3 forgets where node2's VTEP is (its FDB entry): node2 ↔ node3 pod traffic fails both
    // ways (replies too), node1 — the API server's node, through which verify asks its
    // checkers — is untouched. (A break between node1 and another node also cuts the API
    // server's pods/proxy to that node's checkers: every check from them fails.)
    let node3 = cluster.node("node3")?;
    let peer = support::get(cp, &["node", "node2"])?;
    let mac = peer["metadata"]["annotations"]["projectcalico.org/VXLANTunnelMACAddr"]
        .as_str()
        .context("node2's VXLAN MAC annotation")?
        .to_string();
    sh(node3, &format!("bridge fdb del {mac} dev vxlan.calico"))?;
    let (code, report, stderr) = support::verify(cp, &["--host-port", "9080"])?;
    ensure!(code == 1 && report["status"] == "fail", "{code} {report:#}");
    ensure!(
        report["failing_pairs"] == serde_json::json!([["node2", "node3"]]),
        "exactly node2↔node3: {report:#}"
    );
    ensure!(stderr.contains("between node2↔node3"), "{stderr}");
    eprintln!("broken pair named: {:?}", started.elapsed());

    // reset everywhere: nothing of calico is left, foreign things are.
    for node in &cluster.nodes {
        sh(node, FOREIGN)?;
    }
    for node in cluster.nodes.iter().rev() {
        node.kubestrap(&["reset", "--force"])?
            .check(&format!("reset on {}", node.name))?;
    }
    for node in &cluster.nodes {
        let traces = calico_traces(node)?;
        ensure!(
            traces.is_empty(),
            "calico left on {}: {traces:#?}",
            node.name
        );
        sh(node, FOREIGN_CHECK).with_context(|| format!("foreign artefacts on {}", node.name))?;
    }
    eprintln!("reset clean: {:?}", started.elapsed());

    // The reset nodes switch to flannel: calico's leftovers (a cali* route to a pod block, its
    // ipsets and chains) would break the new network; none are left, and it works.
    bring_up(cluster, "flannel")?;
    daemonset_ready(cp, "kube-flannel", "kube-flannel-ds", 3)?;
    support::wait_for_proxies(cluster, &cluster.nodes.iter().collect::<Vec<_>>())?;
    let (code, report, stderr) = support::verify(cp, &[])?;
    ensure!(
        code == 0 && report["status"] == "pass",
        "verify after switching from calico to flannel: {stderr}\n{report:#}"
    );
    eprintln!("flannel after calico verified: {:?}", started.elapsed());
    for node in cluster.nodes.iter().rev() {
        node.kubestrap(&["reset", "--force"])?
            .check(&format!("reset on {}", node.name))?;
    }

    // The reset nodes come up again with weave (the source material's "calico's ipsets made weave
    // crash") and it works; its own reset leaves nothing of weave either.
    bring_up(cluster, "weave")?;
    daemonset_ready(cp, "kube-system", "weave-net", 3)?;
    support::wait_for_proxies(cluster, &cluster.nodes.iter().collect::<Vec<_>>())?;
    for node in &cluster.nodes {
        let links = sh(node, "ip -o link show")?;
        ensure!(
            links.contains(": weave:") && links.contains("vxlan-6784"),
            "{links}"
        );
    }
    let (code, report, stderr) = support::verify(cp, &[])?;
    ensure!(
        code == 0 && report["status"] == "pass",
        "verify after switching from calico and flannel to weave: {stderr}\n{report:#}"
    );
    eprintln!("weave verified: {:?}", started.elapsed());
    // node3's overlay stops flooding to node2: node2 ↔ node3 fails, named as that pair.
    let node2_ip = cluster.node("node2")?.ip.clone();
    sh(
        cluster.node("node3")?,
        &format!("bridge fdb del 00:00:00:00:00:00 dev vxlan-6784 dst {node2_ip}"),
    )?;
    let (code, report, stderr) = support::verify(cp, &["--host-port", "9080"])?;
    ensure!(code == 1 && report["status"] == "fail", "{code} {report:#}");
    ensure!(
        report["failing_pairs"] == serde_json::json!([["node2", "node3"]]),
        "weave: exactly node2↔node3: {report:#}\n{stderr}"
    );
    eprintln!("weave broken pair named: {:?}", started.elapsed());
    for node in cluster.nodes.iter().rev() {
        node.kubestrap(&["reset", "--force"])?
            .check(&format!("reset on {}", node.name))?;
    }
    for node in &cluster.nodes {
        let traces = weave_traces(node)?;
        ensure!(
            traces.is_empty(),
            "weave left on {}: {traces:#?}",
            node.name
        );
        sh(node, FOREIGN_CHECK).with_context(|| format!("foreign artefacts on {}", node.name))?;
    }
    eprintln!("weave reset clean: {:?}", started.elapsed());
    refusal(cp)
}

/// calico-node on a bad pool exits 1 with calico's message (run directly, as its container would).
fn refusal(cp: &Node) -> Result<()> {
    let out = cp.sh(
        "NODENAME=node1 CALICO_IPV4POOL_CIDR=10.244.0.0/33 KUBERNETES_SERVICE_HOST=10.96.0.1 \
         calico-node",
    )?;
    ensure!(out.code == 1, "{out:?}");
    ensure!(
        out.stderr
            .contains("Invalid CIDR specified in CALICO_IPV4POOL_CIDR '10.244.0.0/33'"),
        "{out:?}"
    );
    // weave's router on a bad IPALLOC_RANGE (the image's /home/weave/launch.sh is tbnode's launch.sh).
    let out = cp.sh(
        "HOSTNAME=node1 IPALLOC_RANGE=10.244.0.0/33 KUBERNETES_SERVICE_HOST=10.96.0.1 \
         /opt/testbed/bin/tbnode launch.sh",
    )?;
    ensure!(out.code == 1, "{out:?}");
    ensure!(
        out.stderr
            .contains("invalid --ipalloc-range \"10.244.0.0/33\""),
        "{out:?}"
    );
    Ok(())
}
