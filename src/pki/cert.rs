//! Building certificates and CSRs with kubeadm's templates.
//!
//! CA: subject CN only, SAN DNS = CN, KeyUsage critical DigitalSignature|KeyEncipherment|CertSign,
//! BasicConstraints critical CA:TRUE, a SubjectKeyIdentifier. Leaf: subject O + CN, KeyUsage
//! critical DigitalSignature|KeyEncipherment, the EKUs of its spec, BasicConstraints critical
//! CA:FALSE, an AuthorityKeyIdentifier, no SubjectKeyIdentifier. Serial numbers are uniform in
//! [1, 2^63−1); NotBefore is backdated by five minutes.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use super::PkiError;

/// kubeadm's `CertificateBackdate`.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];

/// An extended key usage kubeadm sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Usage {
    ServerAuth,
    ClientAuth,
}

impl Usage {
    pub fn name(self) -> &'static str {
        match self {
            Usage::ServerAuth => "serverAuth",
            Usage::ClientAuth => "clientAuth",
        }
    }

    fn purpose(self) -> ExtendedKeyUsagePurpose {
        match self {
            Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        }
    }
}

/// Subject of a certificate: common name and organizations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject {
    pub common_name: String,
    pub organizations: Vec<String>,
}

impl Subject {
    pub fn new(common_name: impl Into<String>, organizations: &[&str]) -> Self {
        Subject {
            common_name: common_name.into(),
            organizations: organizations.iter().map(|o| o.to_string()).collect(),
        }
    }

    /// As Go writes a pkix.Name: O before CN, PrintableString where the text allows it.
    fn distinguished_name(&self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        for org in &self.organizations {
            dn.push(DnType::OrganizationName, dn_value(org));
        }
        if !self.common_name.is_empty() {
            dn.push(DnType::CommonName, dn_value(&self.common_name));
        }
        dn
    }
}

fn dn_value(text: &str) -> DnValue {
    match rcgen::string::PrintableString::try_from(text) {
        Ok(printable) => DnValue::PrintableString(printable),
        Err(_) => DnValue::Utf8String(text.to_string()),
    }
}

/// Subject alternative names: DNS names deduplicated and sorted, IPs deduplicated in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AltNames {
    dns: std::collections::BTreeSet<String>,
    ips: Vec<IpAddr>,
}

impl AltNames {
    pub fn add_dns(&mut self, name: impl Into<String>) {
        self.dns.insert(name.into());
    }

    pub fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    /// Adds an entry that is either an IP address or a DNS name.
    pub fn add(&mut self, san: &str) {
        match san.parse::<IpAddr>() {
            Ok(ip) => self.add_ip(ip),
            Err(_) => self.add_dns(san),
        }
    }

    pub fn dns_names(&self) -> Vec<String> {
        self.dns.iter().cloned().collect()
    }

    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty()
    }

    fn san_types(&self) -> Result<Vec<SanType>, PkiError> {
        let mut out = Vec::with_capacity(self.dns.len() + self.ips.len());
        for name in &self.dns {
            let ia5 = rcgen::string::Ia5String::try_from(name.as_str())
                .map_err(|_| PkiError::InvalidSan(name.clone()))?;
            out.push(SanType::DnsName(ia5));
        }
        out.extend(self.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        Ok(out)
    }
}

/// NotBefore and NotAfter of a new certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// kubeadm's window: from five minutes ago until `period` from now; a period reaching past the
    /// year 9999 (which X.509 times can not express) is an error.
    pub fn from_now(period: Duration) -> Result<Self, PkiError> {
        let now = OffsetDateTime::now_utc();
        let too_long = || PkiError::ValidityTooLong(period);
        let not_after = time::Duration::try_from(period)
            .ok()
            .and_then(|d| now.checked_add(d))
            .filter(|t| t.year() <= 9999)
            .ok_or_else(too_long)?;
        Ok(Validity {
            not_before: now - BACKDATE,
            not_after,
        })
    }
}

/// What a leaf certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafTemplate {
    pub subject: Subject,
    pub usages: Vec<Usage>,
    pub alt_names: AltNames,
}

/// A certificate as DER and PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub der: Vec<u8>,
    pub pem: String,
}

impl Issued {
    fn from_der(der: Vec<u8>) -> Self {
        let pem = super::to_pem("CERTIFICATE", der.clone());
        Issued { der, pem }
    }
}

/// A random serial number in [1, 2^63−1), as Go's kubeadm draws it.
pub fn random_serial() -> Result<SerialNumber, PkiError> {
    loop {
        let mut bytes = [0u8; 8];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
        let value = u64::from_be_bytes(bytes) & (u64::MAX >> 1);
        if (1..(1u64 << 63) - 1).contains(&value) {
            return Ok(SerialNumber::from_slice(&value.to_be_bytes()));
        }
    }
}

fn base_params(subject: &Subject, validity: Validity) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.distinguished_name();
    params.serial_number = Some(random_serial()?);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    Ok(params)
}

/// A new self-signed CA certificate for `key`.
pub fn self_signed_ca(
    common_name: &str,
    validity: Validity,
    key: &KeyPair,
) -> Result<Issued, PkiError> {
    let mut params = base_params(&Subject::new(common_name, &[]), validity)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    let mut names = AltNames::default();
    names.add_dns(common_name);
    params.subject_alt_names = names.san_types()?;
    let cert = params
        .self_signed(key)
        .map_err(|e| PkiError::Sign(e.to_string()))?;
    Ok(Issued::from_der(cert.der().to_vec()))
}

/// A CA that signs leaves: its certificate and its key.
pub struct Authority {
    has_key_identifier: bool,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    pub fn new(cert_der: &[u8], key: KeyPair) -> Result<Self, PkiError> {
        let info = super::inspect::CertInfo::from_der(cert_der)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der.to_vec().into(), key)
            .map_err(|e| PkiError::Parse(format!("CA certificate: {e}")))?;
        Ok(Authority {
            has_key_identifier: info.has_subject_key_id,
            issuer,
        })
    }

    /// Signs a leaf certificate for `key`.
    pub fn sign(
        &self,
        template: &LeafTemplate,
        validity: Validity,
        key: &KeyPair,
    ) -> Result<Issued, PkiError> {
        let mut params = base_params(&template.subject, validity)?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = template.usages.iter().map(|u| u.purpose()).collect();
        params.subject_alt_names = template.alt_names.san_types()?;
        // CA:FALSE without rcgen's ExplicitNoCa, which would also add a SubjectKeyIdentifier.
        let mut not_ca = CustomExtension::from_oid_content(OID_BASIC_CONSTRAINTS, vec![0x30, 0x00]);
        not_ca.set_criticality(true);
        params.custom_extensions = vec![not_ca];
        params.use_authority_key_identifier_extension = self.has_key_identifier;
        let cert = params
            .signed_by(key, &self.issuer)
            .map_err(|e| PkiError::Sign(e.to_string()))?;
        Ok(Issued::from_der(cert.der().to_vec()))
    }
}

/// A PEM `CERTIFICATE REQUEST` carrying the subject and SANs, as kubeadm's `generate-csr` writes it.
pub fn signing_request(
    subject: &Subject,
    alt_names: &AltNames,
    key: &KeyPair,
) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.distinguished_name();
    params.subject_alt_names = alt_names.san_types()?;
    let csr = params
        .serialize_request(key)
        .map_err(|e| PkiError::Sign(e.to_string()))?;
    Ok(super::to_pem("CERTIFICATE REQUEST", csr.der().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::Validity;
    use super::*;
    use crate::config::EncryptionAlgorithm;
    use crate::pki::inspect::CertInfo;
    use crate::pki::keys;
    use x509_parser::der_parser::oid::Oid;
    use x509_parser::prelude::{
        FromDer, ParsedExtension, X509Certificate, X509CertificationRequest, X509Extension,
    };

    fn ca() -> (Issued, KeyPair) {
        let key = keys::generate(EncryptionAlgorithm::EcdsaP256).unwrap();
        let issued = self_signed_ca(
            "kubernetes",
            Validity::from_now(Duration::from_secs(87600 * 3600)).unwrap(),
            &key,
        )
        .unwrap();
        (issued, key)
    }

    fn extension<'a>(cert: &'a X509Certificate<'a>, oid: &Oid) -> Option<&'a X509Extension<'a>> {
        cert.extensions().iter().find(|e| e.oid == *oid)
    }

    #[test]
    fn ca_template_is_kubeadms() {
        let (issued, key) = ca();
        let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
        assert_eq!(cert.subject().to_string(), "CN=kubernetes");
        assert_eq!(cert.issuer().to_string(), "CN=kubernetes");
        let bc = extension(
            &cert,
            &x509_parser::oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS,
        )
        .unwrap();
        assert!(bc.critical);
        assert!(cert.is_ca());
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(
            ku.value.digital_signature() && ku.value.key_encipherment() && ku.value.key_cert_sign()
        );
        assert!(
            extension(
                &cert,
                &x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER
            )
            .is_some()
        );
        assert!(
            extension(
                &cert,
                &x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
            )
            .is_none()
        );
        let info = CertInfo::from_der(&issued.der).unwrap();
        assert_eq!(info.dns_names, ["kubernetes"]);
        assert!(info.matches_key(&key));
        let lifetime = info.not_after - info.not_before;
        assert_eq!(lifetime.whole_seconds(), 87600 * 3600 + 300);
        cert.verify_signature(None).unwrap();
    }

    #[test]
    fn leaf_template_is_kubeadms() {
        let (ca_cert, ca_key) = ca();
        let authority = Authority::new(&ca_cert.der, ca_key).unwrap();
        let mut alt_names = AltNames::default();
        for san in [
            "b.example",
            "10.0.0.1",
            "a.example",
            "b.example",
            "::1",
            "10.0.0.1",
        ] {
            alt_names.add(san);
        }
        let template = LeafTemplate {
            subject: Subject::new("kube-apiserver-kubelet-client", &["kubeadm:cluster-admins"]),
            usages: vec![Usage::ServerAuth, Usage::ClientAuth],
            alt_names,
        };
        let key = keys::generate(EncryptionAlgorithm::EcdsaP384).unwrap();
        let issued = authority
            .sign(
                &template,
                Validity::from_now(Duration::from_secs(3600)).unwrap(),
                &key,
            )
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
        assert_eq!(
            cert.subject().to_string(),
            "O=kubeadm:cluster-admins, CN=kube-apiserver-kubelet-client"
        );
        assert!(!cert.is_ca());
        let bc = extension(
            &cert,
            &x509_parser::oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS,
        )
        .unwrap();
        assert!(bc.critical);
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.digital_signature() && ku.value.key_encipherment());
        assert!(!ku.value.key_cert_sign());
        assert!(
            extension(
                &cert,
                &x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER
            )
            .is_none()
        );
        let akid = extension(
            &cert,
            &x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
        )
        .unwrap();
        let (_, ca_parsed) = X509Certificate::from_der(&ca_cert.der).unwrap();
        let ski = match extension(
            &ca_parsed,
            &x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
        )
        .unwrap()
        .parsed_extension()
        {
            ParsedExtension::SubjectKeyIdentifier(id) => id.0.to_vec(),
            other => panic!("{other:?}"),
        };
        match akid.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                assert_eq!(a.key_identifier.as_ref().unwrap().0, ski)
            }
            other => panic!("{other:?}"),
        }
        let info = CertInfo::from_der(&issued.der).unwrap();
        assert_eq!(info.dns_names, ["a.example", "b.example"]);
        assert_eq!(
            info.ips,
            [
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(info.usages, [Usage::ServerAuth, Usage::ClientAuth]);
        info.verify_signed_by(&CertInfo::from_der(&ca_cert.der).unwrap())
            .unwrap();
        // ECDSA P-256 CA signs with SHA-256 whatever the leaf key is.
        assert_eq!(
            cert.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        );
    }

    #[test]
    fn validity_past_year_9999_is_an_error_not_a_panic() {
        let thousands_of_years = Duration::from_secs(9000 * 366 * 86400);
        assert!(matches!(
            Validity::from_now(thousands_of_years),
            Err(PkiError::ValidityTooLong(_))
        ));
        assert!(Validity::from_now(Duration::from_secs(u64::MAX)).is_err());
        let v = Validity::from_now(Duration::from_secs(3600)).unwrap();
        assert_eq!((v.not_after - v.not_before).whole_seconds(), 3600 + 300);
    }

    #[test]
    fn serials_are_positive_63_bit_and_random() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let serial = random_serial().unwrap().to_bytes();
            assert!(serial.len() <= 8);
            let mut buf = [0u8; 8];
            buf[8 - serial.len()..].copy_from_slice(&serial);
            let value = u64::from_be_bytes(buf);
            assert!((1..(1 << 63) - 1).contains(&value));
            seen.insert(value);
        }
        assert_eq!(seen.len(), 200);
        let (ca_cert, _) = ca();
        let (_, cert) = X509Certificate::from_der(&ca_cert.der).unwrap();
        assert!(cert.serial.bits() <= 63);
    }

    #[test]
    fn leaves_signed_by_another_ca_are_rejected() {
        let (ca_cert, ca_key) = ca();
        let (other_cert, _) = ca();
        let authority = Authority::new(&ca_cert.der, ca_key).unwrap();
        let key = keys::generate(EncryptionAlgorithm::EcdsaP256).unwrap();
        let template = LeafTemplate {
            subject: Subject::new("x", &[]),
            usages: vec![Usage::ClientAuth],
            alt_names: AltNames::default(),
        };
        let issued = authority
            .sign(
                &template,
                Validity::from_now(Duration::from_secs(3600)).unwrap(),
                &key,
            )
            .unwrap();
        let leaf = CertInfo::from_der(&issued.der).unwrap();
        // Same subject "CN=kubernetes", different key: only the signature tells them apart.
        let err = leaf
            .verify_signed_by(&CertInfo::from_der(&other_cert.der).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
    }

    #[test]
    fn csr_carries_subject_and_sans_and_verifies() {
        let key = keys::generate(EncryptionAlgorithm::EcdsaP256).unwrap();
        let mut names = AltNames::default();
        names.add("node1");
        names.add("192.0.2.7");
        let pem_text = signing_request(
            &Subject::new("system:node:node1", &["system:nodes"]),
            &names,
            &key,
        )
        .unwrap();
        let block = ::pem::parse(&pem_text).unwrap();
        assert_eq!(block.tag(), "CERTIFICATE REQUEST");
        let (_, csr) = X509CertificationRequest::from_der(block.contents()).unwrap();
        csr.verify_signature().unwrap();
        assert_eq!(
            csr.certification_request_info.subject.to_string(),
            "O=system:nodes, CN=system:node:node1"
        );
    }
}
