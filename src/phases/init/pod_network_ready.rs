//! The end of `init phase addon pod-network`: waits until the addon's DaemonSet has a Ready pod on
//! every node that should run one (desired == ready), with a progress line; on the deadline it names
//! each node whose pod is not Ready and why (CrashLoopBackOff with its restart count and last exit,
//! an image pull error, Pending with the scheduler's reason).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::cluster::Gateway;
use crate::output::Ui;

/// How long init waits for the pod network's pods.
pub const TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(500);

/// What the DaemonSet's status says, in one line ("2/3 ready").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Ready { desired: i32 },
    Waiting(String),
}

/// desired == ready for the generation the controller last saw.
pub fn rollout(ds: Option<&DaemonSet>) -> Rollout {
    let Some(ds) = ds else {
        return Rollout::Waiting("the DaemonSet does not exist".into());
    };
    let Some(status) = &ds.status else {
        return Rollout::Waiting("the DaemonSet has no status yet".into());
    };
    let generation = ds.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Rollout::Waiting(format!(
            "the controller has not seen generation {generation} yet"
        ));
    }
    let (desired, ready) = (status.desired_number_scheduled, status.number_ready);
    if desired == 0 {
        return Rollout::Waiting("no node is scheduled to run it yet".into());
    }
    if ready < desired {
        return Rollout::Waiting(format!("{ready}/{desired} pods ready"));
    }
    Rollout::Ready { desired }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why one container keeps its pod from Ready, if it does.
fn container_problem(c: &ContainerStatus, init: bool) -> Option<String> {
    let kind = if init { "init container" } else { "container" };
    let state = c.state.as_ref()?;
    if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        let message = w.message.clone().unwrap_or_default();
        return Some(match reason.as_str() {
            "CrashLoopBackOff" => {
                let last = c
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| {
                        format!(
                            ", last exit code {}{}",
                            t.exit_code,
                            t.reason
                                .as_ref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "{kind} {} in CrashLoopBackOff (restarted {} times{last})",
                    c.name, c.restart_count
                )
            }
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                format!(
                    "{kind} {}: image pull error ({reason}) for {}{}",
                    c.name,
                    c.image,
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                )
            }
            "" => format!("{kind} {} waiting", c.name),
            _ => format!(
                "{kind} {} waiting: {reason}{}",
                c.name,
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ),
        });
    }
    if let Some(t) = &state.terminated
        && !init
    {
        return Some(format!(
            "{kind} {} terminated with exit code {} (restarted {} times)",
            c.name, t.exit_code, c.restart_count
        ));
    }
    if state.running.is_some() && !init && !c.ready {
        return Some(format!("{kind} {} running but not ready", c.name));
    }
    None
}

/// Why a pod is not Ready, in one line.
pub fn pod_problem(pod: &Pod) -> String {
    let Some(status) = &pod.status else {
        return "Pending: no status yet".into();
    };
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        return format!(
            "Pending, not scheduled: {}",
            c.message.clone().or(c.reason.clone()).unwrap_or_default()
        );
    }
    let problems: Vec<String> = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter_map(|c| container_problem(c, true))
        .chain(
            status
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| container_problem(c, false)),
        )
        .collect();
    if problems.is_empty() {
        format!("{phase}, not Ready")
    } else {
        format!("{phase}: {}", problems.join("; "))
    }
}

/// The node a DaemonSet pod is for: its nodeName, or (before it is bound) the node its
/// `metadata.name` affinity pins it to.
fn node_of(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    if let Some(node) = spec.and_then(|s| s.node_name.clone()) {
        return node;
    }
    spec.and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .and_then(|r| r.node_selector_terms.first())
        .and_then(|t| t.match_fields.as_ref())
        .and_then(|f| f.iter().find(|f| f.key == "metadata.name"))
        .and_then(|f| f.values.as_ref()?.first().cloned())
        .unwrap_or_else(|| "(unscheduled)".into())
}

/// One line per node whose pod of `ds` is not Ready, sorted by node; plus the nodes that should
/// run one but have none yet (when the DaemonSet wants more pods than exist).
pub fn diagnose(ds: Option<&DaemonSet>, pods: &[Pod]) -> Vec<String> {
    let uid = ds.and_then(|d| d.metadata.uid.clone());
    let mut lines: Vec<(String, String)> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            uid.is_none()
                || p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .filter(|p| !is_ready(p))
        .map(|p| (node_of(p), pod_problem(p)))
        .collect();
    lines.sort();
    let mut out: Vec<String> = lines
        .into_iter()
        .map(|(node, why)| format!("{node}: {why}"))
        .collect();
    if let Some(status) = ds.and_then(|d| d.status.as_ref()) {
        let present = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count() as i32;
        let missing = status.desired_number_scheduled - present;
        if missing > 0 {
            out.push(format!(
                "{missing} node(s) that should run it have no pod yet"
            ));
        }
    }
    out
}

/// The progress line: an indicatif spinner on a terminal, otherwise nothing until the outcome.
struct Line {
    bar: Option<ProgressBar>,
}

impl Line {
    fn new(ui: &Ui, what: &str) -> Line {
        if !ui.interactive() {
            return Line { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [addons] {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("waiting for {what}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        Line { bar: Some(bar) }
    }
    fn update(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Waits for `namespace/name` to be Ready on every node it should run on, at most `timeout`.
pub fn wait(
    gateway: &Gateway,
    ui: &Ui,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let what = format!("DaemonSet {namespace}/{name} to be ready on every node");
    if gateway.dry_run() {
        ui.line(format!("[dry-run] Would wait for {what}"));
        return Ok(());
    }
    let started = Instant::now();
    let line = Line::new(ui, &what);
    loop {
        let ds = gateway.get::<DaemonSet>(Some(namespace), name)?;
        match rollout(ds.as_ref()) {
            Rollout::Ready { desired } => {
                line.finish();
                ui.line(format!(
                    "[addons] DaemonSet {namespace}/{name} is ready on {desired} node(s) after {:.1}s",
                    started.elapsed().as_secs_f64()
                ));
                return Ok(());
            }
            Rollout::Waiting(state) => {
                if started.elapsed() >= timeout {
                    line.finish();
                    let selector = ds
                        .as_ref()
                        .and_then(|d| d.spec.as_ref())
                        .and_then(|s| s.selector.match_labels.as_ref())
                        .map(|l| {
                            l.iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(",")
                        });
                    let pods = gateway.list::<Pod>(Some(namespace), selector.as_deref())?;
                    let mut why = diagnose(ds.as_ref(), &pods);
                    if why.is_empty() {
                        why.push(state.clone());
                    }
                    anyhow::bail!(
                        "timed out after {}s waiting for {what} ({state}); not ready:\n  {}",
                        timeout.as_secs(),
                        why.join("\n  ")
                    );
                }
                line.update(&format!("{what}: {state}"));
            }
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn ds(desired: i32, ready: i32) -> DaemonSet {
        from(
            json!({"metadata": {"name": "kube-flannel-ds", "uid": "u1", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "flannel"}}, "template": {}},
            "status": {"currentNumberScheduled": desired, "desiredNumberScheduled": desired,
                "numberMisscheduled": 0, "numberReady": ready, "observedGeneration": 1}}),
        )
    }

    fn pod(name: &str, node: Option<&str>, status: serde_json::Value) -> Pod {
        let mut spec = json!({"containers": [{"name": "kube-flannel"}]});
        match node {
            Some(n) => spec["nodeName"] = json!(n),
            None => {
                spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node3"]}]}]}}})
            }
        }
        from(
            json!({"metadata": {"name": name, "namespace": "kube-flannel",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-flannel-ds", "uid": "u1"}]},
            "spec": spec, "status": status}),
        )
    }

    #[test]
    fn ready_when_every_desired_pod_is_ready() {
        assert_eq!(rollout(Some(&ds(3, 3))), Rollout::Ready { desired: 3 });
        assert_eq!(
            rollout(Some(&ds(3, 1))),
            Rollout::Waiting("1/3 pods ready".into())
        );
        assert!(matches!(rollout(Some(&ds(0, 0))), Rollout::Waiting(_)));
        assert!(matches!(rollout(None), Rollout::Waiting(_)));
    }

    #[test]
    fn each_unready_node_is_named_with_its_reason() {
        let crashing = pod(
            "kube-flannel-ds-aaaaa",
            Some("node2"),
            json!({"phase": "Running", "containerStatuses": [{"name": "kube-flannel", "image": "ghcr.io/flannel-io/flannel:v0.27.4",
                "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
        );
        let pulling = pod(
            "kube-flannel-ds-bbbbb",
            Some("node1"),
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "install-cni-plugin", "image": "ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1",
                "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": "failed to pull and unpack image"}}}]}),
        );
        let pending = pod(
            "kube-flannel-ds-ccccc",
            None,
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 1 node(s) had untolerated taint {example.com/x: }."}]}),
        );
        let fine = pod(
            "kube-flannel-ds-ddddd",
            Some("node4"),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        let lines = diagnose(Some(&ds(5, 1)), &[crashing, pulling, pending, fine]);
        assert_eq!(
            lines,
            [
                "node1: Pending: init container install-cni-plugin: image pull error (ErrImagePull) for ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1: failed to pull and unpack image",
                "node2: Running: container kube-flannel in CrashLoopBackOff (restarted 4 times, last exit code 1 (Error))",
                "node3: Pending, not scheduled: 0/3 nodes are available: 1 node(s) had untolerated taint {example.com/x: }.",
                "1 node(s) that should run it have no pod yet",
            ]
        );
    }

    #[test]
    fn a_running_pod_without_readiness_says_so() {
        let p = pod(
            "x",
            Some("node1"),
            json!({"phase": "Running", "containerStatuses": [{"name": "kube-flannel", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"running": {}}}]}),
        );
        assert_eq!(
            pod_problem(&p),
            "Running: container kube-flannel running but not ready"
        );
    }
}
