//! docs/preflight.md, generated from the catalogue so the page cannot drift from the checks.

use std::fmt::Write;

use super::catalogue::{self, Entry, Role};
use super::settings::PreflightInput;

fn role_cell(entry: &Entry, role: Role) -> &'static str {
    match entry.severity(role) {
        Some(s) => s.name(),
        None => "",
    }
}

/// The whole page.
pub fn markdown() -> anyhow::Result<String> {
    let entries = catalogue::catalogue()?;
    let defaults = PreflightInput::defaults(Role::Init, "node");
    let mut out = String::new();
    out.push_str(
        "# Preflight checks\n\n\
         <!-- Generated from preflight/checks.yaml by `cargo test --lib preflight::docs` \
         (set KUBESTRAP_BLESS=1 to rewrite it). Do not edit by hand. -->\n\n\
         `kubestrap init phase preflight`, `kubestrap join phase preflight` and reset's `preflight` phase run the\n\
         checks below for their role (init; join of a worker; join of a control-plane node; reset). Every failure is\n\
         printed at once, kubeadm-style, with its remedy:\n\n\
         ```\n\
         [preflight] Running pre-flight checks\n\
         \t[WARNING CgroupsVersion]: the host runs cgroup v1: …\n\
         \t\tremedy: …\n\
         [preflight] Some fatal errors occurred:\n\
         \t[ERROR Port-6443]: Port 6443 is in use by kube-apiserver (pid 4242)\n\
         \t\tremedy: …\n\
         [preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\n\
         error: error execution phase preflight: preflight checks failed\n\
         ```\n\n\
         Any error exits 1. `-o json` prints `{\"checks\": [{\"id\", \"severity\", \"status\", \"message\", \"remediation\"}]}`\n\
         (status `pass`, `fail` or `skip`). `--ignore-preflight-errors=<id,…>` (or `nodeRegistration.ignorePreflightErrors`)\n\
         turns the named errors into warnings; ids match case-insensitively and `all` matches every id. Ids are kubeadm's\n\
         where kubeadm has the check. An id written with `{setting}` is filled in from the configuration (each\n\
         check's section shows it with kubeadm's defaults): `{bindPort}` is the API server's bind port,\n\
         `{discoveryPort}` the discovery port, `{etcdDataDir}` and `{certDir}` are paths written with `-` for `/`.\n\n\
         A severity of `error` may still produce a warning: checks such as `Swap` or `CgroupsVersion` warn when the\n\
         problem is tolerated by the configuration and fail when it is not. Host facts are read from /proc and /sys\n\
         (per network namespace where the kernel keeps them so: sysctls, sockets, addresses). State paths (the\n\
         `--root` list in [the command line](cli.md#global-options)) are read under `--root`; the host's own files, which\n\
         are not cluster state, are always read from the host: `/etc/machine-id`, the kubelet's resolv.conf (and\n\
         `/run/systemd/resolve/resolv.conf`), `/etc/containerd/config.toml`, `/etc/docker/daemon.json` and the packaged\n\
         unit directories `/lib/systemd/system` and `/usr/lib/systemd/system`. Kernel options come from\n\
         `/proc/config.gz` or `/boot/config-RELEASE`, never from modprobe or /proc/modules.\n\n\
         `--fix` applies the safe fixes: kernel parameters (`sysctl` checks) are written to\n\
         `/etc/sysctl.d/99-kubestrap.conf` and set live; both are journaled. `kubestrap reset` removes the drop-in\n\
         but leaves live values alone (other software, such as Docker, relies on ip_forward).\n\n",
    );
    let _ = writeln!(
        out,
        "{} checks: {} for init, {} for join (worker), {} for join (control plane), {} for reset.\n",
        entries.len(),
        count(entries, Role::Init),
        count(entries, Role::JoinWorker),
        count(entries, Role::JoinControlPlane),
        count(entries, Role::Reset)
    );
    out.push_str("| id | init | join (worker) | join (control plane) | reset | checks |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for entry in entries {
        let _ = writeln!(
            out,
            "| [`{}`](#{}) | {} | {} | {} | {} | {} |",
            entry.id,
            anchor(&entry.id),
            role_cell(entry, Role::Init),
            role_cell(entry, Role::JoinWorker),
            role_cell(entry, Role::JoinControlPlane),
            role_cell(entry, Role::Reset),
            entry.title
        );
    }
    out.push('\n');
    for entry in entries {
        let _ = writeln!(out, "## {}\n", entry.id);
        let rendered = entry.id_for(&defaults);
        if rendered != entry.id {
            let _ = writeln!(out, "With kubeadm's defaults: `{rendered}`.\n");
        }
        let _ = writeln!(out, "{}\n", entry.title);
        let roles: Vec<String> = entry
            .roles
            .iter()
            .map(|(role, severity)| format!("{role} ({})", severity.name()))
            .collect();
        let _ = writeln!(out, "- Runs for: {}", roles.join(", "));
        if !entry.when.is_empty() {
            let when: Vec<String> = entry.when.iter().map(|c| c.describe()).collect();
            let _ = writeln!(out, "- Only when: {}", when.join("; "));
        }
        let _ = writeln!(out, "- Kind: `{}`", entry.check.name());
        if let Some((key, value)) = entry.check.sysctl_fix() {
            let _ = writeln!(out, "- `--fix`: sets `{key} = {value}` (drop-in and live)");
        }
        let _ = writeln!(out, "- Remedy: {}", entry.remediation);
        for (role, remedy) in &entry.remediation_for {
            let _ = writeln!(out, "- Remedy for {role}: {remedy}");
        }
        out.push('\n');
    }
    Ok(out)
}

fn count(entries: &[Entry], role: Role) -> usize {
    entries
        .iter()
        .filter(|e| e.roles.contains_key(&role))
        .count()
}

/// GitHub's heading anchor for an id.
fn anchor(id: &str) -> String {
    id.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_page_matches_the_catalogue() {
        let generated = markdown().unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/preflight.md");
        if std::env::var_os("KUBESTRAP_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/preflight.md is out of date; run KUBESTRAP_BLESS=1 cargo test --lib preflight::docs"
        );
    }

    #[test]
    fn anchors_follow_github() {
        assert_eq!(anchor("Port-{bindPort}"), "port-bindport");
        assert_eq!(
            anchor("FileContent--proc-sys-net-ipv4-ip_forward"),
            "filecontent--proc-sys-net-ipv4-ip_forward"
        );
        assert_eq!(
            anchor("FileAvailable--etc-kubernetes-admin.conf"),
            "fileavailable--etc-kubernetes-adminconf"
        );
    }
}
