//! `certs renew`: a new key and certificate with the same subject, SANs and usages, signed by the local CA.

use anyhow::{Context as _, bail};

use crate::host::{Host, NodePath};
use crate::kubeconfig::files::{self, KUBECONFIG_MODE, KubeconfigSpec};
use crate::kubeconfig::{self, Base64Data};
use crate::model::ClusterSpec;
use crate::pki::cert::{AltNames, LeafTemplate, Subject, Validity};
use crate::pki::inspect::CertInfo;
use crate::pki::keys;
use crate::pki::store::{self, CaState};
use crate::pki::table::{self, CaSpec, LeafSpec};

/// Where a node keeps what the certs commands read: the cluster's certificate settings (cert dir, key
/// algorithm, validity, external etcd) and the kubeconfig folder.
#[derive(Debug, Clone, Copy)]
pub struct PkiLayout<'a> {
    pub cluster: &'a ClusterSpec,
    pub kubeconfig_dir: &'a NodePath,
}

impl PkiLayout<'_> {
    pub fn cert_dir(&self) -> &NodePath {
        &self.cluster.certificates.dir
    }

    pub fn external_etcd(&self) -> bool {
        self.cluster.etcd.is_external()
    }
}

/// A certificate `certs renew` and `certs check-expiration` handle: a PKI leaf or a kubeconfig's client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Leaf(&'static LeafSpec),
    Kubeconfig(&'static KubeconfigSpec),
}

impl Target {
    /// kubeadm's name: the leaf's name, or the kubeconfig's file name.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Leaf(leaf) => leaf.name,
            Target::Kubeconfig(spec) => spec.file_name,
        }
    }

    pub fn long_name(&self) -> &'static str {
        match self {
            Target::Leaf(leaf) => leaf.long_name,
            Target::Kubeconfig(spec) => spec.long_name,
        }
    }

    /// The CA that signs it (kubeconfigs: the Kubernetes CA).
    pub fn ca(&self) -> &'static CaSpec {
        match self {
            Target::Leaf(leaf) => leaf.ca,
            Target::Kubeconfig(_) => &table::CA,
        }
    }

    /// True for a certificate only some nodes have (the discovery endpoint's, absent with
    /// `--discovery-port 0`): a missing one is not reported.
    pub fn optional(&self) -> bool {
        matches!(self, Target::Leaf(leaf) if leaf.name == table::DISCOVERY_SERVING.name)
    }

    pub fn path(&self, layout: &PkiLayout) -> NodePath {
        match self {
            Target::Leaf(leaf) => leaf.cert_path(layout.cert_dir()),
            Target::Kubeconfig(spec) => spec.path(layout.kubeconfig_dir),
        }
    }
}

/// Every target for this cluster, sorted by name as kubeadm lists them.
pub fn targets(external_etcd: bool) -> Vec<Target> {
    let mut all: Vec<Target> = table::LEAVES
        .into_iter()
        .filter(|leaf| !(external_etcd && leaf.is_etcd()))
        .chain([&table::DISCOVERY_SERVING])
        .map(Target::Leaf)
        .chain(
            files::ALL
                .into_iter()
                .filter(|s| s.renewable)
                .map(Target::Kubeconfig),
        )
        .collect();
    all.sort_by_key(|t| t.name());
    all
}

/// The names `certs renew` accepts (every target of a stacked-etcd cluster, and `all`).
pub fn renew_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = targets(false).iter().map(Target::name).collect();
    names.push("all");
    names
}

/// Fails (exit 1) when not one file of the cluster's PKI exists on the node (no CA, no certificate, no
/// kubeconfig): there is nothing to check or renew, and the message says where it looked. A PKI with
/// only some files missing is not an error: those are reported as MISSING, as kubeadm does.
pub fn require_pki(host: &Host, layout: &PkiLayout) -> anyhow::Result<()> {
    let cas = table::CAS
        .into_iter()
        .filter(|ca| !(layout.external_etcd() && ca.etcd))
        .map(|ca| ca.cert_path(layout.cert_dir()));
    let mut files = targets(layout.external_etcd())
        .into_iter()
        .map(|t| t.path(layout))
        .chain(cas);
    if files.any(|path| host.exists(&path)) {
        return Ok(());
    }
    bail!(
        "no PKI found: none of the cluster's certificates is in {} and none of its kubeconfigs in {}; \
         set this node up with 'kubestrap init' (or 'kubestrap init phase certs all'), or point --cert-dir \
         (or certificatesDir in --config) at the certificates",
        host.disk(layout.cert_dir()).display(),
        host.disk(layout.kubeconfig_dir).display()
    )
}

/// The outcome of renewing one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    Missing,
    /// Its CA has no key here (external CA): it can not be renewed locally.
    ExternalCa,
}

/// Renews one target with a new key of the configured algorithm.
pub fn renew(host: &Host, layout: &PkiLayout, target: Target) -> anyhow::Result<Renewal> {
    let path = target.path(layout);
    let certificates = &layout.cluster.certificates;
    if !host.exists(&path) {
        return Ok(Renewal::Missing);
    }
    let ca = target.ca();
    let authority = match store::load_ca(host, layout.cert_dir(), ca)? {
        CaState::External { .. } => return Ok(Renewal::ExternalCa),
        CaState::Missing => bail!(
            "couldn't load the {} certificate authority from {}",
            ca.name,
            layout.cert_dir()
        ),
        CaState::Local { authority, .. } => authority,
    };
    let validity = Validity::from_now(certificates.validity_period.0)?;
    match target {
        Target::Leaf(leaf) => {
            let current = store::read_cert(host, &path)?.context("the certificate vanished")?;
            let template = template_of(&current);
            let (issued, key) = store::issue_leaf(
                &authority,
                &template,
                certificates.encryption_algorithm,
                validity,
            )
            .with_context(|| format!("failed to renew certificate {}", leaf.name))?;
            store::write_cert_and_key(
                host,
                &path,
                &issued.pem,
                &leaf.key_path(layout.cert_dir()),
                &key,
            )?;
        }
        Target::Kubeconfig(spec) => {
            let mut config = kubeconfig::load(host, &path)?.context("the kubeconfig vanished")?;
            let user = config
                .current_user_mut()
                .with_context(|| format!("the kubeconfig file {path} can not be renewed"))?;
            let Some(data) = &user.client_certificate_data else {
                bail!(
                    "the kubeconfig file {path} does not embed its client certificate (client-certificate-data); only embedded certificates can be renewed"
                );
            };
            let current = CertInfo::from_pem(&data.0)
                .with_context(|| format!("the client certificate of {path}"))?;
            let (issued, key) = store::issue_leaf(
                &authority,
                &template_of(&current),
                certificates.encryption_algorithm,
                validity,
            )
            .with_context(|| format!("failed to renew certificate {}", spec.file_name))?;
            user.client_certificate_data = Some(Base64Data(issued.pem.into_bytes()));
            user.client_key_data = Some(Base64Data(keys::private_key_pem(&key).into_bytes()));
            user.client_certificate = None;
            user.client_key = None;
            host.write_file(&path, config.to_yaml()?.as_bytes(), KUBECONFIG_MODE)?;
        }
    }
    Ok(Renewal::Renewed)
}

/// kubeadm's `certToConfig`: subject, SANs and usages of the certificate being renewed.
fn template_of(cert: &CertInfo) -> LeafTemplate {
    let mut alt_names = AltNames::default();
    for dns in &cert.dns_names {
        alt_names.add_dns(dns.clone());
    }
    for ip in &cert.ips {
        alt_names.add_ip(*ip);
    }
    LeafTemplate {
        subject: Subject {
            common_name: cert.common_name.clone(),
            organizations: cert.organizations.clone(),
        },
        usages: cert.usages.clone(),
        alt_names,
    }
}
