//! `init phase preflight`: the catalogue's checks for the init role (see [`crate::preflight`]).

use super::InitData;
use crate::preflight::{self, Environment, NodeSettings};
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::leaf("preflight", "Run pre-flight checks", run)
}

fn run(data: &mut InitData) -> anyhow::Result<()> {
    let node = NodeSettings::for_init(&data.settings);
    preflight::run(&data.host, &node, &Environment::from_process())?;
    Ok(())
}
