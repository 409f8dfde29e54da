//! `Port-<n>`: a TCP port is free, tested by binding it as the component will; when it is taken, the
//! listening socket is traced through /proc to the process that holds it.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

use super::super::Outcome;
use super::super::context::Probe;
use crate::host::Facts;
use crate::host::listeners;

/// Binds the port on every IPv4 and IPv6 address (as kubeadm's `net.Listen(":port")`), then releases it.
fn try_bind(port: u16) -> std::io::Result<()> {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
    match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
        Err(e) if e.kind() == ErrorKind::AddrInUse => Err(e),
        // No IPv6 on this host: the IPv4 test decides.
        _ => Ok(()),
    }
}

pub fn port_free(probe: &Probe, port: u16) -> anyhow::Result<Outcome> {
    Ok(match try_bind(port) {
        Ok(()) => Outcome::Pass(format!("port {port} is free")),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            let by = port_holder(probe.facts(), port)
                .map(|holder| format!(" by {holder}"))
                .unwrap_or_default();
            Outcome::Fail(format!("Port {port} is in use{by}"))
        }
        Err(e) => Outcome::Fail(format!("Port {port} cannot be bound: {e}")),
    })
}

/// "name (pid N)" of the process holding a listening socket on `port`, when /proc tells.
pub fn port_holder(facts: &Facts, port: u16) -> Option<String> {
    let holder = listeners::listener(facts, port)?;
    let name = if holder.name.is_empty() {
        "a process"
    } else {
        holder.name.as_str()
    };
    Some(format!("{name} (pid {})", holder.pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_traced_from_the_socket_table_to_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path();
        std::fs::create_dir_all(proc_root.join("net")).unwrap();
        std::fs::write(
            proc_root.join("net/tcp"),
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: 00000000:0929 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n\
             1: 0100007F:1A0B 0100007F:0929 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0\n",
        )
        .unwrap();
        std::fs::create_dir_all(proc_root.join("321/fd")).unwrap();
        std::fs::write(proc_root.join("321/comm"), "etcd\n").unwrap();
        std::os::unix::fs::symlink("socket:[4242]", proc_root.join("321/fd/7")).unwrap();
        let facts = Facts::with_roots(proc_root, "/sys");
        assert_eq!(
            port_holder(&facts, 2345),
            Some("etcd (pid 321)".to_string())
        );
        // 0x1A0B is an established connection, not a listener.
        assert_eq!(port_holder(&facts, 0x1A0B), None);
        assert_eq!(port_holder(&facts, 80), None);
    }
}
