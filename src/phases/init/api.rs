//! How init's API phases reach the cluster: a gateway over admin.conf's credentials, after making sure
//! admin.conf's group is bound to cluster-admin (through super-admin.conf when admin.conf cannot yet
//! do it, as kubeadm does); a gateway that only plans in a dry run. And the RBAC object shapes the
//! phases create.

use anyhow::Context;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::InitData;
use crate::cluster::{Client, Gateway, Retry};
use crate::host::{NodePath, well_known};
use crate::pki::table::CLUSTER_ADMINS_GROUP;

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The binding that makes admin.conf's group cluster-admin.
pub const CLUSTER_ADMINS_BINDING: &str = "kubeadm:cluster-admins";

/// The cluster gateway of an API phase. Changes are journaled (and undone on failure) by the run's
/// [`crate::workflow::cluster_undo::ClusterUndo`].
pub fn gateway(data: &InitData) -> anyhow::Result<Gateway<'_>> {
    if data.host.dry_run() {
        return Ok(Gateway::planning(&data.host)?);
    }
    let admin = client(data, "admin.conf")?;
    let gateway = data.cluster_undo.gateway(&data.host, admin);
    ensure_cluster_admins(data, &gateway)?;
    Ok(data.cluster_undo.gateway(
        &data.host,
        gateway.client().context("a connected gateway")?.clone(),
    ))
}

/// A client from `/etc/kubernetes/<name>`, retrying for the node's `kubernetesAPICall` timeout.
fn client(data: &InitData, name: &str) -> anyhow::Result<Client> {
    let path = NodePath::new(well_known::KUBERNETES_DIR).join(name);
    let connection = crate::kubeconfig::connection::connection(&data.host, &path)?
        .with_context(|| format!("{path} does not exist: run the kubeconfig phase first"))?;
    let deadline = data.model.node.timeouts.kubernetes_api_call.0;
    Ok(Client::connect(&connection)?.with_retry(Retry::within(deadline)))
}

/// kubeadm's `EnsureAdminClusterRoleBinding`: with admin.conf when it already may (the binding
/// exists), else created with super-admin.conf (`system:masters`).
fn ensure_cluster_admins(data: &InitData, admin: &Gateway) -> anyhow::Result<()> {
    match admin.get::<ClusterRoleBinding>(None, CLUSTER_ADMINS_BINDING) {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(e) if e.code() == Some(403) => {}
        Err(e) => return Err(e.into()),
    }
    let binding = cluster_role_binding(
        CLUSTER_ADMINS_BINDING,
        "cluster-admin",
        vec![group(CLUSTER_ADMINS_GROUP)],
    );
    match admin.create(&binding) {
        Ok(_) => return Ok(()),
        Err(e) if e.is_already_exists() => return Ok(()),
        Err(e) if e.code() == Some(403) => {}
        Err(e) => return Err(e.into()),
    }
    data.host.ui().debug(
        1,
        "[init] admin.conf may not bind its group yet: creating the binding with super-admin.conf",
    );
    let super_admin = Gateway::new(&data.host, client(data, "super-admin.conf")?);
    match super_admin.create(&binding) {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(format!(
            "creating the ClusterRoleBinding {CLUSTER_ADMINS_BINDING:?} with super-admin.conf"
        ))),
    }
}

fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        ..Default::default()
    }
}

pub fn group(name: &str) -> Subject {
    Subject {
        api_group: Some(RBAC_GROUP.to_string()),
        kind: "Group".to_string(),
        name: name.to_string(),
        namespace: None,
    }
}

pub fn user(name: &str) -> Subject {
    Subject {
        api_group: Some(RBAC_GROUP.to_string()),
        kind: "User".to_string(),
        name: name.to_string(),
        namespace: None,
    }
}

pub fn service_account(namespace: &str, name: &str) -> Subject {
    Subject {
        api_group: None,
        kind: "ServiceAccount".to_string(),
        name: name.to_string(),
        namespace: Some(namespace.to_string()),
    }
}

/// A rule on core-group resources.
pub fn rule(resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(list(resources)),
        verbs: list(verbs),
        resource_names: (!names.is_empty()).then(|| list(names)),
        non_resource_urls: None,
    }
}

/// A Role allowing `get` of the named objects of one resource in `namespace`.
pub fn get_role(namespace: &str, name: &str, resource: &str, object: &str) -> Role {
    Role {
        metadata: meta(Some(namespace), name),
        rules: Some(vec![rule(&[resource], &["get"], &[object])]),
    }
}

pub fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(None, name),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

pub fn role_binding(
    namespace: &str,
    name: &str,
    role: &str,
    subjects: Vec<Subject>,
) -> RoleBinding {
    RoleBinding {
        metadata: meta(Some(namespace), name),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_string(),
            kind: "Role".to_string(),
            name: role.to_string(),
        },
        subjects: Some(subjects),
    }
}

pub fn cluster_role_binding(
    name: &str,
    cluster_role: &str,
    subjects: Vec<Subject>,
) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(None, name),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_string(),
            kind: "ClusterRole".to_string(),
            name: cluster_role.to_string(),
        },
        subjects: Some(subjects),
    }
}

/// Object metadata with a name and namespace.
pub fn object_meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    meta(namespace, name)
}
