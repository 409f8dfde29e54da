//! join's control-plane phases (`control-plane-prepare` and its sub-phases, `etcd-join`,
//! `wait-control-plane`, `control-plane-join mark-control-plane`): skipped for a worker, as kubeadm
//! skips them. For a control-plane node they download the shared certificates, render this node's
//! leaves, kubeconfigs and static pods with init's own code, add its etcd member, wait for its
//! components and mark its Node.

pub mod download_certs;
pub mod etcd_join;

use super::JoinData;
use crate::cluster::{Client, Gateway, Retry};
use crate::error::Refused;
use crate::host::{NodePath, well_known};
use crate::kubeconfig::files as kubeconfig_files;
use crate::model::{Model, record};
use crate::phases::init::{etcd, mark_control_plane, wait_control_plane};
use crate::pki::{store, table};
use crate::staticpods::{self, Component, HostInputs};
use crate::workflow::Phase;

fn is_control_plane(data: &JoinData) -> bool {
    data.node.is_control_plane()
}

fn control_plane_only(
    name: &'static str,
    help: &'static str,
    run: fn(&mut JoinData) -> anyhow::Result<()>,
) -> Phase<JoinData> {
    Phase::leaf(name, help, run).with_run_if(is_control_plane)
}

/// The model of the cluster this node joins (discovery once), cloned so that phases may borrow the
/// host alongside it.
pub fn joined_model(data: &mut JoinData) -> anyhow::Result<Model> {
    Ok(data.joining()?.model.clone())
}

pub fn prepare() -> Phase<JoinData> {
    Phase::group(
        "control-plane-prepare",
        "Prepare the machine for serving a control plane",
        vec![
            control_plane_only(
                "download-certs",
                "Download certificates shared among control-plane nodes from the kubeadm-certs Secret",
                download_certs::run,
            ),
            control_plane_only(
                "certs",
                "Generate the certificates for the new control plane components",
                certs,
            ),
            control_plane_only(
                "kubeconfig",
                "Generate the kubeconfig for the new control plane components",
                kubeconfigs,
            ),
            control_plane_only(
                "control-plane",
                "Generate the manifests for the new control plane components",
                manifests,
            ),
        ],
    )
    .with_run_if(is_control_plane)
    .with_run(check_cluster)
}

/// Before anything is written: the cluster must have a stable control-plane endpoint (kubeadm's
/// rule), and the shared certificates must come from somewhere (`--certificate-key`, or already on
/// disk). Then the node record, and the etcd data directory claimed for rollback.
fn check_cluster(data: &mut JoinData) -> anyhow::Result<()> {
    let model = joined_model(data)?;
    if model.cluster.control_plane_endpoint.is_none() {
        return Err(Refused(
            "unable to add a new control plane instance to a cluster that doesn't have a stable \
             controlPlaneEndpoint address: the cluster was set up without --control-plane-endpoint \
             (controlPlaneEndpoint in its ClusterConfiguration, kube-system/kubeadm-config). An HA \
             cluster needs an address in front of all its API servers (a load balancer or a DNS name), \
             given to 'kubestrap init --control-plane-endpoint HOST:PORT'"
                .to_string(),
        )
        .into());
    }
    let cp = model.control_plane()?;
    if data.options.certificate_key.is_none() {
        let missing = download_certs::missing_shared_files(&data.host, &cp);
        if !missing.is_empty() {
            return Err(Refused(format!(
                "a control-plane join needs the cluster's shared certificates: give --certificate-key \
                 (printed by 'kubestrap init --upload-certs', or run 'kubestrap init phase upload-certs \
                 --upload-certs' on a control-plane node for a new one), or copy them to this node \
                 first; missing: {}",
                missing.join(", ")
            ))
            .into());
        }
    }
    record::write(&data.host, &model, "join")?;
    if let Some(member) = cp.etcd_member() {
        etcd::claim_data_dir(&data.host, &member.data_dir)?;
    }
    Ok(())
}

/// This node's leaf certificates, signed by the shared CAs (init's code; the CAs and `sa` are the
/// cluster's, downloaded or already here).
fn certs(data: &mut JoinData) -> anyhow::Result<()> {
    let model = joined_model(data)?;
    let cp = model.control_plane()?;
    data.host.ui().line(format!(
        "[certs] Using certificateDir folder {:?}",
        cp.cert_dir().display_str()
    ));
    let local_etcd = !model.cluster.etcd.is_external();
    for ca in table::CAS {
        if ca.etcd && !local_etcd {
            continue;
        }
        for leaf in ca.leaves() {
            if leaf.is_etcd() && !local_etcd {
                continue;
            }
            store::ensure_leaf(&data.host, &cp, leaf)?;
        }
    }
    Ok(())
}

/// kubeadm's control-plane join kubeconfigs: admin, controller-manager, scheduler (the kubelet's
/// comes from its TLS bootstrap; super-admin.conf stays on the first node).
fn kubeconfigs(data: &mut JoinData) -> anyhow::Result<()> {
    let model = joined_model(data)?;
    let cp = model.control_plane()?;
    data.host.ui().line(format!(
        "[kubeconfig] Using kubeconfig folder {:?}",
        kubeconfig_files::kubeconfig_dir().display_str()
    ));
    for spec in [
        &kubeconfig_files::ADMIN,
        &kubeconfig_files::CONTROLLER_MANAGER,
        &kubeconfig_files::SCHEDULER,
    ] {
        kubeconfig_files::ensure(&data.host, &cp, spec)?;
    }
    Ok(())
}

fn manifests(data: &mut JoinData) -> anyhow::Result<()> {
    let model = joined_model(data)?;
    let cp = model.control_plane()?;
    data.host.ui().line(format!(
        "[control-plane] Using manifest folder {:?}",
        well_known::MANIFESTS_DIR
    ));
    let inputs = HostInputs::gather(&data.host, cp.cert_dir());
    for component in [
        Component::KubeApiServer,
        Component::KubeControllerManager,
        Component::KubeScheduler,
    ] {
        data.host.ui().line(format!(
            "[control-plane] Creating static Pod manifest for {:?}",
            component.name()
        ));
        staticpods::create(
            &data.host,
            &cp,
            &inputs,
            component,
            data.options.patches_dir.as_deref(),
        )?;
    }
    Ok(())
}

/// kubeadm's hidden `check-etcd`: the etcd cluster's health, before the kubelet starts.
pub fn check_etcd() -> Phase<JoinData> {
    control_plane_only(
        "check-etcd",
        "Check that the etcd cluster is healthy",
        etcd_join::check,
    )
    .hidden()
}

pub fn etcd_join() -> Phase<JoinData> {
    control_plane_only(
        "etcd-join",
        "Join etcd for control plane nodes",
        etcd_join::run,
    )
}

pub fn wait_control_plane() -> Phase<JoinData> {
    control_plane_only(
        "wait-control-plane",
        "Wait for the control plane to start",
        |data: &mut JoinData| {
            let model = joined_model(data)?;
            wait_control_plane::wait(&data.host, &model.control_plane()?)
        },
    )
}

pub fn join() -> Phase<JoinData> {
    Phase::group(
        "control-plane-join",
        "Join a machine as a control plane instance",
        vec![control_plane_only(
            "mark-control-plane",
            "Mark a node as a control-plane",
            mark,
        )],
    )
    .with_run_if(is_control_plane)
}

/// A gateway over this node's admin.conf (a planning one in a dry run); changes are journaled by
/// the run's cluster undo.
pub fn admin_gateway(data: &JoinData) -> anyhow::Result<Gateway<'_>> {
    if data.host.dry_run() {
        return Ok(Gateway::planning(&data.host)?);
    }
    let path = NodePath::new(well_known::KUBERNETES_DIR).join("admin.conf");
    let connection = crate::kubeconfig::connection::connection(&data.host, &path)?
        .ok_or_else(|| anyhow::anyhow!("{path} does not exist: run the kubeconfig phase first"))?;
    let client = Client::connect(&connection)?
        .with_retry(Retry::within(data.node.timeouts.kubernetes_api_call.0));
    Ok(data.cluster_undo.gateway(&data.host, client))
}

fn mark(data: &mut JoinData) -> anyhow::Result<()> {
    let stacked = !joined_model(data)?.cluster.etcd.is_external();
    let gateway = admin_gateway(data)?;
    mark_control_plane::mark_node(data.host.ui(), &gateway, &data.node)?;
    let etcd_line = if stacked {
        "* A new etcd member was added to the local/stacked etcd cluster.\n"
    } else {
        ""
    };
    data.host.ui().line(format!(
        "\nThis node has joined the cluster and a new control plane instance was created:\n\n\
         * Certificate signing request was sent to apiserver and approval was received.\n\
         * The Kubelet was informed of the new secure connection details.\n\
         * Control plane label and taint were applied to the new node.\n\
         * The Kubernetes control plane instances scaled up.\n\
         {etcd_line}\n\
         To start administering your cluster from this node, you need to run the following as a regular user:\n\n\
         \tmkdir -p $HOME/.kube\n\
         \tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n\
         \tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n\n\
         Run 'kubectl get nodes' to see this node join the cluster.\n"
    ));
    Ok(())
}
