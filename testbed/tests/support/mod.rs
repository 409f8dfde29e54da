//! Shared set-up of the proxy and DNS tests: kube-proxy on every node as kubeadm's proxy add-on
//! configures it (until the kubelet double runs API pods: a static pod with the DaemonSet's files
//! — config.conf from the ConfigMap, a kubeconfig with the `kube-proxy` service account's token
//! bound to `system:node-proxier`), and service-account credentials written where a pod reads them.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use kubestrap_testbed::driver::fixture::ClusterSettings;
use kubestrap_testbed::driver::{Cluster, Node, wait_until};
use serde_json::json;

pub const WAIT: Duration = Duration::from_secs(40);
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";

pub fn kubectl(node: &Node, args: &[&str]) -> Result<String> {
    Ok(node
        .kubectl(args)?
        .check(&format!("kubectl {}", args.join(" ")))?
        .stdout)
}

/// kubeadm's KubeProxyConfiguration for a cluster with podSubnet 10.244.0.0/16 (the fields it
/// sets); `extra` lands inside `iptables:`, the last mapping.
pub fn proxy_config(extra: &str) -> String {
    format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nbindAddress: 0.0.0.0\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\nclusterCIDR: {CLUSTER_CIDR}\nconfigSyncPeriod: 0s\nmode: \"\"\niptables:\n  minSyncPeriod: 0s\n  syncPeriod: 0s\n{extra}"
    )
}

pub fn proxy_manifest(node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: kube-proxy
  namespace: kube-system
  labels:
    k8s-app: kube-proxy
spec:
  hostNetwork: true
  priorityClassName: system-node-critical
  containers:
  - name: kube-proxy
    image: registry.k8s.io/kube-proxy:{version}
    command:
    - /usr/local/bin/kube-proxy
    - --config=/var/lib/kube-proxy/config.conf
    - --hostname-override={node}
    securityContext:
      privileged: true
    volumeMounts:
    - name: kube-proxy
      mountPath: /var/lib/kube-proxy
    - name: xtables-lock
      mountPath: /run/xtables.lock
  volumes:
  - name: kube-proxy
    hostPath:
      path: /var/lib/kube-proxy
      type: Directory
  - name: xtables-lock
    hostPath:
      path: /run/xtables.lock
      type: FileOrCreate
"#,
        version = kubestrap_testbed::DEFAULT_KUBERNETES_VERSION
    )
}

/// A service account (created if missing) and a token for it.
pub fn service_account_token(cp: &Node, namespace: &str, name: &str) -> Result<String> {
    let _ = cp.kubectl(&["create", "serviceaccount", name, "-n", namespace])?;
    Ok(kubectl(
        cp,
        &["create", "token", name, "-n", namespace, "--duration=2h"],
    )?
    .trim()
    .to_string())
}

/// A kubeconfig that authenticates with a token file, as kubeadm's kube-proxy ConfigMap does.
pub fn token_kubeconfig(cp: &Node, token_file: &str) -> Result<String> {
    let settings = ClusterSettings::for_node(cp);
    let ca = cp.read_string("/etc/kubernetes/pki/ca.crt")?;
    Ok(json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"server": settings.server(), "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(&ca)}}],
        "users": [{"name": "default", "user": {"tokenFile": token_file}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default", "namespace": "default"}}],
        "current-context": "default",
    })
    .to_string())
}

/// kube-proxy on every node with kubeadm's RBAC; `extra(node)` adds `iptables:` fields per node.
pub fn start_kube_proxy(
    cp: &Node,
    nodes: &[&Node],
    extra: impl Fn(&str) -> &'static str,
) -> Result<()> {
    let _ = cp.kubectl(&[
        "create",
        "clusterrolebinding",
        "kubeadm:node-proxier",
        "--clusterrole=system:node-proxier",
        "--serviceaccount=kube-system:kube-proxy",
    ])?;
    let token = service_account_token(cp, "kube-system", "kube-proxy")?;
    let kubeconfig = token_kubeconfig(cp, "/var/lib/kube-proxy/token")?;
    for node in nodes {
        node.write_file(
            "/var/lib/kube-proxy/config.conf",
            proxy_config(extra(&node.name)).as_bytes(),
            0o644,
        )?;
        node.write_file(
            "/var/lib/kube-proxy/kubeconfig.conf",
            kubeconfig.as_bytes(),
            0o600,
        )?;
        node.write_file("/var/lib/kube-proxy/token", token.as_bytes(), 0o600)?;
    }
    for node in nodes {
        node.write_file(
            "/etc/kubernetes/manifests/kube-proxy.yaml",
            proxy_manifest(&node.name).as_bytes(),
            0o600,
        )?;
    }
    Ok(())
}

/// Waits until every node's nat table routes the `kubernetes` Service.
pub fn wait_for_proxies(cluster: &Cluster, nodes: &[&Node]) -> Result<()> {
    for node in nodes {
        wait_until(
            &format!("kube-proxy's rules on {}", node.name),
            WAIT,
            || {
                let nat = node.exec(&["iptables-save", "-t", "nat"])?.stdout;
                Ok(nat.contains("\"default/kubernetes:https cluster IP\""))
            },
        )
        .with_context(|| {
            format!(
                "{}\n{}",
                node.pod_log("kube-proxy", "kube-proxy"),
                cluster.diagnostics()
            )
        })?;
    }
    Ok(())
}

/// One HTTP/1.0 GET from the test process (outside every node): the status code and the body.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(3))
        .with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("malformed response")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("malformed status line")?;
    Ok((code, body.to_string()))
}
