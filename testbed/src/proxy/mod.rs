//! The kube-proxy double (iptables mode): reads its KubeProxyConfiguration, watches Services and
//! EndpointSlices with its kubeconfig's identity, and programs kube-proxy's real iptables chains in
//! the network namespace it runs in (a node's: the DaemonSet pod is host-network) with
//! `iptables-restore --noflush`, so Service traffic really routes. Serves /healthz on
//! healthzBindAddress and /metrics, /proxyMode on metricsBindAddress.

pub mod config;
pub mod rules;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hyper::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::client::ApiClient;
use crate::common::flags::{COMMON_BOOL_FLAGS, COMMON_VALUE_FLAGS, FlagTable, leak_concat};
use crate::common::{kubeconfig, serve};
use crate::controller_manager::informer::Informer;
use crate::logf;
use config::{DetectLocal, ProxyConfig};
use rules::{Family, Options};

const COMPONENT: &str = "kube-proxy";

const VALUE_FLAGS: &[&str] = &[
    "bind-address",
    "cluster-cidr",
    "config",
    "config-sync-period",
    "conntrack-max-per-core",
    "conntrack-min",
    "conntrack-tcp-timeout-close-wait",
    "conntrack-tcp-timeout-established",
    "conntrack-udp-timeout",
    "conntrack-udp-timeout-stream",
    "detect-local-mode",
    "feature-gates",
    "healthz-bind-address",
    "hostname-override",
    "iptables-masquerade-bit",
    "iptables-min-sync-period",
    "iptables-sync-period",
    "ipvs-exclude-cidrs",
    "ipvs-min-sync-period",
    "ipvs-scheduler",
    "ipvs-sync-period",
    "ipvs-tcp-timeout",
    "ipvs-tcpfin-timeout",
    "ipvs-udp-timeout",
    "kube-api-burst",
    "kube-api-content-type",
    "kube-api-qps",
    "kubeconfig",
    "master",
    "metrics-bind-address",
    "nodeport-addresses",
    "oom-score-adj",
    "pod-bridge-interface",
    "pod-interface-name-prefix",
    "proxy-mode",
    "show-hidden-metrics-for-version",
    "write-config-to",
];

const BOOL_FLAGS: &[&str] = &[
    "bind-address-hard-fail",
    "cleanup",
    "conntrack-tcp-be-liberal",
    "init-only",
    "iptables-localhost-nodeports",
    "masquerade-all",
    "profiling",
];

pub fn flag_table() -> FlagTable {
    FlagTable {
        component: "\"kube-proxy\"",
        value_flags: leak_concat(VALUE_FLAGS, COMMON_VALUE_FLAGS),
        bool_flags: leak_concat(BOOL_FLAGS, COMMON_BOOL_FLAGS),
        shorthands: &[('v', "v"), ('h', "help")],
    }
}

pub fn main(args: &[String]) -> i32 {
    crate::run_component(COMPONENT, args, run)
}

/// Without `--config`, the flags make the configuration (as kube-proxy's defaults + flags).
fn config_from_flags(flags: &crate::common::flags::Flags) -> Result<String> {
    let mut cfg = json!({"apiVersion": config::API_VERSION, "kind": config::KIND});
    let set = |cfg: &mut Value, path: &[&str], v: Value| {
        let mut at = cfg;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = v;
    };
    for (flag, path) in [
        ("proxy-mode", &["mode"][..]),
        ("cluster-cidr", &["clusterCIDR"]),
        ("kubeconfig", &["clientConnection", "kubeconfig"]),
        ("bind-address", &["bindAddress"]),
        ("healthz-bind-address", &["healthzBindAddress"]),
        ("metrics-bind-address", &["metricsBindAddress"]),
        ("iptables-sync-period", &["iptables", "syncPeriod"]),
        ("iptables-min-sync-period", &["iptables", "minSyncPeriod"]),
        ("detect-local-mode", &["detectLocalMode"]),
        ("pod-bridge-interface", &["detectLocal", "bridgeInterface"]),
        (
            "pod-interface-name-prefix",
            &["detectLocal", "interfaceNamePrefix"],
        ),
    ] {
        if let Some(v) = flags.get(flag) {
            set(&mut cfg, path, json!(v));
        }
    }
    if flags.has("masquerade-all") {
        set(
            &mut cfg,
            &["iptables", "masqueradeAll"],
            json!(flags.bool("masquerade-all", false)?),
        );
    }
    if flags.has("iptables-localhost-nodeports") {
        set(
            &mut cfg,
            &["iptables", "localhostNodePorts"],
            json!(flags.bool("iptables-localhost-nodeports", true)?),
        );
    }
    if flags.has("iptables-masquerade-bit") {
        set(
            &mut cfg,
            &["iptables", "masqueradeBit"],
            json!(flags.int("iptables-masquerade-bit", 14)?),
        );
    }
    if flags.has("nodeport-addresses") {
        set(
            &mut cfg,
            &["nodePortAddresses"],
            json!(flags.list("nodeport-addresses")),
        );
    }
    Ok(cfg.to_string())
}

async fn run(args: Vec<String>) -> Result<()> {
    let flags = flag_table().parse(&args)?;
    let (mut cfg, warnings) = match flags.non_empty("config") {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read config file {path:?}"))?;
            config::parse(&text).map_err(|e| anyhow!("failed to load config: {e}"))?
        }
        None => config::parse(&config_from_flags(&flags)?)
            .map_err(|e| anyhow!("failed validate: {e}"))?,
    };
    for w in warnings {
        logf!(
            COMPONENT,
            "Using lenient decoding as strict decoding failed: {w}"
        );
    }
    if let Some(h) = flags.get("hostname-override") {
        cfg.hostname_override = config::hostname_override(h)?;
    }
    let hostname = if cfg.hostname_override.is_empty() {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().to_lowercase())
            .context("get hostname")?
    } else {
        cfg.hostname_override.clone()
    };
    if flags.bool("cleanup", false)? {
        for family in [Family::V4, Family::V6] {
            cleanup(family).await;
        }
        return Ok(());
    }
    if cfg.kubeconfig.is_empty() {
        bail!(
            "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"
        );
    }
    let client = ApiClient::new(&kubeconfig::load(Path::new(&cfg.kubeconfig))?)?;
    logf!(COMPONENT, "Using iptables Proxier, node {hostname:?}");
    let last_sync = Arc::new(AtomicI64::new(0));
    serve_endpoints(&cfg, last_sync.clone()).await?;
    crate::controller_manager::wait_for_api(&client, COMPONENT).await;
    let node_cidrs = match cfg.detect_local {
        DetectLocal::NodeCidr => wait_for_pod_cidrs(&client, &hostname).await,
        _ => Vec::new(),
    };
    if cfg.localhost_node_ports {
        // Node ports on 127.0.0.1 need the kernel to route loopback-sourced DNATed traffic.
        if let Err(e) = std::fs::write("/proc/sys/net/ipv4/conf/all/route_localnet", "1") {
            logf!(
                COMPONENT,
                "Failed to set sysctl net/ipv4/conf/all/route_localnet: {e}"
            );
        }
    }
    let services = Informer::start_for(COMPONENT, client.clone(), "/api/v1/services");
    let slices = Informer::start_for(
        COMPONENT,
        client.clone(),
        "/apis/discovery.k8s.io/v1/endpointslices",
    );
    let mut changed_services = services.subscribe();
    let mut changed_slices = slices.subscribe();
    while !(services.synced() && slices.synced()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut v6_ok = true;
    let mut last = Instant::now() - cfg.min_sync_period;
    loop {
        let wait = cfg.min_sync_period.saturating_sub(last.elapsed());
        tokio::time::sleep(wait).await;
        last = Instant::now();
        let svc: Vec<Value> = services.list().iter().map(|v| (**v).clone()).collect();
        let eps: Vec<Value> = slices.list().iter().map(|v| (**v).clone()).collect();
        let mut ok = true;
        for family in [Family::V4, Family::V6] {
            if family == Family::V6 && !v6_ok {
                continue;
            }
            let options = options_for(&cfg, family, &node_cidrs);
            let ports = rules::service_ports(&svc, &eps, family);
            if let Err(e) = sync(&options, &ports).await {
                if family == Family::V6 {
                    logf!(
                        COMPONENT,
                        "IPv6 is not supported on this node, running single-stack: {e:#}"
                    );
                    v6_ok = false;
                } else {
                    logf!(COMPONENT, "Failed to execute iptables-restore: {e:#}");
                    ok = false;
                }
            }
        }
        if ok {
            last_sync.store(crate::common::time::unix_now(), Ordering::SeqCst);
        }
        tokio::select! {
            _ = changed_services.changed() => {}
            _ = changed_slices.changed() => {}
            _ = tokio::time::sleep(cfg.sync_period) => {}
        }
    }
}

async fn wait_for_pod_cidrs(client: &ApiClient, node: &str) -> Vec<ipnet::IpNet> {
    loop {
        if let Ok(n) = client.get(&format!("/api/v1/nodes/{node}")).await {
            let cidrs: Vec<ipnet::IpNet> = n["spec"]["podCIDRs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str()?.parse().ok())
                .collect();
            if !cidrs.is_empty() {
                return cidrs;
            }
        }
        logf!(
            COMPONENT,
            "Waiting for node {node:?} to have podCIDRs (detectLocalMode NodeCIDR)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn options_for(cfg: &ProxyConfig, family: Family, node_cidrs: &[ipnet::IpNet]) -> Options {
    let mine = |nets: &[ipnet::IpNet]| -> Vec<ipnet::IpNet> {
        nets.iter()
            .filter(|n| matches!(n, ipnet::IpNet::V4(_)) == (family == Family::V4))
            .copied()
            .collect()
    };
    let not_local = match &cfg.detect_local {
        DetectLocal::None => vec![],
        DetectLocal::ClusterCidr(c) => mine(c)
            .first()
            .map(|n| vec!["!".into(), "-s".into(), n.to_string()])
            .unwrap_or_default(),
        DetectLocal::NodeCidr => mine(node_cidrs)
            .first()
            .map(|n| vec!["!".into(), "-s".into(), n.to_string()])
            .unwrap_or_default(),
        DetectLocal::BridgeInterface(b) => vec!["!".into(), "-i".into(), b.clone()],
        DetectLocal::InterfaceNamePrefix(p) => vec!["!".into(), "-i".into(), format!("{p}+")],
    };
    Options {
        family,
        mark: cfg.masquerade_mark(),
        masquerade_all: cfg.masquerade_all,
        not_local,
        node_port_addresses: mine(&cfg.node_port_addresses),
        localhost_node_ports: cfg.localhost_node_ports,
    }
}

/// The nf_tables backend by its own name: the kube-proxy image's iptables wrapper picks it on a host
/// whose rules are in nf_tables (the nodes' default), and a container has no /etc/alternatives.
fn tool(family: Family, what: &str) -> String {
    match family {
        Family::V4 => format!("iptables-nft{what}"),
        Family::V6 => format!("ip6tables-nft{what}"),
    }
}

async fn iptables(family: Family, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new(tool(family, ""))
        .args(["-w", "5"])
        .args(args)
        .output()
        .await
        .with_context(|| format!("run {}", tool(family, "")))?;
    if !out.status.success() {
        bail!(
            "{} {}: {}",
            tool(family, ""),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One sync: the chains and jumps exist, then the whole ruleset in one restore.
async fn sync(options: &Options, ports: &[rules::ServicePort]) -> Result<()> {
    let family = options.family;
    for table in ["mangle", "nat", "filter"] {
        for chain in rules::base_chains(table, options) {
            if iptables(family, &["-t", table, "-S", chain]).await.is_err() {
                iptables(family, &["-t", table, "-N", chain]).await?;
            }
        }
    }
    for (table, chain, rule) in rules::jumps(options) {
        let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
        let mut check = vec!["-t", table, "-C", chain];
        check.extend(&rule);
        if iptables(family, &check).await.is_err() {
            let mut insert = vec!["-t", table, "-I", chain];
            insert.extend(&rule);
            iptables(family, &insert).await?;
        }
    }
    let save = tokio::process::Command::new(tool(family, "-save"))
        .args(["-t", "nat"])
        .output()
        .await
        .with_context(|| format!("run {}", tool(family, "-save")))?;
    let existing: BTreeSet<String> = rules::service_chains(&String::from_utf8_lossy(&save.stdout));
    let ruleset = rules::render(ports, options, &existing);
    restore(family, &ruleset.restore).await
}

async fn restore(family: Family, input: &str) -> Result<()> {
    let mut child = tokio::process::Command::new(tool(family, "-restore"))
        .args(["-w", "5", "--noflush", "--counters"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", tool(family, "-restore")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "{}: {}\ninput:\n{input}",
            tool(family, "-restore"),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `kube-proxy --cleanup`: the jumps, then every chain this proxier makes.
async fn cleanup(family: Family) {
    let options = Options {
        family,
        mark: String::new(),
        masquerade_all: false,
        not_local: vec![],
        node_port_addresses: vec![],
        localhost_node_ports: true,
    };
    for (table, chain, rule) in rules::jumps(&options) {
        let mut args = vec!["-t", table, "-D", chain];
        args.extend(rule.iter().map(String::as_str));
        let _ = iptables(family, &args).await;
    }
    let save = iptables_save(family, "nat").await;
    let mut nat: Vec<String> = rules::service_chains(&save).into_iter().collect();
    nat.extend(
        rules::base_chains("nat", &options)
            .iter()
            .map(|c| c.to_string()),
    );
    for (table, chains) in [
        ("nat", nat),
        (
            "filter",
            rules::base_chains("filter", &options)
                .iter()
                .map(|c| c.to_string())
                .collect(),
        ),
        (
            "mangle",
            rules::base_chains("mangle", &options)
                .iter()
                .map(|c| c.to_string())
                .collect(),
        ),
    ] {
        for chain in &chains {
            let _ = iptables(family, &["-t", table, "-F", chain]).await;
        }
        for chain in &chains {
            let _ = iptables(family, &["-t", table, "-X", chain]).await;
        }
    }
}

async fn iptables_save(family: Family, table: &str) -> String {
    tokio::process::Command::new(tool(family, "-save"))
        .args(["-t", table])
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// healthz (`/healthz`, `/livez`: 503 until the first sync, then the last sync time) and the
/// metrics port (`/metrics`, `/proxyMode`).
async fn serve_endpoints(cfg: &ProxyConfig, last_sync: Arc<AtomicI64>) -> Result<()> {
    if let Some(healthz) = &cfg.healthz_bind {
        let addr: SocketAddr = healthz
            .parse()
            .with_context(|| format!("healthzBindAddress {healthz:?}"))?;
        let listener = serve::bind(addr).await?;
        let last = last_sync.clone();
        tokio::spawn(serve::serve_plain(listener, move |req, _| {
            let last = last.clone();
            async move {
                let synced = last.load(Ordering::SeqCst);
                match req.uri().path() {
                    "/healthz" | "/livez" => {
                        let body = json!({
                            "lastUpdated": if synced > 0 { time_of(synced) } else { String::new() },
                            "currentTime": crate::common::time::now(),
                            "nodeEligible": true,
                        });
                        let status = if synced > 0 {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        serve::json(status, &body)
                    }
                    _ => serve::text(StatusCode::NOT_FOUND, "404 page not found\n"),
                }
            }
        }));
    }
    let addr: SocketAddr = cfg
        .metrics_bind
        .parse()
        .with_context(|| format!("metricsBindAddress {:?}", cfg.metrics_bind))?;
    let listener = serve::bind(addr).await?;
    tokio::spawn(serve::serve_plain(listener, move |req, _| {
        let last = last_sync.clone();
        async move {
            match req.uri().path() {
                "/proxyMode" => serve::text(StatusCode::OK, "iptables"),
                "/healthz" => serve::text(StatusCode::OK, "ok"),
                "/metrics" => serve::text(
                    StatusCode::OK,
                    format!(
                        "# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\nkubeproxy_sync_proxy_rules_last_timestamp_seconds {}\n",
                        last.load(Ordering::SeqCst)
                    ),
                ),
                _ => serve::text(StatusCode::NOT_FOUND, "404 page not found\n"),
            }
        }
    }));
    Ok(())
}

fn time_of(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(crate::common::time::format_seconds)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_make_a_configuration_without_config() {
        let flags = flag_table()
            .parse(&args(&[
                "--kubeconfig=/k",
                "--cluster-cidr=10.244.0.0/16",
                "--masquerade-all",
                "--proxy-mode=iptables",
            ]))
            .unwrap();
        let (cfg, _) = config::parse(&config_from_flags(&flags).unwrap()).unwrap();
        assert!(cfg.masquerade_all);
        assert_eq!(cfg.kubeconfig, "/k");
        let flags = flag_table().parse(&args(&["--proxy-mode=ipvs"])).unwrap();
        assert!(matches!(
            config::parse(&config_from_flags(&flags).unwrap()),
            Err(config::ConfigError::NotImplemented(_))
        ));
        assert!(flag_table().parse(&args(&["--no-such-flag"])).is_err());
    }

    #[test]
    fn detect_local_becomes_the_not_local_match() {
        let (cfg, _) = config::parse(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16,fd00:10:244::/56\n",
        )
        .unwrap();
        assert_eq!(
            options_for(&cfg, Family::V4, &[]).not_local,
            vec!["!", "-s", "10.244.0.0/16"]
        );
        assert_eq!(
            options_for(&cfg, Family::V6, &[]).not_local,
            vec!["!", "-s", "fd00:10:244::/56"]
        );
        let (cfg, _) = config::parse(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\ndetectLocalMode: NodeCIDR\n",
        )
        .unwrap();
        let node = vec!["10.244.1.0/24".parse().unwrap()];
        assert_eq!(
            options_for(&cfg, Family::V4, &node).not_local,
            vec!["!", "-s", "10.244.1.0/24"]
        );
    }
}
