//! The CoreDNS double (the CoreDNS image's `/coredns -conf <Corefile>`): serves the Corefile's server
//! blocks on UDP and TCP with the plugins it names, in CoreDNS's plugin order — `cache`, then
//! `kubernetes` (records from a list+watch of Services, EndpointSlices and, with `pods verified`,
//! Pods), then `forward` to the upstreams (from /etc/resolv.conf or addresses) — plus `health`,
//! `ready`, `prometheus`, `errors`, `log`, `loop`, `reload` and `loadbalance`. Messages are read
//! and written with hickory-proto.

pub mod corefile;
pub mod records;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;

use crate::common::client::ApiClient;
use crate::common::kubeconfig::{self, ClientConfig};
use crate::common::serve;
use crate::controller_manager::informer::Informer;
use corefile::{Cache as CacheCfg, Forward as ForwardCfg, Kubernetes, Policy, Server};
use records::{Data, Lookup, QType, Rr, Snapshot};

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn log(level: &str, message: &str) {
    eprintln!("[{level}] {message}");
}

/// `coredns -conf FILE` (Go's flag package: one or two dashes, `-x=v` or `-x v`).
pub fn main(args: &[String]) -> i32 {
    let mut conf = "Corefile".to_string();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].trim_start_matches('-');
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg, None),
        };
        let take = |i: &mut usize| -> Option<String> {
            value.clone().or_else(|| {
                *i += 1;
                args.get(*i).cloned()
            })
        };
        match name {
            "conf" => match take(&mut i) {
                Some(v) => conf = v,
                None => {
                    eprintln!("flag needs an argument: -conf");
                    return 2;
                }
            },
            "version" => {
                println!("CoreDNS-1.12.1\nlinux/amd64, go1.24, testbed");
                return 0;
            }
            "plugins" => {
                println!(
                    "Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:\n  dns.cache\n  dns.errors\n  dns.forward\n  dns.health\n  dns.kubernetes\n  dns.loadbalance\n  dns.log\n  dns.loop\n  dns.prometheus\n  dns.ready\n  dns.reload"
                );
                return 0;
            }
            "quiet" | "dns.port" | "pidfile" => {
                if name != "quiet" {
                    let _ = take(&mut i);
                }
            }
            _ => {
                eprintln!("flag provided but not defined: -{name}");
                return 2;
            }
        }
        i += 1;
    }
    let text = match std::fs::read_to_string(&conf) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("open {conf}: {e}");
            return 1;
        }
    };
    let servers = match corefile::parse(&conf, &text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(conf, text, servers)) {
        Ok(()) => 0,
        Err(e) => {
            log("FATAL", &format!("{e:#}"));
            1
        }
    }
}

/// One server block at run time.
struct Block {
    cfg: Server,
    kube: Option<Kube>,
    forward: Option<Upstreams>,
    cache: Option<ResponseCache>,
    loop_probe: Mutex<Option<(String, usize)>>,
}

struct Kube {
    cfg: Kubernetes,
    services: Arc<Informer>,
    slices: Arc<Informer>,
    pods: Option<Arc<Informer>>,
}

impl Kube {
    fn synced(&self) -> bool {
        self.services.synced()
            && self.slices.synced()
            && self.pods.as_ref().is_none_or(|p| p.synced())
    }
    fn snapshot(&self) -> Snapshot {
        let all = |i: &Arc<Informer>| i.list().iter().map(|v| (**v).clone()).collect();
        Snapshot {
            services: all(&self.services),
            slices: all(&self.slices),
            pods: self.pods.as_ref().map(all).unwrap_or_default(),
        }
    }
}

struct Upstreams {
    cfg: ForwardCfg,
    addrs: Vec<SocketAddr>,
    limit: Option<Arc<Semaphore>>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Metrics {
    requests: AtomicU64,
    by_rcode: Mutex<HashMap<String, u64>>,
}

async fn run(conf: String, text: String, servers: Vec<Server>) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let mut blocks = Vec::new();
    for cfg in servers {
        let kube = match &cfg.kubernetes {
            Some(k) => Some(start_kube(k)?),
            None => None,
        };
        let forward = match &cfg.forward {
            Some(f) => Some(upstreams(f)?),
            None => None,
        };
        let cache = cfg.cache.clone().map(ResponseCache::new);
        blocks.push(Arc::new(Block {
            cfg,
            kube,
            forward,
            cache,
            loop_probe: Mutex::new(None),
        }));
    }
    let blocks = Arc::new(blocks);
    // Listeners, one UDP socket and one TCP listener per port.
    let mut ports: Vec<u16> = blocks.iter().map(|b| b.cfg.port).collect();
    ports.sort();
    ports.dedup();
    for port in &ports {
        let addr = SocketAddr::from(([0, 0, 0, 0], *port));
        let udp = Arc::new(
            UdpSocket::bind(addr)
                .await
                .with_context(|| format!("listen udp :{port}"))?,
        );
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen tcp :{port}"))?;
        let mine: Vec<Arc<Block>> = blocks
            .iter()
            .filter(|b| b.cfg.port == *port)
            .cloned()
            .collect();
        tokio::spawn(serve_udp(udp, mine.clone(), metrics.clone()));
        tokio::spawn(serve_tcp(tcp, mine, metrics.clone()));
        for b in blocks.iter().filter(|b| b.cfg.port == *port) {
            println!("{}:{port}", b.cfg.zones.join(" "));
        }
    }
    println!("CoreDNS-1.12.1\nlinux/amd64, go1.24, testbed");
    let mut lameduck = Duration::ZERO;
    for b in blocks.iter() {
        if let Some((addr, duck)) = b.cfg.health {
            lameduck = lameduck.max(duck);
            let listener = serve::bind(addr)
                .await
                .with_context(|| format!("plugin/health: listen {addr}"))?;
            tokio::spawn(serve::serve_plain(listener, |req, _| async move {
                match req.uri().path() {
                    "/health" => serve::text(StatusCode::OK, "OK"),
                    _ => serve::text(StatusCode::NOT_FOUND, "404 page not found\n"),
                }
            }));
        }
        if let Some(addr) = b.cfg.ready {
            let listener = serve::bind(addr)
                .await
                .with_context(|| format!("plugin/ready: listen {addr}"))?;
            let all = blocks.clone();
            tokio::spawn(serve::serve_plain(listener, move |req, _| {
                let all = all.clone();
                async move {
                    if req.uri().path() != "/ready" {
                        return serve::text(StatusCode::NOT_FOUND, "404 page not found\n");
                    }
                    let waiting: Vec<&str> = all
                        .iter()
                        .filter(|b| b.kube.as_ref().is_some_and(|k| !k.synced()))
                        .map(|_| "kubernetes")
                        .collect();
                    if waiting.is_empty() {
                        serve::text(StatusCode::OK, "OK")
                    } else {
                        serve::text(StatusCode::SERVICE_UNAVAILABLE, waiting.join(","))
                    }
                }
            }));
        }
        if let Some(addr) = b.cfg.prometheus {
            let listener = serve::bind(addr)
                .await
                .with_context(|| format!("plugin/prometheus: listen {addr}"))?;
            let m = metrics.clone();
            tokio::spawn(serve::serve_plain(listener, move |req, _| {
                let m = m.clone();
                async move {
                    if req.uri().path() != "/metrics" {
                        return serve::text(StatusCode::NOT_FOUND, "404 page not found\n");
                    }
                    let mut out = format!(
                        "# TYPE coredns_dns_requests_total counter\ncoredns_dns_requests_total {}\n# TYPE coredns_dns_responses_total counter\n",
                        m.requests.load(Ordering::Relaxed)
                    );
                    if let Ok(map) = m.by_rcode.lock() {
                        for (rcode, n) in map.iter() {
                            out.push_str(&format!(
                                "coredns_dns_responses_total{{rcode=\"{rcode}\"}} {n}\n"
                            ));
                        }
                    }
                    serve::text(StatusCode::OK, out)
                }
            }));
        }
    }
    for b in blocks.iter() {
        if b.cfg.loop_detect && b.forward.is_some() {
            tokio::spawn(probe_loop(b.clone()));
        }
    }
    if let Some(interval) = blocks.iter().filter_map(|b| b.cfg.reload).min() {
        tokio::spawn(watch_reload(conf, text, interval));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    if !lameduck.is_zero() {
        log(
            "INFO",
            &format!(
                "plugin/health: Going into lameduck mode for {}s",
                lameduck.as_secs()
            ),
        );
        tokio::time::sleep(lameduck).await;
    }
    Ok(())
}

/// The kubernetes plugin's API connection: its `kubeconfig`, else the pod's service account
/// (KUBERNETES_SERVICE_HOST/PORT), with `endpoint` overriding the server.
fn start_kube(k: &Kubernetes) -> Result<Kube> {
    let mut config = match &k.kubeconfig {
        Some(path) => kubeconfig::load(Path::new(path))?,
        None => {
            let host = std::env::var("KUBERNETES_SERVICE_HOST").ok();
            let port = std::env::var("KUBERNETES_SERVICE_PORT").ok();
            let (Some(host), Some(port)) = (host, port) else {
                if k.endpoint.is_none() {
                    bail!(
                        "plugin/kubernetes: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"
                    );
                }
                return start_kube_with(
                    k,
                    ClientConfig {
                        server: k.endpoint.clone().unwrap_or_default(),
                        ca_pem: None,
                        insecure: true,
                        tls_server_name: None,
                        client_cert_pem: None,
                        client_key_pem: None,
                        token: None,
                    },
                );
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            ClientConfig {
                server: format!("https://{host}:{port}"),
                ca_pem: Some(
                    std::fs::read(format!("{SA_DIR}/ca.crt"))
                        .context("plugin/kubernetes: read the service account's ca.crt")?,
                ),
                insecure: false,
                tls_server_name: None,
                client_cert_pem: None,
                client_key_pem: None,
                token: Some(
                    std::fs::read_to_string(format!("{SA_DIR}/token"))
                        .context("plugin/kubernetes: read the service account's token")?
                        .trim()
                        .to_string(),
                ),
            }
        }
    };
    if let Some(endpoint) = &k.endpoint {
        config.server = endpoint.clone();
    }
    start_kube_with(k, config)
}

fn start_kube_with(k: &Kubernetes, config: ClientConfig) -> Result<Kube> {
    let client = ApiClient::new(&config)?;
    Ok(Kube {
        cfg: k.clone(),
        services: Informer::start_for("coredns", client.clone(), "/api/v1/services"),
        slices: Informer::start_for(
            "coredns",
            client.clone(),
            "/apis/discovery.k8s.io/v1/endpointslices",
        ),
        pods: (k.pods == corefile::PodsMode::Verified)
            .then(|| Informer::start_for("coredns", client, "/api/v1/pods")),
    })
}

/// The nameservers of a resolv.conf file.
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|a| a.split('%').next()?.parse().ok())
        .collect()
}

fn upstreams(f: &ForwardCfg) -> Result<Upstreams> {
    let mut addrs = Vec::new();
    for to in &f.to {
        let to = to.strip_prefix("dns://").unwrap_or(to);
        if to.starts_with('/') {
            let text = std::fs::read_to_string(to)
                .with_context(|| format!("plugin/forward: open {to}"))?;
            addrs.extend(
                nameservers(&text)
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 53)),
            );
        } else if let Ok(sa) = to.parse::<SocketAddr>() {
            addrs.push(sa);
        } else {
            let ip: IpAddr = to
                .parse()
                .map_err(|_| anyhow!("plugin/forward: not an IP address or file: {to:?}"))?;
            addrs.push(SocketAddr::new(ip, 53));
        }
    }
    if addrs.is_empty() {
        bail!("plugin/forward: no nameservers found");
    }
    Ok(Upstreams {
        cfg: f.clone(),
        addrs,
        limit: f.max_concurrent.map(|n| Arc::new(Semaphore::new(n))),
        next: AtomicUsize::new(0),
    })
}

async fn serve_udp(socket: Arc<UdpSocket>, blocks: Vec<Arc<Block>>, metrics: Arc<Metrics>) {
    let blocks = Arc::new(blocks);
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (socket, blocks, metrics) = (socket.clone(), blocks.clone(), metrics.clone());
        tokio::spawn(async move {
            if let Some(reply) = handle(&blocks, &query, from, "udp", &metrics).await {
                let _ = socket.send_to(&reply, from).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, blocks: Vec<Arc<Block>>, metrics: Arc<Metrics>) {
    let blocks = Arc::new(blocks);
    loop {
        let Ok((mut stream, from)) = listener.accept().await else {
            continue;
        };
        let (blocks, metrics) = (blocks.clone(), metrics.clone());
        tokio::spawn(async move {
            // DNS over TCP: each message behind its two-byte length (RFC 1035 4.2.2).
            loop {
                let Ok(len) = stream.read_u16().await else {
                    return;
                };
                let mut query = vec![0u8; len as usize];
                if stream.read_exact(&mut query).await.is_err() {
                    return;
                }
                let Some(reply) = handle(&blocks, &query, from, "tcp", &metrics).await else {
                    return;
                };
                if stream.write_u16(reply.len() as u16).await.is_err()
                    || stream.write_all(&reply).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

fn qtype_of(t: RecordType) -> QType {
    match t {
        RecordType::A => QType::A,
        RecordType::AAAA => QType::Aaaa,
        RecordType::SRV => QType::Srv,
        RecordType::PTR => QType::Ptr,
        _ => QType::Other,
    }
}

fn name(text: &str) -> Result<Name> {
    Name::from_ascii(text).map_err(|e| anyhow!("bad name {text:?}: {e}"))
}

fn record(rr: &Rr) -> Result<Record> {
    let data = match &rr.data {
        Data::A(ip) => RData::A(A(*ip)),
        Data::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        Data::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, name(target)?)),
        Data::Ptr(t) => RData::PTR(PTR(name(t)?)),
        Data::Cname(t) => RData::CNAME(CNAME(name(t)?)),
    };
    Ok(Record::from_rdata(name(&rr.name)?, rr.ttl, data))
}

fn soa(zone: &str, ttl: u32) -> Result<Record> {
    let serial = (crate::common::time::unix_now() % u32::MAX as i64) as u32;
    let data = SOA::new(
        name(&format!("ns.dns.{zone}"))?,
        name(&format!("hostmaster.{zone}"))?,
        serial,
        7200,
        1800,
        86400,
        ttl,
    );
    Ok(Record::from_rdata(name(zone)?, ttl, RData::SOA(data)))
}

fn reply_to(request: &Message, code: ResponseCode) -> Message {
    let mut m = Message::new();
    m.set_id(request.id());
    m.set_message_type(MessageType::Response);
    m.set_op_code(OpCode::Query);
    m.set_recursion_desired(request.recursion_desired());
    m.set_recursion_available(true);
    m.set_response_code(code);
    for q in request.queries() {
        m.add_query(q.clone());
    }
    m
}

/// The block whose zone is the longest suffix of `qname`.
fn block_for<'a>(blocks: &'a [Arc<Block>], qname: &str) -> Option<&'a Arc<Block>> {
    blocks
        .iter()
        .flat_map(|b| b.cfg.zones.iter().map(move |z| (b, z)))
        .filter(|(_, z)| {
            z.as_str() == "." || qname == z.as_str() || qname.ends_with(&format!(".{z}"))
        })
        .max_by_key(|(_, z)| z.len())
        .map(|(b, _)| b)
}

fn in_zones(zones: &[String], qname: &str) -> bool {
    zones
        .iter()
        .any(|z| z.as_str() == "." || qname == z.as_str() || qname.ends_with(&format!(".{z}")))
}

async fn handle(
    blocks: &[Arc<Block>],
    query: &[u8],
    from: SocketAddr,
    proto: &str,
    metrics: &Metrics,
) -> Option<Vec<u8>> {
    let started = Instant::now();
    let request = Message::from_vec(query).ok()?;
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    let q = request.queries().first()?.clone();
    let qname = q.name().to_lowercase().to_ascii();
    let qname = if qname.ends_with('.') {
        qname
    } else {
        format!("{qname}.")
    };
    let Some(block) = block_for(blocks, &qname) else {
        return reply_to(&request, ResponseCode::Refused).to_vec().ok();
    };
    let reply = match answer(block, &request, &q, &qname, query).await {
        Ok(bytes) => bytes,
        Err(e) => {
            if block.cfg.errors {
                log(
                    "ERROR",
                    &format!("plugin/errors: 2 {qname} {}: {e:#}", q.query_type()),
                );
            }
            reply_to(&request, ResponseCode::ServFail).to_vec().ok()?
        }
    };
    let rcode = Message::from_vec(&reply)
        .map(|m| m.response_code().to_string())
        .unwrap_or_default();
    if let Ok(mut map) = metrics.by_rcode.lock() {
        *map.entry(rcode.clone()).or_default() += 1;
    }
    if block.cfg.log {
        log(
            "INFO",
            &format!(
                "{from} - {} \"{} IN {qname} {proto} {} false 512\" {rcode} {} {:.6}s",
                request.id(),
                q.query_type(),
                query.len(),
                reply.len(),
                started.elapsed().as_secs_f64()
            ),
        );
    }
    Some(reply)
}

async fn answer(
    block: &Block,
    request: &Message,
    q: &Query,
    qname: &str,
    raw: &[u8],
) -> Result<Vec<u8>> {
    // loop: our own probe coming back through the upstreams means a forwarding loop.
    if q.query_type() == RecordType::HINFO
        && let Ok(mut probe) = block.loop_probe.lock()
        && let Some((probe_name, seen)) = probe.as_mut()
        && probe_name == qname
    {
        *seen += 1;
        if *seen > 2 {
            log(
                "FATAL",
                &format!(
                    "plugin/loop: Loop (127.0.0.1 -> :{}) detected for zone {:?}, see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {qname}\"",
                    block.cfg.port, block.cfg.zones[0]
                ),
            );
            std::process::exit(1);
        }
    }
    if let Some(cache) = &block.cache
        && let Some(mut hit) = cache.get(qname, q.query_type())
    {
        hit.set_id(request.id());
        return Ok(hit.to_vec()?);
    }
    let mut response = None;
    if let Some(kube) = &block.kube {
        let lookup = records::lookup(&kube.snapshot(), &kube.cfg, qname, qtype_of(q.query_type()));
        response = match lookup {
            Lookup::Next => None,
            Lookup::Found {
                answers,
                additional,
            } => {
                let mut m = reply_to(request, ResponseCode::NoError);
                m.set_authoritative(true);
                for rr in &answers {
                    m.add_answer(record(rr)?);
                }
                for rr in &additional {
                    m.add_additional(record(rr)?);
                }
                Some(m)
            }
            Lookup::NoData { zone } => {
                let mut m = reply_to(request, ResponseCode::NoError);
                m.set_authoritative(true);
                m.add_name_server(soa(&zone, kube.cfg.ttl)?);
                Some(m)
            }
            Lookup::NxDomain { zone } => {
                let mut m = reply_to(request, ResponseCode::NXDomain);
                m.set_authoritative(true);
                m.add_name_server(soa(&zone, kube.cfg.ttl)?);
                Some(m)
            }
        };
    }
    let mut response = match response {
        Some(m) => m,
        None => match &block.forward {
            Some(up)
                if in_zones(std::slice::from_ref(&up.cfg.from), qname)
                    && !in_zones(&up.cfg.except, qname) =>
            {
                let bytes = forward(up, raw).await?;
                Message::from_vec(&bytes)?
            }
            _ => bail!(
                "plugin/{}: no next plugin found",
                if block.kube.is_some() {
                    "kubernetes"
                } else {
                    "forward"
                }
            ),
        },
    };
    if block.cfg.loadbalance {
        shuffle_addresses(&mut response);
    }
    if let Some(cache) = &block.cache {
        cache.put(qname, q.query_type(), &response);
    }
    Ok(response.to_vec()?)
}

/// loadbalance: A/AAAA answers in random order (CNAMEs stay first).
fn shuffle_addresses(m: &mut Message) {
    let answers = m.take_answers();
    let (mut addrs, other): (Vec<Record>, Vec<Record>) = answers
        .into_iter()
        .partition(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA));
    let seed = crate::common::time::unix_now() as usize
        ^ (Instant::now().elapsed().subsec_nanos() as usize)
        ^ (std::process::id() as usize);
    if !addrs.is_empty() {
        let k = rand_index(seed, addrs.len());
        addrs.rotate_left(k);
    }
    for r in other.into_iter().chain(addrs) {
        m.add_answer(r);
    }
}

fn rand_index(seed: usize, n: usize) -> usize {
    let mut x = seed as u64
        ^ 0x9E37_79B9_7F4A_7C15
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or_default();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x % n as u64) as usize
}

async fn forward(up: &Upstreams, raw: &[u8]) -> Result<Vec<u8>> {
    let _permit = match &up.limit {
        Some(sem) => Some(
            sem.clone()
                .try_acquire_owned()
                .map_err(|_| anyhow!("plugin/forward: max_concurrent queries reached"))?,
        ),
        None => None,
    };
    let n = up.addrs.len();
    let start = match up.cfg.policy {
        Policy::Sequential => 0,
        Policy::RoundRobin => up.next.fetch_add(1, Ordering::Relaxed) % n,
        Policy::Random => rand_index(raw.len() ^ raw.first().copied().unwrap_or(0) as usize, n),
    };
    let mut last = anyhow!("plugin/forward: no upstream answered");
    for i in 0..n {
        let addr = up.addrs[(start + i) % n];
        let attempt = if up.cfg.force_tcp {
            exchange_tcp(addr, raw).await
        } else {
            exchange_udp(addr, raw).await
        };
        match attempt {
            Ok(reply) => return Ok(reply),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn exchange_udp(addr: SocketAddr, raw: &[u8]) -> Result<Vec<u8>> {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.send_to(raw, addr).await?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .map_err(|_| anyhow!("read udp {addr}: i/o timeout"))??;
    buf.truncate(n);
    Ok(buf)
}

async fn exchange_tcp(addr: SocketAddr, raw: &[u8]) -> Result<Vec<u8>> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_u16(raw.len() as u16).await?;
        s.write_all(raw).await?;
        let len = s.read_u16().await?;
        let mut buf = vec![0u8; len as usize];
        s.read_exact(&mut buf).await?;
        Ok::<_, anyhow::Error>(buf)
    };
    tokio::time::timeout(Duration::from_secs(2), work)
        .await
        .map_err(|_| anyhow!("read tcp {addr}: i/o timeout"))?
}

/// loop: a random HINFO name sent to ourselves; seen coming back more than twice is a loop.
async fn probe_loop(block: Arc<Block>) {
    let zone = block.cfg.zones[0].trim_start_matches('.').to_string();
    let stamp = crate::common::time::unix_now();
    let probe = format!("{}.{}.{zone}", stamp, std::process::id());
    let probe = if probe.ends_with('.') {
        probe
    } else {
        format!("{probe}.")
    };
    if let Ok(mut p) = block.loop_probe.lock() {
        *p = Some((probe.clone(), 0));
    }
    let Ok(qname) = Name::from_ascii(&probe) else {
        return;
    };
    // One probe: without a loop it reaches us once (sent by us) and the upstream answers it; with
    // a loop the upstream sends it back again and again.
    let mut m = Message::new();
    m.set_id(0x4c00);
    m.set_message_type(MessageType::Query);
    m.set_recursion_desired(true);
    m.add_query(Query::query(qname, RecordType::HINFO));
    if let Ok(bytes) = m.to_vec() {
        let _ = exchange_udp(SocketAddr::from(([127, 0, 0, 1], block.cfg.port)), &bytes).await;
    }
}

/// reload: the Corefile is re-read every interval; a changed, valid one restarts the process with
/// it (same arguments), an invalid one is logged and the running configuration kept.
async fn watch_reload(conf: String, mut current: String, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Ok(text) = std::fs::read_to_string(&conf) else {
            continue;
        };
        if text == current {
            continue;
        }
        match corefile::parse(&conf, &text) {
            Err(e) => {
                log("ERROR", &format!("Restart failed: {e}"));
                current = text;
            }
            Ok(_) => {
                log("INFO", "Reloading");
                use std::os::unix::process::CommandExt;
                let args: Vec<String> = std::env::args().collect();
                let err = std::process::Command::new("/proc/self/exe")
                    .arg0(&args[0])
                    .args(&args[1..])
                    .exec();
                log("ERROR", &format!("Restart failed: {err}"));
            }
        }
    }
}

/// The cache plugin: positive and negative responses kept for their TTL, capped by the plugin's,
/// except in the zones it disables.
/// A cached response, when it was stored, its TTL and whether it is a positive one.
type CacheEntry = (Message, Instant, u32, bool);

struct ResponseCache {
    cfg: CacheCfg,
    entries: Mutex<HashMap<(String, RecordType), CacheEntry>>,
}

impl ResponseCache {
    fn new(cfg: CacheCfg) -> ResponseCache {
        ResponseCache {
            cfg,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, qname: &str, t: RecordType) -> Option<Message> {
        let mut entries = self.entries.lock().ok()?;
        let key = (qname.to_string(), t);
        let (m, at, ttl, _) = entries.get(&key)?.clone();
        let age = at.elapsed().as_secs() as u32;
        if age >= ttl {
            entries.remove(&key);
            return None;
        }
        let mut m = m;
        let answers: Vec<Record> = m
            .take_answers()
            .into_iter()
            .map(|mut r| {
                r.set_ttl(r.ttl().saturating_sub(age));
                r
            })
            .collect();
        for r in answers {
            m.add_answer(r);
        }
        Some(m)
    }

    fn put(&self, qname: &str, t: RecordType, m: &Message) {
        if !in_zones(&self.cfg.zones, qname) {
            return;
        }
        let denial = m.response_code() == ResponseCode::NXDomain
            || (m.response_code() == ResponseCode::NoError && m.answers().is_empty());
        let success = m.response_code() == ResponseCode::NoError && !m.answers().is_empty();
        if !(denial || success) {
            return;
        }
        let disabled = if success {
            &self.cfg.disable_success
        } else {
            &self.cfg.disable_denial
        };
        if in_zones(disabled, qname) {
            return;
        }
        let ttl = if success {
            m.answers().iter().map(|r| r.ttl()).min().unwrap_or(0)
        } else {
            m.name_servers().iter().map(|r| r.ttl()).min().unwrap_or(0)
        }
        .min(self.cfg.ttl);
        if ttl == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let capacity = if success {
            self.cfg.success_capacity
        } else {
            self.cfg.denial_capacity
        };
        let kind_count = entries.values().filter(|e| e.3 == success).count();
        if kind_count >= capacity {
            entries.retain(|_, e| e.1.elapsed().as_secs() < e.2 as u64);
            if entries.values().filter(|e| e.3 == success).count() >= capacity {
                return;
            }
        }
        entries.insert(
            (qname.to_string(), t),
            (m.clone(), Instant::now(), ttl, success),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(corefile_text: &str) -> Arc<Block> {
        let cfg = corefile::parse("Corefile", corefile_text)
            .unwrap()
            .remove(0);
        let forward = cfg.forward.as_ref().map(|f| upstreams(f).unwrap());
        let cache = cfg.cache.clone().map(ResponseCache::new);
        Arc::new(Block {
            cfg,
            kube: None,
            forward,
            cache,
            loop_probe: Mutex::new(None),
        })
    }

    fn query(n: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(77);
        m.set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(n).unwrap(), t));
        m.to_vec().unwrap()
    }

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# docker\nnameserver 10.213.4.53\nnameserver fe80::1%eth0\nsearch example\noptions ndots:0\n";
        assert_eq!(
            nameservers(text),
            vec![
                "10.213.4.53".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn forwards_to_an_upstream_and_caches_the_answer() {
        // A stand-in upstream that answers every A query with 192.0.2.7.
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, from) = upstream.recv_from(&mut buf).await.unwrap();
                let req = Message::from_vec(&buf[..n]).unwrap();
                let mut m = reply_to(&req, ResponseCode::NoError);
                let q = req.queries()[0].clone();
                m.add_answer(Record::from_rdata(
                    q.name().clone(),
                    60,
                    RData::A(A("192.0.2.7".parse().unwrap())),
                ));
                count.fetch_add(1, Ordering::SeqCst);
                upstream.send_to(&m.to_vec().unwrap(), from).await.unwrap();
            }
        });
        let b = block(&format!(
            ".:53 {{\n forward . {addr}\n cache 30\n errors\n}}\n"
        ));
        let metrics = Metrics::default();
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..2 {
            let reply = handle(
                std::slice::from_ref(&b),
                &query("example.org.", RecordType::A),
                from,
                "udp",
                &metrics,
            )
            .await
            .unwrap();
            let m = Message::from_vec(&reply).unwrap();
            assert_eq!(m.id(), 77);
            assert_eq!(m.answers().len(), 1);
            assert_eq!(
                m.answers()[0].data(),
                &RData::A(A("192.0.2.7".parse().unwrap()))
            );
        }
        assert_eq!(
            served.load(Ordering::SeqCst),
            1,
            "the second answer came from the cache"
        );
        // A name outside `forward`'s FROM zone has no next plugin: SERVFAIL.
        let b = block(&format!(".:53 {{\n forward example.net {addr}\n}}\n"));
        let reply = handle(
            &[b],
            &query("example.org.", RecordType::A),
            from,
            "udp",
            &metrics,
        )
        .await
        .unwrap();
        assert_eq!(
            Message::from_vec(&reply).unwrap().response_code(),
            ResponseCode::ServFail
        );
    }

    #[test]
    fn negative_answers_carry_the_zones_soa() {
        let r = soa("cluster.local.", 30).unwrap();
        assert_eq!(r.name().to_ascii(), "cluster.local.");
        assert_eq!(r.ttl(), 30);
        let rr = Rr {
            name: "web.default.svc.cluster.local.".into(),
            ttl: 30,
            data: Data::Srv {
                priority: 0,
                weight: 100,
                port: 80,
                target: "web.default.svc.cluster.local.".into(),
            },
        };
        assert_eq!(record(&rr).unwrap().record_type(), RecordType::SRV);
    }
}
