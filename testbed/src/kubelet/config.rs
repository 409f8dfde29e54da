//! `/var/lib/kubelet/config.yaml` read as the kubelet reads it: KubeletConfiguration
//! (kubelet.config.k8s.io/v1beta1), typed decoding (a wrongly typed field fails, an unknown one is a
//! warning as with the kubelet's lenient fallback), the kubelet's defaults, validation, and the
//! deprecated flags that override it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::flags::KubeletFlags;
use crate::logf;

#[derive(Clone, Copy, PartialEq)]
enum T {
    Str,
    Bool,
    Int,
    Num,
    Dur,
    List,
    Map,
    Obj,
}

/// Top-level KubeletConfiguration v1beta1 fields and their JSON types.
const FIELDS: &[(&str, T)] = &[
    ("apiVersion", T::Str),
    ("kind", T::Str),
    ("enableServer", T::Bool),
    ("staticPodPath", T::Str),
    ("podLogsDir", T::Str),
    ("syncFrequency", T::Dur),
    ("fileCheckFrequency", T::Dur),
    ("httpCheckFrequency", T::Dur),
    ("staticPodURL", T::Str),
    ("staticPodURLHeader", T::Map),
    ("address", T::Str),
    ("port", T::Int),
    ("readOnlyPort", T::Int),
    ("tlsCertFile", T::Str),
    ("tlsPrivateKeyFile", T::Str),
    ("tlsCipherSuites", T::List),
    ("tlsMinVersion", T::Str),
    ("rotateCertificates", T::Bool),
    ("serverTLSBootstrap", T::Bool),
    ("authentication", T::Obj),
    ("authorization", T::Obj),
    ("registryPullQPS", T::Int),
    ("registryBurst", T::Int),
    ("imagePullCredentialsVerificationPolicy", T::Str),
    ("preloadedImagesVerificationAllowlist", T::List),
    ("eventRecordQPS", T::Int),
    ("eventBurst", T::Int),
    ("enableDebuggingHandlers", T::Bool),
    ("enableContentionProfiling", T::Bool),
    ("healthzPort", T::Int),
    ("healthzBindAddress", T::Str),
    ("oomScoreAdj", T::Int),
    ("clusterDomain", T::Str),
    ("clusterDNS", T::List),
    ("streamingConnectionIdleTimeout", T::Dur),
    ("nodeStatusUpdateFrequency", T::Dur),
    ("nodeStatusReportFrequency", T::Dur),
    ("nodeLeaseDurationSeconds", T::Int),
    ("imageMinimumGCAge", T::Dur),
    ("imageMaximumGCAge", T::Dur),
    ("imageGCHighThresholdPercent", T::Int),
    ("imageGCLowThresholdPercent", T::Int),
    ("volumeStatsAggPeriod", T::Dur),
    ("kubeletCgroups", T::Str),
    ("systemCgroups", T::Str),
    ("cgroupRoot", T::Str),
    ("cgroupsPerQOS", T::Bool),
    ("cgroupDriver", T::Str),
    ("cpuManagerPolicy", T::Str),
    ("singleProcessOOMKill", T::Bool),
    ("cpuManagerPolicyOptions", T::Map),
    ("cpuManagerReconcilePeriod", T::Dur),
    ("memoryManagerPolicy", T::Str),
    ("topologyManagerPolicy", T::Str),
    ("topologyManagerScope", T::Str),
    ("topologyManagerPolicyOptions", T::Map),
    ("qosReserved", T::Map),
    ("runtimeRequestTimeout", T::Dur),
    ("hairpinMode", T::Str),
    ("maxPods", T::Int),
    ("podCIDR", T::Str),
    ("podPidsLimit", T::Int),
    ("resolvConf", T::Str),
    ("runOnce", T::Bool),
    ("cpuCFSQuota", T::Bool),
    ("cpuCFSQuotaPeriod", T::Dur),
    ("nodeStatusMaxImages", T::Int),
    ("maxOpenFiles", T::Int),
    ("contentType", T::Str),
    ("kubeAPIQPS", T::Int),
    ("kubeAPIBurst", T::Int),
    ("serializeImagePulls", T::Bool),
    ("maxParallelImagePulls", T::Int),
    ("evictionHard", T::Map),
    ("evictionSoft", T::Map),
    ("evictionSoftGracePeriod", T::Map),
    ("evictionPressureTransitionPeriod", T::Dur),
    ("evictionMaxPodGracePeriod", T::Int),
    ("evictionMinimumReclaim", T::Map),
    ("mergeDefaultEvictionSettings", T::Bool),
    ("podsPerCore", T::Int),
    ("enableControllerAttachDetach", T::Bool),
    ("protectKernelDefaults", T::Bool),
    ("makeIPTablesUtilChains", T::Bool),
    ("iptablesMasqueradeBit", T::Int),
    ("iptablesDropBit", T::Int),
    ("featureGates", T::Map),
    ("failSwapOn", T::Bool),
    ("memorySwap", T::Obj),
    ("containerLogMaxSize", T::Str),
    ("containerLogMaxFiles", T::Int),
    ("containerLogMaxWorkers", T::Int),
    ("containerLogMonitorInterval", T::Dur),
    ("configMapAndSecretChangeDetectionStrategy", T::Str),
    ("systemReserved", T::Map),
    ("kubeReserved", T::Map),
    ("reservedSystemCPUs", T::Str),
    ("showHiddenMetricsForVersion", T::Str),
    ("systemReservedCgroup", T::Str),
    ("kubeReservedCgroup", T::Str),
    ("enforceNodeAllocatable", T::List),
    ("allowedUnsafeSysctls", T::List),
    ("volumePluginDir", T::Str),
    ("providerID", T::Str),
    ("kernelMemcgNotification", T::Bool),
    ("logging", T::Obj),
    ("enableSystemLogHandler", T::Bool),
    ("enableSystemLogQuery", T::Bool),
    ("shutdownGracePeriod", T::Dur),
    ("shutdownGracePeriodCriticalPods", T::Dur),
    ("shutdownGracePeriodByPodPriority", T::List),
    ("crashLoopBackOff", T::Obj),
    ("reservedMemory", T::List),
    ("enableProfilingHandler", T::Bool),
    ("enableDebugFlagsHandler", T::Bool),
    ("seccompDefault", T::Bool),
    ("memoryThrottlingFactor", T::Num),
    ("registerWithTaints", T::List),
    ("registerNode", T::Bool),
    ("tracing", T::Obj),
    ("localStorageCapacityIsolation", T::Bool),
    ("containerRuntimeEndpoint", T::Str),
    ("imageServiceEndpoint", T::Str),
    ("failCgroupV1", T::Bool),
    ("userNamespaces", T::Obj),
];

/// Kubernetes feature gates the kubelet of v1.34 knows (its --feature-gates list).
const FEATURE_GATES: &[&str] = &[
    "APIResponseCompression",
    "APIServerIdentity",
    "APIServingWithRoutine",
    "AllAlpha",
    "AllBeta",
    "AllowParsingUserUIDFromCertAuth",
    "AllowUnsafeMalformedObjectDeletion",
    "CBORServingAndStorage",
    "CPUManagerPolicyAlphaOptions",
    "CPUManagerPolicyBetaOptions",
    "CSIVolumeHealth",
    "ClearingNominatedNodeNameAfterBinding",
    "ClientsAllowCBOR",
    "ClientsPreferCBOR",
    "CloudControllerManagerWebhook",
    "ClusterTrustBundle",
    "ClusterTrustBundleProjection",
    "ComponentFlagz",
    "ComponentStatusz",
    "ConcurrentWatchObjectDecode",
    "ContainerCheckpoint",
    "ContainerRestartRules",
    "ContainerStopSignals",
    "ContextualLogging",
    "CoordinatedLeaderElection",
    "CrossNamespaceVolumeDataSource",
    "CustomCPUCFSQuotaPeriod",
    "DRAAdminAccess",
    "DRAConsumableCapacity",
    "DRADeviceBindingConditions",
    "DRADeviceTaints",
    "DRAExtendedResource",
    "DRAPartitionableDevices",
    "DRAPrioritizedList",
    "DRAResourceClaimDeviceStatus",
    "DRASchedulerFilterTimeout",
    "DeclarativeValidation",
    "DeclarativeValidationTakeover",
    "DeploymentReplicaSetTerminatingReplicas",
    "DetectCacheInconsistency",
    "DisableCPUQuotaWithExclusiveCPUs",
    "EnvFiles",
    "EventedPLEG",
    "ExternalServiceAccountTokenSigner",
    "GracefulNodeShutdown",
    "GracefulNodeShutdownBasedOnPodPriority",
    "HPAConfigurableTolerance",
    "HPAScaleToZero",
    "HostnameOverride",
    "ImageMaximumGCAge",
    "ImageVolume",
    "InOrderInformers",
    "InPlacePodVerticalScaling",
    "InPlacePodVerticalScalingExclusiveCPUs",
    "InPlacePodVerticalScalingExclusiveMemory",
    "InTreePluginPortworxUnregister",
    "InformerResourceVersion",
    "JobManagedBy",
    "KubeletCrashLoopBackOffMax",
    "KubeletEnsureSecretPulledImages",
    "KubeletFineGrainedAuthz",
    "KubeletInUserNamespace",
    "KubeletPSI",
    "KubeletPodResourcesDynamicResources",
    "KubeletPodResourcesGet",
    "KubeletSeparateDiskGC",
    "KubeletServiceAccountTokenForCredentialProviders",
    "ListFromCacheSnapshot",
    "LocalStorageCapacityIsolationFSQuotaMonitoring",
    "LoggingAlphaOptions",
    "LoggingBetaOptions",
    "MatchLabelKeysInPodTopologySpread",
    "MatchLabelKeysInPodTopologySpreadSelectorMerge",
    "MaxUnavailableStatefulSet",
    "MemoryQoS",
    "MutableCSINodeAllocatableCount",
    "MutatingAdmissionPolicy",
    "NodeLogQuery",
    "NominatedNodeNameForExpectation",
    "OpenAPIEnums",
    "PodAndContainerStatsFromCRI",
    "PodCertificateRequest",
    "PodDeletionCost",
    "PodLevelResources",
    "PodLogsQuerySplitStreams",
    "PodObservedGenerationTracking",
    "PodReadyToStartContainersCondition",
    "PodTopologyLabelsAdmission",
    "PortForwardWebsockets",
    "PreferSameTrafficDistribution",
    "PreventStaticPodAPIReferences",
    "ProcMountType",
    "QOSReserved",
    "ReduceDefaultCrashLoopBackOffDecay",
    "RelaxedServiceNameValidation",
    "ReloadKubeletServerCertificateFile",
    "RemoteRequestHeaderUID",
    "ResourceHealthStatus",
    "RotateKubeletServerCertificate",
    "RuntimeClassInImageCriApi",
    "SELinuxChangePolicy",
    "SELinuxMount",
    "SELinuxMountReadWriteOncePod",
    "SchedulerAsyncAPICalls",
    "SchedulerAsyncPreemption",
    "SchedulerPopFromBackoffQ",
    "ServiceAccountNodeAudienceRestriction",
    "SizeBasedListCostEstimate",
    "StorageCapacityScoring",
    "StorageVersionAPI",
    "StorageVersionHash",
    "StorageVersionMigrator",
    "StrictIPCIDRValidation",
    "StructuredAuthenticationConfigurationEgressSelector",
    "SupplementalGroupsPolicy",
    "SystemdWatchdog",
    "TokenRequestServiceAccountUIDValidation",
    "TopologyManagerPolicyAlphaOptions",
    "TopologyManagerPolicyBetaOptions",
    "TranslateStreamCloseWebsocketRequests",
    "UnauthenticatedHTTP2DOSMitigation",
    "UnknownVersionInteroperabilityProxy",
    "UserNamespacesPodSecurityStandards",
    "UserNamespacesSupport",
    "WatchCacheInitializationPostStartHook",
    "WatchList",
    "WatchListClient",
    "WindowsCPUAndMemoryAffinity",
    "WindowsGracefulNodeShutdown",
];

/// The configuration the double runs with.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub static_pod_path: Option<PathBuf>,
    pub file_check_frequency: Duration,
    pub healthz_address: IpAddr,
    pub healthz_port: u16,
    pub address: IpAddr,
    pub port: u16,
    pub client_ca_file: Option<PathBuf>,
    pub anonymous_auth: bool,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub node_status_update_frequency: Duration,
    pub node_lease_duration_seconds: i64,
    pub register_node: bool,
    pub register_with_taints: Vec<Value>,
    pub max_pods: i64,
    pub container_runtime_endpoint: String,
    pub cgroup_driver: String,
    pub provider_id: Option<String>,
    /// `rotateCertificates` (`--rotate-certificates`): the client certificate lives in the cert
    /// dir's rotating store.
    pub rotate_certificates: bool,
}

fn type_name(t: T) -> &'static str {
    match t {
        T::Str => "string",
        T::Bool => "bool",
        T::Int => "int32",
        T::Num => "float64",
        T::Dur => "v1.Duration",
        T::List => "[]string",
        T::Map => "map[string]string",
        T::Obj => "struct",
    }
}

fn type_ok(t: T, v: &Value) -> bool {
    match t {
        T::Str => v.is_string(),
        T::Bool => v.is_boolean(),
        T::Int => v.as_i64().is_some(),
        T::Num => v.is_number(),
        T::Dur => v
            .as_str()
            .is_some_and(|s| s.parse::<kubestrap::config::duration::GoDuration>().is_ok()),
        T::List => v.is_array(),
        T::Map | T::Obj => v.is_object(),
    }
}

fn duration(doc: &Value, field: &str, default: Duration) -> Duration {
    doc[field]
        .as_str()
        .and_then(|s| s.parse::<kubestrap::config::duration::GoDuration>().ok())
        .map(|d| d.as_duration())
        .unwrap_or(default)
}

/// Reads, decodes, defaults and validates the config file, then applies flag overrides.
pub fn load(
    path: Option<&Path>,
    flags: &KubeletFlags,
    version_minor: u32,
    cgroup_v1: bool,
) -> Result<KubeletConfig> {
    let doc: Value = match path {
        None => serde_json::json!({}),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("failed to load kubelet config file, path: {}, error: failed to load Kubelet config file {}, error failed to read kubelet config file \"{}\", error: open {}: no such file or directory", path.display(), path.display(), path.display(), path.display())
            })?;
            let doc: Value = serde_saphyr::from_str(&text).with_context(|| {
                format!(
                    "failed to load kubelet config file, path: {}, error: failed to decode",
                    path.display()
                )
            })?;
            if doc["kind"].as_str() != Some("KubeletConfiguration")
                || doc["apiVersion"].as_str() != Some("kubelet.config.k8s.io/v1beta1")
            {
                bail!(
                    "failed to load kubelet config file, path: {}, error: failed to decode: no kind {:?} is registered for version {:?} in scheme",
                    path.display(),
                    doc["kind"].as_str().unwrap_or_default(),
                    doc["apiVersion"].as_str().unwrap_or_default()
                );
            }
            doc
        }
    };
    decode_check(&doc)?;
    let mut errors = validate(&doc);
    let f = &flags.flags;
    let ip = |s: &str| s.parse::<IpAddr>().ok();
    let cgroup_driver = f
        .non_empty("cgroup-driver")
        .or_else(|| doc["cgroupDriver"].as_str().map(str::to_string))
        .unwrap_or_else(|| "cgroupfs".into());
    let fail_cgroup_v1 = match f.get("fail-cgroupv1") {
        Some(v) => crate::common::flags::parse_bool(v).unwrap_or(false),
        None => doc["failCgroupV1"].as_bool().unwrap_or(version_minor >= 35),
    };
    if fail_cgroup_v1 && cgroup_v1 {
        errors.push("kubelet is configured to not run on a host using cgroup v1. cgroup v1 support is unsupported and will be removed in a future release".into());
    }
    if !errors.is_empty() {
        bail!(
            "failed to validate kubelet configuration, error: [{}]",
            errors.join(", ")
        );
    }
    let mut cluster_dns: Vec<IpAddr> = doc["clusterDNS"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().and_then(ip))
        .collect();
    if f.has("cluster-dns") {
        cluster_dns = f.list("cluster-dns").iter().filter_map(|s| ip(s)).collect();
    }
    let mut taints: Vec<Value> = doc["registerWithTaints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !flags.register_with_taints.is_empty() {
        taints = flags.register_with_taints.clone();
    }
    let config = KubeletConfig {
        static_pod_path: f
            .non_empty("pod-manifest-path")
            .or_else(|| doc["staticPodPath"].as_str().map(str::to_string))
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        file_check_frequency: duration(&doc, "fileCheckFrequency", Duration::from_secs(20)),
        healthz_address: f
            .non_empty("healthz-bind-address")
            .as_deref()
            .or(doc["healthzBindAddress"].as_str())
            .and_then(ip)
            .unwrap_or(IpAddr::from([127, 0, 0, 1])),
        healthz_port: f.port(
            "healthz-port",
            doc["healthzPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(10248),
        )?,
        address: f
            .non_empty("address")
            .as_deref()
            .or(doc["address"].as_str())
            .and_then(ip)
            .unwrap_or(IpAddr::from([0, 0, 0, 0])),
        port: f.port(
            "port",
            doc["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(10250),
        )?,
        client_ca_file: f
            .non_empty("client-ca-file")
            .or_else(|| {
                doc["authentication"]["x509"]["clientCAFile"]
                    .as_str()
                    .map(str::to_string)
            })
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        anonymous_auth: doc["authentication"]["anonymous"]["enabled"]
            .as_bool()
            .unwrap_or(false),
        tls_cert_file: doc["tlsCertFile"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        tls_key_file: doc["tlsPrivateKeyFile"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        cluster_dns,
        cluster_domain: f
            .non_empty("cluster-domain")
            .or_else(|| doc["clusterDomain"].as_str().map(str::to_string))
            .unwrap_or_default(),
        node_status_update_frequency: duration(
            &doc,
            "nodeStatusUpdateFrequency",
            Duration::from_secs(10),
        ),
        node_lease_duration_seconds: doc["nodeLeaseDurationSeconds"].as_i64().unwrap_or(40),
        register_node: f.bool(
            "register-node",
            doc["registerNode"].as_bool().unwrap_or(true),
        )?,
        register_with_taints: taints,
        max_pods: f.int("max-pods", doc["maxPods"].as_i64().unwrap_or(110))?,
        container_runtime_endpoint: f
            .non_empty("container-runtime-endpoint")
            .or_else(|| doc["containerRuntimeEndpoint"].as_str().map(str::to_string))
            .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into()),
        cgroup_driver,
        provider_id: flags
            .provider_id
            .clone()
            .or_else(|| doc["providerID"].as_str().map(str::to_string)),
        rotate_certificates: f.bool(
            "rotate-certificates",
            doc["rotateCertificates"].as_bool().unwrap_or(false),
        )?,
    };
    Ok(config)
}

/// Typed decoding: wrong types fail as Go's json decoding does; unknown fields are logged.
fn decode_check(doc: &Value) -> Result<()> {
    let Some(map) = doc.as_object() else {
        bail!("failed to decode: the config file is not a YAML mapping");
    };
    for (key, value) in map {
        match FIELDS.iter().find(|(name, _)| name == key) {
            None => logf!(
                "kubelet",
                "Using lenient decoding as strict decoding failed: strict decoding error: unknown field {key:?}"
            ),
            Some((_, t)) if !value.is_null() && !type_ok(*t, value) => bail!(
                "failed to decode: json: cannot unmarshal {} into Go struct field KubeletConfiguration.{key} of type {}",
                json_kind(value),
                type_name(*t)
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

/// The checks of the kubelet's ValidateKubeletConfiguration that a generated config can get wrong.
fn validate(doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let int = |f: &str| doc[f].as_i64();
    if let Some(d) = doc["cgroupDriver"].as_str()
        && !d.is_empty()
        && d != "cgroupfs"
        && d != "systemd"
    {
        errors.push(format!("invalid configuration: cgroupDriver (--cgroup-driver) {d:?} must be one of \"cgroupfs\" or \"systemd\""));
    }
    for (field, flag, min) in [
        ("healthzPort", "healthz-port", 0),
        ("port", "port", 1),
        ("readOnlyPort", "read-only-port", 0),
    ] {
        if let Some(p) = int(field)
            && (p < min || p > 65535)
        {
            errors.push(format!("invalid configuration: {field} (--{flag}) {p} must be between {min} and 65535, inclusive"));
        }
    }
    let high = int("imageGCHighThresholdPercent").unwrap_or(85);
    let low = int("imageGCLowThresholdPercent").unwrap_or(80);
    if !(0..=100).contains(&high) {
        errors.push(format!("invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) {high} must be between 0 and 100, inclusive"));
    }
    if !(0..=100).contains(&low) {
        errors.push(format!("invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be between 0 and 100, inclusive"));
    }
    if low >= high {
        errors.push(format!("invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {high}"));
    }
    if int("nodeLeaseDurationSeconds").is_some_and(|v| v <= 0) {
        errors
            .push("invalid configuration: nodeLeaseDurationSeconds must be greater than 0".into());
    }
    if int("maxPods").is_some_and(|v| v < 0) {
        errors.push(
            "invalid configuration: maxPods (--max-pods) must not be a negative number".into(),
        );
    }
    for dns in doc["clusterDNS"].as_array().into_iter().flatten() {
        if dns
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .is_none()
        {
            errors.push(format!(
                "invalid configuration: clusterDNS ({dns}) must be a valid IP address"
            ));
        }
    }
    if let Some(mode) = doc["authorization"]["mode"].as_str()
        && mode != "AlwaysAllow"
        && mode != "Webhook"
    {
        errors.push(format!("invalid configuration: authorization.mode {mode:?}: must be one of AlwaysAllow or Webhook"));
    }
    if let Some(h) = doc["hairpinMode"].as_str()
        && !matches!(h, "promiscuous-bridge" | "hairpin-veth" | "none")
    {
        errors.push(format!("invalid configuration: option {h:?} specified for hairpinMode (--hairpin-mode). Valid options are \"promiscuous-bridge\", \"hairpin-veth\" or \"none\""));
    }
    if let Some(b) = doc["memorySwap"]["swapBehavior"].as_str()
        && !matches!(b, "" | "NoSwap" | "LimitedSwap")
    {
        errors.push(format!("invalid configuration: memorySwap.swapBehavior {b:?} must be one of: \"\", \"LimitedSwap\" or \"NoSwap\""));
    }
    for (gate, value) in doc["featureGates"].as_object().into_iter().flatten() {
        if !FEATURE_GATES.contains(&gate.as_str()) {
            errors.push(format!("unrecognized feature gate: {gate}"));
        } else if !value.is_boolean() {
            errors.push(format!(
                "invalid value of {gate}: {value}, err: must be a boolean"
            ));
        }
    }
    for (i, taint) in doc["registerWithTaints"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !matches!(
            taint["effect"].as_str(),
            Some("NoSchedule" | "PreferNoSchedule" | "NoExecute")
        ) {
            errors.push(format!(
                "invalid configuration: registerWithTaints[{i}].effect: Unsupported value: {}",
                taint["effect"]
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::flags;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    fn no_flags() -> KubeletFlags {
        flags::kubelet_flags(flags::flag_table(34).parse(&[]).unwrap()).unwrap()
    }

    const KUBEADM: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthentication:\n  anonymous: {enabled: false}\n  webhook: {cacheTTL: 0s, enabled: true}\n  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}\nauthorization: {mode: Webhook}\ncgroupDriver: systemd\nclusterDNS: [10.96.0.10]\nclusterDomain: cluster.local\nhealthzBindAddress: 127.0.0.1\nhealthzPort: 10248\nrotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\nmemorySwap: {}\n";

    #[test]
    fn kubeadm_config_loads() {
        let (_d, p) = write(KUBEADM);
        let c = load(Some(&p), &no_flags(), 34, true).unwrap();
        assert_eq!(
            c.static_pod_path.unwrap(),
            PathBuf::from("/etc/kubernetes/manifests")
        );
        assert_eq!(c.cluster_dns, vec!["10.96.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.healthz_port, 10248);
    }

    #[test]
    fn bad_values_fail_like_the_kubelet() {
        let (_d, p) = write(&KUBEADM.replace("cgroupDriver: systemd", "cgroupDriver: docker"));
        assert!(
            load(Some(&p), &no_flags(), 34, false)
                .unwrap_err()
                .to_string()
                .contains("cgroupDriver")
        );
        let (_d, p) = write(&KUBEADM.replace("healthzPort: 10248", "healthzPort: \"10248\""));
        assert!(
            load(Some(&p), &no_flags(), 34, false)
                .unwrap_err()
                .to_string()
                .contains("cannot unmarshal string")
        );
        let (_d, p) = write(&KUBEADM.replace("kind: KubeletConfiguration", "kind: KubeletConfig"));
        assert!(load(Some(&p), &no_flags(), 34, false).is_err());
        let (_d, p) = write(KUBEADM);
        assert!(
            load(Some(&p), &no_flags(), 35, true)
                .unwrap_err()
                .to_string()
                .contains("cgroup v1"),
            "1.35 refuses cgroup v1 by default"
        );
        assert!(
            load(
                Some(Path::new("/nonexistent/config.yaml")),
                &no_flags(),
                34,
                false
            )
            .is_err()
        );
    }
}
