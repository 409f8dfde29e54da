//! The real kubectl uses every kubeconfig `init phase kubeconfig` writes, against a mutual-TLS server in this test.
//!
//! The server serves the generated API server certificate and requires a client certificate signed
//! by the cluster CA (rustls `WebPkiClientVerifier`, aws-lc provider); kubectl must verify the
//! server by its SAN (127.0.0.1) and present the kubeconfig's client certificate. The server
//! records each client certificate's CN and O.

mod pki_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubestrap::pki::inspect::CertInfo;
use pki_support::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const KUBECTL: &str = "/usr/bin/kubectl";
const VERSION_JSON: &str = r#"{"major":"1","minor":"33","emulationMajor":"1","emulationMinor":"33","minCompatibilityMajor":"1","minCompatibilityMinor":"32","gitVersion":"v1.33.0","gitCommit":"0000000000000000000000000000000000000000","gitTreeState":"clean","buildDate":"2025-04-23T00:00:00Z","goVersion":"go1.24.2","compiler":"gc","platform":"linux/amd64"}"#;

type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// A bounded mutual-TLS server on 127.0.0.1 that answers every request with VERSION_JSON.
struct Server {
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(
        listener: TcpListener,
        cert_pem: &std::path::Path,
        key_pem: &std::path::Path,
        ca_pem: &std::path::Path,
    ) -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(ca_pem).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(key_pem).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let seen: Seen = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || serve(listener, config, seen, stop))
        };
        Server {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn take_seen(&self) -> Vec<(String, Vec<String>)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves at most 200 connections and for at most two minutes.
fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    seen: Seen,
    stop: Arc<AtomicBool>,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut served = 0;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && served < 200 {
        let tcp = match listener.accept() {
            Ok((tcp, _)) => tcp,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => break,
        };
        served += 1;
        let _ = tcp.set_nonblocking(false);
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
            continue;
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // Handshake failures (no or untrusted client certificate) just drop the connection.
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        if !request.windows(4).any(|w| w == b"\r\n\r\n") {
            continue;
        }
        if let Some(cert) = tls.conn.peer_certificates().and_then(|c| c.first()) {
            let info = CertInfo::from_der(cert.as_ref()).unwrap();
            seen.lock()
                .unwrap()
                .push((info.common_name, info.organizations));
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{VERSION_JSON}",
            VERSION_JSON.len()
        );
        let _ = tls.write_all(response.as_bytes());
        let _ = tls.flush();
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
}

fn kubectl(kubeconfig: &std::path::Path, home: &std::path::Path) -> std::process::Output {
    assert!(
        std::path::Path::new(KUBECTL).exists(),
        "{KUBECTL} (the Google Cloud SDK kubectl dispatcher of the machine image) is required by this test"
    );
    std::process::Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--request-timeout=20s", "get", "--raw", "/version"])
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

#[test]
fn kubectl_uses_every_kubeconfig_with_mutual_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let node = Node::new();
    let flags = [
        "--node-name",
        "pki-kubectl",
        "--apiserver-advertise-address",
        "127.0.0.1",
        "--apiserver-bind-port",
        &port,
    ];
    node.ok(&args(&["init", "phase", "certs", "all"], &flags));
    node.ok(&args(&["init", "phase", "kubeconfig", "all"], &flags));
    let server = Server::start(
        listener,
        &node.pki("apiserver.crt"),
        &node.pki("apiserver.key"),
        &node.pki("ca.crt"),
    );
    let home = tempfile::tempdir().unwrap();

    let expected: [(&str, &str, &[&str]); 5] = [
        (
            "admin.conf",
            "kubernetes-admin",
            &["kubeadm:cluster-admins"],
        ),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            &["system:masters"],
        ),
        ("kubelet.conf", "system:node:pki-kubectl", &["system:nodes"]),
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            &[],
        ),
        ("scheduler.conf", "system:kube-scheduler", &[]),
    ];
    for (file, cn, orgs) in expected {
        let path = node.disk(&format!("/etc/kubernetes/{file}"));
        let out = kubectl(&path, home.path());
        assert!(
            out.status.success(),
            "kubectl with {file} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(body["gitVersion"], "v1.33.0");
        let seen = server.take_seen();
        assert!(
            !seen.is_empty(),
            "{file}: the server saw no client certificate"
        );
        for (seen_cn, seen_orgs) in seen {
            assert_eq!(seen_cn, cn, "{file}");
            assert_eq!(seen_orgs, orgs.to_vec(), "{file}");
        }
    }

    // Without a client certificate, or with one from another CA (front-proxy-ca), the handshake is refused.
    let admin = node.kubeconfig("admin.conf");
    let foreign_cert = std::fs::read(node.pki("front-proxy-client.crt")).unwrap();
    let foreign_key = std::fs::read(node.pki("front-proxy-client.key")).unwrap();
    for (name, credentials) in [
        ("anonymous", None),
        ("foreign", Some((foreign_cert, foreign_key))),
    ] {
        let mut config = admin.clone();
        let user = config.current_user_mut().unwrap();
        user.client_certificate_data = credentials
            .as_ref()
            .map(|c| kubestrap::kubeconfig::Base64Data(c.0.clone()));
        user.client_key_data = credentials.map(|c| kubestrap::kubeconfig::Base64Data(c.1));
        let path = home.path().join(format!("{name}.conf"));
        std::fs::write(&path, config.to_yaml().unwrap()).unwrap();
        let out = kubectl(&path, home.path());
        assert!(
            !out.status.success(),
            "{name}: the server must require a client certificate signed by the cluster CA"
        );
        assert!(server.take_seen().is_empty(), "{name}");
    }
}
