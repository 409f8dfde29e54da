//! `kubestrap certs`: check-expiration, renew, certificate-key and generate-csr (kubeadm's `certs` commands).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::certs::renew::{self, PkiLayout, Renewal};
use crate::certs::{expiration, requests};
use crate::config::flags::InitFlags;
use crate::config::{load, validate as v};
use crate::error::{FieldError, InvalidInput};
use crate::host::{Host, NodePath};
use crate::model::resolve::{ClusterChoices, ClusterDocuments, cluster_from_documents};
use crate::model::{ClusterSpec, record};
use crate::workflow::rollback::UndoEntry;
use crate::workflow::session::{Recovery, Session};

#[derive(Debug, Subcommand)]
pub enum CertsCmd {
    /// Check certificates expiration for a Kubernetes cluster
    CheckExpiration(PkiArgs),
    /// Renew a certificate (or all) with a new key, keeping its subject, SANs and usages
    Renew(RenewArgs),
    /// Print a new random certificate key (64 hex characters) for --upload-certs
    CertificateKey,
    /// Generate keys and certificate signing requests for an external CA
    GenerateCsr(GenerateCsrArgs),
}

/// Where the cluster's PKI is: a configuration file and/or the cert dir.
#[derive(Debug, Args)]
pub struct PkiArgs {
    /// kubeadm.k8s.io/v1beta4 InitConfiguration/ClusterConfiguration (certificatesDir, encryptionAlgorithm, validity)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The directory of the certificates (default: certificatesDir, /etc/kubernetes/pki)
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<String>,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The certificate to renew, or "all"
    #[arg(value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(renew::renew_names()))]
    pub name: String,
    #[command(flatten)]
    pub pki: PkiArgs,
}

#[derive(Debug, Args)]
pub struct GenerateCsrArgs {
    #[command(flatten)]
    pub pki: PkiArgs,
    /// Where to write the kubeconfig files and their CSRs
    #[arg(long, value_name = "DIR", default_value = crate::host::well_known::KUBERNETES_DIR)]
    pub kubeconfig_dir: String,
}

pub fn run(global: &GlobalOpts, cmd: CertsCmd) -> anyhow::Result<()> {
    match cmd {
        CertsCmd::CheckExpiration(args) => check_expiration(global, &args),
        CertsCmd::Renew(args) => renew_command(global, &args),
        CertsCmd::CertificateKey => crate::output::print(format!("{}\n", certificate_key()?)),
        CertsCmd::GenerateCsr(args) => generate_csr(global, &args),
    }
}

/// 32 bytes from the system's CSPRNG as 64 lowercase hex characters.
pub fn certificate_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    Ok(hex::encode(bytes))
}

/// The cluster the certs commands work on: `--config` (its ClusterConfiguration), else the model this
/// node recorded at init, else kubeadm's defaults; `--cert-dir` overrides the certificates folder.
pub fn certs_cluster(
    host: &Host,
    args: &PkiArgs,
    kubeconfig_dir: &str,
) -> anyhow::Result<ClusterSpec> {
    let mut cluster = match &args.config {
        Some(path) => {
            let file = load::read_file(path)?;
            let documents = ClusterDocuments {
                cluster: file.cluster.unwrap_or_default(),
                kubelet: file.kubelet,
                kube_proxy: file.kube_proxy,
            };
            cluster_from_documents(documents, ClusterChoices::default())?.0
        }
        None => match record::read(host)? {
            Some(record) => record.cluster,
            None => {
                cluster_from_documents(ClusterDocuments::default(), ClusterChoices::default())?.0
            }
        },
    };
    let mut errors: Vec<FieldError> = Vec::new();
    if let Some(dir) = &args.cert_dir {
        v::absolute_path("--cert-dir", dir, &mut errors);
        cluster.certificates.dir = NodePath::new(dir);
    }
    v::absolute_path("--kubeconfig-dir", kubeconfig_dir, &mut errors);
    InvalidInput::check(errors)?;
    Ok(cluster)
}

fn check_expiration(global: &GlobalOpts, args: &PkiArgs) -> anyhow::Result<()> {
    let host = global.host();
    let kubeconfig_dir = crate::host::well_known::KUBERNETES_DIR;
    let cluster = certs_cluster(&host, args, kubeconfig_dir)?;
    let layout = PkiLayout {
        cluster: &cluster,
        kubeconfig_dir: &NodePath::new(kubeconfig_dir),
    };
    renew::require_pki(&host, &layout)?;
    let info = expiration::collect(&host, &layout, time::OffsetDateTime::now_utc())?;
    global.ui().result(&info, || expiration::render_text(&info))
}

fn renew_command(global: &GlobalOpts, args: &RenewArgs) -> anyhow::Result<()> {
    let host = global.host();
    let kubeconfig_dir = crate::host::well_known::KUBERNETES_DIR;
    let cluster = certs_cluster(&host, &args.pki, kubeconfig_dir)?;
    let kubeconfig_dir = NodePath::new(kubeconfig_dir);
    let layout = PkiLayout {
        cluster: &cluster,
        kubeconfig_dir: &kubeconfig_dir,
    };
    let all = args.name == "all";
    let targets: Vec<_> = renew::targets(layout.external_etcd())
        .into_iter()
        .filter(|t| all || t.name() == args.name)
        .collect();
    if targets.is_empty() {
        return Err(InvalidInput::one(
            "NAME",
            &args.name,
            "is not a valid certificate for this cluster (its etcd is external)",
        )
        .into());
    }
    renew::require_pki(&host, &layout)?;
    let command = format!("certs renew {}", args.name);
    run_journaled(&host, &command, |host| {
        let ui = host.ui();
        for target in &targets {
            match renew::renew(host, &layout, *target)? {
                Renewal::Renewed => ui.line(format!("{} renewed", target.long_name())),
                Renewal::Missing if all && target.optional() => {}
                Renewal::Missing => ui.line(format!("MISSING! {}", target.long_name())),
                Renewal::ExternalCa => ui.line(format!(
                    "Detected external {}, {} can't be renewed",
                    target.ca().base_name,
                    target.long_name()
                )),
            }
        }
        if all {
            ui.line("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.");
        }
        Ok(())
    })
}

fn generate_csr(global: &GlobalOpts, args: &GenerateCsrArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    v::absolute_path("--kubeconfig-dir", &args.kubeconfig_dir, &mut errors);
    if let Some(dir) = &args.pki.cert_dir {
        v::absolute_path("--cert-dir", dir, &mut errors);
    }
    InvalidInput::check(errors)?;
    let file = match &args.pki.config {
        Some(path) => load::read_file(path)?,
        None => load::ConfigFile::default(),
    };
    let flags = InitFlags {
        cert_dir: args.pki.cert_dir.clone(),
        ..Default::default()
    };
    let host = global.host();
    let init_phases = crate::workflow::phase_paths(&crate::phases::init::workflow().tree());
    let resolved =
        crate::model::resolve::init::resolve_file(file, &flags, host.facts(), &init_phases)?;
    for notice in &resolved.notices {
        global.ui().warn(notice);
    }
    let cp = resolved.model.control_plane()?;
    run_journaled(&host, "certs generate-csr", |host| {
        requests::generate_all(host, &cp, &NodePath::new(&args.kubeconfig_dir))
    })
}

/// Runs a command that writes files in one session: under the node lock, journaled, refused while an
/// earlier run is unfinished, and rolled back on failure.
fn run_journaled(
    host: &Host,
    command: &str,
    body: impl FnOnce(&Host) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let undoers: [&dyn UndoEntry; 1] = [host];
    let session = Session::begin(host, command, Recovery::Refuse, &undoers)?;
    let result = body(host);
    session.finish(host, result, false, &undoers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_keys_are_64_hex_and_differ() {
        let a = certificate_key().unwrap();
        let b = certificate_key().unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn defaults_record_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(
            crate::host::Root::new(dir.path()),
            crate::host::Facts::default(),
            false,
            crate::output::Ui::default(),
        );
        let none = PkiArgs {
            config: None,
            cert_dir: None,
        };
        let c = certs_cluster(&host, &none, "/etc/kubernetes").unwrap();
        assert_eq!(c.certificates.dir, NodePath::new("/etc/kubernetes/pki"));
        assert_eq!(
            c.certificates.encryption_algorithm,
            crate::config::EncryptionAlgorithm::EcdsaP256
        );
        let mut model = crate::model::testing::control_plane_model("");
        model.cluster.certificates.dir = NodePath::new("/srv/pki");
        record::write(&host, &model, "init").unwrap();
        let c = certs_cluster(&host, &none, "/etc/kubernetes").unwrap();
        assert_eq!(c.certificates.dir, NodePath::new("/srv/pki"));
        let relative = PkiArgs {
            config: None,
            cert_dir: Some("pki".into()),
        };
        let err = certs_cluster(&host, &relative, "/etc/kubernetes").unwrap_err();
        let invalid = err.downcast_ref::<InvalidInput>().unwrap();
        assert_eq!(invalid.errors[0].field, "--cert-dir");
    }
}
