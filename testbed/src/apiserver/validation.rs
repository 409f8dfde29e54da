//! Field validation with the real server's wording: object names, labels, and the RBAC, CSR and
//! Secret rules that kubestrap's objects must pass.

use base64::Engine;
use serde_json::Value;

pub type Causes = Vec<(String, String)>;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| alnum_lower(b) || b == b'-')
        && s.bytes().next().is_some_and(alnum_lower)
        && s.bytes().last().is_some_and(alnum_lower)
}

pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_dns1035(s: &str) -> bool {
    is_dns_label(s) && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
}

fn invalid(field: &str, value: &str, msg: &str) -> (String, String) {
    (
        field.to_string(),
        format!("Invalid value: {value:?}: {msg}"),
    )
}

fn required(field: &str) -> (String, String) {
    (field.to_string(), "Required value".to_string())
}

/// How a kind's names are checked.
#[derive(Clone, Copy)]
pub enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    PathSegment,
}

pub fn name_rule(kind: &str, custom: bool) -> NameRule {
    match kind {
        "Namespace" => NameRule::Label,
        "Service" => NameRule::Dns1035,
        "Role"
        | "ClusterRole"
        | "RoleBinding"
        | "ClusterRoleBinding"
        | "CertificateSigningRequest"
        | "Event" => NameRule::PathSegment,
        _ if custom => NameRule::Subdomain,
        _ => NameRule::Subdomain,
    }
}

pub fn name(rule: NameRule, value: &str, causes: &mut Causes) {
    if value.is_empty() {
        causes.push((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
        ));
        return;
    }
    let (ok, msg) = match rule {
        NameRule::Subdomain => (is_dns_subdomain(value), SUBDOMAIN_MSG),
        NameRule::Label => (is_dns_label(value), LABEL_MSG),
        NameRule::Dns1035 => (is_dns1035(value), DNS1035_MSG),
        NameRule::PathSegment => (
            value != "." && value != ".." && !value.contains('/') && !value.contains('%'),
            "may not contain '/' or '%' and may not be '.' or '..'",
        ),
    };
    if !ok {
        causes.push(invalid("metadata.name", value, msg));
    }
}

fn qualified_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain.
pub fn is_qualified_key(key: &str) -> bool {
    match key.rsplit_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && qualified_name_ok(name),
        None => qualified_name_ok(key),
    }
}

pub fn metadata(meta: &Value, causes: &mut Causes) {
    for (key, value) in meta["labels"].as_object().into_iter().flatten() {
        if !is_qualified_key(key) {
            causes.push(invalid(
                "metadata.labels",
                key,
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ));
        }
        match value.as_str() {
            Some(v) if v.is_empty() || qualified_name_ok(v) => {}
            Some(v) => causes.push(invalid(
                "metadata.labels",
                v,
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            )),
            None => causes.push(invalid("metadata.labels", &value.to_string(), "label values must be strings")),
        }
    }
    for (key, value) in meta["annotations"].as_object().into_iter().flatten() {
        if !is_qualified_key(&key.to_lowercase()) {
            causes.push(invalid(
                "metadata.annotations",
                key,
                "name part must consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
        if !value.is_string() {
            causes.push(invalid(
                "metadata.annotations",
                &value.to_string(),
                "annotation values must be strings",
            ));
        }
    }
}

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Keys of Secret/ConfigMap data, and base64 data values.
pub fn data_map(object: &Value, field: &str, base64_values: bool, causes: &mut Causes) {
    for (key, value) in object[field].as_object().into_iter().flatten() {
        if !is_config_key(key) {
            causes.push(invalid(
                &format!("{field}[{key}]"),
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
        if base64_values {
            let ok = value
                .as_str()
                .is_some_and(|v| base64::engine::general_purpose::STANDARD.decode(v).is_ok());
            if !ok {
                causes.push((format!("{field}[{key}]"), "illegal base64 data".into()));
            }
        } else if !value.is_string() {
            causes.push(invalid(
                &format!("{field}[{key}]"),
                &value.to_string(),
                "must be a string",
            ));
        }
    }
}

/// Role and ClusterRole rules.
pub fn rbac_rules(object: &Value, namespaced: bool, causes: &mut Causes) {
    for (i, rule) in object["rules"].as_array().into_iter().flatten().enumerate() {
        let field = format!("rules[{i}]");
        if rule["verbs"].as_array().is_none_or(|v| v.is_empty()) {
            causes.push(required(&format!("{field}.verbs")));
        }
        let has_urls = rule["nonResourceURLs"]
            .as_array()
            .is_some_and(|u| !u.is_empty());
        let has_resources = rule["resources"].as_array().is_some_and(|r| !r.is_empty());
        if has_urls && namespaced {
            causes.push((
                format!("{field}.nonResourceURLs"),
                "Invalid value: namespaced rules cannot apply to non-resource URLs".into(),
            ));
        }
        if has_urls && has_resources {
            causes.push((
                format!("{field}.nonResourceURLs"),
                "Invalid value: rules cannot apply to both regular resources and non-resource URLs"
                    .into(),
            ));
        }
        if !has_urls && rule["apiGroups"].as_array().is_none_or(|g| g.is_empty()) {
            causes.push(required(&format!("{field}.apiGroups")));
        }
        if !has_urls && !has_resources {
            causes.push(required(&format!("{field}.resources")));
        }
    }
}

/// RoleBinding and ClusterRoleBinding roleRef and subjects.
pub fn rbac_binding(object: &Value, cluster: bool, causes: &mut Causes) {
    let role_ref = &object["roleRef"];
    if role_ref["apiGroup"].as_str() != Some("rbac.authorization.k8s.io") {
        causes.push((
            "roleRef.apiGroup".into(),
            format!(
                "Unsupported value: {}: supported values: \"rbac.authorization.k8s.io\"",
                role_ref["apiGroup"]
            ),
        ));
    }
    match role_ref["kind"].as_str() {
        Some("ClusterRole") => {}
        Some("Role") if !cluster => {}
        other => causes.push((
            "roleRef.kind".into(),
            format!(
                "Unsupported value: {:?}: supported values: {}",
                other.unwrap_or_default(),
                if cluster {
                    "\"ClusterRole\""
                } else {
                    "\"Role\", \"ClusterRole\""
                }
            ),
        )),
    }
    if role_ref["name"].as_str().is_none_or(str::is_empty) {
        causes.push(required("roleRef.name"));
    }
    for (i, subject) in object["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("subjects[{i}]");
        if subject["name"].as_str().is_none_or(str::is_empty) {
            causes.push(required(&format!("{field}.name")));
        }
        match subject["kind"].as_str() {
            Some("ServiceAccount") => {
                if subject["apiGroup"].as_str().is_some_and(|g| !g.is_empty()) {
                    causes.push((format!("{field}.apiGroup"), "Unsupported value: supported values: \"\"".into()));
                }
                if cluster && subject["namespace"].as_str().is_none_or(str::is_empty) {
                    causes.push(required(&format!("{field}.namespace")));
                }
            }
            Some("User") | Some("Group") => {
                if subject["apiGroup"].as_str() != Some("rbac.authorization.k8s.io") {
                    causes.push((
                        format!("{field}.apiGroup"),
                        format!("Unsupported value: {}: supported values: \"rbac.authorization.k8s.io\"", subject["apiGroup"]),
                    ));
                }
            }
            other => causes.push((
                format!("{field}.kind"),
                format!(
                    "Unsupported value: {:?}: supported values: \"ServiceAccount\", \"User\", \"Group\"",
                    other.unwrap_or_default()
                ),
            )),
        }
    }
}

const KEY_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// A CertificateSigningRequest's spec.
pub fn csr_spec(spec: &Value, causes: &mut Causes) {
    let request = spec["request"]
        .as_str()
        .and_then(|r| base64::engine::general_purpose::STANDARD.decode(r).ok());
    match request.as_deref().map(pem::parse) {
        None => causes.push(required("spec.request")),
        Some(Err(_)) => causes.push((
            "spec.request".into(),
            "Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST".into(),
        )),
        Some(Ok(block)) if block.tag() != "CERTIFICATE REQUEST" => causes.push((
            "spec.request".into(),
            "Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST".into(),
        )),
        Some(Ok(block)) => {
            if x509_parser::certification_request::X509CertificationRequest::from_der(
                block.contents(),
            )
            .is_err()
            {
                causes.push((
                    "spec.request".into(),
                    "Invalid value: []byte{...}: x509: malformed certificate request".into(),
                ));
            }
        }
    }
    match spec["signerName"].as_str() {
        None | Some("") => causes.push(required("spec.signerName")),
        Some(s) => {
            let valid = s
                .split_once('/')
                .is_some_and(|(domain, path)| is_dns_subdomain(domain) && !path.is_empty());
            if !valid {
                causes.push(invalid("spec.signerName", s, "must be a fully qualified domain and path of the form 'example.com/signer-name'"));
            }
        }
    }
    match spec["usages"].as_array() {
        None => causes.push(required("spec.usages")),
        Some(usages) if usages.is_empty() => causes.push(required("spec.usages")),
        Some(usages) => {
            for (i, u) in usages.iter().enumerate() {
                if !u.as_str().is_some_and(|u| KEY_USAGES.contains(&u)) {
                    causes.push((
                        format!("spec.usages[{i}]"),
                        format!("Unsupported value: {u}"),
                    ));
                }
            }
        }
    }
    if let Some(seconds) = spec["expirationSeconds"].as_i64()
        && seconds < 600
    {
        causes.push(invalid(
            "spec.expirationSeconds",
            &seconds.to_string(),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
}

use x509_parser::prelude::FromDer;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_labels() {
        assert!(is_dns_subdomain("kube-system.example"));
        assert!(!is_dns_subdomain("Kube"));
        let mut causes = Causes::new();
        name(
            NameRule::PathSegment,
            "system:node-bootstrapper",
            &mut causes,
        );
        name(NameRule::Dns1035, "1svc", &mut causes);
        assert_eq!(causes.len(), 1);
        assert!(is_qualified_key("node-role.kubernetes.io/control-plane"));
        assert!(!is_qualified_key("bad key"));
        let mut causes = Causes::new();
        metadata(&json!({"labels": {"a": "b c"}}), &mut causes);
        assert_eq!(causes.len(), 1);
    }

    #[test]
    fn bindings_need_valid_role_refs_and_subjects() {
        let mut causes = Causes::new();
        rbac_binding(
            &json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
                    "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Group", "name": "g"}]}),
            true,
            &mut causes,
        );
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "roleRef.kind",
                "subjects[0].namespace",
                "subjects[1].apiGroup"
            ]
        );
    }
}
