//! A joining node's discovery client: fetches cluster-info from the API server (anonymously, as
//! kubeadm does) or from kubestrap's token-signed endpoint (`--discovery-url`), verifies it
//! ([`super::verify`]) and reads it again over TLS verified with the pinned CA; or reads a discovery
//! kubeconfig file or URL. Unreachable sources and missing signatures are retried with back-off within
//! the discovery timeout, shown on an indicatif line.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::verify::{self, CaTrust, ClusterInfo, DiscoveryError};
use crate::error::InvalidInput;
use crate::kubeconfig::KubeConfig;
use crate::output::Ui;
use crate::token::Token;

/// The bound on one request (connect + answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Where token discovery reads cluster-info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port` of an API server: `GET /api/v1/namespaces/kube-public/configmaps/cluster-info`.
    ApiServer(String),
    /// kubestrap's discovery endpoint `https://HOST:PORT`: `GET /cluster-info/v1/?token-id=<id>`.
    Signed(String),
}

impl Endpoint {
    fn url(&self, token_id: &str) -> String {
        match self {
            Endpoint::ApiServer(host_port) => format!(
                "https://{host_port}/api/v1/namespaces/{}/configmaps/{}",
                crate::kubeconfig::cluster_info::NAMESPACE,
                crate::kubeconfig::cluster_info::NAME
            ),
            Endpoint::Signed(base) => format!(
                "{}{}?token-id={token_id}",
                base.trim_end_matches('/'),
                super::PATH
            ),
        }
    }

    /// The address as the user gave it, for messages.
    pub fn address(&self) -> String {
        match self {
            Endpoint::ApiServer(host_port) => format!("https://{host_port}"),
            Endpoint::Signed(base) => base.trim_end_matches('/').to_string(),
        }
    }
}

/// What one read of cluster-info returned: the kubeconfig and the token's signature, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signed {
    kubeconfig: String,
    jws: Option<String>,
}

/// Token discovery: cluster-info from `endpoint`, signed with `token`, its CA trusted by `trust`,
/// retried within `timeout`.
pub fn token_discovery(
    endpoint: &Endpoint,
    token: &Token,
    trust: &CaTrust,
    timeout: Duration,
    ui: &Ui,
) -> anyhow::Result<ClusterInfo> {
    let address = endpoint.address();
    if *trust == CaTrust::UnsafeSkip {
        ui.warn(format!(
            "[discovery] --discovery-token-unsafe-skip-ca-verification: the cluster CA from {address} is trusted \
             without pinning it (anyone who knows the token could impersonate the cluster)"
        ));
    }
    ui.line(format!(
        "[discovery] Reading cluster-info from {address} with token id {:?}",
        token.id
    ));
    let progress = Progress::new(ui, &address);
    let started = Instant::now();
    let mut attempt = 0u32;
    let info = loop {
        attempt += 1;
        let result = fetch(endpoint, token, None).and_then(|signed| {
            verify::verify(
                &signed.kubeconfig,
                signed.jws.as_deref(),
                token,
                trust,
                &address,
            )
        });
        match result {
            Ok(info) => break info,
            Err(e) if e.is_transient() && started.elapsed() < timeout => {
                progress.waiting(attempt, &e);
                let delay = FIRST_DELAY
                    .saturating_mul(2u32.saturating_pow(attempt.min(8) - 1))
                    .min(MAX_DELAY)
                    .min(timeout.saturating_sub(started.elapsed()));
                std::thread::sleep(delay);
            }
            Err(e) => {
                progress.failed();
                let waited = if e.is_transient() {
                    format!(
                        " (gave up after {attempt} attempt(s) in {:.0?}, the discovery timeout is {})",
                        started.elapsed(),
                        crate::config::duration::GoDuration(timeout)
                    )
                } else {
                    String::new()
                };
                return Err(anyhow::Error::new(e)
                    .context(format!("discovery through {address} failed{waited}")));
            }
        }
    };
    // Read it again over TLS verified with the CA just trusted: a man in the middle who knows the
    // token could sign a cluster-info of his own, not present a certificate of the pinned CA.
    let again = fetch(endpoint, token, Some(&info.ca_pem)).map_err(|e| {
        progress.failed();
        anyhow::Error::new(e).context(format!(
            "reading cluster-info again from {address} over TLS verified with the cluster CA failed: \
             the endpoint's certificate does not chain to the CA cluster-info names"
        ))
    })?;
    if again.kubeconfig != info.kubeconfig {
        progress.failed();
        anyhow::bail!(
            "cluster-info read from {address} over TLS verified with the cluster CA differs from the first read: \
             can't trust this endpoint"
        );
    }
    progress.done();
    ui.line(format!(
        "[discovery] cluster-info from {address} verified: signed with token id {:?}, {}; API server(s) {}",
        token.id,
        match trust {
            CaTrust::Pinned(_) => "its CA matches the pinned public key",
            CaTrust::UnsafeSkip => "its CA is not pinned",
        },
        info.servers.join(", ")
    ));
    Ok(info)
}

/// One read of cluster-info, TLS unverified (`ca` None) or verified with `ca`.
fn fetch(endpoint: &Endpoint, token: &Token, ca: Option<&[u8]>) -> Result<Signed, DiscoveryError> {
    let url = endpoint.url(&token.id);
    let address = endpoint.address();
    let (status, body) = get(&url, ca).map_err(|reason| DiscoveryError::Unreachable {
        address: address.clone(),
        reason,
    })?;
    let malformed = |reason: String| DiscoveryError::Malformed {
        from: address.clone(),
        reason,
    };
    match (endpoint, status) {
        (Endpoint::ApiServer(_), 200) => {
            let map: Value = serde_json::from_str(&body)
                .map_err(|e| malformed(format!("the answer is not a ConfigMap: {e}")))?;
            let data = &map["data"];
            let kubeconfig = data[crate::kubeconfig::cluster_info::KUBECONFIG_KEY]
                .as_str()
                .ok_or_else(|| malformed("the ConfigMap has no \"kubeconfig\" key".into()))?;
            let jws = data[format!("{}{}", crate::token::JWS_KEY_PREFIX, token.id)]
                .as_str()
                .map(str::to_string);
            Ok(Signed {
                kubeconfig: kubeconfig.to_string(),
                jws,
            })
        }
        (Endpoint::Signed(_), 200) => {
            let answer: Value = serde_json::from_str(&body)
                .map_err(|e| malformed(format!("the answer is not JSON: {e}")))?;
            let kubeconfig = answer["kubeconfig"]
                .as_str()
                .ok_or_else(|| malformed("the answer has no \"kubeconfig\"".into()))?;
            Ok(Signed {
                kubeconfig: kubeconfig.to_string(),
                jws: answer["jws"].as_str().map(str::to_string),
            })
        }
        // The endpoint answers 404 for a token id it holds no signature for.
        (Endpoint::Signed(_), 404) => Ok(Signed {
            kubeconfig: String::new(),
            jws: None,
        }),
        (_, 429 | 500..=599) => Err(DiscoveryError::Unreachable {
            address,
            reason: format!("HTTP {status}: {}", snippet(&body)),
        }),
        (_, status) => Err(DiscoveryError::Refused {
            address,
            reason: format!("HTTP {status}: {}", snippet(&body)),
        }),
    }
}

fn snippet(body: &str) -> String {
    body.trim().chars().take(200).collect()
}

/// `GET url` → (status, body); the error is the innermost cause, as curl would say it.
fn get(url: &str, ca: Option<&[u8]>) -> Result<(u16, String), String> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(REQUEST_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    builder = match ca {
        Some(pem) => builder.tls_certs_only(
            reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the cluster CA is not usable: {e}"))?,
        ),
        None => builder.tls_danger_accept_invalid_certs(true),
    };
    send(builder, url)
}

/// Builds the client and sends one `GET url`.
fn send(builder: reqwest::ClientBuilder, url: &str) -> Result<(u16, String), String> {
    let client = builder
        .build()
        .map_err(|e| format!("building the HTTPS client: {e}"))?;
    crate::host::runtime::block_on(async {
        let response = client.get(url).send().await.map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| describe(&e))?;
        Ok((status, body))
    })
    .map_err(|e| format!("{e:#}"))?
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {}s", REQUEST_TIMEOUT.as_secs());
    }
    let mut source: &dyn std::error::Error = e;
    let mut text = e.to_string();
    while let Some(inner) = source.source() {
        source = inner;
        text = inner.to_string();
    }
    text
}

/// Input validation of a local discovery file, before a join changes anything: it must be a readable
/// kubeconfig whose current cluster carries its CA, and whose user has credentials unless a TLS
/// bootstrap token is given (a URL is read by discovery itself).
pub fn check_file(location: &str, tls_bootstrap_token: bool) -> anyhow::Result<()> {
    if location.starts_with("https://") || location.starts_with("http://") {
        return Ok(());
    }
    let config = file_discovery(location)?;
    if !tls_bootstrap_token && !has_credentials(&config) {
        return Err(InvalidInput::one(
            "--tls-bootstrap-token (discovery.tlsBootstrapToken)",
            "",
            format!(
                "the discovery file {location} carries no credentials: give the token the kubelet bootstraps with"
            ),
        )
        .into());
    }
    Ok(())
}

/// Whether the current user of a discovery kubeconfig has a token or a client certificate and key.
pub fn has_credentials(config: &KubeConfig) -> bool {
    config.current().is_ok_and(|current| {
        let user = &current.user.user;
        user.token.is_some()
            || (user.client_certificate_data.is_some() && user.client_key_data.is_some())
    })
}

/// File discovery: the kubeconfig at a path or an `https://` (or `http://`) URL.
pub fn file_discovery(location: &str) -> anyhow::Result<KubeConfig> {
    let invalid = |reason: String| InvalidInput::one("--discovery-file", location, reason);
    let text = if location.starts_with("https://") || location.starts_with("http://") {
        let (status, body) = get_with_system_roots(location).map_err(|reason| {
            anyhow::Error::new(DiscoveryError::Unreachable {
                address: location.to_string(),
                reason,
            })
        })?;
        if status != 200 {
            anyhow::bail!(
                "discovery file {location}: HTTP {status}: {}",
                snippet(&body)
            );
        }
        body
    } else {
        std::fs::read_to_string(location).map_err(|e| invalid(format!("can not be read: {e}")))?
    };
    let config = KubeConfig::parse(&text).map_err(|e| invalid(format!("not a kubeconfig: {e}")))?;
    let cluster = file_cluster(&config).ok_or_else(|| {
        invalid(
            "names no cluster to join: neither a cluster named \"\" (a cluster-info kubeconfig's) nor a current context's"
                .into(),
        )
    })?;
    if cluster.certificate_authority_data.is_none() {
        return Err(invalid("its cluster has no certificate-authority-data".into()).into());
    }
    Ok(config)
}

/// The cluster a discovery kubeconfig names, as kubeadm picks it: the unnamed cluster (a cluster-info
/// kubeconfig's), else the current context's.
pub fn file_cluster(config: &KubeConfig) -> Option<&crate::kubeconfig::Cluster> {
    config
        .clusters
        .iter()
        .find(|c| c.name.is_empty())
        .map(|c| &c.cluster)
        .or_else(|| config.current().ok().map(|c| &c.cluster.cluster))
}

fn get_with_system_roots(url: &str) -> Result<(u16, String), String> {
    send(
        reqwest::Client::builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .timeout(REQUEST_TIMEOUT),
        url,
    )
}

/// The indicatif line while discovery retries (plain lines without a terminal).
struct Progress<'u> {
    ui: &'u Ui,
    bar: Option<ProgressBar>,
    address: String,
    last: std::cell::RefCell<String>,
}

impl<'u> Progress<'u> {
    fn new(ui: &'u Ui, address: &str) -> Self {
        let bar = ui.interactive().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [discovery] {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("reading cluster-info from {address}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            ui,
            bar,
            address: address.to_string(),
            last: std::cell::RefCell::new(String::new()),
        }
    }

    fn waiting(&self, attempt: u32, error: &DiscoveryError) {
        let text = error.to_string();
        match &self.bar {
            Some(bar) => bar.set_message(format!("attempt {attempt}: {text}; retrying")),
            None => {
                if *self.last.borrow() != text {
                    self.ui.warn(format!(
                        "[discovery] {}: attempt {attempt} failed: {text}; retrying",
                        self.address
                    ));
                }
            }
        }
        *self.last.borrow_mut() = text;
    }

    fn failed(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
