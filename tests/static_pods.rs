//! The static-Pod manifests through the library: hand-written goldens,
//! version- and address-family-dependent rendering, overrides, patches, schema validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::{Container, Pod};
use kubestrap::config::flags::InitFlags;
use kubestrap::host::{Facts, Host, Root};
use kubestrap::model::Model;
use kubestrap::model::resolve::init::resolve_file;
use kubestrap::output::Ui;
use kubestrap::patches::{PatchSet, Schema};
use kubestrap::render::{RenderError, Renderer, TEMPLATES};
use kubestrap::staticpods::{self, Component, HostInputs};
use serde_json::{Value, json};

const GOLDEN_DIR: &str = "tests/golden/v1.34.3";
const DEBIAN_CA_DIRS: [&str; 3] = [
    "etc/ca-certificates",
    "usr/share/ca-certificates",
    "usr/local/share/ca-certificates",
];

/// Node `cp1` at 192.168.8.201 (v1.34.3, pod CIDR 10.244.0.0/16) plus `extra` configuration documents.
fn settings(extra: &str) -> Model {
    settings_with(extra, InitFlags::default())
}

fn settings_with(extra: &str, flags: InitFlags) -> Model {
    let mut text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n\
                    nodeRegistration: {name: cp1}\nlocalAPIEndpoint: {advertiseAddress: 192.168.8.201}\n"
        .to_string();
    if extra.contains("kind: InitConfiguration") {
        text = extra.to_string();
    } else if !extra.is_empty() {
        text = format!("{text}---\n{extra}");
    }
    let file = kubestrap::config::load::parse(&text).expect("test configuration parses");
    resolve_file(file, &flags, &Facts::default(), &[])
        .expect("test configuration is valid")
        .model
}

fn cluster(body: &str) -> String {
    format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n{body}")
}

/// A node root under a temporary directory, optionally with Debian's CA-trust directories.
struct Node {
    dir: tempfile::TempDir,
    host: Host,
}

impl Node {
    fn new(debian_ca_dirs: bool) -> Node {
        let dir = tempfile::tempdir().unwrap();
        if debian_ca_dirs {
            for d in DEBIAN_CA_DIRS {
                std::fs::create_dir_all(dir.path().join(d)).unwrap();
            }
        }
        // The directory is the node's --root and its host files alike (the CA-trust dirs are host facts).
        let host = Host::new(
            Root::new(dir.path()),
            Facts::default().with_host_files_root(dir.path()),
            false,
            Ui::default(),
        );
        Node { dir, host }
    }

    /// Host inputs without the test process's proxy variables, so results do not depend on CI.
    fn inputs(&self, model: &Model) -> HostInputs {
        HostInputs {
            proxy_env: Vec::new(),
            ..HostInputs::gather(&self.host, &model.cluster.certificates.dir)
        }
    }

    fn create(&self, model: &Model, component: Component) -> (Pod, String) {
        let cp = model.control_plane().unwrap();
        let pod =
            staticpods::create(&self.host, &cp, &self.inputs(model), component, None).unwrap();
        let text = std::fs::read_to_string(self.manifest(component)).unwrap();
        (pod, text)
    }

    fn manifest(&self, component: Component) -> PathBuf {
        self.host.disk(&component.manifest_path())
    }
}

fn render(model: &Model, inputs: &HostInputs, component: Component) -> Pod {
    let cp = model.control_plane().unwrap();
    staticpods::render(&Renderer::new().unwrap(), component, &cp, inputs).unwrap()
}

fn container(pod: &Pod) -> &Container {
    &pod.spec.as_ref().unwrap().containers[0]
}

fn command(pod: &Pod) -> Vec<String> {
    container(pod).command.clone().unwrap()
}

fn value(pod: &Pod) -> Value {
    serde_json::to_value(pod).unwrap()
}

/// The element of a JSON list (volumes, mounts) with this `name`.
fn by_name(list: &Value, name: &str) -> Option<Value> {
    list.as_array()?.iter().find(|v| v["name"] == name).cloned()
}

/// Drops the double quotes our YAML writer puts around scalars Go's writer leaves plain
/// (`"127.0.0.1"`), so the rest of the layout can be compared line by line.
fn unquote_plain_scalars(text: &str) -> String {
    text.lines()
        .map(|line| {
            let Some(start) = line.find(": \"").map(|i| i + 2).or_else(|| {
                let trimmed = line.trim_start();
                trimmed
                    .starts_with("- \"")
                    .then(|| line.len() - trimmed.len() + 2)
            }) else {
                return line.to_string();
            };
            let quoted = &line[start..];
            let inner = &quoted[1..quoted.len().saturating_sub(1)];
            if quoted.len() >= 2 && quoted.ends_with('"') && !inner.contains(['"', '\\']) {
                format!("{}{inner}", &line[..start])
            } else {
                line.to_string()
            }
        })
        .map(|line| line + "\n")
        .collect()
}

#[test]
fn default_manifests_match_the_hand_written_goldens() {
    let node = Node::new(true);
    let s = settings("");
    for component in Component::ALL {
        let (_, text) = node.create(&s, component);
        let golden_path = Path::new(GOLDEN_DIR).join(format!("{}.yaml", component.name()));
        let golden_text = std::fs::read_to_string(&golden_path).unwrap();
        let golden: Value = kubestrap::yaml::from_str(&golden_text).unwrap();
        let ours: Value = kubestrap::yaml::from_str(&text).unwrap();
        assert_eq!(
            ours,
            golden,
            "{} differs from {}",
            component.name(),
            golden_path.display()
        );
        assert_eq!(
            unquote_plain_scalars(&text),
            golden_text,
            "{}: the layout is not kubeadm's (sorted keys, sequences at their key's indentation)",
            component.name()
        );
    }
}

#[test]
fn manifests_are_0600_in_a_0700_folder_and_rewritten_with_a_backup() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::new(false);
    let s = settings("");
    node.create(&s, Component::KubeScheduler);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let file = node.manifest(Component::KubeScheduler);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    node.create(&s, Component::KubeScheduler);
    assert_eq!(mode(&file), 0o600);
}

#[test]
fn etcd_flags_and_probes_follow_the_etcd_version() {
    let inputs = HostInputs::default();
    let old = |tag: &str| {
        render(
            &settings(&cluster(&format!("etcd: {{local: {{imageTag: {tag}}}}}"))),
            &inputs,
            Component::Etcd,
        )
    };
    for tag in ["3.4.23-0", "3.5.1-0"] {
        let pod = old(tag);
        let cmd = command(&pod);
        assert!(
            cmd.contains(&"--experimental-initial-corrupt-check=true".to_string()),
            "{cmd:?}"
        );
        assert!(cmd.contains(&"--experimental-watch-progress-notify-interval=5s".to_string()));
        assert!(
            !cmd.iter()
                .any(|a| a.starts_with("--feature-gates") || a.starts_with("--watch-progress"))
        );
        let c = container(&pod);
        assert_eq!(
            c.image.as_deref(),
            Some(format!("registry.k8s.io/etcd:{tag}").as_str())
        );
        let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .clone()
                .unwrap()
        };
        assert_eq!(
            path(&c.liveness_probe),
            "/health?exclude=NOSPACE&serializable=true"
        );
        assert_eq!(path(&c.startup_probe), "/health?serializable=false");
        assert!(c.readiness_probe.is_none(), "etcd {tag} has no /readyz");
    }
    // 3.5.11+ serves /livez and /readyz but still takes the experimental flags (kubeadm 1.33's default etcd).
    let pod = old("3.5.21-0");
    let c = container(&pod);
    assert!(command(&pod).contains(&"--experimental-initial-corrupt-check=true".to_string()));
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    // The Kubernetes version's default etcd is used without an imageTag.
    let v133 = settings(&cluster("kubernetesVersion: v1.33.7\n"));
    let pod = render(&v133, &inputs, Component::Etcd);
    assert_eq!(
        container(&pod).image.as_deref(),
        Some("registry.k8s.io/etcd:3.5.21-0")
    );
    assert!(
        command(&pod).contains(&"--experimental-watch-progress-notify-interval=5s".to_string())
    );
}

#[test]
fn kubernetes_1_33_probes_use_numeric_ports_without_a_named_port() {
    let s = settings(&cluster("kubernetesVersion: v1.33.7\n"));
    for component in Component::ALL {
        let pod = render(&s, &HostInputs::default(), component);
        let v = value(&pod);
        let c = &v["spec"]["containers"][0];
        assert!(c.get("ports").is_none(), "{}", component.name());
        assert!(
            c["livenessProbe"]["httpGet"]["port"].is_u64(),
            "{}",
            component.name()
        );
    }
    let pod = render(&s, &HostInputs::default(), Component::KubeApiServer);
    assert_eq!(
        value(&pod)["spec"]["containers"][0]["startupProbe"]["httpGet"]["port"],
        json!(6443)
    );
}

#[test]
fn ipv6_and_dual_stack_forms() {
    let s = settings(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {name: cp1}\n\
         localAPIEndpoint: {advertiseAddress: \"fd00::10\"}\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
         networking: {podSubnet: \"fd00:10:244::/56,10.244.0.0/16\", serviceSubnet: \"fd00:10:96::/112,10.96.0.0/12\"}\n",
    );
    let inputs = HostInputs::default();
    let etcd = render(&s, &inputs, Component::Etcd);
    let cmd = command(&etcd);
    for expected in [
        "--advertise-client-urls=https://[fd00::10]:2379",
        "--listen-client-urls=https://[::1]:2379,https://[fd00::10]:2379",
        "--listen-peer-urls=https://[fd00::10]:2380",
        "--initial-cluster=cp1=https://[fd00::10]:2380",
        "--listen-metrics-urls=http://[::1]:2381",
    ] {
        assert!(
            cmd.contains(&expected.to_string()),
            "{expected} not in {cmd:?}"
        );
    }
    let v = value(&etcd);
    assert_eq!(
        v["metadata"]["annotations"]["kubeadm.kubernetes.io/etcd.advertise-client-urls"],
        "https://[fd00::10]:2379"
    );
    assert_eq!(
        v["spec"]["containers"][0]["livenessProbe"]["httpGet"]["host"],
        "::1"
    );

    let api = render(&s, &inputs, Component::KubeApiServer);
    let cmd = command(&api);
    assert!(cmd.contains(&"--etcd-servers=https://[::1]:2379".to_string()));
    assert!(cmd.contains(&"--service-cluster-ip-range=fd00:10:96::/112,10.96.0.0/12".to_string()));
    let v = value(&api);
    assert_eq!(
        v["metadata"]["annotations"]["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"],
        "[fd00::10]:6443"
    );
    assert_eq!(
        v["spec"]["containers"][0]["readinessProbe"]["httpGet"]["host"],
        "fd00::10"
    );

    let kcm = command(&render(&s, &inputs, Component::KubeControllerManager));
    assert!(kcm.contains(&"--cluster-cidr=fd00:10:244::/56,10.244.0.0/16".to_string()));
    assert!(kcm.contains(&"--service-cluster-ip-range=fd00:10:96::/112,10.96.0.0/12".to_string()));
}

#[test]
fn extra_args_replace_same_named_defaults_and_append_new_ones() {
    let s = settings(&cluster(
        "apiServer:\n  extraArgs:\n  - {name: authorization-mode, value: RBAC}\n  - {name: audit-log-path, value: /var/log/audit.log}\n\
         \x20 - {name: enable-admission-plugins, value: PodSecurity}\n  - {name: enable-admission-plugins, value: NodeRestriction}\n\
         scheduler:\n  extraArgs:\n  - {name: bind-address, value: 0.0.0.0}\n\
         controllerManager:\n  extraArgs:\n  - {name: bind-address, value: 10.0.0.7}\n  - {name: flex-volume-plugin-dir, value: /opt/flex}\n\
         etcd:\n  local:\n    extraArgs:\n    - {name: listen-metrics-urls, value: \"http://0.0.0.0:2382,http://127.0.0.1:2383\"}\n\
         \x20   - {name: advertise-client-urls, value: \"https://192.168.8.201:12379\"}\n",
    ));
    let inputs = HostInputs::default();
    let api = command(&render(&s, &inputs, Component::KubeApiServer));
    let named = |cmd: &[String], name: &str| -> Vec<String> {
        cmd.iter()
            .filter(|a| a.starts_with(&format!("--{name}=")))
            .cloned()
            .collect()
    };
    assert_eq!(
        named(&api, "authorization-mode"),
        vec!["--authorization-mode=RBAC"]
    );
    assert_eq!(
        named(&api, "audit-log-path"),
        vec!["--audit-log-path=/var/log/audit.log"]
    );
    assert_eq!(
        named(&api, "enable-admission-plugins"),
        vec![
            "--enable-admission-plugins=NodeRestriction",
            "--enable-admission-plugins=PodSecurity"
        ]
    );
    // Local etcd's advertise-client-urls is where the API server finds etcd.
    assert_eq!(
        named(&api, "etcd-servers"),
        vec!["--etcd-servers=https://192.168.8.201:12379"]
    );
    let mut sorted = api[1..].to_vec();
    sorted.sort_by(|a, b| {
        let key = |s: &str| {
            s.split_once('=')
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .unwrap()
        };
        key(a).cmp(&key(b))
    });
    assert_eq!(api[1..], sorted[..], "sorted by name, then value");

    // Probes follow bind-address; an unspecified one leaves the host out (the kubelet uses the pod IP).
    let sched = value(&render(&s, &inputs, Component::KubeScheduler));
    assert!(
        sched["spec"]["containers"][0]["livenessProbe"]["httpGet"]
            .get("host")
            .is_none()
    );
    let kcm = render(&s, &inputs, Component::KubeControllerManager);
    let kv = value(&kcm);
    assert_eq!(
        kv["spec"]["containers"][0]["livenessProbe"]["httpGet"]["host"],
        "10.0.0.7"
    );
    let flex = by_name(&kv["spec"]["volumes"], "flexvolume-dir").unwrap();
    assert_eq!(flex["hostPath"]["path"], "/opt/flex");
    // etcd probes the first listen-metrics URL (host and port as written there).
    let etcd = value(&render(&s, &inputs, Component::Etcd));
    let c = &etcd["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["host"], "0.0.0.0");
    assert_eq!(c["ports"][0]["containerPort"], 2382);
}

#[test]
fn authorization_config_removes_the_default_mode() {
    let s = settings(&cluster(
        "apiServer:\n  extraArgs:\n  - {name: authorization-config, value: /etc/kubernetes/authz.yaml}\n",
    ));
    let api = command(&render(
        &s,
        &HostInputs::default(),
        Component::KubeApiServer,
    ));
    assert!(
        !api.iter().any(|a| a.starts_with("--authorization-mode=")),
        "{api:?}"
    );
    assert!(api.contains(&"--authorization-config=/etc/kubernetes/authz.yaml".to_string()));
}

#[test]
fn external_ca_blanks_the_signing_files() {
    let node = Node::new(false);
    let s = settings("");
    let pki = node.dir.path().join("etc/kubernetes/pki");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::write(pki.join("ca.crt"), "certificate").unwrap();
    let (pod, _) = node.create(&s, Component::KubeControllerManager);
    let cmd = command(&pod);
    assert!(
        cmd.contains(&"--cluster-signing-cert-file=".to_string()),
        "{cmd:?}"
    );
    assert!(cmd.contains(&"--cluster-signing-key-file=".to_string()));
    std::fs::write(pki.join("ca.key"), "key").unwrap();
    let (pod, _) = node.create(&s, Component::KubeControllerManager);
    assert!(
        command(&pod)
            .contains(&"--cluster-signing-key-file=/etc/kubernetes/pki/ca.key".to_string())
    );
}

#[test]
fn no_pod_subnet_means_no_node_cidr_allocation() {
    let s = settings_with(
        "",
        InitFlags {
            pod_network: Some(kubestrap::config::flags::PodNetwork::NONE),
            ..Default::default()
        },
    );
    let kcm = command(&render(
        &s,
        &HostInputs::default(),
        Component::KubeControllerManager,
    ));
    for name in [
        "--allocate-node-cidrs",
        "--cluster-cidr",
        "--service-cluster-ip-range",
    ] {
        assert!(
            !kcm.iter().any(|a| a.starts_with(name)),
            "{name} in {kcm:?}"
        );
    }
}

#[test]
fn mount_host_localtime_adds_a_read_only_file_to_all_four_pods() {
    let s = settings_with(
        "",
        InitFlags {
            mount_host_localtime: true,
            ..Default::default()
        },
    );
    for component in Component::ALL {
        let v = value(&render(&s, &HostInputs::default(), component));
        let volume = by_name(&v["spec"]["volumes"], "localtime");
        assert_eq!(
            volume,
            Some(
                json!({"name": "localtime", "hostPath": {"path": "/etc/localtime", "type": "File"}})
            ),
            "{}",
            component.name()
        );
        let mount = by_name(&v["spec"]["containers"][0]["volumeMounts"], "localtime");
        assert_eq!(
            mount,
            Some(json!({"name": "localtime", "mountPath": "/etc/localtime", "readOnly": true}))
        );
    }
    let without = value(&render(
        &settings(""),
        &HostInputs::default(),
        Component::Etcd,
    ));
    assert!(!without.to_string().contains("localtime"));
}

#[test]
fn image_repository_and_etcd_image_overrides() {
    let s = settings(&cluster(
        "imageRepository: registry.example.com/k8s\netcd:\n  local:\n    imageRepository: quay.io/coreos\n    imageTag: v3.5.13\n",
    ));
    let inputs = HostInputs::default();
    let image = |c| container(&render(&s, &inputs, c)).image.clone().unwrap();
    assert_eq!(
        image(Component::KubeApiServer),
        "registry.example.com/k8s/kube-apiserver:v1.34.3"
    );
    assert_eq!(
        image(Component::KubeScheduler),
        "registry.example.com/k8s/kube-scheduler:v1.34.3"
    );
    assert_eq!(image(Component::Etcd), "quay.io/coreos/etcd:v3.5.13");
    let only_repo = settings(&cluster("imageRepository: registry.example.com/k8s\n"));
    assert_eq!(
        container(&render(&only_repo, &inputs, Component::Etcd))
            .image
            .as_deref(),
        Some("registry.example.com/k8s/etcd:3.6.5-0")
    );
}

#[test]
fn pull_policy_extra_volumes_extra_envs_and_proxy_variables() {
    let s = settings(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n\
         nodeRegistration: {name: cp1, imagePullPolicy: Never}\nlocalAPIEndpoint: {advertiseAddress: 192.168.8.201}\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
         apiServer:\n  extraVolumes:\n  - {name: audit, hostPath: /var/log/audit, mountPath: /audit, pathType: DirectoryOrCreate}\n\
         \x20 - {name: ca-certs, hostPath: /opt/certs, mountPath: /etc/ssl/certs, readOnly: true}\n\
         \x20 extraEnvs:\n  - {name: HTTPS_PROXY, value: http://override:3128}\n  - {name: GOMAXPROCS, value: \"2\"}\n\
         etcd:\n  local:\n    extraEnvs:\n    - {name: ETCD_QUOTA_BACKEND_BYTES, value: \"8589934592\"}\n",
    );
    let inputs = HostInputs {
        proxy_env: vec![
            ("HTTPS_PROXY".into(), "http://proxy:3128".into()),
            ("no_proxy".into(), "10.0.0.0/8".into()),
        ],
        ..Default::default()
    };
    let api = value(&render(&s, &inputs, Component::KubeApiServer));
    let c = &api["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Never");
    assert_eq!(
        c["env"],
        json!([{"name": "GOMAXPROCS", "value": "2"}, {"name": "HTTPS_PROXY", "value": "http://override:3128"},
               {"name": "no_proxy", "value": "10.0.0.0/8"}])
    );
    let volumes = &api["spec"]["volumes"];
    assert_eq!(
        volumes[0],
        json!({"name": "audit", "hostPath": {"path": "/var/log/audit", "type": "DirectoryOrCreate"}})
    );
    assert_eq!(
        volumes[1],
        json!({"name": "ca-certs", "hostPath": {"path": "/opt/certs", "type": ""}})
    );
    assert_eq!(
        c["volumeMounts"][0],
        json!({"name": "audit", "mountPath": "/audit"})
    );
    let sched = value(&render(&s, &inputs, Component::KubeScheduler));
    assert_eq!(
        sched["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "proxy variables only"
    );
    let etcd = value(&render(&s, &inputs, Component::Etcd));
    assert_eq!(
        etcd["spec"]["containers"][0]["env"],
        json!([{"name": "ETCD_QUOTA_BACKEND_BYTES", "value": "8589934592"}]),
        "etcd gets its extraEnvs and no proxy variables"
    );
}

#[test]
fn external_etcd_endpoints_files_and_mounts() {
    let s = settings(&cluster(
        "etcd:\n  external:\n    endpoints: [\"https://10.0.0.5:2379\", \"https://10.0.0.6:2379\"]\n\
         \x20   caFile: /etc/etcd/pki/ca.crt\n    certFile: /etc/etcd/pki/client.crt\n    keyFile: /etc/etcd/pki/client.key\n",
    ));
    assert!(s.cluster.etcd.is_external());
    let api = render(&s, &HostInputs::default(), Component::KubeApiServer);
    let cmd = command(&api);
    for expected in [
        "--etcd-servers=https://10.0.0.5:2379,https://10.0.0.6:2379",
        "--etcd-cafile=/etc/etcd/pki/ca.crt",
        "--etcd-certfile=/etc/etcd/pki/client.crt",
        "--etcd-keyfile=/etc/etcd/pki/client.key",
    ] {
        assert!(
            cmd.contains(&expected.to_string()),
            "{expected} not in {cmd:?}"
        );
    }
    let v = value(&api);
    let volume = by_name(&v["spec"]["volumes"], "etcd-certs-0");
    assert_eq!(
        volume,
        Some(
            json!({"name": "etcd-certs-0", "hostPath": {"path": "/etc/etcd/pki", "type": "DirectoryOrCreate"}})
        )
    );
}

fn write_patches(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn patches_of_each_type_apply_in_file_name_order() {
    let patches = tempfile::tempdir().unwrap();
    write_patches(
        patches.path(),
        &[
            // strategic (default): merged into the container and its port by their merge keys
            (
                "kube-apiserver0.yaml",
                "spec:\n  containers:\n  - name: kube-apiserver\n    ports:\n    - containerPort: 6443\n      hostPort: 6443\n\
                 \x20   resources:\n      limits: {memory: 2Gi}\n",
            ),
            // merge (RFC 7386): maps merge, lists are replaced
            (
                "kube-apiserver1+merge.json",
                "{\"metadata\": {\"annotations\": {\"example.com/owner\": \"ops\"}}}",
            ),
            // json (RFC 6902), two documents in one file
            (
                "kube-apiserver2+json.yaml",
                "- op: add\n  path: /spec/containers/0/command/-\n  value: --v=4\n---\n\
                 - op: replace\n  path: /spec/priorityClassName\n  value: system-cluster-critical\n",
            ),
            (
                "etcd+merge.yaml",
                "spec: {hostNetwork: true, dnsPolicy: ClusterFirstWithHostNet}\n",
            ),
            ("notes.txt", "ignored"),
        ],
    );
    let set = PatchSet::read(patches.path(), &Ui::default()).unwrap();
    let node = Node::new(false);
    let s = settings("");
    let pod = render(&s, &node.inputs(&s), Component::KubeApiServer);
    let patched = staticpods::patch(&pod, Component::KubeApiServer, &set, &node.host).unwrap();
    let v = value(&patched);
    let c = &v["spec"]["containers"][0];
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 6443, "hostPort": 6443, "name": "probe-port", "protocol": "TCP"}])
    );
    assert_eq!(
        c["resources"],
        json!({"limits": {"memory": "2Gi"}, "requests": {"cpu": "250m"}})
    );
    assert_eq!(v["metadata"]["annotations"]["example.com/owner"], "ops");
    assert!(v["metadata"]["annotations"]["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"].is_string());
    assert_eq!(c["command"].as_array().unwrap().last().unwrap(), "--v=4");
    assert_eq!(v["spec"]["priorityClassName"], "system-cluster-critical");
    let etcd = render(&s, &node.inputs(&s), Component::Etcd);
    let etcd = value(&staticpods::patch(&etcd, Component::Etcd, &set, &node.host).unwrap());
    assert_eq!(etcd["spec"]["dnsPolicy"], "ClusterFirstWithHostNet");
    // Targets without patches are untouched.
    let sched = render(&s, &node.inputs(&s), Component::KubeScheduler);
    assert_eq!(
        staticpods::patch(&sched, Component::KubeScheduler, &set, &node.host).unwrap(),
        sched
    );
}

#[test]
fn a_patch_that_breaks_the_pod_is_rejected_with_its_field() {
    let patches = tempfile::tempdir().unwrap();
    write_patches(
        patches.path(),
        &[(
            "kube-scheduler.yaml",
            "spec:\n  containers:\n  - name: kube-scheduler\n    imagePullPolicy: Never\n    livenessProbe: {httpGet: {prot: 1}}\n",
        )],
    );
    let set = PatchSet::read(patches.path(), &Ui::default()).unwrap();
    let node = Node::new(false);
    let s = settings("");
    let pod = render(&s, &node.inputs(&s), Component::KubeScheduler);
    let err = staticpods::patch(&pod, Component::KubeScheduler, &set, &node.host).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("spec.containers[0].livenessProbe.httpGet.prot"),
        "{text}"
    );
    let mut doc = value(&pod);
    let bad = json!({"spec": {"containers": [{"image": "no-name"}]}});
    assert!(
        kubestrap::patches::apply_one(
            &mut doc,
            &bad,
            kubestrap::patches::PatchType::Strategic,
            Schema::Pod
        )
        .is_err()
    );
}

fn templates_with(name: &str, text: &str) -> Vec<(&'static str, String)> {
    TEMPLATES
        .iter()
        .map(|(n, t)| {
            (
                *n,
                if *n == name {
                    text.to_string()
                } else {
                    t.to_string()
                },
            )
        })
        .collect()
}

#[test]
fn template_mistakes_are_rejected_at_render_time() {
    let s = settings("");
    let cp = s.control_plane().unwrap();
    let values =
        staticpods::values::values(Component::KubeScheduler, &cp, &HostInputs::default()).unwrap();
    let scheduler = TEMPLATES
        .iter()
        .find(|(n, _)| *n == "static-pods/kube-scheduler.yaml")
        .unwrap()
        .1;
    let cases = [
        // a field indented into the wrong object: k8s-openapi would drop it silently
        (
            scheduler.replace(
                "    resources:\n",
                "    hostNetwork: true\n    resources:\n",
            ),
            "spec.containers[0].hostNetwork",
        ),
        // a typo in a field name
        (
            scheduler.replace("requests:", "request:"),
            "spec.containers[0].resources.request",
        ),
        // a value of the wrong type
        (scheduler.replace("cpu: 100m", "cpu: [100m]"), "resources"),
        // a broken YAML structure
        (
            scheduler.replace("  containers:\n", "  containers:\n - x\n"),
            "",
        ),
        // an undefined value
        (
            scheduler.replace("{{ arg | json }}", "{{ argument | json }}"),
            "undefined",
        ),
    ];
    for (broken, field) in cases {
        assert_ne!(broken, scheduler, "the test edit must change the template");
        let owned = templates_with("static-pods/kube-scheduler.yaml", &broken);
        let list: Vec<(&str, &str)> = owned.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let err = match Renderer::with_templates(&list) {
            Err(e) => e,
            Ok(r) => r
                .render_pod("static-pods/kube-scheduler.yaml", &values)
                .unwrap_err(),
        };
        assert!(err.to_string().contains(field), "{err}");
        assert!(matches!(
            err,
            RenderError::Template { .. } | RenderError::Yaml { .. } | RenderError::Typed { .. }
        ));
    }
    // the pod-spec partial is covered too: priority given as text
    let partial = TEMPLATES
        .iter()
        .find(|(n, _)| *n == "static-pods/pod-spec.yaml")
        .unwrap()
        .1;
    let owned = templates_with(
        "static-pods/pod-spec.yaml",
        &partial.replace("priority: 2000001000", "priority: high"),
    );
    let list: Vec<(&str, &str)> = owned.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let err = Renderer::with_templates(&list)
        .unwrap()
        .render_pod("static-pods/kube-scheduler.yaml", &values)
        .unwrap_err();
    assert!(err.to_string().contains("spec.priority"), "{err}");
}

/// Every variant above, validated against the Kubernetes 1.33 schema by the PyPI tool `kubernetes-validate`.
#[test]
fn every_rendered_manifest_passes_kubernetes_validate() {
    let out = tempfile::tempdir().unwrap();
    let variants: BTreeMap<&str, Model> = BTreeMap::from([
        ("default", settings("")),
        (
            "etcd34",
            settings(&cluster("etcd: {local: {imageTag: 3.4.23-0}}\n")),
        ),
        ("k133", settings(&cluster("kubernetesVersion: v1.33.7\n"))),
        (
            "localtime",
            settings_with(
                "",
                InitFlags {
                    mount_host_localtime: true,
                    ..Default::default()
                },
            ),
        ),
        (
            "ipv6",
            settings(
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {name: cp1}\n\
                 localAPIEndpoint: {advertiseAddress: \"fd00::10\"}\n---\n\
                 apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
                 networking: {podSubnet: \"fd00:10:244::/56\", serviceSubnet: \"fd00:10:96::/112\"}\n",
            ),
        ),
        (
            "extras",
            settings(&cluster(
                "apiServer:\n  extraVolumes:\n  - {name: x, hostPath: /x, mountPath: /x}\n  extraEnvs:\n  - {name: A, value: b}\n\
                 scheduler:\n  extraArgs:\n  - {name: bind-address, value: 0.0.0.0}\n",
            )),
        ),
    ]);
    let node = Node::new(true);
    let mut files = Vec::new();
    for (name, s) in &variants {
        for component in Component::ALL {
            let pod = render(s, &node.inputs(s), component);
            let file = out.path().join(format!("{name}-{}.yaml", component.name()));
            std::fs::write(&file, staticpods::manifest_text(&pod).unwrap()).unwrap();
            files.push(file);
        }
    }
    // Through the module, so a console script missing from PATH (pyenv before a rehash) does not matter.
    let result = Command::new("python3")
        .args(["-m", "kubernetes_validate", "-k", "1.33.0", "--strict"])
        .args(&files)
        .output()
        .expect("python3 must be installed");
    assert!(
        !String::from_utf8_lossy(&result.stderr).contains("No module named kubernetes_validate"),
        "kubernetes-validate must be installed (pip install kubernetes-validate; see .ci/pip-packages)"
    );
    let report = String::from_utf8_lossy(&result.stdout).to_string()
        + &String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{report}");
    assert_eq!(report.matches("passed").count(), files.len(), "{report}");
}
