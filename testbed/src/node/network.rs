//! The node's network set-up at boot (PID 1, before any service): /proc/sys/net made writable in
//! the node's own namespace (the CNI portmap plugin and IPv6 write there; `kernel.*` stays
//! read-only), `unreachable` routes for the pod ranges (`TESTBED_UNREACHABLE`), a filter-table
//! REJECT for the service ranges (`TESTBED_REJECT`) and the cluster's upstream DNS server in
//! /etc/resolv.conf (`TESTBED_NAMESERVER`). Traffic that no datapath handles thus fails at once
//! instead of leaving through the Docker uplink. The service ranges get no route: a node's own
//! connection to a ClusterIP is routed first and DNATed by kube-proxy's nat OUTPUT chain after
//! that, so an unreachable route would fail it before any DNAT; the filter chains run after nat.

use crate::common::command::run;

use anyhow::{Context, Result};

/// The filter chain holding the REJECT rules, jumped to from OUTPUT and FORWARD.
pub const REJECT_CHAIN: &str = "TESTBED-UNHANDLED";

fn list(var: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn writable_proc_sys_net() -> Result<()> {
    use nix::mount::{MsFlags, mount};
    let target = "/proc/sys/net";
    mount(
        Some(target),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context("bind /proc/sys/net")?;
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
        None::<&str>,
    )
    .context("remount /proc/sys/net read-write")
}

fn unreachable_routes(cidrs: &[String]) -> Result<()> {
    for cidr in cidrs {
        let family = if cidr.contains(':') { "-6" } else { "-4" };
        run("ip", &[family, "route", "replace", "unreachable", cidr])?;
    }
    Ok(())
}

fn reject(cidrs: &[String]) -> Result<()> {
    for (tool, v6) in [("iptables", false), ("ip6tables", true)] {
        let mine: Vec<&String> = cidrs.iter().filter(|c| c.contains(':') == v6).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = run(tool, &["-N", REJECT_CHAIN]);
        run(tool, &["-F", REJECT_CHAIN])?;
        for cidr in mine {
            run(tool, &["-A", REJECT_CHAIN, "-d", cidr, "-j", "REJECT"])?;
        }
        for chain in ["OUTPUT", "FORWARD"] {
            if run(tool, &["-C", chain, "-j", REJECT_CHAIN]).is_err() {
                run(tool, &["-A", chain, "-j", REJECT_CHAIN])?;
            }
        }
    }
    Ok(())
}

/// Rewrites /etc/resolv.conf to name `server`, keeping Docker's search and options lines.
fn nameserver(server: &str) -> Result<()> {
    let current = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut text = format!("nameserver {server}\n");
    for line in current.lines() {
        if line.starts_with("search") || line.starts_with("options") {
            text.push_str(line);
            text.push('\n');
        }
    }
    std::fs::write("/etc/resolv.conf", text).context("write /etc/resolv.conf")
}

/// Everything above; each part that fails is reported and the boot goes on.
pub fn boot() {
    let report = |what: &str, result: Result<()>| {
        if let Err(e) = result {
            eprintln!("init: failed to {what}: {e:#}");
        }
    };
    report("make /proc/sys/net writable", writable_proc_sys_net());
    report(
        "add unreachable routes",
        unreachable_routes(&list("TESTBED_UNREACHABLE")),
    );
    report(
        "reject unhandled service traffic",
        reject(&list("TESTBED_REJECT")),
    );
    if let Ok(server) = std::env::var("TESTBED_NAMESERVER")
        && !server.is_empty()
    {
        report("set the upstream DNS server", nameserver(&server));
    }
}
