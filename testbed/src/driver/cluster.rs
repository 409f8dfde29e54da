//! Clusters of testbed nodes: Docker containers on a private bridge network, each with its own IP,
//! hostname and filesystem, running the testbed's init as PID 1. Tests start a cluster, drive
//! nodes (kubestrap, kubectl, files, systemctl), stop, restart or cut nodes off, and tear down.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::docker::{EngineLock, Finished, LABEL, docker, require_engine, sweep_leftovers};
use super::image;

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
}

impl ClusterSpec {
    pub fn nodes(count: usize) -> ClusterSpec {
        ClusterSpec {
            nodes: (1..=count).map(|i| format!("node{i}")).collect(),
            kubelet_version: crate::DEFAULT_KUBERNETES_VERSION.to_string(),
        }
    }
}

pub struct Node {
    pub name: String,
    pub container: String,
    pub ip: String,
    network: String,
    /// Host paths that must be gone after teardown (the network namespace and the rootfs mount).
    footprint: Vec<String>,
}

pub struct Cluster {
    pub run_id: String,
    pub network: String,
    pub nodes: Vec<Node>,
    torn_down: bool,
    _lock: EngineLock,
}

/// What teardown found and how long it took.
#[derive(Debug)]
pub struct Teardown {
    pub duration: Duration,
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

impl Cluster {
    /// Starts the nodes. Holds the engine lock until the cluster is dropped.
    pub fn start(binaries: &Binaries, spec: &ClusterSpec) -> Result<Cluster> {
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
        require_engine()?;
        let lock = EngineLock::acquire()?;
        sweep_leftovers()?;
        let image = image::ensure()?;
        let run_id = format!(
            "tb{}x{:02x}{:02x}",
            std::process::id(),
            random_byte(),
            random_byte()
        );
        let network = format!("kubestrap-testbed-{run_id}");
        let label = format!("{LABEL}={run_id}");
        let mut prefix = None;
        for _ in 0..32 {
            let candidate = format!("10.213.{}", random_byte());
            let subnet = format!("{candidate}.0/24");
            let out = docker(
                &[
                    "network", "create", "--driver", "bridge", "--subnet", &subnet, "--label",
                    &label, &network,
                ],
                None,
            )?;
            if out.ok() {
                prefix = Some(candidate);
                break;
            }
            if !out.stderr.contains("overlap") {
                bail!("docker network create failed: {}", out.stderr);
            }
        }
        let prefix = prefix
            .ok_or_else(|| anyhow!("no free 10.213.x.0/24 subnet for the testbed network"))?;
        let mut cluster = Cluster {
            run_id: run_id.clone(),
            network: network.clone(),
            nodes: Vec::new(),
            torn_down: false,
            _lock: lock,
        };
        for (i, name) in spec.nodes.iter().enumerate() {
            let ip = format!("{prefix}.{}", 11 + i);
            let container = format!("kubestrap-testbed-{run_id}-{name}");
            let tbnode = format!("{}:/opt/testbed/bin/tbnode:ro", binaries.tbnode.display());
            let kubestrap = format!(
                "{}:/opt/testbed/bin/kubestrap:ro",
                binaries.kubestrap.display()
            );
            let kubelet_version = format!("TESTBED_KUBELET_VERSION={}", spec.kubelet_version);
            let args = [
                "run",
                "-d",
                "--name",
                &container,
                "--hostname",
                name,
                "--label",
                &label,
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
                "--tmpfs",
                "/run:rw,exec,mode=755",
                "-v",
                "/usr:/host/usr:ro",
                "-v",
                "/var/lib/testbed-usr",
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
                &image,
                "/opt/testbed/bin/systemd",
            ];
            let started = docker(&args, None)?.check(&format!("start node {name}"));
            if let Err(e) = started {
                let _ = cluster.remove_everything();
                return Err(e);
            }
            let footprint = docker(
                &[
                    "inspect",
                    "-f",
                    "{{.NetworkSettings.SandboxKey}}\n{{.GraphDriver.Data.MergedDir}}\n{{range .Mounts}}{{if eq .Type \"volume\"}}volume:{{.Name}}\n{{end}}{{end}}",
                    &container,
                ],
                None,
            )?
            .check("inspect node")?
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "<no value>")
            .map(str::to_string)
            .collect();
            cluster.nodes.push(Node {
                name: name.clone(),
                container,
                ip,
                network: network.clone(),
                footprint,
            });
        }
        for node in &cluster.nodes {
            node.wait_booted()?;
        }
        Ok(cluster)
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

    fn remove_everything(&mut self) -> Result<()> {
        let filter = format!("label={LABEL}={}", self.run_id);
        let ids = docker(&["ps", "-aq", "--filter", &filter], None)?.stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            docker(&args, None)?.check("remove node containers")?;
        }
        let _ = docker(&["network", "rm", &self.network], None);
        self.torn_down = true;
        Ok(())
    }

    /// Removes the nodes and the network, then checks that no container, network, network
    /// namespace, mount, volume or process of this run is left.
    pub fn teardown(mut self) -> Result<Teardown> {
        let started = Instant::now();
        self.remove_everything()?;
        let filter = format!("label={LABEL}={}", self.run_id);
        let mut left = Vec::new();
        let containers = docker(&["ps", "-aq", "--filter", &filter], None)?.stdout;
        if !containers.trim().is_empty() {
            left.push(format!("containers: {}", containers.trim()));
        }
        let networks = docker(&["network", "ls", "-q", "--filter", &filter], None)?.stdout;
        if !networks.trim().is_empty() {
            left.push(format!("networks: {}", networks.trim()));
        }
        for node in &self.nodes {
            for path in &node.footprint {
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
                        || Ok(!in_use(path)),
                    ),
                };
                if gone.is_err() {
                    left.push(format!("{path} of {}", node.name));
                }
            }
        }
        let processes = std::process::Command::new("pgrep")
            .args(["-f", &self.run_id])
            .output();
        if let Ok(p) = processes {
            let pids = String::from_utf8_lossy(&p.stdout).trim().to_string();
            if !pids.is_empty() {
                left.push(format!("processes: {pids}"));
            }
        }
        if !left.is_empty() {
            bail!("teardown left things behind: {}", left.join("; "));
        }
        Ok(Teardown {
            duration: started.elapsed(),
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
        if !self.torn_down {
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
