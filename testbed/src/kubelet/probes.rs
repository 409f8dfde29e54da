//! Container probes as the kubelet runs them: startup first, then liveness (failure restarts the
//! container) and readiness (the pod's Ready condition), with the manifest's timings, HTTP(S) GET
//! against the probe's host (the pod's IP by default) and named or numbered port, a TCP connect,
//! or a command run in the container through the runtime's ExecSync.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::pods::Runtime;
use crate::logf;

fn seconds(probe: &Value, field: &str, default: u64) -> Duration {
    Duration::from_secs(probe[field].as_u64().unwrap_or(default))
}

fn port_of(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(name) => container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_u64())
            .and_then(|p| u16::try_from(p).ok()),
        _ => None,
    }
}

async fn probe_once(
    rt: &Runtime,
    client: &reqwest::Client,
    container: &Value,
    probe: &Value,
    (default_host, container_id): &(String, String),
) -> bool {
    let timeout = seconds(probe, "timeoutSeconds", 1);
    if let Some(command) = probe["exec"]["command"].as_array() {
        let cmd: Vec<String> = command
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        return rt
            .cri
            .exec_sync(container_id, cmd, timeout)
            .await
            .is_ok_and(|(code, _)| code == 0);
    }
    if let Some(get) = probe["httpGet"].as_object() {
        let host = get
            .get("host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .unwrap_or(default_host);
        let Some(port) = get.get("port").and_then(|p| port_of(container, p)) else {
            return false;
        };
        let scheme = if get.get("scheme").and_then(Value::as_str) == Some("HTTPS") {
            "https"
        } else {
            "http"
        };
        let path = get.get("path").and_then(Value::as_str).unwrap_or("/");
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let mut request = client
            .get(format!("{scheme}://{host}:{port}{path}"))
            .timeout(timeout);
        for h in get
            .get("httpHeaders")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(n), Some(v)) = (h["name"].as_str(), h["value"].as_str()) {
                request = request.header(n, v);
            }
        }
        return request
            .send()
            .await
            .map(|r| (200..400).contains(&r.status().as_u16()))
            .unwrap_or(false);
    }
    if let Some(tcp) = probe["tcpSocket"].as_object() {
        let host = tcp
            .get("host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .unwrap_or(default_host);
        let Some(port) = tcp.get("port").and_then(|p| port_of(container, p)) else {
            return false;
        };
        return tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false);
    }
    true
}

/// Probes one run of one container until that run ends.
pub async fn run(rt: Runtime, file: PathBuf, index: usize, generation: u64) {
    let Some(container) = rt.container_manifest(&file, index, generation) else {
        return;
    };
    let Ok(tls) =
        crate::common::tls::client_config(crate::common::tls::ServerTrust::Insecure, None)
    else {
        return;
    };
    let Ok(client) = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
    else {
        return;
    };
    let name = container["name"].as_str().unwrap_or_default().to_string();
    let Some(host) = rt.probe_target(&file, index, generation) else {
        return;
    };
    let startup = &container["startupProbe"];
    if startup.is_object() {
        tokio::time::sleep(seconds(startup, "initialDelaySeconds", 0)).await;
        let threshold = startup["failureThreshold"].as_u64().unwrap_or(3);
        let mut failures = 0;
        loop {
            if rt.container_manifest(&file, index, generation).is_none() {
                return;
            }
            if probe_once(&rt, &client, &container, startup, &host).await {
                break;
            }
            failures += 1;
            if failures >= threshold {
                logf!(
                    "kubelet",
                    "Startup probe failed for container {name}; killing it"
                );
                rt.kill_container(&file, index, generation).await;
                return;
            }
            tokio::time::sleep(seconds(startup, "periodSeconds", 10)).await;
        }
    }
    if !rt.set_probe_state(&file, index, generation, Some(true), None) {
        return;
    }
    let readiness = container["readinessProbe"].clone();
    let liveness = container["livenessProbe"].clone();
    if !readiness.is_object() {
        rt.set_probe_state(&file, index, generation, None, Some(true));
    }
    let ready_task = {
        let (rt, file, client, container, host) = (
            rt.clone(),
            file.clone(),
            client.clone(),
            container.clone(),
            host.clone(),
        );
        async move {
            if !readiness.is_object() {
                return;
            }
            tokio::time::sleep(seconds(&readiness, "initialDelaySeconds", 0)).await;
            let (success, failure) = (
                readiness["successThreshold"].as_u64().unwrap_or(1),
                readiness["failureThreshold"].as_u64().unwrap_or(3),
            );
            let (mut ok, mut bad) = (0, 0);
            loop {
                if probe_once(&rt, &client, &container, &readiness, &host).await {
                    ok += 1;
                    bad = 0;
                } else {
                    bad += 1;
                    ok = 0;
                }
                let state = if ok >= success {
                    Some(true)
                } else if bad >= failure {
                    Some(false)
                } else {
                    None
                };
                if !rt.set_probe_state(&file, index, generation, None, state) {
                    return;
                }
                tokio::time::sleep(seconds(&readiness, "periodSeconds", 10)).await;
            }
        }
    };
    let live_task = async move {
        if !liveness.is_object() {
            return;
        }
        tokio::time::sleep(seconds(&liveness, "initialDelaySeconds", 0)).await;
        let threshold = liveness["failureThreshold"].as_u64().unwrap_or(3);
        let mut failures = 0;
        loop {
            if rt.container_manifest(&file, index, generation).is_none() {
                return;
            }
            if probe_once(&rt, &client, &container, &liveness, &host).await {
                failures = 0;
            } else {
                failures += 1;
                if failures >= threshold {
                    logf!(
                        "kubelet",
                        "Liveness probe failed for container {name}; killing it"
                    );
                    rt.kill_container(&file, index, generation).await;
                    return;
                }
            }
            tokio::time::sleep(seconds(&liveness, "periodSeconds", 10)).await;
        }
    };
    tokio::join!(ready_task, live_task);
}
