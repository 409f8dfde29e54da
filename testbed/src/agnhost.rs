//! The test image's program (`agnhost` 2.53, as Kubernetes' e2e image names it): `netexec` serves HTTP
//! on `--http-port` (`/hostname`, `/clientip` — the address the connection came from —, `/healthz`,
//! `/echo?msg=`, `/exit?code=` and `/dial?host=&port=&request=&protocol=http|udp&tries=`, which asks
//! another netexec — by address or by name, through the pod's resolver — `tries` times from inside
//! this pod's network and reports what answered as `{"responses": [...]}` and what failed as
//! `{"errors": [...]}`, as the e2e networking tests use it) and UDP on `--udp-port` (`hostname`,
//! `echo <msg>`, `clientip`); `pause` sleeps until it is stopped and `connect <host:port>` tries one
//! TCP connection. Unknown flags are refused.

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
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// netexec's flags (agnhost 2.53); bool flags take no value.
const NETEXEC_FLAGS: &[&str] = &[
    "http-port",
    "udp-port",
    "sctp-port",
    "http-override",
    "delay-shutdown",
    "certfile",
    "privkeyfile",
    "udp-listen-addresses",
];

fn check_flags(args: &[String], known: &[&str]) -> Result<()> {
    let mut iter = args.iter();
    while let Some(a) = iter.next() {
        let Some(name) = a.strip_prefix("--") else {
            bail!("unexpected argument {a:?}");
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, _)) => (n, true),
            None => (name, false),
        };
        if !known.contains(&name) {
            bail!("unknown flag: --{name}");
        }
        if !inline {
            iter.next();
        }
    }
    Ok(())
}

/// One UDP request/answer exchange, as netexec's dialUDP.
async fn get_udp(host: &str, port: u16, request: &str, timeout: Duration) -> Result<String> {
    let work = async {
        let target = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolve {host}"))?
            .next()
            .ok_or_else(|| anyhow!("no address for {host}"))?;
        let bind: SocketAddr = if target.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let socket = tokio::net::UdpSocket::bind(bind).await?;
        socket.send_to(request.as_bytes(), target).await?;
        let mut buf = vec![0u8; 2048];
        let n = socket.recv(&mut buf).await?;
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        anyhow!("reading from udp connection failed. err:'read udp {host}:{port}: i/o timeout'")
    })?
}

/// netexec's UDP server: `hostname`, `echo <msg>`, `clientip`.
async fn serve_udp(port: u16) -> Result<()> {
    let socket = tokio::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .with_context(|| format!("listen udp :{port}"))?;
    eprintln!("Started UDP server on port {port}");
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        let request = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        let answer = match request.split_once(' ').unwrap_or((request.as_str(), "")) {
            ("hostname", _) => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            ("echo", msg) => msg.to_string(),
            ("clientip", _) => from.to_string(),
            _ => "unknown command".to_string(),
        };
        let _ = socket.send_to(answer.as_bytes(), from).await;
    }
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
    check_flags(args, NETEXEC_FLAGS)?;
    for unsupported in ["sctp-port", "certfile", "privkeyfile", "http-override"] {
        if flag(args, unsupported).is_some() {
            bail!("--{unsupported} is not implemented by the testbed's agnhost");
        }
    }
    let port: u16 = flag(args, "http-port")
        .unwrap_or_else(|| "8080".into())
        .parse()
        .context("--http-port")?;
    let udp_port: u16 = flag(args, "udp-port")
        .unwrap_or_else(|| "8081".into())
        .parse()
        .context("--udp-port")?;
    if udp_port != 0 {
        tokio::spawn(async move {
            if let Err(e) = serve_udp(udp_port).await {
                eprintln!("UDP server: {e:#}");
            }
        });
    }
    // Both families where the pod has IPv6, IPv4 only where it has not.
    let listener = match serve::bind(SocketAddr::from(([0u16; 8], port))).await {
        Ok(l) => l,
        Err(_) => serve::bind(SocketAddr::from(([0, 0, 0, 0], port))).await?,
    };
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
                let protocol = param("protocol").unwrap_or_else(|| "http".into());
                if host.is_empty() {
                    return serve::text(StatusCode::BAD_REQUEST, "no host specified");
                }
                let path = format!("/{}", request.trim_start_matches('/'));
                let (mut responses, mut errors) = (Vec::new(), Vec::new());
                for _ in 0..tries.max(1) {
                    let answer = match protocol.as_str() {
                        "http" => get(&host, port, &path, Duration::from_secs(3)).await,
                        "udp" => get_udp(&host, port, &request, Duration::from_secs(3)).await,
                        other => {
                            return serve::text(
                                StatusCode::BAD_REQUEST,
                                format!("unsupported protocol. {other}"),
                            );
                        }
                    };
                    match answer {
                        Ok(body) => responses.push(body),
                        Err(e) => errors.push(format!("error trying: {e:#}")),
                    }
                }
                // Only the keys with entries, as agnhost's map of lists marshals.
                let mut body = json!({});
                if !responses.is_empty() {
                    body["responses"] = json!(responses);
                }
                if !errors.is_empty() {
                    body["errors"] = json!(errors);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_url_decoded_and_flags_checked() {
        let uri: hyper::Uri =
            "/dial?host=web.default.svc.cluster.local&request=echo%3Fmsg%3Dhi%20there&port=80"
                .parse()
                .unwrap();
        let q = query(&uri);
        assert!(q.contains(&("request".into(), "echo?msg=hi there".into())));
        assert!(q.contains(&("host".into(), "web.default.svc.cluster.local".into())));
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            check_flags(
                &args(&["--http-port=8080", "--udp-port", "8081"]),
                NETEXEC_FLAGS
            )
            .is_ok()
        );
        assert_eq!(
            check_flags(&args(&["--http-prot=8080"]), NETEXEC_FLAGS)
                .unwrap_err()
                .to_string(),
            "unknown flag: --http-prot"
        );
    }

    #[tokio::test]
    async fn udp_requests_are_answered() {
        let port = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        tokio::spawn(serve_udp(port));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let echo = get_udp("127.0.0.1", port, "echo hello", Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(echo, "hello");
        let client = get_udp("localhost", port, "clientip", Duration::from_secs(2))
            .await
            .unwrap();
        assert!(client.starts_with("127.0.0.1:"), "{client}");
    }
}
