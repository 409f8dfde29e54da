//! kubestrap's own output driving the testbed: the PKI, kubeconfigs and static-pod manifests that
//! `kubestrap init phase certs/kubeconfig/etcd/control-plane` write are what the doubles load.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::scenario::{self, ADMIN, SUPER_ADMIN, Source, Timings};
use kubestrap_testbed::driver::{Cluster, ClusterSpec};

#[test]
fn kubectl_works_with_every_kubeconfig_kubestrap_writes() -> Result<()> {
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(1))?;
    let node = cluster.node("node1")?;
    let settings = ClusterSettings::for_node(node);
    scenario::write_control_plane(node, &settings, Source::KubestrapPki)?;
    scenario::wait_for_api(node, SUPER_ADMIN, Duration::from_secs(60))?;
    scenario::bind_cluster_admins(node)?;
    for (file, user, group) in [
        ("admin.conf", "kubernetes-admin", "kubeadm:cluster-admins"),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            "system:masters",
        ),
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            "system:authenticated",
        ),
        (
            "scheduler.conf",
            "system:kube-scheduler",
            "system:authenticated",
        ),
        ("kubelet.conf", "system:node:node1", "system:nodes"),
    ] {
        let who = node
            .kubectl_with(
                &format!("/etc/kubernetes/{file}"),
                &["auth", "whoami", "-o", "json"],
            )?
            .check(file)?;
        let review: serde_json::Value = serde_json::from_str(&who.stdout)?;
        ensure!(
            review["status"]["userInfo"]["username"] == user,
            "{file}: {review}"
        );
        ensure!(
            review["status"]["userInfo"]["groups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|x| x == group)),
            "{file}: {review}"
        );
    }
    let applied = scenario::apply(
        node,
        ADMIN,
        &[
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-admin", "namespace": "default"}, "data": {"a": "b"}}),
        ],
    )?;
    ensure!(
        applied.contains("configmap/from-admin created"),
        "{applied}"
    );
    let listed = node
        .kubectl(&["get", "configmaps", "-n", "default", "-o", "name"])?
        .check("kubectl get")?;
    ensure!(
        listed.stdout.contains("configmap/from-admin"),
        "{}",
        listed.stdout
    );
    cluster.teardown()?;
    Ok(())
}

/// The milestone: node 1's control plane from kubestrap's files, nodes 2 and 3 TLS-bootstrapped,
/// three nodes listed with admin.conf, nothing left after teardown.
#[test]
fn three_nodes_from_kubestraps_control_plane_files() -> Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start(&kubestrap_testbed::binaries!(), &ClusterSpec::nodes(3))?;
    let mut timings = Timings {
        nodes_started: started.elapsed(),
        ..Default::default()
    };
    scenario::three_node_cluster(&cluster, Source::Kubestrap, &mut timings, started)?;
    let torn = cluster.teardown()?;
    eprintln!("milestone: {timings:?}, teardown {:?}", torn.duration);
    Ok(())
}
