//! `init phase show-join-command`: init's closing message, as kubeadm prints it — where admin.conf is,
//! and the `kubestrap join` commands for control-plane nodes (when the cluster has a control-plane
//! endpoint) and workers, with the bootstrap token and the CA public-key pins.

use super::InitData;
use super::bootstrap_token;
use crate::host::{NodePath, well_known};
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::leaf(
        "show-join-command",
        "Show the join command for control-plane and worker node",
        show,
    )
}

/// What a join command is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinCommand {
    /// `host:port` of the control plane.
    pub endpoint: String,
    /// The token, or `<value withheld>`.
    pub token: String,
    /// `sha256:<hex>` per CA certificate.
    pub ca_pins: Vec<String>,
}

impl JoinCommand {
    /// kubeadm's layout: continuation lines start with a tab, each pin is followed by a space.
    pub fn render(&self, control_plane: Option<Option<&str>>) -> String {
        let mut text = format!(
            "kubestrap join {} --token {} \\\n",
            self.endpoint, self.token
        );
        for pin in &self.ca_pins {
            text.push_str(&format!("\t--discovery-token-ca-cert-hash {pin} "));
        }
        if let Some(key) = control_plane {
            text.push_str("\\\n\t--control-plane ");
            if let Some(key) = key {
                text.push_str(&format!("--certificate-key {key}"));
            }
        }
        text
    }
}

fn show(data: &mut InitData) -> anyhow::Result<()> {
    let tokens = bootstrap_token::tokens(data)?;
    let cp = data.control_plane()?;
    let ca_path = cp.cert_dir().join("ca.crt");
    let ca = data
        .host
        .read(&ca_path)
        .map_err(|e| anyhow::anyhow!("reading {ca_path}: {e}: run the certs phase first"))?;
    let endpoint = match &cp.cluster.control_plane_endpoint {
        Some(e) => e.to_string(),
        None => cp.api.host_port(),
    };
    let token = match (tokens.first(), data.options.skip_token_print) {
        (_, true) => "<value withheld>".to_string(),
        (Some((t, _)), false) => t.reveal(),
        (None, false) => anyhow::bail!("there is no bootstrap token to show a join command with"),
    };
    let join = JoinCommand {
        endpoint,
        token,
        ca_pins: crate::pki::pin::pins(&ca)?,
    };
    let admin = data
        .host
        .disk(&NodePath::new(well_known::KUBERNETES_DIR).join("admin.conf"));
    let admin = admin.display();
    let mut text = format!(
        "\nYour Kubernetes control-plane has initialized successfully!\n\n\
         To start using your cluster, you need to run the following as a regular user:\n\n\
         \x20 mkdir -p $HOME/.kube\n\
         \x20 sudo cp -i {admin} $HOME/.kube/config\n\
         \x20 sudo chown $(id -u):$(id -g) $HOME/.kube/config\n\n\
         Alternatively, if you are the root user, you can run:\n\n\
         \x20 export KUBECONFIG={admin}\n\n"
    );
    let skipped = |phase: &str| data.options.skip_phases.iter().any(|p| p == phase);
    match data.model.cluster.pod_network.addon.addon() {
        Some(addon) if !skipped("addon") && !skipped("addon/pod-network") => {
            text.push_str(&format!(
                "The pod network {} ({}) was installed by the addon phase; watch it roll out with:\n\n\
                 \x20 kubectl -n {} rollout status daemonset/{}\n\n",
                addon.name, addon.data.upstream.release, addon.data.namespace, addon.data.daemonset
            ));
        }
        _ => text.push_str(
            "You should now deploy a pod network to the cluster.\n\
             Run \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:\n\
             \x20 https://kubernetes.io/docs/concepts/cluster-administration/addons/\n\n",
        ),
    }
    if cp.cluster.control_plane_endpoint.is_some() {
        let key = data
            .options
            .certificate_key
            .as_deref()
            .filter(|_| data.options.upload_certs);
        if key.is_some() {
            text.push_str("You can now join any number of the control-plane node running the following command on each as root:\n\n");
        } else {
            text.push_str("You can now join any number of control-plane nodes by copying certificate authorities\nand service account keys on each node and then running the following as root:\n\n");
        }
        text.push_str(&indent(&join.render(Some(key))));
        text.push_str("\n\n");
        if key.is_some() {
            text.push_str("Please note that the certificate-key gives access to cluster sensitive data, keep it secret!\nAs a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n\"kubestrap init phase upload-certs --upload-certs\" to reload certs afterward.\n\n");
        } else if data.options.upload_certs {
            text.push_str("(The certificate key was not generated by this run: \"kubestrap init phase upload-certs --upload-certs\" uploads the certificates again and prints a new one.)\n\n");
        }
    }
    text.push_str(
        "Then you can join any number of worker nodes by running the following on each as root:\n\n",
    );
    text.push_str(&join.render(None));
    text.push('\n');
    data.host.ui().line(text);
    Ok(())
}

/// The control-plane command's first line is indented by two spaces, as kubeadm prints it.
fn indent(text: &str) -> String {
    format!("  {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_commands_are_laid_out_as_kubeadms() {
        let join = JoinCommand {
            endpoint: "192.168.8.205:6443".into(),
            token: "abcdef.0123456789abcdef".into(),
            ca_pins: vec!["sha256:aa".into()],
        };
        assert_eq!(
            join.render(None),
            "kubestrap join 192.168.8.205:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash sha256:aa "
        );
        assert_eq!(
            join.render(Some(Some("k"))),
            "kubestrap join 192.168.8.205:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash sha256:aa \\\n\t--control-plane --certificate-key k"
        );
    }
}
