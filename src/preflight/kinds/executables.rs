//! `FileExisting-<name>`: an executable the node needs is in PATH.

use super::super::Outcome;
use super::super::context::Probe;

pub fn in_path(probe: &Probe, name: &str) -> anyhow::Result<Outcome> {
    Ok(match probe.env.find_executable(name) {
        Some(path) => Outcome::Pass(format!("{name} is {}", path.display())),
        None => Outcome::Fail(format!("{name} not found in system path")),
    })
}
