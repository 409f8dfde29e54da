//! `kubestrap verify network`: the post-install smoke test of a cluster's pod network, Services, DNS
//! and NodePorts, run through the API server with agnhost checkers in a namespace of its own.

pub mod objects;
pub mod report;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use serde_json::Value;

use crate::cluster::{Deletion, Gateway, PodProxyGet};
use objects::{HOST_SET, POD_PORT, POD_SETS, SERVICE, SERVICE_PORT};
pub use report::{Check, Endpoint, Kind, Report};

/// Rounds of requests a pairwise check gets before it counts as failed.
const PAIR_ROUNDS: u32 = 3;
/// Rounds a Service check gets to hear from every endpoint.
const SERVICE_ROUNDS: u32 = 6;
/// Parallel one-try dials per NodePort check and round.
const NODE_PORT_FANOUT: u32 = 4;
/// At most this many parallel one-try dials per Service check and round.
const SERVICE_FANOUT: u32 = 16;
/// Bound on one pods/proxy request (agnhost's own dial timeout is a few seconds per try).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh namespace name, `kubestrap-verify-<6 hex digits>` (a namespace being deleted by an
/// earlier run never collides).
pub fn namespace_name() -> String {
    let mut bytes = [0u8; 3];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        bytes = [(nanos >> 16) as u8, (nanos >> 8) as u8, nanos as u8];
    }
    format!("kubestrap-verify-{}", hex::encode(bytes))
}

/// What the command line chooses.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bound on the whole run (checkers ready, then probes).
    pub timeout: Duration,
    /// The agnhost image (a mirror of [`objects::AGNHOST`] on a cluster without registry.k8s.io).
    pub image: String,
    /// The host-network checkers' HTTP port (the next one is their UDP port).
    pub host_port: u16,
}

/// Shows what the run is waiting for: an indicatif spinner on a terminal, plain lines elsewhere.
pub trait Progress {
    fn update(&self, message: &str);
}

/// A node as the checks see it.
#[derive(Debug, Clone)]
struct NodeInfo {
    name: String,
    ip: String,
}

/// The checker pods found on one node.
#[derive(Debug, Clone, Default)]
struct Checkers {
    /// (name, pod IP) of `pod-a` and `pod-b`.
    pods: Vec<(String, String)>,
    host: Option<String>,
}

/// Creates the namespace and its objects, waits for the checkers, probes, and returns the report.
/// The caller deletes the namespace ([`cleanup`]) whatever this returns.
pub fn run(
    gateway: &Gateway,
    namespace: &str,
    options: &Options,
    progress: &dyn Progress,
) -> anyhow::Result<Option<Report>> {
    let started = Instant::now();
    let deadline = started + options.timeout;
    let (image, host_port) = (options.image.as_str(), options.host_port);
    let mut nodes: Vec<NodeInfo> = gateway
        .list::<Node>(None, None)?
        .into_iter()
        .filter_map(|n| {
            let name = n.metadata.name?;
            let ip = n
                .status?
                .addresses?
                .into_iter()
                .find(|a| a.type_ == "InternalIP")?
                .address;
            Some(NodeInfo { name, ip })
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let kubernetes = gateway
        .get::<Service>(Some("default"), "kubernetes")?
        .and_then(|s| s.spec)
        .context("reading Service default/kubernetes")?;
    let api_target = format!(
        "{}:{}",
        kubernetes.cluster_ip.unwrap_or_default(),
        kubernetes
            .ports
            .and_then(|p| p.first().map(|p| p.port))
            .unwrap_or(443)
    );

    progress.update(&format!("creating namespace {namespace}"));
    gateway.create(&objects::namespace(namespace)?)?;
    for set in POD_SETS {
        gateway.create(&objects::checker_set(namespace, set, image, None)?)?;
    }
    gateway.create(&objects::checker_set(
        namespace,
        HOST_SET,
        image,
        Some(host_port),
    )?)?;
    gateway.create(&objects::service(namespace)?)?;
    for node in &nodes {
        gateway.create(&objects::api_connect_pod(
            namespace,
            &node.name,
            &api_target,
            image,
        )?)?;
    }
    if gateway.dry_run() {
        return Ok(None);
    }
    anyhow::ensure!(
        !nodes.is_empty(),
        "the cluster has no nodes with an InternalIP"
    );

    let (checkers, api_pods) = wait_for_checkers(gateway, namespace, &nodes, deadline, progress)?;
    let ready = started.elapsed().as_secs_f64();
    let service = gateway
        .get::<Service>(Some(namespace), SERVICE)?
        .and_then(|s| s.spec)
        .with_context(|| format!("reading Service {namespace}/{SERVICE}"))?;
    let cluster_ip = service.cluster_ip.unwrap_or_default();
    let node_port = service
        .ports
        .and_then(|p| p.first().and_then(|p| p.node_port))
        .context("the test Service has no NodePort")?;

    let endpoints: Vec<Endpoint> = nodes
        .iter()
        .flat_map(|n| {
            checkers[&n.name].pods.iter().map(|(pod, _)| Endpoint {
                pod: pod.clone(),
                node: n.name.clone(),
            })
        })
        .collect();
    let mut jobs = Vec::new();
    for from in &nodes {
        let mine = &checkers[&from.name];
        let (source, _) = &mine.pods[0];
        let host = mine.host.clone().unwrap_or_default();
        for to in &nodes {
            let theirs = &checkers[&to.name];
            // pod-a dials the other node's pod-b (its own node's pod-b on the diagonal).
            let (peer, peer_ip) = &theirs.pods[1];
            jobs.push(Job::new(
                Kind::PodToPod,
                from,
                Some(to),
                (source, POD_PORT),
                peer_ip,
                POD_PORT,
                1,
                Expect::All(vec![Endpoint {
                    pod: peer.clone(),
                    node: to.name.clone(),
                }]),
                PAIR_ROUNDS,
            ));
            let (peer, peer_ip) = &theirs.pods[0];
            jobs.push(Job::new(
                Kind::NodeToPod,
                from,
                Some(to),
                (&host, host_port),
                peer_ip,
                POD_PORT,
                1,
                Expect::All(vec![Endpoint {
                    pod: peer.clone(),
                    node: to.name.clone(),
                }]),
                PAIR_ROUNDS,
            ));
            jobs.push(Job::new(
                Kind::NodePort,
                from,
                Some(to),
                (&host, host_port),
                &to.ip,
                node_port as u16,
                1,
                Expect::Any,
                PAIR_ROUNDS,
            ));
        }
        jobs.push(Job::new(
            Kind::ServiceIp,
            from,
            None,
            (source, POD_PORT),
            &cluster_ip,
            SERVICE_PORT,
            1,
            Expect::All(endpoints.clone()),
            SERVICE_ROUNDS,
        ));
        jobs.push(Job::new(
            Kind::ServiceDns,
            from,
            None,
            (source, POD_PORT),
            &format!("{SERVICE}.{namespace}"),
            SERVICE_PORT,
            1,
            Expect::All(endpoints.clone()),
            SERVICE_ROUNDS,
        ));
    }
    probe(gateway, namespace, &mut jobs, deadline, progress)?;
    let mut checks: Vec<Check> = jobs.into_iter().map(Job::finish).collect();
    for node in &nodes {
        let pod = api_pods.iter().find(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.name.as_str())
        });
        let (ok, error) = match pod.and_then(|p| p.status.as_ref()) {
            Some(s) if s.phase.as_deref() == Some("Succeeded") => (true, None),
            Some(s) => (false, Some(container_outcome(s))),
            None => (false, Some("the connect pod is gone".to_string())),
        };
        checks.push(Check {
            kind: Kind::ApiService,
            from: node.name.clone(),
            to: None,
            target: api_target.clone(),
            ok,
            answered: Vec::new(),
            missing: Vec::new(),
            error,
            probes: 1,
        });
    }
    Ok(Some(Report::new(
        namespace,
        nodes.into_iter().map(|n| n.name).collect(),
        checks,
        ready,
        started.elapsed().as_secs_f64(),
    )))
}

/// Deletes what the run created (the DaemonSets, Service and pods first, so that their pods stop
/// even where namespace deletion is slow), then the namespace.
pub fn cleanup(gateway: &Gateway, namespace: &str) -> anyhow::Result<()> {
    if gateway.get::<Namespace>(None, namespace)?.is_none() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for set in POD_SETS.into_iter().chain([HOST_SET]) {
        if let Err(e) = gateway.delete::<DaemonSet>(Some(namespace), set) {
            errors.push(e.to_string());
        }
    }
    if let Err(e) = gateway.delete::<Service>(Some(namespace), SERVICE) {
        errors.push(e.to_string());
    }
    for pod in gateway.list::<Pod>(Some(namespace), None)? {
        if let Some(name) = pod.metadata.name
            && let Err(e) = gateway.delete::<Pod>(Some(namespace), &name)
        {
            errors.push(e.to_string());
        }
    }
    match gateway.delete::<Namespace>(None, namespace) {
        Ok(Deletion::Deleted | Deletion::Absent | Deletion::Planned) => {}
        Err(e) => errors.push(e.to_string()),
    }
    anyhow::ensure!(
        errors.is_empty(),
        "cleaning up namespace {namespace}: {}",
        errors.join("; ")
    );
    Ok(())
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.pod_ip.clone()
}

/// Why a pod is not (yet) where it should be: the phase and its containers' waiting reasons.
fn pod_state(pod: &Pod) -> String {
    let Some(status) = &pod.status else {
        return "no status".into();
    };
    let mut parts = vec![status.phase.clone().unwrap_or_else(|| "Pending".into())];
    for c in status.container_statuses.iter().flatten() {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            parts.push(format!(
                "{}{}",
                w.reason.clone().unwrap_or_default(),
                w.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        parts.push(c.message.clone().unwrap_or_default());
    }
    parts.join(", ")
}

fn container_outcome(status: &k8s_openapi::api::core::v1::PodStatus) -> String {
    let terminated = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.terminated.as_ref());
    match terminated {
        Some(t) => format!(
            "agnhost connect exited {}{}",
            t.exit_code,
            t.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        None => format!(
            "the connect pod did not finish: {}",
            status.phase.clone().unwrap_or_default()
        ),
    }
}

type Found = (std::collections::BTreeMap<String, Checkers>, Vec<Pod>);

/// Polls the namespace's pods until every node has its three checkers Ready and its connect pod
/// finished; on the deadline, names each node whose pods are not.
fn wait_for_checkers(
    gateway: &Gateway,
    namespace: &str,
    nodes: &[NodeInfo],
    deadline: Instant,
    progress: &dyn Progress,
) -> anyhow::Result<Found> {
    let wanted = nodes.len() * 4;
    loop {
        let pods = gateway.list::<Pod>(Some(namespace), None)?;
        let mut found = std::collections::BTreeMap::new();
        let mut api = Vec::new();
        let mut waiting = Vec::new();
        let mut done = 0;
        for node in nodes {
            let on_node: Vec<&Pod> = pods
                .iter()
                .filter(|p| {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.name.as_str())
                })
                .collect();
            let set_of = |p: &Pod| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubestrap.io/set").cloned())
            };
            let mut checkers = Checkers::default();
            for set in POD_SETS.into_iter().chain([HOST_SET]) {
                match on_node.iter().find(|p| {
                    set_of(p).as_deref() == Some(set) && p.metadata.deletion_timestamp.is_none()
                }) {
                    Some(p) if is_ready(p) => {
                        done += 1;
                        let name = p.metadata.name.clone().unwrap_or_default();
                        if set == HOST_SET {
                            checkers.host = Some(name);
                        } else {
                            checkers.pods.push((name, pod_ip(p).unwrap_or_default()));
                        }
                    }
                    Some(p) => waiting.push(format!("{set} on {} ({})", node.name, pod_state(p))),
                    None => waiting.push(format!("{set} on {} (no pod yet)", node.name)),
                }
            }
            let connect = on_node
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(&objects::api_pod_name(&node.name)));
            match connect {
                Some(p)
                    if matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    ) =>
                {
                    done += 1;
                    api.push((*p).clone());
                }
                Some(p) => waiting.push(format!(
                    "{} on {} ({})",
                    objects::api_pod_name(&node.name),
                    node.name,
                    pod_state(p)
                )),
                None => waiting.push(format!("the connect pod on {} (gone)", node.name)),
            }
            found.insert(node.name.clone(), checkers);
        }
        if waiting.is_empty() {
            return Ok((found, api));
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "timed out waiting for the checker pods: {} of {wanted} ready; not ready: {}",
                done,
                waiting.join("; ")
            );
        }
        progress.update(&format!("waiting for checker pods: {done}/{wanted} ready"));
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What answers a check needs.
#[derive(Debug, Clone)]
enum Expect {
    /// Every one of these endpoints (by pod name).
    All(Vec<Endpoint>),
    /// Any answer at all.
    Any,
}

#[derive(Debug)]
struct Job {
    check: Check,
    source: (String, u16),
    host: String,
    port: u16,
    tries: u32,
    expect: Expect,
    seen: BTreeSet<String>,
    rounds: u32,
    done: bool,
    /// Errors seen so far, and rounds in a row that brought errors and no new endpoint.
    errors: u32,
    stalled: u32,
}

impl Job {
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: Kind,
        from: &NodeInfo,
        to: Option<&NodeInfo>,
        source: (&str, u16),
        host: &str,
        port: u16,
        tries: u32,
        expect: Expect,
        rounds: u32,
    ) -> Job {
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Job {
            check: Check {
                kind,
                from: from.name.clone(),
                to: to.map(|n| n.name.clone()),
                target,
                ok: false,
                answered: Vec::new(),
                missing: Vec::new(),
                error: None,
                probes: 0,
            },
            source: (source.0.to_string(), source.1),
            host: host.to_string(),
            port,
            tries,
            expect,
            seen: BTreeSet::new(),
            rounds,
            done: false,
            errors: 0,
            stalled: 0,
        }
    }

    fn request(&self, namespace: &str) -> PodProxyGet {
        PodProxyGet {
            namespace: namespace.to_string(),
            pod: self.source.0.clone(),
            port: self.source.1,
            path: format!(
                "/dial?request=hostname&protocol=http&host={}&port={}&tries={}",
                self.host, self.port, self.tries
            ),
        }
    }

    /// How many requests the next round sends: one for a pod or node → pod check, four for a
    /// NodePort; for a Service check three
    /// times the endpoints not heard yet, plus three (each a single try through kube-proxy's random choice,
    /// sent in parallel so that a round costs one dial timeout, not one per try).
    fn fanout(&self) -> u32 {
        match (&self.expect, self.check.kind) {
            (Expect::All(eps), Kind::ServiceIp | Kind::ServiceDns) => {
                let missing = eps.iter().filter(|e| !self.seen.contains(&e.pod)).count() as u32;
                (3 * missing + 3).min(SERVICE_FANOUT)
            }
            // The node forwards each connection to a random endpoint, possibly on another node:
            // several at once, so that one broken path behind the NodePort (a pair named by the
            // pod → pod checks) does not fail the NodePort itself.
            (Expect::Any, Kind::NodePort) => NODE_PORT_FANOUT,
            _ => 1,
        }
    }

    /// Takes one answer of agnhost's `/dial` (`{"responses": [...], "errors": [...]}`).
    fn take(&mut self, answer: Result<String, String>) {
        self.check.probes += 1;
        match answer {
            Err(e) => {
                self.errors += 1;
                self.check.error = Some(e);
            }
            Ok(body) => match serde_json::from_str::<Value>(&body) {
                Err(_) => {
                    self.errors += 1;
                    self.check.error = Some(format!("unexpected answer {:?}", body.trim()));
                }
                Ok(v) => {
                    for r in v["responses"].as_array().into_iter().flatten() {
                        if let Some(name) = r.as_str() {
                            self.seen.insert(name.trim().to_string());
                        }
                    }
                    if let Some(e) = v["errors"].as_array().and_then(|e| e.last()) {
                        self.errors += 1;
                        self.check.error = e.as_str().map(str::to_string);
                    }
                }
            },
        }
        self.done = self.satisfied();
    }

    /// Ends a round: a check whose last two rounds failed somewhere and brought no new endpoint
    /// stops early (a Service with an unreachable endpoint would otherwise use every round, each
    /// costing a dial timeout); rounds without errors never count, so a healthy Service is heard
    /// out.
    fn end_round(&mut self, seen_before: usize, errors_before: u32) {
        if self.seen.len() == seen_before && self.errors > errors_before {
            self.stalled += 1;
        } else {
            self.stalled = 0;
        }
        if self.stalled >= 2 {
            self.rounds = 0;
        }
    }

    fn satisfied(&self) -> bool {
        match &self.expect {
            Expect::Any => !self.seen.is_empty(),
            Expect::All(eps) => eps.iter().all(|e| self.seen.contains(&e.pod)),
        }
    }

    fn finish(mut self) -> Check {
        self.check.ok = self.satisfied();
        if let Expect::All(eps) = &self.expect {
            self.check.missing = eps
                .iter()
                .filter(|e| !self.seen.contains(&e.pod))
                .cloned()
                .collect();
        }
        if self.check.ok {
            self.check.error = None;
        }
        self.check.answered = self.seen.into_iter().collect();
        self.check
    }
}

/// Sends every unfinished job's request at once, round after round, until each is satisfied, out
/// of rounds, or the deadline has passed.
fn probe(
    gateway: &Gateway,
    namespace: &str,
    jobs: &mut [Job],
    deadline: Instant,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let total = jobs.len();
    loop {
        let pending: Vec<usize> = (0..jobs.len())
            .filter(|&i| !jobs[i].done && jobs[i].rounds > 0)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        progress.update(&format!(
            "probing: {}/{total} checks done",
            total - pending.len()
        ));
        let mut owners = Vec::new();
        let mut requests = Vec::new();
        let before: Vec<(usize, u32)> = pending
            .iter()
            .map(|&i| (jobs[i].seen.len(), jobs[i].errors))
            .collect();
        for &i in &pending {
            for _ in 0..jobs[i].fanout() {
                owners.push(i);
                requests.push(jobs[i].request(namespace));
            }
            jobs[i].rounds -= 1;
        }
        let answers = gateway.pod_proxy_get_all(&requests, REQUEST_TIMEOUT)?;
        for (&i, answer) in owners.iter().zip(answers) {
            jobs[i].take(answer.map_err(|e| e.to_string()));
        }
        for (&i, (seen, errors)) in pending.iter().zip(before) {
            jobs[i].end_round(seen, errors);
        }
        if Instant::now() >= deadline {
            for job in jobs.iter_mut().filter(|j| !j.done) {
                job.check
                    .error
                    .get_or_insert_with(|| "the --timeout passed".into());
            }
            return Ok(());
        }
        if jobs.iter().any(|j| !j.done && j.rounds > 0) {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ip: "10.0.0.1".into(),
        }
    }

    #[test]
    fn a_service_check_needs_every_endpoint_and_names_the_missing_ones() {
        let eps = vec![
            Endpoint {
                pod: "pod-a-1".into(),
                node: "n1".into(),
            },
            Endpoint {
                pod: "pod-b-2".into(),
                node: "n2".into(),
            },
        ];
        let mut job = Job::new(
            Kind::ServiceIp,
            &node("n1"),
            None,
            ("pod-a-1", 8080),
            "10.96.7.7",
            80,
            4,
            Expect::All(eps),
            3,
        );
        assert_eq!(
            job.request("ns").path,
            "/dial?request=hostname&protocol=http&host=10.96.7.7&port=80&tries=4"
        );
        assert_eq!(job.fanout(), 9);
        job.take(Ok(
            r#"{"responses":["pod-a-1","pod-a-1"],"errors":["error trying: dial tcp: no route to host"]}"#.into(),
        ));
        assert!(!job.done);
        assert_eq!(job.fanout(), 6);
        job.end_round(0, 0);
        job.take(Err("HTTP 503".into()));
        job.end_round(1, 1);
        assert_eq!(job.rounds, 3, "one stalled round is not enough to stop");
        job.take(Err("HTTP 503".into()));
        job.end_round(1, 2);
        assert_eq!(job.rounds, 0, "two stalled rounds in a row stop the check");
        let check = job.finish();
        assert!(!check.ok);
        assert_eq!(check.probes, 3);
        assert_eq!(check.missing[0].node, "n2");
        assert_eq!(check.answered, ["pod-a-1"]);
        assert_eq!(check.error.as_deref(), Some("HTTP 503"));
    }

    #[test]
    fn namespace_names_are_fresh() {
        let a = namespace_name();
        assert!(a.starts_with("kubestrap-verify-") && a.len() == 23, "{a}");
        assert_ne!(a, namespace_name());
    }
}
