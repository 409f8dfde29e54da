//! Every preflight check, by id: one scenario that makes it pass and one that makes it fail.
//!
//! Host facts come from a fixture tree (/proc, /sys, /boot, the host's own files, the `--root` tree, PATH): the machine
//! cannot be made to show little memory, swap, cgroup v2 or a missing kernel option. What a check
//! reads live from the kernel (ports, interface addresses, free space) is set up for real, in the
//! scenario thread's own network and mount namespaces, so the machine's own state is never touched.
//! The match over check kinds is exhaustive: a new kind does not compile without its scenarios.

mod preflight_support;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kubestrap::config::flags::PodNetwork;
use kubestrap::config::versions::KubeVersion;
use kubestrap::host::{Facts, Host, Root};
use kubestrap::model::resolve::{ClusterChoices, ClusterDocuments, cluster_from_documents};
use kubestrap::model::{ClusterSpec, EtcdSpec, ExternalEtcdSpec, LocalApiEndpoint};
use kubestrap::net::cidr::CidrList;
use kubestrap::output::Ui;
use kubestrap::preflight::catalogue::{self, Condition, Entry};
use kubestrap::preflight::kinds::Kind;
use kubestrap::preflight::{
    CheckResult, ClockSource, Environment, PreflightInput, Role, Severity, Status, evaluate_one,
};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use preflight_support::{PrivateContainerd, require, require_docker_engine, write_file};

/// kubeadm's default cluster with kubestrap's default pod network.
fn default_cluster() -> ClusterSpec {
    cluster_from_documents(ClusterDocuments::default(), ClusterChoices::default())
        .unwrap()
        .0
}

/// A node described by files, plus what a scenario keeps alive (listeners) and mounts.
struct Fixture {
    dir: tempfile::TempDir,
    node: PreflightInput,
    env: Environment,
    kernel_options: BTreeMap<String, String>,
    keep: Vec<Box<dyn Any>>,
    mounts: Vec<PathBuf>,
}

const EXECUTABLES: [&str; 10] = [
    "ip", "iptables", "mount", "nsenter", "ebtables", "ethtool", "socat", "tc", "touch", "ipset",
];

impl Fixture {
    /// A healthy node: every check passes unless a scenario changes something.
    fn new(role: Role) -> Fixture {
        // A fixture is some forty small files: on tmpfs that takes a millisecond, on ext4 fifty.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("preflight-")
                .tempdir_in(shm)
                .unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let f = |rel: &str, text: &str| write_file(&dir.path().join(rel), text);
        f("proc/self/status", "Name:\tkubestrap\nUid:\t0\t0\t0\t0\n");
        f(
            "proc/meminfo",
            "MemTotal:        4046000 kB\nMemFree: 1 kB\n",
        );
        f("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
        f(
            "proc/cgroups",
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t3\t1\ncpu\t1\t3\t1\ncpuacct\t2\t3\t1\n\
             memory\t4\t30\t1\ndevices\t5\t3\t1\nfreezer\t6\t3\t1\npids\t8\t3\t1\n",
        );
        f("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
        f("proc/sys/kernel/hostname", "node-1\n");
        f("proc/1/comm", "systemd\n");
        for key in [
            "net/ipv4/ip_forward",
            "net/ipv6/conf/default/forwarding",
            "net/bridge/bridge-nf-call-iptables",
            "net/bridge/bridge-nf-call-ip6tables",
        ] {
            f(&format!("proc/sys/{key}"), "1\n");
        }
        f("sys/devices/system/cpu/online", "0-3\n");
        f(
            "sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory hugetlb pids rdma\n",
        );
        f("sys/class/net/lo/mtu", "1500\n");
        std::fs::create_dir_all(dir.path().join("boot")).unwrap();
        f("host/etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        f("host/etc/resolv.conf", "nameserver 192.0.2.53\n");
        f(
            "host/lib/systemd/system/kubelet.service",
            "[Service]\nExecStart=/usr/bin/kubelet\n",
        );
        std::fs::create_dir_all(
            dir.path()
                .join("root/etc/systemd/system/multi-user.target.wants"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "/lib/systemd/system/kubelet.service",
            dir.path()
                .join("root/etc/systemd/system/multi-user.target.wants/kubelet.service"),
        )
        .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for name in EXECUTABLES {
            write_script(&bin.join(name), "exit 0");
        }
        write_script(&bin.join("kubelet"), "echo 'Kubernetes v1.34.3'");

        // v1.34.3, flannel, pods 10.244.0.0/16, services 10.96.0.0/12, stacked etcd.
        let mut node = PreflightInput::defaults(role, "localhost");
        node.cluster = Some(default_cluster());
        let mut env = Environment::with(vec![bin], &[]);
        env.clock = ClockSource::Assume { synchronized: true };
        let kernel_options = all_kernel_options();
        Fixture {
            dir,
            node,
            env,
            kernel_options,
            keep: Vec::new(),
            mounts: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The node's cluster (kubeadm's defaults unless a scenario changed them).
    fn cluster(&mut self) -> &mut ClusterSpec {
        self.node.cluster.get_or_insert_with(default_cluster)
    }

    /// Makes the node advertise `ip` on kubeadm's port.
    fn advertise(&mut self, ip: &str) {
        self.node.node.local_api_endpoint = Some(LocalApiEndpoint {
            advertise_address: ip.parse().unwrap(),
            bind_port: 6443,
        });
    }

    fn write(&self, rel: &str, text: &str) {
        write_file(&self.path(rel), text);
    }

    fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).unwrap();
    }

    /// The on-disk place of a node path under the fixture's --root.
    fn root_path(&self, node_path: &str) -> PathBuf {
        self.path("root").join(node_path.trim_start_matches('/'))
    }

    /// Runs a command in the scenario's namespaces (e.g. `ip addr add …`).
    fn sh(&self, script: &str) {
        let status = Command::new("sh").arg("-c").arg(script).status().unwrap();
        assert!(status.success(), "{script} failed");
    }

    /// Makes the entry's conditions true, so the check runs rather than being skipped.
    fn satisfy(&mut self, conditions: &[Condition]) {
        for condition in conditions {
            match condition {
                Condition::LocalEtcd => self.cluster().etcd = default_cluster().etcd,
                Condition::ExternalEtcd => self.external_etcd(&[]),
                Condition::Ipv4 => {}
                Condition::Ipv6 => {
                    self.cluster().networking.service_subnets =
                        CidrList::parse("10.96.0.0/12,fd00:10:96::/112").unwrap()
                }
                Condition::PodNetworkNeeds(option) => {
                    let addon = kubestrap::podnet::all()
                        .iter()
                        .find(|a| a.data.kernel_config.contains(option))
                        .unwrap();
                    self.cluster().pod_network.addon = PodNetwork::named(addon.name).unwrap()
                }
                Condition::DockerEngine => {
                    let socket = self.path("docker.sock");
                    std::fs::write(&socket, "").unwrap();
                    self.env
                        .vars
                        .insert("DOCKER_HOST".into(), format!("unix://{}", socket.display()));
                }
                // The default discovery port (9898) is not 0.
                Condition::DiscoveryEndpoint => {}
            }
        }
    }

    /// An external etcd with these client files.
    fn external_etcd(&mut self, files: &[&str]) {
        let file = |i: usize| files.get(i).map(kubestrap::host::NodePath::new);
        self.cluster().etcd = EtcdSpec::External(ExternalEtcdSpec {
            endpoints: vec!["https://10.0.0.9:2379".into()],
            ca_file: file(0),
            cert_file: file(1),
            key_file: file(2),
        });
    }

    /// A tmpfs of the given size at a state directory, in the scenario's own mount namespace.
    fn filesystem(&mut self, node_path: &str, size: &str) {
        let target = self.root_path(node_path);
        std::fs::create_dir_all(&target).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .unwrap();
        self.mounts.push(target);
    }

    fn run(mut self, id: &str) -> (CheckResult, tempfile::TempDir) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for (name, value) in &self.kernel_options {
            writeln!(gz, "CONFIG_{name}={value}").unwrap();
        }
        if !self.kernel_options.is_empty() {
            std::fs::write(self.path("proc/config.gz"), gz.finish().unwrap()).unwrap();
        }
        let facts = Facts::with_roots(self.path("proc"), self.path("sys"))
            .with_boot_root(self.path("boot"))
            .with_host_files_root(self.path("host"));
        let host = Host::new(Root::new(self.path("root")), facts, false, Ui::default());
        host.start_journal("preflight test").unwrap();
        let result = evaluate_one(&host, &self.node, &self.env, id).unwrap();
        for target in self.mounts.drain(..) {
            nix::mount::umount2(&target, MntFlags::MNT_DETACH).unwrap();
        }
        self.keep.clear();
        let result = result.unwrap_or_else(|| panic!("{:?} has no check {id}", self.node.role));
        (result, self.dir)
    }
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every kernel option any catalogue entry asks for (the first of each set of alternatives).
fn all_kernel_options() -> BTreeMap<String, String> {
    catalogue::catalogue()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.check {
            Kind::KernelConfig { options } => Some(options.clone()),
            _ => None,
        })
        .flatten()
        .map(|o| (o.split('|').next().unwrap().to_string(), "y".to_string()))
        .collect()
}

type Setup = Box<dyn FnOnce(&mut Fixture) + Send>;

/// containerd's config.toml selecting the systemd cgroup driver.
const SYSTEMD_CONTAINERD: &str = "version = 2
[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]
  SystemdCgroup = true
";

/// The kubelet settings of a KubeletConfiguration document that sets `cgroupDriver` (the user's
/// explicit choice).
fn kubelet_choosing(driver: &str) -> kubestrap::model::KubeletSpec {
    kubestrap::model::KubeletSpec::from_document(Some(
        serde_json::json!({ "cgroupDriver": driver }),
    ))
}

fn nothing() -> Setup {
    Box::new(|_| {})
}

fn setup(f: impl FnOnce(&mut Fixture) + Send + 'static) -> Setup {
    Box::new(f)
}

/// Addresses on the scenario namespace's loopback interface (up).
fn addresses(f: &Fixture, ips: &[&str]) {
    let mut script = "ip link set lo up".to_string();
    for ip in ips {
        script.push_str(&format!(" && ip addr add {ip} dev lo"));
    }
    f.sh(&script);
}

/// The pass and fail scenarios of a catalogue entry, by its kind.
fn scenarios(entry: &Entry) -> (Setup, Setup) {
    let default_node = PreflightInput::defaults(Role::Init, "node");
    match entry.check.clone() {
        Kind::Privileged => (
            nothing(),
            setup(|f| f.write("proc/self/status", "Uid:\t1000\t1000\t1000\t1000\n")),
        ),
        Kind::Cpus { .. } => (
            nothing(),
            setup(|f| f.write("sys/devices/system/cpu/online", "0\n")),
        ),
        Kind::Memory { .. } => (
            nothing(),
            setup(|f| f.write("proc/meminfo", "MemTotal:        1024000 kB\n")),
        ),
        Kind::Port { port } => {
            let port: u16 = catalogue::render(&port, &default_node, false)
                .parse()
                .unwrap();
            (
                nothing(),
                setup(move |f| {
                    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
                    f.keep.push(Box::new(listener));
                }),
            )
        }
        Kind::FileAbsent { path } => {
            let path = catalogue::render(&path, &default_node, false);
            (
                nothing(),
                setup(move |f| {
                    let disk = f.root_path(&path);
                    std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
                    std::fs::write(disk, "left over").unwrap();
                }),
            )
        }
        Kind::DirEmpty { path } => {
            let path = catalogue::render(&path, &default_node, false);
            let empty = path.clone();
            (
                setup(move |f| std::fs::create_dir_all(f.root_path(&empty)).unwrap()),
                setup(move |f| {
                    let disk = f.root_path(&path);
                    std::fs::create_dir_all(&disk).unwrap();
                    std::fs::write(disk.join("leftover"), "x").unwrap();
                }),
            )
        }
        Kind::Executable { name } => (nothing(), setup(move |f| f.remove(&format!("bin/{name}")))),
        Kind::Sysctl { key, .. } => (
            nothing(),
            setup(move |f| f.write(&format!("proc/sys/{}", key.replace('.', "/")), "0\n")),
        ),
        Kind::Swap => (
            nothing(),
            setup(|f| {
                f.write(
                    "proc/swaps",
                    "Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1048572\t0\t-2\n",
                )
            }),
        ),
        Kind::KernelConfigReadable => (nothing(), setup(|f| f.kernel_options.clear())),
        Kind::KernelConfig { options } => (
            nothing(),
            setup(move |f| {
                for alternative in options[0].split('|') {
                    f.kernel_options.remove(alternative);
                }
            }),
        ),
        Kind::KernelVersion { .. } => (
            nothing(),
            setup(|f| f.write("proc/sys/kernel/osrelease", "4.18.0-553.el8_10.x86_64\n")),
        ),
        Kind::CgroupVersion => (
            nothing(),
            setup(|f| f.remove("sys/fs/cgroup/cgroup.controllers")),
        ),
        Kind::CgroupControllers { .. } => (
            nothing(),
            setup(|f| f.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io pids\n")),
        ),
        Kind::Hostname => (nothing(), setup(|f| f.node.node.name = "Bad_Name".into())),
        Kind::ResolvConf => (
            nothing(),
            setup(|f| f.write("host/etc/resolv.conf", "nameserver 127.0.0.53\n")),
        ),
        Kind::KubeletCgroupDriver => (
            // The runtime (containerd's config.toml) says systemd, and so does PID 1.
            setup(|f| f.write("host/etc/containerd/config.toml", SYSTEMD_CONTAINERD)),
            setup(|f| {
                f.write("proc/1/comm", "process_api\n");
                f.cluster().kubelet = kubelet_choosing("systemd");
            }),
        ),
        Kind::KubeletPort => (
            nothing(),
            setup(|f| {
                let listener = TcpListener::bind(("0.0.0.0", 10250)).unwrap();
                f.keep.push(Box::new(listener));
            }),
        ),
        Kind::KubeletDir => (
            setup(|f| std::fs::create_dir_all(f.root_path("/var/lib/kubelet")).unwrap()),
            setup(|f| {
                let disk = f.root_path("/var/lib/kubelet");
                std::fs::create_dir_all(&disk).unwrap();
                std::fs::write(disk.join("config.yaml"), "x").unwrap();
            }),
        ),
        Kind::ClockSync => (
            nothing(),
            setup(|f| {
                f.env.clock = ClockSource::Assume {
                    synchronized: false,
                }
            }),
        ),
        Kind::MachineId => (nothing(), setup(|f| f.remove("host/etc/machine-id"))),
        Kind::AdvertiseAddress => (
            setup(|f| {
                addresses(f, &["198.51.100.7/32"]);
                f.advertise("198.51.100.7");
            }),
            setup(|f| {
                addresses(f, &["198.51.100.7/32"]);
                f.advertise("198.51.100.8");
            }),
        ),
        Kind::AdvertiseAddressChoice => (
            setup(|f| {
                addresses(f, &["198.51.100.7/32", "203.0.113.9/32"]);
                f.advertise("198.51.100.7");
                f.node.advertise_address_detected = false;
            }),
            setup(|f| {
                addresses(f, &["198.51.100.7/32", "203.0.113.9/32"]);
                f.advertise("198.51.100.7");
                f.node.advertise_address_detected = true;
            }),
        ),
        Kind::InterfaceMtu { .. } => (
            setup(|f| {
                addresses(f, &["198.51.100.7/32"]);
                f.advertise("198.51.100.7");
            }),
            setup(|f| {
                addresses(f, &["198.51.100.7/32"]);
                f.advertise("198.51.100.7");
                f.write("sys/class/net/lo/mtu", "1300\n");
            }),
        ),
        Kind::FreeDisk { path, .. } => {
            let path = catalogue::render(&path, &default_node, false);
            let large = path.clone();
            (
                setup(move |f| f.filesystem(&large, "64g")),
                setup(move |f| f.filesystem(&path, "1m")),
            )
        }
        Kind::HttpProxy => (
            setup(|f| {
                f.advertise("198.51.100.7");
                f.env
                    .vars
                    .insert("https_proxy".into(), "http://proxy:3128".into());
                f.env
                    .vars
                    .insert("no_proxy".into(), "198.51.100.0/24".into());
            }),
            setup(|f| {
                f.advertise("198.51.100.7");
                f.node.api_endpoint = Some(("198.51.100.7".into(), 6443));
                f.env
                    .vars
                    .insert("HTTPS_PROXY".into(), "http://proxy:3128".into());
            }),
        ),
        Kind::HttpProxyCidr => (
            setup(|f| {
                f.env
                    .vars
                    .insert("https_proxy".into(), "http://proxy:3128".into());
                f.env
                    .vars
                    .insert("NO_PROXY".into(), "10.96.0.0/12,10.244.0.0/16".into());
            }),
            setup(|f| {
                f.env
                    .vars
                    .insert("https_proxy".into(), "http://proxy:3128".into());
                f.env.vars.insert("NO_PROXY".into(), "10.96.0.0/12".into());
            }),
        ),
        Kind::KubeletVersion => (
            nothing(),
            setup(|f| write_script(&f.path("bin/kubelet"), "echo 'Kubernetes v1.35.0'")),
        ),
        Kind::KubeletService => (
            nothing(),
            setup(|f| f.remove("root/etc/systemd/system/multi-user.target.wants/kubelet.service")),
        ),
        Kind::Firewalld => (
            nothing(),
            setup(|f| f.write("proc/4242/comm", "firewalld\n")),
        ),
        Kind::ExternalEtcdFiles => {
            const FILES: [&str; 3] = [
                "/etc/etcd/ca.crt",
                "/etc/etcd/client.crt",
                "/etc/etcd/client.key",
            ];
            let files = FILES;
            let with = move |f: &mut Fixture| {
                f.external_etcd(&files);
            };
            (
                setup(move |f| {
                    with(f);
                    for file in files {
                        f.write(&format!("root{file}"), "pem");
                    }
                }),
                setup(move |f| {
                    with(f);
                    f.write("root/etc/etcd/ca.crt", "pem");
                }),
            )
        }
        Kind::Cri => (
            setup(|f| {
                let containerd = PrivateContainerd::start();
                f.node.node.cri_socket = containerd.endpoint();
                f.keep.push(Box::new(containerd));
            }),
            setup(|f| f.node.node.cri_socket = format!("unix://{}", f.path("dead.sock").display())),
        ),
        Kind::Images { .. } => (
            setup(|f| {
                let containerd = PrivateContainerd::start();
                f.node.images = vec![
                    "registry.k8s.io/pause:3.10.1".into(),
                    "registry.k8s.io/kube-apiserver:v1.34.3".into(),
                ];
                containerd.import(&f.node.images);
                f.node.node.cri_socket = containerd.endpoint();
                f.keep.push(Box::new(containerd));
            }),
            setup(|f| {
                let containerd = PrivateContainerd::start();
                f.node.images = vec!["registry.k8s.io/pause:3.10.1".into()];
                f.node.node.image_pull_policy = "Never".into();
                f.node.node.cri_socket = containerd.endpoint();
                f.keep.push(Box::new(containerd));
            }),
        ),
        Kind::DockerCgroupDriver => {
            let engine = |f: &mut Fixture| {
                require_docker_engine();
                f.env.vars.remove("DOCKER_HOST");
                kubestrap::host::runtime::docker::info()
                    .expect("docker info through the Docker API")
                    .cgroup_driver
            };
            (
                setup(move |f| {
                    let driver = engine(f);
                    f.cluster().kubelet = kubelet_choosing(&driver);
                }),
                setup(move |f| {
                    let driver = engine(f);
                    f.cluster().kubelet = kubelet_choosing(if driver == "systemd" {
                        "cgroupfs"
                    } else {
                        "systemd"
                    });
                    f.node.node.cri_socket = "unix:///var/run/cri-dockerd.sock".into();
                }),
            )
        }
        Kind::DockerLogRotation => (
            setup(|f| {
                require_docker_engine();
                f.env.vars.remove("DOCKER_HOST");
                f.write(
                    "host/etc/docker/daemon.json",
                    r#"{"log-driver": "json-file", "log-opts": {"max-size": "100m"}}"#,
                );
            }),
            setup(|f| {
                require_docker_engine();
                f.env.vars.remove("DOCKER_HOST");
            }),
        ),
        Kind::ContainerdCgroupDriver => (
            setup(|f| f.write("host/etc/containerd/config.toml", SYSTEMD_CONTAINERD)),
            // The user chose systemd; containerd runs its default, cgroupfs.
            setup(|f| f.cluster().kubelet = kubelet_choosing("systemd")),
        ),
        Kind::RouteOverlap { .. } => {
            // Both ranges (10.244.0.0/16 and 10.96.0.0/12) lie inside 10.0.0.0/8.
            let user_network = "ip link add pf-user type bridge && ip link set pf-user up && \
                                ip addr add 192.0.2.2/24 dev pf-user && ip route add default via 192.0.2.1";
            (
                setup(move |f| {
                    f.sh(&format!(
                        "{user_network} && ip route add 198.51.100.0/24 via 192.0.2.1"
                    ))
                }),
                setup(move |f| {
                    f.sh(&format!(
                        "{user_network} && ip route add 10.0.0.0/8 via 192.0.2.1"
                    ))
                }),
            )
        }
        Kind::CniLinks => (
            setup(|f| {
                f.sh("ip link add docker0 type bridge && ip addr add 172.17.0.1/16 dev docker0")
            }),
            setup(|f| f.sh("ip link add cni0 type bridge && ip addr add 10.88.0.1/16 dev cni0")),
        ),
        Kind::CniIpsets => (
            setup(|f| {
                require(&["ipset"]);
                f.sh("ipset create user-blocklist hash:ip");
            }),
            setup(|f| {
                require(&["ipset"]);
                f.sh("ipset create KUBE-PREFLIGHT-TEST hash:ip && ipset create felix-calico-hosts-4 hash:ip");
            }),
        ),
        Kind::CniConfig => (
            nothing(),
            setup(|f| {
                f.write(
                    "root/etc/cni/net.d/10-flannel.conflist",
                    r#"{"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel"}]}"#,
                )
            }),
        ),
        Kind::IptablesBackends => {
            // Legacy tables exist only when the kernel lists them; the fixture's /proc says so.
            let rules = |f: &mut Fixture, legacy: bool| {
                require(&["iptables-nft", "iptables-legacy"]);
                f.sh("iptables-nft -A INPUT -p tcp --dport 22 -j ACCEPT");
                if legacy {
                    f.sh("iptables-legacy -A INPUT -p tcp --dport 22 -j ACCEPT");
                    f.write("proc/net/ip_tables_names", "filter\n");
                }
            };
            (
                setup(move |f| rules(f, false)),
                setup(move |f| rules(f, true)),
            )
        }
        Kind::CniState => (
            setup(|f| {
                f.write(
                    "root/var/lib/cni/networks/podman/10.88.0.5",
                    "ctr-1\r\neth0",
                )
            }),
            setup(|f| f.write("root/var/lib/cni/networks/cbr0/10.244.0.5", "ctr-1\r\neth0")),
        ),
    }
}

/// Runs one scenario in a thread with its own network and mount namespaces; returns the result
/// and the fixture directory (for a look at what the check wrote).
fn run_scenario_keeping(
    role: Role,
    entry: &'static Entry,
    prepare: Setup,
) -> (CheckResult, tempfile::TempDir) {
    start_scenario(role, entry, prepare).join().unwrap()
}

fn start_scenario(
    role: Role,
    entry: &'static Entry,
    prepare: Setup,
) -> std::thread::JoinHandle<(CheckResult, tempfile::TempDir)> {
    std::thread::spawn(move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
            .expect("a private network and mount namespace (the tests run as root)");
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        let mut fixture = Fixture::new(role);
        fixture.satisfy(&entry.when);
        prepare(&mut fixture);
        let id = entry.id_for(&fixture.node);
        fixture.run(&id)
    })
}

fn run_scenario(role: Role, entry: &'static Entry, prepare: Setup) -> CheckResult {
    run_scenario_keeping(role, entry, prepare).0
}

fn first_role(entry: &Entry) -> Role {
    *entry.roles.keys().next().unwrap()
}

#[test]
fn every_check_passes_and_fails_as_its_scenarios_say() {
    let entries = catalogue::catalogue().unwrap();
    // Every scenario has its own namespaces and fixture, so they all run at once.
    let running: Vec<_> = entries
        .iter()
        .map(|entry| {
            let role = first_role(entry);
            let (pass, fail) = scenarios(entry);
            (
                entry,
                start_scenario(role, entry, pass),
                start_scenario(role, entry, fail),
            )
        })
        .collect();
    let mut problems = Vec::new();
    for (entry, pass, fail) in running {
        let (passed, _) = pass.join().unwrap();
        let (failed, _) = fail.join().unwrap();
        if passed.status != Status::Pass {
            problems.push(format!("{} should pass: {passed:?}", entry.id));
        }
        if failed.status != Status::Fail {
            problems.push(format!("{} should fail: {failed:?}", entry.id));
        }
        if failed.message.is_empty() || failed.remediation.is_empty() {
            problems.push(format!("{} fails without a message or remedy", entry.id));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_role_has_its_own_set_and_init_has_at_least_forty() {
    let entries = catalogue::catalogue().unwrap();
    let node = PreflightInput::defaults(Role::Init, "node");
    let ids_for = |role: Role| -> BTreeSet<String> {
        entries
            .iter()
            .filter(|e| e.roles.contains_key(&role))
            .map(|e| e.id_for(&node))
            .collect()
    };
    let init = ids_for(Role::Init);
    assert!(init.len() >= 40, "init runs {} checks", init.len());
    for id in [
        "NumCPU",
        "Mem",
        "Swap",
        "Port-6443",
        "Port-2379",
        "Port-2380",
        "Port-2381",
        "Port-10250",
        "Port-10257",
        "Port-10259",
        "Port-9898",
        "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
        "DirAvailable--var-lib-etcd",
        "FileContent--proc-sys-net-ipv4-ip_forward",
        "FileExisting-ip",
        "Hostname",
        "KubeletVersion",
        "Service-Kubelet",
        "IsPrivilegedUser",
    ] {
        assert!(init.contains(id), "init lacks {id}");
    }
    let worker = ids_for(Role::JoinWorker);
    let control_plane = ids_for(Role::JoinControlPlane);
    assert!(worker.contains("DirAvailable--etc-kubernetes-manifests"));
    assert!(worker.contains("FileAvailable--etc-kubernetes-pki-ca.crt"));
    assert!(!worker.contains("Port-6443") && !worker.contains("NumCPU"));
    assert!(
        control_plane.contains("Port-6443")
            && !control_plane.contains("FileAvailable--etc-kubernetes-pki-ca.crt")
    );
    let reset = ids_for(Role::Reset);
    assert!(reset.contains("IsPrivilegedUser"));
    assert!(reset.len() < worker.len());
}

fn entry(role: Role, id: &str) -> &'static Entry {
    let node = PreflightInput::defaults(role, "node");
    catalogue::catalogue()
        .unwrap()
        .iter()
        .find(|e| e.id_for(&node) == id && e.roles.contains_key(&role))
        .unwrap()
}

fn result_for(role: Role, id: &str, prepare: Setup) -> CheckResult {
    run_scenario(role, entry(role, id), prepare)
}

#[test]
fn unmet_conditions_skip_the_check_and_say_why() {
    let ipv4_only = result_for(
        Role::Init,
        "FileContent--proc-sys-net-ipv6-conf-default-forwarding",
        setup(|f| {
            f.write("proc/sys/net/ipv6/conf/default/forwarding", "0\n");
            f.cluster().networking.service_subnets = CidrList::parse("10.96.0.0/12").unwrap();
        }),
    );
    assert_eq!(ipv4_only.status, Status::Skip);
    assert!(ipv4_only.message.contains("IPv6"), "{}", ipv4_only.message);
    let calico = result_for(
        Role::Init,
        "KernelConfig-VXLAN",
        setup(|f| f.cluster().pod_network.addon = PodNetwork::named("calico").unwrap()),
    );
    assert_eq!(calico.status, Status::Skip);
    assert!(
        calico.message.contains("CONFIG_VXLAN"),
        "{}",
        calico.message
    );
    let joining = result_for(
        Role::Init,
        "KernelConfig-VXLAN",
        setup(|f| f.node.cluster = None),
    );
    assert!(
        joining.message.contains("after discovery"),
        "{}",
        joining.message
    );
}

#[test]
fn ignored_errors_become_warnings_case_insensitively() {
    let ignored = result_for(
        Role::Init,
        "NumCPU",
        setup(|f| {
            f.write("sys/devices/system/cpu/online", "0\n");
            f.node.ignore_errors = vec!["numcpu".into()];
        }),
    );
    assert_eq!(ignored.status, Status::Fail);
    assert_eq!(ignored.severity, Severity::Warning);
    let all = result_for(
        Role::Init,
        "Mem",
        setup(|f| {
            f.write("proc/meminfo", "MemTotal: 1000 kB\n");
            f.node.ignore_errors = vec!["all".into()];
        }),
    );
    assert_eq!(all.severity, Severity::Warning);
    let other = result_for(
        Role::Init,
        "Mem",
        setup(|f| {
            f.write("proc/meminfo", "MemTotal: 1000 kB\n");
            f.node.ignore_errors = vec!["NumCPU".into()];
        }),
    );
    assert_eq!(other.severity, Severity::Error);
}

#[test]
fn messages_name_what_was_found() {
    let swap = result_for(
        Role::Init,
        "Swap",
        setup(|f| {
            f.write(
                "proc/swaps",
                "Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1048572\t0\t-2\n",
            );
            f.cluster().kubelet.fail_swap_on = false;
        }),
    );
    assert_eq!(
        swap.severity,
        Severity::Warning,
        "tolerated swap only warns"
    );
    assert!(swap.message.contains("/swapfile"), "{}", swap.message);

    let mem = result_for(
        Role::Init,
        "Mem",
        setup(|f| f.write("proc/meminfo", "MemTotal:        1024000 kB\n")),
    );
    assert_eq!(
        mem.message,
        "the system RAM (1000 MB) is less than the minimum 1700 MB"
    );

    let kernel = result_for(
        Role::Init,
        "KernelConfig-VXLAN",
        setup(|f| {
            f.kernel_options.remove("VXLAN");
        }),
    );
    assert!(
        kernel.message.contains("CONFIG_VXLAN"),
        "{}",
        kernel.message
    );
    assert!(
        kernel.message.contains("/proc/config.gz"),
        "{}",
        kernel.message
    );

    let dir = result_for(
        Role::Init,
        "DirAvailable--var-lib-kubelet",
        setup(|f| {
            f.write(
                "root/var/lib/kubelet/config.yaml",
                "kind: KubeletConfiguration",
            )
        }),
    );
    assert_eq!(
        dir.message,
        "/var/lib/kubelet is not empty (it holds config.yaml)"
    );

    let resolv = result_for(
        Role::Init,
        "ResolvConf",
        setup(|f| {
            f.write("host/etc/resolv.conf", "nameserver 127.0.0.53\n");
            f.write(
                "host/run/systemd/resolve/resolv.conf",
                "nameserver 192.0.2.53\n",
            );
        }),
    );
    assert!(
        resolv
            .message
            .contains("/run/systemd/resolve/resolv.conf lists the real upstream servers"),
        "{}",
        resolv.message
    );

    let choice = result_for(
        Role::Init,
        "AdvertiseAddressChoice",
        setup(|f| {
            addresses(f, &["198.51.100.7/32", "203.0.113.9/32"]);
            f.advertise("198.51.100.7");
            f.node.advertise_address_detected = true;
        }),
    );
    assert!(
        choice.message.contains("198.51.100.7 on lo is advertised"),
        "{}",
        choice.message
    );
    assert!(
        choice.message.contains("203.0.113.9 on lo"),
        "{}",
        choice.message
    );

    let split = result_for(
        Role::Init,
        "IptablesBackends",
        setup(|f| {
            f.sh("iptables-nft -N KUBE-X && iptables-legacy -A FORWARD -j DROP");
            f.write("proc/net/ip_tables_names", "filter\n");
        }),
    );
    assert_eq!(split.severity, Severity::Warning);
    assert!(
        split
            .message
            .contains("legacy ipv4/legacy/filter (1 rules)")
            && split
                .message
                .contains("nf_tables ipv4/nft/filter (0 rules)"),
        "{}",
        split.message
    );

    let unresolvable = result_for(
        Role::Init,
        "Hostname",
        setup(|f| f.node.node.name = "kubestrap-preflight-no-such-host.invalid".into()),
    );
    assert_eq!(unresolvable.severity, Severity::Warning);
    assert!(unresolvable.message.contains("could not be reached"));
}

#[test]
fn kernel_config_falls_back_to_boot() {
    let from_boot = result_for(
        Role::Init,
        "KernelConfig-Bridge",
        setup(|f| {
            let text: String = f
                .kernel_options
                .keys()
                .map(|k| format!("CONFIG_{k}=m\n"))
                .collect();
            f.kernel_options.clear();
            f.write("boot/config-6.1.0-18-amd64", &text);
        }),
    );
    assert_eq!(from_boot.status, Status::Pass);
    assert!(from_boot.message.contains("/boot/config-6.1.0-18-amd64"));
    let unreadable = result_for(
        Role::Init,
        "KernelConfig-Bridge",
        setup(|f| f.kernel_options.clear()),
    );
    assert_eq!(unreadable.status, Status::Skip);
}

#[test]
fn cgroup_v1_is_an_error_for_kubelets_that_refuse_it() {
    let v1_135 = result_for(
        Role::Init,
        "CgroupsVersion",
        setup(|f| {
            f.remove("sys/fs/cgroup/cgroup.controllers");
            f.cluster().kubernetes_version = KubeVersion::parse("v1.35.0").unwrap();
        }),
    );
    assert_eq!(v1_135.severity, Severity::Error);
    let allowed = result_for(
        Role::Init,
        "CgroupsVersion",
        setup(|f| {
            f.remove("sys/fs/cgroup/cgroup.controllers");
            f.cluster().kubernetes_version = KubeVersion::parse("v1.35.0").unwrap();
            f.cluster().kubelet.fail_cgroup_v1 = Some(false);
        }),
    );
    assert_eq!(allowed.severity, Severity::Warning);
    let v1_controllers = result_for(
        Role::Init,
        "CgroupControllers",
        setup(|f| {
            f.remove("sys/fs/cgroup/cgroup.controllers");
            f.write(
                "proc/cgroups",
                "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t3\t1\nmemory\t4\t30\t0\n",
            );
        }),
    );
    assert_eq!(v1_controllers.status, Status::Fail);
    assert!(
        v1_controllers.message.contains("memory"),
        "{}",
        v1_controllers.message
    );
}

#[test]
fn kubelet_version_skew() {
    let old = result_for(
        Role::Init,
        "KubeletVersion",
        setup(|f| write_script(&f.path("bin/kubelet"), "echo 'Kubernetes v1.30.2'")),
    );
    assert_eq!(old.status, Status::Fail);
    assert!(old.message.contains("v1.31"), "{}", old.message);
    let oldest = result_for(
        Role::JoinWorker,
        "KubeletVersion",
        setup(|f| write_script(&f.path("bin/kubelet"), "echo 'Kubernetes v1.31.0'")),
    );
    assert_eq!(oldest.status, Status::Pass, "{}", oldest.message);
    let missing = result_for(
        Role::Init,
        "KubeletVersion",
        setup(|f| f.remove("bin/kubelet")),
    );
    assert!(missing.message.contains("not found"), "{}", missing.message);
    let broken = result_for(
        Role::Init,
        "KubeletVersion",
        setup(|f| write_script(&f.path("bin/kubelet"), "exit 3")),
    );
    assert_eq!(broken.status, Status::Fail);
}

#[test]
fn fix_sets_sysctls_through_a_journaled_drop_in() {
    let id = "FileContent--proc-sys-net-ipv4-ip_forward";
    let (fixed, dir) = run_scenario_keeping(
        Role::Init,
        entry(Role::Init, id),
        setup(|f| {
            f.write("proc/sys/net/ipv4/ip_forward", "0\n");
            f.node.fix = true;
        }),
    );
    assert_eq!(fixed.status, Status::Pass, "{fixed:?}");
    assert!(fixed.message.starts_with("fixed:"), "{}", fixed.message);
    let live = std::fs::read_to_string(dir.path().join("proc/sys/net/ipv4/ip_forward")).unwrap();
    assert_eq!(live.trim(), "1");
    let drop_in =
        std::fs::read_to_string(dir.path().join("root/etc/sysctl.d/99-kubestrap.conf")).unwrap();
    assert!(drop_in.contains("net.ipv4.ip_forward = 1"), "{drop_in}");
    let journal = kubestrap::host::journal::read(&Root::new(dir.path().join("root"))).unwrap();
    let kinds: Vec<String> = journal
        .iter()
        .map(|r| {
            serde_json::to_value(&r.entry).unwrap()["op"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(kinds.contains(&"write-file".to_string()), "{kinds:?}");
    assert!(
        journal.iter().any(|r| matches!(&r.entry,
            kubestrap::host::journal::Entry::SetSysctl { key, value, prior }
                if key == "net.ipv4.ip_forward" && value == "1" && prior == "0")),
        "{journal:?}"
    );

    let unfixable = result_for(
        Role::Init,
        "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
        setup(|f| {
            f.remove("proc/sys/net/bridge/bridge-nf-call-iptables");
            f.remove("proc/sys/net/bridge/bridge-nf-call-ip6tables");
            std::fs::remove_dir(f.path("proc/sys/net/bridge")).unwrap();
            f.node.fix = true;
        }),
    );
    assert_eq!(unfixable.status, Status::Fail);
    assert!(
        unfixable.message.contains("br_netfilter"),
        "{}",
        unfixable.message
    );
}

#[test]
fn reset_preflight_warns_about_its_tools_and_runtime_and_fails_only_without_root() {
    let fixture = Fixture::new(Role::Reset);
    let host = |uid: &str| {
        fixture.write(
            "proc/self/status",
            &format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        );
        let facts = Facts::with_roots(fixture.path("proc"), fixture.path("sys"))
            .with_host_files_root(fixture.path("host"));
        Host::new(Root::new(fixture.path("root")), facts, false, Ui::default())
    };
    let dead = format!("unix://{}", fixture.path("dead.sock").display());
    let report = kubestrap::preflight::run_reset(&host("0"), &dead, &[]).unwrap();
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids[0], "IsPrivilegedUser");
    assert!(
        ids.contains(&"CRI") && ids.contains(&"FileExisting-ipset"),
        "{ids:?}"
    );
    assert!(!ids.contains(&"Port-10250"), "{ids:?}");
    let cri = report.get("CRI").unwrap();
    assert_eq!(
        (cri.status, cri.severity),
        (Status::Fail, Severity::Warning)
    );

    let err = kubestrap::preflight::run_reset(&host("1000"), &dead, &[]).unwrap_err();
    assert!(
        err.downcast_ref::<kubestrap::preflight::PreflightFailed>()
            .is_some()
    );
    kubestrap::preflight::run_reset(&host("1000"), &dead, &["IsPrivilegedUser".into()]).unwrap();
}
