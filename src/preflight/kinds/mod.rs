//! Check kinds: the catalogue names a kind and its parameters; each kind is implemented once here.

mod cgroups;
mod disk;
mod executables;
mod files;
mod kernel;
mod kubelet;
mod leftovers;
mod network;
mod ports;
mod proxy;
mod runtime;
mod sysctl;
mod system;

use serde::Deserialize;

use super::Outcome;
use super::catalogue::render;
use super::context::Probe;
use super::settings::PreflightInput;
use crate::host::paths::NodePath;

pub use kernel::{KernelConfig, has_ipip, read_kernel_config};
pub use leftovers::ClusterRange;
pub use ports::port_holder;
pub use sysctl::sysctl_path;

/// A kind of check and its parameters, as the catalogue writes it (`check: {port: {port: "2379"}}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    deny_unknown_fields
)]
pub enum Kind {
    /// The effective user is root.
    Privileged,
    /// At least `min` CPUs are online.
    Cpus { min: u32 },
    /// At least `min-mb` MB of RAM.
    Memory { min_mb: u64 },
    /// A TCP port is free (names the process that holds it).
    Port { port: String },
    /// A file does not exist.
    FileAbsent { path: String },
    /// A directory is absent or empty.
    DirEmpty { path: String },
    /// An executable is in PATH.
    Executable { name: String },
    /// A sysctl has a value (fixable with `--fix`).
    Sysctl { key: String, value: String },
    /// Swap is off, or the kubelet is configured to tolerate it.
    Swap,
    /// The kernel configuration can be read (/proc/config.gz or /boot/config-<release>).
    KernelConfigReadable,
    /// Kernel options are built in or modules (`A|B`: either will do).
    KernelConfig { options: Vec<String> },
    /// The kernel release is recent enough.
    KernelVersion {
        min: String,
        cgroup_v2_recommended: String,
    },
    /// cgroup v2 rather than v1.
    CgroupVersion,
    /// The cgroup controllers the kubelet needs are enabled.
    CgroupControllers { v1: Vec<String>, v2: Vec<String> },
    /// The node name is valid and resolves.
    Hostname,
    /// The kubelet's resolv.conf has no loopback nameserver.
    ResolvConf,
    /// The kubelet's cgroup driver fits the init system and the runtime.
    KubeletCgroupDriver,
    /// The kubelet's port is free, or held by the package's standalone kubelet (a warning).
    KubeletPort,
    /// /var/lib/kubelet is empty, or holds only a standalone kubelet's own files (a warning).
    KubeletDir,
    /// The kernel clock is synchronised (NTP).
    ClockSync,
    /// /etc/machine-id is present and valid.
    MachineId,
    /// The advertise address is on a local interface.
    AdvertiseAddress,
    /// Which of several candidate addresses is advertised, and why.
    AdvertiseAddressChoice,
    /// The node interface's MTU leaves room for the pod network's encapsulation.
    /// The overhead is the chosen addon's (`encapsulation.overhead` in `addons/<name>/addon.yaml`).
    InterfaceMtu { min_pod_mtu: u32 },
    /// Free space on the file system holding a directory.
    FreeDisk {
        path: String,
        min_free_percent: u8,
        min_free_mb: u64,
    },
    /// HTTPS to the API server does not go through a proxy.
    HttpProxy,
    /// Connections into the pod and service ranges do not go through a proxy.
    HttpProxyCidr,
    /// The kubelet binary's version is within the supported skew.
    KubeletVersion,
    /// The kubelet systemd service exists and is enabled.
    KubeletService,
    /// firewalld is not running.
    Firewalld,
    /// The external etcd client certificate files exist.
    ExternalEtcdFiles,
    /// The container runtime answers on the CRI socket.
    Cri,
    /// The control-plane images are in the runtime, or are pulled (`imagePullPolicy`).
    Images { pull_timeout_secs: u64 },
    /// The Docker engine's cgroup driver is the kubelet's.
    DockerCgroupDriver,
    /// The Docker engine's json-file log driver rotates (`max-size`).
    DockerLogRotation,
    /// containerd's cgroup driver (`SystemdCgroup`) is the kubelet's.
    ContainerdCgroupDriver,
    /// No host route overlaps the pod or service range.
    RouteOverlap { range: ClusterRange },
    /// No network device of a pod network or an earlier cluster exists.
    CniLinks,
    /// No ipset of kube-proxy or a pod network exists.
    CniIpsets,
    /// /etc/cni/net.d holds no pod network's configuration.
    CniConfig,
    /// /var/lib/cni holds no pod network's IPAM state.
    CniState,
    /// iptables rules live in one backend (legacy or nf_tables), not both.
    IptablesBackends,
}

impl Kind {
    /// The kind's name as the catalogue writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Privileged => "privileged",
            Kind::Cpus { .. } => "cpus",
            Kind::Memory { .. } => "memory",
            Kind::Port { .. } => "port",
            Kind::FileAbsent { .. } => "file-absent",
            Kind::DirEmpty { .. } => "dir-empty",
            Kind::Executable { .. } => "executable",
            Kind::Sysctl { .. } => "sysctl",
            Kind::Swap => "swap",
            Kind::KernelConfigReadable => "kernel-config-readable",
            Kind::KernelConfig { .. } => "kernel-config",
            Kind::KernelVersion { .. } => "kernel-version",
            Kind::CgroupVersion => "cgroup-version",
            Kind::CgroupControllers { .. } => "cgroup-controllers",
            Kind::Hostname => "hostname",
            Kind::ResolvConf => "resolv-conf",
            Kind::KubeletCgroupDriver => "kubelet-cgroup-driver",
            Kind::KubeletPort => "kubelet-port",
            Kind::KubeletDir => "kubelet-dir",
            Kind::ClockSync => "clock-sync",
            Kind::MachineId => "machine-id",
            Kind::AdvertiseAddress => "advertise-address",
            Kind::AdvertiseAddressChoice => "advertise-address-choice",
            Kind::InterfaceMtu { .. } => "interface-mtu",
            Kind::FreeDisk { .. } => "free-disk",
            Kind::HttpProxy => "http-proxy",
            Kind::HttpProxyCidr => "http-proxy-cidr",
            Kind::KubeletVersion => "kubelet-version",
            Kind::KubeletService => "kubelet-service",
            Kind::Firewalld => "firewalld",
            Kind::ExternalEtcdFiles => "external-etcd-files",
            Kind::Cri => "cri",
            Kind::Images { .. } => "images",
            Kind::DockerCgroupDriver => "docker-cgroup-driver",
            Kind::DockerLogRotation => "docker-log-rotation",
            Kind::ContainerdCgroupDriver => "containerd-cgroup-driver",
            Kind::RouteOverlap { .. } => "route-overlap",
            Kind::CniLinks => "cni-links",
            Kind::CniIpsets => "cni-ipsets",
            Kind::CniConfig => "cni-config",
            Kind::CniState => "cni-state",
            Kind::IptablesBackends => "iptables-backends",
        }
    }

    /// Runs the check. An `Err` means the check itself could not run; the runner reports it as a failure.
    pub fn run(&self, probe: &Probe) -> anyhow::Result<Outcome> {
        let node = probe.node;
        match self {
            Kind::Privileged => system::privileged(probe),
            Kind::Cpus { min } => system::cpus(probe, *min),
            Kind::Memory { min_mb } => system::memory(probe, *min_mb),
            Kind::Port { port } => ports::port_free(probe, render_port(port, node)?),
            Kind::FileAbsent { path } => files::file_absent(probe, &render_path(path, node)),
            Kind::DirEmpty { path } => files::dir_empty(probe, &render_path(path, node)),
            Kind::Executable { name } => executables::in_path(probe, name),
            Kind::Sysctl { key, value } => sysctl::has_value(probe, key, value),
            Kind::Swap => system::swap(probe),
            Kind::KernelConfigReadable => kernel::config_readable(probe),
            Kind::KernelConfig { options } => kernel::config_options(probe, options),
            Kind::KernelVersion {
                min,
                cgroup_v2_recommended,
            } => kernel::version(probe, min, cgroup_v2_recommended),
            Kind::CgroupVersion => cgroups::version(probe),
            Kind::CgroupControllers { v1, v2 } => cgroups::controllers(probe, v1, v2),
            Kind::Hostname => network::hostname(probe),
            Kind::ResolvConf => network::resolv_conf(probe),
            Kind::KubeletCgroupDriver => kubelet::cgroup_driver(probe),
            Kind::KubeletPort => kubelet::port(probe),
            Kind::KubeletDir => kubelet::dir(probe),
            Kind::ClockSync => system::clock_sync(probe),
            Kind::MachineId => files::machine_id(probe),
            Kind::AdvertiseAddress => network::advertise_address(probe),
            Kind::AdvertiseAddressChoice => network::advertise_address_choice(probe),
            Kind::InterfaceMtu { min_pod_mtu } => network::interface_mtu(probe, *min_pod_mtu),
            Kind::FreeDisk {
                path,
                min_free_percent,
                min_free_mb,
            } => disk::free_space(
                probe,
                &render_path(path, node),
                *min_free_percent,
                *min_free_mb,
            ),
            Kind::HttpProxy => proxy::api_server(probe),
            Kind::HttpProxyCidr => proxy::cluster_ranges(probe),
            Kind::KubeletVersion => kubelet::version(probe),
            Kind::KubeletService => kubelet::service(probe),
            Kind::Firewalld => system::firewalld(probe),
            Kind::ExternalEtcdFiles => files::external_etcd_files(probe),
            Kind::Cri => runtime::cri_answers(probe),
            Kind::Images { pull_timeout_secs } => runtime::images(probe, *pull_timeout_secs),
            Kind::DockerCgroupDriver => runtime::docker_cgroup_driver(probe),
            Kind::DockerLogRotation => runtime::docker_log_rotation(probe),
            Kind::ContainerdCgroupDriver => runtime::containerd_cgroup_driver(probe),
            Kind::RouteOverlap { range } => leftovers::route_overlap(probe, *range),
            Kind::CniLinks => leftovers::cni_links(probe),
            Kind::CniIpsets => leftovers::cni_ipsets(probe),
            Kind::CniConfig => leftovers::cni_config(probe),
            Kind::CniState => leftovers::cni_state(probe),
            Kind::IptablesBackends => leftovers::iptables_backends(probe),
        }
    }

    /// The sysctl `--fix` may set for this check.
    pub fn sysctl_fix(&self) -> Option<(&str, &str)> {
        match self {
            Kind::Sysctl { key, value } => Some((key, value)),
            _ => None,
        }
    }

    /// Parameter checks done when the catalogue is parsed (rendered with kubeadm's defaults).
    pub fn validate(&self) -> Result<(), String> {
        let node = PreflightInput::defaults(super::Role::Init, "node");
        match self {
            Kind::Port { port } => render_port(port, &node)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Kind::FileAbsent { path } | Kind::DirEmpty { path } | Kind::FreeDisk { path, .. } => {
                if render(path, &node, false).starts_with('/') {
                    Ok(())
                } else {
                    Err(format!("{path:?} is not an absolute path"))
                }
            }
            Kind::KernelConfig { options } if options.is_empty() => {
                Err("kernel-config needs at least one option".to_string())
            }
            Kind::KernelVersion {
                min,
                cgroup_v2_recommended,
            } => {
                for v in [min, cgroup_v2_recommended] {
                    kernel::parse_release(v).ok_or(format!("{v:?} is not a kernel version"))?;
                }
                Ok(())
            }
            Kind::Sysctl { key, .. } if key.contains('/') => {
                Err(format!("{key:?}: write sysctl keys with dots"))
            }
            _ => Ok(()),
        }
    }
}

fn render_port(template: &str, node: &PreflightInput) -> anyhow::Result<u16> {
    let text = render(template, node, false);
    text.parse::<u16>()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a port number"))
}

fn render_path(template: &str, node: &PreflightInput) -> NodePath {
    NodePath::new(render(template, node, false))
}

/// The first few names in a directory listing, for messages.
fn summarize(names: &[String], limit: usize) -> String {
    let mut shown: Vec<&str> = names.iter().take(limit).map(String::as_str).collect();
    if names.len() > limit {
        shown.push("…");
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{self, Visitor};

    /// A deserializer that only records the variant names serde asks for.
    struct VariantNames(&'static [&'static str]);

    impl<'de> de::Deserializer<'de> for &mut VariantNames {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only enums"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _v: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = variants;
            Err(de::Error::custom("recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }

    /// Every kind the implementation knows, as serde sees the enum.
    pub fn implemented_kinds() -> Vec<&'static str> {
        let mut recorder = VariantNames(&[]);
        let _ = Kind::deserialize(&mut recorder);
        recorder.0.to_vec()
    }

    #[test]
    fn catalogue_and_implementation_agree() {
        let implemented = implemented_kinds();
        assert!(implemented.len() > 20, "{implemented:?}");
        let used: std::collections::BTreeSet<&str> = super::super::catalogue::catalogue()
            .unwrap()
            .iter()
            .map(|e| e.check.name())
            .collect();
        for kind in &implemented {
            assert!(
                used.contains(kind),
                "kind {kind} is implemented but no catalogue entry uses it"
            );
        }
        for kind in &used {
            assert!(
                implemented.contains(kind),
                "the catalogue uses {kind}, which has no implementation"
            );
        }
    }
}
