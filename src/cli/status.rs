//! `kubestrap status`: the cluster's health through admin.conf (components per control-plane node,
//! nodes, addons), the discovery endpoint of this node and this node's certificates; exit 1 when any
//! check is FAIL.

use anyhow::Context as _;
use clap::Args;

use super::GlobalOpts;
use crate::certs::expiration;
use crate::certs::renew::{PkiLayout, require_pki};
use crate::cluster::{Client, Gateway, Retry};
use crate::error::InvalidInput;
use crate::host::{NodePath, well_known};
use crate::model::record;
use crate::status::{self, Discovery, Report};

#[derive(Debug, Args)]
pub struct StatusCmd {
    /// The kubeconfig to read the cluster with
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/kubernetes/admin.conf"
    )]
    pub kubeconfig: String,
    /// The port of this node's discovery endpoint (default: the one init recorded; 0: disabled, not checked)
    #[arg(long, value_name = "PORT")]
    pub discovery_port: Option<u16>,
}

pub fn run(global: &GlobalOpts, cmd: &StatusCmd) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    crate::config::validate::absolute_path("--kubeconfig", &cmd.kubeconfig, &mut errors);
    InvalidInput::check(errors)?;
    let host = global.host();
    let path = NodePath::new(&cmd.kubeconfig);
    let connection = crate::kubeconfig::connection::connection(&host, &path)?
        .with_context(|| format!("the kubeconfig {path} does not exist (--kubeconfig)"))?;
    let gateway = Gateway::new(
        &host,
        Client::connect(&connection)?.with_retry(Retry::within(std::time::Duration::from_secs(10))),
    );
    let record = record::read(&host)?;
    let external_etcd = record
        .as_ref()
        .is_some_and(|r| r.cluster.etcd.is_external());
    let mut checks = status::cluster_checks(&gateway, external_etcd)
        .with_context(|| format!("reading the cluster through {path}"))?;
    checks.extend(status::addon_checks(&gateway)?);
    if let Some(record) = &record {
        let model = record.model();
        let discovery_port = cmd.discovery_port.unwrap_or(record.cluster.discovery.port);
        if let Ok(cp) = model.control_plane() {
            let url = format!(
                "https://{}/cluster-info/v1/",
                crate::model::cluster::join_host_port(
                    &cp.advertise_address().to_string(),
                    discovery_port
                )
            );
            let ca = host
                .read(&crate::pki::table::CA.cert_path(cp.cert_dir()))
                .ok();
            let result = if discovery_port == 0 {
                Discovery::Disabled
            } else {
                probe_discovery(&gateway, &url, ca.as_deref())
            };
            checks.push(status::discovery_item(&url, result));
        }
        let kubeconfig_dir = NodePath::new(well_known::KUBERNETES_DIR);
        let layout = PkiLayout {
            cluster: &record.cluster,
            kubeconfig_dir: &kubeconfig_dir,
        };
        if require_pki(&host, &layout).is_ok() {
            let info = expiration::collect(&host, &layout, status::now())?;
            checks.extend(status::certificate_checks(&info, &model.node.name));
        }
    }
    let report = Report::new(checks);
    global
        .ui()
        .result(&report, || report.render_text().unwrap_or_default())?;
    let failed = report.failed();
    if !failed.is_empty() {
        let names: Vec<String> = failed
            .iter()
            .map(|c| match &c.node {
                Some(node) if node != &c.name => format!("{} {} on {node}", c.kind, c.name),
                _ => format!("{} {}", c.kind, c.name),
            })
            .collect();
        anyhow::bail!("the cluster is not healthy: FAIL for {}", names.join(", "));
    }
    Ok(())
}

/// Asks this node's discovery endpoint for the first signing token cluster-info carries and compares
/// the answer with the ConfigMap.
fn probe_discovery(gateway: &Gateway, url: &str, ca: Option<&[u8]>) -> Discovery {
    let map = match gateway.get::<k8s_openapi::api::core::v1::ConfigMap>(
        Some(crate::kubeconfig::cluster_info::NAMESPACE),
        crate::kubeconfig::cluster_info::NAME,
    ) {
        Ok(Some(m)) => m.data.unwrap_or_default(),
        _ => return Discovery::NoToken,
    };
    let Some((id, jws)) = map.iter().find_map(|(k, v)| {
        k.strip_prefix(crate::token::JWS_KEY_PREFIX)
            .map(|id| (id.to_string(), v.clone()))
    }) else {
        return Discovery::NoToken;
    };
    let kubeconfig = map
        .get(crate::kubeconfig::cluster_info::KUBECONFIG_KEY)
        .cloned()
        .unwrap_or_default();
    let fetch = async {
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5));
        if let Some(ca) = ca {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca)?);
        }
        let response = builder
            .build()?
            .get(format!("{url}?token-id={id}"))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Discovery::Unreachable(e.to_string()),
    };
    match runtime.block_on(fetch) {
        Err(e) => Discovery::Unreachable(crate::cluster::retry::error_chain(&e)),
        Ok((status, body)) => Discovery::Answered {
            matches: status == 200
                && body["kubeconfig"].as_str() == Some(kubeconfig.as_str())
                && body["jws"].as_str() == Some(jws.as_str()),
            status,
        },
    }
}
