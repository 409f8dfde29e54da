//! The load-balancer node of an HA cluster (`ClusterSpec::lb`, `kubestrap-testbed up --lb`): a
//! container at `<subnet>.10` running the real Debian `haproxy` from the host's /usr, in TCP mode over
//! every node's :6443, each checked with an HTTPS `GET /readyz` (as kind's HA load balancer does with
//! `/healthz`). A node without an API server is just a server the checks mark down; a stopped control
//! plane is marked down within about two seconds, and a connection to it is re-dispatched to another.

use anyhow::Result;

use super::docker::docker;

/// The host part of the load balancer's address on the cluster network.
pub const LB_HOST: u8 = 10;
/// The port haproxy listens on (the API servers' port, as kubeadm's default endpoint).
pub const LB_PORT: u16 = 6443;
/// Where the host's haproxy is (Debian's package, `.ci/apt-packages`).
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// haproxy's configuration for API servers at `servers` (name, address).
pub fn config(servers: &[(String, String)]) -> String {
    let mut text = String::from(
        "global\n  log stdout format raw local0\n  maxconn 4096\n\n\
         defaults\n  log global\n  mode tcp\n  option tcplog\n  option dontlognull\n\
         \x20 timeout connect 1s\n  timeout client 1h\n  timeout server 1h\n\
         \x20 retries 2\n  option redispatch\n\n\
         frontend control-plane\n  bind *:6443\n  default_backend kube-apiservers\n\n\
         backend kube-apiservers\n  option httpchk GET /readyz\n  http-check expect status 200\n\
         \x20 default-server check check-ssl verify none inter 1s fall 2 rise 1\n",
    );
    for (name, address) in servers {
        text.push_str(&format!("  server {name} {address}:6443\n"));
    }
    text
}

/// `docker run` arguments of the load balancer's container (the caller adds labels and names).
pub fn run_script() -> &'static str {
    "printf '%s' \"$HAPROXY_CONFIG\" > /tmp/haproxy.cfg && exec /usr/sbin/haproxy -W -db -f /tmp/haproxy.cfg"
}

/// Starts the load balancer container `container` at `ip` on `network` from `image`.
pub fn start(
    container: &str,
    labels: &[String],
    network: &str,
    ip: &str,
    image: &str,
    servers: &[(String, String)],
) -> Result<()> {
    if !std::path::Path::new(HAPROXY).is_file() {
        anyhow::bail!(
            "{HAPROXY} is not installed: the testbed's load balancer runs the host's haproxy (apt-get install haproxy; .ci/apt-packages)"
        );
    }
    let config = format!("HAPROXY_CONFIG={}", config(servers));
    let mut args = vec!["run", "-d", "--name", container, "--hostname", "lb"];
    for label in labels {
        args.extend(["--label", label.as_str()]);
    }
    args.extend([
        "--network",
        network,
        "--ip",
        ip,
        "-v",
        "/usr:/usr:ro",
        "-v",
        "/etc/ld.so.cache:/etc/ld.so.cache:ro",
        "-e",
        &config,
        "--entrypoint",
        "/usr/bin/sh",
        image,
        "-c",
        run_script(),
    ]);
    docker(&args, None)?.check("start the cluster's load balancer (haproxy)")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_is_health_checked_over_tls() {
        let text = config(&[
            ("node1".into(), "10.213.1.11".into()),
            ("node2".into(), "10.213.1.12".into()),
        ]);
        assert!(text.contains("mode tcp"));
        assert!(text.contains("option httpchk GET /readyz"));
        assert!(text.contains("default-server check check-ssl verify none"));
        assert!(
            text.contains("  server node1 10.213.1.11:6443\n  server node2 10.213.1.12:6443\n")
        );
    }
}
