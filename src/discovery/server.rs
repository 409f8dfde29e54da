//! The HTTPS server of the discovery endpoint: `GET /cluster-info/v1/?token-id=<id>` over rustls, a
//! bounded number of connections with bounded buffers and deadlines, and the per-client rate limit on
//! requests that name no served token.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::limit::RateLimit;
use super::published::{Lookup, Published};
use crate::output::Ui;

/// How long a client has for the TLS handshake and for sending a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection stays open (keep-alive included), so no client holds a slot for ever.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// A request's line and headers must fit in this buffer.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// How the server listens and limits its clients.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub address: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Requests naming no served token allowed per second per client address…
    pub failures_per_second: u32,
    /// …with bursts of this many.
    pub failure_burst: u32,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            address: IpAddr::from([0, 0, 0, 0]),
            port: super::DEFAULT_PORT,
            failures_per_second: 10,
            failure_burst: 20,
            max_connections: 256,
        }
    }
}

/// Counters of what was answered, by outcome.
#[derive(Debug, Default)]
pub struct Counters {
    pub served: AtomicU64,
    pub refused: AtomicU64,
    pub limited: AtomicU64,
}

struct State {
    published: RwLock<Option<Arc<Published>>>,
    limit: RateLimit,
    counters: Counters,
    ui: Ui,
}

/// Replaces what the server serves (cluster mode refreshes it from the cluster).
#[derive(Clone)]
pub struct Publisher {
    state: Arc<State>,
}

impl Publisher {
    /// Serves `published` from now on; `None` answers 503 until something is published.
    pub fn set(&self, published: Option<Published>) {
        *self
            .state
            .published
            .write()
            .unwrap_or_else(|p| p.into_inner()) = published.map(Arc::new);
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }
}

/// A bound, not yet running, discovery server.
pub struct Server {
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    max_connections: usize,
}

impl Server {
    /// Binds the port and loads the serving certificate chain and key (PEM).
    pub fn bind(
        options: &ServerOptions,
        cert_pem: &[u8],
        key_pem: &[u8],
        ui: Ui,
    ) -> anyhow::Result<Server> {
        let tls = tls_config(cert_pem, key_pem)?;
        let addr = SocketAddr::new(options.address, options.port);
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("failed to listen on {addr} (--address, --port)"))?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            tls: Arc::new(tls),
            state: Arc::new(State {
                published: RwLock::new(None),
                limit: RateLimit::new(options.failures_per_second, options.failure_burst),
                counters: Counters::default(),
                ui,
            }),
            max_connections: options.max_connections.max(1),
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn publisher(&self) -> Publisher {
        Publisher {
            state: self.state.clone(),
        }
    }

    /// Serves until `shutdown` completes, on a runtime of its own (two worker threads).
    pub fn run<F>(self, shutdown: F) -> anyhow::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the discovery server's runtime")?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)?;
            let acceptor = TlsAcceptor::from(self.tls);
            let slots = Arc::new(Semaphore::new(self.max_connections));
            tokio::pin!(shutdown);
            loop {
                let permit = tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    permit = slots.clone().acquire_owned() => permit?,
                };
                let (stream, peer) = tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            self.state.ui.debug(2, format!("discovery: accept failed: {e}"));
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let state = self.state.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = tokio::time::timeout(
                        CONNECTION_LIFETIME,
                        serve_connection(acceptor, stream, peer, state),
                    )
                    .await;
                });
            }
        })
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
) {
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
        return;
    };
    let client = peer.ip();
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(answer(&state, client, &request)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_buf_size(MAX_REQUEST_BYTES)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

/// The answer to one request. Nothing about a refused request (its id included) is logged beyond
/// its client and status; a token secret never reaches this code.
fn answer(state: &State, client: IpAddr, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let outcome = classify(state, request);
    match outcome {
        Ok((kubeconfig, jws)) => {
            state.counters.served.fetch_add(1, Ordering::Relaxed);
            let body = serde_json::json!({"kubeconfig": &*kubeconfig, "jws": &*jws});
            respond(StatusCode::OK, body.to_string())
        }
        Err((status, reason)) => {
            if status == StatusCode::SERVICE_UNAVAILABLE || state.limit.allow(client) {
                state.counters.refused.fetch_add(1, Ordering::Relaxed);
                state.ui.debug(
                    2,
                    format!("discovery: {client}: {} {reason}", status.as_u16()),
                );
                respond(status, error_body(reason))
            } else {
                state.counters.limited.fetch_add(1, Ordering::Relaxed);
                let mut response = respond(
                    StatusCode::TOO_MANY_REQUESTS,
                    error_body("too many requests naming no served token; slow down"),
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
        }
    }
}

type Served = (Arc<str>, Arc<str>);

fn classify(
    state: &State,
    request: &Request<Incoming>,
) -> Result<Served, (StatusCode, &'static str)> {
    if request.uri().path() != super::PATH {
        return Err((StatusCode::NOT_FOUND, "not found"));
    }
    if request.method() != Method::GET {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "only GET is served"));
    }
    let id = token_id(request.uri().query().unwrap_or_default())
        .ok_or((StatusCode::BAD_REQUEST, "the token-id parameter is missing"))?;
    let published = state
        .published
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or((
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster-info has not been read yet",
        ))?;
    match published.lookup(id) {
        Lookup::Found { kubeconfig, jws } => Ok((kubeconfig, jws)),
        Lookup::Unknown => Err((StatusCode::NOT_FOUND, "no signature for this token id")),
        Lookup::Malformed => Err((
            StatusCode::BAD_REQUEST,
            "the token-id is not 6 characters of [a-z0-9]",
        )),
    }
}

/// The value of the (first) `token-id` query parameter, as sent (ids need no decoding).
fn token_id(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token-id="))
}

fn error_body(reason: &str) -> String {
    serde_json::json!({"error": reason}).to_string()
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .context("the serving certificate is not PEM")?;
    anyhow::ensure!(
        !chain.is_empty(),
        "the serving certificate file holds no certificate"
    );
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .context("the serving key is not a PEM private key")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the serving certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_id_parameter_is_found_among_others() {
        assert_eq!(token_id("token-id=abcdef"), Some("abcdef"));
        assert_eq!(token_id("a=b&token-id=abcdef&c"), Some("abcdef"));
        assert_eq!(token_id("token-idx=abcdef"), None);
        assert_eq!(token_id(""), None);
    }
}
