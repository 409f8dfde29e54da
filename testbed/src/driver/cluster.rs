//! Clusters of testbed nodes: Docker containers on a private bridge network, each with its own IP,
//! hostname and filesystem, running the testbed's init as PID 1. Tests start a cluster, drive
//! nodes (kubestrap, kubectl, files, systemctl), stop, restart or cut nodes off, and tear down;
//! the command line creates clusters that outlive it and tears them down the same way.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::docker::{EngineLock, Finished, docker, require_engine, sweep_leftovers};
use super::identity::{IMAGE_LABEL, IP_LABEL, NODE_LABEL, Owner};
use super::{image, inspect};

/// The binaries the nodes run: the testbed's multi-call binary and kubestrap itself.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub tbnode: PathBuf,
    pub kubestrap: PathBuf,
}

impl Binaries {
    /// `tbnode` and `testbed-kubestrap` from the directory of the running executable (where Cargo
    /// puts a package's binaries), for programs that are not tests.
    pub fn beside_current_exe() -> Result<Binaries> {
        let exe = std::env::current_exe().context("locating the running executable")?;
        let dir = exe
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
        let binaries = Binaries {
            tbnode: dir.join("tbnode"),
            kubestrap: dir.join("testbed-kubestrap"),
        };
        for path in [&binaries.tbnode, &binaries.kubestrap] {
            if !path.is_file() {
                bail!(
                    "{} is missing: build the testbed's binaries with `cargo build -p kubestrap-testbed --bins`",
                    path.display()
                );
            }
        }
        Ok(binaries)
    }
}

/// How to build a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: Vec<String>,
    /// The version the kubelet doubles report (`kubelet --version`).
    pub kubelet_version: String,
    /// Ranges each node routes as `unreachable` (the pod ranges tests use): traffic no pod
    /// network handles fails at once instead of leaving through the Docker uplink.
    pub unreachable: Vec<String>,
    /// Ranges each node's filter table rejects in OUTPUT and FORWARD (the service ranges): after
    /// kube-proxy's DNAT, so handled ClusterIP traffic passes (docs/testbed.md).
    pub reject: Vec<String>,
    /// A load-balancer node (`lb`, at `<subnet>.10`) running haproxy over every node's :6443, the
    /// control-plane endpoint of an HA cluster (`driver::lb`).
    pub lb: bool,
}

/// The pod ranges every node routes as unreachable by default (kubeadm's and the tests' choices).
pub const DEFAULT_UNREACHABLE: &[&str] = &["10.244.0.0/16", "fd00:10:244::/48"];
/// The service range every node rejects by default (kubeadm's default serviceSubnet).
pub const DEFAULT_REJECT: &[&str] = &["10.96.0.0/12"];
/// The host part of the cluster's upstream DNS server on the private network.
pub const DNS_HOST: u8 = 53;

impl ClusterSpec {
    pub fn nodes(count: usize) -> ClusterSpec {
        ClusterSpec {
            nodes: (1..=count).map(|i| format!("node{i}")).collect(),
            kubelet_version: crate::DEFAULT_KUBERNETES_VERSION.to_string(),
            unreachable: DEFAULT_UNREACHABLE.iter().map(|s| s.to_string()).collect(),
            reject: DEFAULT_REJECT.iter().map(|s| s.to_string()).collect(),
            lb: false,
        }
    }

    /// `count` nodes behind a load-balancer node.
    pub fn with_lb(count: usize) -> ClusterSpec {
        ClusterSpec {
            lb: true,
            ..ClusterSpec::nodes(count)
        }
    }
}

pub struct Node {
    pub name: String,
    pub container: String,
    pub ip: String,
    pub(crate) network: String,
}

pub struct Cluster {
    /// The test run's id, or the command-line cluster's name.
    pub run_id: String,
    pub owner: Owner,
    pub network: String,
    /// The cluster network's subnet (`10.213.x.0/24` for a test run, `10.214.x.0/24` for the
    /// command line's clusters).
    pub subnet: String,
    /// The node image the nodes were made from.
    pub image: String,
    pub nodes: Vec<Node>,
    /// The load-balancer node, when the spec asked for one (`host:6443` of its address is the
    /// control-plane endpoint).
    pub lb: Option<Node>,
    torn_down: bool,
    _lock: Option<EngineLock>,
}

/// What teardown removed and how long it took.
#[derive(Debug)]
pub struct Teardown {
    pub duration: Duration,
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
}

/// Polls `check` every 200 ms until it returns true; fails with `what` after `timeout`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_error = String::new();
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {}s waiting for {what}{}",
                timeout.as_secs(),
                if last_error.is_empty() {
                    String::new()
                } else {
                    format!(" (last error: {last_error})")
                }
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn random_byte() -> u8 {
    let mut b = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[0]
}

/// Fails unless both binaries exist and a Docker engine answers.
fn preflight(binaries: &Binaries) -> Result<()> {
    for (what, path) in [
        ("tbnode", &binaries.tbnode),
        ("kubestrap", &binaries.kubestrap),
    ] {
        if !path.is_file() {
            bail!(
                "the {what} binary {} does not exist (build it first)",
                path.display()
            );
        }
    }
    require_engine()
}

impl Cluster {
    /// Starts a test run's nodes. Holds the engine lock until the cluster is dropped, and first
    /// removes what crashed test runs left (never a command-line cluster: see `identity`).
    pub fn start(binaries: &Binaries, spec: &ClusterSpec) -> Result<Cluster> {
        preflight(binaries)?;
        let lock = EngineLock::acquire()?;
        Self::start_test_run(lock, binaries, spec)
    }

    /// As `start`, under an engine lock the caller already holds (e.g. a test that drives the
    /// command line and the driver in turn); the cluster keeps a clone of it.
    pub fn start_holding(
        lock: EngineLock,
        binaries: &Binaries,
        spec: &ClusterSpec,
    ) -> Result<Cluster> {
        preflight(binaries)?;
        Self::start_test_run(lock, binaries, spec)
    }

    fn start_test_run(
        lock: EngineLock,
        binaries: &Binaries,
        spec: &ClusterSpec,
    ) -> Result<Cluster> {
        sweep_leftovers()?;
        Self::launch(Owner::new_test_run(), Some(lock), binaries, spec)
    }

    /// Starts a command-line cluster: it takes no engine lock (it lives beside test runs, on its
    /// own network range and label) and is not removed when the value is dropped, only by
    /// `teardown`. A failed start removes what it made.
    pub fn create(owner: Owner, binaries: &Binaries, spec: &ClusterSpec) -> Result<Cluster> {
        if owner.removed_on_drop() {
            bail!("Cluster::create is for command-line clusters; tests use Cluster::start");
        }
        preflight(binaries)?;
        Self::launch(owner, None, binaries, spec)
    }

    /// A cluster value for nodes that already run (a command-line cluster found again from its
    /// labels, see `persistent`).
    pub(super) fn assemble(
        owner: Owner,
        network: String,
        subnet: String,
        image: String,
        nodes: Vec<Node>,
    ) -> Cluster {
        Cluster {
            run_id: owner.id().to_string(),
            owner,
            network,
            subnet,
            image,
            nodes,
            lb: None,
            torn_down: false,
            _lock: None,
        }
    }

    fn launch(
        owner: Owner,
        lock: Option<EngineLock>,
        binaries: &Binaries,
        spec: &ClusterSpec,
    ) -> Result<Cluster> {
        let image = image::ensure()?;
        let network = owner.network_name();
        let mut create_network: Vec<String> =
            ["network", "create", "--driver", "bridge", "--subnet", ""]
                .map(String::from)
                .into();
        for label in owner.labels() {
            create_network.extend(["--label".to_string(), label]);
        }
        create_network.push(network.clone());
        let mut prefix = None;
        for _ in 0..32 {
            let candidate = format!("{}.{}", owner.address_range(), random_byte());
            create_network[5] = format!("{candidate}.0/24");
            let args: Vec<&str> = create_network.iter().map(String::as_str).collect();
            let out = docker(&args, None)?;
            if out.ok() {
                prefix = Some(candidate);
                break;
            }
            if out.stderr.contains("already exists") {
                bail!(
                    "a Docker network named {network} already exists: {}",
                    out.stderr.trim()
                );
            }
            if !out.stderr.contains("overlap") {
                bail!("docker network create failed: {}", out.stderr);
            }
        }
        let prefix = prefix.ok_or_else(|| {
            anyhow!(
                "no free {}.x.0/24 subnet for the testbed network",
                owner.address_range()
            )
        })?;
        let mut cluster = Cluster {
            run_id: owner.id().to_string(),
            owner,
            network: network.clone(),
            subnet: format!("{prefix}.0/24"),
            image: image.clone(),
            nodes: Vec::new(),
            lb: None,
            torn_down: false,
            _lock: lock,
        };
        let label = cluster.owner.label();
        let dns_ip = format!("{prefix}.{DNS_HOST}");
        if let Err(e) = cluster.start_dns(&image, &dns_ip, binaries) {
            let _ = cluster.remove_everything();
            return Err(e);
        }
        let nameserver = format!("TESTBED_NAMESERVER={dns_ip}");
        let unreachable = format!("TESTBED_UNREACHABLE={}", spec.unreachable.join(","));
        let reject = format!("TESTBED_REJECT={}", spec.reject.join(","));
        for (i, name) in spec.nodes.iter().enumerate() {
            let ip = format!("{prefix}.{}", 11 + i);
            let container = cluster.owner.container_name(name);
            let tbnode = format!("{}:/opt/testbed/bin/tbnode:ro", binaries.tbnode.display());
            let kubestrap = format!(
                "{}:/opt/testbed/bin/kubestrap:ro",
                binaries.kubestrap.display()
            );
            let kubelet_version = format!("TESTBED_KUBELET_VERSION={}", spec.kubelet_version);
            let usr_volume =
                format!("type=volume,destination=/var/lib/testbed-usr,volume-label={label}");
            let mut labels: Vec<String> = cluster.owner.labels();
            labels.extend([
                format!("{NODE_LABEL}={name}"),
                format!("{IP_LABEL}={ip}"),
                format!("{IMAGE_LABEL}={image}"),
            ]);
            let mut args = vec!["run", "-d", "--name", &container, "--hostname", name];
            for label in &labels {
                args.extend(["--label", label]);
            }
            args.extend([
                "--network",
                &network,
                "--ip",
                &ip,
                "--cap-add",
                "SYS_ADMIN",
                "--cap-add",
                "NET_ADMIN",
                "--cap-add",
                "SYS_PTRACE",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--sysctl",
                "net.ipv6.conf.all.disable_ipv6=0",
                "--sysctl",
                "net.ipv6.conf.all.forwarding=1",
                "--tmpfs",
                "/run:rw,exec,mode=755",
                "-v",
                "/usr:/host/usr:ro",
                "--mount",
                &usr_volume,
                "-v",
                "/etc/ssl:/etc/ssl:ro",
                "-v",
                "/etc/alternatives:/etc/alternatives:ro",
                "-v",
                "/etc/ld.so.cache:/etc/ld.so.cache:ro",
                "-v",
                &tbnode,
                "-v",
                &kubestrap,
                "-e",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "-e",
                &kubelet_version,
                "-e",
                &nameserver,
                "-e",
                &unreachable,
                "-e",
                &reject,
                &image,
                "/opt/testbed/bin/systemd",
            ]);
            let started = docker(&args, None)?.check(&format!("start node {name}"));
            if let Err(e) = started {
                let _ = cluster.remove_everything();
                return Err(e);
            }
            cluster.nodes.push(Node {
                name: name.clone(),
                container,
                ip,
                network: network.clone(),
            });
        }
        if spec.lb {
            let ip = format!("{prefix}.{}", super::lb::LB_HOST);
            let container = cluster.owner.container_name("lb");
            let servers: Vec<(String, String)> = cluster
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.ip.clone()))
                .collect();
            let labels = cluster.owner.labels();
            if let Err(e) = super::lb::start(&container, &labels, &network, &ip, &image, &servers) {
                let _ = cluster.remove_everything();
                return Err(e);
            }
            cluster.lb = Some(Node {
                name: "lb".to_string(),
                container,
                ip,
                network: network.clone(),
            });
        }
        for node in &cluster.nodes {
            if let Err(e) = node.wait_booted() {
                let _ = cluster.remove_everything();
                return Err(e);
            }
        }
        Ok(cluster)
    }

    /// The cluster's upstream DNS server: a container on the private network (not a node) that
    /// forwards to Docker's resolver (`tbnode dns-forward`).
    fn start_dns(&self, image: &str, ip: &str, binaries: &Binaries) -> Result<()> {
        let container = self.owner.container_name("dns");
        let tbnode = format!("{}:/opt/testbed/bin/tbnode:ro", binaries.tbnode.display());
        let mut args = vec!["run", "-d", "--name", &container, "--hostname", "dns"];
        let labels = self.owner.labels();
        for label in &labels {
            args.extend(["--label", label]);
        }
        args.extend([
            "--network",
            &self.network,
            "--ip",
            ip,
            "-v",
            "/usr:/usr:ro",
            "-v",
            "/etc/ld.so.cache:/etc/ld.so.cache:ro",
            "-v",
            &tbnode,
            image,
            "/opt/testbed/bin/tbnode",
            "dns-forward",
        ]);
        docker(&args, None)?.check("start the cluster's DNS server")?;
        Ok(())
    }

    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no node {name} in this cluster"))
    }

    /// The tail of every node's kubelet, container runtime and static-pod logs, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!("===== {} ({})\n", node.name, node.ip));
            out.push_str(&format!(
                "--- kubelet\n{}\n",
                tail(&node.service_log("kubelet"), 25)
            ));
            out.push_str(&format!(
                "--- containerd\n{}\n",
                tail(&node.service_log("containerd"), 15)
            ));
            let pods = node
                .sh("ls /var/log/pods 2>/dev/null")
                .map(|o| o.stdout)
                .unwrap_or_default();
            for dir in pods.split_whitespace() {
                let logs = node
                    .sh(&format!(
                        "tail -n 15 /var/log/pods/{dir}/*/*.log 2>/dev/null"
                    ))
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                out.push_str(&format!("--- {dir}\n{logs}\n"));
            }
        }
        out
    }

    /// Removes every container (with its anonymous volumes), network and volume that carries the
    /// cluster's label, whether or not this value knows it (a crashed start leaves some behind).
    /// Returns how many of each it removed.
    fn remove_everything(&mut self) -> Result<(usize, usize, usize)> {
        let filter = self.owner.filter();
        let ids = docker(&["ps", "-aq", "--filter", &filter], None)?
            .check("list the cluster's containers")?
            .stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        let volumes = inspect::volumes(&filter)?.len();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(&ids);
            docker(&args, None)?.check("remove node containers")?;
        }
        let networks = docker(&["network", "ls", "-q", "--filter", &filter], None)?
            .check("list the cluster's networks")?
            .stdout;
        let networks: Vec<&str> = networks.split_whitespace().collect();
        for id in &networks {
            docker(&["network", "rm", id], None)?.check("remove the cluster network")?;
        }
        for volume in inspect::volumes(&filter)? {
            docker(&["volume", "rm", "-f", &volume], None)?.check("remove a node volume")?;
        }
        self.torn_down = true;
        Ok((ids.len(), networks.len(), volumes))
    }

    /// Removes the nodes, the network and the volumes, then checks that no container, network,
    /// volume, network namespace, rootfs mount or process of this cluster is left.
    pub fn teardown(mut self) -> Result<Teardown> {
        let started = Instant::now();
        let filter = self.owner.filter();
        let before = inspect::containers(&filter)?;
        let (containers, networks, volumes) = self.remove_everything()?;
        let mut left = Vec::new();
        let still = docker(&["ps", "-aq", "--filter", &filter], None)?.stdout;
        if !still.trim().is_empty() {
            left.push(format!("containers: {}", still.trim()));
        }
        let still = docker(&["network", "ls", "-q", "--filter", &filter], None)?.stdout;
        if !still.trim().is_empty() {
            left.push(format!("networks: {}", still.trim()));
        }
        let still = inspect::volumes(&filter)?;
        if !still.is_empty() {
            left.push(format!("volumes: {}", still.join(" ")));
        }
        for container in &before {
            for path in container.footprint() {
                // The engine releases a removed container's rootfs mount at once; its network
                // namespace file stays until libnetwork's periodic garbage collection, so for
                // that one what counts is that no process is left inside the namespace.
                let gone = match path.strip_prefix("volume:") {
                    Some(volume) => match docker(&["volume", "inspect", volume], None)?.ok() {
                        true => Err(anyhow::anyhow!("volume left")),
                        false => Ok(()),
                    },
                    None => wait_until(
                        &format!("{path} to be released"),
                        Duration::from_secs(10),
                        || Ok(!in_use(&path)),
                    ),
                };
                if gone.is_err() {
                    left.push(format!("{path} of {}", container.name()));
                }
            }
        }
        // Nothing may run on for a removed node: not a runtime shim (its command line names the
        // container id) nor a docker client still attached to it (it names the container).
        let names: Vec<String> = before
            .iter()
            .flat_map(|c| [c.id.clone(), c.name().to_string()])
            .collect();
        if !names.is_empty() {
            let pattern = format!("(^| )({})( |$)", names.join("|"));
            let mut pids = String::new();
            let _ = wait_until(
                "the nodes' processes to end",
                Duration::from_secs(10),
                || {
                    let out = std::process::Command::new("pgrep")
                        .args(["-f", &pattern])
                        .output()
                        .context("run pgrep")?;
                    pids = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    Ok(pids.is_empty())
                },
            );
            if !pids.is_empty() {
                left.push(format!("processes: {pids}"));
            }
        }
        if !left.is_empty() {
            bail!("teardown left things behind: {}", left.join("; "));
        }
        Ok(Teardown {
            duration: started.elapsed(),
            containers,
            networks,
            volumes,
        })
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a node's footprint is still live: a mount still mounted, or a network namespace that
/// some process is still in.
fn in_use(path: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    if path.contains("/netns/") {
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let wanted = format!("net:[{}]", meta.ino());
        return std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path().join("ns/net")).ok())
            .any(|link| link.to_string_lossy() == wanted);
    }
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.contains(path))
        .unwrap_or(false)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.torn_down && self.owner.removed_on_drop() {
            let _ = self.remove_everything();
        }
    }
}

impl Node {
    pub fn exec(&self, argv: &[&str]) -> Result<Finished> {
        let mut args = vec!["exec", self.container.as_str()];
        args.extend_from_slice(argv);
        docker(&args, None)
    }

    /// Runs a shell script on the node.
    pub fn sh(&self, script: &str) -> Result<Finished> {
        self.exec(&["sh", "-c", script])
    }

    /// Runs `kubestrap <args>` on the node.
    pub fn kubestrap(&self, args: &[&str]) -> Result<Finished> {
        let mut argv = vec!["kubestrap"];
        argv.extend_from_slice(args);
        self.exec(&argv)
    }

    /// Runs the real kubectl on the node with the given kubeconfig.
    pub fn kubectl_with(&self, kubeconfig: &str, args: &[&str]) -> Result<Finished> {
        let flag = format!("--kubeconfig={kubeconfig}");
        let mut argv = vec!["kubectl", flag.as_str()];
        argv.extend_from_slice(args);
        self.exec(&argv)
    }

    /// Runs the real kubectl on the node with its /etc/kubernetes/admin.conf.
    pub fn kubectl(&self, args: &[&str]) -> Result<Finished> {
        self.kubectl_with("/etc/kubernetes/admin.conf", args)
    }

    pub fn systemctl(&self, args: &[&str]) -> Result<Finished> {
        let mut argv = vec!["systemctl"];
        argv.extend_from_slice(args);
        self.exec(&argv)
    }

    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let out = std::process::Command::new("docker")
            .args(["exec", &self.container, "cat", path])
            .output()
            .context("docker exec cat")?;
        if !out.status.success() {
            bail!(
                "read {path} on {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    }

    pub fn read_string(&self, path: &str) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.read_file(path)?).into_owned())
    }

    pub fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.exec(&["test", "-e", path])?.ok())
    }

    /// Writes a file (creating its directory) with the given octal mode.
    pub fn write_file(&self, path: &str, contents: &[u8], mode: u32) -> Result<()> {
        let script = format!(
            "mkdir -p \"$(dirname '{path}')\" && cat > '{path}.tbtmp' && chmod {mode:o} '{path}.tbtmp' && mv '{path}.tbtmp' '{path}'"
        );
        docker(
            &["exec", "-i", &self.container, "sh", "-c", &script],
            Some(contents),
        )?
        .check(&format!("write {path} on {}", self.name))?;
        Ok(())
    }

    pub fn remove_file(&self, path: &str) -> Result<()> {
        self.exec(&["rm", "-f", path])?
            .check(&format!("remove {path} on {}", self.name))?;
        Ok(())
    }

    /// Stops the node as a power-off would (the service manager stops everything).
    pub fn stop(&self) -> Result<()> {
        docker(&["stop", "-t", "10", &self.container], None)?
            .check(&format!("stop {}", self.name))?;
        Ok(())
    }

    /// Boots a stopped node again (same IP, same disk, fresh /run).
    pub fn start(&self) -> Result<()> {
        docker(&["start", &self.container], None)?.check(&format!("start {}", self.name))?;
        self.wait_booted()
    }

    /// Waits for the node's service manager and container runtime to answer on their sockets.
    fn wait_booted(&self) -> Result<()> {
        wait_until(
            &format!("{}'s service manager and container runtime", self.name),
            Duration::from_secs(20),
            || {
                let (init, cri) = (crate::node::init::SOCKET, crate::cri::SOCKET);
                Ok(self.exec(&["test", "-S", init, "-a", "-S", cri])?.ok())
            },
        )
    }

    /// Freezes every process of the node.
    pub fn pause(&self) -> Result<()> {
        docker(&["pause", &self.container], None)?.check(&format!("pause {}", self.name))?;
        Ok(())
    }

    pub fn unpause(&self) -> Result<()> {
        docker(&["unpause", &self.container], None)?.check(&format!("unpause {}", self.name))?;
        Ok(())
    }

    /// Cuts the node off the cluster network (it keeps running, alone).
    pub fn partition(&self) -> Result<()> {
        docker(
            &[
                "network",
                "disconnect",
                "-f",
                &self.network,
                &self.container,
            ],
            None,
        )?
        .check(&format!("partition {}", self.name))?;
        Ok(())
    }

    /// Reconnects a partitioned node with its old address.
    pub fn heal(&self) -> Result<()> {
        docker(
            &[
                "network",
                "connect",
                "--ip",
                &self.ip,
                &self.network,
                &self.container,
            ],
            None,
        )?
        .check(&format!("heal {}", self.name))?;
        Ok(())
    }

    /// Installs the kubelet drop-in the kubeadm package would ship.
    pub fn install_kubeadm_dropin(&self) -> Result<()> {
        self.write_file(
            "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
            image::KUBEADM_DROPIN.as_bytes(),
            0o644,
        )
    }

    /// The log of a service the node's service manager runs (its journal).
    pub fn service_log(&self, unit: &str) -> String {
        self.read_string(&format!("/var/log/testbed/{unit}.log"))
            .unwrap_or_default()
    }

    /// The log of a static pod's container, by the manifest's pod name: the kubelet names the
    /// pod `<pod>-<node>` (/var/log/pods/<ns>_<pod>-<node>_<uid>/<container>/*.log).
    pub fn pod_log(&self, pod: &str, container: &str) -> String {
        let script = format!(
            "cat /var/log/pods/*_{pod}-{}_*/{container}/*.log 2>/dev/null",
            self.name
        );
        self.sh(&script).map(|o| o.stdout).unwrap_or_default()
    }

    /// Where a path inside the node is reachable from the machine running the test (through
    /// the node's PID 1: `/proc/<pid>/root/<path>`), e.g. the node's CRI socket for kubestrap's
    /// CRI client.
    pub fn host_path(&self, path: &str) -> Result<std::path::PathBuf> {
        let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &self.container], None)?
            .check("inspect the node's PID")?
            .stdout
            .trim()
            .to_string();
        if pid.is_empty() || pid == "0" {
            bail!("node {} is not running", self.name);
        }
        Ok(std::path::PathBuf::from(format!(
            "/proc/{pid}/root/{}",
            path.trim_start_matches('/')
        )))
    }
}
