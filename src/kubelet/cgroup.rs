//! The kubelet's cgroup driver: the user's explicit `cgroupDriver` wins; otherwise the runtime's, from
//! the CRI `RuntimeConfig` call (containerd 2.0+, CRI-O), else containerd's config.toml, else the
//! Docker engine (cri-dockerd), else `systemd` when PID 1 is systemd and `cgroupfs` otherwise.

use std::path::Path;

use crate::host::Facts;
use crate::host::runtime::{cri, docker, socket_path};
use crate::host::services::{self, InitSystem};
use crate::model::KubeletSpec;

pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";

/// Where a cgroup driver came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `cgroupDriver` in the KubeletConfiguration document.
    Configuration,
    /// The runtime's answer to `RuntimeConfig`.
    RuntimeConfig,
    /// `SystemdCgroup` in containerd's config.toml (or containerd's default without it).
    ContainerdConfig(String),
    /// `docker info` (the runtime is cri-dockerd).
    Docker,
    /// No runtime said: the init system decided.
    InitSystem(String),
}

impl Source {
    /// Whether the runtime itself (not a fallback) told the driver.
    pub fn is_runtime(&self) -> bool {
        !matches!(self, Source::Configuration | Source::InitSystem(_))
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Configuration => "cgroupDriver in the KubeletConfiguration".to_string(),
            Source::RuntimeConfig => "the container runtime's CRI RuntimeConfig".to_string(),
            Source::ContainerdConfig(how) => how.clone(),
            Source::Docker => "the Docker engine (docker info)".to_string(),
            Source::InitSystem(pid1) => format!("PID 1 is {pid1}: no runtime reported a driver"),
        }
    }
}

/// A driver and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Driver {
    pub name: String,
    pub source: Source,
}

/// The kubelet's driver with what the runtime uses (when the user's choice differs, `runtime`
/// holds the runtime's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub kubelet: Driver,
    pub runtime: Driver,
}

impl Choice {
    /// The user chose a driver the runtime does not use.
    pub fn disagreement(&self) -> Option<String> {
        (self.kubelet.source == Source::Configuration
            && self.runtime.source.is_runtime()
            && self.kubelet.name != self.runtime.name)
            .then(|| {
                format!(
                    "the KubeletConfiguration sets cgroupDriver: {}, but the container runtime uses {} ({}): \
                     the kubelet would create pod cgroups the runtime cannot use",
                    self.kubelet.name,
                    self.runtime.name,
                    self.runtime.source.describe()
                )
            })
    }
}

/// The value of the last `SystemdCgroup = …` setting in a containerd configuration.
pub fn systemd_cgroup_setting(config: &str) -> Option<bool> {
    config
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("SystemdCgroup"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .find_map(|value| value.trim().parse::<bool>().ok())
}

/// containerd's driver from its config.toml: the last `SystemdCgroup`, else containerd's default
/// (cgroupfs).
pub fn containerd_driver(facts: &Facts) -> anyhow::Result<Driver> {
    let (systemd, how) = match facts.read_host_file(CONTAINERD_CONFIG)? {
        None => (
            false,
            format!("containerd's default: there is no {CONTAINERD_CONFIG}"),
        ),
        Some(bytes) => match systemd_cgroup_setting(&String::from_utf8_lossy(&bytes)) {
            Some(value) => (
                value,
                format!("SystemdCgroup = {value} in {CONTAINERD_CONFIG}"),
            ),
            None => (
                false,
                format!("containerd's default: {CONTAINERD_CONFIG} sets no SystemdCgroup"),
            ),
        },
    };
    Ok(Driver {
        name: if systemd { "systemd" } else { "cgroupfs" }.to_string(),
        source: Source::ContainerdConfig(how),
    })
}

/// What the runtime at `cri_socket` uses, by the chain in the module doc.
pub fn runtime_driver(facts: &Facts, cri_socket: &str) -> Driver {
    if Path::new(socket_path(cri_socket)).exists()
        && let Ok(Some(name)) = cri::cgroup_driver(cri_socket)
    {
        return Driver {
            name: name.to_string(),
            source: Source::RuntimeConfig,
        };
    }
    if cri_socket.contains("containerd")
        && let Ok(driver) = containerd_driver(facts)
    {
        return driver;
    }
    if cri_socket.contains("cri-dockerd")
        && let Ok(info) = docker::info()
        && !info.cgroup_driver.is_empty()
    {
        return Driver {
            name: info.cgroup_driver,
            source: Source::Docker,
        };
    }
    match services::init_system(facts) {
        InitSystem::Systemd => Driver {
            name: "systemd".to_string(),
            source: Source::InitSystem("systemd".to_string()),
        },
        InitSystem::Other(pid1) => Driver {
            name: "cgroupfs".to_string(),
            source: Source::InitSystem(pid1),
        },
    }
}

/// The kubelet's driver: the configuration's `cgroupDriver` when given, else the runtime's.
pub fn choose(kubelet: &KubeletSpec, facts: &Facts, cri_socket: &str) -> Choice {
    let runtime = runtime_driver(facts, cri_socket);
    let given = kubelet
        .configuration
        .as_ref()
        .and_then(|doc| doc.get("cgroupDriver"))
        .and_then(|v| v.as_str());
    let kubelet = match given {
        Some(name) => Driver {
            name: name.to_string(),
            source: Source::Configuration,
        },
        None => runtime.clone(),
    };
    Choice { kubelet, runtime }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_systemd_cgroup_setting_wins_and_comments_do_not_count() {
        assert_eq!(
            systemd_cgroup_setting("[plugins]\n  SystemdCgroup = true\n"),
            Some(true)
        );
        assert_eq!(
            systemd_cgroup_setting(
                "SystemdCgroup = true\n# SystemdCgroup = true\n  SystemdCgroup = false\n"
            ),
            Some(false)
        );
        assert_eq!(systemd_cgroup_setting("version = 2\n"), None);
    }

    fn host_files(pid1: &str, containerd_toml: Option<&str>) -> (tempfile::TempDir, Facts) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/1")).unwrap();
        std::fs::write(dir.path().join("proc/1/comm"), format!("{pid1}\n")).unwrap();
        if let Some(text) = containerd_toml {
            std::fs::create_dir_all(dir.path().join("files/etc/containerd")).unwrap();
            std::fs::write(dir.path().join("files/etc/containerd/config.toml"), text).unwrap();
        }
        let facts = Facts::with_roots(dir.path().join("proc"), "/sys")
            .with_host_files_root(dir.path().join("files"));
        (dir, facts)
    }

    const NO_SOCKET: &str = "unix:///nonexistent/kubestrap-test/containerd.sock";

    #[test]
    fn without_an_answer_from_the_runtime_containerds_config_then_the_init_system_decide() {
        let (_d, facts) = host_files("systemd", Some("SystemdCgroup = true\n"));
        let driver = runtime_driver(&facts, NO_SOCKET);
        assert_eq!(driver.name, "systemd");
        assert!(
            matches!(driver.source, Source::ContainerdConfig(ref how) if how.contains("SystemdCgroup = true"))
        );
        let (_d, facts) = host_files("systemd", None);
        assert_eq!(runtime_driver(&facts, NO_SOCKET).name, "cgroupfs");
        let (_d, facts) = host_files("tini", None);
        let crio = "unix:///nonexistent/kubestrap-test/crio.sock";
        let driver = runtime_driver(&facts, crio);
        assert_eq!(
            (driver.name.as_str(), driver.source),
            ("cgroupfs", Source::InitSystem("tini".into()))
        );
        let (_d, facts) = host_files("systemd", None);
        assert_eq!(runtime_driver(&facts, crio).name, "systemd");
    }

    #[test]
    fn the_users_choice_wins_and_a_disagreement_with_the_runtime_is_named() {
        let (_d, facts) = host_files("systemd", Some("SystemdCgroup = true\n"));
        let detected = choose(&KubeletSpec::default(), &facts, NO_SOCKET);
        assert_eq!(detected.kubelet, detected.runtime);
        assert_eq!(detected.disagreement(), None);
        let explicit =
            KubeletSpec::from_document(Some(serde_json::json!({"cgroupDriver": "cgroupfs"})));
        let chosen = choose(&explicit, &facts, NO_SOCKET);
        assert_eq!(chosen.kubelet.name, "cgroupfs");
        assert_eq!(chosen.kubelet.source, Source::Configuration);
        let message = chosen.disagreement().unwrap();
        assert!(
            message.contains("cgroupDriver: cgroupfs") && message.contains("uses systemd"),
            "{message}"
        );
        let agreeing =
            KubeletSpec::from_document(Some(serde_json::json!({"cgroupDriver": "systemd"})));
        assert_eq!(choose(&agreeing, &facts, NO_SOCKET).disagreement(), None);
    }
}
