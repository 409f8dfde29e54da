//! `kubestrap token`: bootstrap tokens (`generate` works offline; the cluster-side verbs come with the API client).

use clap::Subcommand;

use super::GlobalOpts;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Print a new random bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})
    Generate,
}

pub fn run(_global: &GlobalOpts, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Generate => crate::output::print(format!("{}\n", crate::token::generate()?)),
    }
}
