//! A connected API client: kube's client driven by its own single-threaded runtime, behind a blocking
//! API (the phases are synchronous), with the retry policy its calls use.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::connection::{CONNECT_TIMEOUT, Connection};
use super::error::ClusterError;
use super::retry::Retry;

/// A client for one API server as one user. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    retry: Retry,
}

struct Shared {
    kube: kube::Client,
    runtime: tokio::runtime::Runtime,
    server: String,
    source: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.shared.server)
            .field("source", &self.shared.source)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Client {
    /// Builds the client; nothing is sent until the first call.
    pub fn connect(connection: &Connection) -> Result<Client, ClusterError> {
        Client::connect_within(connection, CONNECT_TIMEOUT)
    }

    /// Builds the client with a bound on each TCP+TLS connection attempt.
    pub fn connect_within(
        connection: &Connection,
        connect_timeout: Duration,
    ) -> Result<Client, ClusterError> {
        outside_runtime()?;
        let config = connection.kube_config(connect_timeout)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Connection {
                source_name: connection.source.clone(),
                reason: format!("starting the client's async runtime: {e}"),
            })?;
        // kube's client spawns its request buffer on the runtime it is built in.
        let kube = runtime
            .block_on(async { kube::Client::try_from(config) })
            .map_err(|e| ClusterError::Connection {
                source_name: connection.source.clone(),
                reason: super::retry::error_chain(&e),
            })?;
        Ok(Client {
            shared: Arc::new(Shared {
                kube,
                runtime,
                server: connection.server.clone(),
                source: connection.source.clone(),
            }),
            retry: Retry::default(),
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(&self, retry: Retry) -> Client {
        Client {
            shared: self.shared.clone(),
            retry,
        }
    }

    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    /// `https://host:port` of the API server.
    pub fn server(&self) -> &str {
        &self.shared.server
    }

    /// Where the connection settings came from (a kubeconfig path).
    pub fn source(&self) -> &str {
        &self.shared.source
    }

    pub(crate) fn kube(&self) -> kube::Client {
        self.shared.kube.clone()
    }

    /// Runs async client code to completion.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> Result<F::Output, ClusterError> {
        outside_runtime()?;
        Ok(self.shared.runtime.block_on(future))
    }
}

/// Blocking inside a runtime's worker would stall it (or panic): refuse instead.
fn outside_runtime() -> Result<(), ClusterError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(ClusterError::InsideRuntime(
            "call it from a plain thread, e.g. through tokio::task::spawn_blocking".into(),
        )),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::connection::Credentials;
    use crate::cluster::{ClusterError, Gateway, Retry};
    use crate::host::{Facts, Host, Root};
    use crate::output::Ui;
    use k8s_openapi::api::core::v1::Node;

    fn closed_port() -> Connection {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        Connection {
            server: format!("https://127.0.0.1:{port}"),
            ca_pem: None,
            insecure_skip_tls_verify: false,
            tls_server_name: None,
            credentials: Credentials::Anonymous,
            source: "test".into(),
        }
    }

    #[test]
    fn a_refused_connection_is_retried_until_the_deadline_then_named() {
        let connection = closed_port();
        let client = Client::connect(&connection)
            .unwrap()
            .with_retry(Retry::within(Duration::from_millis(700)));
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(
            Root::new(dir.path()),
            Facts::default(),
            false,
            Ui::default(),
        );
        let gateway = Gateway::new(&host, client);
        let started = std::time::Instant::now();
        let err = gateway.get::<Node>(None, "n1").unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(500), "{err}");
        let ClusterError::Transport { attempts, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(*attempts > 1, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("reading Node \"n1\" at {}: ", connection.server)),
            "{text}"
        );
        assert!(text.contains("onnection refused"), "{text}");
    }

    #[test]
    fn blocking_calls_are_refused_inside_an_async_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = runtime.block_on(async { Client::connect(&closed_port()).unwrap_err() });
        assert!(matches!(err, ClusterError::InsideRuntime(_)), "{err:?}");
    }
}
