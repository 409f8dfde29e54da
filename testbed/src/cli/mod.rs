//! `kubestrap-testbed`, the testbed's command line (what kind is to kubeadm): clusters of simulated
//! nodes on the local Docker engine that stay up between commands, commands on the nodes, and a
//! checked teardown. Built on the same driver the Rust tests use.

pub mod address;
pub mod clusters;
pub mod down;
pub mod error;
pub mod logs;
pub mod node;
pub mod state;
pub mod status;
pub mod up;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use address::{DEFAULT_CLUSTER, Endpoint, NodeRef};
use error::{CliResult, usage};
use node::Switch;
use state::StateRoot;

const AFTER_HELP: &str = "\
Nodes are named NODE (node1, node2, …) in the cluster --name gives (default: kubestrap), or
CLUSTER/NODE. Errors exit 2 when what was typed is wrong (unknown cluster or node, a name in use),
1 when the engine or an operation fails; exec and kubectl exit with the command's own code.

Examples:
  kubestrap-testbed up --nodes 2
  kubestrap-testbed up --nodes 3 --lb
  kubestrap-testbed exec node1 -- kubestrap init phase preflight
  kubestrap-testbed cp ./cluster.yaml node1:/root/cluster.yaml
  kubestrap-testbed kubectl node1 -- get nodes
  kubestrap-testbed partition node2
  kubestrap-testbed status
  kubestrap-testbed down";

#[derive(Debug, Parser)]
#[command(
    name = "kubestrap-testbed",
    version,
    about = "Simulated Kubernetes nodes on the local Docker engine, to run kubestrap on",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// The cluster to act on [default: kubestrap]
    #[arg(long, global = true, value_name = "CLUSTER", value_parser = cluster_name)]
    pub name: Option<String>,
    /// Where clusters keep their copies of the node binaries [default:
    /// $XDG_STATE_HOME/kubestrap-testbed, else ~/.local/state/kubestrap-testbed]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "KUBESTRAP_TESTBED_STATE"
    )]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

fn cluster_name(text: &str) -> Result<String, String> {
    crate::driver::identity::check_name(text).map(|()| text.to_string())
}

fn node_ref(text: &str) -> Result<NodeRef, String> {
    address::parse_node(text)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a cluster of fresh nodes (kubestrap at /usr/local/bin/kubestrap) that keeps running
    /// after the command returns; prints each node's name and IP
    Up {
        /// How many nodes (1 to 20)
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=20))]
        nodes: u8,
        /// The kubestrap binary the nodes get [default: testbed-kubestrap beside this program]
        #[arg(long, value_name = "PATH")]
        kubestrap: Option<PathBuf>,
        /// Also start a load-balancer node `lb` (haproxy in TCP mode over every node's :6443, at
        /// <subnet>.10): the --control-plane-endpoint of an HA cluster
        #[arg(long)]
        lb: bool,
    },
    /// Run a command on a node with this terminal's stdin, stdout and stderr; exits with its code
    Exec {
        #[arg(value_name = "NODE", value_parser = node_ref)]
        node: NodeRef,
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Run kubectl on a node with its /etc/kubernetes/admin.conf
    Kubectl {
        #[arg(value_name = "NODE", value_parser = node_ref)]
        node: NodeRef,
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Copy a file to a node (cp SRC NODE:/DST) or from one (cp NODE:/SRC DST), keeping its mode
    Cp {
        #[arg(value_name = "SRC")]
        source: String,
        #[arg(value_name = "DST")]
        destination: String,
    },
    /// Print a service's log (kubelet, containerd) or a pod's container logs; without a name,
    /// list what there is
    Logs {
        #[arg(value_name = "NODE", value_parser = node_ref)]
        node: NodeRef,
        #[arg(value_name = "SERVICE|POD")]
        what: Option<String>,
    },
    /// Stop a node as a power-off would (its disk and address stay)
    Stop {
        #[arg(value_name = "NODE", value_parser = node_ref)]
        node: NodeRef,
    },
    /// Boot a stopped node again
    Start {
        #[arg(value_name = "NODE", value_parser = node_ref)]
        node: NodeRef,
    },
    /// Freeze every process of a node
    Pause {
        #[arg(value_name = "NODE", value_parser = node_ref)]
        node: NodeRef,
    },
    /// Thaw a paused node
    Unpause {
        #[arg(value_name = "NODE", value_parser = node_ref)]
        node: NodeRef,
    },
    /// Cut a node off the cluster network (it keeps running, alone)
    Partition {
        #[arg(value_name = "NODE", value_parser = node_ref)]
        node: NodeRef,
    },
    /// Reconnect a partitioned node with its old address
    Heal {
        #[arg(value_name = "NODE", value_parser = node_ref)]
        node: NodeRef,
    },
    /// Show the clusters (or the --name one): nodes, IPs, state, services and pods on each
    Status,
    /// Remove a cluster (or --all of this state directory's) and check nothing of it is left
    Down {
        /// Every cluster of the state directory
        #[arg(long)]
        all: bool,
    },
}

/// The options every command shares.
pub struct Context {
    pub name: Option<String>,
    pub state_dir: Option<PathBuf>,
}

impl Context {
    pub fn cluster_name(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_CLUSTER)
    }

    pub fn state(&self) -> CliResult<StateRoot> {
        Ok(StateRoot::locate(self.state_dir.as_deref())?)
    }
}

/// Runs a command on the node it names (its cluster from `CLUSTER/` or `--name`).
fn on_node(
    ctx: &Context,
    node: &NodeRef,
    run: impl FnOnce(&crate::driver::Cluster, &crate::driver::Node) -> CliResult<i32>,
) -> CliResult<i32> {
    let cluster_name = node.cluster(ctx.name.as_deref())?;
    let root = ctx.state()?;
    let cluster = clusters::open(&root, cluster_name)?;
    let target = clusters::node(&cluster, &node.node)?;
    run(&cluster, target)
}

pub fn run(cli: Cli) -> CliResult<i32> {
    let ctx = Context {
        name: cli.name,
        state_dir: cli.state_dir,
    };
    match cli.command {
        Command::Up {
            nodes,
            kubestrap,
            lb,
        } => up::run(&ctx, nodes, kubestrap.as_deref(), lb),
        Command::Down { all } => down::run(&ctx, all),
        Command::Status => status::run(&ctx),
        Command::Exec { node, command } => on_node(&ctx, &node, |c, n| node::exec(c, n, &command)),
        Command::Kubectl { node, args } => on_node(&ctx, &node, |c, n| node::kubectl(c, n, &args)),
        Command::Logs { node, what } => {
            on_node(&ctx, &node, |c, n| logs::run(c, n, what.as_deref()))
        }
        Command::Cp {
            source,
            destination,
        } => {
            let (from, to) = address::parse_copy(&source, &destination)?;
            let target = match (&from, &to) {
                (Endpoint::Node(n, _), _) | (_, Endpoint::Node(n, _)) => n.clone(),
                _ => return Err(usage("cp: one side must be a node's file")),
            };
            on_node(&ctx, &target, |c, n| node::copy(c, n, &from, &to))
        }
        Command::Stop { node } => on_node(&ctx, &node, |c, n| node::switch(c, n, Switch::Stop)),
        Command::Start { node } => on_node(&ctx, &node, |c, n| node::switch(c, n, Switch::Start)),
        Command::Pause { node } => on_node(&ctx, &node, |c, n| node::switch(c, n, Switch::Pause)),
        Command::Unpause { node } => {
            on_node(&ctx, &node, |c, n| node::switch(c, n, Switch::Unpause))
        }
        Command::Partition { node } => {
            on_node(&ctx, &node, |c, n| node::switch(c, n, Switch::Partition))
        }
        Command::Heal { node } => on_node(&ctx, &node, |c, n| node::switch(c, n, Switch::Heal)),
    }
}

/// The program: parse, run, print an error and return the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kubestrap-testbed: error: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubestrap-testbed").chain(args.iter().copied()))
    }

    #[test]
    fn the_cluster_name_is_global_and_checked() {
        let cli = parse(&["exec", "node1", "--name", "demo", "--", "true"]).unwrap();
        assert_eq!(cli.name.as_deref(), Some("demo"));
        let cli = parse(&["--name", "demo", "up", "--nodes", "2"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Up {
                nodes: 2,
                lb: false,
                ..
            }
        ));
        let cli = parse(&["up", "--lb"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Up {
                nodes: 3,
                lb: true,
                ..
            }
        ));
        let err = parse(&["up", "--name", "Bad_Name"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("not a valid cluster name"),
            "{err}"
        );
    }

    #[test]
    fn up_takes_one_to_twenty_nodes_and_defaults_to_three() {
        assert!(matches!(
            parse(&["up"]).unwrap().command,
            Command::Up { nodes: 3, .. }
        ));
        for bad in ["0", "21", "x"] {
            let err = parse(&["up", "--nodes", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn exec_passes_everything_after_the_double_dash() {
        let cli = parse(&["exec", "demo/node2", "--", "sh", "-c", "exit 3", "--name"]).unwrap();
        let Command::Exec { node, command } = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(node.cluster.as_deref(), Some("demo"));
        assert_eq!(node.node, "node2");
        assert_eq!(command, ["sh", "-c", "exit 3", "--name"]);
        // A command is required, and only after `--`.
        assert_eq!(parse(&["exec", "node1"]).unwrap_err().exit_code(), 2);
        assert_eq!(
            parse(&["exec", "node1", "true"]).unwrap_err().exit_code(),
            2
        );
        assert_eq!(
            parse(&["exec", "Node_1", "--", "true"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn kubectl_arguments_may_be_empty() {
        let cli = parse(&["kubectl", "node1", "--", "get", "nodes", "-o", "wide"]).unwrap();
        let Command::Kubectl { args, .. } = cli.command else {
            panic!()
        };
        assert_eq!(args, ["get", "nodes", "-o", "wide"]);
        assert!(parse(&["kubectl", "node1"]).is_ok());
    }

    #[test]
    fn down_all_and_a_name_exclude_each_other() {
        let cli = parse(&["down", "--all", "--name", "demo"]).unwrap();
        let ctx = Context {
            name: cli.name,
            state_dir: Some(std::env::temp_dir()),
        };
        let err = down::run(&ctx, true).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("not both"), "{err}");
    }
}
