//! Readers of host facts — /proc, /sys, /boot and the host's own files that are not kubestrap's state
//! (/etc/machine-id, /etc/resolv.conf, /etc/containerd/config.toml, /etc/docker/daemon.json, the CA
//! trust directories, packaged unit files) — with roots a test can point at a fixture tree. `--root`
//! never applies to these: it prefixes state paths only ([`super::paths`]).
//!
//! `KUBESTRAP_PROC_ROOT`, `KUBESTRAP_SYS_ROOT`, `KUBESTRAP_BOOT_ROOT` and `KUBESTRAP_HOST_FILES_ROOT`
//! replace `/proc`, `/sys`, `/boot` and `/` for host files (test hooks; never needed on a real node).
//! Kernel state that has no file form (interface addresses) is read with system calls and always
//! belongs to the namespaces the process runs in.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    proc_root: PathBuf,
    sys_root: PathBuf,
    boot_root: PathBuf,
    host_files_root: PathBuf,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            boot_root: PathBuf::from("/boot"),
            host_files_root: PathBuf::from("/"),
        }
    }
}

/// A network interface address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl Facts {
    /// Facts from the real /proc and /sys, or the roots named by the test-hook variables.
    pub fn from_env() -> Self {
        let mut facts = Facts::default();
        if let Some(p) = std::env::var_os("KUBESTRAP_PROC_ROOT") {
            facts.proc_root = PathBuf::from(p);
        }
        if let Some(s) = std::env::var_os("KUBESTRAP_SYS_ROOT") {
            facts.sys_root = PathBuf::from(s);
        }
        if let Some(b) = std::env::var_os("KUBESTRAP_BOOT_ROOT") {
            facts.boot_root = PathBuf::from(b);
        }
        if let Some(h) = std::env::var_os("KUBESTRAP_HOST_FILES_ROOT") {
            facts.host_files_root = PathBuf::from(h);
        }
        facts
    }

    pub fn with_roots(proc_root: impl Into<PathBuf>, sys_root: impl Into<PathBuf>) -> Self {
        Facts {
            proc_root: proc_root.into(),
            sys_root: sys_root.into(),
            ..Facts::default()
        }
    }

    /// Replaces `/boot` (where distributions keep `config-<release>`).
    pub fn with_boot_root(mut self, boot_root: impl Into<PathBuf>) -> Self {
        self.boot_root = boot_root.into();
        self
    }

    /// Replaces `/` for the host's own files (see the module doc).
    pub fn with_host_files_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.host_files_root = root.into();
        self
    }

    /// Where a host file (given by its absolute path on the node) is read from.
    pub fn host_file(&self, path: impl AsRef<Path>) -> PathBuf {
        let relative = path.as_ref().strip_prefix("/").unwrap_or(path.as_ref());
        self.host_files_root.join(relative)
    }

    /// A host file's bytes, `None` when it does not exist.
    pub fn read_host_file(&self, path: impl AsRef<Path>) -> anyhow::Result<Option<Vec<u8>>> {
        let on_disk = self.host_file(path);
        match std::fs::read(&on_disk) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", on_disk.display())),
        }
    }

    /// Whether a host file or directory exists.
    pub fn host_file_exists(&self, path: impl AsRef<Path>) -> bool {
        self.host_file(path).exists()
    }

    pub fn boot_path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.boot_root.join(relative)
    }

    pub fn proc_path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.proc_root.join(relative)
    }

    pub fn sys_path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.sys_root.join(relative)
    }

    pub fn read_proc(&self, relative: impl AsRef<Path>) -> anyhow::Result<String> {
        let path = self.proc_path(relative);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    pub fn read_sys(&self, relative: impl AsRef<Path>) -> anyhow::Result<String> {
        let path = self.sys_path(relative);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// The kernel host name (`/proc/sys/kernel/hostname`), as is (not lowercased).
    pub fn hostname(&self) -> anyhow::Result<String> {
        Ok(self.read_proc("sys/kernel/hostname")?.trim().to_string())
    }

    /// The interface carrying the IPv4 default route, from `/proc/net/route`.
    pub fn default_route_interface(&self) -> anyhow::Result<Option<String>> {
        let table = self.read_proc("net/route")?;
        Ok(parse_default_route_interface(&table))
    }

    /// The interface carrying the IPv6 default route, from `/proc/net/ipv6_route`.
    pub fn default_route_interface_v6(&self) -> anyhow::Result<Option<String>> {
        let table = match self.read_proc("net/ipv6_route") {
            Ok(t) => t,
            Err(_) => return Ok(None),
        };
        Ok(table.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // destination ::/0, not the loopback-bound unreachable default
            (fields.len() >= 10
                && fields[0] == "00000000000000000000000000000000"
                && fields[1] == "00"
                && fields[9] != "lo")
                .then(|| fields[9].to_string())
        }))
    }
}

fn parse_default_route_interface(table: &str) -> Option<String> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Iface Destination Gateway Flags ... Mask ; default = destination 0 and mask 0, route up (flag 0x1)
        if fields.len() < 8 {
            return None;
        }
        let flags = u32::from_str_radix(fields[3], 16).ok()?;
        (fields[1] == "00000000" && fields[7] == "00000000" && flags & 0x1 == 0x1)
            .then(|| fields[0].to_string())
    })
}

/// Every address on every interface of this network namespace.
pub fn interface_addresses() -> anyhow::Result<Vec<InterfaceAddress>> {
    let mut out = Vec::new();
    for ifaddr in nix::ifaddrs::getifaddrs().context("listing interface addresses")? {
        let Some(address) = ifaddr.address else {
            continue;
        };
        let prefix_len = ifaddr
            .netmask
            .as_ref()
            .and_then(|m| {
                m.as_sockaddr_in()
                    .map(|v4| u32::from(v4.ip()).count_ones() as u8)
                    .or_else(|| {
                        m.as_sockaddr_in6()
                            .map(|v6| u128::from(v6.ip()).count_ones() as u8)
                    })
            })
            .unwrap_or(0);
        let ip = if let Some(v4) = address.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = address.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        out.push(InterfaceAddress {
            interface: ifaddr.interface_name,
            address: ip,
            prefix_len,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_is_found_in_proc_net_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            parse_default_route_interface(table),
            Some("eth0".to_string())
        );
        assert_eq!(parse_default_route_interface("Iface\n"), None);
    }

    #[test]
    fn fixture_roots_replace_proc() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/kernel")).unwrap();
        std::fs::write(dir.path().join("sys/kernel/hostname"), "Node-A\n").unwrap();
        let facts = Facts::with_roots(dir.path(), "/sys");
        assert_eq!(facts.hostname().unwrap(), "Node-A");
    }
}
