//! `init phase wait-control-plane`: waits for the kubelet's healthz, then for every control-plane
//! component at its probe endpoint, with the v1beta4 `timeouts` (kubeletHealthCheck,
//! controlPlaneComponentHealthCheck) as deadlines. On a terminal one progress line per component
//! with its elapsed time; otherwise plain lines. A component that stays unhealthy fails the phase
//! with its name, its last error and where its container's log is.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::InitData;
use crate::config::duration::GoDuration;
use crate::host::Host;
use crate::host::runtime::{cri, socket_path};
use crate::host::well_known::MANIFESTS_DIR;
use crate::kubelet::health::{self, Check, Outcome, Progress};
use crate::model::ControlPlane;
use crate::output::Ui;
use crate::workflow::Phase;

pub const NAME: &str = "wait-control-plane";

pub fn phase() -> Phase<InitData> {
    Phase::leaf(
        NAME,
        "Wait for the control plane to start",
        |data: &mut InitData| wait(&data.host, &data.control_plane()?),
    )
}

fn elapsed(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// kubeadm's words: `[kubelet-check] The kubelet is healthy after …`, `[control-plane-check] etcd is …`.
fn subject(name: &str) -> String {
    if name == "kubelet" {
        "The kubelet".to_string()
    } else {
        name.to_string()
    }
}

/// Plain lines (not a terminal, or `--quiet`).
struct Lines<'a> {
    ui: &'a Ui,
    tag: &'static str,
    checks: &'a [Check],
}

impl Progress for Lines<'_> {
    fn waiting(&self, index: usize, elapsed_: Duration, error: &str) {
        self.ui.debug(
            2,
            format!(
                "[{}] {} not healthy yet after {}: {error}",
                self.tag,
                self.checks[index].name,
                elapsed(elapsed_)
            ),
        );
    }
    fn healthy(&self, index: usize, elapsed_: Duration) {
        self.ui.line(format!(
            "[{}] {} is healthy after {}",
            self.tag,
            subject(self.checks[index].name),
            elapsed(elapsed_)
        ));
    }
    fn timed_out(&self, index: usize, elapsed_: Duration, _error: &str) {
        self.ui.line(format!(
            "[{}] {} is not healthy after {}",
            self.tag,
            subject(self.checks[index].name),
            elapsed(elapsed_)
        ));
    }
}

/// One indicatif line per component.
struct Bars {
    bars: Vec<ProgressBar>,
    _multi: MultiProgress,
}

impl Bars {
    fn new(checks: &[Check]) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {prefix:<24} {elapsed:>4} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = checks
            .iter()
            .map(|check| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(check.name);
                bar.set_message(format!("waiting for {}", check.url));
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .collect();
        Bars {
            bars,
            _multi: multi,
        }
    }
}

impl Progress for Bars {
    fn waiting(&self, index: usize, _elapsed: Duration, error: &str) {
        self.bars[index].set_message(format!("not yet: {error}"));
    }
    fn healthy(&self, index: usize, elapsed_: Duration) {
        self.bars[index].finish_with_message(format!("healthy after {}", elapsed(elapsed_)));
    }
    fn timed_out(&self, index: usize, elapsed_: Duration, error: &str) {
        self.bars[index]
            .abandon_with_message(format!("not healthy after {}: {error}", elapsed(elapsed_)));
    }
}

/// Waits for the checks, showing progress the way the output allows.
fn wait_shown(
    ui: &Ui,
    tag: &'static str,
    checks: &[Check],
    deadline: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    let started = Instant::now();
    if ui.interactive() {
        let bars = Bars::new(checks);
        let outcomes = health::wait(checks, started, deadline, &bars)?;
        // The bars vanish with the terminal's scrollback; the record stays in the output.
        for outcome in &outcomes {
            if let Some(after) = outcome.healthy_after {
                ui.line(format!(
                    "[{tag}] {} is healthy after {}",
                    subject(outcome.check.name),
                    elapsed(after)
                ));
            }
        }
        Ok(outcomes)
    } else {
        health::wait(checks, started, deadline, &Lines { ui, tag, checks })
    }
}

/// Where a static pod's container logs, asked of the runtime (the kubelet's log convention when
/// the runtime has no such container).
fn log_hint(cri_socket: &str, pod: &str, container: &str) -> String {
    let convention = format!("/var/log/pods/kube-system_{pod}_<uid>/{container}/<restart>.log");
    if !std::path::Path::new(socket_path(cri_socket)).exists() {
        return format!("its log would be {convention}");
    }
    match cri::container_log(cri_socket, "kube-system", pod, container) {
        Ok(Some((path, state))) => format!("its container is {state}; its log: {path}"),
        Ok(None) => format!(
            "the runtime has no {container} container: the kubelet did not start it (see 'journalctl -xeu kubelet'); its log would be {convention}"
        ),
        Err(e) => format!("its log is {convention} (the runtime could not be asked: {e:#})"),
    }
}

/// Waits for the kubelet's healthz (`[kubelet-check]`), for init and join.
pub fn wait_kubelet(ui: &Ui, deadline: GoDuration) -> anyhow::Result<()> {
    let kubelet = [health::kubelet()];
    ui.line(format!(
        "[kubelet-check] Waiting for a healthy kubelet at {}. This can take up to {deadline}",
        health::KUBELET_HEALTHZ,
    ));
    let outcome = wait_shown(ui, "kubelet-check", &kubelet, deadline.0)?;
    if let Some(failed) = outcome.iter().find(|o| o.healthy_after.is_none()) {
        anyhow::bail!(
            "failed while waiting for the kubelet to start: the kubelet at {} is not healthy after {deadline}: {}. \
             The kubelet may not be running, or may be failing on a misconfiguration of the node (required cgroups \
             disabled, a wrong cgroup driver): see 'systemctl status kubelet' and 'journalctl -xeu kubelet'",
            failed.check.url,
            failed.last_error.as_deref().unwrap_or("no answer")
        );
    }
    Ok(())
}

pub fn wait(host: &Host, cp: &ControlPlane) -> anyhow::Result<()> {
    let ui = host.ui();
    let timeouts = &cp.node.timeouts;
    let components = health::control_plane(cp);
    ui.line(format!(
        "[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory {MANIFESTS_DIR:?}"
    ));
    if host.dry_run() {
        for check in std::iter::once(health::kubelet()).chain(components) {
            ui.line(format!(
                "[dry-run] Would wait for {} at {}",
                check.name, check.url
            ));
        }
        return Ok(());
    }
    wait_kubelet(ui, timeouts.kubelet_health_check)?;
    ui.line(format!(
        "[control-plane-check] Waiting for healthy control plane components. This can take up to {}",
        timeouts.control_plane_component_health_check
    ));
    for check in &components {
        ui.line(format!(
            "[control-plane-check] Checking {} at {}",
            check.name, check.url
        ));
    }
    let outcomes = wait_shown(
        ui,
        "control-plane-check",
        &components,
        timeouts.control_plane_component_health_check.0,
    )?;
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| o.healthy_after.is_none())
        .map(|o| {
            let pod = format!("{}-{}", o.check.name, cp.node.name);
            format!(
                "{} check failed at {}: {}; {}",
                o.check.name,
                o.check.url,
                o.last_error.as_deref().unwrap_or("no answer"),
                log_hint(&cp.node.cri_socket, &pod, o.check.name)
            )
        })
        .collect();
    if !failures.is_empty() {
        anyhow::bail!(
            "failed while waiting for the control plane to start (not healthy after {}):\n  {}",
            timeouts.control_plane_component_health_check,
            failures.join("\n  ")
        );
    }
    Ok(())
}
