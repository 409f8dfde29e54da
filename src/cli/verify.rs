//! `kubestrap verify network`: the post-install network smoke test (src/verify) through admin.conf,
//! with a progress line on a terminal, cleanup also on Ctrl-C, and exit 1 when any check fails.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::GlobalOpts;
use crate::cluster::{Client, Connection, Gateway, Retry};
use crate::error::InvalidInput;
use crate::host::NodePath;
use crate::output::Ui;
use crate::verify;

#[derive(Debug, Subcommand)]
pub enum VerifyCmd {
    /// Pod → pod on one node and across nodes, node → pod, the test Service's ClusterIP and DNS name
    /// (every endpoint), every node's NodePort, and the `kubernetes` Service from every node; exit 1
    /// naming each failing hop
    Network(NetworkArgs),
}

#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// The kubeconfig to reach the cluster with
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/kubernetes/admin.conf"
    )]
    pub kubeconfig: String,
    /// How long the whole check may take (checker pods becoming ready, then the probes), e.g. 90s, 3m
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = duration)]
    pub timeout: Duration,
    /// The agnhost image the checkers run (a mirror of the default where registry.k8s.io is not reachable)
    #[arg(long, value_name = "IMAGE", default_value = verify::objects::AGNHOST)]
    pub image: String,
    /// The port the host-network checkers listen on, HTTP (and PORT+1, UDP); both must be free on every node
    #[arg(long, value_name = "PORT", default_value_t = verify::objects::HOST_PORT,
          value_parser = clap::value_parser!(u16).range(1..65535))]
    pub host_port: u16,
}

/// `90s`, `3m`, `1m30s` or plain seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (e.g. 90s, 3m, 1m30s)");
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => number.push(c),
            'h' | 'm' | 's' => {
                let n: u64 = number.parse().map_err(|_| bad())?;
                total += n * match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                number.clear();
            }
            _ => return Err(bad()),
        }
    }
    if !number.is_empty() {
        total += number.parse::<u64>().map_err(|_| bad())?;
    }
    if total == 0 {
        return Err(format!("{} (must be more than 0s)", bad()));
    }
    Ok(Duration::from_secs(total))
}

pub fn run(global: &GlobalOpts, cmd: VerifyCmd) -> anyhow::Result<()> {
    let VerifyCmd::Network(args) = cmd;
    let mut errors = Vec::new();
    crate::config::validate::absolute_path("--kubeconfig", &args.kubeconfig, &mut errors);
    if args.image.trim().is_empty() || args.image.chars().any(char::is_whitespace) {
        errors.push(crate::error::FieldError::new(
            "--image",
            &args.image,
            "not an image reference",
        ));
    }
    InvalidInput::check(errors)?;
    let host = global.host();
    let path = NodePath::new(&args.kubeconfig);
    let connection = crate::kubeconfig::connection::connection(&host, &path)?
        .with_context(|| format!("the kubeconfig {path} does not exist (--kubeconfig)"))?;
    let gateway = Gateway::new(
        &host,
        Client::connect(&connection)?.with_retry(Retry::within(Duration::from_secs(10))),
    );
    let namespace = verify::namespace_name();
    if !global.dry_run {
        watch_interrupts(global.clone(), connection.clone(), namespace.clone());
    }
    let progress = Line::new(&global.ui());
    let options = verify::Options {
        timeout: args.timeout,
        image: args.image.clone(),
        host_port: args.host_port,
    };
    let outcome = verify::run(&gateway, &namespace, &options, &progress);
    progress.finish();
    let cleaned = if global.dry_run {
        Ok(())
    } else {
        verify::cleanup(&gateway, &namespace)
    };
    let report = outcome.with_context(|| format!("verifying the network through {path}"))?;
    cleaned?;
    let Some(report) = report else {
        return Ok(());
    };
    global.ui().result(&report, || report.render_text())?;
    if !report.passed() {
        let pairs = if report.failing_pairs.is_empty() {
            String::new()
        } else {
            format!(" between {}", report.pairs_text())
        };
        anyhow::bail!(
            "the cluster network is not healthy: {} failing check(s){pairs}",
            report.failures.len()
        );
    }
    Ok(())
}

/// On SIGINT or SIGTERM, deletes the run's namespace (with a client of its own, as the main thread
/// may be inside a call) and exits 130.
fn watch_interrupts(global: GlobalOpts, connection: Connection, namespace: String) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let signalled = runtime.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return false;
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                _ = term.recv() => true,
            }
        });
        drop(runtime);
        if !signalled {
            return;
        }
        crate::output::print_error_line(format!("interrupted: deleting namespace {namespace}"));
        let host = global.host();
        let code = match Client::connect(&connection)
            .map_err(anyhow::Error::from)
            .and_then(|c| verify::cleanup(&Gateway::new(&host, c), &namespace))
        {
            Ok(()) => 130,
            Err(e) => {
                crate::output::print_error_line(format!("error: {e:#}"));
                1
            }
        };
        std::process::exit(code);
    });
}

/// The progress line: an indicatif spinner on a terminal, `[verify]` lines on change otherwise.
struct Line {
    bar: Option<ProgressBar>,
    ui: Ui,
    last: std::sync::Mutex<String>,
}

impl Line {
    fn new(ui: &Ui) -> Line {
        let bar = ui.interactive().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} [verify] {msg} ({elapsed})")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Line {
            bar,
            ui: ui.clone(),
            last: std::sync::Mutex::new(String::new()),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl verify::Progress for Line {
    fn update(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
            return;
        }
        // Off a terminal, only the phase changes (not every count) become lines.
        let phase = message.split(':').next().unwrap_or(message).to_string();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if *last != phase {
            self.ui.debug(1, format!("[verify] {message}"));
            *last = phase;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("45").unwrap(), Duration::from_secs(45));
        assert!(duration("0s").is_err());
        assert!(duration("3x").unwrap_err().contains("\"3x\""));
    }
}
