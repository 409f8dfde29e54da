//! The `kube-public/cluster-info` kubeconfig: one cluster named `""` (the API server's URL and the CA),
//! no users or contexts, in client-go's serialised form — the exact bytes a token's detached JWS signs
//! and a joining node checks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

pub const NAMESPACE: &str = "kube-public";
pub const NAME: &str = "cluster-info";
/// The data key holding the kubeconfig.
pub const KUBECONFIG_KEY: &str = "kubeconfig";

/// The cluster-info kubeconfig for an API server at `server` whose CA bundle is `ca_pem`.
pub fn kubeconfig(server: &str, ca_pem: &[u8]) -> anyhow::Result<String> {
    crate::yaml::to_string(&json!({
        "apiVersion": "v1",
        "clusters": [{
            "cluster": {
                "certificate-authority-data": STANDARD.encode(ca_pem),
                "server": server,
            },
            "name": "",
        }],
        "contexts": null,
        "current-context": "",
        "kind": "Config",
        "preferences": {},
        "users": null,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubeadm's dry-run fixture: its cluster-info kubeconfig and the signature of token
    /// `abcdef.abcdef0123456789` over it (the spec's golden vector).
    #[test]
    fn the_fixture_is_rendered_byte_for_byte_and_signs_to_kubeadms_signature() {
        let ca = include_bytes!("../../tests/golden/kubeadm-fixture-ca.crt");
        let text = kubeconfig("https://192.168.0.101:6443", ca).unwrap();
        let expected = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://192.168.0.101:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
            STANDARD.encode(ca)
        );
        assert_eq!(text, expected);
        assert_eq!(
            crate::token::detached_jws("abcdef", "abcdef0123456789", &text),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..wUZ0q9o0VK1RWFptmSBOEem2bXHWrHyxrposHg0mb1w"
        );
    }
}
