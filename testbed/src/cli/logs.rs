//! `logs NODE [SERVICE|POD]`: a service's log (its service manager's journal) or a pod's container
//! logs (the latest attempt of each container); without a name, what there is to read.

use super::clusters::{self, shown};
use super::error::{CliResult, usage};
use crate::driver::node_state::{NodeLogs, PodLog, SERVICE_LOG_DIR};
use crate::driver::{Cluster, Node};

/// What `logs` prints for a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Source<'a> {
    Service(String),
    /// One pod's containers (latest attempt each).
    Pod(Vec<&'a PodLog>),
}

/// Resolves what the user typed: a service (`kubelet`, `kubelet.service`), or a pod by its
/// manifest's name (`etcd`), the kubelet's pod name (`etcd-node1`) or `namespace/pod`.
pub fn resolve<'a>(logs: &'a NodeLogs, node: &str, wanted: &str) -> Result<Source<'a>, String> {
    let service = wanted.trim_end_matches(".service");
    if logs.services.iter().any(|s| s == service) {
        return Ok(Source::Service(service.to_string()));
    }
    let matches = |p: &PodLog| {
        p.pod == wanted
            || p.pod == format!("{wanted}-{node}")
            || format!("{}/{}", p.namespace, p.pod) == wanted
    };
    let found: Vec<&PodLog> = logs.pods.iter().filter(|p| matches(p)).collect();
    let mut pods: Vec<(&str, &str)> = found
        .iter()
        .map(|p| (p.namespace.as_str(), p.pod.as_str()))
        .collect();
    pods.dedup();
    match pods.len() {
        0 => Err(format!(
            "node {node} has no log of a service or pod named {wanted:?} ({})",
            listing(logs)
        )),
        1 => Ok(Source::Pod(found)),
        _ => Err(format!(
            "{wanted:?} names several pods on {node}: {}; give NAMESPACE/POD",
            pods.iter()
                .map(|(ns, p)| format!("{ns}/{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// One line naming every service and pod that has a log.
fn listing(logs: &NodeLogs) -> String {
    let mut pods: Vec<String> = logs
        .pods
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.pod))
        .collect();
    pods.dedup();
    format!(
        "services: {}; pods: {}",
        if logs.services.is_empty() {
            "none".into()
        } else {
            logs.services.join(", ")
        },
        if pods.is_empty() {
            "none".into()
        } else {
            pods.join(", ")
        }
    )
}

pub fn run(cluster: &Cluster, node: &Node, wanted: Option<&str>) -> CliResult<i32> {
    clusters::require_running(cluster, node)?;
    let logs = node.logs()?;
    let who = shown(cluster, node);
    let Some(wanted) = wanted else {
        println!("services (kubestrap-testbed logs {who} SERVICE):");
        for service in &logs.services {
            println!("  {service}");
        }
        println!("pods (kubestrap-testbed logs {who} POD):");
        let mut last = None;
        for pod in &logs.pods {
            let name = format!("{}/{}", pod.namespace, pod.pod);
            if last.as_ref() != Some(&name) {
                println!("  {name}");
            }
            last = Some(name);
        }
        return Ok(0);
    };
    match resolve(&logs, &node.name, wanted).map_err(usage)? {
        Source::Service(service) => {
            let path = format!("{SERVICE_LOG_DIR}/{service}.log");
            Ok(node.exec_attached(&["cat".into(), path], false)?)
        }
        Source::Pod(containers) => {
            let several = containers.len() > 1;
            for log in containers {
                if several {
                    println!(
                        "==> container {} (attempt {}) <==",
                        log.container, log.attempt
                    );
                }
                let code = node.exec_attached(&["cat".into(), log.path.clone()], false)?;
                if code != 0 {
                    return Ok(code);
                }
            }
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::node_state::parse_logs;

    fn logs() -> NodeLogs {
        parse_logs(
            "kubelet.log containerd.log",
            "/var/log/pods/kube-system_etcd-node1_u1/etcd/0.log\n\
             /var/log/pods/kube-system_web-node1_u2/nginx/0.log\n\
             /var/log/pods/kube-system_web-node1_u2/sidecar/1.log\n\
             /var/log/pods/default_web-node1_u3/nginx/0.log\n",
        )
    }

    #[test]
    fn services_come_first_by_name_or_unit() {
        let logs = logs();
        for wanted in ["kubelet", "kubelet.service"] {
            assert_eq!(
                resolve(&logs, "node1", wanted),
                Ok(Source::Service("kubelet".into()))
            );
        }
    }

    #[test]
    fn pods_by_manifest_name_pod_name_or_namespace() {
        let logs = logs();
        for wanted in ["etcd", "etcd-node1", "kube-system/etcd-node1"] {
            match resolve(&logs, "node1", wanted) {
                Ok(Source::Pod(c)) => assert_eq!(c[0].container, "etcd", "{wanted}"),
                other => panic!("{wanted}: {other:?}"),
            }
        }
        match resolve(&logs, "node1", "kube-system/web-node1") {
            Ok(Source::Pod(c)) => {
                let names: Vec<&str> = c.iter().map(|l| l.container.as_str()).collect();
                assert_eq!(names, ["nginx", "sidecar"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_and_ambiguous_names_say_what_there_is() {
        let logs = logs();
        let err = resolve(&logs, "node1", "kube-proxy").unwrap_err();
        assert!(
            err.contains("services: containerd, kubelet") && err.contains("kube-system/etcd-node1"),
            "{err}"
        );
        let err = resolve(&logs, "node1", "web").unwrap_err();
        assert!(
            err.contains("default/web-node1, kube-system/web-node1"),
            "{err}"
        );
    }
}
