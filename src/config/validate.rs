//! Field validators: each returns the problems it finds as `FieldError`s naming the field and the value.

use std::net::IpAddr;

use ipnet::IpNet;

use super::types::{JoinConfiguration, ResetConfiguration};
use crate::error::FieldError;
use crate::net::cidr;

/// DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', starting and ending alphanumeric, ≤ 253.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A SAN entry kubeadm accepts: a DNS-1123 subdomain or a `*.`-wildcard of one.
pub fn is_valid_dns_san(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    is_dns1123_subdomain(body)
}

pub fn node_name(field: &str, name: &str, out: &mut Vec<FieldError>) {
    if !is_dns1123_subdomain(name) {
        out.push(FieldError::new(
            field,
            name,
            "a node name must be a lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit, at most 253 characters",
        ));
    }
}

/// An advertise address: a valid unicast IP, not unspecified.
pub fn advertise_address(field: &str, value: &str, out: &mut Vec<FieldError>) -> Option<IpAddr> {
    match value.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => {
            out.push(FieldError::new(
                field,
                value,
                "the unspecified address cannot be advertised; give this node's own IP",
            ));
            None
        }
        Ok(ip) if ip.is_multicast() => {
            out.push(FieldError::new(
                field,
                value,
                "a multicast address cannot be advertised",
            ));
            None
        }
        Ok(IpAddr::V4(v4)) if v4.is_broadcast() => {
            out.push(FieldError::new(
                field,
                value,
                "the broadcast address cannot be advertised",
            ));
            None
        }
        Ok(ip) => Some(ip),
        Err(_) => {
            out.push(FieldError::new(field, value, "not a valid IP address"));
            None
        }
    }
}

pub fn port(field: &str, value: i64, out: &mut Vec<FieldError>) -> Option<u16> {
    match u16::try_from(value) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            out.push(FieldError::new(
                field,
                value,
                "a port must be between 1 and 65535",
            ));
            None
        }
    }
}

/// Parses a port given as text on the command line.
pub fn port_text(field: &str, value: &str, out: &mut Vec<FieldError>) -> Option<u16> {
    match value.trim().parse::<i64>() {
        Ok(n) => port(field, n, out),
        Err(_) => {
            out.push(FieldError::new(
                field,
                value,
                "a port must be a number between 1 and 65535",
            ));
            None
        }
    }
}

/// `host` or `host:port` (IPv6 hosts in brackets when a port is given).
pub fn host_port(
    field: &str,
    value: &str,
    out: &mut Vec<FieldError>,
) -> Option<(String, Option<u16>)> {
    let bad = |out: &mut Vec<FieldError>, reason: &str| {
        out.push(FieldError::new(field, value, reason));
        None
    };
    if value.is_empty() {
        return bad(out, "must not be empty");
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some((ip.to_string(), None));
    }
    let (host, port_text) = if let Some(rest) = value.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return bad(out, "unterminated '[' in an IPv6 host");
        };
        match after.strip_prefix(':') {
            Some(p) => (h.to_string(), Some(p)),
            None if after.is_empty() => (h.to_string(), None),
            None => return bad(out, "expected host or host:port"),
        }
    } else {
        match value.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (value.to_string(), None),
        }
    };
    let host_ok = host.parse::<IpAddr>().is_ok() || is_dns1123_subdomain(&host);
    if !host_ok {
        return bad(
            out,
            "the host must be an IP address or a lowercase DNS name",
        );
    }
    let port = match port_text {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return bad(out, "the port must be between 1 and 65535"),
        },
        None => None,
    };
    Some((host, port))
}

/// Service subnets: valid, IPv4 prefix /12–/28, IPv6 /108–/124 (room for the VIP and the DNS address).
pub fn service_subnets(field: &str, value: &str, out: &mut Vec<FieldError>) -> Option<Vec<IpNet>> {
    let nets = match cidr::parse_cidr_list(value) {
        Ok(n) => n,
        Err(e) => {
            out.push(FieldError::new(field, value, e));
            return None;
        }
    };
    let mut ok = true;
    for net in &nets {
        let (min, max) = if cidr::is_ipv4(net) {
            (12, 28)
        } else {
            (108, 124)
        };
        if net.prefix_len() < min {
            out.push(FieldError::new(
                field,
                value,
                format!(
                    "{net} is too large: the service range may be at most /{min} (2^20 addresses)"
                ),
            ));
            ok = false;
        } else if net.prefix_len() > max {
            out.push(FieldError::new(
                field,
                value,
                format!("{net} is too small: it needs room for the API VIP (1st address) and DNS (10th address); use /{max} or larger"),
            ));
            ok = false;
        }
    }
    ok.then_some(nets)
}

/// Pod subnets: valid and large enough for at least one node at the per-node mask.
pub fn pod_subnets(
    field: &str,
    value: &str,
    node_mask_v4: u8,
    node_mask_v6: u8,
    out: &mut Vec<FieldError>,
) -> Option<Vec<IpNet>> {
    let nets = match cidr::parse_cidr_list(value) {
        Ok(n) => n,
        Err(e) => {
            out.push(FieldError::new(field, value, e));
            return None;
        }
    };
    let mut ok = true;
    for net in &nets {
        let mask = if cidr::is_ipv4(net) {
            node_mask_v4
        } else {
            node_mask_v6
        };
        if net.prefix_len() > mask {
            out.push(FieldError::new(
                field,
                value,
                format!(
                    "{net} is smaller than one node's pod range (/{mask}); use /{mask} or larger"
                ),
            ));
            ok = false;
        }
    }
    ok.then_some(nets)
}

/// Pod and service ranges must not share addresses.
pub fn no_overlap(pods: &[IpNet], services: &[IpNet], out: &mut Vec<FieldError>) {
    for p in pods {
        for s in services {
            if cidr::overlaps(p, s) {
                out.push(FieldError::new(
                    "networking.podSubnet",
                    p,
                    format!(
                        "overlaps the service subnet {s}; pod and service ranges must be disjoint"
                    ),
                ));
            }
        }
    }
}

/// Phase paths (`certs`, `certs/apiserver`) checked against the command's phase tree.
pub fn phase_list(field: &str, values: &[String], known: &[String], out: &mut Vec<FieldError>) {
    for value in values {
        if !known.iter().any(|k| k == value) {
            out.push(FieldError::new(
                field,
                value,
                format!("not a phase of this command (phases: {})", known.join(", ")),
            ));
        }
    }
}

pub fn absolute_path(field: &str, value: &str, out: &mut Vec<FieldError>) {
    if !value.starts_with('/') {
        out.push(FieldError::new(field, value, "must be an absolute path"));
    }
}

pub fn token(field: &str, value: &str, out: &mut Vec<FieldError>) {
    if !is_bootstrap_token(value) {
        out.push(FieldError::new(
            field,
            "<redacted>",
            format!(
                "a bootstrap token has the form [a-z0-9]{{6}}.[a-z0-9]{{16}} (got {} characters)",
                value.len()
            ),
        ));
    }
}

pub fn is_bootstrap_token(value: &str) -> bool {
    let lower_alnum = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match value.split_once('.') {
        Some((id, secret)) => {
            id.len() == 6 && secret.len() == 16 && lower_alnum(id) && lower_alnum(secret)
        }
        None => false,
    }
}

pub fn certificate_key(field: &str, value: &str, out: &mut Vec<FieldError>) {
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        out.push(FieldError::new(
            field,
            "<redacted>",
            format!("the certificate key must be 64 hexadecimal characters (32 bytes), got {} characters", value.len()),
        ));
    }
}

pub fn one_of(field: &str, value: &str, allowed: &[&str], out: &mut Vec<FieldError>) {
    if !allowed.contains(&value) {
        out.push(FieldError::new(
            field,
            value,
            format!("must be one of {}", allowed.join(", ")),
        ));
    }
}

/// `all` may not be mixed with individual check names.
pub fn ignore_preflight_errors(field: &str, values: &[String], out: &mut Vec<FieldError>) {
    let lowered: Vec<String> = values.iter().map(|v| v.trim().to_lowercase()).collect();
    if lowered.iter().any(|v| v == "all") && lowered.len() > 1 {
        out.push(FieldError::new(
            field,
            values.join(","),
            "don't specify individual checks if 'all' is used",
        ));
    }
    if lowered.iter().any(|v| v.is_empty()) {
        out.push(FieldError::new(field, values.join(","), "empty check name"));
    }
}

/// A CRI endpoint: `unix:///absolute/path` (a bare absolute path is accepted and given the scheme).
pub fn cri_socket(field: &str, value: &str, out: &mut Vec<FieldError>) -> Option<String> {
    if let Some(path) = value.strip_prefix("unix://") {
        if path.starts_with('/') {
            return Some(value.to_string());
        }
    } else if value.starts_with('/') {
        return Some(format!("unix://{value}"));
    }
    out.push(FieldError::new(
        field,
        value,
        "a CRI socket must be unix:///absolute/path",
    ));
    None
}

pub const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
pub const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];
pub const TOKEN_USAGES: [&str; 2] = ["signing", "authentication"];
pub const PATH_TYPES: [&str; 7] = [
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
];
pub const KUBEADM_FEATURE_GATES: [&str; 5] = [
    "ControlPlaneKubeletLocalMode",
    "NodeLocalCRISocket",
    "WaitForAllControlPlaneComponents",
    "RootlessControlPlane",
    "PublicKeysECDSA",
];

/// `system:bootstrappers:` groups as the bootstrap token Secret allows them.
pub fn token_group(field: &str, group: &str, out: &mut Vec<FieldError>) {
    let ok = group
        .strip_prefix("system:bootstrappers:")
        .is_some_and(|rest| {
            !rest.is_empty()
                && rest.len() <= 256
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
                && rest
                    .bytes()
                    .last()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !ok {
        out.push(FieldError::new(
            field,
            group,
            "a bootstrap group must match system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]",
        ));
    }
}

/// An image repository such as `registry.k8s.io` or `myreg:5000/k8s` (no scheme, no trailing '/').
pub fn image_repository(field: &str, value: &str, out: &mut Vec<FieldError>) {
    let bad = value.is_empty()
        || value.contains("://")
        || value.ends_with('/')
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_ascii_uppercase());
    if bad {
        out.push(FieldError::new(
            field,
            value,
            "an image repository is a lowercase registry path such as registry.k8s.io or myreg:5000/k8s (no scheme, no trailing '/')",
        ));
    }
}

/// Checks of a JoinConfiguration that need no cluster.
pub fn join_configuration(join: &JoinConfiguration) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let d = &join.discovery;
    match (&d.bootstrap_token, &d.file) {
        (Some(_), Some(_)) => errors.push(FieldError::new(
            "discovery",
            "bootstrapToken and file",
            "exactly one of discovery.bootstrapToken and discovery.file may be set",
        )),
        (None, None) => errors.push(FieldError::new(
            "discovery",
            "",
            "one of discovery.bootstrapToken and discovery.file must be set",
        )),
        _ => {}
    }
    if let Some(bt) = &d.bootstrap_token {
        if let Some(token) = &bt.token {
            self::token("discovery.bootstrapToken.token", token, &mut errors);
        }
        match &bt.api_server_endpoint {
            Some(ep) => {
                self::host_port(
                    "discovery.bootstrapToken.apiServerEndpoint",
                    ep,
                    &mut errors,
                );
            }
            None => errors.push(FieldError::new(
                "discovery.bootstrapToken.apiServerEndpoint",
                "",
                "the API server endpoint (host:port) is required for token discovery",
            )),
        }
        let hashes = bt.ca_cert_hashes.clone().unwrap_or_default();
        for (i, h) in hashes.iter().enumerate() {
            let ok = h
                .strip_prefix("sha256:")
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                errors.push(FieldError::new(
                    format!("discovery.bootstrapToken.caCertHashes[{i}]"),
                    h,
                    "a CA pin has the form sha256:<64 hex characters>",
                ));
            }
        }
        if hashes.is_empty() && bt.unsafe_skip_ca_verification != Some(true) {
            errors.push(FieldError::new(
                "discovery.bootstrapToken.caCertHashes",
                "[]",
                "using token-based discovery without caCertHashes can be unsafe; set unsafeSkipCAVerification to continue",
            ));
        }
    }
    if let Some(t) = &d.tls_bootstrap_token {
        self::token("discovery.tlsBootstrapToken", t, &mut errors);
    }
    if let Some(name) = &join.node_registration.name {
        self::node_name("nodeRegistration.name", name, &mut errors);
    }
    if let Some(cp) = &join.control_plane {
        if let Some(addr) = &cp.local_api_endpoint.advertise_address {
            self::advertise_address(
                "controlPlane.localAPIEndpoint.advertiseAddress",
                addr,
                &mut errors,
            );
        }
        if let Some(port) = cp.local_api_endpoint.bind_port {
            self::port("controlPlane.localAPIEndpoint.bindPort", port, &mut errors);
        }
        if let Some(key) = &cp.certificate_key {
            self::certificate_key("controlPlane.certificateKey", key, &mut errors);
        }
    }
    if let Some(path) = &join.ca_cert_path {
        self::absolute_path("caCertPath", path, &mut errors);
    }
    errors
}

/// Checks of a ResetConfiguration.
pub fn reset_configuration(reset: &ResetConfiguration) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(dir) = &reset.certificates_dir {
        self::absolute_path("certificatesDir", dir, &mut errors);
    }
    if let Some(socket) = &reset.cri_socket {
        self::cri_socket("criSocket", socket, &mut errors);
    }
    for flag in reset.unmount_flags.iter().flatten() {
        self::one_of(
            "unmountFlags",
            flag,
            &["MNT_FORCE", "MNT_DETACH", "MNT_EXPIRE", "UMOUNT_NOFOLLOW"],
            &mut errors,
        );
    }
    if let Some(list) = &reset.ignore_preflight_errors {
        self::ignore_preflight_errors("ignorePreflightErrors", list, &mut errors);
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns1123_subdomain("cp-1.example.com"));
        assert!(!is_dns1123_subdomain("iZ25beglnhtZ"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain(""));
        assert!(!is_dns1123_subdomain(&"a".repeat(64)));
        assert!(is_valid_dns_san("*.apps.example.com"));
    }

    #[test]
    fn host_ports() {
        let mut e = Vec::new();
        assert_eq!(
            self::host_port("f", "lb.example:6443", &mut e),
            Some(("lb.example".into(), Some(6443)))
        );
        assert_eq!(
            self::host_port("f", "10.0.0.1", &mut e),
            Some(("10.0.0.1".into(), None))
        );
        assert_eq!(
            self::host_port("f", "[fd00::1]:443", &mut e),
            Some(("fd00::1".into(), Some(443)))
        );
        assert_eq!(
            self::host_port("f", "fd00::1", &mut e),
            Some(("fd00::1".into(), None))
        );
        assert!(e.is_empty());
        assert!(self::host_port("f", "lb:99999", &mut e).is_none());
        assert!(self::host_port("f", "Bad_Host", &mut e).is_none());
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn tokens() {
        assert!(is_bootstrap_token("abcdef.0123456789abcdef"));
        assert!(!is_bootstrap_token("ABCDEF.0123456789abcdef"));
        assert!(!is_bootstrap_token("abcdef0123456789abcdef"));
        assert!(!is_bootstrap_token("abcde.0123456789abcdefg"));
    }
}
