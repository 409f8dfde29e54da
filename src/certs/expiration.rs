//! `certs check-expiration`: kubeadm's `output.kubeadm.k8s.io/v1alpha3` CertificateExpirationInfo and its text table.

use std::io::Write;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::renew::{PkiLayout, Target, targets};
use crate::host::Host;
use crate::kubeconfig::{self, files};
use crate::pki::format_rfc3339;
use crate::pki::inspect::CertInfo;
use crate::pki::store::{self, CaState};
use crate::pki::table::{self, CaSpec};

const RFC3339: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
/// Go's `Jan 02, 2006 15:04 MST`, always in UTC.
const TABLE_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[month repr:short] [day], [year] [hour]:[minute] UTC");

pub const API_VERSION: &str = "output.kubeadm.k8s.io/v1alpha3";

/// One certificate or CA (kubeadm's `Certificate`, field order as kubeadm's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateExpiration {
    pub name: String,
    /// RFC 3339 in UTC; `null` when missing.
    pub expiration_date: Option<String>,
    /// Seconds until expiry (negative once expired).
    #[serde(rename = "residualTime")]
    pub residual_time_seconds: i64,
    pub externally_managed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_name: String,
    pub missing: bool,
}

/// kubeadm's `CertificateExpirationInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateExpirationInfo {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub certificates: Vec<CertificateExpiration>,
    pub certificate_authorities: Vec<CertificateExpiration>,
}

/// Reads every certificate and CA of the cluster's PKI and kubeconfigs.
pub fn collect(
    host: &Host,
    layout: &PkiLayout,
    now: OffsetDateTime,
) -> anyhow::Result<CertificateExpirationInfo> {
    let external = |ca: &CaSpec| -> anyhow::Result<bool> {
        Ok(matches!(
            store::load_ca(host, layout.cert_dir(), ca)?,
            CaState::External { .. }
        ))
    };
    let mut certificates = Vec::new();
    for target in targets(layout.external_etcd()) {
        let path = target.path(layout);
        if target.optional() && !host.exists(&path) {
            continue;
        }
        let cert = match target {
            Target::Leaf(_) => store::read_cert(host, &path)?,
            Target::Kubeconfig(_) => match kubeconfig::load(host, &path)? {
                None => None,
                Some(config) => Some(files::client_credentials(host, &path, &config)?.0),
            },
        };
        certificates.push(entry(
            target.name(),
            cert.as_ref(),
            external(target.ca())?,
            target.ca().name,
            now,
        ));
    }
    let mut cas: Vec<&CaSpec> = table::CAS
        .into_iter()
        .filter(|ca| !(layout.external_etcd() && ca.etcd))
        .collect();
    cas.sort_by_key(|ca| ca.name);
    let mut certificate_authorities = Vec::new();
    for ca in cas {
        let cert = store::read_cert(host, &ca.cert_path(layout.cert_dir()))?;
        certificate_authorities.push(entry(ca.name, cert.as_ref(), external(ca)?, "", now));
    }
    Ok(CertificateExpirationInfo {
        kind: "CertificateExpirationInfo",
        api_version: API_VERSION,
        certificates,
        certificate_authorities,
    })
}

fn entry(
    name: &str,
    cert: Option<&CertInfo>,
    externally_managed: bool,
    ca_name: &str,
    now: OffsetDateTime,
) -> CertificateExpiration {
    match cert {
        None => CertificateExpiration {
            name: name.to_string(),
            expiration_date: None,
            residual_time_seconds: 0,
            externally_managed: false,
            ca_name: String::new(),
            missing: true,
        },
        Some(cert) => CertificateExpiration {
            name: name.to_string(),
            expiration_date: Some(format_rfc3339(cert.not_after)),
            residual_time_seconds: (cert.not_after - now).whole_seconds(),
            externally_managed,
            ca_name: ca_name.to_string(),
            missing: false,
        },
    }
}

/// The apimachinery `ShortHumanDuration` of a number of seconds.
pub fn short_human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 24 {
        return format!("{hours}h");
    }
    if hours < 24 * 365 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

fn table_time(date: &Option<String>) -> String {
    date.as_deref()
        .and_then(|d| time::PrimitiveDateTime::parse(d, RFC3339).ok())
        .and_then(|t| t.assume_utc().format(TABLE_TIME).ok())
        .unwrap_or_default()
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// kubeadm's two tables (Go tabwriter: minwidth 10, tabwidth 4, padding 3, spaces).
pub fn render_text(info: &CertificateExpirationInfo) -> String {
    // The tabwriter crate pads after the column width, Go's includes the padding in minwidth: 7 + 3 = 10.
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(7).padding(3);
    let mut out = String::from(
        "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED\n",
    );
    for c in &info.certificates {
        if c.missing {
            out.push_str(&format!("!MISSING! {}\t\t\t\t\n", c.name));
        } else {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{:<8}\n",
                c.name,
                table_time(&c.expiration_date),
                short_human_duration(c.residual_time_seconds),
                c.ca_name,
                yes_no(c.externally_managed)
            ));
        }
    }
    out.push('\n');
    out.push_str("CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED\n");
    for c in &info.certificate_authorities {
        if c.missing {
            out.push_str(&format!("!MISSING! {}\t\t\t\n", c.name));
        } else {
            out.push_str(&format!(
                "{}\t{}\t{}\t{:<8}\n",
                c.name,
                table_time(&c.expiration_date),
                short_human_duration(c.residual_time_seconds),
                yes_no(c.externally_managed)
            ));
        }
    }
    // Writing to a Vec can not fail; an empty table is the fallback should it ever.
    let _ = tw.write_all(out.as_bytes());
    let _ = tw.flush();
    String::from_utf8(tw.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_human_duration_matches_apimachinery() {
        assert_eq!(short_human_duration(-5), "<invalid>");
        assert_eq!(short_human_duration(-1), "0s");
        assert_eq!(short_human_duration(59), "59s");
        assert_eq!(short_human_duration(3599), "59m");
        assert_eq!(short_human_duration(86399), "23h");
        assert_eq!(short_human_duration(364 * 86400 + 3600), "364d");
        assert_eq!(short_human_duration(3650 * 86400), "10y");
    }

    #[test]
    fn text_table_matches_kubeadm_layout() {
        let cert = |name: &str, ca: &str| CertificateExpiration {
            name: name.into(),
            expiration_date: Some("2026-05-12T03:47:00Z".into()),
            residual_time_seconds: 364 * 86400 + 7200,
            externally_managed: false,
            ca_name: ca.into(),
            missing: false,
        };
        let info = CertificateExpirationInfo {
            kind: "CertificateExpirationInfo",
            api_version: API_VERSION,
            certificates: vec![
                cert("admin.conf", "ca"),
                cert("apiserver-kubelet-client", "ca"),
                CertificateExpiration {
                    name: "super-admin.conf".into(),
                    expiration_date: None,
                    residual_time_seconds: 0,
                    externally_managed: false,
                    ca_name: String::new(),
                    missing: true,
                },
            ],
            certificate_authorities: vec![cert("ca", "")],
        };
        // The MISSING line widens the first column for the whole block, as Go's tabwriter does.
        let expected = "\
CERTIFICATE                  EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
admin.conf                   May 12, 2026 03:47 UTC   364d            ca                      no      
apiserver-kubelet-client     May 12, 2026 03:47 UTC   364d            ca                      no      
!MISSING! super-admin.conf                                                                    

CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED
ca                      May 12, 2026 03:47 UTC   364d            no      
";
        assert_eq!(render_text(&info), expected);
    }
}
