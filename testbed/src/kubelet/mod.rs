//! The kubelet double: reads its command line, config file and kubeconfigs as the kubelet does,
//! serves /healthz on the healthz port, TLS-bootstraps its client certificate, runs the static pods
//! of staticPodPath through the node's CRI runtime, registers its Node and posts mirror pods.

pub mod bootstrap;
pub mod config;
pub mod cri;
pub mod flags;
pub mod node;
pub mod pods;
pub mod probes;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::StatusCode;
use serde_json::json;

use crate::common::serve;
use crate::common::tls;
use crate::logf;

const COMPONENT: &str = "kubelet";

/// The version this kubelet reports (`kubelet --version`); nodes set it to stand for an installed kubelet.
pub fn version() -> String {
    std::env::var("TESTBED_KUBELET_VERSION")
        .unwrap_or_else(|_| crate::DEFAULT_KUBERNETES_VERSION.to_string())
}

pub fn minor(version: &str) -> u32 {
    version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(34)
}

pub fn main(args: &[String]) -> i32 {
    crate::run_component(COMPONENT, args, run)
}

fn node_name(flags: &flags::KubeletFlags) -> String {
    flags
        .hostname_override
        .clone()
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
        })
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase()
}

/// --node-ip, else the address the node's hostname resolves to in /etc/hosts, else the address
/// of the interface with the default route.
fn node_ip(flags: &flags::KubeletFlags, name: &str) -> String {
    if let Some(ip) = &flags.node_ip {
        return ip.split(',').next().unwrap_or(ip).to_string();
    }
    let from_hosts = std::fs::read_to_string("/etc/hosts")
        .ok()
        .and_then(|hosts| {
            hosts.lines().find_map(|line| {
                let mut parts = line.split_whitespace();
                let ip: IpAddr = parts.next()?.parse().ok()?;
                (!ip.is_loopback() && parts.any(|h| h == name)).then(|| ip.to_string())
            })
        });
    from_hosts
        .or_else(|| {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.connect("192.0.2.1:9").ok()?;
            socket.local_addr().ok().map(|a| a.ip().to_string())
        })
        .unwrap_or_else(|| "127.0.0.1".into())
}

async fn run(args: Vec<String>) -> Result<()> {
    let version = version();
    let minor = minor(&version);
    let parsed = flags::flag_table(minor).parse(&args)?;
    if parsed.has("version") {
        println!("Kubernetes {version}");
        return Ok(());
    }
    let kflags = flags::kubelet_flags(parsed)?;
    let cgroup_v1 = !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let config = config::load(kflags.config.as_deref(), &kflags, minor, cgroup_v1)?;
    let name = node_name(&kflags);
    let ip = node_ip(&kflags, &name);
    logf!(
        COMPONENT,
        "Starting kubelet {version} for node {name} ({ip})"
    );

    if config.healthz_port != 0 {
        let listener =
            serve::bind(SocketAddr::new(config.healthz_address, config.healthz_port)).await?;
        tokio::spawn(serve::serve_plain(listener, |req, _peer| async move {
            match req.uri().path() {
                "/healthz" => serve::text(StatusCode::OK, "ok"),
                _ => serve::text(StatusCode::NOT_FOUND, "404 page not found"),
            }
        }));
    }

    let runtime = pods::Runtime {
        node_name: name.clone(),
        node_ip: ip.clone(),
        manifest_dir: config.static_pod_path.clone(),
        pods: Arc::new(Mutex::new(Default::default())),
        cri: cri::Cri::new(&config.container_runtime_endpoint)?,
    };

    let client = bootstrap::client(&kflags, &name, config.rotate_certificates).await?;
    tokio::spawn(runtime.clone().run(Duration::from_millis(500)));
    if let Some(client) = client {
        let agent = node::NodeAgent {
            client,
            config: config.clone(),
            flags: kflags.clone(),
            runtime: runtime.clone(),
            version: version.clone(),
        };
        tokio::spawn(agent.run());
    }

    let (cert, key) = bootstrap::serving_cert(
        config.tls_cert_file.as_deref(),
        config.tls_key_file.as_deref(),
        &kflags.cert_dir,
        &[name.clone(), ip.clone()],
    )?;
    let client_cas = match &config.client_ca_file {
        Some(p) => Some(
            tls::read_certs(p)
                .with_context(|| format!("unable to load client CA file {}", p.display()))?,
        ),
        None => None,
    };
    let tls_config = tls::server_config(
        tls::certs_from_pem(cert.as_bytes())?,
        tls::key_from_pem(key.as_bytes())?,
        client_cas.as_deref(),
    )?;
    let listener = serve::bind(SocketAddr::new(config.address, config.port)).await?;
    let anonymous = config.anonymous_auth;
    serve::serve_tls(listener, tls_config, move |req, peer| {
        let runtime = runtime.clone();
        async move {
            if peer.certs.is_empty() && !anonymous {
                return serve::text(StatusCode::UNAUTHORIZED, "Unauthorized");
            }
            match req.uri().path() {
                "/healthz" => serve::text(StatusCode::OK, "ok"),
                "/pods" => {
                    let items: Vec<serde_json::Value> = runtime
                        .pods
                        .lock()
                        .map(|pods| {
                            pods.values()
                                .map(|p| {
                                    let mut pod = p.manifest.clone();
                                    pod["status"] = pods::pod_status(p, &runtime.node_ip);
                                    pod
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    serve::json(StatusCode::OK, &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}))
                }
                _ => serve::text(StatusCode::NOT_FOUND, "404 page not found"),
            }
        }
    })
    .await;
    Ok(())
}
