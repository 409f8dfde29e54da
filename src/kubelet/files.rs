//! The kubelet's node-local files, rendered from the model: `/var/lib/kubelet/config.yaml` (kubeadm's
//! KubeletConfiguration defaults under the user's KubeletConfiguration document, the chosen cgroup
//! driver, the instance settings and `--patches` target `kubeletconfiguration`),
//! `/var/lib/kubelet/instance-config.yaml` (NodeLocalCRISocket), `/var/lib/kubelet/kubeadm-flags.env`,
//! and the systemd drop-in `/etc/systemd/system/kubelet.service.d/10-kubeadm.conf` under kubeadm's
//! name, so a kubeadm-packaged host and kubestrap agree on what starts the kubelet.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::types::Arg;
use crate::model::Model;
use crate::output::Ui;
use crate::patches::{PatchSet, Schema};

pub const CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const INSTANCE_CONFIG: &str = "/var/lib/kubelet/instance-config.yaml";
pub const FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
pub const DROP_IN: &str = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf";
pub const KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
pub const BOOTSTRAP_KUBECONFIG: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// The patch target of the KubeletConfiguration (kubeadm's name).
pub const PATCH_TARGET: &str = "kubeletconfiguration";
/// systemd-resolved's resolv.conf with the real upstream servers (the stub's 127.0.0.53 is useless in pods).
pub const RESOLVED_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// The first Kubernetes minor where kubeadm writes the CRI socket to instance-config.yaml instead of
/// a kubelet flag (NodeLocalCRISocket, beta and on by default in 1.34).
const NODE_LOCAL_CRI_SOCKET_SINCE_MINOR: u32 = 34;
/// The last kubelet minor that accepts `--pod-infra-container-image` (removed in 1.35).
const POD_INFRA_FLAG_UNTIL_MINOR: u32 = 34;

/// Facts about this host the files depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSettings {
    /// The cgroup driver chosen for the kubelet (see [`super::cgroup::choose`]).
    pub cgroup_driver: String,
    /// systemd-resolved is active: pods get its upstream resolv.conf.
    pub systemd_resolved: bool,
    /// The OS hostname, lowercased (`--hostname-override` when the node name differs).
    pub hostname: Option<String>,
    /// The kubelet binary the drop-in starts.
    pub kubelet_path: String,
}

/// The rendered files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletFiles {
    pub config: String,
    /// `None` without NodeLocalCRISocket (the socket is then a flag).
    pub instance_config: Option<String>,
    pub flags_env: String,
    pub drop_in: String,
}

/// Whether the CRI socket goes to instance-config.yaml (the feature gate, else on from 1.34).
pub fn node_local_cri_socket(model: &Model) -> bool {
    model
        .cluster
        .feature_gates
        .get("NodeLocalCRISocket")
        .copied()
        .unwrap_or(model.cluster.kubernetes_version.minor >= NODE_LOCAL_CRI_SOCKET_SINCE_MINOR)
}

/// kubeadm's defaults of the cluster-wide KubeletConfiguration.
fn kubeadm_defaults(model: &Model, host: &HostSettings) -> Value {
    let cluster = &model.cluster;
    let cert_dir = cluster.certificates.dir.display_str();
    let mut doc = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"cacheTTL": "0s", "enabled": true},
            "x509": {"clientCAFile": format!("{cert_dir}/ca.crt")},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"},
        },
        "cgroupDriver": host.cgroup_driver,
        "clusterDNS": cluster.networking.dns_service_ips().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "clusterDomain": cluster.networking.dns_domain,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "memorySwap": {},
        "rotateCertificates": true,
        "staticPodPath": crate::host::well_known::MANIFESTS_DIR,
    });
    if host.systemd_resolved {
        doc["resolvConf"] = json!(RESOLVED_RESOLV_CONF);
    }
    doc
}

/// `base` with `over` laid on top: maps merge key by key, anything else is replaced.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// The KubeletConfiguration of `config.yaml` as a value.
pub fn kubelet_configuration(
    model: &Model,
    host: &HostSettings,
    patches: Option<&PatchSet>,
    ui: &Ui,
) -> anyhow::Result<Value> {
    let mut doc = kubeadm_defaults(model, host);
    if let Some(given) = &model.cluster.kubelet.configuration {
        merge(&mut doc, given);
    }
    doc["cgroupDriver"] = json!(host.cgroup_driver);
    if let Some(instance) = instance_configuration(model) {
        merge(&mut doc, &instance);
    }
    if let Some(patches) = patches {
        patches.apply(PATCH_TARGET, &mut doc, Schema::Generic, ui)?;
    }
    Ok(doc)
}

/// The node-specific part (NodeLocalCRISocket): `containerRuntimeEndpoint`.
fn instance_configuration(model: &Model) -> Option<Value> {
    node_local_cri_socket(model).then(|| {
        json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": model.node.cri_socket,
        })
    })
}

/// How the Node gets its `nodeRegistration.taints` (kubeadm's `registerTaintsUsingFlags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taints {
    /// init: the mark-control-plane phase sets them through the API.
    ByApi,
    /// join: the kubelet registers the Node with them (`--register-with-taints`).
    ByKubelet,
}

/// kubelet's `--register-with-taints` value: `key=value:Effect` or `key:Effect`, comma-separated.
pub fn register_with_taints(taints: &[crate::config::types::Taint]) -> String {
    taints
        .iter()
        .map(|t| match t.value.as_deref() {
            Some(value) if !value.is_empty() => format!("{}={value}:{}", t.key, t.effect),
            _ => format!("{}:{}", t.key, t.effect),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The kubelet flags kubeadm passes through kubeadm-flags.env (with join's `--register-with-taints`),
/// then `kubeletExtraArgs` (which win).
pub fn kubelet_flags(
    model: &Model,
    host: &HostSettings,
    taints: Taints,
) -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    if taints == Taints::ByKubelet && !model.node.taints.is_empty() {
        flags.insert(
            "register-with-taints".to_string(),
            register_with_taints(&model.node.taints),
        );
    }
    if !node_local_cri_socket(model) {
        flags.insert(
            "container-runtime-endpoint".to_string(),
            model.node.cri_socket.clone(),
        );
    }
    if model.cluster.kubernetes_version.minor <= POD_INFRA_FLAG_UNTIL_MINOR {
        flags.insert(
            "pod-infra-container-image".to_string(),
            model.cluster.pause_image.to_string(),
        );
    }
    if host
        .hostname
        .as_deref()
        .is_some_and(|h| h != model.node.name)
    {
        flags.insert("hostname-override".to_string(), model.node.name.clone());
    }
    for Arg { name, value } in &model.node.kubelet_extra_args {
        flags.insert(name.clone(), value.clone());
    }
    flags
}

/// `KUBELET_KUBEADM_ARGS="--a=b --c=d"`.
pub fn flags_env(flags: &BTreeMap<String, String>) -> String {
    let args: Vec<String> = flags.iter().map(|(k, v)| format!("--{k}={v}")).collect();
    format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", args.join(" "))
}

/// The drop-in that makes the packaged kubelet unit run the configured kubelet.
pub fn drop_in(kubelet_path: &str) -> String {
    format!(
        "# Written by kubestrap (the kubeadm package's drop-in under the same name).\n\
         [Service]\n\
         Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig={BOOTSTRAP_KUBECONFIG} --kubeconfig={KUBECONFIG}\"\n\
         Environment=\"KUBELET_CONFIG_ARGS=--config={CONFIG}\"\n\
         # kubestrap init and join write the node's flags here.\n\
         EnvironmentFile=-{FLAGS_ENV}\n\
         # The admin's last-resort overrides (KUBELET_EXTRA_ARGS); prefer nodeRegistration.kubeletExtraArgs.\n\
         EnvironmentFile=-/etc/default/kubelet\n\
         ExecStart=\n\
         ExecStart={kubelet_path} $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n"
    )
}

/// Every file, rendered.
pub fn render(
    model: &Model,
    host: &HostSettings,
    patches: Option<&PatchSet>,
    taints: Taints,
    ui: &Ui,
) -> anyhow::Result<KubeletFiles> {
    let config = kubelet_configuration(model, host, patches, ui)?;
    Ok(KubeletFiles {
        config: crate::yaml::to_string(&config)?,
        instance_config: instance_configuration(model)
            .map(|doc| crate::yaml::to_string(&doc))
            .transpose()?,
        flags_env: flags_env(&kubelet_flags(model, host, taints)),
        drop_in: drop_in(&host.kubelet_path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::control_plane_model;

    fn settings() -> HostSettings {
        HostSettings {
            cgroup_driver: "systemd".into(),
            systemd_resolved: false,
            hostname: Some("cp1".into()),
            kubelet_path: "/usr/bin/kubelet".into(),
        }
    }

    #[test]
    fn kubeadms_defaults_with_the_chosen_driver_and_the_cri_socket() {
        let model = control_plane_model("");
        let mut host = settings();
        host.cgroup_driver = "cgroupfs".into();
        let doc = kubelet_configuration(&model, &host, None, &Ui::default()).unwrap();
        assert_eq!(doc["cgroupDriver"], "cgroupfs");
        assert_eq!(doc["clusterDNS"], json!(["10.96.0.10"]));
        assert_eq!(doc["clusterDomain"], "cluster.local");
        assert_eq!(
            doc["authentication"]["x509"]["clientCAFile"],
            "/etc/kubernetes/pki/ca.crt"
        );
        assert_eq!(doc["authentication"]["anonymous"]["enabled"], false);
        assert_eq!(doc["staticPodPath"], "/etc/kubernetes/manifests");
        assert_eq!(doc["healthzPort"], 10248);
        assert_eq!(doc["rotateCertificates"], true);
        assert_eq!(
            doc["containerRuntimeEndpoint"],
            "unix:///var/run/containerd/containerd.sock"
        );
        assert!(doc.get("resolvConf").is_none());
        host.systemd_resolved = true;
        let doc = kubelet_configuration(&model, &host, None, &Ui::default()).unwrap();
        assert_eq!(doc["resolvConf"], RESOLVED_RESOLV_CONF);
    }

    #[test]
    fn the_users_document_wins_field_by_field() {
        let model = control_plane_model(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             cgroupDriver: cgroupfs\nmaxPods: 50\nauthentication:\n  anonymous: {enabled: true}\n\
             resolvConf: /etc/my-resolv.conf\n",
        );
        let mut host = settings();
        host.cgroup_driver = "cgroupfs".into();
        host.systemd_resolved = true;
        let doc = kubelet_configuration(&model, &host, None, &Ui::default()).unwrap();
        assert_eq!(doc["maxPods"], 50);
        assert_eq!(doc["authentication"]["anonymous"]["enabled"], true);
        assert_eq!(doc["authentication"]["webhook"]["enabled"], true);
        assert_eq!(doc["resolvConf"], "/etc/my-resolv.conf");
        assert_eq!(doc["cgroupDriver"], "cgroupfs");
    }

    #[test]
    fn flags_by_version_with_extra_args_last() {
        let model = control_plane_model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n\
             nodeRegistration:\n  name: cp1\n  kubeletExtraArgs:\n  - {name: node-ip, value: 192.168.8.201}\n  - {name: v, value: \"4\"}\n\
             localAPIEndpoint: {advertiseAddress: 192.168.8.201}\n",
        );
        let mut host = settings();
        host.hostname = Some("other".into());
        let env = flags_env(&kubelet_flags(&model, &host, Taints::ByApi));
        assert_eq!(
            env,
            "KUBELET_KUBEADM_ARGS=\"--hostname-override=cp1 --node-ip=192.168.8.201 --pod-infra-container-image=registry.k8s.io/pause:3.10.1 --v=4\"\n"
        );
        let old = control_plane_model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.7\n",
        );
        let flags = kubelet_flags(&old, &settings(), Taints::ByApi);
        assert_eq!(
            flags.get("container-runtime-endpoint").map(String::as_str),
            Some("unix:///var/run/containerd/containerd.sock")
        );
        assert!(
            render(&old, &settings(), None, Taints::ByApi, &Ui::default())
                .unwrap()
                .instance_config
                .is_none()
        );
        let new = control_plane_model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.35.0\n",
        );
        assert_eq!(
            flags_env(&kubelet_flags(&new, &settings(), Taints::ByApi)),
            "KUBELET_KUBEADM_ARGS=\"\"\n"
        );
    }

    #[test]
    fn join_registers_its_taints_through_the_kubelet_and_init_does_not() {
        let mut model = control_plane_model(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.35.0\n",
        );
        model.node.taints = vec![
            crate::config::types::Taint {
                key: "dedicated".into(),
                value: Some("edge".into()),
                effect: "NoSchedule".into(),
                time_added: None,
            },
            crate::config::types::Taint {
                key: "example.com/gpu".into(),
                value: None,
                effect: "NoExecute".into(),
                time_added: None,
            },
        ];
        let join = render(&model, &settings(), None, Taints::ByKubelet, &Ui::default()).unwrap();
        assert_eq!(
            join.flags_env,
            "KUBELET_KUBEADM_ARGS=\"--register-with-taints=dedicated=edge:NoSchedule,example.com/gpu:NoExecute\"\n"
        );
        let init = render(&model, &settings(), None, Taints::ByApi, &Ui::default()).unwrap();
        assert_eq!(init.flags_env, "KUBELET_KUBEADM_ARGS=\"\"\n");
        // kubeletExtraArgs win, as in kubeadm.
        model.node.kubelet_extra_args = vec![Arg {
            name: "register-with-taints".into(),
            value: "mine:NoSchedule".into(),
        }];
        assert_eq!(
            flags_env(&kubelet_flags(&model, &settings(), Taints::ByKubelet)),
            "KUBELET_KUBEADM_ARGS=\"--register-with-taints=mine:NoSchedule\"\n"
        );
        model.node.taints.clear();
        model.node.kubelet_extra_args.clear();
        assert_eq!(
            flags_env(&kubelet_flags(&model, &settings(), Taints::ByKubelet)),
            "KUBELET_KUBEADM_ARGS=\"\"\n"
        );
    }

    #[test]
    fn patches_for_the_kubeletconfiguration_target_apply_last() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("kubeletconfiguration+merge.yaml"),
            "maxPods: 42\ncgroupDriver: cgroupfs\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("kube-apiserver.yaml"),
            "metadata: {labels: {a: b}}\n",
        )
        .unwrap();
        let patches = PatchSet::read(dir.path(), &Ui::default()).unwrap();
        let model = control_plane_model("");
        let doc =
            kubelet_configuration(&model, &settings(), Some(&patches), &Ui::default()).unwrap();
        assert_eq!(doc["maxPods"], 42);
        assert_eq!(doc["cgroupDriver"], "cgroupfs");
        assert!(doc.get("metadata").is_none());
    }

    #[test]
    fn the_drop_in_reads_the_files_kubestrap_writes() {
        let text = drop_in("/usr/local/bin/kubelet");
        assert!(text.contains("--config=/var/lib/kubelet/config.yaml"));
        assert!(text.contains("EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env"));
        assert!(
            text.contains("ExecStart=\nExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS")
        );
    }
}
