//! HTTP(S) serving for the doubles: accept loops over hyper with optional TLS and the peer's certificates.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Response bodies: whole (most responses) or streamed (watches).
pub type Body = BoxBody<Bytes, Infallible>;

/// A whole response body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The verified client certificate chain, leaf first (empty without a client certificate).
    pub certs: Vec<CertificateDer<'static>>,
}

/// Binds a TCP listener, naming the address on failure as Go components do.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}: listen tcp {addr}: bind"))
}

/// Serves HTTPS on `listener` until the process ends.
pub async fn serve_tls<H, F>(listener: TcpListener, tls: rustls::ServerConfig, handler: H)
where
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
            let Ok(Ok(tls_stream)) = handshake else {
                return;
            };
            let certs = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default();
            let peer = Arc::new(Peer { addr, certs });
            serve_connection(TokioIo::new(tls_stream), peer, handler).await;
        });
    }
}

/// Serves plain HTTP on `listener` until the process ends.
pub async fn serve_plain<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let peer = Arc::new(Peer {
                addr,
                certs: Vec::new(),
            });
            serve_connection(TokioIo::new(stream), peer, handler).await;
        });
    }
}

async fn serve_connection<IO, H, F>(io: IO, peer: Arc<Peer>, handler: H)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |request| {
        let handler = handler.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handler(request, peer).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

/// Reads a request body, refusing bodies over 3 MiB as the API server does.
pub async fn read_body(body: Incoming) -> Result<Bytes, String> {
    Limited::new(body, 3 * 1024 * 1024)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("failed to read request body: {e}"))
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(full(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The health endpoints a component serves on its secure port: always "ok" while it runs, 404 else.
pub fn health_response(path: &str) -> Response<Body> {
    match path {
        "/healthz" | "/livez" | "/readyz" => text(StatusCode::OK, "ok"),
        _ => text(
            StatusCode::FORBIDDEN,
            "forbidden: only health endpoints are served by this double",
        ),
    }
}
