//! The command line as an admin meets it, through the real binary: a self-contained repository and
//! command-line page, the set-up's prerequisite checks, a closed stdout, `-o` on every command of the
//! tree, strict decoding, errors that name what the user typed, certs without a PKI, host facts
//! outside `--root`, `--v` above 5, global options apart in `--help`, and the dead-CRI remedy.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use kubestrap::cli::Cli;
use kubestrap::cli::results::{self, ResultShape};
use serde_json::Value;

const TOKEN: &str = "abcdef.0123456789abcdef";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The binary, without the caller's `KUBESTRAP_*` variables.
fn kubestrap() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kubestrap"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KUBESTRAP_") {
            cmd.env_remove(name);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn run(args: &[&str]) -> Output {
    kubestrap().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// The arguments of an init and a join preflight that pass validation (every check's error ignored).
const INIT_PREFLIGHT: [&str; 9] = [
    "init",
    "phase",
    "preflight",
    "--ignore-preflight-errors",
    "all",
    "--node-name",
    "n1",
    "--apiserver-advertise-address",
    "192.0.2.10",
];
const JOIN_PREFLIGHT: [&str; 11] = [
    "join",
    "phase",
    "preflight",
    "10.0.0.1:6443",
    "--token",
    TOKEN,
    "--discovery-token-unsafe-skip-ca-verification",
    "--ignore-preflight-errors",
    "all",
    "--node-name",
    "w1",
];

/// A preflight's `-o json` report (the run must succeed): `preflight` is INIT_PREFLIGHT or
/// JOIN_PREFLIGHT plus flags, `envs` extra environment.
fn preflight_report(preflight: &[&str], root: &Path, envs: &[(&str, &Path)]) -> Value {
    let out = kubestrap()
        .args(preflight)
        .args(["-o", "json", "--root"])
        .arg(root)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{preflight:?}: {}", describe(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{preflight:?}: not JSON ({e}): {}", describe(&out)))
}

/// One check of a preflight report, by id.
fn check_of(report: &Value, id: &str) -> Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no {id} in {report}"))
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// Every file of the tree under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

// ---- the repository and docs/cli.md are self-contained ----

/// The repository's own files: what git tracks, plus new files not ignored.
fn repository_files() -> Vec<PathBuf> {
    let listed = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
        .current_dir(repo())
        .output();
    match listed {
        Ok(out) if out.status.success() => text(&out.stdout)
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .filter(|p| repo().join(p).is_file())
            .collect(),
        _ => files_under(repo())
            .into_iter()
            .filter(|p| !p.starts_with("target") && !p.starts_with(".git"))
            .collect(),
    }
}

/// Markdown link targets on a line: `](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        out.push(after[..end].trim().to_string());
        rest = &after[end..];
    }
    out
}

/// Words that name a Markdown file (`docs/cli.md`), URLs left out.
fn markdown_names(line: &str) -> Vec<String> {
    line.split_whitespace()
        .filter(|token| !token.contains("://"))
        .flat_map(|token| token.split(|c: char| !(c.is_ascii_alphanumeric() || "._/-".contains(c))))
        .filter(|w| w.ends_with(".md") && w.len() > 3)
        .map(|w| w.trim_start_matches("./").to_string())
        .collect()
}

/// The path exists and lies inside the repository.
fn inside_repository(path: &Path) -> bool {
    let root = repo().canonicalize().unwrap();
    path.canonicalize().is_ok_and(|p| p.starts_with(root))
}

#[test]
fn no_file_in_the_repository_points_outside_it() {
    // Spelled in pieces so this file does not flag itself.
    let forbidden = [
        ["..", "/shared"].concat(),
        ["shared", "/spec"].concat(),
        ["shared", "/seeds"].concat(),
        ["/wo", "rk/"].concat(),
    ];
    let files = repository_files();
    assert!(files.len() > 50, "found only {} files", files.len());
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let mut offences = Vec::new();
    for file in &files {
        let Ok(body) = std::fs::read_to_string(repo().join(file)) else {
            continue;
        };
        let dir = repo().join(file).parent().unwrap().to_path_buf();
        for (number, line) in body.lines().enumerate() {
            let at = format!("{}:{}", file.display(), number + 1);
            for word in &forbidden {
                if line.contains(word.as_str()) {
                    offences.push(format!("{at}: mentions {word:?}"));
                }
            }
            if file.extension().is_some_and(|e| e == "md") {
                for target in link_targets(line) {
                    let path = target.split('#').next().unwrap_or("");
                    if path.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                        continue;
                    }
                    if path.starts_with('/') {
                        offences.push(format!("{at}: links to the absolute path {target}"));
                        continue;
                    }
                    if !inside_repository(&dir.join(path)) {
                        offences.push(format!(
                            "{at}: links to {target}, which is not a file of the repository"
                        ));
                    }
                }
            }
            for name in markdown_names(line) {
                let base = name.rsplit('/').next().unwrap_or(&name).to_string();
                let exists =
                    inside_repository(&repo().join(&name)) || inside_repository(&dir.join(&name));
                if !exists && !names.contains(&base) {
                    offences.push(format!(
                        "{at}: names {name}, which is not in the repository"
                    ));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "files point outside the repository:\n{}",
        offences.join("\n")
    );
}

/// A runnable command of the tree and its path below `kubestrap`.
struct Node {
    path: Vec<String>,
    command: clap::Command,
}

fn runnable_commands() -> Vec<Node> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Node>) {
        for sub in cmd.get_subcommands() {
            let mut sub_path = path.to_vec();
            sub_path.push(sub.get_name().to_string());
            if !sub.has_subcommands() || !sub.is_subcommand_required_set() {
                out.push(Node {
                    path: sub_path.clone(),
                    command: sub.clone(),
                });
            }
            walk(sub, &sub_path, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &[], &mut out);
    assert!(out.len() > 40, "the walk found {} commands", out.len());
    out
}

/// The long flags a `--help` text lists.
fn flags_in_help(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            l.split([' ', ','])
                .find(|w| w.starts_with("--") && w.len() > 2)
                .map(|w| w.split(['=', '<']).next().unwrap_or(w).to_string())
        })
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

#[test]
fn the_cli_page_carries_every_command_and_flag_the_binary_has() {
    let page = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    for node in runnable_commands() {
        let mut args: Vec<&str> = node.path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        let shown = format!("`kubestrap {}", node.path.join(" "));
        assert!(page.contains(&shown), "docs/cli.md does not list {shown}`");
        for flag in flags_in_help(&text(&out.stdout)) {
            assert!(
                page.contains(&format!("`{flag}`")),
                "docs/cli.md does not document {flag} of `kubestrap {}`",
                node.path.join(" ")
            );
        }
    }
    for section in ["## Exit codes", "--root", "## Output", "### Planned"] {
        assert!(page.contains(section), "docs/cli.md has no {section}");
    }
    for planned in [
        "`kubestrap token create`",
        "`kubestrap discovery serve`",
        "`kubestrap status`",
        "`kubestrap verify network`",
    ] {
        assert!(
            page.contains(planned),
            "docs/cli.md does not plan {planned}"
        );
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains("(docs/cli.md)"));
}

// ---- scripts/setup.sh checks the prerequisites ----

fn stub(dir: &Path, name: &str, script: &str) {
    let path = dir.join(name);
    write(&path, &format!("#!/bin/bash\n{script}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn which(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{tool} is needed for this test");
    PathBuf::from(text(&out.stdout).trim())
}

/// `scripts/setup.sh` (with `--check`, or the whole set-up) with only the stubs in `bin` and the
/// shell tools the checks use on PATH.
fn setup(bin: &Path, args: &[&str]) -> Output {
    let timeout = bin.join("timeout");
    if !timeout.exists() {
        std::os::unix::fs::symlink(which("timeout"), timeout).unwrap();
    }
    Command::new(which("bash"))
        .arg(repo().join("scripts/setup.sh"))
        .args(args)
        .env_clear()
        .env("PATH", bin)
        .env("HOME", bin)
        .output()
        .unwrap()
}

/// Cargo.toml's `rust-version`.
fn rust_version() -> String {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("Cargo.toml has a rust-version")
}

#[test]
fn setup_names_each_missing_prerequisite_and_how_to_get_it() {
    let wanted = rust_version();
    let bin = tempfile::tempdir().unwrap();
    let b = bin.path();
    stub(b, "id", "echo 1000");
    stub(b, "rustc", "echo 'rustc 1.80.0 (051478957 2024-07-21)'");
    stub(b, "cargo", "exit 0");
    let no_daemon = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?";
    stub(b, "docker", &format!("echo '{no_daemon}' >&2; exit 1"));
    // The whole set-up, not only the check: it must stop before installing or building anything
    // (had it gone on, apt-get, grep and cargo are not on this PATH and would say so).
    let out = setup(b, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(text(&out.stdout), "");
    let err = text(&out.stderr);
    let expected = [
        "[setup] missing prerequisites (README.md, \"Set-up\"):".to_string(),
        "  - root: run the set-up as root".to_string(),
        "  - Debian with apt (apt-get and dpkg on PATH)".to_string(),
        format!(
            "  - rustc {wanted} or newer (Cargo.toml's rust-version; edition 2024): found rustc 1.80.0; run 'rustup update stable'"
        ),
        "  - kubectl on PATH: apt-get install kubectl".to_string(),
        format!("  - a running Docker engine: 'docker info' failed ({no_daemon}); start it"),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, want) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "{line:?} should start with {want:?}"
        );
    }

    // No toolchain and no Docker CLI at all.
    std::fs::remove_file(b.join("rustc")).unwrap();
    std::fs::remove_file(b.join("docker")).unwrap();
    let err = text(&setup(b, &["--check"]).stderr);
    let toolchain = format!(
        "  - a Rust toolchain (rustc and cargo {wanted} or newer, edition 2024) on PATH: install rustup"
    );
    assert!(err.contains(&toolchain), "{err}");
    assert!(err.contains("  - a Docker engine and its CLI"), "{err}");

    // Everything present: the check passes.
    stub(b, "id", "echo 0");
    stub(
        b,
        "rustc",
        &format!("echo 'rustc {wanted}.0 (29483883e 2025-08-04)'"),
    );
    for tool in ["docker", "kubectl", "apt-get", "dpkg"] {
        stub(b, tool, "exit 0");
    }
    let out = setup(b, &["--check"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(text(&out.stdout).starts_with("[setup] prerequisites: ok"));
}

// ---- a closed stdout is a quiet exit ----

/// Runs the binary with a stdout pipe whose reader is already gone.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    kubestrap()
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_for_every_printing_command() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let node = [
        "--node-name",
        "n1",
        "--apiserver-advertise-address",
        "192.0.2.10",
    ];
    let cases: Vec<Vec<&str>> = vec![
        vec!["completion", "bash"],
        vec!["completion", "zsh"],
        vec!["version"],
        vec!["version", "-o", "json"],
        vec!["version", "-o", "short"],
        vec!["config", "print", "init-defaults"],
        vec!["config", "print", "join-defaults", "-o", "json"],
        vec!["config", "images", "list"],
        vec!["config", "images", "list", "-o", "yaml"],
        vec!["token", "generate"],
        vec!["certs", "certificate-key"],
        vec!["--help"],
        vec!["init", "--help"],
        [&INIT_PREFLIGHT[..], &["-o", "json", "--root", r]].concat(),
        [
            vec!["init", "phase", "certs", "all", "--root", r],
            node.to_vec(),
        ]
        .concat(),
        [
            vec!["init", "phase", "kubeconfig", "all", "--root", r],
            node.to_vec(),
        ]
        .concat(),
        vec!["certs", "check-expiration", "--root", r],
        vec!["config", "view", "--root", r],
    ];
    for args in &cases {
        let out = with_closed_stdout(args);
        assert_eq!(
            out.status.signal(),
            None,
            "{args:?} was killed by a signal: {}",
            describe(&out)
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
        let err = text(&out.stderr);
        assert!(
            !err.contains("panicked")
                && !err.contains("Broken pipe")
                && !err.lines().any(|l| l.starts_with("error")),
            "{args:?} complained: {err}"
        );
    }
    // A command that changes the node finishes its work although nobody reads its progress.
    assert!(root.path().join("etc/kubernetes/pki/ca.key").exists());
    assert!(root.path().join("etc/kubernetes/admin.conf").exists());

    // And as an admin types it: the script is far larger than the pipe's buffer.
    let out = Command::new("bash")
        .args([
            "-c",
            "\"$K\" completion bash | head -5 >/dev/null; echo \"${PIPESTATUS[0]}\"",
        ])
        .env("K", assert_cmd::cargo::cargo_bin("kubestrap"))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "0\n", "{}", describe(&out));
    assert_eq!(text(&out.stderr), "");
}

// ---- -o on every command of the tree ----

/// Arguments that get a command past clap to its own checks: every required argument filled.
fn required_args(cmd: &clap::Command) -> Vec<String> {
    let mut args = Vec::new();
    for arg in cmd.get_arguments().filter(|a| a.is_required_set()) {
        let value = arg
            .get_possible_values()
            .first()
            .map(|v| v.get_name().to_string())
            .unwrap_or_else(|| "placeholder".to_string());
        match arg.get_long() {
            Some(long) if !arg.is_positional() => {
                args.push(format!("--{long}"));
                args.push(value);
            }
            _ => args.push(value),
        }
    }
    args
}

/// A node root with a PKI, kubeconfigs and the node record (made by the binary).
fn node_with_pki() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for phase in ["certs", "kubeconfig"] {
        let out = kubestrap()
            .args(["init", "phase", phase, "all", "--node-name", "n1"])
            .args(["--apiserver-advertise-address", "192.0.2.10", "--root"])
            .arg(root.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
    }
    root
}

/// How to run a command that has a result so that it succeeds, on top of `path -o FORMAT`.
fn invocation(path: &[&str], pki_root: &Path, empty_root: &Path, config: &Path) -> Vec<String> {
    let root = |p: &Path| vec!["--root".to_string(), p.display().to_string()];
    let strings = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match path {
        ["version"] | ["config", "images", "list"] | ["config", "print", _] => Vec::new(),
        // The flags after `<command> phase preflight`.
        ["init", "phase", "preflight"] => {
            [strings(&INIT_PREFLIGHT[3..]), root(empty_root)].concat()
        }
        ["join", "phase", "preflight"] => {
            [strings(&JOIN_PREFLIGHT[3..]), root(empty_root)].concat()
        }
        // Never a real reset here: a dry run only reads the host.
        ["reset", ..] => [strings(&["--dry-run"]), root(empty_root)].concat(),
        ["certs", "check-expiration"] | ["config", "view"] => root(pki_root),
        ["config", "validate"] => vec!["--config".to_string(), config.display().to_string()],
        other => panic!(
            "`kubestrap {}` has a result shape but this test does not know how to run it: add it to invocation()",
            other.join(" ")
        ),
    }
}

fn has_keys(doc: &Value, keys: &[&str], what: &str) {
    for key in keys {
        assert!(doc.get(key).is_some(), "{what}: no {key:?} in {doc}");
    }
}

/// Commands whose result comes from an API server: their `-o json|yaml` is checked on the testbed
/// (testbed/tests/kubestrap_discovery.rs).
fn needs_a_cluster(path: &[&str]) -> bool {
    matches!(
        path,
        ["token", "list" | "create"] | ["status"] | ["verify", "network"]
    )
}

/// The documented shape of each result (docs/cli.md, "Output").
fn check_shape(shape: ResultShape, documents: &[Value], what: &str) {
    if shape != ResultShape::ConfigDocuments {
        assert_eq!(documents.len(), 1, "{what}: one document expected");
    }
    let doc = &documents[0];
    match shape {
        ResultShape::Version => {
            let client = &doc["clientVersion"];
            has_keys(
                client,
                &[
                    "major",
                    "minor",
                    "gitVersion",
                    "platform",
                    "defaultKubernetesVersion",
                ],
                what,
            );
            assert!(client["gitVersion"].as_str().unwrap().starts_with('v'));
        }
        ResultShape::Preflight => {
            let checks = doc["checks"].as_array().expect("checks");
            assert!(checks.len() > 10, "{what}");
            for check in checks {
                has_keys(
                    check,
                    &["id", "severity", "status", "message", "remediation"],
                    what,
                );
                assert!(["error", "warning"].contains(&check["severity"].as_str().unwrap()));
                assert!(["pass", "fail", "skip"].contains(&check["status"].as_str().unwrap()));
            }
        }
        ResultShape::Reset => {
            let keys: BTreeSet<&str> = doc
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, BTreeSet::from(["planned", "kept"]), "{what}");
            for item in doc["kept"]
                .as_array()
                .unwrap()
                .iter()
                .chain(doc["planned"].as_array().unwrap())
            {
                has_keys(item, &["kind", "target", "reason"], what);
            }
        }
        ResultShape::CertificateExpiration => {
            assert_eq!(doc["kind"], "CertificateExpirationInfo", "{what}");
            assert_eq!(
                doc["apiVersion"], "output.kubeadm.k8s.io/v1alpha3",
                "{what}"
            );
            let certificates = doc["certificates"].as_array().unwrap();
            assert!(certificates.len() >= 10, "{what}");
            for c in certificates
                .iter()
                .chain(doc["certificateAuthorities"].as_array().unwrap())
            {
                has_keys(
                    c,
                    &["name", "residualTime", "externallyManaged", "missing"],
                    what,
                );
            }
        }
        ResultShape::Images => {
            assert_eq!(doc["kind"], "Images", "{what}");
            assert!(
                doc["images"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(Value::is_string)
            );
        }
        ResultShape::NodeRecord => {
            assert_eq!(doc["kind"], "NodeRecord", "{what}");
            assert_eq!(doc["apiVersion"], "kubestrap.io/v1alpha1", "{what}");
            has_keys(doc, &["cluster", "node"], what);
        }
        ResultShape::ConfigDocuments => {
            assert!(!documents.is_empty(), "{what}");
            for document in documents {
                assert!(
                    document["apiVersion"]
                        .as_str()
                        .unwrap()
                        .starts_with("kubeadm.k8s.io/"),
                    "{what}"
                );
                assert!(
                    document["kind"]
                        .as_str()
                        .unwrap()
                        .ends_with("Configuration"),
                    "{what}"
                );
            }
        }
        ResultShape::Status => {
            has_keys(doc, &["status", "checks"], what);
        }
        ResultShape::VerifyNetwork => {
            has_keys(
                doc,
                &[
                    "status",
                    "namespace",
                    "nodes",
                    "failing_pairs",
                    "failures",
                    "probes",
                    "checks",
                ],
                what,
            );
        }
        ResultShape::BootstrapToken => {
            assert_eq!(doc["kind"], "BootstrapToken", "{what}");
            has_keys(doc, &["apiVersion", "token", "usages", "groups"], what);
        }
        ResultShape::ConfigValidation => {
            has_keys(doc, &["file", "checked", "warnings"], what);
            assert!(doc["checked"].as_array().unwrap().len() == 1, "{what}");
        }
    }
}

fn parse_documents(format: &str, stdout: &str, what: &str) -> Vec<Value> {
    if format == "json" {
        serde_json::Deserializer::from_str(stdout)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}):\n{stdout}"))
    } else {
        kubestrap::yaml::documents(stdout)
            .unwrap_or_else(|e| panic!("{what}: stdout is not YAML ({e}):\n{stdout}"))
    }
}

#[test]
fn every_command_honours_or_refuses_each_output_format() {
    let pki_root = node_with_pki();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.yaml");
    write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16\n",
    );
    let mut honoured = 0;
    let mut refused = 0;
    for node in runnable_commands() {
        let path: Vec<&str> = node.path.iter().map(String::as_str).collect();
        let name = format!("kubestrap {}", path.join(" "));
        for format in ["json", "yaml", "short"] {
            let empty_root = tempfile::tempdir().unwrap();
            let what = format!("{name} -o {format}");
            let shape = results::result_shape(&path);
            let honours = match format {
                "short" => path == ["version"],
                _ => shape.is_some(),
            };
            if honours && needs_a_cluster(&path) {
                continue;
            }
            let mut args: Vec<String> = node.path.clone();
            args.extend(["-o".to_string(), format.to_string()]);
            if honours {
                args.extend(invocation(
                    &path,
                    pki_root.path(),
                    empty_root.path(),
                    &config,
                ));
                let out = kubestrap().args(&args).output().unwrap();
                assert_eq!(out.status.code(), Some(0), "{what}: {}", describe(&out));
                let stdout = text(&out.stdout);
                if format == "short" {
                    assert_eq!(
                        stdout,
                        format!("v{}\n", env!("CARGO_PKG_VERSION")),
                        "{what}"
                    );
                } else {
                    let docs = parse_documents(format, &stdout, &what);
                    check_shape(shape.unwrap(), &docs, &what);
                }
                honoured += 1;
            } else {
                args.extend(required_args(&node.command));
                args.extend([
                    "--root".to_string(),
                    empty_root.path().display().to_string(),
                ]);
                let out = kubestrap().args(&args).output().unwrap();
                assert_eq!(
                    out.status.code(),
                    Some(2),
                    "{what} must refuse -o: {}",
                    describe(&out)
                );
                let expected = if format == "short" {
                    format!(
                        "-o/--output: Invalid value: \"short\": -o short is only for 'kubestrap version'; '{name}' takes -o text"
                    )
                } else {
                    format!(
                        "-o/--output: Invalid value: \"{format}\": '{name}' has no machine-readable result"
                    )
                };
                assert!(
                    text(&out.stderr).contains(&expected),
                    "{what}: {}",
                    describe(&out)
                );
                assert_eq!(text(&out.stdout), "", "{what}");
                assert_eq!(
                    files_under(empty_root.path()),
                    Vec::<PathBuf>::new(),
                    "{what} wrote files"
                );
                refused += 1;
            }
        }
    }
    assert!(
        honoured >= 20 && refused >= 100,
        "{honoured} honoured, {refused} refused"
    );
}

#[test]
fn version_short_prints_the_version_alone_and_only_version_takes_it() {
    let out = run(&["version", "-o", "short"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        text(&out.stdout),
        format!("v{}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = run(&["config", "images", "list", "-o", "short"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: invalid input: -o/--output: Invalid value: \"short\": -o short is only for 'kubestrap version'; \
         'kubestrap config images list' takes -o text, json or yaml\n"
    );
}

// ---- strict decoding ----

#[test]
fn strict_decoding_reports_every_unknown_field_of_every_document_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.yaml");
    write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nbogusA: 1\nnetworking:\n  bogusB: x\n  podSubnet: 10.244.0.0/16\n\
         ---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: n1\n  bogusC: [1]\n",
    );
    let out = run(&["config", "validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let c = config.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: invalid input (3 errors):\n\
             \t{c}: ClusterConfiguration.bogusA: Invalid value: \"bogusA\": unknown field (strict decoding)\n\
             \t{c}: ClusterConfiguration.networking.bogusB: Invalid value: \"bogusB\": unknown field (strict decoding)\n\
             \t{c}: InitConfiguration.nodeRegistration.bogusC: Invalid value: \"bogusC\": unknown field (strict decoding)\n"
        )
    );
}

// ---- errors name what the user typed ----

/// Runs the binary on a fresh, empty `--root`; asserts it refused with exit 2 and left nothing
/// there, and returns its stderr.
fn refused_on_an_empty_root(args: &[&str]) -> String {
    let root = tempfile::tempdir().unwrap();
    let out = kubestrap()
        .args(args)
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
    assert_eq!(
        files_under(root.path()),
        Vec::<PathBuf>::new(),
        "{args:?} wrote files"
    );
    text(&out.stderr)
}

#[test]
fn a_bad_flag_value_names_the_flag_the_field_and_the_value() {
    let err = refused_on_an_empty_root(&[
        "init",
        "--service-cidr",
        "bad",
        "--apiserver-advertise-address",
        "192.0.2.10",
        "--node-name",
        "n1",
    ]);
    assert_eq!(
        err,
        "error: invalid input: --service-cidr (networking.serviceSubnet): Invalid value: \"bad\": \
         not a valid CIDR (expected address/prefix, e.g. 10.96.0.0/12)\n"
    );
}

#[test]
fn join_without_a_ca_pin_names_both_flags() {
    // The endpoint and the token, without a pin or --discovery-token-unsafe-skip-ca-verification.
    let err = refused_on_an_empty_root(&JOIN_PREFLIGHT[..6]);
    assert_eq!(
        err,
        "error: invalid input: --discovery-token-ca-cert-hash (discovery.bootstrapToken.caCertHashes): Invalid value: \"\": \
         token discovery without pinning the cluster CA can be unsafe: pass --discovery-token-ca-cert-hash \
         sha256:<hex of the CA's public key> (the join command 'kubestrap init' prints has it), or \
         --discovery-token-unsafe-skip-ca-verification to trust the cluster without it\n"
    );
}

#[test]
fn reset_without_a_terminal_says_why_without_a_flag_prefix() {
    assert_eq!(
        refused_on_an_empty_root(&["reset"]),
        "error: reset deletes cluster state and needs confirmation, but stdin is not a terminal (or --quiet was given); \
         pass --force to reset without a prompt\n"
    );
}

// ---- certs without a PKI ----

#[test]
fn certs_on_a_root_without_any_pki_fail_saying_where_and_write_nothing() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display();
    for args in [
        vec!["certs", "check-expiration"],
        vec!["certs", "renew", "all"],
        vec!["certs", "renew", "apiserver"],
    ] {
        let out = kubestrap()
            .args(&args)
            .arg("--root")
            .arg(root.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: no PKI found: none of the cluster's certificates is in {r}/etc/kubernetes/pki and none of its \
                 kubeconfigs in {r}/etc/kubernetes; set this node up with 'kubestrap init' (or 'kubestrap init phase \
                 certs all'), or point --cert-dir (or certificatesDir in --config) at the certificates\n"
            ),
            "{args:?}"
        );
        assert_eq!(text(&out.stdout), "");
        assert_eq!(
            files_under(root.path()),
            Vec::<PathBuf>::new(),
            "{args:?} wrote files"
        );
    }
    // A partial PKI keeps kubeadm's MISSING rows.
    let out = kubestrap()
        .args(["init", "phase", "certs", "ca", "--node-name", "n1"])
        .args(["--apiserver-advertise-address", "192.0.2.10", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = kubestrap()
        .args(["certs", "check-expiration", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let table = text(&out.stdout);
    assert!(table.contains("!MISSING! apiserver "), "{table}");
    assert!(table.lines().any(|l| l.starts_with("ca ")), "{table}");
}

// ---- host facts come from the host, not from --root ----

#[test]
fn host_facts_are_read_from_the_host_not_under_root() {
    let root = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    // Under --root: files that would pass; on the "host": files that fail.
    let (r, h) = (root.path(), host.path());
    for (dir, file, body) in [
        (r, "etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
        (r, "etc/resolv.conf", "nameserver 192.0.2.53\n"),
        (h, "etc/machine-id", "not-a-machine-id\n"),
        (h, "etc/resolv.conf", "nameserver 127.0.0.53\n"),
        (
            h,
            "etc/containerd/config.toml",
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
        ),
    ] {
        write(&dir.join(file), body);
    }
    let preflight = [
        &INIT_PREFLIGHT[..],
        &["--cri-socket", "unix:///run/containerd/containerd.sock"],
    ]
    .concat();
    let report = preflight_report(
        &preflight,
        root.path(),
        &[("KUBESTRAP_HOST_FILES_ROOT", host.path())],
    );
    let check = |id: &str| check_of(&report, id);
    assert_eq!(check("MachineID")["status"], "fail");
    assert_eq!(
        check("MachineID")["message"],
        "/etc/machine-id holds \"not-a-machine-id\", not a machine id of 32 hexadecimal characters"
    );
    assert_eq!(check("ResolvConf")["status"], "fail");
    assert!(
        check("ResolvConf")["message"]
            .as_str()
            .unwrap()
            .contains("loopback nameserver 127.0.0.53"),
        "{report}"
    );
    let containerd = check("ContainerdCgroupDriver")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        containerd.contains("SystemdCgroup = true in /etc/containerd/config.toml"),
        "{containerd}"
    );
    // The docs list the same state paths the code re-roots, and call these files host facts.
    let page = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    for fact in [
        "`/etc/machine-id`",
        "`/etc/containerd/config.toml`",
        "`/etc/docker/daemon.json`",
    ] {
        assert!(
            page.contains(fact),
            "docs/cli.md does not list {fact} as a host fact"
        );
    }
}

#[test]
fn the_root_list_in_the_docs_is_the_one_the_code_uses() {
    use kubestrap::host::paths::well_known::STATE_PATHS;
    let page = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    let section = page
        .split("## `--root`: what it prefixes")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/cli.md has a --root section");
    for path in STATE_PATHS {
        assert!(
            section.contains(&format!("`{path}`")),
            "the --root list lacks {path}"
        );
    }
    // Every fixed node path the code re-roots is one of them (configured paths are not literals).
    let mut outside = Vec::new();
    let mut seen = 0;
    for file in files_under(&repo().join("src")) {
        let body = std::fs::read_to_string(repo().join("src").join(&file)).unwrap();
        let code = body.split("#[cfg(test)]").next().unwrap_or("");
        // Paths made into node paths where they are written, and the well-known ones.
        let literals = code
            .split("NodePath::new(\"")
            .skip(1)
            .chain(
                code.split(": &str = \"/")
                    .skip(1)
                    .filter(|_| file == Path::new("host/paths.rs")),
            )
            .map(|rest| rest.split('"').next().unwrap_or(""))
            .map(|p| {
                if p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("/{p}")
                }
            });
        for path in literals {
            seen += 1;
            if !STATE_PATHS.iter().any(|p| Path::new(&path).starts_with(p)) {
                outside.push(format!("src/{}: {path}", file.display()));
            }
        }
    }
    assert!(seen >= 9, "found only {seen} node path literals");
    assert!(
        outside.is_empty(),
        "node paths outside the documented --root list (host facts belong to host::facts):\n{}",
        outside.join("\n")
    );
}

// ---- --v above 5 ----

#[test]
fn a_verbosity_above_five_is_taken_as_five() {
    let root = tempfile::tempdir().unwrap();
    let preflight = |level: &str| -> String {
        let out = kubestrap()
            .args(INIT_PREFLIGHT)
            .args(["--v", level, "--root"])
            .arg(root.path())
            .env("KUBESTRAP_HOST_FILES_ROOT", root.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "--v {level}: {}", describe(&out));
        text(&out.stderr)
            .lines()
            .filter(|l| l.starts_with('I'))
            .map(|l| l.split(':').next().unwrap_or("").to_string() + "\n")
            .collect()
    };
    let at_five = preflight("5");
    assert!(at_five.contains("I1"), "{at_five}");
    assert_eq!(preflight("9"), at_five);
    assert_eq!(preflight("100"), at_five);
    let out = run(&["version", "--v", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("'--v <N>'"),
        "{}",
        describe(&out)
    );
    let page = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    assert!(page.contains("a level above 5 is taken as 5"));
}

// ---- --help lists the global options apart ----

#[test]
fn every_help_lists_the_global_options_apart_from_the_commands_own() {
    let global: BTreeSet<String> = ["--root", "--v", "--quiet", "--output", "--dry-run"]
        .map(String::from)
        .into();
    for node in runnable_commands() {
        let mut args: Vec<&str> = node.path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = text(&run(&args).stdout);
        let (own, globals) = help
            .split_once("\nGlobal options:\n")
            .unwrap_or_else(|| panic!("{args:?} has no Global options section:\n{help}"));
        assert_eq!(flags_in_help(globals), global, "{args:?}:\n{help}");
        assert!(
            flags_in_help(own).is_disjoint(&global),
            "{args:?} lists a global option among its own:\n{help}"
        );
    }
}

// ---- the dead-CRI remedy ----

#[test]
fn the_remedy_for_a_dead_cri_socket_is_about_the_runtime_for_init_and_join() {
    let root = tempfile::tempdir().unwrap();
    let dead = "unix:///nonexistent/kubestrap-test.sock";
    let remedy = |preflight: &[&str]| -> String {
        let args = [preflight, &["--cri-socket", dead]].concat();
        let cri = check_of(&preflight_report(&args, root.path(), &[]), "CRI");
        assert_eq!(cri["status"], "fail", "{cri}");
        cri["remediation"].as_str().unwrap().to_string()
    };
    let expected = "Start the runtime (systemctl enable --now containerd) or point --cri-socket \
                    (nodeRegistration.criSocket) at the socket it listens on.";
    assert_eq!(remedy(&INIT_PREFLIGHT), expected);
    assert_eq!(remedy(&JOIN_PREFLIGHT), expected);
    // reset's own remedy keeps the reason that matters there.
    let out = kubestrap()
        .args([
            "reset",
            "--cri-socket",
            dead,
            "phase",
            "preflight",
            "--dry-run",
            "--root",
        ])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("Reset without a runtime cannot stop the cluster's containers."),
        "{}",
        describe(&out)
    );
}
