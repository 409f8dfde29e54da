//! `kubestrap discovery serve` and `kubestrap token create|list|delete` on a testbed control plane made
//! by `kubestrap init` (one cluster for every step; the controller manager runs without its
//! bootstrapsigner and tokencleaner, so every signature seen is kubestrap's own): init installs the
//! endpoint as the active unit `kubestrap-discovery.service` (cluster mode on 9898, the installed
//! binary), which `kubestrap reset` plans, stops and removes at the end; the endpoint answers
//! the ConfigMap's exact bytes with a signature that verifies independently, 4xx without a signature
//! for unknown, malformed and missing ids, a certificate chaining to the cluster CA; a flood of 10,000
//! bad requests from several clients leaves it alive, its RSS growth under 10 MiB, the rate limit seen
//! and valid requests still answered; tokens round-trip with their signatures published at once and
//! removed with them, an expired token is listed as expired and refused, a printed join command joins a
//! worker; standalone mode signs with its own tokens; `kubestrap status` reports the healthy cluster
//! (exit 0) and then a stopped scheduler and a cut-off worker, each named (exit 1).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, ADMIN, SUPER_ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::{Value, json};

use scenario::{INIT_API_PHASES as API_PHASES, INIT_FILE_PHASES as FILE_PHASES};

const CONFIG: &str = "/root/kubestrap.yaml";
const CA: &str = "/etc/kubernetes/pki/ca.crt";
const UNIT: &str = "kubestrap-discovery.service";
const UNIT_FILE: &str = "/etc/systemd/system/kubestrap-discovery.service";
/// Where the node's service manager logs the unit's output.
const UNIT_LOG: &str = "/var/log/testbed/kubestrap-discovery.log";
const VERIFY_JWS: &str = include_str!("../../tests/scripts/verify-jws.sh");
/// Flood size and clients (each from its own loopback address, so each has its own bucket).
const FLOOD: usize = 10_000;
const CLIENTS: usize = 4;

fn config(settings: &ClusterSettings) -> Result<String> {
    let text = scenario::kubestrap_config(settings)?;
    let mut docs = kubestrap::yaml::documents(&text)?;
    docs[0]["timeouts"] = json!({"kubernetesAPICall": "30s"});
    docs[1]["controllerManager"] = json!({"extraArgs": [
        {"name": "controllers", "value": "*,-bootstrapsigner,-tokencleaner"}
    ]});
    kubestrap::yaml::to_documents(&docs)
}

#[test]
fn discovery_endpoint_and_tokens_on_a_testbed_control_plane() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(2))?;
    let result = run(&cluster);
    if result.is_err() {
        eprintln!("{}", cluster.diagnostics());
        if let Ok(cp) = cluster.node("node1") {
            for log in [UNIT_LOG, "/tmp/standalone.log"] {
                if let Ok(text) = cp.read_string(log) {
                    eprintln!("--- {log}\n{text}");
                }
            }
        }
    }
    cluster.teardown()?;
    result
}

/// Starts `kubestrap discovery serve <args>` in the background on the node; returns its pid.
fn start_serving(node: &Node, args: &str, log: &str) -> Result<u32> {
    let out = node
        .sh(&format!(
            "kubestrap discovery serve {args} >{log} 2>&1 </dev/null & echo $!"
        ))?
        .check("starting discovery serve")?;
    let pid: u32 = out.stdout.trim().parse().context("the pid")?;
    wait_until("discovery serve to listen", Duration::from_secs(20), || {
        Ok(node.read_string(log)?.contains("[discovery] Serving"))
    })?;
    Ok(pid)
}

/// `curl` on the node against the endpoint: (status, body).
fn fetch(node: &Node, port: u16, query: &str) -> Result<(u16, String)> {
    let out = node
        .exec(&[
            "curl",
            "-sS",
            "--cacert",
            CA,
            "-w",
            "\n%{http_code}",
            &format!("https://127.0.0.1:{port}/cluster-info/v1/{query}"),
        ])?
        .check("curl the discovery endpoint")?;
    let (body, code) = out.stdout.rsplit_once('\n').context("a status line")?;
    Ok((code.trim().parse()?, body.to_string()))
}

fn cluster_info(node: &Node) -> Result<BTreeMap<String, String>> {
    let out = node
        .kubectl_with(
            ADMIN,
            &[
                "get",
                "configmap",
                "-n",
                "kube-public",
                "cluster-info",
                "-o",
                "json",
            ],
        )?
        .check("kubectl get cluster-info")?;
    let map: Value = serde_json::from_str(&out.stdout)?;
    Ok(serde_json::from_value(map["data"].clone())?)
}

fn rss_kib(node: &Node, pid: u32) -> Result<u64> {
    let status = node.read_string(&format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("VmRSS")?
        .parse()
        .context("VmRSS in kB")
}

fn verify(node: &Node, id: &str, secret: &str, kubeconfig: &str, jws: &str) -> Result<bool> {
    node.write_file("/tmp/payload.yaml", kubeconfig.as_bytes(), 0o644)?;
    let out = node.exec(&[
        "sh",
        "/tmp/verify-jws.sh",
        id,
        secret,
        "/tmp/payload.yaml",
        jws,
    ])?;
    Ok(out.ok())
}

fn run(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    let mut settings = ClusterSettings::for_node(cp);
    settings.pod_subnet = Some("10.244.0.0/16".into());
    cp.write_file(CONFIG, config(&settings)?.as_bytes(), 0o600)?;
    cp.write_file("/tmp/verify-jws.sh", VERIFY_JWS.as_bytes(), 0o755)?;
    cp.kubestrap(&[
        "init",
        &format!("--config={CONFIG}"),
        &format!("--skip-phases={API_PHASES}"),
    ])?
    .check("kubestrap init (file phases)")?;
    scenario::start_kubelet(cp, &settings)?;
    scenario::wait_for_api(cp, SUPER_ADMIN, Duration::from_secs(90))?;
    let init = cp
        .kubestrap(&[
            "init",
            &format!("--config={CONFIG}"),
            &format!("--skip-phases={FILE_PHASES}"),
        ])?
        .check("kubestrap init (API phases)")?;
    let init_token = init
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("[bootstrap-token] Using token: "))
        .context("init printed its token")?
        .trim()
        .to_string();
    let (init_id, init_secret) = init_token.split_once('.').context("id.secret")?;

    // ---- init installed the endpoint: the unit runs the installed binary in cluster mode ----
    let port = 9898;
    let unit = cp.read_string(UNIT_FILE)?;
    ensure!(
        unit.contains(&format!(
            "\nExecStart=/opt/testbed/bin/kubestrap discovery serve --port {port}\n"
        )),
        "{unit}"
    );
    ensure!(
        init.stdout
            .contains("[discovery] Starting kubestrap-discovery.service"),
        "{}",
        init.stdout
    );
    ensure!(
        cp.systemctl(&["is-active", UNIT])?.ok(),
        "the unit is active after init"
    );
    wait_until("the unit to serve", Duration::from_secs(20), || {
        Ok(cp
            .read_string(UNIT_LOG)
            .unwrap_or_default()
            .contains("[discovery] Serving"))
    })?;
    let pid: u32 = cp
        .systemctl(&["show", "-p", "MainPID", "--value", UNIT])?
        .check("the unit's MainPID")?
        .stdout
        .trim()
        .parse()
        .context("MainPID")?;
    ensure!(pid != 0, "the unit has a main process");

    // ---- cluster mode: the ConfigMap's bytes, verified independently; 4xx without a signature ----
    let data = cluster_info(cp)?;
    let key = format!("jws-kubeconfig-{init_id}");
    wait_until(
        "the init token to be served",
        Duration::from_secs(15),
        || Ok(fetch(cp, port, &format!("?token-id={init_id}"))?.0 == 200),
    )?;
    let (code, body) = fetch(cp, port, &format!("?token-id={init_id}"))?;
    ensure!(code == 200, "{code} {body}");
    let answer: Value = serde_json::from_str(&body)?;
    ensure!(
        answer["kubeconfig"].as_str() == data.get("kubeconfig").map(String::as_str),
        "the served kubeconfig is the ConfigMap's"
    );
    ensure!(
        answer["jws"].as_str() == data.get(&key).map(String::as_str),
        "the served JWS is the ConfigMap's {key}"
    );
    let served_kubeconfig = answer["kubeconfig"].as_str().unwrap_or_default();
    let served_jws = answer["jws"].as_str().unwrap_or_default();
    ensure!(
        verify(cp, init_id, init_secret, served_kubeconfig, served_jws)?,
        "the served signature verifies with verify-jws.sh"
    );
    ensure!(
        !verify(
            cp,
            init_id,
            "0000000000000000",
            served_kubeconfig,
            served_jws
        )?,
        "a wrong secret does not verify"
    );
    for (query, expected) in [
        ("?token-id=zzzzzz", 404),
        ("?token-id=ABCDEF", 400),
        ("?token-id=abc", 400),
        ("?token-id=abcdefg", 400),
        ("", 400),
        ("?other=1", 400),
    ] {
        let (code, body) = fetch(cp, port, query)?;
        ensure!(code == expected, "{query:?}: {code} {body}");
        ensure!(
            !body.contains("..") && !body.contains("jws"),
            "{query:?} carries no signature: {body}"
        );
    }
    // The certificate chains to the cluster CA from another node too (by the node's address).
    let worker = cluster.node("node2")?;
    worker.write_file("/tmp/ca.crt", &cp.read_file(CA)?, 0o644)?;
    worker
        .exec(&[
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "--cacert",
            "/tmp/ca.crt",
            &format!(
                "https://{}:{port}/cluster-info/v1/?token-id={init_id}",
                cp.ip
            ),
        ])?
        .check("the serving certificate verifies against ca.crt by the node's address")?;
    let openssl = cp
        .sh(&format!(
            "openssl verify -CAfile {CA} /etc/kubernetes/pki/discovery-serving.crt"
        ))?
        .check("openssl verify")?;
    ensure!(openssl.stdout.contains(": OK"), "{}", openssl.stdout);

    // ---- the flood ----
    let warm = cp.sh(&format!(
        "for i in $(seq 50); do curl -s -o /dev/null --cacert {CA} 'https://127.0.0.1:{port}/cluster-info/v1/?token-id=qqqqqq'; done"
    ))?;
    ensure!(warm.ok(), "warm-up");
    std::thread::sleep(Duration::from_secs(3));
    let before = rss_kib(cp, pid)?;
    let per_client = FLOOD / CLIENTS;
    let mut script = String::new();
    for c in 0..CLIENTS {
        // Bad ids, malformed ids and missing ids, in turn.
        script.push_str(&format!(
            "(for i in $(seq {per_client}); do case $((i % 3)) in 0) q=\"?token-id=nope{c}$((i % 10))\";; 1) q='?token-id=BAD';; 2) q='';; esac; \
             echo \"url = \\\"https://127.0.0.1:{port}/cluster-info/v1/$q\\\"\"; echo 'output = /dev/null'; done) > /tmp/flood{c}.cfg; \
             curl -s -Z --parallel-max 8 --cacert {CA} --interface 127.0.0.{} -w '%{{http_code}}\\n' -K /tmp/flood{c}.cfg > /tmp/flood{c}.out & "
            , c + 2
        ));
    }
    script.push_str("wait; cat /tmp/flood*.out | sort | uniq -c");
    let started = Instant::now();
    let flood = cp.sh(&script)?.check("the flood")?;
    eprintln!(
        "flood of {FLOOD} in {:.1}s:\n{}",
        started.elapsed().as_secs_f32(),
        flood.stdout
    );
    let counts: BTreeMap<String, usize> = flood
        .stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let n = parts.next()?.parse().ok()?;
            Some((parts.next()?.to_string(), n))
        })
        .collect();
    let total: usize = counts.values().sum();
    ensure!(total == FLOOD, "every request answered: {counts:?}");
    ensure!(
        counts
            .keys()
            .all(|c| ["400", "404", "429"].contains(&c.as_str())),
        "only 4xx: {counts:?}"
    );
    ensure!(
        counts.get("429").copied().unwrap_or(0) > FLOOD / 2,
        "the rate limit refuses most of a flood: {counts:?}"
    );
    let after = rss_kib(cp, pid)?;
    eprintln!("RSS before {before} KiB, after {after} KiB");
    ensure!(
        after < before + 10 * 1024,
        "RSS grew by {} KiB (limit 10 MiB)",
        after.saturating_sub(before)
    );
    let (code, _) = fetch(cp, port, &format!("?token-id={init_id}"))?;
    ensure!(code == 200, "a valid request is answered after the flood");
    ensure!(cp.exists(&format!("/proc/{pid}"))?, "the server is alive");

    // ---- tokens ----
    let created = cp
        .kubestrap(&[
            "token",
            "create",
            "--ttl",
            "2h",
            "--description",
            "discovery test",
            "-o",
            "json",
        ])?
        .check("token create -o json")?;
    let doc: Value = serde_json::from_str(&created.stdout)?;
    ensure!(
        doc["kind"] == "BootstrapToken" && doc["apiVersion"] == "output.kubeadm.k8s.io/v1alpha3",
        "{doc}"
    );
    let token = doc["token"].as_str().context("token")?.to_string();
    let (id, secret) = token.split_once('.').context("id.secret")?;
    let data = cluster_info(cp)?;
    let jws = data
        .get(&format!("jws-kubeconfig-{id}"))
        .context("the new token's signature is published at once")?;
    ensure!(
        verify(cp, id, secret, &data["kubeconfig"], jws)?,
        "the new signature verifies"
    );
    let listed = cp
        .kubestrap(&["token", "list", "-o", "json"])?
        .check("token list")?;
    let listed: Vec<Value> = serde_json::Deserializer::from_str(&listed.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()?;
    let mine = listed
        .iter()
        .find(|t| t["token"] == token.as_str())
        .context("the new token is listed")?;
    ensure!(mine["description"] == "discovery test", "{mine}");
    ensure!(
        mine["usages"] == json!(["signing", "authentication"]),
        "{mine}"
    );
    wait_until(
        "the new token to be served",
        Duration::from_secs(15),
        || Ok(fetch(cp, port, &format!("?token-id={id}"))?.0 == 200),
    )?;
    cp.kubestrap(&["token", "delete", id])?
        .check("token delete")?;
    ensure!(
        !cluster_info(cp)?.contains_key(&format!("jws-kubeconfig-{id}")),
        "the deleted token's signature is gone"
    );
    let secret_left = cp.kubectl_with(
        ADMIN,
        &[
            "get",
            "secret",
            "-n",
            "kube-system",
            &format!("bootstrap-token-{id}"),
        ],
    )?;
    ensure!(!secret_left.ok(), "the Secret is gone");
    wait_until(
        "the deleted token to be refused",
        Duration::from_secs(15),
        || Ok(fetch(cp, port, &format!("?token-id={id}"))?.0 == 404),
    )?;
    let again = cp.kubestrap(&["token", "delete", id])?;
    ensure!(
        again.code == 1 && again.stderr.contains("not found"),
        "{again:?}"
    );

    // An expired token: listed as expired, refused although its stale signature stays (no tokencleaner).
    let short = cp
        .kubestrap(&["token", "create", "--ttl", "3s"])?
        .check("token create --ttl 3s")?;
    let short = short.stdout.trim().to_string();
    let (short_id, _) = short.split_once('.').context("id.secret")?;
    std::thread::sleep(Duration::from_secs(4));
    let table = cp.kubestrap(&["token", "list"])?.check("token list")?;
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(&short))
        .context("the expired token is listed")?;
    ensure!(row.contains("<expired>"), "{row}");
    ensure!(
        cluster_info(cp)?.contains_key(&format!("jws-kubeconfig-{short_id}")),
        "no tokencleaner: the stale signature stays in the ConfigMap"
    );
    wait_until(
        "the expired token to be refused",
        Duration::from_secs(15),
        || Ok(fetch(cp, port, &format!("?token-id={short_id}"))?.0 == 404),
    )?;

    // Bad input: exit 2, the secret not echoed, nothing created.
    let bad = cp.kubestrap(&["token", "create", "abcdef.TOOSHORT", "--usages", "nope"])?;
    ensure!(bad.code == 2, "{bad:?}");
    ensure!(
        !bad.stderr.contains("TOOSHORT"),
        "the token is withheld: {}",
        bad.stderr
    );
    ensure!(bad.stderr.contains("--usages"), "{}", bad.stderr);

    // --print-join-command joins a worker.
    let join = cp
        .kubestrap(&["token", "create", "--print-join-command"])?
        .check("token create --print-join-command")?;
    let words: Vec<&str> = join.stdout.split_whitespace().collect();
    ensure!(
        words.first() == Some(&"kubestrap") && words.get(1) == Some(&"join"),
        "{}",
        join.stdout
    );
    let at = |flag: &str| -> Result<String> {
        let i = words
            .iter()
            .position(|w| *w == flag)
            .with_context(|| format!("{flag} in {}", join.stdout))?;
        Ok(words.get(i + 1).context("a value")?.to_string())
    };
    let join_token = at("--token")?;
    let pin = at("--discovery-token-ca-cert-hash")?;
    let ca_pem = cp.read_string(CA)?;
    ensure!(
        kubestrap::pki::pin::pins(ca_pem.as_bytes())? == [pin.clone()],
        "the printed pin is the CA's"
    );
    ensure!(
        words.get(2).copied() == Some(settings.server().trim_start_matches("https://")),
        "the endpoint is cluster-info's: {}",
        join.stdout
    );
    let command =
        scenario::printed_join_command(&join.stdout).context("the printed join command")?;
    ensure!(command.contains(&join_token), "{command}");
    scenario::run_join_command(worker, &command)?.check("the printed join command on node2")?;
    wait_until(
        "node2 to join with the printed command",
        Duration::from_secs(90),
        || Ok(scenario::node_names(cp, ADMIN)?.contains(&"node2".to_string())),
    )?;

    // ---- standalone mode: signs with its own tokens, refuses others ----
    let own = "qwerty.0123456789qwerty";
    cp.write_file(
        "/root/tokens",
        format!("# discovery tokens\n{own}\n").as_bytes(),
        0o600,
    )?;
    let spid = start_serving(
        cp,
        "--port 9899 --token-file /root/tokens",
        "/tmp/standalone.log",
    )?;
    let log = cp.read_string("/tmp/standalone.log")?;
    ensure!(
        !log.contains("0123456789qwerty"),
        "the secret is not logged: {log}"
    );
    let (code, body) = fetch(cp, 9899, "?token-id=qwerty")?;
    ensure!(code == 200, "{code} {body}");
    let answer: Value = serde_json::from_str(&body)?;
    ensure!(
        answer["kubeconfig"].as_str() == cluster_info(cp)?.get("kubeconfig").map(String::as_str),
        "standalone builds the same cluster-info kubeconfig"
    );
    ensure!(
        verify(
            cp,
            "qwerty",
            "0123456789qwerty",
            answer["kubeconfig"].as_str().unwrap_or_default(),
            answer["jws"].as_str().unwrap_or_default()
        )?,
        "the standalone signature verifies"
    );
    ensure!(
        fetch(cp, 9899, &format!("?token-id={init_id}"))?.0 == 404,
        "only its own tokens"
    );
    cp.sh(&format!("kill {spid}"))?
        .check("stopping standalone")?;

    // ---- reset stops the unit and removes it: its plan lists both, and afterwards nothing listens ----
    let plan = cp
        .kubestrap(&["reset", "--dry-run", "-o", "json"])?
        .check("reset --dry-run")?;
    let plan: Value = serde_json::from_str(&plan.stdout)?;
    let planned = plan["planned"].as_array().context("planned")?;
    ensure!(
        planned
            .iter()
            .any(|i| i["kind"] == "service" && i["target"] == UNIT),
        "the plan stops the unit: {plan}"
    );
    ensure!(
        planned
            .iter()
            .any(|i| i["kind"] == "path" && i["target"] == UNIT_FILE),
        "the plan removes the unit file: {plan}"
    );
    let reset = cp
        .kubestrap(&["reset", "--force", "-o", "json"])?
        .check("kubestrap reset")?;
    let report: Value = serde_json::from_str(&reset.stdout)?;
    ensure!(
        report["removed"]
            .as_array()
            .context("removed")?
            .iter()
            .any(|i| i["kind"] == "service" && i["target"] == UNIT),
        "the report names the unit: {report}"
    );
    ensure!(!cp.exists(UNIT_FILE)?, "the unit file is gone");
    ensure!(
        !cp.systemctl(&["is-active", UNIT])?.ok(),
        "the unit is not active after reset"
    );
    ensure!(!cp.exists(&format!("/proc/{pid}"))?, "the server is gone");
    let listening = cp.sh(&format!(
        "curl -sk -o /dev/null --max-time 3 https://127.0.0.1:{port}/cluster-info/v1/"
    ))?;
    ensure!(!listening.ok(), "nothing answers on {port} after reset");
    Ok(())
}
