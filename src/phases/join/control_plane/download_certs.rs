//! `join phase control-plane-prepare download-certs`: reads `kube-system/kubeadm-certs` with the
//! bootstrap token, decrypts every file with `--certificate-key` (kubeadm's format,
//! [`crate::certs::upload`]) before writing any, then writes them into the certificates folder (keys
//! 0600). Without a certificate key the phase is skipped, as kubeadm skips it: the shared files must
//! then be on the node already ([`missing_shared_files`]).

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;

use super::{JoinData, joined_model};
use crate::certs::upload::{self, NAMESPACE, SECRET_NAME};
use crate::cluster::{Client, Gateway, Retry};
use crate::host::Host;
use crate::model::ControlPlane;

pub fn run(data: &mut JoinData) -> anyhow::Result<()> {
    let Some(key) = data.options.certificate_key.clone() else {
        data.host
            .ui()
            .line("[download-certs] Skipping phase. Please see --certificate-key");
        return Ok(());
    };
    let model = joined_model(data)?;
    let cp = model.control_plane()?;
    let connection = data.joining()?.connection.clone();
    let host = &data.host;
    let ui = host.ui();
    ui.line(format!(
        "[download-certs] Downloading the certificates in Secret {SECRET_NAME:?} in the {NAMESPACE:?} Namespace"
    ));
    let client = Client::connect(&connection)?
        .with_retry(Retry::within(data.node.timeouts.kubernetes_api_call.0));
    let gateway = Gateway::new(host, client);
    let secret = gateway
        .get::<Secret>(Some(NAMESPACE), SECRET_NAME)
        .with_context(|| format!("reading the Secret {NAMESPACE}/{SECRET_NAME}"))?
        .with_context(|| {
            format!(
                "the cluster has no Secret {NAMESPACE}/{SECRET_NAME}: the uploaded certificates expire two hours \
                 after 'kubestrap init --upload-certs'; upload them again on a control-plane node with \
                 'kubestrap init phase upload-certs --upload-certs' and use the certificate key it prints"
            )
        })?;
    let sealed = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(name, bytes)| (name, bytes.0))
        .collect();
    let files = upload::decrypted_files(&cp, &key, &sealed)?;
    ui.line(format!(
        "[download-certs] Saving the certificates to the folder: {:?}",
        cp.cert_dir().display_str()
    ));
    for (path, contents) in files {
        if let Some(dir) = path.parent() {
            host.ensure_dir(&dir, 0o755)?;
        }
        let mode = if path.display_str().ends_with(".key") {
            crate::pki::store::KEY_MODE
        } else {
            crate::pki::store::CERT_MODE
        };
        host.write_file(&path, &contents, mode)?;
    }
    Ok(())
}

/// The shared files (kubeadm-certs' list) that are not on this node, by path.
pub fn missing_shared_files(host: &Host, cp: &ControlPlane) -> Vec<String> {
    upload::files(cp)
        .into_iter()
        .filter(|(_, path)| !host.exists(path))
        .map(|(_, path)| path.display_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Facts, NodePath, Root};
    use crate::output::Ui;

    #[test]
    fn the_shared_files_a_join_without_a_certificate_key_needs() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(
            Root::new(dir.path()),
            Facts::default(),
            false,
            Ui::default(),
        );
        let model = crate::model::testing::control_plane_model("");
        let cp = model.control_plane().unwrap();
        let missing = missing_shared_files(&host, &cp);
        assert_eq!(missing.len(), 8);
        assert!(missing.contains(&"/etc/kubernetes/pki/etcd/ca.key".to_string()));
        std::fs::create_dir_all(dir.path().join("etc/kubernetes/pki")).unwrap();
        std::fs::write(
            host.disk(&NodePath::new("/etc/kubernetes/pki/sa.key")),
            b"k",
        )
        .unwrap();
        assert_eq!(missing_shared_files(&host, &cp).len(), 7);
    }
}
