//! `init phase discovery` (ours): installs the token-signed discovery endpoint as the journaled
//! systemd unit `kubestrap-discovery.service`, running the installed kubestrap binary's `discovery
//! serve` in cluster mode on the configured port, with its serving certificate issued here from the
//! cluster CA. `--discovery-port 0` leaves it out. A rollback disables and stops the unit and removes
//! the unit file and the certificate; `kubestrap reset` does the same.

use std::path::{Path, PathBuf};

use super::InitData;
use crate::discovery::unit;
use crate::host::services::{self, InitSystem};
use crate::host::{Host, NodePath};
use crate::model::Model;
use crate::pki::{store, table};
use crate::workflow::{Phase, Target};

pub const NAME: &str = "discovery";

pub fn phase() -> Phase<InitData> {
    Phase::leaf(
        NAME,
        "Install the token-signed discovery endpoint (kubestrap-discovery.service)",
        |data: &mut InitData| match &data.discovery_binary {
            Some(binary) => install(&data.host, &data.model, binary),
            None => {
                data.host.ui().line(
                    "[discovery] Skipping phase: the discovery endpoint is disabled (--discovery-port 0)",
                );
                Ok(())
            }
        },
    )
}

/// Whether a run of `target` with `skip` runs this phase with the endpoint enabled; the binary the
/// unit will run is then checked before anything is written ([`unit::installed_binary`]).
pub fn wanted(model: &Model, target: &Target, skip: &[String]) -> bool {
    let runs = match target.top() {
        Some(top) => top == NAME,
        None => !skip.iter().any(|s| s.trim() == NAME),
    };
    runs && model.cluster.discovery.port != 0
}

/// The serving certificate, the unit file, then the unit enabled and started.
pub fn install(host: &Host, model: &Model, binary: &Path) -> anyhow::Result<()> {
    let ui = host.ui();
    let port = model.cluster.discovery.port;
    let cp = model.control_plane()?;
    store::ensure_leaf(host, &cp, &table::DISCOVERY_SERVING)?;
    ui.line(format!(
        "[discovery] Writing the unit {:?}: {} discovery serve on port {port} (cluster mode)",
        unit::UNIT_PATH,
        binary.display()
    ));
    host.write_file(
        &NodePath::new(unit::UNIT_PATH),
        unit::render(binary, port, host.root()).as_bytes(),
        0o644,
    )?;
    // The unit and the certificate are in place before systemd reads them.
    host.commit()?;
    match services::init_system(host.facts()) {
        InitSystem::Systemd => {
            ui.line(format!("[discovery] Starting {}", unit::UNIT));
            services::launch_journaled(
                host,
                unit::UNIT,
                &format!("the discovery endpoint on port {port}"),
            )
        }
        InitSystem::Other(pid1) => {
            ui.warn(format!(
                "[discovery] PID 1 is {pid1}, not systemd: there is no service manager to start {}; \
                 run '{} discovery serve --port {port}' yourself",
                unit::UNIT,
                binary.display()
            ));
            Ok(())
        }
    }
}

/// The binary the unit runs, checked up front (exit 2, nothing written) when the phase will run.
/// A dry run names a temporary location as a warning and plans with it.
pub fn check_binary(
    host: &Host,
    model: &Model,
    target: &Target,
    skip: &[String],
) -> anyhow::Result<Option<PathBuf>> {
    if !wanted(model, target, skip) {
        return Ok(None);
    }
    match unit::installed_binary() {
        Ok(binary) => Ok(Some(binary)),
        Err(refused) if host.dry_run() => {
            host.ui()
                .warn(format!("[discovery] A real run refuses: {refused}"));
            Ok(Some(std::env::current_exe()?))
        }
        Err(refused) => Err(refused.into()),
    }
}
