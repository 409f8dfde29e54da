//! `cleanup-node/stop-kubelet`: stops the kubelet through systemd, or says there is no systemd; and
//! disables and stops the discovery endpoint's unit that init installed (`kubestrap-discovery.service`;
//! its unit file goes with the journal in `cleanup-node/files`).

use super::ResetData;
use crate::discovery::unit;
use crate::host::NodePath;
use crate::host::inventory::{Found, Kind, Outcome, Owner};
use crate::host::plan::Verb;
use crate::host::services::{self, InitSystem};
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf(
        "stop-kubelet",
        "Stop the kubelet service (and kubestrap's discovery endpoint)",
        run,
    )
}

/// The discovery endpoint's unit, when init installed it here (its unit file exists) or it runs.
fn stop_discovery(data: &mut ResetData) {
    let facts = data.host.facts().clone();
    let installed = data.host.exists(&NodePath::new(unit::UNIT_PATH));
    let active = services::is_active(&facts, unit::UNIT) == Some(true);
    if !installed && !active {
        return;
    }
    let found = Found::new(Kind::Service, unit::UNIT, Owner::Kubestrap);
    if let InitSystem::Other(pid1) = services::init_system(&facts) {
        // Kept, as a real run keeps it (in a dry run: a keep step of the plan).
        data.record([found.kept(format!(
            "PID 1 is {pid1}, not systemd: there is no {} service to stop",
            unit::UNIT
        ))]);
        return;
    }
    if data.dry_run() {
        let why = if active {
            "the running discovery endpoint: disable and stop it"
        } else {
            "the discovery endpoint's unit: disable it"
        };
        data.host.plan_step(Verb::Stop, found.item(why));
        return;
    }
    data.record([services::disable_now(&facts, unit::UNIT)]);
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Stopping the kubelet service");
    let facts = data.host.facts().clone();
    if let InitSystem::Other(pid1) = services::init_system(&facts) {
        data.host.ui().warn(format!(
            "[reset] PID 1 is {pid1}, not systemd: the kubelet is not managed by systemd here and was not stopped"
        ));
    }
    stop_discovery(data);
    let found = Found::new(Kind::Service, "kubelet", Owner::Kubernetes);
    if data.dry_run() {
        if services::is_active(&facts, "kubelet") == Some(true) {
            data.host
                .plan_step(Verb::Stop, found.item("the running kubelet"));
        }
        return Ok(());
    }
    match services::stop(&facts, "kubelet") {
        // Stopping is not removing: only a failure is reported.
        Outcome::Left {
            item,
            reboot_required,
        } => data.record([Outcome::Left {
            item,
            reboot_required,
        }]),
        Outcome::Kept(item) => data.record([Outcome::Kept(item)]),
        Outcome::Removed(_) => {}
    }
    Ok(())
}
