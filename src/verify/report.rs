//! The result of `verify network`: every check made, the node pairs and nodes that failed, the text
//! matrix and the `-o json` document.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

/// What a check tests (each is one or more `/dial`s, or one TCP connect for the API service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A checker pod dials the other checker pod of another (or its own) node by pod IP.
    PodToPod,
    /// A node's host-network checker dials a checker pod by pod IP.
    NodeToPod,
    /// A checker pod dials the test Service's ClusterIP until every endpoint has answered.
    ServiceIp,
    /// The same through the Service's DNS name.
    ServiceDns,
    /// A node's host-network checker dials a node's NodePort.
    NodePort,
    /// A node's host network opens a TCP connection to the `kubernetes` Service's ClusterIP:443.
    ApiService,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::PodToPod => "pod → pod",
            Kind::NodeToPod => "node → pod",
            Kind::ServiceIp => "Service ClusterIP",
            Kind::ServiceDns => "Service DNS name",
            Kind::NodePort => "NodePort",
            Kind::ApiService => "kubernetes Service",
        }
    }

    /// A check between two nodes (shown in a matrix).
    fn is_pairwise(self) -> bool {
        matches!(self, Kind::PodToPod | Kind::NodeToPod | Kind::NodePort)
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub kind: Kind,
    /// The node the check was made from.
    pub from: String,
    /// The node it was made to, for pairwise checks.
    pub to: Option<String>,
    /// The address dialled (`ip:port` or `name:port`).
    pub target: String,
    pub ok: bool,
    /// The endpoints (checker pod names) that answered.
    pub answered: Vec<String>,
    /// The endpoints expected to answer that did not, with their nodes.
    pub missing: Vec<Endpoint>,
    /// The last error seen (agnhost's or the API server's), when the check failed.
    pub error: Option<String>,
    /// How many requests the check sent.
    pub probes: u32,
}

/// A checker pod as an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    pub pod: String,
    pub node: String,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `pass` or `fail`.
    pub status: &'static str,
    pub namespace: String,
    pub nodes: Vec<String>,
    /// Unordered node pairs with a failing pairwise check (pod → pod, node → pod, NodePort) between
    /// them (`[a, b]`, a ≤ b; `[a, a]` is a node's own pods). A Service check's missing endpoints are
    /// listed in its failure, not here: a slow or failing resolver or a timeout also leaves
    /// endpoints unheard, so only the direct probes name pairs.
    pub failing_pairs: Vec<[String; 2]>,
    /// One line per failing check.
    pub failures: Vec<String>,
    /// Requests sent to checkers (through pods/proxy) plus connect pods run.
    pub probes: u32,
    /// From the start to every checker Ready, and to the end of the probes.
    pub ready_seconds: f64,
    pub elapsed_seconds: f64,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(
        namespace: &str,
        nodes: Vec<String>,
        checks: Vec<Check>,
        ready: f64,
        elapsed: f64,
    ) -> Report {
        let mut pairs = BTreeSet::new();
        for c in checks.iter().filter(|c| !c.ok) {
            if let Some(to) = &c.to {
                pairs.insert(pair(&c.from, to));
            }
        }
        let failures = checks.iter().filter(|c| !c.ok).map(describe).collect();
        Report {
            status: if checks.iter().all(|c| c.ok) {
                "pass"
            } else {
                "fail"
            },
            namespace: namespace.to_string(),
            nodes,
            failing_pairs: pairs.into_iter().collect(),
            failures,
            probes: checks.iter().map(|c| c.probes).sum(),
            ready_seconds: (ready * 10.0).round() / 10.0,
            elapsed_seconds: (elapsed * 10.0).round() / 10.0,
            checks,
        }
    }

    pub fn passed(&self) -> bool {
        self.status == "pass"
    }

    /// The node × node matrices (pod → pod, node → pod, NodePort), the per-node checks, then the
    /// failing hops.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for kind in [Kind::PodToPod, Kind::NodeToPod, Kind::NodePort] {
            let cells: BTreeMap<(&str, &str), bool> = self
                .checks
                .iter()
                .filter(|c| c.kind == kind)
                .filter_map(|c| Some(((c.from.as_str(), c.to.as_deref()?), c.ok)))
                .collect();
            if cells.is_empty() {
                continue;
            }
            let mut rows = vec![format!("{} (from ↓ to →)", kind.label())];
            rows[0].extend(self.nodes.iter().map(|n| format!("\t{n}")));
            for from in &self.nodes {
                let mut row = from.clone();
                for to in &self.nodes {
                    row.push('\t');
                    row.push_str(match cells.get(&(from.as_str(), to.as_str())) {
                        Some(true) => "ok",
                        Some(false) => "FAIL",
                        None => "-",
                    });
                }
                rows.push(row);
            }
            out.push_str(&tabulate(&rows));
            out.push('\n');
        }
        let per_node = [Kind::ServiceIp, Kind::ServiceDns, Kind::ApiService];
        let mut rows = vec!["node".to_string()];
        rows[0].extend(per_node.iter().map(|k| format!("\t{}", k.label())));
        for node in &self.nodes {
            let mut row = node.clone();
            for kind in per_node {
                let cell = self
                    .checks
                    .iter()
                    .find(|c| c.kind == kind && &c.from == node)
                    .map_or("-".to_string(), |c| {
                        if c.ok {
                            "ok".to_string()
                        } else {
                            "FAIL".to_string()
                        }
                    });
                row.push('\t');
                row.push_str(&cell);
            }
            rows.push(row);
        }
        out.push_str(&tabulate(&rows));
        out.push('\n');
        if self.passed() {
            let _ = writeln!(
                out,
                "PASS: {} checks, {} probes, {:.1}s ({:.1}s until the checkers were ready)",
                self.checks.len(),
                self.probes,
                self.elapsed_seconds,
                self.ready_seconds
            );
        } else {
            for f in &self.failures {
                let _ = writeln!(out, "FAIL {f}");
            }
            if !self.failing_pairs.is_empty() {
                let _ = writeln!(out, "failing node pairs: {}", self.pairs_text());
            }
        }
        out
    }

    /// `node1↔node2, node3↔node3`.
    pub fn pairs_text(&self) -> String {
        self.failing_pairs
            .iter()
            .map(|[a, b]| format!("{a}↔{b}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn pair(a: &str, b: &str) -> [String; 2] {
    if a <= b {
        [a.to_string(), b.to_string()]
    } else {
        [b.to_string(), a.to_string()]
    }
}

/// One failing check as a line naming the hop.
fn describe(c: &Check) -> String {
    let mut line = match (&c.to, c.kind.is_pairwise()) {
        (Some(to), true) => format!("{} {} → {} ({})", c.kind.label(), c.from, to, c.target),
        _ => format!("{} from {} ({})", c.kind.label(), c.from, c.target),
    };
    if !c.missing.is_empty() {
        let missing: Vec<String> = c
            .missing
            .iter()
            .map(|m| format!("{} on {}", m.pod, m.node))
            .collect();
        let _ = write!(line, ": no answer from {}", missing.join(", "));
    }
    if let Some(e) = &c.error {
        let _ = write!(line, " — {e}");
    }
    line
}

fn tabulate(rows: &[String]) -> String {
    use std::io::Write as _;
    let mut tw = tabwriter::TabWriter::new(Vec::new()).padding(2);
    for r in rows {
        let _ = writeln!(tw, "{r}");
    }
    tw.into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: Kind, from: &str, to: Option<&str>, ok: bool) -> Check {
        Check {
            kind,
            from: from.into(),
            to: to.map(Into::into),
            target: "10.244.1.2:8080".into(),
            ok,
            answered: vec![],
            missing: vec![],
            error: (!ok).then(|| "dial tcp: no route to host".into()),
            probes: 1,
        }
    }

    #[test]
    fn a_broken_pair_is_named_once_from_both_directions_and_service_endpoints() {
        let nodes: Vec<String> = ["node1", "node2", "node3"].map(String::from).into();
        let mut checks = Vec::new();
        for a in &nodes {
            for b in &nodes {
                let broken = (a == "node1" && b == "node2") || (a == "node2" && b == "node1");
                checks.push(check(Kind::PodToPod, a, Some(b), !broken));
                checks.push(check(Kind::NodeToPod, a, Some(b), true));
            }
        }
        // A Service check from node2 that missed node1's endpoint (and one on node3) names no pair.
        let mut service = check(Kind::ServiceIp, "node2", None, false);
        service.answered = vec!["pod-a-y".into()];
        service.missing = vec![
            Endpoint {
                pod: "pod-a-x".into(),
                node: "node1".into(),
            },
            Endpoint {
                pod: "pod-a-z".into(),
                node: "node3".into(),
            },
        ];
        service.probes = 12;
        checks.push(service);
        checks.push(check(Kind::ApiService, "node3", None, true));
        let report = Report::new("ns", nodes, checks, 2.0, 3.06);
        assert_eq!(report.status, "fail");
        assert_eq!(
            report.failing_pairs,
            vec![["node1".to_string(), "node2".to_string()]]
        );
        assert_eq!(report.probes, 18 + 12 + 1);
        assert_eq!(report.failures.len(), 3);
        assert!(
            report.failures[0].starts_with("pod → pod node1 → node2 (10.244.1.2:8080)"),
            "{:?}",
            report.failures
        );
        assert!(
            report.failures[2].contains("no answer from pod-a-x on node1, pod-a-z on node3"),
            "{:?}",
            report.failures
        );
        let text = report.render_text();
        assert!(text.contains("failing node pairs: node1↔node2"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("node1") && l.contains("FAIL"))
            .unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["node1", "ok", "FAIL", "ok"]
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["failing_pairs"][0][1], "node2");
        assert_eq!(json["checks"][0]["kind"], "pod-to-pod");
        assert_eq!(json["elapsed_seconds"], 3.1);
    }

    #[test]
    fn all_ok_is_a_pass_without_pairs() {
        let nodes = vec!["a".to_string()];
        let report = Report::new(
            "ns",
            nodes,
            vec![check(Kind::PodToPod, "a", Some("a"), true)],
            0.5,
            1.0,
        );
        assert!(report.passed());
        assert!(report.failing_pairs.is_empty());
        assert!(report.render_text().contains("PASS: 1 checks, 1 probes"));
    }
}
