//! Commands on one node: `exec` and `kubectl` (the caller's stdin, stdout and stderr; the command's
//! exit code), `cp` in either direction, and the power and network switches `stop`, `start`,
//! `pause`, `unpause`, `partition` and `heal` (each a no-op, said so, when the node is already
//! in that state).

use std::io::IsTerminal;

use super::address::Endpoint;
use super::clusters::{self, shown};
use super::error::{CliResult, failed};
use crate::driver::node_state::Power;
use crate::driver::scenario::ADMIN;
use crate::driver::{Cluster, Node};

/// Whether to give the command a terminal: only when this process has one on both ends.
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

pub fn exec(cluster: &Cluster, node: &Node, command: &[String]) -> CliResult<i32> {
    clusters::require_running(cluster, node)?;
    Ok(node.exec_attached(command, interactive())?)
}

pub fn kubectl(cluster: &Cluster, node: &Node, args: &[String]) -> CliResult<i32> {
    clusters::require_running(cluster, node)?;
    if !node.exists(ADMIN)? {
        return Err(failed(format!(
            "node {} has no {ADMIN} yet: run `kubestrap init` on it first",
            shown(cluster, node)
        )));
    }
    let mut argv = vec!["kubectl".to_string(), format!("--kubeconfig={ADMIN}")];
    argv.extend_from_slice(args);
    Ok(node.exec_attached(&argv, interactive())?)
}

/// Copies one file between the machine and the node; `from`/`to` are `cp`'s two sides, exactly
/// one of them on `node`.
pub fn copy(cluster: &Cluster, node: &Node, from: &Endpoint, to: &Endpoint) -> CliResult<i32> {
    clusters::require_running(cluster, node)?;
    match (from, to) {
        (Endpoint::Local(local), Endpoint::Node(_, remote)) => {
            node.copy_to(local, remote)?;
        }
        (Endpoint::Node(_, remote), Endpoint::Local(local)) => {
            node.copy_from(remote, local)?;
        }
        _ => {
            return Err(failed(
                "cp: one side must be local and the other a node's file",
            ));
        }
    }
    Ok(0)
}

/// The power and network switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    Stop,
    Start,
    Pause,
    Unpause,
    Partition,
    Heal,
}

impl Switch {
    pub fn verb(self) -> &'static str {
        match self {
            Switch::Stop => "stop",
            Switch::Start => "start",
            Switch::Pause => "pause",
            Switch::Unpause => "unpause",
            Switch::Partition => "partition",
            Switch::Heal => "heal",
        }
    }
}

pub fn switch(cluster: &Cluster, node: &Node, switch: Switch) -> CliResult<i32> {
    let status = node.status()?;
    let who = shown(cluster, node);
    let already = |state: &str| {
        println!("{who} is already {state}");
        Ok(0)
    };
    let refuse = |why: &str| Err(failed(format!("cannot {} {who}: {why}", switch.verb())));
    match (switch, &status.power) {
        (Switch::Stop, Power::Stopped) => return already("stopped"),
        (Switch::Start, Power::Running) => return already("running"),
        (Switch::Start, Power::Paused) => {
            return refuse(&format!(
                "it is paused (run `kubestrap-testbed unpause {who}`)"
            ));
        }
        (Switch::Pause, Power::Paused) => return already("paused"),
        (Switch::Pause | Switch::Unpause, Power::Stopped) => {
            return refuse(&format!(
                "it is stopped (run `kubestrap-testbed start {who}`)"
            ));
        }
        (Switch::Unpause, Power::Running) => return already("running (not paused)"),
        (Switch::Partition, _) if status.partitioned => return already("partitioned"),
        (Switch::Heal, _) if !status.partitioned => {
            return already("connected (not partitioned)");
        }
        _ => {}
    }
    let (done, result) = match switch {
        Switch::Stop => ("stopped", node.stop()),
        Switch::Start => ("started", node.start()),
        Switch::Pause => ("paused", node.pause()),
        Switch::Unpause => ("unpaused", node.unpause()),
        Switch::Partition => ("partitioned", node.partition()),
        Switch::Heal => ("healed", node.heal()),
    };
    result?;
    println!("{who} {done}");
    Ok(0)
}
