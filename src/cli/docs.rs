//! The generated part of docs/cli.md: the global options, every command with its flags and `-o`
//! shapes, and the commands and flags the contract names that do not exist yet ("planned"), all
//! derived from the clap definitions so the page cannot drift from the binary.

use std::fmt::Write;

use clap::{Arg, ArgAction, Command, CommandFactory};

use super::results::{self, ResultShape};
use super::{Cli, GLOBAL_OPTIONS_HEADING};

/// The markers around the generated region of docs/cli.md.
pub const BEGIN_MARKER: &str = "<!-- BEGIN GENERATED from the clap definitions by `cargo test --lib cli::docs` (KUBESTRAP_BLESS=1 rewrites it); do not edit by hand -->";
pub const END_MARKER: &str = "<!-- END GENERATED -->";

/// One command of the command-line contract, with the flags of its own (not the global options).
pub struct ContractCommand {
    /// The subcommand names below `kubestrap`, space-separated.
    pub path: &'static str,
    pub flags: &'static [&'static str],
    /// What it does, for the planned section.
    pub about: &'static str,
}

const INIT_FLAGS: &[&str] = &[
    "--config",
    "--apiserver-advertise-address",
    "--apiserver-bind-port",
    "--apiserver-cert-extra-sans",
    "--control-plane-endpoint",
    "--pod-network-cidr",
    "--service-cidr",
    "--pod-network-manifest",
    "--service-dns-domain",
    "--node-name",
    "--kubernetes-version",
    "--image-repository",
    "--cri-socket",
    "--token",
    "--token-ttl",
    "--cert-dir",
    "--upload-certs",
    "--certificate-key",
    "--patches",
    "--skip-phases",
    "--ignore-preflight-errors",
    "--skip-token-print",
    "--pod-network",
    "--schedule-on-control-plane",
    "--discovery-port",
    "--fix",
    "--keep-on-failure",
];

const JOIN_FLAGS: &[&str] = &[
    "--token",
    "--discovery-token",
    "--discovery-token-ca-cert-hash",
    "--discovery-token-unsafe-skip-ca-verification",
    "--discovery-file",
    "--discovery-url",
    "--tls-bootstrap-token",
    "--control-plane",
    "--certificate-key",
    "--apiserver-advertise-address",
    "--apiserver-bind-port",
    "--node-name",
    "--cri-socket",
    "--patches",
    "--skip-phases",
    "--ignore-preflight-errors",
    "--fix",
    "--keep-on-failure",
    "--config",
];

const TOKEN_CREATE_FLAGS: &[&str] = &[
    "--ttl",
    "--usages",
    "--groups",
    "--description",
    "--print-join-command",
];

macro_rules! contract {
    ($($path:literal $flags:expr, $about:literal;)*) => {
        &[$(ContractCommand { path: $path, flags: $flags, about: $about },)*]
    };
}

/// Every command the command-line contract names, with its own flags. A command or flag listed here
/// that the binary does not have is "planned" on the page; once it is built, regenerating the page
/// moves it to the command tables.
pub const CONTRACT: &[ContractCommand] = contract! {
    "init" INIT_FLAGS, "Set up the first control-plane node of a cluster";
    "init phase preflight" &[], "Run pre-flight checks";
    "init phase certs" &[], "Certificate generation";
    "init phase kubeconfig" &[], "Generate all kubeconfig files";
    "init phase etcd" &[], "Generate the static pod manifest for local etcd";
    "init phase control-plane" &[], "Generate the static pod manifests of the control plane";
    "init phase kubelet-start" &[], "Write the kubelet settings and (re)start the kubelet";
    "init phase wait-control-plane" &[], "Wait for the control plane to start";
    "init phase upload-config" &[], "Upload the kubeadm and kubelet configurations (and kubestrap's) to ConfigMaps";
    "init phase upload-certs" &[], "Upload the control-plane certificates to the kubeadm-certs Secret";
    "init phase mark-control-plane" &[], "Mark the node as a control plane (label and taint)";
    "init phase bootstrap-token" &[], "Create bootstrap tokens and the RBAC rules and cluster-info that join needs";
    "init phase kubelet-finalize" &[], "Update kubelet settings after TLS bootstrap";
    "init phase addon coredns" &[], "Install the CoreDNS addon";
    "init phase addon kube-proxy" &[], "Install the kube-proxy addon";
    "init phase addon pod-network" &[], "Install the chosen pod-network addon (flannel, calico or weave)";
    "init phase discovery" &[], "Serve the token-signed discovery endpoint";
    "init phase show-join-command" &[], "Show the join command for control-plane and worker nodes";
    "join" JOIN_FLAGS, "Join this node to a cluster (the whole workflow, with ENDPOINT)";
    "join phase preflight" &[], "Run join pre-flight checks";
    "join phase control-plane-prepare download-certs" &[], "Download the certificates shared among control-plane nodes from the kubeadm-certs Secret";
    "join phase control-plane-prepare certs" &[], "Generate the certificates of the new control-plane node";
    "join phase control-plane-prepare kubeconfig" &[], "Generate the kubeconfigs of the new control-plane node";
    "join phase control-plane-prepare control-plane" &[], "Generate the static pod manifests of the new control-plane node";
    "join phase kubelet-start" &[], "Write the kubelet settings, certificates and (re)start the kubelet";
    "join phase etcd-join" &[], "Join etcd for control-plane nodes";
    "join phase kubelet-wait-bootstrap" &[], "Wait for the kubelet to bootstrap itself";
    "join phase wait-control-plane" &[], "Wait for the control plane to start";
    "join phase control-plane-join mark-control-plane" &[], "Mark a node as a control plane";
    "reset" &["--force", "--config", "--cleanup-tmp-dir", "--cri-socket", "--skip-phases", "--ignore-preflight-errors", "--purge-volumes", "--no-backup"], "Return this node to a clean host";
    "reset phase preflight" &[], "Run reset pre-flight checks";
    "reset phase remove-etcd-member" &[], "Remove a local etcd member";
    "reset phase cleanup-node" &[], "Run cleanup node";
    "reset phase verify" &[], "Check that nothing of the cluster is left";
    "token create" TOKEN_CREATE_FLAGS, "Create a bootstrap token on the cluster (and print the join command)";
    "token list" &[], "List the cluster's bootstrap tokens";
    "token delete" &[], "Delete bootstrap tokens on the cluster";
    "token generate" &[], "Generate and print a bootstrap token, but do not create it on the cluster";
    "certs check-expiration" &[], "Check certificates expiration for a Kubernetes cluster";
    "certs renew" &[], "Renew a certificate (or all)";
    "certs certificate-key" &[], "Generate a certificate key";
    "certs generate-csr" &[], "Generate keys and certificate signing requests";
    "config print init-defaults" &[], "Print default init configuration";
    "config print join-defaults" &[], "Print default join configuration";
    "config print reset-defaults" &[], "Print default reset configuration";
    "config validate" &["--config"], "Validate a configuration file";
    "config images list" &[], "Print a list of images kubestrap will use";
    "config images pull" &[], "Pull images used by kubestrap";
    "config view" &[], "Print the resolved cluster model this node recorded";
    "discovery serve" &["--port", "--address", "--token", "--token-file"], "Serve the token-signed discovery endpoint (GET /cluster-info/v1/?token-id=<id>)";
    "status" &[], "Every control-plane component, addon, node and certificate with OK/WARN/FAIL";
    "verify network" &[], "The post-install smoke test: pod-to-pod, DNS, ClusterIP and NodePort from every node";
    "version" &[], "Print the version";
    "completion" &[], "Print a shell completion script (bash, zsh, fish)";
};

/// The command at `path` (subcommand names) in `root`, if it exists.
fn find<'a>(root: &'a Command, path: &[&str]) -> Option<&'a Command> {
    path.iter()
        .try_fold(root, |cmd, name| cmd.find_subcommand(name))
}

/// A command can be run as it is (its subcommand, if any, is optional).
pub fn runnable(cmd: &Command) -> bool {
    !cmd.has_subcommands() || !cmd.is_subcommand_required_set()
}

/// The flags (options with a long name) a command defines itself, not inherited.
fn own_flags(cmd: &Command) -> Vec<&Arg> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .collect()
}

fn positionals(cmd: &Command) -> Vec<&Arg> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set() && a.is_positional())
        .collect()
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn value_name(arg: &Arg) -> String {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map(|n| n.to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
}

fn flag_name(arg: &Arg) -> String {
    let long = arg.get_long().map(|l| format!("--{l}"));
    let short = arg.get_short().map(|s| format!("-{s}"));
    match (short, long) {
        (Some(s), Some(l)) => format!("`{s}`, `{l}`"),
        (None, Some(l)) => format!("`{l}`"),
        (Some(s), None) => format!("`{s}`"),
        (None, None) => format!("`{}`", arg.get_id()),
    }
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

fn possible_values(arg: &Arg) -> Vec<String> {
    arg.get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect()
}

fn help_text(arg: &Arg) -> String {
    let mut help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    let values = possible_values(arg);
    if !values.is_empty() && takes_value(arg) {
        let _ = write!(help, " (one of: {})", values.join(", "));
    }
    if matches!(arg.get_action(), ArgAction::Append) && arg.get_value_delimiter().is_none() {
        help.push_str(" (repeatable)");
    }
    help
}

fn default_text(arg: &Arg) -> String {
    let mut parts = Vec::new();
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && takes_value(arg) {
        parts.push(format!("`{}`", defaults.join(",")));
    }
    if let Some(env) = arg.get_env() {
        parts.push(format!("env `{}`", env.to_string_lossy()));
    }
    parts.join(", ")
}

fn flags_table(out: &mut String, flags: &[&Arg]) {
    out.push_str("| flag | value | default | meaning |\n|---|---|---|---|\n");
    for arg in flags {
        let value = if takes_value(arg) {
            format!("`{}`", value_name(arg))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            flag_name(arg),
            cell(&value),
            cell(&default_text(arg)),
            cell(&help_text(arg))
        );
    }
    out.push('\n');
}

/// `<NAME>` or `[NAME]` for each positional argument.
fn usage_args(cmd: &Command) -> String {
    positionals(cmd)
        .iter()
        .map(|a| {
            if a.is_required_set() {
                format!(" <{}>", value_name(a))
            } else {
                format!(" [{}]", value_name(a))
            }
        })
        .collect()
}

fn output_cell(path: &[&str]) -> String {
    let mut cells: Vec<String> = match results::result_shape(path) {
        Some(shape) => vec![format!("[{}](#{})", shape.heading(), shape.anchor())],
        None => vec!["text only".to_string()],
    };
    if results::formats(path).contains(&crate::output::Format::Short) {
        cells.push("`-o short`".to_string());
    }
    cells.join(", ")
}

/// A command and its descendants, depth first, with their paths.
fn walk<'a>(cmd: &'a Command, path: Vec<&'a str>, out: &mut Vec<(Vec<&'a str>, &'a Command)>) {
    for sub in cmd.get_subcommands() {
        let mut sub_path = path.clone();
        sub_path.push(sub.get_name());
        out.push((sub_path.clone(), sub));
        walk(sub, sub_path, out);
    }
}

fn is_phase_command(path: &[&str]) -> bool {
    path.iter().skip(1).any(|p| *p == "phase")
}

fn anchor(path: &[&str]) -> String {
    format!("kubestrap-{}", path.join("-"))
}

/// The generated region of docs/cli.md (between the markers, exclusive).
pub fn generated() -> String {
    let root = Cli::command();
    let mut out = String::new();

    out.push_str("### Global options\n\n");
    let _ = writeln!(
        out,
        "Every command accepts these; `--help` lists them under \"{GLOBAL_OPTIONS_HEADING}:\", apart from the command's own flags.\n"
    );
    flags_table(&mut out, &own_flags(&root));

    let mut all = Vec::new();
    walk(&root, Vec::new(), &mut all);

    out.push_str("### Commands\n\n");
    out.push_str("| command | what it does | `-o json\\|yaml` |\n|---|---|---|\n");
    for (path, cmd) in all.iter().filter(|(p, _)| !is_phase_command(p)) {
        let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
        if runnable(cmd) {
            let name = format!("kubestrap {}{}", path.join(" "), usage_args(cmd));
            let _ = writeln!(
                out,
                "| [`{name}`](#{}) | {} | {} |",
                anchor(path),
                cell(&about),
                output_cell(path)
            );
        }
        if let Some(phase) = cmd.find_subcommand("phase") {
            let _ = writeln!(
                out,
                "| [`kubestrap {} phase <phase> [sub-phase]{}`](#{}) | {} | per phase |",
                path.join(" "),
                phase_positional(Some(phase)),
                anchor(path),
                cell(&phase.get_about().map(|a| a.to_string()).unwrap_or_default()),
            );
        }
    }
    out.push('\n');

    for (path, cmd) in all.iter().filter(|(p, _)| !is_phase_command(p)) {
        if !runnable(cmd) && !cmd.get_arguments().any(|a| !a.is_hide_set()) {
            continue;
        }
        let _ = writeln!(out, "#### kubestrap {}\n", path.join(" "));
        let about = cmd
            .get_long_about()
            .or(cmd.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "{about}\n");
        let phase = cmd.find_subcommand("phase");
        let usage = match (runnable(cmd), phase.is_some()) {
            (true, true) => format!(
                "kubestrap {}{} [flags]\nkubestrap {} phase <phase> [sub-phase]{} [flags]",
                path.join(" "),
                usage_args(cmd),
                path.join(" "),
                phase_positional(phase)
            ),
            (false, true) => format!(
                "kubestrap {} phase <phase> [sub-phase]{} [flags]",
                path.join(" "),
                phase_positional(phase)
            ),
            _ => format!("kubestrap {}{} [flags]", path.join(" "), usage_args(cmd)),
        };
        let _ = writeln!(out, "```\n{usage}\n```\n");
        let args = positionals(cmd);
        if !args.is_empty() {
            out.push_str("| argument | meaning |\n|---|---|\n");
            for arg in args {
                let _ = writeln!(out, "| `{}` | {} |", value_name(arg), cell(&help_text(arg)));
            }
            out.push('\n');
        }
        let flags = own_flags(cmd);
        if !flags.is_empty() {
            flags_table(&mut out, &flags);
        }
        if runnable(cmd) {
            let _ = writeln!(out, "`-o json|yaml`: {}.\n", output_cell(path));
        }
        if let Some(phase) = phase {
            phases_table(&mut out, path, phase);
        }
    }

    out.push_str("### Planned\n\n");
    out.push_str(
        "The contract names these commands and flags; they do not exist yet, and the binary refuses them \
         (an unknown command or flag is exit 2). This list is derived from what the binary lacks.\n\n",
    );
    let planned = planned(&root);
    if planned.is_empty() {
        out.push_str("Nothing: every command and flag of the contract is built.\n");
    } else {
        out.push_str("| command | flags | what it does |\n|---|---|---|\n");
        for row in planned {
            let _ = writeln!(out, "| {} | {} | {} |", row.0, row.1, cell(row.2));
        }
    }
    out
}

fn phase_positional(phase: Option<&Command>) -> String {
    phase
        .and_then(|p| p.get_subcommands().next())
        .map(usage_args)
        .unwrap_or_default()
}

/// Every phase below `<command> phase`, as a table.
fn phases_table(out: &mut String, path: &[&str], phase: &Command) {
    let _ = writeln!(
        out,
        "Phases (each takes the flags of `kubestrap {}`; a group runs all its sub-phases, as does its `all`):\n",
        path.join(" ")
    );
    out.push_str("| phase command | what it does | `-o json\\|yaml` |\n|---|---|---|\n");
    let mut phases = Vec::new();
    let mut phase_path: Vec<&str> = path.to_vec();
    phase_path.push("phase");
    walk(phase, phase_path, &mut phases);
    for (sub_path, cmd) in phases {
        let _ = writeln!(
            out,
            "| `kubestrap {}` | {} | {} |",
            sub_path.join(" "),
            cell(&cmd.get_about().map(|a| a.to_string()).unwrap_or_default()),
            output_cell(&sub_path)
        );
    }
    out.push('\n');
}

/// The contract's commands the binary does not have (or cannot run on their own), and the flags
/// of built commands it lacks: (command, flags, what it does).
pub fn planned(root: &Command) -> Vec<(String, String, &'static str)> {
    let mut rows = Vec::new();
    for entry in CONTRACT {
        let path: Vec<&str> = entry.path.split(' ').collect();
        let flags = |names: &[&str]| {
            names
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match find(root, &path) {
            None => rows.push((
                format!("`kubestrap {}`", entry.path),
                flags(entry.flags),
                entry.about,
            )),
            Some(cmd) => {
                if !runnable(cmd) {
                    rows.push((
                        format!("`kubestrap {}` (on its own)", entry.path),
                        String::new(),
                        entry.about,
                    ));
                }
                let missing: Vec<&str> = entry
                    .flags
                    .iter()
                    .copied()
                    .filter(|flag| !has_flag(cmd, flag.trim_start_matches('-')))
                    .collect();
                if !missing.is_empty() {
                    rows.push((
                        format!("`kubestrap {}`", entry.path),
                        flags(&missing),
                        "flags not built yet",
                    ));
                }
            }
        }
    }
    rows
}

fn has_flag(cmd: &Command, long: &str) -> bool {
    cmd.get_arguments().any(|a| a.get_long() == Some(long))
}

/// docs/cli.md with its generated region replaced by [`generated`].
pub fn regenerate(page: &str) -> anyhow::Result<String> {
    let start = page
        .find(BEGIN_MARKER)
        .ok_or_else(|| anyhow::anyhow!("docs/cli.md has no begin marker"))?;
    let end = page
        .find(END_MARKER)
        .ok_or_else(|| anyhow::anyhow!("docs/cli.md has no end marker"))?;
    anyhow::ensure!(start < end, "docs/cli.md's markers are out of order");
    Ok(format!(
        "{}{BEGIN_MARKER}\n\n{}\n{}",
        &page[..start],
        generated(),
        &page[end..]
    ))
}

/// Every result shape has its section on the page.
pub fn missing_shape_sections(page: &str) -> Vec<&'static str> {
    ResultShape::ALL
        .iter()
        .filter(|shape| !page.contains(&format!("\n### {}\n", shape.heading())))
        .map(|shape| shape.heading())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md")
    }

    #[test]
    fn committed_page_matches_the_command_tree() {
        let mut committed = std::fs::read_to_string(page_path()).unwrap();
        let generated = regenerate(&committed).unwrap();
        if std::env::var_os("KUBESTRAP_BLESS").is_some() {
            std::fs::write(page_path(), &generated).unwrap();
            committed = generated.clone();
        }
        assert!(
            committed == generated,
            "docs/cli.md's command tables are out of date; run KUBESTRAP_BLESS=1 cargo test --lib cli::docs"
        );
    }

    #[test]
    fn every_result_shape_is_documented() {
        let committed = std::fs::read_to_string(page_path()).unwrap();
        assert_eq!(missing_shape_sections(&committed), Vec::<&str>::new());
    }

    #[test]
    fn planned_lists_what_clap_lacks_and_only_that() {
        let root = Cli::command();
        let rows = planned(&root);
        let commands: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        for built in [
            "`kubestrap token generate`",
            "`kubestrap verify network`",
            "`kubestrap init phase addon pod-network`",
        ] {
            assert!(!commands.contains(&built), "{built} in {commands:?}");
        }
        // A contract command the tree lacks is planned: the tree without `verify` plans
        // `verify network`.
        let shrunk = Command::new("kubestrap").subcommands(
            root.get_subcommands()
                .filter(|c| c.get_name() != "verify")
                .cloned(),
        );
        assert!(
            planned(&shrunk)
                .iter()
                .any(|r| r.0 == "`kubestrap verify network`")
        );
        // A flag of a built command the binary lacks is planned under that command: the tree
        // whose init lacks `--pod-network-manifest` plans it.
        assert!(
            !rows.iter().any(|r| r.1.contains("--pod-network-manifest")),
            "{rows:?}"
        );
        let without_flag = Command::new("kubestrap").subcommands(root.get_subcommands().map(|c| {
            if c.get_name() != "init" {
                return c.clone();
            }
            Command::new("init")
                .args(
                    c.get_arguments()
                        .filter(|a| a.get_id() != "pod_network_manifest")
                        .cloned(),
                )
                .subcommands(c.get_subcommands().cloned())
        }));
        let rows = planned(&without_flag);
        assert!(
            rows.iter()
                .any(|r| r.0 == "`kubestrap init`" && r.1.contains("--pod-network-manifest")),
            "{rows:?}"
        );
    }

    #[test]
    fn contract_paths_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for entry in CONTRACT {
            assert!(seen.insert(entry.path), "{} twice", entry.path);
        }
    }
}
