//! The command line: global options, the command tree, and dispatch to each command.

pub mod certs;
pub mod config;
pub mod discovery;
pub mod docs;
pub mod init;
pub mod join;
pub mod reset;
pub mod results;
pub mod status;
pub mod token;
pub mod verify;
pub mod version;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::host::{Facts, Host, Root};
use crate::output::{Format, Ui};

/// The section of every command's `--help` that lists the options all commands share.
pub const GLOBAL_OPTIONS_HEADING: &str = "Global options";

/// The highest log level; `-v` takes any whole number and reads a higher one as this (as kubeadm
/// accepts any klog level).
pub const MAX_VERBOSITY: u8 = 5;

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

/// Options every subcommand accepts, listed apart from each command's own in `--help`.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Prefix for every host state path read or written on disk (/etc/kubernetes, /var/lib/kubelet, …)
    #[arg(
        long,
        global = true,
        env = "KUBESTRAP_ROOT",
        default_value = "/",
        value_name = "DIR",
        help_heading = GLOBAL_OPTIONS_HEADING
    )]
    pub root: PathBuf,
    /// Log detail, 0 to 5 (a higher level is taken as 5)
    #[arg(short = 'v', long = "v", global = true, default_value_t = 0, value_name = "N",
          value_parser = verbosity, help_heading = GLOBAL_OPTIONS_HEADING)]
    pub verbosity: u8,
    /// No progress bars; never answer a prompt
    #[arg(short, long, global = true, help_heading = GLOBAL_OPTIONS_HEADING)]
    pub quiet: bool,
    /// Output format for commands with a result (json and yaml where the command has one; short: version only)
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = "text",
        help_heading = GLOBAL_OPTIONS_HEADING
    )]
    pub output: Format,
    /// Print the exact plan and change nothing
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS_HEADING)]
    pub dry_run: bool,
}

/// `-v N`: any whole number, a level above [`MAX_VERBOSITY`] read as [`MAX_VERBOSITY`].
fn verbosity(text: &str) -> Result<u8, String> {
    let level: u64 = text.trim().parse().map_err(|_| {
        format!("{text:?} is not a log level: give a whole number, 0 to {MAX_VERBOSITY} (a higher one is taken as {MAX_VERBOSITY})")
    })?;
    Ok(u8::try_from(level.min(u64::from(MAX_VERBOSITY))).unwrap_or(MAX_VERBOSITY))
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
    /// Join this node to a cluster as a worker node
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
    /// The token-signed discovery endpoint
    #[command(subcommand)]
    Discovery(discovery::DiscoveryCmd),
    /// The cluster's health: components, nodes, addons, discovery endpoint, certificates (OK/WARN/FAIL)
    Status(status::StatusCmd),
    /// Post-install smoke tests of the cluster
    #[command(subcommand)]
    Verify(verify::VerifyCmd),
    /// Print the version (-o json|yaml in kubeadm's shape, -o short for the version alone)
    Version,
    /// Print a shell completion script
    Completion {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The whole program: parses `args`, refuses an `-o` the command cannot honour, runs the command, and
/// returns the exit code (0 success, 2 invalid input, 1 any other failure). Errors are printed on
/// stderr; a closed stdout ends the command quietly with 0.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(e) => return clap_exit(&e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    let path = command_path(&matches);
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let outcome = results::check_format(&path, cli.global.output)
        .map_err(anyhow::Error::new)
        .and_then(|()| run(cli));
    match outcome {
        Ok(()) => 0,
        Err(err) if crate::output::is_stdout_closed(&err) => 0,
        Err(err) => {
            crate::output::print_error_line(format!("error: {}", crate::error::describe(&err)));
            crate::error::exit_code_for(&err)
        }
    }
}

/// Prints a clap error (or the help or version it stands for) and returns its exit code; a closed
/// stdout while printing help is ignored, as everywhere.
fn clap_exit(err: &clap::Error) -> i32 {
    let _ = err.print();
    err.exit_code()
}

/// The subcommand names of a parsed command line, below `kubestrap`.
pub fn command_path(matches: &ArgMatches) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        path.push(name.to_string());
        current = sub;
    }
    path
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
        Command::Discovery(cmd) => discovery::run(&global, cmd),
        Command::Status(cmd) => status::run(&global, &cmd),
        Command::Verify(cmd) => verify::run(&global, cmd),
        Command::Version => version::run(&global),
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kubestrap", &mut script);
            crate::output::print(script)
        }
    }
}
