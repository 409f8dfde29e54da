//! The `kubestrap` binary: parse the command line, run, map errors to exit codes 0/1/2.

use clap::Parser;

fn main() {
    let cli = kubestrap::cli::Cli::parse();
    if let Err(err) = kubestrap::cli::run(cli) {
        eprintln!("error: {}", kubestrap::error::describe(&err));
        std::process::exit(kubestrap::error::exit_code_for(&err));
    }
}
