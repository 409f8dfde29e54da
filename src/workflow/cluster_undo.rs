//! Rollback's handler of the cluster gateway's `api-object` journal entries: each is undone through
//! `cluster::undo_entry`, with the client the run's gateway used or — recovering a run whose process
//! died — a client built from the node's admin.conf (super-admin.conf when admin.conf is missing or
//! refused). When no API server answers, the entries are reported as left and the rollback goes on.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::rollback::UndoEntry;
use crate::cluster::{self, Client, ClusterError, Gateway, Retry};
use crate::host::journal::Entry;
use crate::host::plan::api_object_target;
use crate::host::{Host, NodePath, Undone, well_known};
use crate::kubeconfig;

/// The kubeconfigs a rollback connects with, in order: admin.conf (cluster-admin through the
/// `kubeadm:cluster-admins` binding), then super-admin.conf (`system:masters`) for when admin.conf is
/// missing or refused — the run being undone had not made that binding yet, or its undo just removed it.
/// kubeadm falls back the same way when it makes that binding.
pub const KUBECONFIGS: [&str; 2] = ["admin.conf", "super-admin.conf"];

/// A bound on each connection attempt, and on retrying an API server that does not answer: a
/// restarting server answers within it, a dead one does not hold the rollback up for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const API_RETRY: Duration = Duration::from_secs(10);

/// The `api-object` handler a workflow's run data lists in [`super::RunData::extra_undoers`].
#[derive(Debug)]
pub struct ClusterUndo {
    retry: Retry,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    /// No client yet: one is built from the node's kubeconfigs at the first `api-object` entry.
    Unconnected,
    /// The client in use; `kubeconfig` is its index in [`KUBECONFIGS`] when it was built from one.
    Connected {
        client: Client,
        kubeconfig: Option<usize>,
    },
    /// No API server to undo with, and why: every further entry is left with that reason.
    Unavailable(String),
}

impl Default for ClusterUndo {
    fn default() -> Self {
        ClusterUndo::with_retry(Retry::within(API_RETRY))
    }
}

impl ClusterUndo {
    /// A handler whose own clients (built from the node's kubeconfigs) retry by `retry`.
    pub fn with_retry(retry: Retry) -> Self {
        ClusterUndo {
            retry,
            state: Mutex::new(State::Unconnected),
        }
    }

    /// Undo with `client`: the credentials the run's changes were made with.
    pub fn use_client(&self, client: &Client) {
        *self.state() = State::Connected {
            client: client.clone(),
            kubeconfig: None,
        };
    }

    /// A cluster gateway over `client` whose changes this handler undoes with the same client.
    pub fn gateway<'h>(&self, host: &'h Host, client: Client) -> Gateway<'h> {
        self.use_client(&client);
        Gateway::new(host, client)
    }

    /// The kubeconfig the handler's client was built from, if it built one (for messages and tests).
    pub fn kubeconfig(&self) -> Option<&'static str> {
        match &*self.state() {
            State::Connected {
                kubeconfig: Some(at),
                ..
            } => Some(KUBECONFIGS[*at]),
            _ => None,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Undoes one `api-object` entry; anything that stops it is an `ObjectKept` with the reason.
    fn undo_object(&self, host: &Host, entry: &Entry, target: String) -> Undone {
        let mut state = self.state();
        loop {
            let (client, from) = match &*state {
                State::Unavailable(why) => return Undone::ObjectKept(target, why.clone()),
                State::Connected { client, kubeconfig } => (client.clone(), *kubeconfig),
                State::Unconnected => {
                    *state = self.connect(host, 0);
                    continue;
                }
            };
            let err = match cluster::undo_entry(&client, host, entry) {
                Ok(undone) => return undone,
                Err(err) => err,
            };
            match err.downcast_ref::<ClusterError>() {
                Some(ClusterError::Transport { .. } | ClusterError::Connection { .. }) => {
                    let why = format!("the API server did not answer: {err:#}");
                    *state = State::Unavailable(why.clone());
                    return Undone::ObjectKept(target, why);
                }
                Some(refused) if refused.code() == Some(403) => {
                    let next = from.map_or(0, |at| at + 1);
                    match self.connect(host, next) {
                        connected @ State::Connected { .. } => *state = connected,
                        State::Unconnected | State::Unavailable(_) => {
                            return Undone::ObjectKept(target, format!("{err:#}"));
                        }
                    }
                }
                _ => return Undone::ObjectKept(target, format!("{err:#}")),
            }
        }
    }

    /// A client from the first of [`KUBECONFIGS`] (from index `from` on) that exists and can be used.
    fn connect(&self, host: &Host, from: usize) -> State {
        let mut problems = Vec::new();
        for (at, name) in KUBECONFIGS.iter().enumerate().skip(from) {
            let path = NodePath::new(well_known::KUBERNETES_DIR).join(name);
            let connection = match kubeconfig::connection::connection(host, &path) {
                Ok(Some(connection)) => connection,
                Ok(None) => continue,
                Err(e) => {
                    problems.push(format!("{e:#}"));
                    continue;
                }
            };
            match Client::connect_within(&connection, CONNECT_TIMEOUT) {
                Ok(client) => {
                    host.ui().debug(
                        1,
                        format!("[rollback] undoing API changes with {path}'s credentials"),
                    );
                    return State::Connected {
                        client: client.with_retry(self.retry),
                        kubeconfig: Some(at),
                    };
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if problems.is_empty() {
            let names: Vec<String> = KUBECONFIGS[from.min(KUBECONFIGS.len())..]
                .iter()
                .map(|name| format!("{}/{name}", well_known::KUBERNETES_DIR))
                .collect();
            problems.push(format!(
                "no kubeconfig to reach the API server with ({} not found)",
                names.join(", ")
            ));
        }
        State::Unavailable(problems.join("; "))
    }
}

impl UndoEntry for ClusterUndo {
    /// Never fails the rollback: an object that cannot be undone is reported as kept, with why.
    fn undo(&self, host: &Host, entry: &Entry) -> Option<anyhow::Result<Undone>> {
        let Entry::ApiObject {
            api_version,
            kind,
            namespace,
            name,
            ..
        } = entry
        else {
            return None;
        };
        let target = api_object_target(api_version, kind, namespace.as_deref(), name);
        Some(Ok(self.undo_object(host, entry, target)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Connection, Credentials};
    use crate::host::journal::{self, ApiChange, Outcome};
    use crate::host::{Facts, Root};
    use crate::kubeconfig::{AuthInfo, KubeConfig};
    use crate::output::Ui;
    use crate::workflow::rollback::RollbackReport;
    use crate::workflow::session::{Recovery, Session};

    fn host(dir: &std::path::Path) -> Host {
        Host::new(Root::new(dir), Facts::default(), false, Ui::default())
    }

    /// An API server address nothing listens on.
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}")
    }

    fn write_kubeconfig(host: &Host, name: &str, server: &str) {
        let user = AuthInfo {
            token: Some("abcdef.0123456789abcdef".into()),
            ..Default::default()
        };
        let config = KubeConfig::single("kubernetes", server, None, "kubernetes-admin", user);
        let path = NodePath::new(well_known::KUBERNETES_DIR).join(name);
        host.write_file(&path, config.to_yaml().unwrap().as_bytes(), 0o600)
            .unwrap();
    }

    fn created(name: &str) -> Entry {
        Entry::ApiObject {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("kube-system".into()),
            name: name.into(),
            change: ApiChange::Created,
        }
    }

    /// A run that wrote a file and created two ConfigMaps, then was killed (no end in the journal).
    fn killed_run(dir: &std::path::Path) -> NodePath {
        let h = host(dir);
        h.start_journal("init").unwrap();
        let file = NodePath::new("/etc/kubernetes/manifests/etcd.yaml");
        h.write_file(&file, b"x", 0o600).unwrap();
        h.journal(created("kubeadm-config")).unwrap();
        h.journal(created("kubelet-config")).unwrap();
        file
    }

    /// The next init: recovers the killed run with the host's and this handler's undo.
    fn recover(dir: &std::path::Path, undo: &ClusterUndo) -> RollbackReport {
        let h = host(dir);
        let session = Session::begin(&h, "init", Recovery::RollBack, &[&h, undo]).unwrap();
        let report = session.recovered()[0].1.clone();
        session.finish(&h, Ok(()), false, &[&h, undo]).unwrap();
        report
    }

    fn outcomes(dir: &std::path::Path) -> Vec<Outcome> {
        journal::read(&Root::new(dir))
            .unwrap()
            .into_iter()
            .filter_map(|r| match r.entry {
                Entry::RunEnd { outcome } => Some(outcome),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_recovery_without_an_admin_kubeconfig_reports_the_objects_as_left_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let file = killed_run(dir.path());
        let report = recover(dir.path(), &ClusterUndo::default());
        let why = "no kubeconfig to reach the API server with (/etc/kubernetes/admin.conf, /etc/kubernetes/super-admin.conf not found)";
        assert_eq!(
            report.left,
            [
                format!("v1 ConfigMap kube-system/kubelet-config: {why}"),
                format!("v1 ConfigMap kube-system/kubeadm-config: {why}"),
            ]
        );
        assert!(report.failed.is_empty());
        assert!(!host(dir.path()).disk(&file).exists(), "the file is undone");
        assert_eq!(
            outcomes(dir.path()),
            [Outcome::RolledBack, Outcome::Succeeded]
        );
    }

    #[test]
    fn a_recovery_whose_api_server_does_not_answer_tries_it_once_and_leaves_the_objects() {
        let dir = tempfile::tempdir().unwrap();
        let file = killed_run(dir.path());
        let server = closed_port();
        write_kubeconfig(&host(dir.path()), "admin.conf", &server);
        let undo = ClusterUndo::with_retry(Retry::within(Duration::from_millis(300)));
        let report = recover(dir.path(), &undo);
        assert_eq!(undo.kubeconfig(), None, "the handler gave up on the server");
        assert_eq!(report.left.len(), 2, "{report:?}");
        let reasons: Vec<&str> = report
            .left
            .iter()
            .map(|l| l.split_once(": ").unwrap().1)
            .collect();
        assert!(
            reasons[0].starts_with("the API server did not answer: ")
                && reasons[0].contains(&server),
            "{reasons:?}"
        );
        assert_eq!(
            reasons[0], reasons[1],
            "the second object is not tried again"
        );
        let started = std::time::Instant::now();
        let Some(Ok(Undone::ObjectKept(_, again))) = undo.undo(&host(dir.path()), &created("y"))
        else {
            panic!("an api-object entry is this handler's");
        };
        assert!(
            started.elapsed() < Duration::from_millis(150) && again == reasons[0],
            "a server that did not answer is not retried for every entry: {again}"
        );
        assert!(!host(dir.path()).disk(&file).exists());
        assert_eq!(
            outcomes(dir.path()),
            [Outcome::RolledBack, Outcome::Succeeded]
        );
    }

    #[test]
    fn a_runs_own_gateway_client_undoes_its_changes_before_any_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path());
        write_kubeconfig(&h, "admin.conf", &closed_port());
        let own = closed_port();
        let client = Client::connect(&Connection {
            server: own.clone(),
            ca_pem: None,
            insecure_skip_tls_verify: false,
            tls_server_name: None,
            credentials: Credentials::Anonymous,
            source: "the run's kubeconfig".into(),
        })
        .unwrap()
        .with_retry(Retry::once());
        let undo = ClusterUndo::default();
        let gateway = undo.gateway(&h, client);
        assert!(!gateway.dry_run());
        let Some(Ok(Undone::ObjectKept(target, why))) = undo.undo(&h, &created("x")) else {
            panic!("an api-object entry is this handler's");
        };
        assert_eq!(target, "v1 ConfigMap kube-system/x");
        assert!(why.contains(&own), "{why}");
        assert!(
            undo.undo(
                &h,
                &Entry::RunEnd {
                    outcome: Outcome::Failed
                }
            )
            .is_none()
        );
    }
}
