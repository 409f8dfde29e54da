//! The host facts the manifests depend on, gathered once so that rendering itself is a pure function.

use super::volumes::CA_TRUST_DIRS;
use crate::host::{Host, NodePath};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInputs {
    /// `*_proxy` variables (any case) with a value, from the tool's own environment: kubeadm
    /// passes them to the API server, controller manager and scheduler.
    pub proxy_env: Vec<(String, String)>,
    /// The CA-trust directories that exist on the host (host facts: not looked up under `--root`).
    pub ca_trust_dirs: Vec<String>,
    /// `ca.crt` is on the node but `ca.key` is not: the CA is kept outside the cluster.
    pub external_ca: bool,
}

impl HostInputs {
    pub fn gather(host: &Host, cert_dir: &NodePath) -> Self {
        HostInputs {
            proxy_env: proxy_env(std::env::vars()),
            ca_trust_dirs: CA_TRUST_DIRS
                .iter()
                .filter(|dir| host.facts().host_file_exists(dir))
                .map(|dir| dir.to_string())
                .collect(),
            external_ca: host.exists(&cert_dir.join("ca.crt"))
                && !host.exists(&cert_dir.join("ca.key")),
        }
    }
}

/// The proxy variables among `vars`, as kubeadm's `GetProxyEnvVars` selects them.
pub fn proxy_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.into_iter()
        .filter(|(name, value)| name.to_ascii_lowercase().ends_with("_proxy") && !value.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Facts, Root};
    use crate::output::Ui;

    #[test]
    fn only_proxy_variables_with_values() {
        let vars = [
            ("HTTPS_PROXY", "http://p:3128"),
            ("no_proxy", "localhost"),
            ("ALL_PROXY", ""),
            ("PROXYCHAINS", "x"),
            ("PATH", "/bin"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()));
        assert_eq!(
            proxy_env(vars),
            vec![
                ("HTTPS_PROXY".to_string(), "http://p:3128".to_string()),
                ("no_proxy".to_string(), "localhost".to_string())
            ]
        );
    }

    #[test]
    fn ca_trust_dirs_come_from_the_host_and_the_ca_from_the_root() {
        let root = tempfile::tempdir().unwrap();
        let host_files = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host_files.path().join("etc/pki/ca-trust")).unwrap();
        // Under --root, a trust directory is not the host's: it does not count.
        std::fs::create_dir_all(root.path().join("etc/ca-certificates")).unwrap();
        std::fs::create_dir_all(root.path().join("etc/kubernetes/pki")).unwrap();
        std::fs::write(root.path().join("etc/kubernetes/pki/ca.crt"), "x").unwrap();
        let host = Host::new(
            Root::new(root.path()),
            Facts::default().with_host_files_root(host_files.path()),
            false,
            Ui::default(),
        );
        let cert_dir = NodePath::new("/etc/kubernetes/pki");
        let inputs = HostInputs::gather(&host, &cert_dir);
        assert_eq!(inputs.ca_trust_dirs, vec!["/etc/pki/ca-trust".to_string()]);
        assert!(inputs.external_ca);
        std::fs::write(root.path().join("etc/kubernetes/pki/ca.key"), "x").unwrap();
        assert!(!HostInputs::gather(&host, &cert_dir).external_ca);
    }
}
