//! `init phase upload-certs` (`--upload-certs`): the control-plane certificates, encrypted with the
//! certificate key, in `kube-system/kubeadm-certs`, owned by a two-hour bootstrap token's Secret so the
//! garbage collector removes them when the token cleaner removes the token; and the Role that lets the
//! bootstrap tokens read it. A generated key is printed once, here.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::InitData;
use super::api::{self, group};
use crate::certs::upload;
use crate::config::defaults::DEFAULT_TOKEN_GROUP;
use crate::token::{self, Token, TokenGrant};
use crate::workflow::Phase;

pub const RBAC_NAME: &str = "kubeadm:kubeadm-certs";

pub fn phase() -> Phase<InitData> {
    Phase::leaf("upload-certs", "Upload certificates to kubeadm-certs", run)
}

/// The run's certificate key: `--certificate-key`, else one generated once for the run.
pub fn certificate_key(data: &mut InitData) -> anyhow::Result<String> {
    match &data.options.certificate_key {
        Some(key) => Ok(key.clone()),
        None => {
            let key = upload::generate_key()?;
            data.options.certificate_key = Some(key.clone());
            Ok(key)
        }
    }
}

fn run(data: &mut InitData) -> anyhow::Result<()> {
    if !data.options.upload_certs {
        data.host
            .ui()
            .line("[upload-certs] Skipping phase. Please see --upload-certs");
        return Ok(());
    }
    let key = certificate_key(data)?;
    data.host.ui().line(format!(
        "[upload-certs] Storing the certificates in Secret {:?} in the {:?} Namespace",
        upload::SECRET_NAME,
        upload::NAMESPACE
    ));
    let cp = data.control_plane()?;
    let files = upload::encrypted_files(&data.host, &cp, &key)?;
    let gateway = api::gateway(data)?;

    let owner = Token::generate()?;
    let grant = TokenGrant {
        description: Some(upload::OWNER_TOKEN_DESCRIPTION.to_string()),
        expiration: token::expiration_after(
            time::OffsetDateTime::now_utc(),
            upload::OWNER_TOKEN_TTL,
        ),
        usages: Vec::new(),
        groups: Vec::new(),
    };
    let owner_secret = gateway.apply(&token::secret(&owner, &grant))?;
    // In a dry run nothing was created, so there is no uid to point at.
    let owner_uid = owner_secret.metadata.uid.clone().unwrap_or_default();
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(upload::SECRET_NAME.to_string()),
            namespace: Some(upload::NAMESPACE.to_string()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Secret".to_string(),
                name: owner.secret_name(),
                uid: owner_uid,
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(
            files
                .into_iter()
                .map(|(name, bytes)| (name, ByteString(bytes)))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    gateway.apply(&secret)?;
    gateway.apply(&api::get_role(
        upload::NAMESPACE,
        RBAC_NAME,
        "secrets",
        upload::SECRET_NAME,
    ))?;
    gateway.apply(&api::role_binding(
        upload::NAMESPACE,
        RBAC_NAME,
        RBAC_NAME,
        vec![group(DEFAULT_TOKEN_GROUP)],
    ))?;
    data.host.ui().line("[upload-certs] Using certificate key:");
    data.host.ui().line(&key);
    Ok(())
}
