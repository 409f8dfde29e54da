//! What a node is doing: its container's state and whether it is cut off, the services its service
//! manager runs, the pods its container runtime runs, and the logs it keeps.

use anyhow::{Context, Result, bail};

use super::cluster::Node;
use super::docker::docker;
use super::inspect;

/// Where the node's service manager writes each service's log (`<service>.log`).
pub const SERVICE_LOG_DIR: &str = "/var/log/testbed";
/// Where the kubelet has the runtime write container logs:
/// `<namespace>_<pod>_<uid>/<container>/<attempt>.log`.
pub const POD_LOG_DIR: &str = "/var/log/pods";

/// The node container's state as Docker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Power {
    Running,
    Paused,
    /// Exited, or created and never started.
    Stopped,
    /// restarting, removing, dead: passing states the testbed does not cause itself.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub power: Power,
    /// Not attached to the cluster network (`partition`), whatever its power state.
    pub partitioned: bool,
}

impl NodeStatus {
    pub fn from_docker(status: &str, connected: bool) -> NodeStatus {
        let power = match status {
            "running" => Power::Running,
            "paused" => Power::Paused,
            "exited" | "created" => Power::Stopped,
            other => Power::Other(other.to_string()),
        };
        NodeStatus {
            power,
            partitioned: !connected,
        }
    }

    /// `running`, `paused`, `stopped`, each with `, partitioned` when cut off.
    pub fn describe(&self) -> String {
        let power = match &self.power {
            Power::Running => "running",
            Power::Paused => "paused",
            Power::Stopped => "stopped",
            Power::Other(s) => s,
        };
        if self.partitioned {
            format!("{power}, partitioned")
        } else {
            power.to_string()
        }
    }
}

/// A service of the node's service manager and its state (`systemctl show`'s ActiveState and
/// SubState: `active`/`running`, `activating`/`auto-restart`, `failed`/`failed`, `inactive`/`dead`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub active: String,
    pub sub: String,
}

/// A pod sandbox of the node's container runtime and its containers (name, running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<(String, bool)>,
}

/// One container's log file of a pod (the latest attempt's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLog {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub attempt: u32,
    pub path: String,
}

/// The logs a node keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLogs {
    /// Services with a log in [`SERVICE_LOG_DIR`], by unit name without `.service`.
    pub services: Vec<String>,
    /// Each pod container's latest log, ordered by namespace, pod and container.
    pub pods: Vec<PodLog>,
}

/// Parses `systemctl show -p Id -p ActiveState -p SubState <units…>` (blocks of `key=value`).
pub fn parse_services(show: &str) -> Vec<Service> {
    let mut services: Vec<Service> = Vec::new();
    for line in show.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "Id" => services.push(Service {
                name: value.trim_end_matches(".service").to_string(),
                active: String::new(),
                sub: String::new(),
            }),
            "ActiveState" => {
                if let Some(s) = services.last_mut() {
                    s.active = value.to_string();
                }
            }
            "SubState" => {
                if let Some(s) = services.last_mut() {
                    s.sub = value.to_string();
                }
            }
            _ => {}
        }
    }
    services
}

/// Parses the service log names and the pod log paths (one per line) a node lists.
pub fn parse_logs(service_files: &str, pod_files: &str) -> NodeLogs {
    let mut services: Vec<String> = service_files
        .split_whitespace()
        .filter_map(|f| f.strip_suffix(".log"))
        .map(str::to_string)
        .collect();
    services.sort();
    let mut pods: Vec<PodLog> = Vec::new();
    for path in pod_files.lines().map(str::trim) {
        let Some(rest) = path.strip_prefix(&format!("{POD_LOG_DIR}/")) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [dir, container, file] = parts[..] else {
            continue;
        };
        let mut ids = dir.splitn(3, '_');
        let (Some(namespace), Some(pod), Some(_uid)) = (ids.next(), ids.next(), ids.next()) else {
            continue;
        };
        let Some(attempt) = file.strip_suffix(".log").and_then(|a| a.parse().ok()) else {
            continue;
        };
        let log = PodLog {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
            attempt,
            path: path.to_string(),
        };
        match pods.iter_mut().find(|p| {
            (&p.namespace, &p.pod, &p.container) == (&log.namespace, &log.pod, &log.container)
        }) {
            Some(known) if known.attempt < attempt => *known = log,
            Some(_) => {}
            None => pods.push(log),
        }
    }
    pods.sort_by(|a, b| {
        (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container))
    });
    NodeLogs { services, pods }
}

impl Node {
    /// Whether the node runs, is frozen or stopped, and whether it is cut off the network.
    pub fn status(&self) -> Result<NodeStatus> {
        let out = docker(&["container", "inspect", &self.container], None)?;
        if !out.ok() {
            bail!(
                "node {}'s container {} is gone: {}",
                self.name,
                self.container,
                out.stderr.trim()
            );
        }
        let info = inspect::parse_containers(&out.stdout)?
            .into_iter()
            .next()
            .with_context(|| format!("docker inspect printed nothing for {}", self.container))?;
        Ok(NodeStatus::from_docker(
            &info.state.status,
            info.connected_to(&self.network),
        ))
    }

    /// Every unit the node's service manager knows, with its state.
    pub fn services(&self) -> Result<Vec<Service>> {
        let files = self
            .systemctl(&["list-unit-files"])?
            .check(&format!("systemctl list-unit-files on {}", self.name))?;
        let mut units: Vec<&str> = files
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        units.sort();
        units.dedup();
        if units.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["show", "-p", "Id", "-p", "ActiveState", "-p", "SubState"];
        args.extend(units);
        let show = self
            .systemctl(&args)?
            .check(&format!("systemctl show on {}", self.name))?;
        Ok(parse_services(&show.stdout))
    }

    /// Every pod the node's container runtime has, through its CRI socket (kubestrap's client).
    pub fn pods(&self) -> Result<Vec<Pod>> {
        let socket = self.host_path(crate::cri::SOCKET)?;
        let endpoint = format!("unix://{}", socket.display());
        let (sandboxes, containers) = kubestrap::host::runtime::cri::scan(&endpoint)
            .with_context(|| format!("list the pods of {}", self.name))?;
        let mut pods: Vec<Pod> = sandboxes
            .into_iter()
            .map(|s| Pod {
                containers: containers
                    .iter()
                    .filter(|c| c.sandbox_id == s.id)
                    .map(|c| (c.name.clone(), c.running))
                    .collect(),
                namespace: s.namespace,
                name: s.name,
            })
            .collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(pods)
    }

    /// The service and pod logs the node has.
    pub fn logs(&self) -> Result<NodeLogs> {
        let services = self.sh(&format!("ls -1 {SERVICE_LOG_DIR} 2>/dev/null || true"))?;
        let pods = self.sh(&format!(
            "find {POD_LOG_DIR} -mindepth 3 -maxdepth 3 -name '*.log' 2>/dev/null || true"
        ))?;
        Ok(parse_logs(&services.stdout, &pods.stdout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_states_are_named_as_an_admin_would() {
        let cases = [
            ("running", true, "running"),
            ("paused", true, "paused"),
            ("exited", true, "stopped"),
            ("created", true, "stopped"),
            ("running", false, "running, partitioned"),
            ("restarting", true, "restarting"),
        ];
        for (docker, connected, shown) in cases {
            assert_eq!(NodeStatus::from_docker(docker, connected).describe(), shown);
        }
    }

    #[test]
    fn services_come_from_systemctl_show_blocks() {
        let show = "Id=containerd.service\nActiveState=active\nSubState=running\n\
                    Id=kubelet.service\nActiveState=activating\nSubState=auto-restart\n";
        let services = parse_services(show);
        assert_eq!(
            services,
            [
                Service {
                    name: "containerd".into(),
                    active: "active".into(),
                    sub: "running".into()
                },
                Service {
                    name: "kubelet".into(),
                    active: "activating".into(),
                    sub: "auto-restart".into()
                }
            ]
        );
    }

    #[test]
    fn the_latest_attempt_of_each_pod_container_is_its_log() {
        let pods = "/var/log/pods/kube-system_etcd-node1_a1b2/etcd/0.log\n\
                    /var/log/pods/kube-system_etcd-node1_a1b2/etcd/2.log\n\
                    /var/log/pods/kube-system_etcd-node1_a1b2/etcd/1.log\n\
                    /var/log/pods/kube-system_kube-apiserver-node1_c3d4/kube-apiserver/0.log\n\
                    /var/log/pods/stray.log\n";
        let logs = parse_logs("kubelet.log\ncontainerd.log\nnotes.txt\n", pods);
        assert_eq!(logs.services, ["containerd", "kubelet"]);
        let found: Vec<(&str, &str, u32)> = logs
            .pods
            .iter()
            .map(|p| (p.pod.as_str(), p.container.as_str(), p.attempt))
            .collect();
        assert_eq!(
            found,
            [
                ("etcd-node1", "etcd", 2),
                ("kube-apiserver-node1", "kube-apiserver", 0)
            ]
        );
        assert_eq!(
            logs.pods[0].path,
            "/var/log/pods/kube-system_etcd-node1_a1b2/etcd/2.log"
        );
    }
}
