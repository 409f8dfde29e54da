//! `init phase preflight`: the catalogue's checks for the init role (see [`crate::preflight`]).

use super::InitData;
use crate::preflight::{self, Environment, PreflightInput};
use crate::workflow::Phase;

pub const NAME: &str = "preflight";

pub fn phase() -> Phase<InitData> {
    Phase::leaf(NAME, "Run pre-flight checks", run)
}

fn run(data: &mut InitData) -> anyhow::Result<()> {
    let options = &data.options;
    let input = PreflightInput::for_init(
        &data.model,
        options.advertise_address_detected,
        &options.ignore_preflight_errors,
        options.fix,
    );
    preflight::run(&data.host, &input, &Environment::from_process())?;
    Ok(())
}
