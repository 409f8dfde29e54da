//! kubestrap init's API phases against a testbed control plane (one cluster for every step):
//! a failure injected in bootstrap-token undoes what that run created; a full run then leaves the
//! ConfigMaps, the token Secret, every RBAC object, the control-plane label and taint, the uploaded
//! certificates and the CoreDNS and kube-proxy objects, visible with kubectl; the cluster-info
//! signature verifies with an independent script (the controller manager runs without its
//! bootstrapsigner, so the signature is kubestrap's own); the printed CA pin is openssl's; and a worker
//! fetches cluster-info anonymously, checks signature and pin, and joins with the printed
//! `kubestrap join` command — the bootstrap RBAC proven by use.
//!
//! The first run is kubestrap init up to a running control plane (kubelet-start, wait-control-plane
//! included: the testbed writes no file on node1); the later runs are init's API phases.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, ADMIN, SUPER_ADMIN};
use kubestrap_testbed::driver::{Cluster, ClusterSpec, Node, wait_until};
use serde_json::{Value, json};

use scenario::{INIT_API_PHASES as API_PHASES, INIT_FILE_PHASES as FILE_PHASES};

const CONFIG: &str = "/root/kubestrap.yaml";
const BROKEN_CONFIG: &str = "/root/kubestrap-broken.yaml";
const VERIFY_JWS: &str = include_str!("../../tests/scripts/verify-jws.sh");

/// kubestrap's configuration for node1: a pod subnet, short API timeouts, and a controller manager
/// without the bootstrapsigner and tokencleaner (which would re-sign cluster-info and hide a missing or
/// wrong signature of kubestrap's).
fn config(settings: &ClusterSettings, cert_dir: Option<&str>) -> Result<String> {
    let text = scenario::kubestrap_config(settings)?;
    let mut docs = kubestrap::yaml::documents(&text)?;
    docs[0]["timeouts"] = json!({"kubernetesAPICall": "30s"});
    docs[1]["controllerManager"] = json!({"extraArgs": [
        {"name": "controllers", "value": "*,-bootstrapsigner,-tokencleaner"}
    ]});
    if let Some(dir) = cert_dir {
        docs[1]["certificatesDir"] = json!(dir);
    }
    kubestrap::yaml::to_documents(&docs)
}

fn kubectl_json(node: &Node, args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = node
        .kubectl_with(SUPER_ADMIN, &all)?
        .check(&format!("kubectl {}", args.join(" ")))?;
    Ok(serde_json::from_str(&out.stdout)?)
}

fn exists(node: &Node, args: &[&str]) -> Result<bool> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let out = node.kubectl_with(SUPER_ADMIN, &all)?;
    if out.ok() {
        return Ok(true);
    }
    ensure!(
        out.stderr.contains("NotFound") || out.stderr.contains("not found"),
        "kubectl get {args:?}: {}",
        out.stderr
    );
    Ok(false)
}

/// Every object kind/name (namespace) the API phases create.
fn created_objects(token_id: &str) -> Vec<Vec<String>> {
    let secret = format!("bootstrap-token-{token_id}");
    let list: Vec<Vec<&str>> = vec![
        vec!["configmap", "kubeadm-config", "-n", "kube-system"],
        vec!["configmap", "kubelet-config", "-n", "kube-system"],
        vec!["configmap", "kubestrap-config", "-n", "kube-system"],
        vec!["role", "kubeadm:nodes-kubeadm-config", "-n", "kube-system"],
        vec![
            "rolebinding",
            "kubeadm:nodes-kubeadm-config",
            "-n",
            "kube-system",
        ],
        vec!["role", "kubeadm:kubelet-config", "-n", "kube-system"],
        vec!["rolebinding", "kubeadm:kubelet-config", "-n", "kube-system"],
        vec![
            "role",
            "kubestrap:nodes-kubestrap-config",
            "-n",
            "kube-system",
        ],
        vec![
            "rolebinding",
            "kubestrap:nodes-kubestrap-config",
            "-n",
            "kube-system",
        ],
        vec!["secret", &secret, "-n", "kube-system"],
        vec!["clusterrole", "kubeadm:get-nodes"],
        vec!["clusterrolebinding", "kubeadm:get-nodes"],
        vec!["clusterrolebinding", "kubeadm:kubelet-bootstrap"],
        vec!["clusterrolebinding", "kubeadm:node-autoapprove-bootstrap"],
        vec![
            "clusterrolebinding",
            "kubeadm:node-autoapprove-certificate-rotation",
        ],
        vec!["clusterrolebinding", "kubeadm:cluster-admins"],
    ];
    list.into_iter()
        .map(|v| v.into_iter().map(str::to_string).collect())
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The token, the pin and the certificate key of init's printed join commands.
struct Printed {
    token: String,
    pin: String,
    certificate_key: Option<String>,
}

fn printed(stdout: &str) -> Result<Printed> {
    let worker = stdout
        .lines()
        .find(|l| l.starts_with("kubestrap join "))
        .context("a worker join command")?;
    let token = worker
        .split_whitespace()
        .nth(4)
        .context("the token")?
        .to_string();
    let pin = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("--discovery-token-ca-cert-hash "))
        .context("a CA pin")?
        .trim()
        .to_string();
    let certificate_key = stdout
        .lines()
        .skip_while(|l| *l != "[upload-certs] Using certificate key:")
        .nth(1)
        .map(|k| k.trim().to_string());
    Ok(Printed {
        token,
        pin,
        certificate_key,
    })
}

#[test]
fn init_api_phases_on_a_testbed_control_plane() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(2))?;
    let result = run(&cluster);
    if result.is_err() {
        eprintln!("{}", cluster.diagnostics());
    }
    cluster.teardown()?;
    result
}

fn run(cluster: &Cluster) -> Result<()> {
    let cp = cluster.node("node1")?;
    let mut settings = ClusterSettings::for_node(cp);
    settings.pod_subnet = Some("10.244.0.0/16".into());
    cp.write_file(CONFIG, config(&settings, None)?.as_bytes(), 0o600)?;
    cp.write_file(
        BROKEN_CONFIG,
        config(&settings, Some("/etc/kubernetes/pki-missing"))?.as_bytes(),
        0o600,
    )?;
    let started = Instant::now();
    let files = cp.kubestrap(&[
        "init",
        &format!("--config={CONFIG}"),
        &format!("--skip-phases={API_PHASES}"),
    ])?;
    files.check("kubestrap init (up to the running control plane)")?;
    scenario::wait_for_api(cp, SUPER_ADMIN, Duration::from_secs(90))?;
    wait_until("node1 to register", Duration::from_secs(60), || {
        Ok(scenario::node_names(cp, SUPER_ADMIN)? == ["node1"])
    })?;
    eprintln!("control plane up: {:.1}s", started.elapsed().as_secs_f32());

    // A failure in bootstrap-token (the CA is not where the configuration says) rolls back what this
    // run created before it: ConfigMaps, RBAC objects, the token Secret, the Node's labels.
    let failed = cp.kubestrap(&[
        "init",
        &format!("--config={BROKEN_CONFIG}"),
        &format!("--skip-phases={FILE_PHASES}"),
    ])?;
    ensure!(failed.code == 1, "the broken run fails: {failed:?}");
    ensure!(
        failed
            .stderr
            .contains("error execution phase bootstrap-token")
            && failed.stderr.contains("pki-missing/ca.crt"),
        "the error names the phase and the file: {}",
        failed.stderr
    );
    let token_id = failed
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("[bootstrap-token] Using token: "))
        .and_then(|t| t.split('.').next())
        .context("the failed run printed its token")?
        .to_string();
    for object in created_objects(&token_id) {
        ensure!(
            !exists(cp, &strs(&object))?,
            "{object:?} was rolled back\n{}",
            failed.stdout
        );
    }
    let node = kubectl_json(cp, &["get", "node", "node1"])?;
    ensure!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"].is_null(),
        "the Node's labels were put back: {}",
        node["metadata"]["labels"]
    );

    // The real run.
    let run = cp.kubestrap(&[
        "init",
        &format!("--config={CONFIG}"),
        &format!("--skip-phases={FILE_PHASES}"),
        "--upload-certs",
    ])?;
    let run = run.check("kubestrap init (API phases)")?;
    eprintln!("{}", run.stdout);
    let printed = printed(&run.stdout)?;
    let (token_id, token_secret) = printed
        .token
        .split_once('.')
        .context("a printed id.secret token")?;
    for object in created_objects(token_id) {
        ensure!(exists(cp, &strs(&object))?, "{object:?} exists");
    }
    for object in [
        vec![
            "role",
            "kubeadm:bootstrap-signer-clusterinfo",
            "-n",
            "kube-public",
        ],
        vec![
            "rolebinding",
            "kubeadm:bootstrap-signer-clusterinfo",
            "-n",
            "kube-public",
        ],
        vec!["role", "kubeadm:kubeadm-certs", "-n", "kube-system"],
        vec!["rolebinding", "kubeadm:kubeadm-certs", "-n", "kube-system"],
        vec!["deployment", "coredns", "-n", "kube-system"],
        vec!["configmap", "coredns", "-n", "kube-system"],
        vec!["serviceaccount", "coredns", "-n", "kube-system"],
        vec!["clusterrole", "system:coredns"],
        vec!["clusterrolebinding", "system:coredns"],
        vec!["daemonset", "kube-proxy", "-n", "kube-system"],
        vec!["serviceaccount", "kube-proxy", "-n", "kube-system"],
        vec!["clusterrolebinding", "kubeadm:node-proxier"],
        vec!["role", "kube-proxy", "-n", "kube-system"],
        vec!["rolebinding", "kube-proxy", "-n", "kube-system"],
    ] {
        ensure!(exists(cp, &object)?, "{object:?} exists");
    }
    let node = kubectl_json(cp, &["get", "node", "node1"])?;
    ensure!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
            && node["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"]
                == "",
        "control-plane labels: {}",
        node["metadata"]["labels"]
    );
    ensure!(
        node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["key"] == "node-role.kubernetes.io/control-plane"
                && t["effect"] == "NoSchedule"),
        "control-plane taint: {}",
        node["spec"]
    );
    let secret = kubectl_json(
        cp,
        &[
            "get",
            "secret",
            "-n",
            "kube-system",
            &format!("bootstrap-token-{token_id}"),
        ],
    )?;
    ensure!(
        secret["type"] == "bootstrap.kubernetes.io/token",
        "{secret}"
    );
    let dns = kubectl_json(cp, &["get", "service", "-n", "kube-system", "kube-dns"])?;
    ensure!(dns["spec"]["clusterIP"] == "10.96.0.10", "{}", dns["spec"]);
    let proxy = kubectl_json(cp, &["get", "configmap", "-n", "kube-system", "kube-proxy"])?;
    ensure!(
        proxy["data"]["config.conf"]
            .as_str()
            .unwrap_or_default()
            .contains("clusterCIDR: 10.244.0.0/16"),
        "{}",
        proxy["data"]
    );
    let kubeadm_config = kubectl_json(
        cp,
        &["get", "configmap", "-n", "kube-system", "kubeadm-config"],
    )?;
    ensure!(
        kubeadm_config["data"]["ClusterConfiguration"]
            .as_str()
            .unwrap_or_default()
            .contains("podSubnet: 10.244.0.0/16"),
        "{}",
        kubeadm_config["data"]
    );

    // The uploaded certificates decrypt with the printed key and are the node's own files; the Secret
    // belongs to a two-hour token.
    let key = printed
        .certificate_key
        .as_deref()
        .context("--upload-certs prints the generated certificate key")?;
    let certs = kubectl_json(cp, &["get", "secret", "-n", "kube-system", "kubeadm-certs"])?;
    let owner = &certs["metadata"]["ownerReferences"][0];
    ensure!(
        owner["kind"] == "Secret" && owner["controller"] == true,
        "{owner}"
    );
    let owner_secret = kubectl_json(
        cp,
        &[
            "get",
            "secret",
            "-n",
            "kube-system",
            owner["name"].as_str().unwrap_or_default(),
        ],
    )?;
    ensure!(
        owner_secret["metadata"]["uid"] == owner["uid"],
        "the owner reference names the token's Secret"
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sealed = b64.decode(
        certs["data"]["ca.key"]
            .as_str()
            .context("ca.key uploaded")?,
    )?;
    let opened = kubestrap::certs::upload::decrypt(key, &sealed)?;
    ensure!(
        opened == cp.read_file("/etc/kubernetes/pki/ca.key")?,
        "ca.key round-trips"
    );

    // cluster-info: signed by kubestrap (the bootstrapsigner is off), verified independently.
    let manifest = cp.read_string("/etc/kubernetes/manifests/kube-controller-manager.yaml")?;
    ensure!(
        manifest.contains("--controllers=*,-bootstrapsigner,-tokencleaner"),
        "{manifest}"
    );
    cp.write_file("/tmp/verify-jws.sh", VERIFY_JWS.as_bytes(), 0o755)?;
    let jws_key = format!("jws-kubeconfig-{token_id}");
    let get = |node: &Node, kubeconfig: &str, key: &str| -> Result<String> {
        Ok(node
            .kubectl_with(
                kubeconfig,
                &[
                    "get",
                    "configmap",
                    "-n",
                    "kube-public",
                    "cluster-info",
                    "-o",
                    &format!("go-template={{{{index .data \"{key}\"}}}}"),
                ],
            )?
            .check("reading cluster-info")?
            .stdout)
    };
    let payload = get(cp, ADMIN, "kubeconfig")?;
    let jws = get(cp, ADMIN, &jws_key)?;
    cp.write_file("/tmp/cluster-info.yaml", payload.as_bytes(), 0o644)?;
    cp.exec(&[
        "sh",
        "/tmp/verify-jws.sh",
        token_id,
        token_secret,
        "/tmp/cluster-info.yaml",
        &jws,
    ])?
    .check("verify-jws.sh on node1")?;
    let bad = cp.exec(&[
        "sh",
        "/tmp/verify-jws.sh",
        token_id,
        "0000000000000000",
        "/tmp/cluster-info.yaml",
        &jws,
    ])?;
    ensure!(bad.code == 1, "a wrong secret does not verify");

    // The printed pin is openssl's.
    let openssl = cp
        .sh("openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum")?
        .check("openssl pin")?;
    let hex = openssl.stdout.split_whitespace().next().unwrap_or_default();
    ensure!(
        printed.pin == format!("sha256:{hex}"),
        "printed {} vs openssl {hex}",
        printed.pin
    );

    // A worker: cluster-info anonymously, signature and pin checked, then the TLS bootstrap.
    let worker = cluster.node("node2")?;
    let fetched = worker
        .exec(&[
            "curl",
            "-sSk",
            &format!(
                "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
                settings.server()
            ),
        ])?
        .check("fetching cluster-info anonymously")?;
    let info: Value = serde_json::from_str(&fetched.stdout)
        .with_context(|| format!("cluster-info as anonymous: {}", fetched.stdout))?;
    let payload = info["data"]["kubeconfig"]
        .as_str()
        .context("cluster-info's kubeconfig")?
        .to_string();
    let jws = info["data"][&jws_key]
        .as_str()
        .context("cluster-info's signature")?
        .to_string();
    worker.write_file("/tmp/verify-jws.sh", VERIFY_JWS.as_bytes(), 0o755)?;
    worker.write_file("/tmp/cluster-info.yaml", payload.as_bytes(), 0o644)?;
    worker
        .exec(&[
            "sh",
            "/tmp/verify-jws.sh",
            token_id,
            token_secret,
            "/tmp/cluster-info.yaml",
            &jws,
        ])?
        .check("verify-jws.sh on node2")?;
    let info = kubestrap::kubeconfig::KubeConfig::parse(&payload)?;
    let ca = info.clusters[0]
        .cluster
        .certificate_authority_data
        .clone()
        .context("cluster-info carries the CA")?
        .0;
    let pins = kubestrap::pki::pin::pins(&ca)?;
    ensure!(
        pins == [printed.pin.clone()],
        "the CA in cluster-info has the printed pin"
    );
    let command =
        scenario::printed_join_command(&run.stdout).context("the printed worker join command")?;
    scenario::run_join_command(worker, &command)?.check("the printed join command on node2")?;
    wait_until(
        "node2 to register with the printed token",
        Duration::from_secs(90),
        || Ok(scenario::node_names(cp, ADMIN)?.contains(&"node2".to_string())),
    )?;
    if !run
        .stdout
        .contains("Your Kubernetes control-plane has initialized successfully!")
    {
        bail!("the closing message is missing:\n{}", run.stdout);
    }
    Ok(())
}
