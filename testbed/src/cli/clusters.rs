//! Finding the cluster and node a command names, with the errors an admin needs: no Docker engine,
//! no such cluster (or one of another state directory), a cluster from an older node image, no
//! such node, a node that is stopped or paused.

use std::path::Path;

use super::error::{CliError, CliResult, failed, usage};
use super::state::StateRoot;
use crate::driver::node_state::Power;
use crate::driver::persistent::{self, Persisted};
use crate::driver::{Cluster, Node, docker, image};

/// Fails with a clear message when no Docker engine answers (or there is no docker CLI).
pub fn require_engine() -> CliResult<()> {
    let out = docker::docker(&["version", "--format", "{{.Server.Version}}"], None)
        .map_err(|e| failed(format!("{e:#}")))?;
    if out.ok() && !out.stdout.trim().is_empty() {
        return Ok(());
    }
    let said = out
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Err(failed(format!(
        "no Docker engine answers, and kubestrap-testbed runs its nodes on one (start dockerd, or point DOCKER_HOST at a running engine): {said}"
    )))
}

/// Whether a cluster found on the engine belongs to this state directory.
pub fn belongs_to(found: &Persisted, root: &StateRoot) -> bool {
    found.state_root.as_deref().is_none_or(|p| p == root.path())
}

/// The command-line clusters of this state directory, and those of other state directories.
pub fn list(root: &StateRoot) -> CliResult<(Vec<Persisted>, Vec<Persisted>)> {
    Ok(persistent::list()?
        .into_iter()
        .partition(|p| belongs_to(p, root)))
}

/// `cluster` as found on the engine, if it is this state directory's.
pub fn find(root: &StateRoot, cluster: &str) -> CliResult<Option<Persisted>> {
    let Some(found) = persistent::find(cluster)? else {
        return Ok(None);
    };
    if !belongs_to(&found, root) {
        return Err(usage(format!(
            "cluster {cluster:?} belongs to the state directory {} (this command uses {}): give --state-dir {}",
            found
                .state_root
                .as_deref()
                .unwrap_or(Path::new("?"))
                .display(),
            root.path().display(),
            found
                .state_root
                .as_deref()
                .unwrap_or(Path::new("?"))
                .display(),
        )));
    }
    Ok(Some(found))
}

/// An error for a cluster that does not exist, naming the ones that do.
pub fn unknown_cluster(root: &StateRoot, cluster: &str) -> CliError {
    let known: Vec<String> = list(root)
        .map(|(mine, _)| mine.into_iter().map(|p| p.name).collect())
        .unwrap_or_default();
    let hint = if known.is_empty() {
        format!("there is none: start one with `kubestrap-testbed up --name {cluster}`")
    } else {
        format!("clusters: {}", known.join(", "))
    };
    usage(format!("no testbed cluster named {cluster:?} ({hint})"))
}

/// Says why a cluster cannot be driven as it is: made from another node image than the one this
/// build makes, or only remains of an interrupted `up`.
pub fn unusable(found: &Persisted) -> Option<String> {
    let name = &found.name;
    let again = format!(
        "remove it with `kubestrap-testbed down --name {name}` and run `kubestrap-testbed up --name {name}` again"
    );
    if found.containers.is_empty() {
        return Some(format!(
            "cluster {name:?} has no nodes, only what an interrupted `up` left: {again}"
        ));
    }
    let current = image::tag();
    match found.image() {
        Some(made) if made == current => None,
        made => Some(format!(
            "cluster {name:?} was made from the node image {}, and this kubestrap-testbed makes {current} (the node image changed since `up`): {again}",
            made.unwrap_or("(unknown)")
        )),
    }
}

/// The named cluster, ready to drive.
pub fn open(root: &StateRoot, cluster: &str) -> CliResult<Cluster> {
    require_engine()?;
    let found = find(root, cluster)?.ok_or_else(|| unknown_cluster(root, cluster))?;
    if let Some(why) = unusable(&found) {
        return Err(failed(why));
    }
    Ok(found.attach())
}

/// The named node of a cluster.
pub fn node<'a>(cluster: &'a Cluster, name: &str) -> CliResult<&'a Node> {
    cluster.node(name).map_err(|_| {
        let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        usage(format!(
            "no node {name:?} in cluster {:?} (its nodes: {})",
            cluster.run_id,
            names.join(", ")
        ))
    })
}

/// How to name a node on the command line: `node1` in the default cluster, else `demo/node1`.
pub fn shown(cluster: &Cluster, node: &Node) -> String {
    if cluster.run_id == super::address::DEFAULT_CLUSTER {
        node.name.clone()
    } else {
        format!("{}/{}", cluster.run_id, node.name)
    }
}

/// Fails unless the node runs (it may be partitioned): commands on a stopped or frozen node
/// would hang or fail obscurely.
pub fn require_running(cluster: &Cluster, node: &Node) -> CliResult<()> {
    let status = node.status()?;
    let who = shown(cluster, node);
    match status.power {
        Power::Running => Ok(()),
        Power::Paused => Err(failed(format!(
            "node {who} is paused: run `kubestrap-testbed unpause {who}` first"
        ))),
        Power::Stopped => Err(failed(format!(
            "node {who} is stopped: run `kubestrap-testbed start {who}` first"
        ))),
        Power::Other(state) => Err(failed(format!("node {who} is {state}: wait for it to run"))),
    }
}
