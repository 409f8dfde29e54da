//! `status`: each cluster's network and node image, and per node its address, state, the services
//! its service manager runs and the pods its container runtime runs.

use super::Context;
use super::clusters::{self, require_engine};
use super::error::CliResult;
use crate::driver::node_state::{Pod, Power, Service};
use crate::driver::persistent::Persisted;

pub fn run(ctx: &Context) -> CliResult<i32> {
    require_engine()?;
    let root = ctx.state()?;
    let (clusters, others): (Vec<Persisted>, Vec<Persisted>) = match &ctx.name {
        Some(name) => {
            let found = clusters::find(&root, name)?;
            match found {
                Some(found) => (vec![found], Vec::new()),
                None if root.cluster_dir(name).exists() => {
                    println!(
                        "cluster {name:?}: only its state directory {} is left: remove it with `kubestrap-testbed down --name {name}`",
                        root.cluster_dir(name).display()
                    );
                    return Ok(0);
                }
                None => return Err(clusters::unknown_cluster(&root, name)),
            }
        }
        None => clusters::list(&root)?,
    };
    let mut first = true;
    for cluster in &clusters {
        if !first {
            println!();
        }
        first = false;
        show(cluster);
    }
    if ctx.name.is_none() {
        let known: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        for name in root.cluster_dirs()? {
            if !known.contains(&name.as_str()) {
                println!(
                    "cluster {name:?}: only its state directory {} is left: remove it with `kubestrap-testbed down --name {name}`",
                    root.cluster_dir(&name).display()
                );
                first = false;
            }
        }
        if first {
            println!(
                "no testbed clusters in {} (start one with `kubestrap-testbed up`)",
                root.path().display()
            );
        }
        if !others.is_empty() {
            let names: Vec<String> = others
                .iter()
                .map(|o| {
                    format!(
                        "{} ({})",
                        o.name,
                        o.state_root
                            .as_deref()
                            .unwrap_or(std::path::Path::new("?"))
                            .display()
                    )
                })
                .collect();
            println!(
                "clusters of other state directories (see them with --state-dir): {}",
                names.join(", ")
            );
        }
    }
    Ok(0)
}

fn show(found: &Persisted) {
    println!(
        "cluster {}: network {} ({}), node image {}",
        found.name,
        found.network_name(),
        found
            .network
            .as_ref()
            .and_then(|n| n.subnet())
            .unwrap_or("gone"),
        found.image().unwrap_or("unknown")
    );
    if let Some(why) = clusters::unusable(found) {
        println!("  {why}");
        if found.containers.is_empty() {
            return;
        }
    }
    let cluster = found.attach();
    let mut rows = vec![[
        "NODE".to_string(),
        "IP".to_string(),
        "STATE".to_string(),
        "SERVICES".to_string(),
        "PODS".to_string(),
    ]];
    for node in &cluster.nodes {
        let (state, services, pods) = match node.status() {
            Ok(status) if status.power == Power::Running => (
                status.describe(),
                node.services()
                    .map(|s| services_text(&s))
                    .unwrap_or_else(|e| format!("? ({e:#})")),
                node.pods()
                    .map(|p| pods_text(&p))
                    .unwrap_or_else(|e| format!("? ({e:#})")),
            ),
            Ok(status) => (status.describe(), "-".into(), "-".into()),
            Err(e) => (format!("? ({e:#})"), "-".into(), "-".into()),
        };
        rows.push([node.name.clone(), node.ip.clone(), state, services, pods]);
    }
    print!("{}", table(&rows));
}

/// Active services by name; others that are not simply inactive with their state
/// (`kubelet(auto-restart)`, `etcd(failed)`).
pub fn services_text(services: &[Service]) -> String {
    let shown: Vec<String> = services
        .iter()
        .filter(|s| s.active != "inactive")
        .map(|s| {
            if s.active == "active" {
                s.name.clone()
            } else {
                format!("{}({})", s.name, s.sub)
            }
        })
        .collect();
    if shown.is_empty() {
        "-".into()
    } else {
        shown.join(" ")
    }
}

/// `namespace/pod` for each pod, with `(not running)` or `(n/m running)` unless all its
/// containers run.
pub fn pods_text(pods: &[Pod]) -> String {
    let shown: Vec<String> = pods
        .iter()
        .map(|p| {
            let running = p.containers.iter().filter(|(_, r)| *r).count();
            let name = format!("{}/{}", p.namespace, p.name);
            match (running, p.containers.len()) {
                (r, n) if r == n && n > 0 => name,
                (0, _) => format!("{name}(not running)"),
                (r, n) => format!("{name}({r}/{n} running)"),
            }
        })
        .collect();
    if shown.is_empty() {
        "-".into()
    } else {
        shown.join(" ")
    }
}

/// Left-aligned columns, two spaces apart (the last column is not padded).
pub fn table(rows: &[[String; 5]]) -> String {
    let mut widths = [0usize; 5];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, active: &str, sub: &str) -> Service {
        Service {
            name: name.into(),
            active: active.into(),
            sub: sub.into(),
        }
    }

    #[test]
    fn services_show_what_runs_and_what_keeps_failing() {
        let services = [
            service("containerd", "active", "running"),
            service("kubelet", "activating", "auto-restart"),
            service("etcd", "inactive", "dead"),
            service("cron", "failed", "failed"),
        ];
        assert_eq!(
            services_text(&services),
            "containerd kubelet(auto-restart) cron(failed)"
        );
        assert_eq!(services_text(&[]), "-");
    }

    #[test]
    fn pods_say_when_their_containers_do_not_all_run() {
        let pod = |name: &str, containers: &[bool]| Pod {
            namespace: "kube-system".into(),
            name: name.into(),
            containers: containers
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("c{i}"), *r))
                .collect(),
        };
        let pods = [
            pod("etcd-node1", &[true]),
            pod("kube-apiserver-node1", &[false]),
            pod("two-node1", &[true, false]),
            pod("empty-node1", &[]),
        ];
        assert_eq!(
            pods_text(&pods),
            "kube-system/etcd-node1 kube-system/kube-apiserver-node1(not running) \
             kube-system/two-node1(1/2 running) kube-system/empty-node1(not running)"
        );
    }

    #[test]
    fn columns_line_up() {
        let row = |a: &str, b: &str| {
            [
                a.into(),
                b.into(),
                "running".into(),
                "-".into(),
                "x y".into(),
            ]
        };
        let out = table(&[row("NODE", "IP"), row("node1", "10.214.7.11")]);
        assert_eq!(
            out,
            "NODE   IP           running  -  x y\nnode1  10.214.7.11  running  -  x y\n"
        );
    }
}
