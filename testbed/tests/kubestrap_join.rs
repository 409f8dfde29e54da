//! `kubestrap join` of worker nodes on one testbed cluster made by `kubestrap init` (every step shares
//! it): node2 joins with the command init printed. On node3: a dry run changes nothing; the refusals —
//! unknown token id, wrong secret, wrong CA pin, unreachable endpoint, a TLS bootstrap token the API
//! server does not know — each exit 1 naming the failed check (a control-plane join of this cluster,
//! which has no control-plane endpoint, exits 2) and leave nothing on the node (`find`
//! under its state directories, no effect in its journal), as does a join while node3 is partitioned
//! from the control plane; a join whose TLS bootstrap does not finish
//! in time (`tlsBootstrap: 1ms`) is rolled back to the same files; node3 then joins through kubestrap's
//! discovery endpoint (`--discovery-url https://node1:9898`), its reset deletes its Node object through
//! the API and cleans the host, and it joins again with a discovery file, then with a JoinConfiguration whose
//! `nodeRegistration.taints` the kubelet registers the Node with (`--register-with-taints`).

mod support;

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::Value;
use support::{line_at, since, timed_lines};

/// The node's state directories a refused join must leave as they were.
const STATE_DIRS: &str =
    "/etc/kubernetes /var/lib/kubelet /var/lib/kubestrap /etc/systemd/system/kubelet.service.d";
const JOURNAL: &str = "/var/lib/kubestrap/journal.jsonl";

#[test]
fn workers_join_with_the_printed_command_the_discovery_endpoint_and_a_config_file() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(3))?;
    let result = run(&cluster);
    if result.is_err() {
        eprintln!("{}", cluster.diagnostics());
        if let Ok(cp) = cluster.node("node1")
            && let Ok(text) = cp.read_string("/var/log/testbed/kubestrap-discovery.log")
        {
            eprintln!("--- kubestrap-discovery.service\n{text}");
        }
    }
    cluster.teardown()?;
    result
}

fn elapsed(since: Instant) -> String {
    format!("{:.1}s", since.elapsed().as_secs_f64())
}

/// Files under the state directories (and the kubelet drop-in), sorted.
fn state_files(node: &Node) -> Result<String> {
    Ok(node
        .sh(&format!(
            "find {STATE_DIRS} -type f 2>/dev/null | grep -v '^{JOURNAL}$' | grep -v '/var/lib/kubestrap/lock' | sort"
        ))?
        .stdout)
}

/// A refused run left the node as `before` found it: the same state files, and a last run in the
/// journal with no effects.
fn left_nothing(node: &Node, what: &str, before: &str) -> Result<()> {
    let after = state_files(node)?;
    ensure!(
        after == before,
        "{what}: files left:\n{after}\nbefore:\n{before}"
    );
    let ops = last_run_ops(node)?;
    ensure!(
        ops.iter().all(|op| op == "run-start" || op == "run-end"),
        "{what}: the journal holds effects: {ops:?}"
    );
    Ok(())
}

/// The journal's ops of the last run.
fn last_run_ops(node: &Node) -> Result<Vec<String>> {
    let text = node.read_string(JOURNAL)?;
    let records: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let last = records
        .iter()
        .rev()
        .find(|r| r["op"] == "run-start")
        .context("a run in the journal")?["run"]
        .clone();
    Ok(records
        .iter()
        .filter(|r| r["run"] == last)
        .map(|r| r["op"].as_str().unwrap_or_default().to_string())
        .collect())
}

fn join_configuration(endpoint: &str, token: &str, pin: &str, discovery: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    \
         apiServerEndpoint: {endpoint}\n    token: {token}\n    caCertHashes: [\"{pin}\"]\n\
         nodeRegistration:\n  name: node3\ntimeouts:\n  discovery: {discovery}\n  tlsBootstrap: 90s\n"
    )
}

/// Waits until node1's API server lists `name` (or no longer does).
fn wait_listed(cp: &Node, name: &str, listed: bool) -> Result<()> {
    wait_until(
        &format!("node {name} listed: {listed}"),
        Duration::from_secs(60),
        || Ok(scenario::node_names(cp, ADMIN)?.contains(&name.to_string()) == listed),
    )
}

fn run(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    let node2 = cluster.node("node2")?;
    let node3 = cluster.node("node3")?;
    let settings = ClusterSettings::for_node(cp);
    cp.write_file(
        "/root/kubestrap.yaml",
        scenario::kubestrap_config(&settings)?.as_bytes(),
        0o600,
    )?;
    let started = Instant::now();
    let init = cp
        .kubestrap(&["init", "--config=/root/kubestrap.yaml"])?
        .check("kubestrap init on node1")?;
    eprintln!("init: {}", elapsed(started));
    let command = scenario::printed_join_command(&init.stdout)
        .with_context(|| format!("the worker join command in init's output:\n{}", init.stdout))?;
    let endpoint = command
        .split_whitespace()
        .nth(2)
        .context("the endpoint")?
        .to_string();
    let token = scenario::command_flag(&command, "--token").context("--token")?;
    let pin = scenario::command_flag(&command, "--discovery-token-ca-cert-hash")
        .context("--discovery-token-ca-cert-hash")?;
    let (token_id, _) = token.split_once('.').context("id.secret")?;

    // ---- node2: the command init printed, as printed ----
    let at = Instant::now();
    let joined = scenario::run_join_command(node2, &command)?;
    ensure!(joined.ok(), "join on node2: {joined:?}");
    eprintln!("node2 join: {}", elapsed(at));
    ensure!(
        joined.stdout.contains("This node has joined the cluster"),
        "{}",
        joined.stdout
    );
    ensure!(scenario::node_names(cp, ADMIN)?.contains(&"node2".to_string()));
    ensure!(!node2.exists("/etc/kubernetes/bootstrap-kubelet.conf")?);
    ensure!(node2.exists("/etc/kubernetes/kubelet.conf")?);
    ensure!(
        node2.read_string("/etc/kubernetes/pki/ca.crt")?
            == cp.read_string("/etc/kubernetes/pki/ca.crt")?
    );
    let record = node2.read_string("/var/lib/kubestrap/cluster.yaml")?;
    ensure!(
        record.contains("recordedBy: join") && record.contains("name: node2"),
        "{record}"
    );

    // ---- node3: a dry run prints the plan and changes nothing ----
    let before = state_files(node3)?;
    let dry = scenario::run_join_command(node3, &format!("{command} --dry-run"))?
        .check("join --dry-run on node3")?;
    for needle in [
        "/etc/kubernetes/bootstrap-kubelet.conf",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubestrap/cluster.yaml",
        "[dry-run] Would wait for the kubelet's TLS bootstrap",
    ] {
        ensure!(
            dry.stdout.contains(needle) || dry.stderr.contains(needle),
            "{needle:?} not in the dry run's plan:\n{}\n{}",
            dry.stdout,
            dry.stderr
        );
    }
    ensure!(
        state_files(node3)? == before,
        "the dry run changed the node"
    );

    // ---- node3: refusals, each naming its check, leaving nothing ----
    let wrong_secret = format!("{token_id}.0000000000000000");
    let wrong_pin = format!("sha256:{}", "0".repeat(64));
    let closed = format!("{}:6999", settings.advertise_address);
    for (what, config, needles) in [
        (
            "unknown token id",
            join_configuration(&endpoint, "zzzzzz.0123456789abcdef", &pin, "3s"),
            vec![
                "no signature",
                "\"zzzzzz\"",
                "kubestrap token create --print-join-command",
            ],
        ),
        (
            "wrong secret",
            join_configuration(&endpoint, &wrong_secret, &pin, "3s"),
            vec!["signature", "does not verify", "token secret is wrong"],
        ),
        (
            "wrong CA pin",
            join_configuration(&endpoint, &token, &wrong_pin, "3s"),
            vec!["pin", &pin, &wrong_pin],
        ),
        (
            "unreachable endpoint",
            join_configuration(&closed, &token, &pin, "2s"),
            vec!["could not reach", &closed],
        ),
    ] {
        let at = Instant::now();
        node3.write_file("/root/join.yaml", config.as_bytes(), 0o600)?;
        let out = node3.kubestrap(&["join", "--config=/root/join.yaml"])?;
        eprintln!("refusal ({what}): {}", elapsed(at));
        ensure!(out.code == 1, "{what}: exit {}: {}", out.code, out.stderr);
        for needle in needles {
            ensure!(
                out.stderr.contains(needle),
                "{what}: {needle:?} not in:\n{}",
                out.stderr
            );
        }
        ensure!(
            !out.stderr
                .contains(token.split_once('.').map(|t| t.1).unwrap_or("-")),
            "{what}: the secret is printed:\n{}",
            out.stderr
        );
        left_nothing(node3, what, &before)?;
    }

    // ---- node3: a control-plane join of a cluster without a control-plane endpoint: exit 2 ----
    let at = Instant::now();
    let out = scenario::run_join_command(
        node3,
        &format!(
            "{command} --control-plane --certificate-key {}",
            "ab".repeat(32)
        ),
    )?;
    eprintln!("refusal (no control-plane endpoint): {}", elapsed(at));
    ensure!(
        out.code == 2,
        "no endpoint: exit {}: {}",
        out.code,
        out.stderr
    );
    for needle in ["stable controlPlaneEndpoint", "--control-plane-endpoint"] {
        ensure!(
            out.stderr.contains(needle),
            "no endpoint: {needle:?} not in:\n{}",
            out.stderr
        );
    }
    left_nothing(node3, "no control-plane endpoint", &before)?;

    // ---- node3: cut off from the control plane during the join: refused, naming the endpoint ----
    let at = Instant::now();
    node3.write_file(
        "/root/join.yaml",
        join_configuration(&endpoint, &token, &pin, "2s").as_bytes(),
        0o600,
    )?;
    node3.partition()?;
    let out = node3.kubestrap(&["join", "--config=/root/join.yaml"]);
    node3.heal()?;
    let out = out?;
    eprintln!(
        "refusal (partitioned from the control plane): {}",
        elapsed(at)
    );
    ensure!(
        out.code == 1,
        "partitioned: exit {}: {}",
        out.code,
        out.stderr
    );
    for needle in ["could not reach", endpoint.as_str()] {
        ensure!(
            out.stderr.contains(needle),
            "partitioned: {needle:?} not in:\n{}",
            out.stderr
        );
    }
    left_nothing(node3, "partitioned", &before)?;

    // ---- node3: a TLS bootstrap token the API server does not know: refused before the kubelet ----
    let at = Instant::now();
    let config = join_configuration(&endpoint, &token, &pin, "3s").replace(
        "discovery:\n",
        "discovery:\n  tlsBootstrapToken: qqqqqq.0123456789abcdef\n",
    );
    node3.write_file("/root/join.yaml", config.as_bytes(), 0o600)?;
    let out = node3.kubestrap(&["join", "--config=/root/join.yaml"])?;
    eprintln!("refusal (unknown TLS bootstrap token): {}", elapsed(at));
    ensure!(out.code == 1, "exit {}: {}", out.code, out.stderr);
    ensure!(
        out.stderr
            .contains("does not accept the TLS bootstrap token"),
        "{}",
        out.stderr
    );
    ensure!(state_files(node3)? == before, "files left");

    // ---- node3: a TLS bootstrap that does not finish in time is rolled back ----
    let at = Instant::now();
    let config = join_configuration(&endpoint, &token, &pin, "3s")
        .replace("  tlsBootstrap: 90s\n", "  tlsBootstrap: 1ms\n");
    node3.write_file("/root/join.yaml", config.as_bytes(), 0o600)?;
    let out = node3.kubestrap(&["join", "--config=/root/join.yaml"])?;
    eprintln!("TLS bootstrap timed out, rolled back: {}", elapsed(at));
    ensure!(out.code == 1, "exit {}: {}", out.code, out.stderr);
    ensure!(
        out.stderr.contains("did not complete its TLS bootstrap"),
        "{}",
        out.stderr
    );
    let ops = last_run_ops(node3)?;
    ensure!(
        ops.iter().any(|op| op == "write-file"),
        "the failed run wrote files: {ops:?}"
    );
    let ends = node3.sh(&format!("grep -c '\"outcome\":\"rolled-back\"' {JOURNAL}"))?;
    ensure!(
        ends.stdout.trim() != "0",
        "no rolled-back run in the journal"
    );
    let after = state_files(node3)?;
    ensure!(
        after == before,
        "files left after the rollback:\n{after}\nbefore:\n{before}"
    );

    // ---- node3: through kubestrap's discovery endpoint on node1 (the unit init installed) ----
    wait_until(
        "kubestrap-discovery.service to listen",
        Duration::from_secs(20),
        || {
            Ok(cp
                .read_string("/var/log/testbed/kubestrap-discovery.log")
                .unwrap_or_default()
                .contains("[discovery] Serving"))
        },
    )?;
    let url = format!("https://{}:9898", settings.advertise_address);
    let at = Instant::now();
    let out = node3
        .kubestrap(&[
            "join",
            "--discovery-url",
            &url,
            "--token",
            &token,
            "--discovery-token-ca-cert-hash",
            &pin,
        ])?
        .check("join through the discovery endpoint")?;
    eprintln!("node3 join via {url}: {}", elapsed(at));
    ensure!(
        out.stdout
            .contains(&format!("cluster-info from {url} verified")),
        "{}",
        out.stdout
    );
    ensure!(scenario::node_names(cp, ADMIN)?.contains(&"node3".to_string()));

    // ---- node3: reset deletes its Node through the API and cleans the host ----
    let at = Instant::now();
    let reset = node3
        .kubestrap(&["reset", "--force", "-o", "json"])?
        .check("reset on node3")?;
    eprintln!("node3 reset: {}", elapsed(at));
    let report: Value = serde_json::from_str(&reset.stdout)
        .with_context(|| format!("reset -o json: {}", reset.stdout))?;
    ensure!(
        report["removed"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["kind"] == "api-object"
                && i["target"].as_str().is_some_and(|t| t.contains("node3"))),
        "the Node object is among what reset removed: {report}"
    );
    wait_listed(cp, "node3", false)?;
    let left = node3.sh("find /etc/kubernetes /var/lib/kubelet -type f 2>/dev/null")?;
    ensure!(
        left.stdout.trim().is_empty(),
        "left after reset: {}",
        left.stdout
    );

    // ---- node3: with a discovery file (the cluster-info kubeconfig) and --tls-bootstrap-token ----
    let info = kubestrap::kubeconfig::cluster_info::kubeconfig(
        &settings.server(),
        &cp.read_file("/etc/kubernetes/pki/ca.crt")?,
    )?;
    node3.write_file("/root/cluster-info.conf", info.as_bytes(), 0o600)?;
    let at = Instant::now();
    node3
        .kubestrap(&[
            "join",
            "--discovery-file",
            "/root/cluster-info.conf",
            "--tls-bootstrap-token",
            &token,
        ])?
        .check("join with --discovery-file")?;
    eprintln!("node3 join with --discovery-file: {}", elapsed(at));
    wait_listed(cp, "node3", true)?;
    node3
        .kubestrap(&["reset", "--force"])?
        .check("reset on node3 after the file join")?;
    wait_listed(cp, "node3", false)?;

    // ---- node3: again, with a JoinConfiguration file whose taint the kubelet registers ----
    let config = join_configuration(&endpoint, &token, &pin, "1m").replace(
        "  name: node3\n",
        "  name: node3\n  taints:\n  - {key: dedicated, value: edge, effect: NoSchedule}\n",
    );
    node3.write_file("/root/join.yaml", config.as_bytes(), 0o600)?;
    let at = Instant::now();
    node3
        .kubestrap(&["join", "--config=/root/join.yaml"])?
        .check("join with a JoinConfiguration")?;
    eprintln!("node3 join with --config: {}", elapsed(at));
    wait_listed(cp, "node3", true)?;
    let flags = node3.read_string("/var/lib/kubelet/kubeadm-flags.env")?;
    ensure!(
        flags.contains("--register-with-taints=dedicated=edge:NoSchedule"),
        "{flags}"
    );
    let taints = cp
        .kubectl(&[
            "get",
            "node",
            "node3",
            "-o",
            "jsonpath={range .spec.taints[*]}{.key}={.value}:{.effect} {end}",
        ])?
        .check("node3's taints")?;
    ensure!(
        taints.stdout.contains("dedicated=edge:NoSchedule"),
        "node3's taints: {:?}",
        taints.stdout
    );
    ensure!(scenario::node_names(cp, ADMIN)?.len() == 3);
    eprintln!("total: {}", elapsed(started));
    Ok(())
}

/// A cluster of `nodes` nodes whose node1 ran `kubestrap init`, and the worker join command it printed.
fn initialised(nodes: usize) -> Result<(Cluster, String)> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(nodes))?;
    let cp = cluster.node("node1")?;
    let init = support::init_with_config(cp)?;
    let command = scenario::printed_join_command(&init.stdout)
        .with_context(|| format!("the worker join command in init's output:\n{}", init.stdout))?;
    Ok((cluster, command))
}

/// (a) One worker's join (discovery, files, TLS bootstrap), split into kubestrap's own time and the
/// kubelet double's work: from "[kubelet-start] Starting the kubelet" until the kubelet wrote
/// kubelet.conf (its mtime: the TLS bootstrap done). `docker exec`'s own cost is subtracted. RUNS
/// (default 3) joins, each on a fresh two-node cluster. Run by scripts/bench-join.sh.
#[test]
#[ignore = "benchmark: scripts/bench-join.sh"]
fn bench_join_own_time() -> Result<()> {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut own = Vec::new();
    for run in 0..runs {
        let (cluster, command) = initialised(2)?;
        let node = cluster.node("node2")?;
        // The control plane's start-up (controllers, CoreDNS) settles first: on a 2-core machine it
        // would otherwise take the CPU from the join being measured. SETTLE seconds, default 5.
        let settle = std::env::var("SETTLE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5);
        std::thread::sleep(Duration::from_secs(settle));
        let exec_started = Instant::now();
        node.exec(&["true"])?;
        let exec_cost = exec_started.elapsed();
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        let started = SystemTime::now();
        let (lines, ok) = timed_lines(node, &words)?;
        let ended = SystemTime::now();
        ensure!(ok, "join failed: {lines:?}");
        let kubelet_started = line_at(&lines, "[kubelet-start] Starting the kubelet")?;
        let bootstrapped = node
            .sh("stat -c %.9Y /etc/kubernetes/kubelet.conf")?
            .check("kubelet.conf's mtime")?
            .stdout;
        let bootstrapped = SystemTime::UNIX_EPOCH
            + Duration::from_secs_f64(bootstrapped.trim().parse().context("an mtime")?);
        let total = since(ended, started);
        let kubelet = since(bootstrapped, kubelet_started);
        let discovered = since(line_at(&lines, "[discovery]")?, started);
        let mine = total.saturating_sub(kubelet).saturating_sub(exec_cost);
        eprintln!(
            "run {run}: join {:.3}s, kubestrap's own {:.3}s (to discovery's first line {:.3}s, up to the kubelet's start {:.3}s), \
             kubelet double's TLS bootstrap {:.3}s, docker exec {:.3}s",
            total.as_secs_f64(),
            mine.as_secs_f64(),
            discovered.as_secs_f64(),
            since(kubelet_started, started).as_secs_f64(),
            kubelet.as_secs_f64(),
            exec_cost.as_secs_f64()
        );
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            for (t, l) in &lines {
                eprintln!("  +{:.3}s {l}", since(*t, started).as_secs_f64());
            }
        }
        own.push(mine);
        cluster.teardown()?;
    }
    own.sort();
    println!(
        "kubestrap's own time of a join: median {:.3}s of {runs} runs (target <= 0.300s)",
        own[own.len() / 2].as_secs_f64()
    );
    Ok(())
}

/// A worker's join: succeeded, when it ended (since all started), its stderr.
type Joined = (bool, Duration, String);

/// (b) WORKERS (default 10) workers run the printed join command at once: the wall time until the
/// last has joined, and that none failed. Run by scripts/bench-join.sh.
#[test]
#[ignore = "benchmark: scripts/bench-join.sh"]
fn bench_join_many_at_once() -> Result<()> {
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let up = Instant::now();
    let (cluster, command) = initialised(workers + 1)?;
    eprintln!(
        "{} nodes up and node1 initialised in {}",
        workers + 1,
        elapsed(up)
    );
    let nodes: Vec<&Node> = (2..=workers + 1)
        .map(|i| cluster.node(&format!("node{i}")))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let outcomes: Vec<(String, Result<Joined>)> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|node| {
                let command = command.clone();
                s.spawn(move || {
                    let out = scenario::run_join_command(node, &command)
                        .map(|o| (o.ok(), started.elapsed(), o.stderr));
                    (node.name.clone(), out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| ("?".into(), Err(anyhow::anyhow!("panicked"))))
            })
            .collect()
    });
    let wall = started.elapsed();
    let mut failed = Vec::new();
    let mut slowest = Duration::ZERO;
    for (name, outcome) in &outcomes {
        match outcome {
            Ok((true, took, _)) => slowest = slowest.max(*took),
            Ok((false, _, stderr)) => failed.push(format!("{name}: {stderr}")),
            Err(e) => failed.push(format!("{name}: {e:#}")),
        }
    }
    let listed = scenario::node_names(cluster.node("node1")?, ADMIN)?.len();
    println!(
        "{workers} workers joining at once: wall {:.3}s, slowest join {:.3}s, {} failed, {listed} Nodes listed",
        wall.as_secs_f64(),
        slowest.as_secs_f64(),
        failed.len()
    );
    cluster.teardown()?;
    ensure!(failed.is_empty(), "failed joins:\n{}", failed.join("\n"));
    ensure!(listed == workers + 1, "{listed} Nodes listed");
    Ok(())
}
