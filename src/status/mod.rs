//! `kubestrap status`: the health of a running cluster — each control-plane component per control-plane
//! node, each node, the addons that exist, the discovery endpoint and this node's certificates — as
//! OK/WARN/FAIL checks with their reasons.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Serialize;
use time::OffsetDateTime;

use crate::certs::expiration::CertificateExpirationInfo;
use crate::cluster::{Check as Condition, Gateway, conditions};

/// The control-plane components, by the `component` label of their static pods.
pub const COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// A certificate expiring within this many days is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn name(&self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `component`, `node`, `addon`, `discovery`, `certificate`.
    pub kind: &'static str,
    pub name: String,
    /// The node it is about, where it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub status: Level,
    pub reason: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub status: Level,
    pub checks: Vec<Item>,
}

impl Report {
    pub fn new(checks: Vec<Item>) -> Report {
        let status = checks.iter().map(|c| c.status).max().unwrap_or(Level::Ok);
        Report { status, checks }
    }

    pub fn failed(&self) -> Vec<&Item> {
        self.checks
            .iter()
            .filter(|c| c.status == Level::Fail)
            .collect()
    }

    /// The text table.
    pub fn render_text(&self) -> anyhow::Result<String> {
        use std::io::Write as _;
        let mut tw = tabwriter::TabWriter::new(Vec::new()).padding(3);
        writeln!(tw, "KIND\tNAME\tNODE\tSTATUS\tREASON")?;
        for c in &self.checks {
            writeln!(
                tw,
                "{}\t{}\t{}\t{}\t{}",
                c.kind,
                c.name,
                c.node.as_deref().unwrap_or("-"),
                c.status.name(),
                c.reason
            )?;
        }
        tw.flush()?;
        let mut text = String::from_utf8(tw.into_inner()?)?;
        text.push_str(&format!("\nCluster status: {}\n", self.status.name()));
        Ok(text)
    }
}

fn item(
    kind: &'static str,
    name: &str,
    node: Option<&str>,
    status: Level,
    reason: impl Into<String>,
) -> Item {
    Item {
        kind,
        name: name.to_string(),
        node: node.map(str::to_string),
        status,
        reason: reason.into(),
    }
}

/// Nodes and control-plane components, as the API server sees them.
pub fn cluster_checks(gateway: &Gateway, external_etcd: bool) -> anyhow::Result<Vec<Item>> {
    let mut out = Vec::new();
    let nodes: Vec<Node> = gateway.list(None, None)?;
    let pods: Vec<Pod> = gateway.list(Some("kube-system"), Some("tier=control-plane"))?;
    for node in &nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let is_control_plane = node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL));
        if !is_control_plane {
            continue;
        }
        for component in COMPONENTS {
            if component == "etcd" && external_etcd {
                continue;
            }
            let pod = pods.iter().find(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                    && p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("component"))
                        .map(String::as_str)
                        == Some(component)
            });
            out.push(component_item(component, &name, pod));
        }
    }
    for node in &nodes {
        out.push(node_item(node));
    }
    Ok(out)
}

fn component_item(component: &str, node: &str, pod: Option<&Pod>) -> Item {
    let Some(pod) = pod else {
        return item(
            "component",
            component,
            Some(node),
            Level::Fail,
            format!(
                "no {component} pod on this node: its static pod is not running (check /etc/kubernetes/manifests and the kubelet)"
            ),
        );
    };
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status == "True" => item(
            "component",
            component,
            Some(node),
            Level::Ok,
            "running and ready",
        ),
        _ => {
            let why = status
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.first())
                .and_then(|c| c.state.as_ref())
                .map(|s| {
                    if let Some(w) = &s.waiting {
                        format!("waiting: {}", w.reason.clone().unwrap_or_default())
                    } else if let Some(t) = &s.terminated {
                        format!(
                            "terminated: {} (exit {})",
                            t.reason.clone().unwrap_or_default(),
                            t.exit_code
                        )
                    } else {
                        "running but not ready".to_string()
                    }
                })
                .unwrap_or_else(|| {
                    format!(
                        "not ready (phase {})",
                        status
                            .and_then(|s| s.phase.clone())
                            .unwrap_or_else(|| "unknown".into())
                    )
                });
            item("component", component, Some(node), Level::Fail, why)
        }
    }
}

fn node_item(node: &Node) -> Item {
    let name = node.metadata.name.clone().unwrap_or_default();
    let version = node
        .status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.clone())
        .unwrap_or_default();
    let taints: Vec<String> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    let taints = if taints.is_empty() {
        "no taints".to_string()
    } else {
        format!("taints {}", taints.join(","))
    };
    match conditions::node_ready(Some(node)) {
        Condition::Met => item(
            "node",
            &name,
            Some(&name),
            Level::Ok,
            format!("Ready, kubelet {version}, {taints}"),
        ),
        Condition::Waiting(why) => item(
            "node",
            &name,
            Some(&name),
            Level::Fail,
            format!("not Ready: {why}; kubelet {version}, {taints}"),
        ),
    }
}

/// The addons kubestrap installs, where they exist: (namespace, kind, name) — CoreDNS, kube-proxy and
/// each pod-network addon's DaemonSet (`namespace`, `daemonset` in `addons/<name>/addon.yaml`).
pub fn addons() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = vec![
        ("kube-system", "Deployment", "coredns"),
        ("kube-system", "DaemonSet", "kube-proxy"),
    ];
    out.extend(crate::podnet::all().iter().map(|a| {
        (
            a.data.namespace.as_str(),
            "DaemonSet",
            a.data.daemonset.as_str(),
        )
    }));
    out
}

/// Each addon that exists, by its rollout: all ready OK, anything less WARN with the counts. Not FAIL:
/// right after init CoreDNS stays pending until a pod network runs, and a rollout in progress is normal;
/// the component and node checks are the ones that fail.
pub fn addon_checks(gateway: &Gateway) -> anyhow::Result<Vec<Item>> {
    let mut out = Vec::new();
    for (namespace, kind, name) in addons() {
        let (desired, ready) = match kind {
            "Deployment" => match gateway.get::<Deployment>(Some(namespace), name)? {
                None => continue,
                Some(d) => (
                    d.spec.and_then(|s| s.replicas).unwrap_or(1),
                    d.status.and_then(|s| s.ready_replicas).unwrap_or(0),
                ),
            },
            _ => match gateway.get::<DaemonSet>(Some(namespace), name)? {
                None => continue,
                Some(d) => {
                    let s = d.status.unwrap_or_default();
                    (s.desired_number_scheduled, s.number_ready)
                }
            },
        };
        let label = format!("{namespace}/{name}");
        let reason = format!("{kind} {ready}/{desired} ready");
        let level = if desired > 0 && ready >= desired {
            Level::Ok
        } else {
            Level::Warn
        };
        out.push(item("addon", &label, None, level, reason));
    }
    Ok(out)
}

/// The discovery endpoint's answer for a signing token, compared with the ConfigMap.
pub enum Discovery {
    Disabled,
    /// No token may sign: nothing to ask for.
    NoToken,
    Unreachable(String),
    Answered {
        matches: bool,
        status: u16,
    },
}

pub fn discovery_item(url: &str, result: Discovery) -> Item {
    let (level, reason) = match result {
        Discovery::Disabled => (Level::Ok, "disabled (--discovery-port 0)".to_string()),
        Discovery::NoToken => (
            Level::Warn,
            "no signing bootstrap token in cluster-info to ask for: create one with 'kubestrap token create'".to_string(),
        ),
        Discovery::Unreachable(why) => (
            Level::Warn,
            format!("not answering ({why}): start it with 'kubestrap discovery serve' or its systemd unit"),
        ),
        Discovery::Answered { matches: true, .. } => {
            (Level::Ok, "answers cluster-info with the published signature".to_string())
        }
        Discovery::Answered { matches: false, status } => (
            Level::Fail,
            format!("answered {status} but not the published cluster-info and signature"),
        ),
    };
    item("discovery", url, None, level, reason)
}

/// This node's certificates: expired or missing FAIL, expiring within [`EXPIRY_WARNING_DAYS`] WARN.
pub fn certificate_checks(info: &CertificateExpirationInfo, node: &str) -> Vec<Item> {
    info.certificates
        .iter()
        .chain(&info.certificate_authorities)
        .map(|c| {
            let days = c.residual_time_seconds / 86_400;
            let (level, reason) = if c.missing {
                (Level::Fail, "missing".to_string())
            } else if c.residual_time_seconds <= 0 {
                (
                    Level::Fail,
                    format!("expired {}", c.expiration_date.clone().unwrap_or_default()),
                )
            } else if days < EXPIRY_WARNING_DAYS {
                (
                    Level::Warn,
                    format!("expires in {days}d: run 'kubestrap certs renew {}'", c.name),
                )
            } else {
                (
                    Level::Ok,
                    format!(
                        "expires {} ({days}d)",
                        c.expiration_date.clone().unwrap_or_default()
                    ),
                )
            };
            item("certificate", &c.name, Some(node), level, reason)
        })
        .collect()
}

/// Now, for callers that pass it on.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_network_addons_come_from_their_folders() {
        let all = addons();
        assert!(all.contains(&("kube-flannel", "DaemonSet", "kube-flannel-ds")));
        assert!(all.contains(&("kube-system", "DaemonSet", "calico-node")));
        assert!(all.contains(&("kube-system", "DaemonSet", "weave-net")));
        assert_eq!(all.len(), 2 + crate::podnet::all().len());
    }

    #[test]
    fn the_report_takes_its_worst_check() {
        let r = Report::new(vec![
            item("node", "a", Some("a"), Level::Ok, "Ready"),
            item("addon", "b", None, Level::Warn, "1/2"),
        ]);
        assert_eq!(r.status, Level::Warn);
        assert!(r.failed().is_empty());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], "WARN");
        assert_eq!(json["checks"][1]["status"], "WARN");
        let r = Report::new(vec![item(
            "component",
            "kube-scheduler",
            Some("n1"),
            Level::Fail,
            "x",
        )]);
        assert_eq!(r.failed().len(), 1);
        assert!(
            r.render_text()
                .unwrap()
                .contains("kube-scheduler   n1     FAIL")
        );
    }
}
