//! `kubestrap certs`: check-expiration, renew, certificate-key and generate-csr (kubeadm's `certs` commands).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::config::flags::{InitFlags, PodNetwork};
use crate::config::{EncryptionAlgorithm, defaults, load, validate as v};
use crate::error::{FieldError, InvalidInput};
use crate::host::lock::NodeLock;
use crate::host::{Host, NodePath};
use crate::pki::renew::{self, PkiParams, Renewal};
use crate::pki::{expiration, requests};

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
        CertsCmd::CertificateKey => {
            println!("{}", certificate_key()?);
            Ok(())
        }
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

/// The PKI parameters from `--config` (ClusterConfiguration) and `--cert-dir`, defaulted as kubeadm does.
pub fn pki_params(args: &PkiArgs, kubeconfig_dir: &str) -> Result<PkiParams, InvalidInput> {
    let file = match &args.config {
        Some(path) => load::read_file(path)?,
        None => load::ConfigFile::default(),
    };
    let mut cluster = file.cluster.unwrap_or_default();
    defaults::cluster_configuration(&mut cluster, PodNetwork::default());
    let mut errors: Vec<FieldError> = Vec::new();
    let (field, cert_dir) = match &args.cert_dir {
        Some(dir) => ("--cert-dir", dir.clone()),
        None => (
            "certificatesDir",
            cluster.certificates_dir.clone().unwrap_or_default(),
        ),
    };
    v::absolute_path(field, &cert_dir, &mut errors);
    v::absolute_path("--kubeconfig-dir", kubeconfig_dir, &mut errors);
    let algorithm = cluster.encryption_algorithm.clone().unwrap_or_default();
    let encryption = algorithm
        .parse::<EncryptionAlgorithm>()
        .unwrap_or_else(|e| {
            errors.push(FieldError::new("encryptionAlgorithm", &algorithm, e));
            EncryptionAlgorithm::default()
        });
    let cert_validity = cluster
        .certificate_validity_period
        .unwrap_or(defaults::DEFAULT_CERT_VALIDITY);
    if cert_validity.0 < std::time::Duration::from_secs(3600) {
        errors.push(FieldError::new(
            "certificateValidityPeriod",
            cert_validity,
            "a certificate validity period must be at least 1h0m0s",
        ));
    }
    InvalidInput::check(errors)?;
    Ok(PkiParams {
        cert_dir: NodePath::new(cert_dir),
        kubeconfig_dir: NodePath::new(kubeconfig_dir),
        encryption,
        cert_validity: cert_validity.0,
        external_etcd: cluster.etcd.external.is_some(),
    })
}

fn check_expiration(global: &GlobalOpts, args: &PkiArgs) -> anyhow::Result<()> {
    let params = pki_params(args, crate::host::well_known::KUBERNETES_DIR)?;
    let host = global.host();
    let info = expiration::collect(&host, &params, time::OffsetDateTime::now_utc())?;
    global.ui().result(&info, || expiration::render_text(&info))
}

fn renew_command(global: &GlobalOpts, args: &RenewArgs) -> anyhow::Result<()> {
    let params = pki_params(&args.pki, crate::host::well_known::KUBERNETES_DIR)?;
    let all = args.name == "all";
    let targets: Vec<_> = renew::targets(params.external_etcd)
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
    let command = format!("certs renew {}", args.name);
    run_journaled(global, &command, |host| {
        let ui = host.ui();
        for target in &targets {
            match renew::renew(host, &params, *target)? {
                Renewal::Renewed => ui.line(format!("{} renewed", target.long_name())),
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
    let params = pki_params(&args.pki, &args.kubeconfig_dir)?;
    let file = match &args.pki.config {
        Some(path) => load::read_file(path)?,
        None => load::ConfigFile::default(),
    };
    let flags = InitFlags {
        cert_dir: Some(params.cert_dir.display_str()),
        ..Default::default()
    };
    let host = global.host();
    let settings = crate::config::init::resolve_file(file, &flags, host.facts())?;
    for notice in &settings.notices {
        global.ui().warn(notice);
    }
    run_journaled(global, "certs generate-csr", |host| {
        requests::generate_all(host, &settings, &params.kubeconfig_dir)
    })
}

/// Runs a command that writes files: under the node lock, journaled, rolled back on failure.
fn run_journaled(
    global: &GlobalOpts,
    command: &str,
    body: impl FnOnce(&Host) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let host = global.host();
    let _lock = if host.dry_run() {
        None
    } else {
        Some(NodeLock::acquire(host.root(), command)?)
    };
    host.start_journal(command)?;
    let result = body(&host);
    super::init::finish(&host, result)
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
    fn defaults_and_overrides() {
        let none = PkiArgs {
            config: None,
            cert_dir: None,
        };
        let p = pki_params(&none, "/etc/kubernetes").unwrap();
        assert_eq!(p.cert_dir, NodePath::new("/etc/kubernetes/pki"));
        assert_eq!(p.encryption, EncryptionAlgorithm::EcdsaP256);
        let relative = PkiArgs {
            config: None,
            cert_dir: Some("pki".into()),
        };
        let err = pki_params(&relative, "/etc/kubernetes").unwrap_err();
        assert_eq!(err.errors[0].field, "--cert-dir");
    }
}
