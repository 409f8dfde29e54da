//! The flannel double (`ghcr.io/flannel-io/flannel` image, `/opt/bin/flanneld`): the kube subnet
//! manager with the vxlan backend, as flanneld v0.27 runs in the kube-flannel DaemonSet — flags (and
//! `FLANNELD_*` variables) parsed as Go's flag package does, `net-conf.json` decoded as flannel does,
//! the node's podCIDR as its lease, the lease written into the Node's `flannel.alpha.coreos.com/*`
//! annotations (through `nodes/status`, as flanneld patches), `/run/flannel/subnet.env`, and the real
//! datapath in the node (module `datapath`), kept in step with the other Nodes' leases. A bad value
//! ends the process with flanneld's message and exit code.

pub mod cni;
pub mod datapath;
pub mod netconf;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use ipnet::Ipv4Net;
use serde_json::{Value, json};

use crate::common::client::{ApiClient, PatchType};
use crate::common::kubeconfig::{self, ClientConfig};
use crate::controller_manager::informer::Informer;
use crate::logf;
use datapath::{ExtIface, Peer};
use netconf::{NetConf, Vxlan};

pub const COMPONENT: &str = "flanneld";
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// flanneld's value flags (flannel's own, and the klog flags it copies).
const VALUE_FLAGS: &[&str] = &[
    "etcd-endpoints",
    "etcd-prefix",
    "etcd-keyfile",
    "etcd-certfile",
    "etcd-cafile",
    "etcd-username",
    "etcd-password",
    "iface",
    "iface-regex",
    "iface-can-reach",
    "subnet-file",
    "public-ip",
    "public-ipv6",
    "subnet-lease-renew-margin",
    "kube-api-url",
    "kube-annotation-prefix",
    "kubeconfig-file",
    "healthz-ip",
    "healthz-port",
    "iptables-resync",
    "net-config-path",
    "v",
    "vmodule",
    "log_backtrace_at",
];
const BOOL_FLAGS: &[&str] = &[
    "ip-masq",
    "kube-subnet-mgr",
    "version",
    "iptables-forward-rules",
    "set-node-network-unavailable",
    "use-multi-cluster-cidr",
    "persistent-mac",
];
const INT_FLAGS: &[&str] = &[
    "subnet-lease-renew-margin",
    "healthz-port",
    "iptables-resync",
    "v",
];

/// The command line as flanneld holds it after parsing (every occurrence, in order).
#[derive(Debug, Default, Clone)]
pub struct Options {
    values: BTreeMap<String, Vec<String>>,
}

impl Options {
    fn last(&self, name: &str) -> Option<&str> {
        self.values.get(name)?.last().map(String::as_str)
    }
    fn string(&self, name: &str, default: &str) -> String {
        self.last(name).unwrap_or(default).to_string()
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
    fn bool(&self, name: &str, default: bool) -> bool {
        self.last(name).map(|v| v == "true").unwrap_or(default)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.last(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

/// Go's strconv.ParseBool.
fn go_bool(value: &str) -> Option<&'static str> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some("true"),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some("false"),
        _ => None,
    }
}

/// Checks and records one value as Go's flag.Value.Set would.
fn set(options: &mut Options, name: &str, value: &str) -> Result<(), String> {
    let value = if BOOL_FLAGS.contains(&name) {
        go_bool(value)
            .ok_or_else(|| format!("invalid boolean value {value:?} for -{name}: parse error"))?
            .to_string()
    } else {
        if INT_FLAGS.contains(&name) && value.parse::<i64>().is_err() {
            return Err(format!(
                "invalid value {value:?} for flag -{name}: parse error"
            ));
        }
        value.to_string()
    };
    options
        .values
        .entry(name.to_string())
        .or_default()
        .push(value);
    Ok(())
}

/// Go's flag package: `-name`, `--name`, `-name=value`, `-name value` (bool flags take no separate
/// value); parsing stops at the first non-flag argument or `--`. The error is the line Go prints
/// before the usage.
pub fn parse_flags(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        if body.is_empty() {
            break;
        }
        if body.starts_with('-') || body.starts_with('=') {
            return Err(format!("bad flag syntax: {arg}"));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if !VALUE_FLAGS.contains(&name) && !BOOL_FLAGS.contains(&name) {
            return Err(format!("flag provided but not defined: -{name}"));
        }
        i += 1;
        match inline {
            Some(v) => set(&mut options, name, v)?,
            None if BOOL_FLAGS.contains(&name) => set(&mut options, name, "true")?,
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
                i += 1;
                set(&mut options, name, v)?;
            }
        }
    }
    Ok(options)
}

/// flagutil.SetFlagsFromEnv: every flag not given on the command line takes `FLANNELD_<NAME>`.
fn flags_from_env(options: &mut Options, env: &dyn Fn(&str) -> Option<String>) {
    for name in VALUE_FLAGS.iter().chain(BOOL_FLAGS) {
        if options.values.contains_key(*name) {
            continue;
        }
        let key = format!("FLANNELD_{}", name.to_uppercase().replace('-', "_"));
        if let Some(value) = env(&key).filter(|v| !v.is_empty())
            && let Err(e) = set(options, name, &value)
        {
            logf!(COMPONENT, "Failed to set flag FLANNELD from env {e}");
        }
    }
}

fn usage() -> String {
    let mut text = String::from("Usage: /opt/bin/flanneld [OPTION]...\n");
    for name in VALUE_FLAGS.iter().chain(BOOL_FLAGS) {
        text.push_str(&format!("  -{name}\n"));
    }
    text
}

/// The error that ends flanneld: its log line, exit status 1.
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Fatal {
        Fatal(e.to_string())
    }
}

/// Entry point of `/opt/bin/flanneld` (`tbnode flanneld`).
pub fn main(args: &[String]) -> i32 {
    let mut options = match parse_flags(args) {
        Ok(o) => o,
        Err(e) => {
            // flanneld's usage function exits 0 after Go's flag package printed the error.
            eprintln!("{e}");
            eprint!("{}", usage());
            return 0;
        }
    };
    if options.bool("version", false) {
        let image = std::env::var("TESTBED_IMAGE").unwrap_or_default();
        eprintln!("{}", image.rsplit(':').next().unwrap_or("v0.27.4"));
        return 0;
    }
    flags_from_env(&mut options, &|k| std::env::var(k).ok());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flanneld: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => 0,
        Err(Fatal(message)) => {
            logf!(COMPONENT, "{message}");
            1
        }
    }
}

/// In-cluster configuration (the pod's service account), or `--kubeconfig-file` / `--kube-api-url`.
fn client(options: &Options) -> Result<ApiClient, String> {
    let mut config = match options.last("kubeconfig-file").filter(|p| !p.is_empty()) {
        Some(path) => kubeconfig::load(Path::new(path)).map_err(|e| format!("{e:#}"))?,
        None => {
            let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
            let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
            if host.is_empty() || port.is_empty() {
                return Err("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined".into());
            }
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            ClientConfig {
                server: format!("https://{host}:{port}"),
                ca_pem: Some(
                    std::fs::read(format!("{SA_DIR}/ca.crt"))
                        .map_err(|e| format!("open {SA_DIR}/ca.crt: {e}"))?,
                ),
                insecure: false,
                tls_server_name: None,
                client_cert_pem: None,
                client_key_pem: None,
                token: Some(
                    std::fs::read_to_string(format!("{SA_DIR}/token"))
                        .map_err(|e| format!("open {SA_DIR}/token: {e}"))?
                        .trim()
                        .to_string(),
                ),
            }
        }
    };
    if let Some(url) = options.last("kube-api-url").filter(|u| !u.is_empty()) {
        config.server = url.to_string();
    }
    ApiClient::new(&config).map_err(|e| format!("unable to initialize client: {e:#}"))
}

/// The Node annotations flannel keeps its lease in.
struct Annotations {
    prefix: String,
}

impl Annotations {
    fn new(prefix: &str) -> Result<Annotations, String> {
        if prefix.matches('/').count() > 1 {
            return Err(format!(
                "subnet/kube: prefix can contain at most single slash, got {prefix:?}"
            ));
        }
        Ok(Annotations {
            prefix: prefix.to_string(),
        })
    }
    fn key(&self, name: &str) -> String {
        if self.prefix.contains('/') {
            format!("{}-{name}", self.prefix)
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

/// The node's IPv4 podCIDR (spec.podCIDRs, else spec.podCIDR).
fn pod_cidr_v4(node: &Value) -> Option<Ipv4Net> {
    let listed: Vec<&str> = node["spec"]["podCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str())
        .collect();
    let cidrs = if listed.is_empty() {
        node["spec"]["podCIDR"].as_str().into_iter().collect()
    } else {
        listed
    };
    cidrs.into_iter().find_map(|c| c.parse::<Ipv4Net>().ok())
}

/// Another node's vxlan lease, when its flanneld has published one.
fn peer_of(node: &Value, notes: &Annotations) -> Option<Result<Peer, String>> {
    let a = &node["metadata"]["annotations"];
    let name = node["metadata"]["name"].as_str()?.to_string();
    if a[notes.key("kube-subnet-manager")] != "true" {
        return None;
    }
    if a[notes.key("backend-type")] != "vxlan" {
        return None;
    }
    Some((|| {
        let public_ip: Ipv4Addr = a[notes.key("public-ip")]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|_| "invalid public-ip annotation".to_string())?;
        let data: Value = serde_json::from_str(a[notes.key("backend-data")].as_str().unwrap_or(""))
            .map_err(|e| format!("error decoding VXLAN lease attributes: {e}"))?;
        let vtep_mac = data["VtepMAC"]
            .as_str()
            .ok_or_else(|| "backend-data has no VtepMAC".to_string())?
            .to_string();
        let subnet = pod_cidr_v4(node).ok_or_else(|| "node has no IPv4 podCIDR".to_string())?;
        Ok(Peer {
            node: name,
            subnet,
            public_ip,
            vtep_mac,
        })
    })())
}

async fn node_name(client: &ApiClient) -> Result<String, String> {
    if let Ok(n) = std::env::var("NODE_NAME")
        && !n.is_empty()
    {
        return Ok(n);
    }
    let pod = std::env::var("POD_NAME").unwrap_or_default();
    let ns = std::env::var("POD_NAMESPACE").unwrap_or_default();
    if pod.is_empty() || ns.is_empty() {
        return Err("env variables POD_NAME and POD_NAMESPACE must be set".into());
    }
    let found = client
        .get(&format!("/api/v1/namespaces/{ns}/pods/{pod}"))
        .await
        .map_err(|e| format!("error retrieving pod spec for '{ns}/{pod}': {e}"))?;
    found["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("node name not present in pod spec '{ns}/{pod}'"))
}

/// Picks the external interface as flanneld's main does: `--iface` in order, then `--iface-regex`
/// in order, then `--iface-can-reach`; with none of them, `--public-ip`'s or the default route's.
async fn external_interface(options: &Options) -> Result<ExtIface, Fatal> {
    let ifaces = options.all("iface");
    let regexes = options.all("iface-regex");
    let reach = options.string("iface-can-reach", "");
    let public = options.string("public-ip", "");
    let mut found = if ifaces.is_empty() && regexes.is_empty() && reach.is_empty() {
        let picked = if public.is_empty() {
            datapath::by_default_route().await
        } else {
            datapath::by_iface(&public).await
        };
        Some(picked.map_err(|e| Fatal(format!("Failed to find any valid interface to use: {e}")))?)
    } else {
        let mut found = None;
        for iface in &ifaces {
            match datapath::by_iface(iface).await {
                Ok(e) => {
                    found = Some(e);
                    break;
                }
                Err(e) => logf!(
                    COMPONENT,
                    "Could not find valid interface matching {iface}: {e}"
                ),
            }
        }
        if found.is_none() {
            for re in &regexes {
                match datapath::by_regex(re).await {
                    Ok(e) => {
                        found = Some(e);
                        break;
                    }
                    Err(e) => logf!(
                        COMPONENT,
                        "Could not find valid interface matching {re}: {e}"
                    ),
                }
            }
        }
        if found.is_none() && !reach.is_empty() {
            match datapath::by_reach(&reach).await {
                Ok(e) => found = Some(e),
                Err(e) => logf!(
                    COMPONENT,
                    "Could not find valid interface matching ifaceCanReach: {reach}: {e}"
                ),
            }
        }
        found
    };
    let Some(mut ext) = found.take() else {
        return Err(Fatal(
            "Failed to find interface to use that matches the interfaces and/or regexes provided"
                .into(),
        ));
    };
    if !public.is_empty() {
        ext.addr = public
            .parse()
            .map_err(|_| Fatal(format!("invalid --public-ip {public:?}")))?;
    }
    if ext.mtu == 0 {
        return Err(Fatal(format!(
            "Failed to determine MTU for {} interface",
            ext.addr
        )));
    }
    Ok(ext)
}

/// Backends flannel knows; all but vxlan are outside what the double models.
const KNOWN_BACKENDS: &[&str] = &[
    "vxlan",
    "host-gw",
    "udp",
    "ipip",
    "wireguard",
    "alloc",
    "ipsec",
    "extension",
    "tencent-vpc",
    "ali-vpc",
    "aws-vpc",
    "gce",
];

async fn run(mut options: Options) -> Result<(), Fatal> {
    if !options.values.contains_key("iptables-forward-rules") {
        options
            .values
            .insert("iptables-forward-rules".into(), vec!["true".into()]);
    }
    let margin = options.int("subnet-lease-renew-margin", 60);
    if !(1..24 * 60).contains(&margin) {
        return Err(Fatal(
            "Invalid subnet-lease-renew-margin option, out of acceptable range".into(),
        ));
    }
    if !options.bool("kube-subnet-mgr", false) {
        return Err(Fatal("Failed to create SubnetManager: the etcd subnet manager is not implemented by the testbed's flannel double (it runs only with --kube-subnet-mgr)".into()));
    }
    let sm = |e: String| Fatal(format!("Failed to create SubnetManager: {e}"));
    let client =
        client(&options).map_err(|e| sm(format!("fail to create kubernetes config: {e}")))?;
    let node = node_name(&client).await.map_err(sm)?;
    let conf_path = options.string("net-config-path", "/etc/kube-flannel/net-conf.json");
    let text = std::fs::read_to_string(&conf_path).map_err(|e| {
        sm(format!(
            "failed to read net conf: open {conf_path}: {}",
            if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or directory".into()
            } else {
                e.to_string()
            }
        ))
    })?;
    let conf =
        netconf::parse(&text).map_err(|e| sm(format!("error parsing subnet config: {e}")))?;
    let notes =
        Annotations::new(&options.string("kube-annotation-prefix", "flannel.alpha.coreos.com"))
            .map_err(|e| sm(format!("error creating network manager: {e}")))?;
    if let Ok(depth) = std::env::var("EVENT_QUEUE_DEPTH")
        && !depth.is_empty()
        && let Err(e) = depth.parse::<i64>()
    {
        return Err(sm(format!(
            "error creating network manager: env EVENT_QUEUE_DEPTH={depth} format error: strconv.Atoi: parsing {depth:?}: {e}"
        )));
    }
    let nodes = Informer::start_for(COMPONENT, client.clone(), "/api/v1/nodes");
    logf!(COMPONENT, "Waiting 10m0s for node controller to sync");
    let synced = tokio::time::timeout(Duration::from_secs(600), async {
        while !nodes.synced() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if synced.is_err() {
        return Err(sm(
            "error waiting for nodeController to sync state: timed out waiting for the condition"
                .into(),
        ));
    }
    logf!(COMPONENT, "Node controller sync successful");
    logf!(
        COMPONENT,
        "Created subnet manager: Kubernetes Subnet Manager - {node}"
    );
    if !conf.enable_ipv4 && !conf.enable_ipv6 {
        return Err(Fatal(
            "none of EnableIPv4 and EnableIPv6 is set: at least one IP family must be enabled"
                .into(),
        ));
    }
    if conf.enable_ipv6 {
        return Err(Fatal(
            "EnableIPv6 is not implemented by the testbed's flannel double (IPv4 vxlan only)"
                .into(),
        ));
    }
    let ext = external_interface(&options).await?;
    logf!(
        COMPONENT,
        "Using interface with name {} and address {}",
        ext.name,
        ext.addr
    );
    if !KNOWN_BACKENDS.contains(&conf.backend_type.as_str()) {
        return Err(Fatal(format!(
            "Error fetching backend: unknown backend type: {}",
            conf.backend_type
        )));
    }
    if conf.backend_type != "vxlan" {
        return Err(Fatal(format!(
            "Error fetching backend: backend type {} is not implemented by the testbed's flannel double (vxlan only)",
            conf.backend_type
        )));
    }
    let register = |e: String| Fatal(format!("Error registering network: {e}"));
    let vx = netconf::vxlan(&conf).map_err(register)?;
    logf!(
        COMPONENT,
        "VXLAN config: VNI={} Port={} GBP={} Learning={} DirectRouting={}",
        vx.vni,
        vx.port,
        vx.gbp,
        vx.learning,
        vx.direct_routing
    );
    let mac = datapath::ensure_device(&vx, &ext)
        .await
        .map_err(|e| register(format!("{e:#}")))?;
    let lease = acquire_lease(&client, &nodes, &node, &notes, &conf, &ext, &vx, &mac)
        .await
        .map_err(|e| register(format!("failed to acquire lease: {e}")))?;
    let network = conf.network.ok_or_else(|| {
        register("could not find an ipv4 network in the flannel configuration".into())
    })?;
    datapath::configure(&vx.device(), &lease)
        .await
        .map_err(|e| {
            register(format!(
                "failed to configure interface {}: {e:#}",
                vx.device()
            ))
        })?;
    let mut rules = Vec::new();
    if options.bool("ip-masq", false) {
        logf!(COMPONENT, "Setting up masking rules");
        rules.extend(datapath::masq_rules(&network, &lease));
    }
    if options.bool("iptables-forward-rules", true) {
        logf!(COMPONENT, "Changing default FORWARD chain policy to ACCEPT");
        rules.extend(datapath::forward_rules(&network));
    }
    let resync = Duration::from_secs(options.int("iptables-resync", 5).max(1) as u64);
    tokio::spawn(async move {
        loop {
            if let Err(e) = datapath::ensure_rules(&rules).await {
                logf!(COMPONENT, "Failed to ensure iptables rules: {e:#}");
            }
            tokio::time::sleep(resync).await;
        }
    });
    let subnet_file = options.string("subnet-file", "/run/flannel/subnet.env");
    let mtu = ext.mtu - datapath::VXLAN_OVERHEAD;
    match write_subnet_file(
        &subnet_file,
        &network,
        &lease,
        mtu,
        options.bool("ip-masq", false),
    ) {
        Ok(()) => logf!(COMPONENT, "Wrote subnet file to {subnet_file}"),
        Err(e) => logf!(COMPONENT, "Failed to write subnet file: {e}"),
    }
    logf!(COMPONENT, "Running backend.");
    tokio::spawn(follow_peers(nodes.clone(), node.clone(), notes, ext, vx));
    if options.bool("set-node-network-unavailable", true) {
        let now = crate::common::time::now();
        let patch = json!({"status": {"conditions": [{"type": "NetworkUnavailable", "status": "False",
            "reason": "FlannelIsUp", "message": "Flannel is running on this node",
            "lastTransitionTime": now, "lastHeartbeatTime": now}]}});
        if let Err(e) = client
            .patch(
                &format!("/api/v1/nodes/{node}/status"),
                PatchType::Strategic,
                &patch,
            )
            .await
        {
            logf!(COMPONENT, "CompleteLease execute error err: {e}");
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    logf!(COMPONENT, "Exiting cleanly...");
    Ok(())
}

/// AcquireLease: the node's podCIDR is the lease; the backend data, type and public address go into
/// the Node's annotations when they differ.
#[allow(clippy::too_many_arguments)]
async fn acquire_lease(
    client: &ApiClient,
    nodes: &Informer,
    node: &str,
    notes: &Annotations,
    conf: &NetConf,
    ext: &ExtIface,
    vx: &Vxlan,
    mac: &str,
) -> Result<Ipv4Net, String> {
    let cached = nodes
        .get(node)
        .ok_or_else(|| format!("node \"{node}\" not found"))?;
    let cidr = match cached["spec"]["podCIDR"].as_str().filter(|c| !c.is_empty()) {
        None => return Err(format!("node {node:?} pod cidr not assigned")),
        Some(_) => {
            pod_cidr_v4(&cached).ok_or_else(|| format!("node {node:?} has no IPv4 pod cidr"))?
        }
    };
    if let Some(network) = conf.network
        && !network.contains(&cidr)
    {
        return Err(format!(
            "subnet {:?} specified in the flannel net config doesn't contain {:?} PodCIDR of the {node:?} node",
            network.to_string(),
            cidr.to_string()
        ));
    }
    let data = json!({"VNI": vx.vni, "VtepMAC": mac}).to_string();
    let wanted = [
        (notes.key("backend-data"), data),
        (notes.key("backend-type"), "vxlan".to_string()),
        (notes.key("kube-subnet-manager"), "true".to_string()),
        (notes.key("public-ip"), ext.addr.to_string()),
    ];
    let have = &cached["metadata"]["annotations"];
    if wanted
        .iter()
        .any(|(k, v)| have[k].as_str() != Some(v.as_str()))
    {
        let annotations: serde_json::Map<String, Value> =
            wanted.into_iter().map(|(k, v)| (k, json!(v))).collect();
        client
            .patch(
                &format!("/api/v1/nodes/{node}/status"),
                PatchType::Strategic,
                &json!({"metadata": {"annotations": annotations}}),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(cidr)
}

/// subnet.env, written whole and renamed into place.
fn write_subnet_file(
    path: &str,
    network: &Ipv4Net,
    lease: &Ipv4Net,
    mtu: u32,
    ipmasq: bool,
) -> std::io::Result<()> {
    let path = Path::new(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = format!(
        "FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={}\nFLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={ipmasq}\n",
        netconf::first_host_v4(lease)
    );
    let temp = path.with_file_name(format!(
        ".{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("subnet.env")
    ));
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)
}

/// The backend's run loop: every other Node's lease as a peer, added, changed or removed as the
/// Nodes change (a lease that did not change is not touched again).
async fn follow_peers(
    nodes: std::sync::Arc<Informer>,
    own: String,
    notes: Annotations,
    ext: ExtIface,
    vx: Vxlan,
) {
    let device = vx.device();
    let mut changed = nodes.subscribe();
    let mut applied: BTreeMap<String, Peer> = BTreeMap::new();
    loop {
        let mut wanted = BTreeMap::new();
        for node in nodes.list() {
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            if name == own {
                continue;
            }
            match peer_of(&node, &notes) {
                Some(Ok(peer)) => {
                    wanted.insert(name.to_string(), peer);
                }
                Some(Err(e)) => logf!(COMPONENT, "Error turning node {name:?} to lease: {e}"),
                None => {}
            }
        }
        for (name, peer) in &applied {
            if wanted.get(name) != Some(peer) {
                logf!(COMPONENT, "Subnet removed: {} ({name})", peer.subnet);
                datapath::remove_peer(&device, peer).await;
            }
        }
        applied.retain(|name, peer| wanted.get(name) == Some(peer));
        for (name, peer) in wanted {
            if applied.contains_key(&name) {
                continue;
            }
            logf!(
                COMPONENT,
                "Subnet added: {} via {} ({name})",
                peer.subnet,
                peer.public_ip
            );
            match datapath::add_peer(&device, &ext, vx.direct_routing, &peer).await {
                Ok(()) => {
                    applied.insert(name, peer);
                }
                Err(e) => logf!(COMPONENT, "failed to add the lease of {name}: {e:#}"),
            }
        }
        if changed.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_as_gos_flag_package() {
        let o = parse_flags(&args(&[
            "--ip-masq",
            "--kube-subnet-mgr",
            "--iface-regex=^10\\.213\\.",
            "-iface",
            "eth0",
            "--iface",
            "eth1",
        ]))
        .unwrap();
        assert!(o.bool("ip-masq", false) && o.bool("kube-subnet-mgr", false));
        assert_eq!(o.all("iface"), ["eth0", "eth1"]);
        assert_eq!(o.string("iface-regex", ""), "^10\\.213\\.");
        assert_eq!(
            parse_flags(&args(&["--ip-masq", "--iface-can-rech=10.0.0.1"])).unwrap_err(),
            "flag provided but not defined: -iface-can-rech"
        );
        assert_eq!(
            parse_flags(&args(&["--healthz-port=x"])).unwrap_err(),
            "invalid value \"x\" for flag -healthz-port: parse error"
        );
        assert_eq!(
            parse_flags(&args(&["--iface"])).unwrap_err(),
            "flag needs an argument: -iface"
        );
        assert!(
            !parse_flags(&args(&["--ip-masq=false"]))
                .unwrap()
                .bool("ip-masq", true)
        );
    }

    #[test]
    fn environment_fills_flags_not_given() {
        let mut o = parse_flags(&args(&["--iface=eth0"])).unwrap();
        flags_from_env(&mut o, &|k| match k {
            "FLANNELD_IFACE" => Some("eth9".into()),
            "FLANNELD_IP_MASQ" => Some("true".into()),
            _ => None,
        });
        assert_eq!(o.all("iface"), ["eth0"]);
        assert!(o.bool("ip-masq", false));
    }

    #[test]
    fn peers_come_from_the_flannel_annotations() {
        let notes = Annotations::new("flannel.alpha.coreos.com").unwrap();
        let node = json!({"metadata": {"name": "node2", "annotations": {
            "flannel.alpha.coreos.com/backend-data": "{\"VNI\":1,\"VtepMAC\":\"3a:1b:aa:00:00:02\"}",
            "flannel.alpha.coreos.com/backend-type": "vxlan",
            "flannel.alpha.coreos.com/kube-subnet-manager": "true",
            "flannel.alpha.coreos.com/public-ip": "10.213.5.12"}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}});
        let peer = peer_of(&node, &notes).unwrap().unwrap();
        assert_eq!(peer.subnet.to_string(), "10.244.1.0/24");
        assert_eq!(peer.vtep_mac, "3a:1b:aa:00:00:02");
        assert!(peer_of(&json!({"metadata": {"name": "n3"}}), &notes).is_none());
        assert_eq!(
            Annotations::new("example.com/flannel")
                .unwrap()
                .key("public-ip"),
            "example.com/flannel-public-ip"
        );
    }
}
