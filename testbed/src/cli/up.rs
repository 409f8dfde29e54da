//! `up`: a new cluster of fresh nodes that keeps running after the command returns. The nodes run
//! the cluster's own copies of tbnode and kubestrap (see `state`), kubestrap at
//! /usr/local/bin/kubestrap as on a host where it was installed.

use std::path::Path;

use anyhow::Context as _;

use super::Context;
use super::clusters::{self, require_engine};
use super::error::{CliResult, usage};
use crate::driver::identity::Owner;
use crate::driver::persistent;
use crate::driver::{Binaries, Cluster, ClusterSpec};

pub fn run(ctx: &Context, nodes: u8, kubestrap: Option<&Path>, lb: bool) -> CliResult<i32> {
    let name = ctx.cluster_name();
    let mut source = Binaries::beside_current_exe()?;
    if let Some(path) = kubestrap {
        if !path.is_file() {
            return Err(usage(format!(
                "--kubestrap {}: no such file",
                path.display()
            )));
        }
        source.kubestrap = path.to_path_buf();
    }
    require_engine()?;
    let root = ctx.state()?.create()?;
    let _lock = root.lock()?;
    if let Some(found) = persistent::find(name)? {
        let nodes: Vec<&str> = found.nodes().map(|(n, _, _)| n).collect();
        let elsewhere = match &found.state_root {
            Some(dir) if !clusters::belongs_to(&found, &root) => {
                format!(", state directory {}", dir.display())
            }
            _ => String::new(),
        };
        return Err(usage(format!(
            "a testbed cluster named {name:?} already exists (nodes: {}{elsewhere}): use it, or remove it with `kubestrap-testbed down --name {name}`",
            if nodes.is_empty() {
                "none".to_string()
            } else {
                nodes.join(", ")
            }
        )));
    }
    let dir = root.cluster_dir(name);
    if dir.exists() {
        return Err(usage(format!(
            "the state of a cluster named {name:?} is left at {} (an interrupted `up` or `down`): remove it with `kubestrap-testbed down --name {name}`",
            dir.display()
        )));
    }
    eprintln!("starting {nodes} testbed node(s) of cluster {name:?}");
    let installed = root
        .install_binaries(name, &source)
        .context("copy the node binaries into the state directory");
    let started = installed.and_then(|installed| {
        Cluster::create(
            Owner::cli(name, root.path()),
            &installed,
            &ClusterSpec {
                lb,
                ..ClusterSpec::nodes(usize::from(nodes))
            },
        )
    });
    let cluster = match started {
        Ok(cluster) => cluster,
        Err(e) => {
            let _ = root.remove(name);
            return Err(e.context(format!("start cluster {name:?}")).into());
        }
    };
    eprintln!(
        "cluster {name:?} is up: network {} ({}), node image {}, binaries in {}",
        cluster.network,
        cluster.subnet,
        cluster.image,
        dir.join("bin").display()
    );
    let width = cluster
        .nodes
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:width$}  IP", "NODE");
    for node in &cluster.nodes {
        println!("{:width$}  {}", node.name, node.ip);
    }
    if let Some(lb) = &cluster.lb {
        println!(
            "{:width$}  {}  (haproxy: --control-plane-endpoint {}:{})",
            lb.name,
            lb.ip,
            lb.ip,
            crate::driver::lb::LB_PORT
        );
    }
    Ok(0)
}
