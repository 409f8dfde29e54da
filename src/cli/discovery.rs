//! `kubestrap discovery serve`: the token-signed discovery endpoint, in cluster mode (what
//! `kube-public/cluster-info` publishes, refreshed every few seconds) or standalone (`--token`,
//! `--token-file`: the node's own cluster-info signed here, before any API server answers).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::cluster::{Client, Gateway, Retry};
use crate::discovery::server::{Publisher, Server, ServerOptions};
use crate::discovery::{Published, source};
use crate::error::{FieldError, InvalidInput};
use crate::host::{Host, NodePath};
use crate::kubeconfig::cluster_info;
use crate::model::record;
use crate::pki::{store, table};
use crate::token::Token;
use crate::workflow::rollback::UndoEntry;
use crate::workflow::session::{Recovery, Session};

/// How often cluster mode reads cluster-info and the token Secrets again.
pub const REFRESH: Duration = Duration::from_secs(2);
/// How long cluster mode keeps serving its last good read while the API server does not answer.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
pub enum DiscoveryCmd {
    /// Serve the token-signed discovery endpoint (GET /cluster-info/v1/?token-id=<id>)
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The port to listen on
    #[arg(long, value_name = "PORT", default_value_t = crate::discovery::DEFAULT_PORT)]
    pub port: u16,
    /// The address to listen on
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub address: IpAddr,
    /// Standalone mode: sign the node's own cluster-info with this token (repeatable)
    #[arg(long, value_name = "ID.SECRET")]
    pub token: Vec<String>,
    /// Standalone mode: sign with each token in this file (one a line; # comments)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Cluster mode: the kubeconfig to read cluster-info and the token Secrets with
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/kubernetes/admin.conf"
    )]
    pub kubeconfig: String,
    /// Requests naming no served token allowed per second per client address (bursts of twice as many)
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,
    /// Connections served at once (more wait)
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,
}

pub fn run(global: &GlobalOpts, cmd: DiscoveryCmd) -> anyhow::Result<()> {
    match cmd {
        DiscoveryCmd::Serve(args) => serve(global, &args),
    }
}

/// Where the served signatures come from.
enum Mode {
    Cluster { kubeconfig: NodePath },
    Standalone(Vec<Token>),
}

fn parse_mode(args: &ServeArgs) -> anyhow::Result<Mode> {
    let mut errors = Vec::new();
    let mut tokens = Vec::new();
    for text in &args.token {
        match Token::parse(text) {
            Ok(t) => tokens.push(t),
            Err(e) => errors.push(FieldError::new("--token", "(withheld)", e.to_string())),
        }
    }
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InvalidInput::one(
                "--token-file",
                path.display(),
                format!("can not be read: {e}"),
            )
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match Token::parse(line) {
                Ok(t) => tokens.push(t),
                Err(e) => errors.push(FieldError::new(
                    "--token-file",
                    format!("{} line {}", path.display(), n + 1),
                    e.to_string(),
                )),
            }
        }
        if tokens.is_empty() && errors.is_empty() {
            errors.push(FieldError::new(
                "--token-file",
                path.display(),
                "holds no token",
            ));
        }
    }
    crate::config::validate::absolute_path("--kubeconfig", &args.kubeconfig, &mut errors);
    InvalidInput::check(errors)?;
    Ok(if tokens.is_empty() {
        Mode::Cluster {
            kubeconfig: NodePath::new(&args.kubeconfig),
        }
    } else {
        Mode::Standalone(tokens)
    })
}

fn serve(global: &GlobalOpts, args: &ServeArgs) -> anyhow::Result<()> {
    let mode = parse_mode(args)?;
    let host = global.host();
    let ui = global.ui();
    let record = record::read(&host)?.with_context(|| {
        format!(
            "this node has no cluster record ({}): the discovery endpoint serves a control-plane node's cluster; run 'kubestrap init' first",
            host.disk(&record::path()).display()
        )
    })?;
    let model = record.model();
    let cp = model.control_plane()?;
    let leaf = &table::DISCOVERY_SERVING;
    let cert_path = leaf.cert_path(cp.cert_dir());
    let key_path = leaf.key_path(cp.cert_dir());
    if !(host.exists(&cert_path) && host.exists(&key_path)) {
        ensure_serving_certificate(&host, &cp)?;
    }
    let published = match &mode {
        Mode::Standalone(tokens) => {
            let ca_path = table::CA.cert_path(cp.cert_dir());
            let ca = host
                .read(&ca_path)
                .with_context(|| format!("reading the cluster CA {ca_path}"))?;
            let kubeconfig = cluster_info::kubeconfig(&cp.control_plane_url(), &ca)?;
            let signatures: Vec<(String, String)> = tokens
                .iter()
                .map(|t| (t.id.clone(), t.sign(&kubeconfig)))
                .collect();
            Some(Published::new(&kubeconfig, signatures))
        }
        Mode::Cluster { .. } => None,
    };
    let what = match &mode {
        Mode::Standalone(tokens) => format!(
            "standalone: the node's own cluster-info signed with {} token(s), ids {}",
            tokens.len(),
            tokens
                .iter()
                .map(|t| t.id.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Mode::Cluster { kubeconfig } => format!(
            "cluster mode: {}/{} read through {kubeconfig} every {}s",
            cluster_info::NAMESPACE,
            cluster_info::NAME,
            REFRESH.as_secs()
        ),
    };
    if global.dry_run {
        ui.line(format!(
            "[dry-run] Would serve https://{}/cluster-info/v1/ ({what})",
            std::net::SocketAddr::new(args.address, args.port)
        ));
        return Ok(());
    }
    let cert = host
        .read(&cert_path)
        .with_context(|| format!("reading {cert_path}"))?;
    let key = host
        .read(&key_path)
        .with_context(|| format!("reading {key_path}"))?;
    let options = ServerOptions {
        address: args.address,
        port: args.port,
        failures_per_second: args.rate_limit,
        failure_burst: args.rate_limit.saturating_mul(2),
        max_connections: args.max_connections as usize,
    };
    let server = Server::bind(&options, &cert, &key, global.ui())?;
    let addr = server.local_addr()?;
    let publisher = server.publisher();
    match (&mode, published) {
        (Mode::Standalone(_), published) => publisher.set(published),
        (Mode::Cluster { kubeconfig }, _) => {
            let host = global.host();
            let kubeconfig = kubeconfig.clone();
            std::thread::Builder::new()
                .name("cluster-info".into())
                .spawn(move || refresh_loop(&host, &kubeconfig, &publisher))
                .context("starting the cluster-info reader")?;
        }
    }
    ui.line(format!(
        "[discovery] Serving https://{addr}/cluster-info/v1/?token-id=<id> ({what})"
    ));
    server.run(shutdown_signal())?;
    ui.line("[discovery] Stopped");
    Ok(())
}

/// Issues the serving certificate from the cluster CA, journaled like any file kubestrap writes.
fn ensure_serving_certificate(host: &Host, cp: &crate::model::ControlPlane) -> anyhow::Result<()> {
    if host.dry_run() {
        host.ui().line(format!(
            "[dry-run] Would generate the {:?} certificate and key",
            table::DISCOVERY_SERVING.base_name
        ));
        return Ok(());
    }
    let undoers: [&dyn UndoEntry; 1] = [host];
    let session = Session::begin(host, "discovery serve", Recovery::Refuse, &undoers)?;
    let result = store::ensure_leaf(host, cp, &table::DISCOVERY_SERVING);
    session.finish(host, result, false, &undoers)
}

/// Cluster mode: reads what the cluster publishes every [`REFRESH`]; keeps serving the last good read
/// for [`STALE_AFTER`] while the API server does not answer, then answers 503 until it does.
fn refresh_loop(host: &Host, kubeconfig: &NodePath, publisher: &Publisher) {
    let ui = host.ui();
    let mut last_good = Instant::now();
    let mut last_error = String::new();
    let mut gateway: Option<Gateway> = None;
    loop {
        if gateway.is_none() {
            match connect(host, kubeconfig) {
                Ok(g) => gateway = Some(g),
                Err(e) => last_error = report(ui, &last_error, format!("{e:#}")),
            }
        }
        if let Some(g) = &gateway {
            match source::from_cluster(g, time::OffsetDateTime::now_utc()) {
                Ok(published) => {
                    if !last_error.is_empty() {
                        ui.line(format!(
                            "[discovery] Reading cluster-info again: serving token ids [{}]",
                            published.token_ids().join(",")
                        ));
                        last_error.clear();
                    }
                    publisher.set(Some(published));
                    last_good = Instant::now();
                }
                Err(e) => last_error = report(ui, &last_error, format!("{e:#}")),
            }
        }
        if last_good.elapsed() > STALE_AFTER {
            publisher.set(None);
        }
        std::thread::sleep(REFRESH);
    }
}

fn connect<'h>(host: &'h Host, kubeconfig: &NodePath) -> anyhow::Result<Gateway<'h>> {
    let connection = crate::kubeconfig::connection::connection(host, kubeconfig)?
        .with_context(|| format!("the kubeconfig {kubeconfig} does not exist (--kubeconfig)"))?;
    Ok(Gateway::new(
        host,
        Client::connect(&connection)?.with_retry(Retry::once()),
    ))
}

/// Warns about a failed read once per distinct error.
fn report(ui: &crate::output::Ui, last: &str, error: String) -> String {
    if error != last {
        ui.warn(format!("[discovery] reading cluster-info failed: {error}"));
    }
    error
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}
