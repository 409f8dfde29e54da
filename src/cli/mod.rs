//! The command line: global options, the command tree, and dispatch to each command.

pub mod certs;
pub mod config;
pub mod init;
pub mod join;
pub mod reset;
pub mod token;
pub mod version;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::host::{Facts, Host, Root};
use crate::output::{Format, Ui};

#[derive(Debug, Parser)]
#[command(
    name = "kubestrap",
    version,
    about = "Bootstrap Kubernetes clusters: init a control plane, join nodes, reset a node to a clean host",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Prefix for every host state path read or written on disk (/etc/kubernetes, /var/lib/kubelet, …)
    #[arg(
        long,
        global = true,
        env = "KUBESTRAP_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// Log detail, 0 to 5
    #[arg(short = 'v', long = "v", global = true, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u8).range(0..=5))]
    pub verbosity: u8,
    /// No progress bars; never answer a prompt
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Output format for commands with a result
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = "text"
    )]
    pub output: Format,
    /// Print the exact plan and change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,
}

impl GlobalOpts {
    pub fn ui(&self) -> Ui {
        Ui::new(self.verbosity, self.quiet, self.output)
    }

    pub fn host(&self) -> Host {
        Host::new(
            Root::new(&self.root),
            Facts::from_env(),
            self.dry_run,
            self.ui(),
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up the first control-plane node of a cluster
    Init(Box<init::InitCmd>),
    /// Join this node to a cluster (for now one phase at a time: `join phase preflight`)
    Join(Box<join::JoinCmd>),
    /// Return this node to a clean host: undo init/join and remove what the cluster left
    Reset(Box<reset::ResetCmd>),
    /// Configuration files: print defaults, validate
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Bootstrap tokens
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Certificates: check expiration, renew, certificate key, CSRs for an external CA
    #[command(subcommand)]
    Certs(certs::CertsCmd),
    /// Print the version
    Version,
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Init(cmd) => init::run(&global, *cmd),
        Command::Join(cmd) => join::run(&global, *cmd),
        Command::Reset(cmd) => reset::run(&global, *cmd),
        Command::Config(cmd) => config::run(&global, cmd),
        Command::Token(cmd) => token::run(&global, cmd),
        Command::Certs(cmd) => certs::run(&global, cmd),
        Command::Version => version::run(&global),
        Command::Completion { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "kubestrap", &mut std::io::stdout());
            Ok(())
        }
    }
}
