//! kube-controller-manager's command line (the real v1.34 flag set) and its --controllers list.

use anyhow::{Result, bail};

use crate::common::flags::{COMMON_BOOL_FLAGS, COMMON_VALUE_FLAGS, FlagTable, leak_concat};

const VALUE_FLAGS: &[&str] = &[
    "allow-metric-labels",
    "allow-metric-labels-manifest",
    "attach-detach-reconcile-sync-period",
    "authentication-kubeconfig",
    "authentication-token-webhook-cache-ttl",
    "authorization-always-allow-paths",
    "authorization-kubeconfig",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "bind-address",
    "cert-dir",
    "cidr-allocator-type",
    "client-ca-file",
    "cloud-config",
    "cloud-provider",
    "cluster-cidr",
    "cluster-name",
    "cluster-signing-cert-file",
    "cluster-signing-duration",
    "cluster-signing-key-file",
    "cluster-signing-kube-apiserver-client-cert-file",
    "cluster-signing-kube-apiserver-client-key-file",
    "cluster-signing-kubelet-client-cert-file",
    "cluster-signing-kubelet-client-key-file",
    "cluster-signing-kubelet-serving-cert-file",
    "cluster-signing-kubelet-serving-key-file",
    "cluster-signing-legacy-unknown-cert-file",
    "cluster-signing-legacy-unknown-key-file",
    "concurrent-cron-job-syncs",
    "concurrent-daemonset-syncs",
    "concurrent-deployment-syncs",
    "concurrent-endpoint-syncs",
    "concurrent-ephemeralvolume-syncs",
    "concurrent-gc-syncs",
    "concurrent-horizontal-pod-autoscaler-syncs",
    "concurrent-job-syncs",
    "concurrent-namespace-syncs",
    "concurrent-rc-syncs",
    "concurrent-replicaset-syncs",
    "concurrent-resource-quota-syncs",
    "concurrent-service-endpoint-syncs",
    "concurrent-service-syncs",
    "concurrent-serviceaccount-token-syncs",
    "concurrent-statefulset-syncs",
    "concurrent-ttl-after-finished-syncs",
    "concurrent-validating-admission-policy-status-syncs",
    "controller-start-interval",
    "controllers",
    "disabled-metrics",
    "emulated-version",
    "endpoint-updates-batch-period",
    "endpointslice-updates-batch-period",
    "external-cloud-volume-plugin",
    "feature-gates",
    "flex-volume-plugin-dir",
    "horizontal-pod-autoscaler-cpu-initialization-period",
    "horizontal-pod-autoscaler-downscale-stabilization",
    "horizontal-pod-autoscaler-initial-readiness-delay",
    "horizontal-pod-autoscaler-sync-period",
    "horizontal-pod-autoscaler-tolerance",
    "http2-max-streams-per-connection",
    "kube-api-burst",
    "kube-api-content-type",
    "kube-api-qps",
    "kubeconfig",
    "large-cluster-size-threshold",
    "leader-elect-lease-duration",
    "leader-elect-renew-deadline",
    "leader-elect-resource-lock",
    "leader-elect-resource-name",
    "leader-elect-resource-namespace",
    "leader-elect-retry-period",
    "leader-migration-config",
    "legacy-service-account-token-clean-up-period",
    "master",
    "max-endpoints-per-slice",
    "min-resync-period",
    "mirroring-concurrent-service-endpoint-syncs",
    "mirroring-endpointslice-updates-batch-period",
    "mirroring-max-endpoints-per-subset",
    "namespace-sync-period",
    "node-cidr-mask-size",
    "node-cidr-mask-size-ipv4",
    "node-cidr-mask-size-ipv6",
    "node-eviction-rate",
    "node-monitor-grace-period",
    "node-monitor-period",
    "node-startup-grace-period",
    "pv-recycler-increment-timeout-nfs",
    "pv-recycler-minimum-timeout-hostpath",
    "pv-recycler-minimum-timeout-nfs",
    "pv-recycler-pod-template-filepath-hostpath",
    "pv-recycler-pod-template-filepath-nfs",
    "pv-recycler-timeout-increment-hostpath",
    "pvclaimbinder-sync-period",
    "requestheader-allowed-names",
    "requestheader-client-ca-file",
    "requestheader-extra-headers-prefix",
    "requestheader-group-headers",
    "requestheader-uid-headers",
    "requestheader-username-headers",
    "resource-quota-sync-period",
    "root-ca-file",
    "route-reconciliation-period",
    "secondary-node-eviction-rate",
    "secure-port",
    "service-account-private-key-file",
    "service-cluster-ip-range",
    "show-hidden-metrics-for-version",
    "terminated-pod-gc-threshold",
    "tls-cert-file",
    "tls-cipher-suites",
    "tls-min-version",
    "tls-private-key-file",
    "tls-sni-cert-key",
    "unhealthy-zone-threshold",
];

const BOOL_FLAGS: &[&str] = &[
    "allocate-node-cidrs",
    "authentication-skip-lookup",
    "authentication-tolerate-lookup-failure",
    "configure-cloud-routes",
    "contention-profiling",
    "disable-attach-detach-reconcile-sync",
    "disable-force-detach-on-timeout",
    "disable-http2-serving",
    "enable-dynamic-provisioning",
    "enable-garbage-collector",
    "enable-hostpath-provisioner",
    "enable-leader-migration",
    "leader-elect",
    "permit-address-sharing",
    "permit-port-sharing",
    "profiling",
    "use-service-account-credentials",
];

pub fn flag_table() -> FlagTable {
    FlagTable {
        component: "\"kube-controller-manager\"",
        value_flags: leak_concat(VALUE_FLAGS, COMMON_VALUE_FLAGS),
        bool_flags: leak_concat(BOOL_FLAGS, COMMON_BOOL_FLAGS),
        shorthands: &[('v', "v"), ('h', "help")],
    }
}

/// Canonical controller names of v1.34 and whether they are on with `*`.
const CONTROLLERS: &[(&str, bool)] = &[
    ("bootstrap-signer-controller", false),
    ("certificatesigningrequest-approving-controller", true),
    ("certificatesigningrequest-cleaner-controller", true),
    ("certificatesigningrequest-signing-controller", true),
    ("cloud-node-lifecycle-controller", true),
    ("clusterrole-aggregation-controller", true),
    ("cronjob-controller", true),
    ("daemonset-controller", true),
    ("deployment-controller", true),
    ("device-taint-eviction-controller", true),
    ("disruption-controller", true),
    ("endpoints-controller", true),
    ("endpointslice-controller", true),
    ("endpointslice-mirroring-controller", true),
    ("ephemeral-volume-controller", true),
    ("garbage-collector-controller", true),
    ("horizontal-pod-autoscaler-controller", true),
    ("job-controller", true),
    (
        "kube-apiserver-serving-clustertrustbundle-publisher-controller",
        true,
    ),
    ("legacy-serviceaccount-token-cleaner-controller", true),
    ("namespace-controller", true),
    ("node-ipam-controller", true),
    ("node-lifecycle-controller", true),
    ("node-route-controller", true),
    ("persistentvolume-attach-detach-controller", true),
    ("persistentvolume-binder-controller", true),
    ("persistentvolume-expander-controller", true),
    ("persistentvolume-protection-controller", true),
    ("persistentvolumeclaim-protection-controller", true),
    ("pod-garbage-collector-controller", true),
    ("podcertificaterequest-cleaner-controller", true),
    ("replicaset-controller", true),
    ("replicationcontroller-controller", true),
    ("resourceclaim-controller", true),
    ("resourcequota-controller", true),
    ("root-ca-certificate-publisher-controller", true),
    ("selinux-warning-controller", false),
    ("service-cidr-controller", true),
    ("service-lb-controller", true),
    ("serviceaccount-controller", true),
    ("serviceaccount-token-controller", true),
    ("statefulset-controller", true),
    ("storage-version-migrator-controller", true),
    ("storageversion-garbage-collector-controller", true),
    ("taint-eviction-controller", true),
    ("token-cleaner-controller", false),
    ("ttl-after-finished-controller", true),
    ("ttl-controller", true),
    ("validatingadmissionpolicy-status-controller", true),
    ("volumeattributesclass-protection-controller", true),
];

/// The names older releases used, still accepted as aliases.
const ALIASES: &[(&str, &str)] = &[
    ("attachdetach", "persistentvolume-attach-detach-controller"),
    ("bootstrapsigner", "bootstrap-signer-controller"),
    ("cloud-node-lifecycle", "cloud-node-lifecycle-controller"),
    (
        "clusterrole-aggregation",
        "clusterrole-aggregation-controller",
    ),
    ("cronjob", "cronjob-controller"),
    (
        "csrapproving",
        "certificatesigningrequest-approving-controller",
    ),
    ("csrcleaner", "certificatesigningrequest-cleaner-controller"),
    ("csrsigning", "certificatesigningrequest-signing-controller"),
    ("daemonset", "daemonset-controller"),
    ("deployment", "deployment-controller"),
    ("disruption", "disruption-controller"),
    ("endpoint", "endpoints-controller"),
    ("endpointslice", "endpointslice-controller"),
    (
        "endpointslicemirroring",
        "endpointslice-mirroring-controller",
    ),
    ("ephemeral-volume", "ephemeral-volume-controller"),
    ("garbagecollector", "garbage-collector-controller"),
    (
        "horizontalpodautoscaling",
        "horizontal-pod-autoscaler-controller",
    ),
    ("job", "job-controller"),
    (
        "legacy-service-account-token-cleaner",
        "legacy-serviceaccount-token-cleaner-controller",
    ),
    ("namespace", "namespace-controller"),
    ("nodeipam", "node-ipam-controller"),
    ("nodelifecycle", "node-lifecycle-controller"),
    (
        "persistentvolume-binder",
        "persistentvolume-binder-controller",
    ),
    (
        "persistentvolume-expander",
        "persistentvolume-expander-controller",
    ),
    ("podgc", "pod-garbage-collector-controller"),
    ("pv-protection", "persistentvolume-protection-controller"),
    (
        "pvc-protection",
        "persistentvolumeclaim-protection-controller",
    ),
    ("replicaset", "replicaset-controller"),
    ("replicationcontroller", "replicationcontroller-controller"),
    ("resourcequota", "resourcequota-controller"),
    (
        "root-ca-cert-publisher",
        "root-ca-certificate-publisher-controller",
    ),
    ("route", "node-route-controller"),
    ("service", "service-lb-controller"),
    ("serviceaccount", "serviceaccount-controller"),
    ("serviceaccount-token", "serviceaccount-token-controller"),
    ("statefulset", "statefulset-controller"),
    (
        "storage-version-gc",
        "storageversion-garbage-collector-controller",
    ),
    ("tokencleaner", "token-cleaner-controller"),
    ("ttl", "ttl-controller"),
    ("ttl-after-finished", "ttl-after-finished-controller"),
];

fn canonical(name: &str) -> Option<&'static str> {
    CONTROLLERS
        .iter()
        .find(|(c, _)| *c == name)
        .map(|(c, _)| *c)
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == name).map(|(_, c)| *c))
}

/// Resolves --controllers (`*`, `name`, `-name`) to the enabled canonical names.
pub fn enabled_controllers(list: &[String]) -> Result<Vec<&'static str>> {
    let list: Vec<String> = if list.is_empty() {
        vec!["*".into()]
    } else {
        list.to_vec()
    };
    let mut enabled = Vec::new();
    let star = list.iter().any(|c| c == "*");
    for entry in &list {
        if entry == "*" {
            continue;
        }
        let name = entry.trim_start_matches('-');
        if canonical(name).is_none() {
            bail!("{name:?} is not in the list of known controllers");
        }
    }
    for (name, default_on) in CONTROLLERS {
        let explicit = list.iter().find_map(|e| {
            let (negated, n) = match e.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, e.as_str()),
            };
            (canonical(n) == Some(*name)).then_some(!negated)
        });
        if explicit.unwrap_or(star && *default_on) {
            enabled.push(*name);
        }
    }
    Ok(enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_controllers_list_enables_the_bootstrap_controllers() {
        let enabled =
            enabled_controllers(&["*".into(), "bootstrapsigner".into(), "tokencleaner".into()])
                .unwrap();
        assert!(enabled.contains(&"bootstrap-signer-controller"));
        assert!(enabled.contains(&"token-cleaner-controller"));
        assert!(enabled.contains(&"certificatesigningrequest-approving-controller"));
        let default = enabled_controllers(&["*".into()]).unwrap();
        assert!(!default.contains(&"bootstrap-signer-controller"));
        let off = enabled_controllers(&["*".into(), "-csrapproving".into()]).unwrap();
        assert!(!off.contains(&"certificatesigningrequest-approving-controller"));
        assert!(enabled_controllers(&["*".into(), "bootstrap-signer".into()]).is_err());
    }
}
