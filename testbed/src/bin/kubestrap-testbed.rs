//! `kubestrap-testbed`: bring simulated nodes up on the local Docker engine, run kubestrap on them,
//! tear them down (see docs/testbed.md, "The command line").

fn main() {
    std::process::exit(kubestrap_testbed::cli::main());
}
