//! The `kubestrap` binary: parse the command line, run, map errors to exit codes 0/1/2.

fn main() {
    std::process::exit(kubestrap::cli::main(std::env::args_os()));
}
