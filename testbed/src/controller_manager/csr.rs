//! The CSR controllers: csrapproving (auto-approves kubelet client CSRs after a
//! SubjectAccessReview, as the real controller does) and csrsigning (signs approved CSRs of the
//! kubernetes.io signers with the --cluster-signing-* CA).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

use crate::common::client::ApiClient;
use crate::common::time;
use crate::logf;

const COLLECTION: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
const COMPONENT: &str = "kube-controller-manager";

/// The CA that signs for one signer name.
#[derive(Clone)]
pub struct SigningCa {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Signer {
    pub default_ca: Option<SigningCa>,
    pub per_signer: Vec<(&'static str, SigningCa)>,
    pub duration: Duration,
}

fn parsed_request(csr: &Value) -> Result<rcgen::CertificateSigningRequestParams> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(csr["spec"]["request"].as_str().unwrap_or_default())?;
    rcgen::CertificateSigningRequestParams::from_pem(&String::from_utf8_lossy(&pem))
        .map_err(|e| anyhow!("invalid certificate request: {e}"))
}

fn subject(req: &rcgen::CertificateSigningRequestParams) -> (String, Vec<String>) {
    let mut cn = String::new();
    let mut orgs = Vec::new();
    for (ty, value) in req.params.distinguished_name.iter() {
        let text = match value {
            rcgen::DnValue::Utf8String(s) => s.clone(),
            rcgen::DnValue::PrintableString(s) => s.as_str().to_string(),
            other => format!("{other:?}"),
        };
        match ty {
            rcgen::DnType::CommonName => cn = text,
            rcgen::DnType::OrganizationName => orgs.push(text),
            _ => {}
        }
    }
    (cn, orgs)
}

fn usages(csr: &Value) -> Vec<String> {
    csr["spec"]["usages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_string))
        .collect()
}

fn has_condition(csr: &Value, kind: &str) -> bool {
    csr["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind)
}

/// The kubelet client-certificate shape: O=[system:nodes], CN=system:node:*, client usages only.
fn is_node_client(cn: &str, orgs: &[String], usages: &[String]) -> bool {
    let allowed = ["key encipherment", "digital signature", "client auth"];
    orgs == ["system:nodes"]
        && cn.starts_with("system:node:")
        && usages.iter().any(|u| u == "client auth")
        && usages.iter().all(|u| allowed.contains(&u.as_str()))
}

async fn subject_access_review(client: &ApiClient, csr: &Value, subresource: &str) -> Result<bool> {
    let spec = &csr["spec"];
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": spec["username"],
            "uid": spec["uid"],
            "groups": spec["groups"],
            "extra": spec["extra"],
            "resourceAttributes": {"group": "certificates.k8s.io", "resource": "certificatesigningrequests", "verb": "create", "subresource": subresource},
        }
    });
    let result = client
        .create(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &review,
        )
        .await
        .map_err(|e| anyhow!("SubjectAccessReview failed: {e}"))?;
    Ok(result["status"]["allowed"].as_bool() == Some(true))
}

/// One pass of csrapproving over the pending CSRs.
pub async fn approve(client: &ApiClient) -> Result<()> {
    let list = client.get(COLLECTION).await?;
    for csr in list["items"].as_array().into_iter().flatten() {
        if has_condition(csr, "Approved") || has_condition(csr, "Denied") {
            continue;
        }
        if csr["spec"]["signerName"].as_str() != Some("kubernetes.io/kube-apiserver-client-kubelet")
        {
            continue;
        }
        let Ok(req) = parsed_request(csr) else {
            continue;
        };
        let (cn, orgs) = subject(&req);
        let use_list = usages(csr);
        if !is_node_client(&cn, &orgs, &use_list) {
            continue;
        }
        let self_node = csr["spec"]["username"].as_str() == Some(cn.as_str());
        let mut approved = false;
        if self_node {
            approved = subject_access_review(client, csr, "selfnodeclient").await?;
        }
        if !approved {
            approved = subject_access_review(client, csr, "nodeclient").await?;
        }
        if !approved {
            continue;
        }
        let name = csr["metadata"]["name"].as_str().unwrap_or_default();
        let mut updated = csr.clone();
        let mut conditions = csr["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.push(json!({
            "type": "Approved",
            "status": "True",
            "reason": "AutoApproved",
            "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
            "lastUpdateTime": time::now(),
            "lastTransitionTime": time::now(),
        }));
        updated["status"]["conditions"] = json!(conditions);
        match client
            .replace(&format!("{COLLECTION}/{name}/approval"), &updated)
            .await
        {
            Ok(_) => logf!(
                COMPONENT,
                "approved CSR {name} for {}",
                csr["spec"]["username"]
            ),
            Err(e) => logf!(COMPONENT, "error approving CSR {name}: {e}"),
        }
    }
    Ok(())
}

impl Signer {
    fn ca_for(&self, signer: &str) -> Option<&SigningCa> {
        self.per_signer
            .iter()
            .find(|(s, _)| *s == signer)
            .map(|(_, ca)| ca)
            .or(self.default_ca.as_ref())
    }

    /// Signer-specific checks of the real signers.
    fn validate(signer: &str, cn: &str, orgs: &[String], usages: &[String]) -> Result<()> {
        match signer {
            "kubernetes.io/kube-apiserver-client-kubelet" if !is_node_client(cn, orgs, usages) => {
                bail!(
                    "invalid certificate request for signer kubernetes.io/kube-apiserver-client-kubelet: subject must be CN=system:node:<name>, O=system:nodes, usages client auth (and digital signature, key encipherment)"
                );
            }
            "kubernetes.io/kube-apiserver-client" if !usages.iter().any(|u| u == "client auth") => {
                bail!(
                    "invalid usages for signer kubernetes.io/kube-apiserver-client: \"client auth\" is required"
                );
            }
            "kubernetes.io/kubelet-serving"
                if (orgs != ["system:nodes"]
                    || !cn.starts_with("system:node:")
                    || !usages.iter().any(|u| u == "server auth")) =>
            {
                bail!("invalid certificate request for signer kubernetes.io/kubelet-serving");
            }
            _ => {}
        }
        Ok(())
    }

    fn sign(&self, csr: &Value) -> Result<String> {
        let signer = csr["spec"]["signerName"].as_str().unwrap_or_default();
        let ca = self
            .ca_for(signer)
            .ok_or_else(|| anyhow!("no signing CA configured for {signer}"))?;
        let ca_pem = std::fs::read_to_string(&ca.cert)
            .with_context(|| format!("open {}", ca.cert.display()))?;
        let key_pem = std::fs::read_to_string(&ca.key)
            .with_context(|| format!("open {}", ca.key.display()))?;
        let key = rcgen::KeyPair::from_pem(&key_pem).context("load the signing key")?;
        let issuer =
            rcgen::Issuer::from_ca_cert_pem(&ca_pem, key).context("load the signing CA")?;
        let mut req = parsed_request(csr)?;
        let (cn, orgs) = subject(&req);
        let use_list = usages(csr);
        Self::validate(signer, &cn, &orgs, &use_list)?;
        let requested = csr["spec"]["expirationSeconds"]
            .as_u64()
            .map(Duration::from_secs);
        let duration = requested
            .map(|r| r.min(self.duration))
            .unwrap_or(self.duration);
        let now = time::OffsetDateTime::now_utc();
        let p = &mut req.params;
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = now
            + time::Duration::seconds(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2));
        let mut serial = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut serial);
        serial[0] &= 0x7f;
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
        p.key_usages = use_list
            .iter()
            .filter_map(|u| match u.as_str() {
                "digital signature" => Some(rcgen::KeyUsagePurpose::DigitalSignature),
                "key encipherment" => Some(rcgen::KeyUsagePurpose::KeyEncipherment),
                "content commitment" => Some(rcgen::KeyUsagePurpose::ContentCommitment),
                "key agreement" => Some(rcgen::KeyUsagePurpose::KeyAgreement),
                "data encipherment" => Some(rcgen::KeyUsagePurpose::DataEncipherment),
                _ => None,
            })
            .collect();
        p.extended_key_usages = use_list
            .iter()
            .filter_map(|u| match u.as_str() {
                "client auth" => Some(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => Some(rcgen::ExtendedKeyUsagePurpose::ServerAuth),
                _ => None,
            })
            .collect();
        p.use_authority_key_identifier_extension = true;
        let cert = req.signed_by(&issuer).context("sign the certificate")?;
        Ok(cert.pem())
    }

    /// One pass of csrsigning over approved, unsigned CSRs.
    pub async fn run_once(&self, client: &ApiClient) -> Result<()> {
        let list = client.get(COLLECTION).await?;
        for csr in list["items"].as_array().into_iter().flatten() {
            let signer = csr["spec"]["signerName"].as_str().unwrap_or_default();
            let known = matches!(
                signer,
                "kubernetes.io/kube-apiserver-client"
                    | "kubernetes.io/kube-apiserver-client-kubelet"
                    | "kubernetes.io/kubelet-serving"
                    | "kubernetes.io/legacy-unknown"
            );
            if !known
                || !has_condition(csr, "Approved")
                || has_condition(csr, "Failed")
                || !csr["status"]["certificate"].is_null()
            {
                continue;
            }
            let name = csr["metadata"]["name"].as_str().unwrap_or_default();
            let mut updated = csr.clone();
            match self.sign(csr) {
                Ok(pem) => {
                    updated["status"]["certificate"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(pem));
                }
                Err(e) => {
                    logf!(COMPONENT, "unable to sign CSR {name}: {e:#}");
                    let mut conditions = csr["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    conditions.push(json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": format!("{e:#}"), "lastUpdateTime": time::now(), "lastTransitionTime": time::now()}));
                    updated["status"]["conditions"] = json!(conditions);
                }
            }
            match client
                .replace(&format!("{COLLECTION}/{name}/status"), &updated)
                .await
            {
                Ok(_) => logf!(COMPONENT, "signed CSR {name}"),
                Err(e) => logf!(COMPONENT, "error updating signature for CSR {name}: {e}"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_client_shape() {
        let u = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_node_client(
            "system:node:n1",
            &u(&["system:nodes"]),
            &u(&["digital signature", "client auth"])
        ));
        assert!(!is_node_client(
            "system:node:n1",
            &u(&["system:masters"]),
            &u(&["client auth"])
        ));
        assert!(!is_node_client(
            "system:node:n1",
            &u(&["system:nodes"]),
            &u(&["server auth", "client auth"])
        ));
        assert!(!is_node_client(
            "admin",
            &u(&["system:nodes"]),
            &u(&["client auth"])
        ));
    }

    #[test]
    fn signs_with_the_configured_ca_and_checks_the_signer() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(vec!["kubernetes".to_string()]).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kubernetes");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("ca.key"), ca_key.serialize_pem()).unwrap();
        let node_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n2");
        let request = params.serialize_request(&node_key).unwrap().pem().unwrap();
        let csr = json!({"spec": {"request": base64::engine::general_purpose::STANDARD.encode(request), "signerName": "kubernetes.io/kube-apiserver-client-kubelet", "usages": ["digital signature", "client auth"]}});
        let signer = Signer {
            default_ca: Some(SigningCa {
                cert: dir.path().join("ca.crt"),
                key: dir.path().join("ca.key"),
            }),
            per_signer: Vec::new(),
            duration: Duration::from_secs(3600),
        };
        let pem = signer.sign(&csr).unwrap();
        let der = crate::common::tls::certs_from_pem(pem.as_bytes()).unwrap();
        let (cn, orgs) = crate::common::tls::subject_of(&der[0]).unwrap();
        assert_eq!(
            (cn.as_str(), orgs),
            ("system:node:n2", vec!["system:nodes".to_string()])
        );
        let ca_der = crate::common::tls::certs_from_pem(ca.pem().as_bytes()).unwrap();
        assert!(crate::common::tls::signed_by_any(&der[0], &ca_der));
        let mut bad = csr.clone();
        bad["spec"]["usages"] = json!(["server auth"]);
        assert!(signer.sign(&bad).is_err());
    }
}
