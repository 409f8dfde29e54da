//! `cleanup-node/stop-kubelet`: stops the kubelet through systemd, or says there is no systemd.

use super::ResetData;
use crate::host::inventory::{Found, Kind, Outcome, Owner};
use crate::host::plan::Verb;
use crate::host::services::{self, InitSystem};
use crate::workflow::Phase;

pub fn phase() -> Phase<ResetData> {
    Phase::leaf("stop-kubelet", "Stop the kubelet service", run)
}

fn run(data: &mut ResetData) -> anyhow::Result<()> {
    data.phase("Stopping the kubelet service");
    let facts = data.host.facts().clone();
    if let InitSystem::Other(pid1) = services::init_system(&facts) {
        data.host.ui().warn(format!(
            "[reset] PID 1 is {pid1}, not systemd: the kubelet is not managed by systemd here and was not stopped"
        ));
    }
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
