//! kubeadm's kubeconfig files of a control-plane node as data, and creating or reusing them.

use anyhow::{Context as _, anyhow, bail};
use time::OffsetDateTime;

use super::{KubeConfig, load};
use crate::config::EncryptionAlgorithm;
use crate::host::{Host, NodePath, well_known};
use crate::model::ControlPlane;
use crate::pki::cert::{AltNames, Authority, LeafTemplate, Subject, Usage, Validity};
use crate::pki::inspect::CertInfo;
use crate::pki::store::{self, CaState};
use crate::pki::{keys, table};

/// Kubeconfig files are secrets: 0600.
pub const KUBECONFIG_MODE: u32 = 0o600;

/// Which API server URL a file points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRule {
    /// `controlPlaneEndpoint`, else the advertise address.
    ControlPlane,
    /// The node's own API server (`advertiseAddress:bindPort`).
    Local,
}

/// The user a file authenticates as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientName {
    Fixed(&'static str),
    /// `system:node:<nodeName>`.
    Node,
}

/// One of kubeadm's kubeconfig files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeconfigSpec {
    /// Phase name (`admin`, `super-admin`, …).
    pub name: &'static str,
    pub file_name: &'static str,
    pub client: ClientName,
    pub organizations: &'static [&'static str],
    pub server: ServerRule,
    /// kubeadm's description, used by `certs renew`.
    pub long_name: &'static str,
    pub help: &'static str,
    /// Whether `certs renew` and `certs check-expiration` handle it (kubelet.conf is the kubelet's).
    pub renewable: bool,
}

pub const ADMIN: KubeconfigSpec = KubeconfigSpec {
    name: "admin",
    file_name: "admin.conf",
    client: ClientName::Fixed("kubernetes-admin"),
    organizations: &[table::CLUSTER_ADMINS_GROUP],
    server: ServerRule::ControlPlane,
    long_name: "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
    help: "Generate a kubeconfig file for the admin to use and for kubeadm itself",
    renewable: true,
};

pub const SUPER_ADMIN: KubeconfigSpec = KubeconfigSpec {
    name: "super-admin",
    file_name: "super-admin.conf",
    client: ClientName::Fixed("kubernetes-super-admin"),
    organizations: &["system:masters"],
    server: ServerRule::ControlPlane,
    long_name: "certificate embedded in the kubeconfig file for the super-admin",
    help: "Generate a kubeconfig file for the super-admin",
    renewable: true,
};

pub const KUBELET: KubeconfigSpec = KubeconfigSpec {
    name: "kubelet",
    file_name: "kubelet.conf",
    client: ClientName::Node,
    organizations: &["system:nodes"],
    server: ServerRule::ControlPlane,
    long_name: "certificate embedded in the kubeconfig file for the kubelet",
    help: "Generate a kubeconfig file for the kubelet to use *only* for cluster bootstrapping purposes",
    renewable: false,
};

pub const CONTROLLER_MANAGER: KubeconfigSpec = KubeconfigSpec {
    name: "controller-manager",
    file_name: "controller-manager.conf",
    client: ClientName::Fixed("system:kube-controller-manager"),
    organizations: &[],
    server: ServerRule::Local,
    long_name: "certificate embedded in the kubeconfig file for the controller manager to use",
    help: "Generate a kubeconfig file for the controller manager to use",
    renewable: true,
};

pub const SCHEDULER: KubeconfigSpec = KubeconfigSpec {
    name: "scheduler",
    file_name: "scheduler.conf",
    client: ClientName::Fixed("system:kube-scheduler"),
    organizations: &[],
    server: ServerRule::Local,
    long_name: "certificate embedded in the kubeconfig file for the scheduler manager to use",
    help: "Generate a kubeconfig file for the scheduler to use",
    renewable: true,
};

/// The files of `init phase kubeconfig`, in kubeadm's order.
pub const ALL: [&KubeconfigSpec; 5] = [
    &ADMIN,
    &SUPER_ADMIN,
    &KUBELET,
    &CONTROLLER_MANAGER,
    &SCHEDULER,
];

/// Where kubeadm keeps them.
pub fn kubeconfig_dir() -> NodePath {
    NodePath::new(well_known::KUBERNETES_DIR)
}

impl KubeconfigSpec {
    pub fn path(&self, dir: &NodePath) -> NodePath {
        dir.join(self.file_name)
    }

    pub fn client_name(&self, cp: &ControlPlane) -> String {
        match self.client {
            ClientName::Fixed(name) => name.to_string(),
            ClientName::Node => format!("system:node:{}", cp.node.name),
        }
    }

    pub fn server(&self, cp: &ControlPlane) -> String {
        match self.server {
            ServerRule::ControlPlane => cp.control_plane_url(),
            ServerRule::Local => cp.local_api_url(),
        }
    }

    /// The client certificate of this file.
    pub fn template(&self, cp: &ControlPlane) -> LeafTemplate {
        LeafTemplate {
            subject: Subject::new(self.client_name(cp), self.organizations),
            usages: vec![Usage::ClientAuth],
            alt_names: AltNames::default(),
        }
    }
}

/// `init phase kubeconfig <name>`: writes the file, or reuses (and checks) the one on disk.
pub fn ensure(host: &Host, cp: &ControlPlane, spec: &KubeconfigSpec) -> anyhow::Result<()> {
    let path = spec.path(&kubeconfig_dir());
    let ui = host.ui();
    let ca_path = table::CA.cert_path(cp.cert_dir());
    let server = spec.server(cp);
    match store::load_ca(host, cp.cert_dir(), &table::CA)? {
        CaState::Missing => bail!(
            "the CA files do not exist ({ca_path}); run 'kubestrap init phase certs ca' to generate them"
        ),
        CaState::External { info } => {
            check_existing(host, &path, &info, &server)?.ok_or_else(|| {
                anyhow!(
                    "external CA mode ({ca_path} without its key): the kubeconfig file {path} must be provided, with a client certificate signed by that CA"
                )
            })?;
            ui.line(format!(
                "[kubeconfig] External CA mode: Using user provided {}",
                spec.file_name
            ));
        }
        CaState::Local { info, authority } => {
            if check_existing(host, &path, &info, &server)?.is_some() {
                ui.line(format!(
                    "[kubeconfig] Using existing kubeconfig file: {:?}",
                    path.display_str()
                ));
                return Ok(());
            }
            let algorithm = cp.cluster.certificates.encryption_algorithm;
            let config = build(cp, spec, &info, &authority, algorithm)?;
            ui.line(format!(
                "[kubeconfig] Writing {:?} kubeconfig file",
                spec.file_name
            ));
            host.write_file(&path, config.to_yaml()?.as_bytes(), KUBECONFIG_MODE)?;
        }
    }
    Ok(())
}

/// A new kubeconfig for `spec` with a fresh client key and certificate.
pub fn build(
    cp: &ControlPlane,
    spec: &KubeconfigSpec,
    ca: &CertInfo,
    authority: &Authority,
    algorithm: EncryptionAlgorithm,
) -> anyhow::Result<KubeConfig> {
    let (issued, key) = store::issue_leaf(
        authority,
        &spec.template(cp),
        algorithm,
        Validity::from_now(cp.cluster.certificates.validity_period.0)?,
    )?;
    Ok(KubeConfig::with_client_certificate(
        &cp.cluster.cluster_name,
        &spec.server(cp),
        ca.pem().as_bytes(),
        &spec.client_name(cp),
        issued.pem.as_bytes(),
        keys::private_key_pem(&key).as_bytes(),
    ))
}

/// Checks an existing kubeconfig against the CA and the expected server. `None` when the file does
/// not exist; an error naming the file when it can not be used as it is.
pub fn check_existing(
    host: &Host,
    path: &NodePath,
    ca: &CertInfo,
    server: &str,
) -> anyhow::Result<Option<KubeConfig>> {
    let Some(config) = load(host, path)? else {
        return Ok(None);
    };
    let current = config
        .current()
        .with_context(|| format!("the kubeconfig file {path} can not be used"))?;
    let cluster = &current.cluster.cluster;
    let ca_pem = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => data.0.clone(),
        (None, Some(file)) => host
            .read(&NodePath::new(file))
            .with_context(|| format!("reading {file}, the CA file named by {path}"))?,
        (None, None) => bail!(
            "a kubeconfig file {:?} exists already but has no CA cert",
            path.display_str()
        ),
    };
    let same_ca = CertInfo::from_pem(&ca_pem)
        .map(|c| c.der == ca.der)
        .unwrap_or(false);
    if !same_ca {
        bail!(
            "a kubeconfig file {:?} exists already but has got the wrong CA cert",
            path.display_str()
        );
    }
    if cluster.server != server {
        bail!(
            "a kubeconfig file {:?} exists already but has got the wrong API Server URL (expected {server}, found {})",
            path.display_str(),
            cluster.server
        );
    }
    let (cert, key) = client_credentials(host, path, &config)?;
    let template = LeafTemplate {
        subject: Subject::default(),
        usages: vec![Usage::ClientAuth],
        alt_names: AltNames::default(),
    };
    let problems = store::leaf_problems(&cert, &key, ca, &template, OffsetDateTime::now_utc());
    if !problems.is_empty() {
        bail!(
            "a kubeconfig file {:?} exists already but its client certificate can not be used: {}; remove the file to have it regenerated",
            path.display_str(),
            problems.join("; ")
        );
    }
    Ok(Some(config))
}

/// The client certificate and key of the current user, embedded or in files (as kubelet.conf after kubelet-finalize).
pub fn client_credentials(
    host: &Host,
    path: &NodePath,
    config: &KubeConfig,
) -> anyhow::Result<(CertInfo, rcgen::KeyPair)> {
    let user = &config.current()?.user.user;
    let read = |data: &Option<super::Base64Data>,
                file: &Option<String>,
                what: &str|
     -> anyhow::Result<Vec<u8>> {
        match (data, file) {
            (Some(data), _) => Ok(data.0.clone()),
            (None, Some(file)) => host
                .read(&NodePath::new(file))
                .with_context(|| format!("reading {file}, the client {what} named by {path}")),
            (None, None) => {
                bail!("the kubeconfig file {path} has no client {what} for its current user")
            }
        }
    };
    let cert_pem = read(
        &user.client_certificate_data,
        &user.client_certificate,
        "certificate",
    )?;
    let key_pem = read(&user.client_key_data, &user.client_key, "key")?;
    let cert = CertInfo::from_pem(&cert_pem)
        .with_context(|| format!("the client certificate of {path}"))?;
    let key = keys::parse_private_key_pem(&key_pem)
        .with_context(|| format!("the client key of {path}"))?;
    Ok((cert, key))
}
