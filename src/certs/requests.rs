//! `certs generate-csr`: keys and CSRs for every control-plane certificate and kubeconfig, for an external CA.
//!
//! As kubeadm: `<cert-dir>/<name>.key` + `<name>.csr` for each leaf, and for each kubeconfig a file
//! holding only the server and `client-key-data` plus `<file>.csr` beside it. The signed
//! certificates are then put next to the keys (`.crt`) or into the kubeconfigs.

use anyhow::bail;

use crate::host::{Host, NodePath};
use crate::kubeconfig::files::{self, KUBECONFIG_MODE};
use crate::kubeconfig::{AuthInfo, Base64Data, KubeConfig};
use crate::model::ControlPlane;
use crate::pki::cert::signing_request;
use crate::pki::keys;
use crate::pki::store::{CERT_MODE, KEY_MODE};
use crate::pki::table;

/// Writes the keys and CSRs; refuses to overwrite any existing key, CSR or kubeconfig.
pub fn generate_all(
    host: &Host,
    cp: &ControlPlane,
    kubeconfig_dir: &NodePath,
) -> anyhow::Result<()> {
    let ui = host.ui();
    let cert_dir = cp.cert_dir();
    let algorithm = cp.cluster.certificates.encryption_algorithm;
    let leaves: Vec<_> = table::LEAVES
        .into_iter()
        .filter(|leaf| !(cp.cluster.etcd.is_external() && leaf.is_etcd()))
        .collect();
    for leaf in &leaves {
        refuse_existing(
            host,
            &[leaf.key_path(cert_dir), csr_path(cert_dir, leaf.base_name)],
        )?;
    }
    for spec in files::ALL {
        refuse_existing(
            host,
            &[
                spec.path(kubeconfig_dir),
                csr_path(kubeconfig_dir, spec.file_name),
            ],
        )?;
    }

    ui.line(format!("generating keys and CSRs in {cert_dir}"));
    for leaf in leaves {
        let template = leaf.template(cp);
        let key = keys::generate(algorithm)?;
        let csr = signing_request(&template.subject, &template.alt_names, &key)?;
        host.write_file(
            &leaf.key_path(cert_dir),
            keys::private_key_pem(&key).as_bytes(),
            KEY_MODE,
        )?;
        host.write_file(
            &csr_path(cert_dir, leaf.base_name),
            csr.as_bytes(),
            CERT_MODE,
        )?;
        ui.line(format!("  {}", leaf.base_name));
    }

    ui.line(format!("generating keys and CSRs in {kubeconfig_dir}"));
    for spec in files::ALL {
        let template = spec.template(cp);
        let key = keys::generate(algorithm)?;
        let csr = signing_request(&template.subject, &template.alt_names, &key)?;
        let user = AuthInfo {
            client_key_data: Some(Base64Data(keys::private_key_pem(&key).into_bytes())),
            ..Default::default()
        };
        let config = KubeConfig::single(
            &cp.cluster.cluster_name,
            &spec.server(cp),
            None,
            &spec.client_name(cp),
            user,
        );
        host.write_file(
            &spec.path(kubeconfig_dir),
            config.to_yaml()?.as_bytes(),
            KUBECONFIG_MODE,
        )?;
        host.write_file(
            &csr_path(kubeconfig_dir, spec.file_name),
            csr.as_bytes(),
            CERT_MODE,
        )?;
        ui.line(format!("  {}", spec.file_name));
    }
    Ok(())
}

fn csr_path(dir: &NodePath, name: &str) -> NodePath {
    dir.join(format!("{name}.csr"))
}

fn refuse_existing(host: &Host, paths: &[NodePath]) -> anyhow::Result<()> {
    if let Some(existing) = paths.iter().find(|p| host.exists(p)) {
        bail!(
            "file already exists: {existing}; generate-csr never overwrites keys, CSRs or kubeconfigs"
        );
    }
    Ok(())
}
