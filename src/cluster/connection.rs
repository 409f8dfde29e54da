//! Where an API server is and who we are to it: its URL, the CA to trust, and a client certificate or a
//! bearer token — what a kubeconfig's current context says, already read (kubeconfig::connection).

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;

use super::error::ClusterError;

/// How long establishing a TCP+TLS connection may take before the attempt counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Who the client is to the API server.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A client certificate and its key, PEM.
    ClientCertificate { cert_pem: Vec<u8>, key_pem: Vec<u8> },
    /// A bearer token (a bootstrap token `abcdef.0123456789abcdef`, a service-account token…).
    Token(String),
    /// No credentials: the server sees `system:anonymous`.
    Anonymous,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ClientCertificate { cert_pem, .. } => {
                write!(
                    f,
                    "ClientCertificate({} bytes, key [secret])",
                    cert_pem.len()
                )
            }
            Credentials::Token(_) => write!(f, "Token([secret])"),
            Credentials::Anonymous => write!(f, "Anonymous"),
        }
    }
}

/// Everything needed to reach one API server as one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `https://host:port`.
    pub server: String,
    /// The CA bundle the server's certificate must chain to (PEM); `None` trusts nothing but what
    /// `insecure_skip_tls_verify` allows.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    /// The name the server's certificate must carry, when it is not the URL's host.
    pub tls_server_name: Option<String>,
    pub credentials: Credentials,
    /// Where these settings came from (a kubeconfig path), for messages.
    pub source: String,
}

impl Connection {
    /// kube's client configuration for this connection. kube's own retries are off: the gateway
    /// retries (see `retry`), with its own idea of what is transient.
    pub(crate) fn kube_config(
        &self,
        connect_timeout: Duration,
    ) -> Result<kube::Config, ClusterError> {
        let bad = |reason: String| ClusterError::Connection {
            source_name: self.source.clone(),
            reason,
        };
        if !self.server.starts_with("https://") && !self.server.starts_with("http://") {
            return Err(bad(format!(
                "the server {:?} is not an http(s) URL",
                self.server
            )));
        }
        let url = self
            .server
            .parse()
            .map_err(|e| bad(format!("the server {:?} is not a URL: {e}", self.server)))?;
        let mut config = kube::Config::new(url);
        config.connect_timeout = Some(connect_timeout);
        config.default_retry = false;
        config.accept_invalid_certs = self.insecure_skip_tls_verify;
        config.tls_server_name = self.tls_server_name.clone();
        if let Some(pem) = &self.ca_pem {
            let certs: Vec<Vec<u8>> = ::pem::parse_many(pem)
                .map_err(|e| bad(format!("the certificate authority is not PEM: {e}")))?
                .into_iter()
                .filter(|p| p.tag() == "CERTIFICATE")
                .map(|p| p.into_contents())
                .collect();
            if certs.is_empty() {
                return Err(bad("the certificate authority holds no certificate".into()));
            }
            config.root_cert = Some(certs);
        }
        match &self.credentials {
            Credentials::ClientCertificate { cert_pem, key_pem } => {
                config.auth_info.client_certificate_data = Some(STANDARD.encode(cert_pem));
                config.auth_info.client_key_data =
                    Some(SecretString::from(STANDARD.encode(key_pem)));
            }
            Credentials::Token(token) => {
                config.auth_info.token = Some(SecretString::from(token.clone()));
            }
            Credentials::Anonymous => {}
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(server: &str) -> Connection {
        Connection {
            server: server.into(),
            ca_pem: None,
            insecure_skip_tls_verify: false,
            tls_server_name: None,
            credentials: Credentials::Token("abcdef.0123456789abcdef".into()),
            source: "/etc/kubernetes/bootstrap-kubelet.conf".into(),
        }
    }

    #[test]
    fn a_server_that_is_not_a_url_names_the_kubeconfig() {
        let err = connection("10.0.0.1:6443")
            .kube_config(CONNECT_TIMEOUT)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/kubernetes/bootstrap-kubelet.conf: the server \"10.0.0.1:6443\" is not an http(s) URL"
        );
        let mut bad_ca = connection("https://10.0.0.1:6443");
        bad_ca.ca_pem = Some(b"not pem".to_vec());
        let err = bad_ca.kube_config(CONNECT_TIMEOUT).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
    }

    #[test]
    fn tokens_and_keys_never_show_in_debug_output() {
        let mut c = connection("https://10.0.0.1:6443");
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        c.credentials = Credentials::ClientCertificate {
            cert_pem: b"CERT".to_vec(),
            key_pem: b"-----BEGIN PRIVATE KEY-----".to_vec(),
        };
        assert!(!format!("{c:?}").contains("PRIVATE"));
        let config = c.kube_config(CONNECT_TIMEOUT).unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://10.0.0.1:6443/");
        assert!(!config.default_retry);
    }
}
