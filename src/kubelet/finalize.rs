//! kubelet-finalize's rewrite of `/etc/kubernetes/kubelet.conf`: the node user's embedded client
//! certificate is replaced by the kubelet's rotating `kubelet-client-current.pem` (certificate and
//! key in one file), so the kubelet's renewals take effect without touching the kubeconfig.

use crate::config::types::last_value;
use crate::host::{NodePath, well_known};
use crate::kubeconfig::KubeConfig;
use crate::model::Model;

pub const CLIENT_CURRENT: &str = "kubelet-client-current.pem";

/// `kubelet-client-current.pem` in the kubelet's certificate directory (`--cert-dir` among
/// `kubeletExtraArgs`, else `/var/lib/kubelet/pki`).
pub fn rotating_pem(model: &Model) -> NodePath {
    let dir = last_value(&model.node.kubelet_extra_args, "cert-dir")
        .map(NodePath::new)
        .unwrap_or_else(|| NodePath::new(well_known::KUBELET_DIR).join("pki"));
    dir.join(CLIENT_CURRENT)
}

/// Points the `system:node:<node>` user at `pem` for both certificate and key.
pub fn point_at(config: &mut KubeConfig, node_name: &str, pem: &NodePath) -> anyhow::Result<()> {
    let user_name = format!("system:node:{node_name}");
    let user = config
        .users
        .iter_mut()
        .find(|u| u.name == user_name)
        .ok_or_else(|| anyhow::anyhow!("it has no credentials for the user {user_name:?}"))?;
    let pem = pem.display_str();
    user.user.client_certificate_data = None;
    user.user.client_key_data = None;
    user.user.client_certificate = Some(pem.clone());
    user.user.client_key = Some(pem);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::control_plane_model;

    #[test]
    fn the_node_user_points_at_the_rotating_file() {
        let model = control_plane_model("");
        let pem = rotating_pem(&model);
        assert_eq!(
            pem,
            NodePath::new("/var/lib/kubelet/pki/kubelet-client-current.pem")
        );
        let mut config = KubeConfig::parse(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster: {server: 'https://192.168.8.201:6443'}\n\
             contexts:\n- name: system:node:cp1@kubernetes\n  context: {cluster: kubernetes, user: 'system:node:cp1'}\n\
             current-context: system:node:cp1@kubernetes\nusers:\n- name: system:node:cp1\n  user: {client-certificate-data: Y2VydA==, client-key-data: a2V5}\n",
        )
        .unwrap();
        point_at(&mut config, "cp1", &pem).unwrap();
        let text = config.to_yaml().unwrap();
        assert!(
            !text.contains("client-certificate-data") && !text.contains("client-key-data"),
            "{text}"
        );
        assert!(
            text.contains("client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem"),
            "{text}"
        );
        assert!(
            text.contains("client-key: /var/lib/kubelet/pki/kubelet-client-current.pem"),
            "{text}"
        );
        let err = point_at(&mut config, "other", &pem).unwrap_err();
        assert!(err.to_string().contains("system:node:other"), "{err}");
    }
}
