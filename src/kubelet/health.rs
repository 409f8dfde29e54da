//! Whether the kubelet and the control plane it runs are healthy: one HTTP probe per component, at the
//! endpoint its static pod's probes use (kubelet `:10248/healthz`, etcd's metrics port, the API
//! server's `/livez`, the controller manager's `:10257/healthz`, the scheduler's `:10259/livez`),
//! polled until healthy or a deadline; TLS is not verified (the components serve self-signed or
//! cluster-CA certificates), as kubeadm's checks do.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::model::{ControlPlane, join_host_port};
use crate::staticpods::Component;
use crate::staticpods::probes;

/// The kubelet's healthz endpoint (kubeadm's `healthzBindAddress:healthzPort`).
pub const KUBELET_HEALTHZ: &str = "http://127.0.0.1:10248/healthz";
const POLL_EVERY: Duration = Duration::from_millis(100);
/// The kubelet's healthz is a plain HTTP request on loopback: polled often, so that a join or init does
/// not sit out most of a 100 ms interval after a kubelet that is up in tens of milliseconds.
const KUBELET_POLL_EVERY: Duration = Duration::from_millis(20);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// One component to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub url: String,
    /// The static pod's component, for its logs; `None` for the kubelet.
    pub component: Option<Component>,
}

pub fn kubelet() -> Check {
    Check {
        name: "kubelet",
        url: KUBELET_HEALTHZ.to_string(),
        component: None,
    }
}

/// The control-plane components of this node (etcd only when local), at their probes' endpoints.
pub fn control_plane(cp: &ControlPlane) -> Vec<Check> {
    Component::ALL
        .into_iter()
        .filter(|c| *c != Component::Etcd || cp.cluster.etcd.local().is_some())
        .map(|component| {
            let probe = probes::probe(component, cp);
            let host = probe
                .host
                .clone()
                .unwrap_or_else(|| cp.advertise_address().to_string());
            Check {
                name: component.name(),
                url: format!(
                    "{}://{}{}",
                    probe.scheme.to_lowercase(),
                    join_host_port(&host, probe.port),
                    probe.startup_path
                ),
                component: Some(component),
            }
        })
        .collect()
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub check: Check,
    /// `Some(elapsed)` when it became healthy.
    pub healthy_after: Option<Duration>,
    /// What the last failed probe said.
    pub last_error: Option<String>,
}

/// What is shown while waiting.
pub trait Progress: Sync {
    /// A probe of `check` failed with `error` after `elapsed`.
    fn waiting(&self, index: usize, elapsed: Duration, error: &str);
    fn healthy(&self, index: usize, elapsed: Duration);
    fn timed_out(&self, index: usize, elapsed: Duration, error: &str);
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .no_proxy()
        .connect_timeout(REQUEST_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the health-check client")
}

/// One probe: healthy on HTTP 200, else the error.
async fn probe(client: &reqwest::Client, url: &str) -> std::result::Result<(), String> {
    match client.get(url).send().await {
        Ok(response) if response.status() == reqwest::StatusCode::OK => Ok(()),
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let body: String = body.trim().chars().take(200).collect();
            Err(format!("HTTP {status}: {body}"))
        }
        Err(e) => Err(describe(&e)),
    }
}

/// The innermost cause (`connection refused`), as curl would say it.
fn describe(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(inner) = source.source() {
        source = inner;
    }
    if e.is_timeout() {
        format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())
    } else {
        source.to_string()
    }
}

/// Waits for every check at once until each is healthy or `deadline` has passed since `started`.
pub fn wait(
    checks: &[Check],
    started: Instant,
    deadline: Duration,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<Outcome>> {
    let client = client()?;
    crate::host::runtime::block_on(async {
        let waits = checks.iter().enumerate().map(|(index, check)| {
            let client = client.clone();
            async move {
                let mut last_error = None;
                loop {
                    let outcome = probe(&client, &check.url).await;
                    let elapsed = started.elapsed();
                    match outcome {
                        Ok(()) => {
                            progress.healthy(index, elapsed);
                            return Outcome {
                                check: check.clone(),
                                healthy_after: Some(elapsed),
                                last_error,
                            };
                        }
                        Err(error) => {
                            if elapsed >= deadline {
                                progress.timed_out(index, elapsed, &error);
                                return Outcome {
                                    check: check.clone(),
                                    healthy_after: None,
                                    last_error: Some(error),
                                };
                            }
                            progress.waiting(index, elapsed, &error);
                            last_error = Some(error);
                        }
                    }
                    let left = deadline.saturating_sub(started.elapsed());
                    let every = if check.component.is_none() {
                        KUBELET_POLL_EVERY
                    } else {
                        POLL_EVERY
                    };
                    tokio::time::sleep(every.min(left.max(Duration::from_millis(1)))).await;
                }
            }
        });
        futures_util::future::join_all(waits).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::control_plane_model;
    use std::sync::Mutex;

    #[test]
    fn checks_use_the_manifests_probe_endpoints() {
        let model = control_plane_model("");
        let cp = model.control_plane().unwrap();
        let urls: Vec<(&str, String)> = control_plane(&cp)
            .into_iter()
            .map(|c| (c.name, c.url))
            .collect();
        assert_eq!(
            urls,
            [
                ("etcd", "http://127.0.0.1:2381/readyz".to_string()),
                (
                    "kube-apiserver",
                    "https://192.168.8.201:6443/livez".to_string()
                ),
                (
                    "kube-controller-manager",
                    "https://127.0.0.1:10257/healthz".to_string()
                ),
                (
                    "kube-scheduler",
                    "https://127.0.0.1:10259/livez".to_string()
                ),
            ]
        );
        let old_etcd = control_plane_model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\netcd:\n  local: {imageTag: 3.5.9-0}\n",
        );
        let cp = old_etcd.control_plane().unwrap();
        assert_eq!(
            control_plane(&cp)[0].url,
            "http://127.0.0.1:2381/health?serializable=false"
        );
    }

    #[derive(Default)]
    struct Recorded(Mutex<Vec<String>>);

    impl Progress for Recorded {
        fn waiting(&self, index: usize, _: Duration, error: &str) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{index} waiting {error}"));
        }
        fn healthy(&self, index: usize, _: Duration) {
            self.0.lock().unwrap().push(format!("{index} healthy"));
        }
        fn timed_out(&self, index: usize, _: Duration, error: &str) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{index} timed out {error}"));
        }
    }

    /// Serves `HTTP 200 ok` on a loopback port after `ready_after`, refusing until then.
    fn server(ready_after: Duration) -> u16 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        std::thread::spawn(move || {
            std::thread::sleep(ready_after);
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            for stream in listener.incoming().flatten() {
                use std::io::{Read, Write};
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        port
    }

    #[test]
    fn a_component_that_comes_up_is_healthy_and_one_that_never_does_times_out_with_its_error() {
        let up = server(Duration::from_millis(300));
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        let checks = vec![
            Check {
                name: "up",
                url: format!("http://127.0.0.1:{up}/healthz"),
                component: None,
            },
            Check {
                name: "dead",
                url: format!("http://127.0.0.1:{dead_port}/healthz"),
                component: None,
            },
        ];
        let progress = Recorded::default();
        let results = wait(
            &checks,
            Instant::now(),
            Duration::from_millis(1500),
            &progress,
        )
        .unwrap();
        let up_after = results[0].healthy_after.expect("the server came up");
        assert!(up_after >= Duration::from_millis(300), "{up_after:?}");
        assert_eq!(results[1].healthy_after, None);
        let error = results[1].last_error.clone().unwrap();
        assert!(error.to_lowercase().contains("refused"), "{error}");
        let log = progress.0.lock().unwrap();
        assert!(log.iter().any(|l| l == "0 healthy"), "{log:?}");
        assert!(log.iter().any(|l| l.starts_with("1 timed out")), "{log:?}");
    }
}
