//! A control plane's files in kubeadm's layout, generated
//! independently of kubestrap: for exercising the doubles on their own, and for the files a test
//! writes itself (the bootstrap token, its RBAC, a node's bootstrap kubeconfig).

use std::collections::BTreeMap;

use anyhow::Result;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};

use super::cluster::Node;

/// Settings of a single-control-plane cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub node_name: String,
    pub advertise_address: String,
    pub kubernetes_version: String,
    pub etcd_tag: String,
    pub service_cidr: String,
    pub service_vip: String,
    /// `networking.podSubnet` (comma-separated for dual-stack): the controller-manager then
    /// allocates node pod CIDRs from it, as kubeadm configures it. None: no node IPAM.
    pub pod_subnet: Option<String>,
    pub dns_domain: String,
}

impl ClusterSettings {
    pub fn for_node(node: &Node) -> ClusterSettings {
        ClusterSettings {
            node_name: node.name.clone(),
            advertise_address: node.ip.clone(),
            kubernetes_version: crate::DEFAULT_KUBERNETES_VERSION.into(),
            etcd_tag: "3.4.23-0".into(),
            service_cidr: "10.96.0.0/12".into(),
            service_vip: "10.96.0.1".into(),
            pod_subnet: None,
            dns_domain: "cluster.local".into(),
        }
    }

    pub fn server(&self) -> String {
        format!("https://{}:6443", self.advertise_address)
    }
}

/// A certificate authority and its signer.
/// A leaf certificate to issue: file stem, issuer, CN, organisations, SANs, key usages.
type LeafSpec<'a> = (
    &'a str,
    &'a Ca,
    &'a str,
    Vec<&'a str>,
    Vec<String>,
    Vec<ExtendedKeyUsagePurpose>,
);

pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Files to write: node path → (contents, mode).
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days);
}

pub fn new_ca(common_name: &str) -> Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![common_name.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    validity(&mut params, 3650);
    let cert = params.self_signed(&key)?;
    let key_pem = key.serialize_pem();
    Ok(Ca {
        cert_pem: cert.pem(),
        key_pem,
        issuer: Issuer::new(params, key),
    })
}

impl Ca {
    /// A leaf certificate and key: (cert PEM, key PEM).
    pub fn leaf(
        &self,
        cn: &str,
        orgs: &[&str],
        sans: &[String],
        ekus: &[ExtendedKeyUsagePurpose],
    ) -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans.to_vec())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        for o in orgs {
            params.distinguished_name.push(DnType::OrganizationName, *o);
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = ekus.to_vec();
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, 365);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A single-user kubeconfig with embedded credentials.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, credentials: Value) -> Result<String> {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"certificate-authority-data": b64(ca_pem.as_bytes()), "server": server}}],
        "contexts": [{"name": format!("{user}@kubernetes"), "context": {"cluster": "kubernetes", "user": user}}],
        "current-context": format!("{user}@kubernetes"),
        "preferences": {},
        "users": [{"name": user, "user": credentials}],
    });
    kubestrap::yaml::to_string(&doc)
}

fn cert_kubeconfig(server: &str, ca: &Ca, user: &str, orgs: &[&str]) -> Result<String> {
    let (cert, key) = ca.leaf(user, orgs, &[], &[ExtendedKeyUsagePurpose::ClientAuth])?;
    kubeconfig(
        server,
        &ca.cert_pem,
        user,
        json!({"client-certificate-data": b64(cert.as_bytes()), "client-key-data": b64(key.as_bytes())}),
    )
}

fn probe(host: &str, path: &str, scheme: &str, initial: u64, period: u64, failures: u64) -> Value {
    let mut p = json!({"failureThreshold": failures, "httpGet": {"host": host, "path": path, "port": "probe-port", "scheme": scheme}, "periodSeconds": period, "timeoutSeconds": 15});
    if initial > 0 {
        p["initialDelaySeconds"] = json!(initial);
    }
    p
}

fn host_volume(name: &str, path: &str, kind: &str) -> Value {
    json!({"name": name, "hostPath": {"path": path, "type": kind}})
}

fn mount(name: &str, path: &str, read_only: bool) -> Value {
    let mut m = json!({"name": name, "mountPath": path});
    if read_only {
        m["readOnly"] = json!(true);
    }
    m
}

#[allow(clippy::too_many_arguments)]
fn pod(
    name: &str,
    image: &str,
    command: Vec<String>,
    port: u16,
    probes: (Value, Option<Value>, Value),
    cpu: &str,
    mounts: Vec<Value>,
    volumes: Vec<Value>,
    annotations: Value,
) -> Result<String> {
    let mut container = json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "ports": [{"containerPort": port, "name": "probe-port", "protocol": "TCP"}],
        "livenessProbe": probes.0,
        "startupProbe": probes.2,
        "resources": {"requests": {"cpu": cpu}},
        "volumeMounts": mounts,
    });
    if let Some(r) = probes.1 {
        container["readinessProbe"] = r;
    }
    let mut metadata = json!({"name": name, "namespace": "kube-system", "labels": {"component": name, "tier": "control-plane"}});
    if annotations.is_object() {
        metadata["annotations"] = annotations;
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [container],
            "hostNetwork": true,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": volumes,
        },
        "status": {},
    });
    kubestrap::yaml::to_string(&doc)
}

fn flags(pairs: &[(&str, String)]) -> Vec<String> {
    let mut sorted: Vec<&(&str, String)> = pairs.iter().collect();
    sorted.sort();
    sorted.iter().map(|(k, v)| format!("--{k}={v}")).collect()
}

/// Everything `kubeadm init` phases certs, kubeconfig, etcd, control-plane and kubelet-start write.
pub struct ControlPlane {
    pub settings: ClusterSettings,
    pub ca: Ca,
    pub files: Files,
}

impl ControlPlane {
    pub fn generate(settings: ClusterSettings) -> Result<ControlPlane> {
        let s = &settings;
        let pki = "/etc/kubernetes/pki";
        let mut files = Files::new();
        let mut put = |path: String, contents: String, mode: u32| {
            files.insert(path, (contents.into_bytes(), mode));
        };
        let ca = new_ca("kubernetes")?;
        let front = new_ca("front-proxy-ca")?;
        let etcd = new_ca("etcd-ca")?;
        put(format!("{pki}/ca.crt"), ca.cert_pem.clone(), 0o644);
        put(format!("{pki}/ca.key"), ca.key_pem.clone(), 0o600);
        put(
            format!("{pki}/front-proxy-ca.crt"),
            front.cert_pem.clone(),
            0o644,
        );
        put(
            format!("{pki}/front-proxy-ca.key"),
            front.key_pem.clone(),
            0o600,
        );
        put(format!("{pki}/etcd/ca.crt"), etcd.cert_pem.clone(), 0o644);
        put(format!("{pki}/etcd/ca.key"), etcd.key_pem.clone(), 0o600);
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        let client = ExtendedKeyUsagePurpose::ClientAuth;
        let apiserver_sans: Vec<String> = vec![
            s.node_name.clone(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            format!("kubernetes.default.svc.{}", s.dns_domain),
            s.service_vip.clone(),
            s.advertise_address.clone(),
        ];
        let etcd_sans = vec![
            s.node_name.clone(),
            "localhost".into(),
            s.advertise_address.clone(),
            "127.0.0.1".into(),
            "::1".into(),
        ];
        let leaves: Vec<LeafSpec> = vec![
            (
                "apiserver",
                &ca,
                "kube-apiserver",
                vec![],
                apiserver_sans,
                vec![server.clone()],
            ),
            (
                "apiserver-kubelet-client",
                &ca,
                "kube-apiserver-kubelet-client",
                vec!["kubeadm:cluster-admins"],
                vec![],
                vec![client.clone()],
            ),
            (
                "front-proxy-client",
                &front,
                "front-proxy-client",
                vec![],
                vec![],
                vec![client.clone()],
            ),
            (
                "etcd/server",
                &etcd,
                &s.node_name,
                vec![],
                etcd_sans.clone(),
                vec![server.clone(), client.clone()],
            ),
            (
                "etcd/peer",
                &etcd,
                &s.node_name,
                vec![],
                etcd_sans,
                vec![server.clone(), client.clone()],
            ),
            (
                "etcd/healthcheck-client",
                &etcd,
                "kube-etcd-healthcheck-client",
                vec![],
                vec![],
                vec![client.clone()],
            ),
            (
                "apiserver-etcd-client",
                &etcd,
                "kube-apiserver-etcd-client",
                vec![],
                vec![],
                vec![client.clone()],
            ),
        ];
        for (name, issuer, cn, orgs, sans, ekus) in leaves {
            let (cert, key) = issuer.leaf(cn, &orgs, &sans, &ekus)?;
            put(format!("{pki}/{name}.crt"), cert, 0o644);
            put(format!("{pki}/{name}.key"), key, 0o600);
        }
        let sa = KeyPair::generate()?;
        put(format!("{pki}/sa.key"), sa.serialize_pem(), 0o600);
        put(format!("{pki}/sa.pub"), sa.public_key_pem(), 0o644);

        let server_url = s.server();
        put(
            "/etc/kubernetes/admin.conf".into(),
            cert_kubeconfig(
                &server_url,
                &ca,
                "kubernetes-admin",
                &["kubeadm:cluster-admins"],
            )?,
            0o600,
        );
        put(
            "/etc/kubernetes/super-admin.conf".into(),
            cert_kubeconfig(
                &server_url,
                &ca,
                "kubernetes-super-admin",
                &["system:masters"],
            )?,
            0o600,
        );
        put(
            "/etc/kubernetes/kubelet.conf".into(),
            cert_kubeconfig(
                &server_url,
                &ca,
                &format!("system:node:{}", s.node_name),
                &["system:nodes"],
            )?,
            0o600,
        );
        put(
            "/etc/kubernetes/controller-manager.conf".into(),
            cert_kubeconfig(&server_url, &ca, "system:kube-controller-manager", &[])?,
            0o600,
        );
        put(
            "/etc/kubernetes/scheduler.conf".into(),
            cert_kubeconfig(&server_url, &ca, "system:kube-scheduler", &[])?,
            0o600,
        );

        files.extend(manifests(s)?);
        files.extend(kubelet_files(s)?);
        Ok(ControlPlane {
            settings,
            ca,
            files,
        })
    }

    /// Writes every file onto the node.
    pub fn write_to(&self, node: &Node) -> Result<()> {
        write_all(node, &self.files)
    }
}

/// The four static-pod manifests kubeadm renders (§4) for a single control-plane node.
pub fn manifests(s: &ClusterSettings) -> Result<Files> {
    let pki = "/etc/kubernetes/pki";
    let mut files = Files::new();
    let mut put = |path: String, contents: String, mode: u32| {
        files.insert(path, (contents.into_bytes(), mode));
    };
    let a = &s.advertise_address;
    let etcd_cmd = [
        vec!["etcd".to_string()],
        flags(&[
            ("advertise-client-urls", format!("https://{a}:2379")),
            ("cert-file", format!("{pki}/etcd/server.crt")),
            ("client-cert-auth", "true".into()),
            ("data-dir", "/var/lib/etcd".into()),
            ("experimental-initial-corrupt-check", "true".into()),
            ("experimental-watch-progress-notify-interval", "5s".into()),
            ("initial-advertise-peer-urls", format!("https://{a}:2380")),
            (
                "initial-cluster",
                format!("{}=https://{a}:2380", s.node_name),
            ),
            ("key-file", format!("{pki}/etcd/server.key")),
            (
                "listen-client-urls",
                format!("https://127.0.0.1:2379,https://{a}:2379"),
            ),
            ("listen-metrics-urls", "http://127.0.0.1:2381".into()),
            ("listen-peer-urls", format!("https://{a}:2380")),
            ("name", s.node_name.clone()),
            ("peer-cert-file", format!("{pki}/etcd/peer.crt")),
            ("peer-client-cert-auth", "true".into()),
            ("peer-key-file", format!("{pki}/etcd/peer.key")),
            ("peer-trusted-ca-file", format!("{pki}/etcd/ca.crt")),
            ("snapshot-count", "10000".into()),
            ("trusted-ca-file", format!("{pki}/etcd/ca.crt")),
        ]),
    ]
    .concat();
    put(
        "/etc/kubernetes/manifests/etcd.yaml".into(),
        pod(
            "etcd",
            &format!("registry.k8s.io/etcd:{}", s.etcd_tag),
            etcd_cmd,
            2381,
            (
                probe(
                    "127.0.0.1",
                    "/health?exclude=NOSPACE&serializable=true",
                    "HTTP",
                    10,
                    10,
                    8,
                ),
                None,
                probe(
                    "127.0.0.1",
                    "/health?serializable=false",
                    "HTTP",
                    10,
                    10,
                    24,
                ),
            ),
            "100m",
            vec![
                mount("etcd-data", "/var/lib/etcd", false),
                mount("etcd-certs", &format!("{pki}/etcd"), false),
            ],
            vec![
                host_volume("etcd-certs", &format!("{pki}/etcd"), "DirectoryOrCreate"),
                host_volume("etcd-data", "/var/lib/etcd", "DirectoryOrCreate"),
            ],
            json!({"kubeadm.kubernetes.io/etcd.advertise-client-urls": format!("https://{a}:2379")}),
        )?,
        0o600,
    );
    let apiserver_cmd = [
        vec!["kube-apiserver".to_string()],
        flags(&[
            ("advertise-address", a.clone()),
            ("allow-privileged", "true".into()),
            ("authorization-mode", "Node,RBAC".into()),
            ("client-ca-file", format!("{pki}/ca.crt")),
            ("enable-admission-plugins", "NodeRestriction".into()),
            ("enable-bootstrap-token-auth", "true".into()),
            ("etcd-cafile", format!("{pki}/etcd/ca.crt")),
            ("etcd-certfile", format!("{pki}/apiserver-etcd-client.crt")),
            ("etcd-keyfile", format!("{pki}/apiserver-etcd-client.key")),
            ("etcd-servers", "https://127.0.0.1:2379".into()),
            (
                "kubelet-client-certificate",
                format!("{pki}/apiserver-kubelet-client.crt"),
            ),
            (
                "kubelet-client-key",
                format!("{pki}/apiserver-kubelet-client.key"),
            ),
            (
                "kubelet-preferred-address-types",
                "InternalIP,ExternalIP,Hostname".into(),
            ),
            (
                "proxy-client-cert-file",
                format!("{pki}/front-proxy-client.crt"),
            ),
            (
                "proxy-client-key-file",
                format!("{pki}/front-proxy-client.key"),
            ),
            ("requestheader-allowed-names", "front-proxy-client".into()),
            (
                "requestheader-client-ca-file",
                format!("{pki}/front-proxy-ca.crt"),
            ),
            (
                "requestheader-extra-headers-prefix",
                "X-Remote-Extra-".into(),
            ),
            ("requestheader-group-headers", "X-Remote-Group".into()),
            ("requestheader-username-headers", "X-Remote-User".into()),
            ("secure-port", "6443".into()),
            (
                "service-account-issuer",
                format!("https://kubernetes.default.svc.{}", s.dns_domain),
            ),
            ("service-account-key-file", format!("{pki}/sa.pub")),
            ("service-account-signing-key-file", format!("{pki}/sa.key")),
            ("service-cluster-ip-range", s.service_cidr.clone()),
            ("tls-cert-file", format!("{pki}/apiserver.crt")),
            ("tls-private-key-file", format!("{pki}/apiserver.key")),
        ]),
    ]
    .concat();
    let ca_volumes = || {
        vec![
            host_volume("ca-certs", "/etc/ssl/certs", "DirectoryOrCreate"),
            host_volume("k8s-certs", pki, "DirectoryOrCreate"),
        ]
    };
    let ca_mounts = || {
        vec![
            mount("ca-certs", "/etc/ssl/certs", true),
            mount("k8s-certs", pki, true),
        ]
    };
    put(
        "/etc/kubernetes/manifests/kube-apiserver.yaml".into(),
        pod(
            "kube-apiserver",
            &format!("registry.k8s.io/kube-apiserver:{}", s.kubernetes_version),
            apiserver_cmd,
            6443,
            (
                probe(a, "/livez", "HTTPS", 10, 10, 8),
                Some(probe(a, "/readyz", "HTTPS", 0, 1, 3)),
                probe(a, "/livez", "HTTPS", 10, 10, 24),
            ),
            "250m",
            ca_mounts(),
            ca_volumes(),
            json!({"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": format!("{a}:6443")}),
        )?,
        0o600,
    );
    let kcm_conf = "/etc/kubernetes/controller-manager.conf";
    let mut kcm_flags = vec![
        ("authentication-kubeconfig", kcm_conf.into()),
        ("authorization-kubeconfig", kcm_conf.into()),
        ("bind-address", "127.0.0.1".into()),
        ("client-ca-file", format!("{pki}/ca.crt")),
        ("cluster-name", "kubernetes".into()),
        ("cluster-signing-cert-file", format!("{pki}/ca.crt")),
        ("cluster-signing-key-file", format!("{pki}/ca.key")),
        ("controllers", "*,bootstrapsigner,tokencleaner".into()),
        ("kubeconfig", kcm_conf.into()),
        ("leader-elect", "true".into()),
        (
            "requestheader-client-ca-file",
            format!("{pki}/front-proxy-ca.crt"),
        ),
        ("root-ca-file", format!("{pki}/ca.crt")),
        ("service-account-private-key-file", format!("{pki}/sa.key")),
        ("use-service-account-credentials", "true".into()),
    ];
    if let Some(pods) = &s.pod_subnet {
        kcm_flags.push(("allocate-node-cidrs", "true".into()));
        kcm_flags.push(("cluster-cidr", pods.clone()));
        kcm_flags.push(("service-cluster-ip-range", s.service_cidr.clone()));
        kcm_flags.sort_by_key(|(name, _)| *name);
    }
    let kcm_cmd = [
        vec!["kube-controller-manager".to_string()],
        flags(&kcm_flags),
    ]
    .concat();
    let mut kcm_mounts = ca_mounts();
    kcm_mounts.push(mount("kubeconfig", kcm_conf, true));
    let mut kcm_volumes = ca_volumes();
    kcm_volumes.push(host_volume("kubeconfig", kcm_conf, "FileOrCreate"));
    put(
        "/etc/kubernetes/manifests/kube-controller-manager.yaml".into(),
        pod(
            "kube-controller-manager",
            &format!(
                "registry.k8s.io/kube-controller-manager:{}",
                s.kubernetes_version
            ),
            kcm_cmd,
            10257,
            (
                probe("127.0.0.1", "/healthz", "HTTPS", 10, 10, 8),
                None,
                probe("127.0.0.1", "/healthz", "HTTPS", 10, 10, 24),
            ),
            "200m",
            kcm_mounts,
            kcm_volumes,
            Value::Null,
        )?,
        0o600,
    );
    let sched_conf = "/etc/kubernetes/scheduler.conf";
    let sched_cmd = [
        vec!["kube-scheduler".to_string()],
        flags(&[
            ("authentication-kubeconfig", sched_conf.into()),
            ("authorization-kubeconfig", sched_conf.into()),
            ("bind-address", "127.0.0.1".into()),
            ("kubeconfig", sched_conf.into()),
            ("leader-elect", "true".into()),
        ]),
    ]
    .concat();
    put(
        "/etc/kubernetes/manifests/kube-scheduler.yaml".into(),
        pod(
            "kube-scheduler",
            &format!("registry.k8s.io/kube-scheduler:{}", s.kubernetes_version),
            sched_cmd,
            10259,
            (
                probe("127.0.0.1", "/livez", "HTTPS", 10, 10, 8),
                Some(probe("127.0.0.1", "/readyz", "HTTPS", 0, 1, 3)),
                probe("127.0.0.1", "/livez", "HTTPS", 10, 10, 24),
            ),
            "100m",
            vec![mount("kubeconfig", sched_conf, true)],
            vec![host_volume("kubeconfig", sched_conf, "FileOrCreate")],
            Value::Null,
        )?,
        0o600,
    );
    Ok(files)
}

/// The kubelet's files kubeadm's kubelet-start phase writes (§6.5).
pub fn kubelet_files(s: &ClusterSettings) -> Result<Files> {
    let mut files = Files::new();
    files.insert(
        "/var/lib/kubelet/config.yaml".into(),
        (kubelet_config(s)?.into_bytes(), 0o644),
    );
    files.insert(
        "/var/lib/kubelet/kubeadm-flags.env".into(),
        (kubeadm_flags_env().into_bytes(), 0o644),
    );
    Ok(files)
}

pub fn write_all(node: &Node, files: &Files) -> Result<()> {
    for (path, (contents, mode)) in files {
        node.write_file(path, contents, *mode)?;
    }
    Ok(())
}

/// The KubeletConfiguration kubeadm writes (§6.4).
pub fn kubelet_config(s: &ClusterSettings) -> Result<String> {
    let cluster_dns = s
        .service_vip
        .rsplit_once('.')
        .map(|(p, _)| format!("{p}.10"))
        .unwrap_or_default();
    kubestrap::yaml::to_string(&json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": false}, "webhook": {"cacheTTL": "0s", "enabled": true}, "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}},
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}},
        "cgroupDriver": "systemd",
        "clusterDNS": [cluster_dns],
        "clusterDomain": s.dns_domain,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "memorySwap": {},
        "rotateCertificates": true,
        "staticPodPath": "/etc/kubernetes/manifests",
    }))
}

pub fn kubeadm_flags_env() -> String {
    "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10.1\"\n".into()
}

/// A bootstrap token Secret (§5.2) for `id.secret` with the kubeadm default group.
pub fn bootstrap_token_secret(id: &str, secret: &str, groups: &str, usages: &[&str]) -> Value {
    let mut data = json!({
        "token-id": b64(id.as_bytes()),
        "token-secret": b64(secret.as_bytes()),
        "auth-extra-groups": b64(groups.as_bytes()),
        "expiration": b64(crate::common::time::after_seconds(3600).as_bytes()),
    });
    for usage in usages {
        data[format!("usage-bootstrap-{usage}")] = json!(b64(b"true"));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "data": data,
    })
}

/// The RBAC kubeadm's bootstrap-token phase creates so that tokens of `group` can TLS-bootstrap
/// nodes (§5.3).
pub fn bootstrap_rbac(group: &str) -> Vec<Value> {
    let binding = |name: &str, role: &str, subject: Value| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [subject],
        })
    };
    let group_subject =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group});
    vec![
        binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            group_subject.clone(),
        ),
        binding(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            group_subject,
        ),
        binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}),
        ),
    ]
}

/// The ClusterRoleBinding kubeadm creates with super-admin.conf so that admin.conf's group
/// `kubeadm:cluster-admins` is cluster-admin (§3.3).
pub fn cluster_admins_binding() -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "kubeadm:cluster-admins"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubeadm:cluster-admins"}],
    })
}

/// A joining node's bootstrap kubeconfig (§6.2 step 6).
pub fn bootstrap_kubeconfig(server: &str, ca_pem: &str, token: &str) -> Result<String> {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"certificate-authority-data": b64(ca_pem.as_bytes()), "server": server}}],
        "contexts": [{"name": "tls-bootstrap-token-user@kubernetes", "context": {"cluster": "kubernetes", "user": "tls-bootstrap-token-user"}}],
        "current-context": "tls-bootstrap-token-user@kubernetes",
        "preferences": {},
        "users": [{"name": "tls-bootstrap-token-user", "user": {"token": token}}],
    });
    kubestrap::yaml::to_string(&doc)
}

/// The files a joining worker has before its kubelet starts: CA, bootstrap kubeconfig, kubelet
/// config and flags.
pub fn worker_files(settings: &ClusterSettings, ca_pem: &str, token: &str) -> Result<Files> {
    let mut files = Files::new();
    files.insert(
        "/etc/kubernetes/pki/ca.crt".into(),
        (ca_pem.as_bytes().to_vec(), 0o644),
    );
    files.insert(
        "/etc/kubernetes/bootstrap-kubelet.conf".into(),
        (
            bootstrap_kubeconfig(&settings.server(), ca_pem, token)?.into_bytes(),
            0o600,
        ),
    );
    files.insert(
        "/var/lib/kubelet/config.yaml".into(),
        (kubelet_config(settings)?.into_bytes(), 0o644),
    );
    files.insert(
        "/var/lib/kubelet/kubeadm-flags.env".into(),
        (kubeadm_flags_env().into_bytes(), 0o644),
    );
    Ok(files)
}
