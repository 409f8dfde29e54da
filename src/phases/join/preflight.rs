//! `join phase preflight`: the catalogue's checks for a joining worker or control-plane node.

use super::JoinData;
use crate::preflight::{self, Environment, NodeSettings};
use crate::workflow::Phase;

pub fn phase() -> Phase<JoinData> {
    Phase::leaf("preflight", "Run join pre-flight checks", run)
}

fn run(data: &mut JoinData) -> anyhow::Result<()> {
    let node = NodeSettings::for_join(&data.settings);
    preflight::run(&data.host, &node, &Environment::from_process())?;
    Ok(())
}
