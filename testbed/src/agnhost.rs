//! The test image's program (`agnhost`, as Kubernetes' e2e image names it): `netexec` serves HTTP
//! (`/hostname`, `/clientip` — the address the connection came from —, `/healthz`, `/echo?msg=`,
//! `/exit?code=` and `/dial?host=&port=&request=&tries=`, which asks another netexec from inside this
//! pod's network and reports its answers as `{"responses": [...]}` or `{"errors": [...]}`), `pause`
//! sleeps until it is stopped and `connect <host:port>` tries one TCP connection.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hyper::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::serve;

pub fn main(args: &[String]) -> i32 {
    crate::run_component("agnhost", args, run)
}

fn flag(args: &[String], name: &str) -> Option<String> {
    let mut iter = args.iter();
    while let Some(a) = iter.next() {
        if let Some(v) = a.strip_prefix(&format!("--{name}=")) {
            return Some(v.to_string());
        }
        if a == &format!("--{name}") {
            return iter.next().cloned();
        }
    }
    None
}

fn query(uri: &hyper::Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect()
}

/// One HTTP/1.0 GET over a fresh TCP connection; the response body.
async fn get(host: &str, port: u16, path: &str, timeout: Duration) -> Result<String> {
    let work = async {
        let mut stream = tokio::net::TcpStream::connect((host, port))
            .await
            .with_context(|| format!("dial tcp {host}:{port}"))?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n").as_bytes())
            .await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).to_string();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("malformed HTTP response from {host}:{port}"))?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            bail!(
                "{host}:{port}{path}: {}",
                head.lines().next().unwrap_or_default()
            );
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| anyhow!("dial tcp {host}:{port}: i/o timeout"))?
}

async fn netexec(args: &[String]) -> Result<()> {
    let port: u16 = flag(args, "http-port")
        .unwrap_or_else(|| "8080".into())
        .parse()
        .context("--http-port")?;
    let listener = serve::bind(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 0], port)))
        .await
        .or(serve::bind(SocketAddr::from(([0, 0, 0, 0], port))).await)?;
    eprintln!("Started HTTP server on port {port}");
    serve::serve_plain(listener, |req, peer| async move {
        let q = query(req.uri());
        let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match req.uri().path() {
            "/" => serve::text(
                StatusCode::OK,
                format!("NOW: {}", crate::common::time::now()),
            ),
            "/hostname" => serve::text(
                StatusCode::OK,
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            "/clientip" => {
                let ip = peer.addr.ip().to_canonical();
                serve::text(
                    StatusCode::OK,
                    SocketAddr::new(ip, peer.addr.port()).to_string(),
                )
            }
            "/healthz" => serve::text(StatusCode::OK, "ok"),
            "/echo" => serve::text(StatusCode::OK, param("msg").unwrap_or_default()),
            "/exit" => {
                let code: i32 = param("code").and_then(|c| c.parse().ok()).unwrap_or(0);
                std::process::exit(code)
            }
            "/dial" => {
                let host = param("host").unwrap_or_default();
                let port: u16 = param("port").and_then(|p| p.parse().ok()).unwrap_or(8080);
                let request = param("request").unwrap_or_else(|| "hostname".into());
                let tries: u32 = param("tries").and_then(|t| t.parse().ok()).unwrap_or(1);
                let path = format!("/{}", request.trim_start_matches('/'));
                let (mut responses, mut errors) = (Vec::new(), Vec::new());
                for _ in 0..tries.max(1) {
                    match get(&host, port, &path, Duration::from_secs(3)).await {
                        Ok(body) => responses.push(body),
                        Err(e) => errors.push(format!("{e:#}")),
                    }
                }
                let body = if responses.is_empty() {
                    json!({"errors": errors})
                } else {
                    json!({"responses": responses})
                };
                serve::json(StatusCode::OK, &body)
            }
            _ => serve::text(StatusCode::NOT_FOUND, "404 page not found"),
        }
    })
    .await;
    Ok(())
}

async fn run(args: Vec<String>) -> Result<()> {
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| anyhow!("usage: agnhost netexec|pause|connect"))?;
    match command.as_str() {
        "netexec" => netexec(rest).await,
        "pause" => {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            eprintln!("Paused");
            term.recv().await;
            eprintln!("Shutting down after receiving signal: terminated.");
            Ok(())
        }
        "connect" => {
            let target = rest
                .iter()
                .find(|a| !a.starts_with("--"))
                .ok_or_else(|| anyhow!("usage: agnhost connect <host:port>"))?;
            let timeout = flag(rest, "timeout")
                .and_then(|t| t.trim_end_matches('s').parse().ok())
                .unwrap_or(5);
            tokio::time::timeout(
                Duration::from_secs(timeout),
                tokio::net::TcpStream::connect(target.as_str()),
            )
            .await
            .map_err(|_| anyhow!("TIMEOUT"))?
            .map_err(|e| anyhow!("REFUSED: {e}"))?;
            Ok(())
        }
        other => {
            bail!("unknown command {other:?} (the testbed's agnhost has netexec, pause, connect)")
        }
    }
}
