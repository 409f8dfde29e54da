//! The kube-controller-manager double: loads its kubeconfigs, serves its secure health port, takes
//! the leader lease, and runs the controllers a kubeadm cluster depends on — each, as with
//! --use-service-account-credentials, under its own service account's token.

pub mod controllers;
pub mod csr;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod flags;
pub mod gc;
pub mod informer;
pub mod nodeipam;
pub mod podutil;
pub mod replicaset;
pub mod runner;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::common::client::ApiClient;
use crate::common::leader::Election;
use crate::common::{kubeconfig, serve, tls};
use crate::logf;

const COMPONENT: &str = "kube-controller-manager";

pub fn main(args: &[String]) -> i32 {
    crate::run_component(COMPONENT, args, run)
}

/// Loads a kubeconfig flag, failing like the real component when it is set but unusable.
pub fn client_from(flag: &str, path: Option<&str>) -> Result<Option<ApiClient>> {
    match path {
        None => Ok(None),
        Some(p) => {
            let config =
                kubeconfig::load(std::path::Path::new(p)).with_context(|| format!("--{flag}"))?;
            Ok(Some(ApiClient::new(&config)?))
        }
    }
}

/// Waits until the API server answers with this client's credentials.
pub async fn wait_for_api(client: &ApiClient, component: &str) {
    loop {
        match client.get("/api/v1/namespaces/kube-system").await {
            Ok(_) => return,
            Err(e) if e.status == 403 || e.status == 404 => return,
            Err(e) => logf!(
                component,
                "waiting for the API server at {}: {e}",
                client.server()
            ),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Serves /healthz, /livez and /readyz on the secure port with --tls-cert-file or a self-signed
/// certificate (the paths in --authorization-always-allow-paths need no credentials).
pub async fn serve_health(
    flags: &crate::common::flags::Flags,
    default_port: u16,
    component: &'static str,
) -> Result<()> {
    let port = flags.port("secure-port", default_port)?;
    if port == 0 {
        return Ok(());
    }
    let bind = flags
        .ip("bind-address")?
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let (chain, key) = match (
        flags.non_empty("tls-cert-file"),
        flags.non_empty("tls-private-key-file"),
    ) {
        (Some(c), Some(k)) => (
            tls::read_certs(std::path::Path::new(&c))?,
            tls::read_key(std::path::Path::new(&k))?,
        ),
        _ => {
            let (c, k) = tls::self_signed(
                &format!("localhost@{}", crate::common::time::unix_now()),
                &["localhost".into(), bind.to_string()],
            )?;
            (
                tls::certs_from_pem(c.as_bytes())?,
                tls::key_from_pem(k.as_bytes())?,
            )
        }
    };
    let client_cas = match flags.non_empty("client-ca-file") {
        Some(p) => Some(
            tls::read_certs(std::path::Path::new(&p))
                .with_context(|| format!("unable to load client CA file {p}"))?,
        ),
        None => None,
    };
    let config = tls::server_config(chain, key, client_cas.as_deref())?;
    let listener = serve::bind(SocketAddr::new(bind, port)).await?;
    logf!(component, "Serving securely on {bind}:{port}");
    tokio::spawn(serve::serve_tls(
        listener,
        config,
        |req, _peer| async move { serve::health_response(req.uri().path()) },
    ));
    Ok(())
}

/// A client acting as kube-system/<name>: the service account is created if missing and a token
/// requested for it, as the controller manager does with --use-service-account-credentials.
async fn service_account_client(own: &ApiClient, name: &str) -> Result<ApiClient> {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "kube-system"}});
    match own
        .create("/api/v1/namespaces/kube-system/serviceaccounts", &sa)
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_conflict() => {}
        Err(e) => bail!("create service account kube-system/{name}: {e}"),
    }
    let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}});
    let response = own
        .create(
            &format!("/api/v1/namespaces/kube-system/serviceaccounts/{name}/token"),
            &request,
        )
        .await
        .map_err(|e| anyhow::anyhow!("request a token for kube-system/{name}: {e}"))?;
    let token = response["status"]["token"].as_str().unwrap_or_default();
    own.with_token(token)
}

/// The controller manager's own client, and whether each controller gets its own service
/// account's (--use-service-account-credentials).
pub struct Credentials {
    own: ApiClient,
    per_controller: bool,
}

impl Credentials {
    pub async fn for_controller(&self, service_account: &str) -> ApiClient {
        if !self.per_controller {
            return self.own.clone();
        }
        loop {
            match service_account_client(&self.own, service_account).await {
                Ok(c) => return c,
                Err(e) => logf!(
                    COMPONENT,
                    "error getting credentials for {service_account}: {e:#}"
                ),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// Runs `pass` every `period` with fresh service-account credentials every half hour.
fn spawn_controller<F, Fut>(
    creds: std::sync::Arc<Credentials>,
    service_account: &'static str,
    period: Duration,
    name: &'static str,
    pass: F,
) where
    F: Fn(ApiClient) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    tokio::spawn(async move {
        logf!(COMPONENT, "Started controller {name}");
        loop {
            let client = creds.for_controller(service_account).await;
            let refreshed = tokio::time::Instant::now();
            while refreshed.elapsed() < Duration::from_secs(1800) {
                if let Err(e) = pass(client.clone()).await {
                    logf!(COMPONENT, "{name}: {e:#}");
                }
                tokio::time::sleep(period).await;
            }
        }
    });
}

/// A controller that cannot start ends the controller manager, as StartControllers' error does
/// (`klog.FlushAndExit(…, 1)`), after the two log lines the real one writes.
pub fn fail_start(controller: &str, error: &str) -> ! {
    logf!(
        COMPONENT,
        "\"Error starting controller\" err=\"{error}\" controller=\"{controller}\""
    );
    logf!(COMPONENT, "\"Error starting controllers\" err=\"{error}\"");
    std::process::exit(1);
}

/// EndpointSliceControllerOptions.Validate for --max-endpoints-per-slice (1..=1000).
fn max_endpoints_per_slice(flags: &crate::common::flags::Flags) -> Result<usize> {
    let value = flags.int("max-endpoints-per-slice", 100)?;
    if value < 1 {
        bail!("max-endpoints-per-slice must not be less than 1, but got {value}");
    }
    if value > 1000 {
        bail!("max-endpoints-per-slice must not be more than 1000, but got {value}");
    }
    Ok(usize::try_from(value).unwrap_or(100))
}

/// Starts the informer-driven controllers that are enabled, each under its real service account.
fn start_workload_controllers(
    flags: &crate::common::flags::Flags,
    on: &dyn Fn(&str) -> bool,
    creds: &std::sync::Arc<Credentials>,
    own: &ApiClient,
    max_per_slice: usize,
) -> Result<()> {
    let informers = informer::Informers::new(own.clone());
    if on(nodeipam::NAME) {
        match nodeipam::config(flags) {
            Ok(Some(config)) => runner::spawn(
                creds.clone(),
                "node-controller",
                nodeipam::NodeIpamController::new(&informers, config),
            ),
            Ok(None) => {}
            Err(e) => fail_start(nodeipam::NAME, &e),
        }
    }
    if on("daemonset-controller") {
        runner::spawn(
            creds.clone(),
            "daemon-set-controller",
            daemonset::DaemonSetController::new(&informers),
        );
    }
    if on("deployment-controller") {
        runner::spawn(
            creds.clone(),
            "deployment-controller",
            deployment::DeploymentController::new(&informers),
        );
    }
    if on("replicaset-controller") {
        runner::spawn(
            creds.clone(),
            "replicaset-controller",
            replicaset::ReplicaSetController::new(&informers),
        );
    }
    if on("endpoints-controller") {
        runner::spawn(
            creds.clone(),
            "endpoint-controller",
            endpoints::EndpointsController::new(&informers),
        );
    }
    if on("endpointslice-controller") {
        runner::spawn(
            creds.clone(),
            "endpointslice-controller",
            endpointslice::EndpointSliceController::new(&informers, max_per_slice),
        );
    }
    if on("garbage-collector-controller") && flags.bool("enable-garbage-collector", true)? {
        runner::spawn(
            creds.clone(),
            "generic-garbage-collector",
            gc::GarbageCollector::new(&informers, own.clone()),
        );
    }
    Ok(())
}

async fn run(args: Vec<String>) -> Result<()> {
    let flags = flags::flag_table().parse(&args)?;
    if flags.has("version") {
        println!("Kubernetes {}", crate::apiserver::component_version());
        return Ok(());
    }
    let enabled = flags::enabled_controllers(&flags.list("controllers"))?;
    let max_per_slice = max_endpoints_per_slice(&flags)?;
    let signing_duration =
        flags.duration("cluster-signing-duration", Duration::from_secs(8760 * 3600))?;
    let ca = |cert: &str, key: &str| -> Result<Option<csr::SigningCa>> {
        match (flags.non_empty(cert), flags.non_empty(key)) {
            (Some(c), Some(k)) => Ok(Some(csr::SigningCa {
                cert: PathBuf::from(c),
                key: PathBuf::from(k),
            })),
            (None, None) => Ok(None),
            _ => bail!("--{cert} and --{key} must be specified together"),
        }
    };
    let default_ca = ca("cluster-signing-cert-file", "cluster-signing-key-file")?;
    let mut per_signer = Vec::new();
    for (signer, prefix) in [
        (
            "kubernetes.io/kube-apiserver-client",
            "cluster-signing-kube-apiserver-client",
        ),
        (
            "kubernetes.io/kube-apiserver-client-kubelet",
            "cluster-signing-kubelet-client",
        ),
        (
            "kubernetes.io/kubelet-serving",
            "cluster-signing-kubelet-serving",
        ),
        (
            "kubernetes.io/legacy-unknown",
            "cluster-signing-legacy-unknown",
        ),
    ] {
        if let Some(c) = ca(
            &format!("{prefix}-cert-file"),
            &format!("{prefix}-key-file"),
        )? {
            if default_ca.is_some() {
                bail!("cannot specify default and per controller certs at the same time");
            }
            per_signer.push((signer, c));
        }
    }
    for signing in default_ca.iter().chain(per_signer.iter().map(|(_, c)| c)) {
        tls::read_certs(&signing.cert).context("cluster signing certificate")?;
        tls::read_key(&signing.key).context("cluster signing key")?;
    }
    let root_ca = flags.non_empty("root-ca-file").map(PathBuf::from);
    if let Some(p) = &root_ca {
        tls::read_certs(p).context("--root-ca-file")?;
    }
    if let Some(p) = flags.non_empty("service-account-private-key-file") {
        tls::read_key(std::path::Path::new(&p)).context("--service-account-private-key-file")?;
    }
    if let Some(p) = flags.non_empty("requestheader-client-ca-file") {
        tls::read_certs(std::path::Path::new(&p)).context("--requestheader-client-ca-file")?;
    }
    client_from(
        "authentication-kubeconfig",
        flags.non_empty("authentication-kubeconfig").as_deref(),
    )?;
    client_from(
        "authorization-kubeconfig",
        flags.non_empty("authorization-kubeconfig").as_deref(),
    )?;
    let own = client_from("kubeconfig", flags.non_empty("kubeconfig").as_deref())?
        .ok_or_else(|| anyhow::anyhow!("invalid configuration: no configuration has been provided, try setting KUBERNETES_MASTER environment variable"))?;
    serve_health(&flags, 10257, COMPONENT).await?;
    wait_for_api(&own, COMPONENT).await;

    let election = Election::from_flags(&flags, "kube-controller-manager")?;
    if let Some(election) = &election {
        election.acquire(&own).await;
    }
    let creds = std::sync::Arc::new(Credentials {
        own: own.clone(),
        per_controller: flags.bool("use-service-account-credentials", false)?,
    });
    let on = |name: &str| enabled.contains(&name);
    if on("certificatesigningrequest-approving-controller") {
        spawn_controller(
            creds.clone(),
            "certificate-controller",
            Duration::from_millis(500),
            "csrapproving",
            |c| async move { csr::approve(&c).await },
        );
    }
    if on("certificatesigningrequest-signing-controller")
        && (default_ca.is_some() || !per_signer.is_empty())
    {
        let signer = std::sync::Arc::new(csr::Signer {
            default_ca: default_ca.clone(),
            per_signer,
            duration: signing_duration,
        });
        spawn_controller(
            creds.clone(),
            "certificate-controller",
            Duration::from_millis(500),
            "csrsigning",
            move |c| {
                let signer = signer.clone();
                async move { signer.run_once(&c).await }
            },
        );
    }
    if on("bootstrap-signer-controller") {
        spawn_controller(
            creds.clone(),
            "bootstrap-signer",
            Duration::from_secs(1),
            "bootstrapsigner",
            |c| async move { controllers::sign_cluster_info(&c).await },
        );
    }
    if on("token-cleaner-controller") {
        spawn_controller(
            creds.clone(),
            "token-cleaner",
            Duration::from_secs(5),
            "tokencleaner",
            |c| async move { controllers::clean_tokens(&c).await },
        );
    }
    if let (true, Some(root_ca)) = (on("root-ca-certificate-publisher-controller"), root_ca) {
        let lister = own.clone();
        spawn_controller(
            creds.clone(),
            "root-ca-cert-publisher",
            Duration::from_secs(2),
            "root-ca-cert-publisher",
            move |c| {
                let (lister, root_ca) = (lister.clone(), root_ca.clone());
                async move { controllers::publish_root_ca(&lister, &c, &root_ca).await }
            },
        );
    }
    if on("serviceaccount-controller") {
        let lister = own.clone();
        spawn_controller(
            creds.clone(),
            "service-account-controller",
            Duration::from_secs(2),
            "serviceaccount",
            move |c| {
                let lister = lister.clone();
                async move { controllers::default_service_accounts(&lister, &c).await }
            },
        );
    }
    if on("node-lifecycle-controller") {
        let grace = flags.duration("node-monitor-grace-period", Duration::from_secs(50))?;
        let lister = own.clone();
        spawn_controller(
            creds.clone(),
            "node-controller",
            Duration::from_secs(5),
            "nodelifecycle",
            move |c| {
                let lister = lister.clone();
                async move { controllers::node_lifecycle(&lister, &c, grace).await }
            },
        );
    }
    start_workload_controllers(&flags, &on, &creds, &own, max_per_slice)?;
    if let Some(election) = &election {
        election.hold(&own).await;
        bail!("leaderelection lost");
    }
    std::future::pending::<()>().await;
    Ok(())
}
