//! `join phase preflight`: the catalogue's checks for a joining worker or control-plane node.

use super::JoinData;
use crate::preflight::{self, Environment, PreflightInput};
use crate::workflow::Phase;

pub const NAME: &str = "preflight";

pub fn phase() -> Phase<JoinData> {
    Phase::leaf(NAME, "Run join pre-flight checks", run)
}

fn run(data: &mut JoinData) -> anyhow::Result<()> {
    let options = &data.options;
    let input = PreflightInput::for_join(
        &data.node,
        options.api_endpoint.clone(),
        options.advertise_address_detected,
        &options.ignore_preflight_errors,
        options.fix,
    );
    preflight::run(&data.host, &input, &Environment::from_process())?;
    Ok(())
}
