//! Invalid flags and configuration files: exit code 2, the field and the value named, nothing written under --root.

use std::path::Path;

use assert_cmd::Command;

struct Case {
    name: &'static str,
    args: Vec<String>,
    config: Option<&'static str>,
    /// Substrings stderr must contain (the field, and the value unless it is a secret).
    expect: Vec<&'static str>,
}

fn case(name: &'static str, args: &[&str], expect: &[&'static str]) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        config: None,
        expect: expect.to_vec(),
    }
}

fn config_case(name: &'static str, config: &'static str, expect: &[&'static str]) -> Case {
    Case {
        name,
        args: Vec::new(),
        config: Some(config),
        expect: expect.to_vec(),
    }
}

const HEAD: &str = "apiVersion: kubeadm.k8s.io/v1beta4\n";

fn cluster(body: &str) -> String {
    format!("{HEAD}kind: ClusterConfiguration\n{body}")
}

fn cases() -> Vec<Case> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    vec![
        case(
            "bad advertise address",
            &["--apiserver-advertise-address", "300.1.1.1"],
            &["advertiseAddress", "300.1.1.1"],
        ),
        case(
            "unspecified advertise address",
            &["--apiserver-advertise-address", "0.0.0.0"],
            &["advertiseAddress", "0.0.0.0"],
        ),
        case(
            "multicast advertise address",
            &["--apiserver-advertise-address", "224.0.0.1"],
            &["advertiseAddress", "224.0.0.1"],
        ),
        case(
            "bind port zero",
            &["--apiserver-bind-port", "0"],
            &["--apiserver-bind-port", "\"0\""],
        ),
        case(
            "bind port too large",
            &["--apiserver-bind-port", "70000"],
            &["--apiserver-bind-port", "70000"],
        ),
        case(
            "bind port not a number",
            &["--apiserver-bind-port", "abc"],
            &["--apiserver-bind-port", "abc"],
        ),
        case(
            "pod CIDR prefix out of range",
            &["--pod-network-cidr", "10.244.0.0/33"],
            &["podSubnet", "10.244.0.0/33"],
        ),
        case(
            "pod CIDR with host bits",
            &["--pod-network-cidr", "10.244.1.0/16"],
            &["podSubnet", "10.244.1.0/16"],
        ),
        case(
            "pod CIDR overlapping services",
            &["--pod-network-cidr", "10.96.0.0/16"],
            &["podSubnet", "10.96.0.0/16", "overlaps"],
        ),
        case(
            "pod CIDR smaller than a node",
            &["--pod-network-cidr", "10.244.0.0/25"],
            &["podSubnet", "10.244.0.0/25"],
        ),
        case(
            "pod CIDR dual-stack of one family",
            &["--pod-network-cidr", "10.244.0.0/16,10.245.0.0/16"],
            &["podSubnet", "10.245.0.0/16"],
        ),
        case(
            "service CIDR too large",
            &["--service-cidr", "10.0.0.0/8"],
            &["serviceSubnet", "10.0.0.0/8", "too large"],
        ),
        case(
            "service CIDR too small",
            &["--service-cidr", "10.96.0.0/29"],
            &["serviceSubnet", "10.96.0.0/29", "too small"],
        ),
        case(
            "IPv6 service CIDR too large",
            &["--service-cidr", "fd00::/64"],
            &["serviceSubnet", "fd00::/64"],
        ),
        case(
            "service CIDR garbage",
            &["--service-cidr", "services"],
            &["serviceSubnet", "services"],
        ),
        case(
            "mixed-case node name",
            &["--node-name", "Node-A"],
            &["nodeRegistration.name", "Node-A"],
        ),
        case(
            "node name with underscore",
            &["--node-name", "node_a"],
            &["nodeRegistration.name", "node_a"],
        ),
        case(
            "unsupported Kubernetes version",
            &["--kubernetes-version", "v1.30.0"],
            &["kubernetesVersion", "v1.30.0"],
        ),
        case(
            "version label",
            &["--kubernetes-version", "stable-1"],
            &["kubernetesVersion", "stable-1"],
        ),
        case(
            "version garbage",
            &["--kubernetes-version", "banana"],
            &["kubernetesVersion", "banana"],
        ),
        case(
            "uppercase token",
            &["--token", "ABCDEF.0123456789abcdef"],
            &["bootstrapTokens[0].token"],
        ),
        case(
            "token without a dot",
            &["--token", "abcdef0123456789abcdef"],
            &["bootstrapTokens[0].token"],
        ),
        case(
            "token TTL in days",
            &["--token-ttl", "1d"],
            &["--token-ttl", "1d"],
        ),
        case(
            "DNS domain not lowercase",
            &["--service-dns-domain", "Cluster.Local"],
            &["dnsDomain", "Cluster.Local"],
        ),
        case(
            "control-plane endpoint port",
            &["--control-plane-endpoint", "lb.example:99999"],
            &["controlPlaneEndpoint", "lb.example:99999"],
        ),
        case(
            "control-plane endpoint host",
            &["--control-plane-endpoint", "bad_host:6443"],
            &["controlPlaneEndpoint", "bad_host:6443"],
        ),
        case(
            "short certificate key",
            &["--certificate-key", "abc123"],
            &["certificateKey"],
        ),
        case(
            "relative CRI socket",
            &["--cri-socket", "run/containerd.sock"],
            &["criSocket", "run/containerd.sock"],
        ),
        case(
            "image repository with scheme",
            &["--image-repository", "https://registry.example"],
            &["imageRepository", "https://registry.example"],
        ),
        case(
            "relative cert dir",
            &["--cert-dir", "pki"],
            &["certificatesDir", "pki"],
        ),
        case(
            "unknown phase to skip",
            &["--skip-phases", "certs/nope"],
            &["--skip-phases", "certs/nope"],
        ),
        case(
            "ignore all mixed with names",
            &["--ignore-preflight-errors", "all,Swap"],
            &["--ignore-preflight-errors", "all,Swap"],
        ),
        case(
            "discovery port out of range",
            &["--discovery-port", "70000"],
            &["--discovery-port", "\"70000\""],
        ),
        case(
            "missing patches directory",
            &["--patches", "/nonexistent/kubestrap-patches"],
            &["patches.directory", "/nonexistent/kubestrap-patches"],
        ),
        case(
            "pod CIDR list with a space",
            &["--pod-network-cidr", "10.244.0.0/16, fd00:10:244::/56"],
            &[
                "podSubnet",
                "10.244.0.0/16, fd00:10:244::/56",
                "without spaces",
            ],
        ),
        case(
            "service CIDR list with a space",
            &["--service-cidr", "10.96.0.0/12 ,fd00:10:96::/112"],
            &[
                "serviceSubnet",
                "10.96.0.0/12 ,fd00:10:96::/112",
                "without spaces",
            ],
        ),
        case(
            "negative token TTL",
            &["--token-ttl", "-5m"],
            &["--token-ttl", "-5m", "negative"],
        ),
        case(
            "phase to skip that does not exist",
            &["--skip-phases", "nosuchphase"],
            &["--skip-phases", "nosuchphase"],
        ),
        case("verbosity not a number", &["-v", "high"], &["high"]),
        case("unknown output format", &["-o", "xml"], &["xml"]),
        case(
            "unknown pod network",
            &["--pod-network", "cilium"],
            &["cilium"],
        ),
        config_case(
            "unknown field",
            leak(cluster("networking:\n  podSubnett: 10.244.0.0/16\n")),
            &["ClusterConfiguration.networking.podSubnett"],
        ),
        config_case(
            "old API version",
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n",
            &["InitConfiguration.apiVersion", "kubeadm.k8s.io/v1beta3"],
        ),
        config_case(
            "unknown encryption algorithm",
            leak(cluster("encryptionAlgorithm: RSA-1024\n")),
            &["encryptionAlgorithm", "RSA-1024"],
        ),
        config_case(
            "validity in days",
            leak(cluster("certificateValidityPeriod: 365d\n")),
            &["certificateValidityPeriod", "365d"],
        ),
        config_case(
            "validity too short",
            leak(cluster("certificateValidityPeriod: 10m\n")),
            &["certificateValidityPeriod", "10m0s"],
        ),
        config_case(
            "etcd too old",
            leak(cluster("etcd:\n  local:\n    imageTag: 3.3.10-0\n")),
            &["etcd.local.imageTag", "3.3.10-0"],
        ),
        config_case(
            "local and external etcd",
            leak(cluster(
                "etcd:\n  local: {}\n  external:\n    endpoints: [\"https://10.0.0.9:2379\"]\n",
            )),
            &["etcd", "mutually exclusive"],
        ),
        config_case(
            "external etcd endpoint not a URL",
            leak(cluster(
                "etcd:\n  external:\n    endpoints: [\"10.0.0.9:2379\"]\n",
            )),
            &["etcd.external.endpoints[0]", "10.0.0.9:2379"],
        ),
        config_case(
            "relative etcd data dir",
            leak(cluster("etcd:\n  local:\n    dataDir: var/lib/etcd\n")),
            &["etcd.local.dataDir", "var/lib/etcd"],
        ),
        config_case(
            "taint effect",
            leak(format!(
                "{HEAD}kind: InitConfiguration\nnodeRegistration:\n  taints:\n  - key: a\n    effect: Sometimes\n"
            )),
            &["nodeRegistration.taints[0].effect", "Sometimes"],
        ),
        config_case(
            "image pull policy",
            leak(format!(
                "{HEAD}kind: InitConfiguration\nnodeRegistration:\n  imagePullPolicy: Sometimes\n"
            )),
            &["nodeRegistration.imagePullPolicy", "Sometimes"],
        ),
        config_case(
            "token usage",
            leak(format!(
                "{HEAD}kind: InitConfiguration\nbootstrapTokens:\n- usages: [bogus]\n"
            )),
            &["bootstrapTokens[0].usages", "bogus"],
        ),
        config_case(
            "token group",
            leak(format!(
                "{HEAD}kind: InitConfiguration\nbootstrapTokens:\n- groups: [admins]\n"
            )),
            &["bootstrapTokens[0].groups", "admins"],
        ),
        config_case(
            "extra arg with dashes",
            leak(cluster(
                "apiServer:\n  extraArgs:\n  - name: --v\n    value: \"2\"\n",
            )),
            &["apiServer.extraArgs[0].name", "--v"],
        ),
        config_case(
            "extra volume relative path",
            leak(cluster(
                "apiServer:\n  extraVolumes:\n  - name: audit\n    hostPath: audit\n    mountPath: /audit\n",
            )),
            &["apiServer.extraVolumes[0].hostPath", "audit"],
        ),
        config_case(
            "unknown feature gate",
            leak(cluster("featureGates:\n  MakeItFast: true\n")),
            &["featureGates", "MakeItFast"],
        ),
        config_case(
            "node CIDR mask too large",
            leak(cluster(
                "controllerManager:\n  extraArgs:\n  - name: node-cidr-mask-size\n    value: \"40\"\n",
            )),
            &["node-cidr-mask-size", "40"],
        ),
        config_case(
            "bind port in file",
            leak(format!(
                "{HEAD}kind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: 0\n"
            )),
            &["localAPIEndpoint.bindPort", "\"0\""],
        ),
        config_case(
            "bind port wrong type",
            leak(format!(
                "{HEAD}kind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: abc\n"
            )),
            &["localAPIEndpoint.bindPort", "abc"],
        ),
        config_case(
            "YAML syntax error",
            "apiVersion: [unclosed\n",
            &["--config", "YAML"],
        ),
        config_case(
            "document without kind",
            "apiVersion: kubeadm.k8s.io/v1beta4\n",
            &["kind"],
        ),
    ]
}

fn assert_empty_dir(dir: &Path, case: &str) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        leftovers.is_empty(),
        "{case}: files were created under --root: {leftovers:?}"
    );
}

#[test]
fn every_invalid_input_exits_2_names_the_field_and_writes_nothing() {
    let cases = cases();
    assert!(cases.len() >= 30, "at least 30 distinct invalid inputs");
    let mut failures = Vec::new();
    for case in &cases {
        let root = tempfile::tempdir().unwrap();
        let config_dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::cargo_bin("kubestrap").unwrap();
        cmd.arg("--root").arg(root.path()).arg("init");
        let sets = |flag: &str| case.args.iter().any(|a| a == flag);
        if !sets("--node-name") {
            cmd.args(["--node-name", "cp-1"]);
        }
        if let Some(text) = case.config {
            let path = config_dir.path().join("kubestrap.yaml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(&path);
        } else if !sets("--apiserver-advertise-address") {
            cmd.args(["--apiserver-advertise-address", "192.0.2.10"]);
        }
        cmd.args(&case.args);
        cmd.args(["phase", "certs"]);
        let output = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() != Some(2) {
            failures.push(format!(
                "{}: exit {:?}, stderr: {stderr}",
                case.name,
                output.status.code()
            ));
            continue;
        }
        for needle in &case.expect {
            if !stderr.contains(needle) {
                failures.push(format!("{}: stderr lacks {needle:?}: {stderr}", case.name));
            }
        }
        assert_empty_dir(root.path(), case.name);
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn flag_and_configuration_errors_are_reported_together() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "{HEAD}kind: InitConfiguration\nlocalAPIEndpoint: {{advertiseAddress: 192.0.2.10}}\nnodeRegistration: {{name: cp-1}}\n---\n{}",
            cluster("networking:\n  serviceSubnet: 10.0.0.0/8\n")
        ),
    )
    .unwrap();
    let output = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args(["init", "--config"])
        .arg(&path)
        .args([
            "--skip-phases",
            "nosuchphase",
            "--discovery-port",
            "70000",
            "--ignore-preflight-errors",
            "all,Swap",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "invalid input (4 errors)",
        "networking.serviceSubnet",
        "\"nosuchphase\"",
        "--discovery-port",
        "all,Swap",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    assert_empty_dir(root.path(), "several errors");
}

fn join(root: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root)
        .arg("join")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn join_refuses_bad_discovery_input_and_a_bad_certificate_key_with_nothing_written() {
    let root = tempfile::tempdir().unwrap();
    let token = ["--token", "abcdef.0123456789abcdef"];
    let pin = format!("sha256:{}", "0".repeat(64));
    let pinned = [token[0], token[1], "--discovery-token-ca-cert-hash", &pin];
    let files = tempfile::tempdir().unwrap();
    let no_credentials = files.path().join("cluster-info.conf");
    std::fs::write(
        &no_credentials,
        kubestrap::kubeconfig::cluster_info::kubeconfig(
            "https://10.0.0.1:6443",
            include_bytes!("golden/kubeadm-fixture-ca.crt"),
        )
        .unwrap(),
    )
    .unwrap();
    for (args, needles) in [
        (
            [&pinned[..], &["--discovery-url", "http://10.0.0.1:9898"]].concat(),
            vec!["--discovery-url", "https://HOST[:PORT]"],
        ),
        (
            [
                &pinned[..],
                &["--discovery-url", "https://10.0.0.1", "10.0.0.1:6443"],
            ]
            .concat(),
            vec!["--discovery-url", "not both"],
        ),
        (
            [&token[..], &["10.0.0.1:6443"]].concat(),
            vec![
                "--discovery-token-ca-cert-hash",
                "--discovery-token-unsafe-skip-ca-verification",
            ],
        ),
        (
            [
                &pinned[..],
                &[
                    "--discovery-token-ca-cert-hash",
                    "sha256:abc",
                    "10.0.0.1:6443",
                ],
            ]
            .concat(),
            vec!["sha256:abc", "64 hex"],
        ),
        (
            [
                &pinned[..],
                &[
                    "--control-plane",
                    "--certificate-key",
                    "0123abcd",
                    "10.0.0.1:6443",
                ],
            ]
            .concat(),
            vec![
                "--certificate-key",
                "64 hexadecimal characters",
                "<redacted>",
            ],
        ),
        (
            [
                &pinned[..],
                &["--certificate-key", &"ab".repeat(32), "10.0.0.1:6443"],
            ]
            .concat(),
            vec!["--certificate-key", "add --control-plane"],
        ),
        (
            ["--discovery-file", no_credentials.to_str().unwrap()].to_vec(),
            vec!["--tls-bootstrap-token", "carries no credentials"],
        ),
        (
            [
                "--discovery-file",
                "/nonexistent/discovery.conf",
                "--skip-phases",
                "preflight",
            ]
            .to_vec(),
            vec![
                "--discovery-file",
                "/nonexistent/discovery.conf",
                "can not be read",
            ],
        ),
        (
            // The hidden check-etcd is a phase --skip-phases knows (the unknown one alone is named).
            [
                &pinned[..],
                &["--skip-phases", "check-etcd,no-such-phase", "10.0.0.1:6443"],
            ]
            .concat(),
            vec!["\"no-such-phase\""],
        ),
        (
            // ...and, as in kubeadm, it has no `join phase` subcommand.
            ["phase", "check-etcd"].to_vec(),
            vec!["check-etcd"],
        ),
    ] {
        let (code, stderr) = join(root.path(), &args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{args:?}: {needle}: {stderr}");
        }
    }
    let (_, stderr) = join(
        root.path(),
        &[
            &pinned[..],
            &["--skip-phases", "check-etcd,no-such-phase", "10.0.0.1:6443"],
        ]
        .concat(),
    );
    assert!(
        !stderr.contains("\"check-etcd\""),
        "known, not refused: {stderr}"
    );
    assert_empty_dir(root.path(), "join");
    // A control-plane candidate's preflight runs alone (exit 0 or 1, never an input error).
    let preflight_root = tempfile::tempdir().unwrap();
    let (code, stderr) = join(
        preflight_root.path(),
        &[
            &pinned[..],
            &[
                "--control-plane",
                "--apiserver-advertise-address",
                "192.0.2.7",
                "--ignore-preflight-errors",
                "all",
                "phase",
                "preflight",
                "10.0.0.1:6443",
            ],
        ]
        .concat(),
    );
    assert!(!stderr.contains("invalid input"), "{code:?}: {stderr}");
    assert!(matches!(code, Some(0 | 1)), "{code:?}: {stderr}");
    // The endpoint before `phase` is the phase's too.
    let (code, stderr) = join(
        preflight_root.path(),
        &[
            "10.0.0.1:6443",
            "--token",
            "abcdef.0123456789abcdef",
            "--discovery-token-unsafe-skip-ca-verification",
            "--ignore-preflight-errors",
            "all",
            "--node-name",
            "w1",
            "phase",
            "preflight",
        ],
    );
    assert!(matches!(code, Some(0 | 1)), "{code:?}: {stderr}");
}

#[test]
fn config_flag_mixing_is_refused_like_kubeadm() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, cluster("")).unwrap();
    let output = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args(["init", "--pod-network-cidr", "10.244.0.0/16", "--config"])
        .arg(&path)
        .args(["phase", "certs"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("can not mix '--config' with arguments [pod-network-cidr]"),
        "{stderr}"
    );
    assert_empty_dir(root.path(), "mixing");
}

#[test]
fn missing_config_file_is_named() {
    let root = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args([
            "init",
            "--config",
            "/nonexistent/kubestrap.yaml",
            "phase",
            "certs",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/kubestrap.yaml"));
    assert_empty_dir(root.path(), "missing config");
}

#[test]
fn secrets_in_invalid_input_are_not_echoed() {
    let root = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args([
            "init",
            "--node-name",
            "cp-1",
            "--apiserver-advertise-address",
            "192.0.2.10",
            "--token",
            "ABCDEF.supersecretvalue",
            "--certificate-key",
            "notsecrethexbutsecret",
            "phase",
            "certs",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("supersecretvalue"), "{stderr}");
    assert!(!stderr.contains("notsecrethexbutsecret"), "{stderr}");
}

/// The discovery endpoint's unit runs the kubestrap binary, so init refuses one in a cargo target
/// directory (this test's binary) before anything is written; `--discovery-port 0` or skipping the
/// phase leaves the unit out, and a dry run plans it with a warning.
#[test]
fn init_refuses_to_install_the_discovery_unit_for_a_binary_in_a_temporary_location() {
    let node = [
        "--node-name",
        "cp1",
        "--apiserver-advertise-address",
        "192.0.2.10",
    ];
    let root = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args(["init", "--skip-phases", "preflight"])
        .args(node)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "kubestrap-discovery.service",
        "CACHEDIR.TAG",
        "--discovery-port 0",
        "/usr/local/bin/kubestrap",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    assert_empty_dir(root.path(), "a binary in a temporary location");
    let phase = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args(["init", "phase", "discovery"])
        .args(node)
        .output()
        .unwrap();
    assert_eq!(phase.status.code(), Some(2), "{phase:?}");
    assert_empty_dir(root.path(), "init phase discovery");

    // A dry run plans the unit and warns; with the endpoint disabled the phase says it is skipped.
    let dry = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args(["init", "--dry-run", "--skip-phases", "preflight"])
        .args(node)
        .output()
        .unwrap();
    assert!(dry.status.success(), "{dry:?}");
    assert!(String::from_utf8_lossy(&dry.stderr).contains("A real run refuses"));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("kubestrap-discovery.service"));
    let off = Command::cargo_bin("kubestrap")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args([
            "init",
            "--dry-run",
            "--skip-phases",
            "preflight",
            "--discovery-port",
            "0",
        ])
        .args(node)
        .output()
        .unwrap();
    assert!(off.status.success(), "{off:?}");
    let out = String::from_utf8_lossy(&off.stdout);
    assert!(
        out.contains(
            "[discovery] Skipping phase: the discovery endpoint is disabled (--discovery-port 0)"
        ) && !out.contains("kubestrap-discovery.service")
            && !out.contains("discovery-serving"),
        "{out}"
    );
    assert_empty_dir(root.path(), "dry runs");
}
