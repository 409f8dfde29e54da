//! The kubelet's command line: every flag of the real v1.34 kubelet, and the ones the double uses.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::apiserver::objects::kubelet_may_set_label;
use crate::common::flags::{COMMON_BOOL_FLAGS, COMMON_VALUE_FLAGS, FlagTable, Flags, leak_concat};

const VALUE_FLAGS: &[&str] = &[
    "address",
    "allowed-unsafe-sysctls",
    "authentication-token-webhook-cache-ttl",
    "authorization-mode",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "bootstrap-kubeconfig",
    "cert-dir",
    "cgroup-driver",
    "cgroup-root",
    "client-ca-file",
    "cloud-provider",
    "cluster-dns",
    "cluster-domain",
    "config",
    "config-dir",
    "container-log-max-files",
    "container-log-max-size",
    "container-runtime-endpoint",
    "cpu-cfs-quota-period",
    "cpu-manager-policy",
    "cpu-manager-policy-options",
    "cpu-manager-reconcile-period",
    "enforce-node-allocatable",
    "event-burst",
    "event-qps",
    "eviction-hard",
    "eviction-max-pod-grace-period",
    "eviction-minimum-reclaim",
    "eviction-pressure-transition-period",
    "eviction-soft",
    "eviction-soft-grace-period",
    "experimental-mounter-path",
    "feature-gates",
    "file-check-frequency",
    "hairpin-mode",
    "healthz-bind-address",
    "healthz-port",
    "hostname-override",
    "http-check-frequency",
    "image-credential-provider-bin-dir",
    "image-credential-provider-config",
    "image-gc-high-threshold",
    "image-gc-low-threshold",
    "image-service-endpoint",
    "kube-api-burst",
    "kube-api-content-type",
    "kube-api-qps",
    "kube-reserved",
    "kube-reserved-cgroup",
    "kubeconfig",
    "kubelet-cgroups",
    "lock-file",
    "manifest-url",
    "manifest-url-header",
    "max-open-files",
    "max-pods",
    "maximum-dead-containers",
    "maximum-dead-containers-per-container",
    "memory-manager-policy",
    "minimum-container-ttl-duration",
    "minimum-image-ttl-duration",
    "node-ip",
    "node-labels",
    "node-status-max-images",
    "node-status-update-frequency",
    "oom-score-adj",
    "pod-cidr",
    "pod-infra-container-image",
    "pod-manifest-path",
    "pod-max-pids",
    "pods-per-core",
    "port",
    "provider-id",
    "qos-reserved",
    "read-only-port",
    "register-with-taints",
    "registry-burst",
    "registry-qps",
    "reserved-cpus",
    "reserved-memory",
    "resolv-conf",
    "root-dir",
    "runtime-cgroups",
    "runtime-request-timeout",
    "seccomp-default",
    "streaming-connection-idle-timeout",
    "sync-frequency",
    "system-cgroups",
    "system-reserved",
    "system-reserved-cgroup",
    "tls-cert-file",
    "tls-cipher-suites",
    "tls-min-version",
    "tls-private-key-file",
    "topology-manager-policy",
    "topology-manager-policy-options",
    "topology-manager-scope",
    "volume-plugin-dir",
    "volume-stats-agg-period",
];

const BOOL_FLAGS: &[&str] = &[
    "anonymous-auth",
    "authentication-token-webhook",
    "cgroups-per-qos",
    "contention-profiling",
    "cpu-cfs-quota",
    "enable-controller-attach-detach",
    "enable-debugging-handlers",
    "enable-server",
    "exit-on-lock-contention",
    "experimental-allocatable-ignore-eviction",
    "fail-cgroupv1",
    "fail-swap-on",
    "kernel-memcg-notification",
    "local-storage-capacity-isolation",
    "make-iptables-util-chains",
    "protect-kernel-defaults",
    "register-node",
    "rotate-certificates",
    "rotate-server-certificates",
    "runonce",
    "serialize-image-pulls",
];

/// Flags removed after the version in which they were last accepted.
const REMOVED_AFTER: &[(&str, u32)] = &[("pod-infra-container-image", 34)];

pub fn flag_table(minor: u32) -> FlagTable {
    let values: Vec<&'static str> = VALUE_FLAGS
        .iter()
        .copied()
        .filter(|f| {
            !REMOVED_AFTER
                .iter()
                .any(|(name, last)| name == f && minor > *last)
        })
        .collect();
    FlagTable {
        component: "\"kubelet\"",
        value_flags: leak_concat(Box::leak(values.into_boxed_slice()), COMMON_VALUE_FLAGS),
        bool_flags: leak_concat(BOOL_FLAGS, COMMON_BOOL_FLAGS),
        shorthands: &[('v', "v"), ('h', "help")],
    }
}

/// What the double takes from the command line.
#[derive(Debug, Clone)]
pub struct KubeletFlags {
    pub config: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub bootstrap_kubeconfig: Option<PathBuf>,
    pub cert_dir: PathBuf,
    pub hostname_override: Option<String>,
    pub node_ip: Option<String>,
    pub node_labels: Vec<(String, String)>,
    pub register_with_taints: Vec<Value>,
    pub provider_id: Option<String>,
    pub flags: Flags,
}

/// `key=value:Effect` or `key:Effect`, as --register-with-taints takes them.
pub fn parse_taint(spec: &str) -> Result<Value> {
    let (kv, effect) = spec
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("invalid taint spec: {spec}"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        bail!("invalid taint effect: {effect}, unsupported taint effect");
    }
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    let mut taint = json!({"key": key, "effect": effect});
    if !value.is_empty() {
        taint["value"] = json!(value);
    }
    Ok(taint)
}

pub fn kubelet_flags(flags: Flags) -> Result<KubeletFlags> {
    let mut node_labels = Vec::new();
    let mut refused = Vec::new();
    for pair in flags.list("node-labels") {
        let (k, v) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
        if !kubelet_may_set_label(k) {
            refused.push(k.to_string());
        }
        node_labels.push((k.to_string(), v.to_string()));
    }
    if !refused.is_empty() {
        bail!(
            "failed to validate kubelet flags: unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: {refused:?}\n--node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix (kubelet.kubernetes.io, node.kubernetes.io) or be in the specifically allowed set (beta.kubernetes.io/arch, beta.kubernetes.io/instance-type, beta.kubernetes.io/os, failure-domain.beta.kubernetes.io/region, failure-domain.beta.kubernetes.io/zone, kubernetes.io/arch, kubernetes.io/hostname, kubernetes.io/os, node.kubernetes.io/instance-type, topology.kubernetes.io/region, topology.kubernetes.io/zone)"
        );
    }
    let register_with_taints = flags
        .list("register-with-taints")
        .iter()
        .map(|t| parse_taint(t))
        .collect::<Result<_>>()?;
    Ok(KubeletFlags {
        config: flags.non_empty("config").map(PathBuf::from),
        kubeconfig: flags.non_empty("kubeconfig").map(PathBuf::from),
        bootstrap_kubeconfig: flags.non_empty("bootstrap-kubeconfig").map(PathBuf::from),
        cert_dir: PathBuf::from(flags.string("cert-dir", "/var/lib/kubelet/pki")),
        hostname_override: flags.non_empty("hostname-override"),
        node_ip: flags.non_empty("node-ip"),
        node_labels,
        register_with_taints,
        provider_id: flags.non_empty("provider-id"),
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(minor: u32, args: &[&str]) -> Result<KubeletFlags> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        kubelet_flags(flag_table(minor).parse(&args)?)
    }

    #[test]
    fn kubeadm_flags_parse_and_removed_flags_fail_on_newer_kubelets() {
        let args = [
            "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config=/var/lib/kubelet/config.yaml",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10.1",
            "--node-labels=node.kubernetes.io/role=x",
        ];
        let f = parse(34, &args).unwrap();
        assert_eq!(
            f.kubeconfig.unwrap(),
            PathBuf::from("/etc/kubernetes/kubelet.conf")
        );
        assert!(
            parse(35, &args)
                .unwrap_err()
                .to_string()
                .contains("unknown flag: --pod-infra-container-image")
        );
    }

    #[test]
    fn node_role_labels_and_bad_taints_are_refused() {
        assert!(
            parse(
                34,
                &["--node-labels=node-role.kubernetes.io/control-plane="]
            )
            .unwrap_err()
            .to_string()
            .contains("unknown 'kubernetes.io'")
        );
        assert!(parse(34, &["--register-with-taints=a=b:Sometimes"]).is_err());
        let f = parse(
            34,
            &["--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule"],
        )
        .unwrap();
        assert_eq!(
            f.register_with_taints[0],
            json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
        );
    }
}
