//! `init phase certs` / `init phase kubeconfig` and the `certs` commands, run as the real binary on a fresh --root.

mod pki_support;

use std::net::IpAddr;

use kubestrap::pki::cert::Usage;
use kubestrap::pki::inspect::{CertInfo, KeyKind, key_pair_kind};
use kubestrap::pki::keys;
use pki_support::*;
use time::OffsetDateTime;

const LEAF_VALIDITY: i64 = 8760 * 3600 + 300;
const CA_VALIDITY: i64 = 87600 * 3600 + 300;

/// A leaf certificate file, its CA file, CN, O and EKUs.
type Leaf = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [Usage],
);

const LEAVES: &[Leaf] = &[
    (
        "apiserver.crt",
        "ca.crt",
        "kube-apiserver",
        &[],
        &[Usage::ServerAuth],
    ),
    (
        "apiserver-kubelet-client.crt",
        "ca.crt",
        "kube-apiserver-kubelet-client",
        &["kubeadm:cluster-admins"],
        &[Usage::ClientAuth],
    ),
    (
        "front-proxy-client.crt",
        "front-proxy-ca.crt",
        "front-proxy-client",
        &[],
        &[Usage::ClientAuth],
    ),
    (
        "etcd/server.crt",
        "etcd/ca.crt",
        "pki-node",
        &[],
        &[Usage::ServerAuth, Usage::ClientAuth],
    ),
    (
        "etcd/peer.crt",
        "etcd/ca.crt",
        "pki-node",
        &[],
        &[Usage::ServerAuth, Usage::ClientAuth],
    ),
    (
        "etcd/healthcheck-client.crt",
        "etcd/ca.crt",
        "kube-etcd-healthcheck-client",
        &[],
        &[Usage::ClientAuth],
    ),
    (
        "apiserver-etcd-client.crt",
        "etcd/ca.crt",
        "kube-apiserver-etcd-client",
        &[],
        &[Usage::ClientAuth],
    ),
];

const CAS: &[(&str, &str)] = &[
    ("ca.crt", "kubernetes"),
    ("front-proxy-ca.crt", "front-proxy-ca"),
    ("etcd/ca.crt", "etcd-ca"),
];

/// (file, user/CN, O, server)
const KUBECONFIGS: &[(&str, &str, &[&str], &str)] = &[
    (
        "admin.conf",
        "kubernetes-admin",
        &["kubeadm:cluster-admins"],
        "https://cp.example.test:6443",
    ),
    (
        "super-admin.conf",
        "kubernetes-super-admin",
        &["system:masters"],
        "https://cp.example.test:6443",
    ),
    (
        "kubelet.conf",
        "system:node:pki-node",
        &["system:nodes"],
        "https://cp.example.test:6443",
    ),
    (
        "controller-manager.conf",
        "system:kube-controller-manager",
        &[],
        "https://192.0.2.10:6443",
    ),
    (
        "scheduler.conf",
        "system:kube-scheduler",
        &[],
        "https://192.0.2.10:6443",
    ),
];

const FULL: &[&str] = &[
    "--node-name",
    "pki-node",
    "--apiserver-advertise-address",
    "192.0.2.10",
    "--control-plane-endpoint",
    "cp.example.test",
    "--service-cidr",
    "10.96.0.0/12,fd00:10:96::/112",
    "--apiserver-cert-extra-sans",
    "10.1.2.3,extra.example.test,Not_Valid!",
];

fn init_all(node: &Node, flags: &[&str]) -> (String, String) {
    let certs = node.ok(&args(&["init", "phase", "certs", "all"], flags));
    let kubeconfigs = node.ok(&args(&["init", "phase", "kubeconfig", "all"], flags));
    (certs, kubeconfigs)
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn fresh_pki_is_kubeadms_and_verifies_with_openssl() {
    let node = Node::new();
    let start = OffsetDateTime::now_utc();
    let out = node.kubestrap(&args(&["init", "phase", "certs", "ca"], FULL));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'Not_Valid!' was not added to the 'apiserver' SAN, because it is not a valid IP or RFC-1123 compliant DNS entry"),
        "{stderr}"
    );
    std::fs::remove_dir_all(node.disk("/etc")).unwrap();
    let (certs, kubeconfigs) = init_all(&node, FULL);
    assert_eq!(
        certs,
        "[certs] Using certificateDir folder \"/etc/kubernetes/pki\"
[certs] Generating \"ca\" certificate and key
[certs] Generating \"apiserver\" certificate and key
[certs] apiserver serving cert is signed for DNS names [cp.example.test extra.example.test kubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local pki-node] and IPs [10.96.0.1 fd00:10:96::1 192.0.2.10 10.1.2.3]
[certs] Generating \"apiserver-kubelet-client\" certificate and key
[certs] Generating \"front-proxy-ca\" certificate and key
[certs] Generating \"front-proxy-client\" certificate and key
[certs] Generating \"etcd/ca\" certificate and key
[certs] Generating \"etcd/server\" certificate and key
[certs] etcd/server serving cert is signed for DNS names [localhost pki-node] and IPs [192.0.2.10 127.0.0.1 ::1]
[certs] Generating \"etcd/peer\" certificate and key
[certs] etcd/peer serving cert is signed for DNS names [localhost pki-node] and IPs [192.0.2.10 127.0.0.1 ::1]
[certs] Generating \"etcd/healthcheck-client\" certificate and key
[certs] Generating \"apiserver-etcd-client\" certificate and key
[certs] Generating \"sa\" key and public key
"
    );
    assert_eq!(
        kubeconfigs,
        "[kubeconfig] Using kubeconfig folder \"/etc/kubernetes\"
[kubeconfig] Writing \"admin.conf\" kubeconfig file
[kubeconfig] Writing \"super-admin.conf\" kubeconfig file
[kubeconfig] Writing \"kubelet.conf\" kubeconfig file
[kubeconfig] Writing \"controller-manager.conf\" kubeconfig file
[kubeconfig] Writing \"scheduler.conf\" kubeconfig file
"
    );

    let pki = node.pki("");
    for (file, cn) in CAS {
        let ca = node.cert(file);
        assert!(ca.is_ca, "{file}");
        assert_eq!(ca.common_name, *cn);
        assert!(ca.organizations.is_empty());
        assert_eq!(ca.dns_names, [cn.to_string()], "{file}: CA SAN DNS = CN");
        assert!(ca.has_subject_key_id, "{file}");
        assert_eq!(
            (ca.not_after - ca.not_before).whole_seconds(),
            CA_VALIDITY,
            "{file}"
        );
        assert_eq!(ca.key_kind, KeyKind::EcdsaP256);
        openssl_verify(&pki, file, file);
        let text = openssl(&["x509", "-noout", "-text", "-in", file], &pki);
        assert!(text.contains("X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment, Certificate Sign"), "{text}");
        assert!(
            text.contains("X509v3 Basic Constraints: critical\n                CA:TRUE\n"),
            "{text}"
        );
        assert!(text.contains(&format!("Subject: CN = {cn}\n")), "{text}");
    }
    for (file, ca_file, cn, orgs, usages) in LEAVES {
        let leaf = node.cert(file);
        openssl_verify(&pki, ca_file, file);
        leaf.verify_signed_by(&node.cert(ca_file)).unwrap();
        assert_eq!(leaf.common_name, *cn, "{file}");
        assert_eq!(leaf.organizations, orgs.to_vec(), "{file}");
        assert_eq!(leaf.usages, usages.to_vec(), "{file}");
        assert!(!leaf.is_ca && !leaf.has_subject_key_id, "{file}");
        assert_eq!(
            (leaf.not_after - leaf.not_before).whole_seconds(),
            LEAF_VALIDITY,
            "{file}"
        );
        let backdate = (start - leaf.not_before).whole_seconds();
        assert!(
            (295..=360).contains(&backdate),
            "{file}: NotBefore {backdate}s before the run"
        );
        assert_eq!(leaf.key_kind, KeyKind::EcdsaP256, "{file}");
        let key_file = file.replace(".crt", ".key");
        let key_pem = std::fs::read(node.pki(&key_file)).unwrap();
        assert!(
            key_pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"),
            "{key_file} is PKCS#8"
        );
        assert!(
            leaf.matches_key(&keys::parse_private_key_pem(&key_pem).unwrap()),
            "{key_file}"
        );
        let text = openssl(&["x509", "-noout", "-text", "-in", file], &pki);
        assert!(
            text.contains(
                "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("X509v3 Basic Constraints: critical\n                CA:FALSE\n"),
            "{text}"
        );
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
        assert!(!text.contains("Subject Key Identifier"), "{text}");
    }
    let apiserver = node.cert("apiserver.crt");
    assert_eq!(
        apiserver.dns_names,
        [
            "cp.example.test",
            "extra.example.test",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "pki-node"
        ]
    );
    assert_eq!(
        apiserver.ips,
        ips(&["10.96.0.1", "fd00:10:96::1", "192.0.2.10", "10.1.2.3"])
    );
    for peer in ["etcd/server.crt", "etcd/peer.crt"] {
        let cert = node.cert(peer);
        assert_eq!(cert.dns_names, ["localhost", "pki-node"]);
        assert_eq!(cert.ips, ips(&["192.0.2.10", "127.0.0.1", "::1"]));
    }
    for (file, _, _, _, _) in LEAVES {
        assert_eq!(
            node.mode(&format!("/etc/kubernetes/pki/{file}")),
            0o644,
            "{file}"
        );
        let key = file.replace(".crt", ".key");
        assert_eq!(
            node.mode(&format!("/etc/kubernetes/pki/{key}")),
            0o600,
            "{key}"
        );
    }
    for (file, _) in CAS {
        assert_eq!(node.mode(&format!("/etc/kubernetes/pki/{file}")), 0o644);
        assert_eq!(
            node.mode(&format!(
                "/etc/kubernetes/pki/{}",
                file.replace(".crt", ".key")
            )),
            0o600
        );
    }
    assert_eq!(node.mode("/etc/kubernetes/pki/sa.key"), 0o600);
    assert_eq!(node.mode("/etc/kubernetes/pki/sa.pub"), 0o644);
    let sa_pub = std::fs::read(node.pki("sa.pub")).unwrap();
    assert!(sa_pub.starts_with(b"-----BEGIN PUBLIC KEY-----\n"));
    let sa_key = keys::parse_private_key_pem(&std::fs::read(node.pki("sa.key")).unwrap()).unwrap();
    assert_eq!(
        kubestrap::pki::store::public_key_from_pem(&sa_pub).unwrap(),
        sa_key.public_key_raw()
    );
    assert!(
        openssl(
            &["pkey", "-pubin", "-in", "sa.pub", "-noout", "-text"],
            &pki
        )
        .contains("P-256")
    );

    let ca_pem = std::fs::read(node.pki("ca.crt")).unwrap();
    let ca = node.cert("ca.crt");
    for (file, user, orgs, server) in KUBECONFIGS {
        assert_eq!(
            node.mode(&format!("/etc/kubernetes/{file}")),
            0o600,
            "{file}"
        );
        let config = node.kubeconfig(file);
        let current = config.current().unwrap();
        assert_eq!(config.current_context, format!("{user}@kubernetes"));
        assert_eq!(current.cluster.name, "kubernetes");
        assert_eq!(current.cluster.cluster.server, *server, "{file}");
        assert_eq!(
            current
                .cluster
                .cluster
                .certificate_authority_data
                .as_ref()
                .unwrap()
                .0,
            ca_pem
        );
        assert_eq!(current.user.name, *user);
        let client = CertInfo::from_pem(
            &current
                .user
                .user
                .client_certificate_data
                .as_ref()
                .unwrap()
                .0,
        )
        .unwrap();
        client.verify_signed_by(&ca).unwrap();
        assert_eq!(client.common_name, *user, "{file}");
        assert_eq!(client.organizations, orgs.to_vec(), "{file}");
        assert_eq!(client.usages, [Usage::ClientAuth]);
        assert_eq!(client.key_kind, KeyKind::EcdsaP256);
        assert_eq!(
            (client.not_after - client.not_before).whole_seconds(),
            LEAF_VALIDITY
        );
        let key =
            keys::parse_private_key_pem(&current.user.user.client_key_data.as_ref().unwrap().0)
                .unwrap();
        assert!(client.matches_key(&key));
        let client_file = format!("{file}-client.crt");
        std::fs::write(pki.join(&client_file), client.pem()).unwrap();
        openssl_verify(&pki, "ca.crt", &client_file);
        std::fs::remove_file(pki.join(&client_file)).unwrap();
        let text = std::fs::read_to_string(node.disk(&format!("/etc/kubernetes/{file}"))).unwrap();
        assert!(
            text.starts_with(
                "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: "
            ),
            "{text}"
        );
        assert!(
            text.contains("\nkind: Config\npreferences: {}\nusers:\n"),
            "{text}"
        );
    }
}

fn config_file(node: &Node, cluster_extra: &str, init_extra: &str) -> String {
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.0.2.10
nodeRegistration:
  name: pki-node
{init_extra}---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
{cluster_extra}"
    );
    let path = node.root().join("kubeadm.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn check_algorithm(algorithm: &str, kind: KeyKind, signature: &str) {
    let node = Node::new();
    let config = config_file(&node, &format!("encryptionAlgorithm: {algorithm}\n"), "");
    init_all(&node, &["--config", &config]);
    let pki = node.pki("");
    for (file, ca_file, _, _, _) in LEAVES {
        assert_eq!(node.cert(file).key_kind, kind, "{algorithm} {file}");
        openssl_verify(&pki, ca_file, file);
        let text = openssl(&["x509", "-noout", "-text", "-in", file], &pki);
        assert!(
            text.contains(&format!("Signature Algorithm: {signature}")),
            "{text}"
        );
    }
    for (file, _) in CAS {
        assert_eq!(node.cert(file).key_kind, kind, "{algorithm} {file}");
    }
    let key_files = ["ca.key", "apiserver.key", "etcd/peer.key", "sa.key"];
    for file in key_files {
        let key = keys::parse_private_key_pem(&std::fs::read(node.pki(file)).unwrap()).unwrap();
        assert_eq!(key_pair_kind(&key), kind, "{algorithm} {file}");
    }
    for (file, _, _, _) in KUBECONFIGS {
        let config = node.kubeconfig(file);
        let user = &config.current().unwrap().user.user;
        let key = keys::parse_private_key_pem(&user.client_key_data.as_ref().unwrap().0).unwrap();
        assert_eq!(key_pair_kind(&key), kind, "{algorithm} {file}");
    }
}

#[test]
fn ecdsa_p384_keys_everywhere() {
    check_algorithm("ECDSA-P384", KeyKind::EcdsaP384, "ecdsa-with-SHA384");
}

#[test]
fn rsa_2048_keys_everywhere() {
    check_algorithm("RSA-2048", KeyKind::Rsa(2048), "sha256WithRSAEncryption");
}

#[test]
fn second_run_reuses_every_file_byte_for_byte() {
    let node = Node::new();
    init_all(&node, FULL);
    let before = node.snapshot();
    assert_eq!(
        before.len(),
        22 + 5,
        "22 PKI files and 5 kubeconfigs: {:?}",
        before.keys()
    );
    let (certs, kubeconfigs) = init_all(&node, FULL);
    assert_eq!(node.snapshot(), before);
    assert!(
        certs.contains("[certs] Using existing ca certificate authority\n"),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Using the existing \"apiserver\" certificate and key\n"),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Using existing etcd/ca certificate authority\n"),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Using the existing \"sa\" key\n"),
        "{certs}"
    );
    assert!(!certs.contains("Generating"), "{certs}");
    assert!(
        kubeconfigs.contains(
            "[kubeconfig] Using existing kubeconfig file: \"/etc/kubernetes/admin.conf\"\n"
        ),
        "{kubeconfigs}"
    );
    assert!(!kubeconfigs.contains("Writing"), "{kubeconfigs}");
}

fn copy(from: &Node, to: &Node, files: &[&str]) {
    for file in files {
        std::fs::copy(from.pki(file), to.pki(file)).unwrap();
    }
}

#[test]
fn mismatching_files_are_errors_that_name_them() {
    let node = Node::new();
    init_all(&node, NODE);
    let before = node.snapshot();

    // A SAN the existing serving certificate lacks.
    let err = node.fails(
        &[
            "init",
            "phase",
            "certs",
            "apiserver",
            "--node-name",
            "pki-node",
            "--apiserver-advertise-address",
            "192.0.2.99",
        ],
        1,
    );
    assert!(
        err.contains("/etc/kubernetes/pki/apiserver.crt") && err.contains("IP:192.0.2.99"),
        "{err}"
    );

    // A certificate signed by another cluster's CA.
    let other = Node::new();
    init_all(&other, NODE);
    copy(&other, &node, &["apiserver.crt", "apiserver.key"]);
    let err = node.fails(&args(&["init", "phase", "certs", "all"], NODE), 1);
    assert!(
        err.contains("/etc/kubernetes/pki/apiserver.crt")
            && err.contains("not signed by the expected CA"),
        "{err}"
    );
    restore(&node, &before);

    // A key that does not belong to the certificate.
    std::fs::copy(
        node.pki("front-proxy-client.key"),
        node.pki("apiserver.key"),
    )
    .unwrap();
    let err = node.fails(&args(&["init", "phase", "certs", "apiserver"], NODE), 1);
    assert!(
        err.contains("/etc/kubernetes/pki/apiserver.crt")
            && err.contains("private key does not match"),
        "{err}"
    );
    restore(&node, &before);

    // A kubeconfig of another cluster.
    std::fs::copy(
        other.disk("/etc/kubernetes/admin.conf"),
        node.disk("/etc/kubernetes/admin.conf"),
    )
    .unwrap();
    let err = node.fails(&args(&["init", "phase", "kubeconfig", "admin"], NODE), 1);
    assert!(
        err.contains("\"/etc/kubernetes/admin.conf\" exists already but has got the wrong CA cert"),
        "{err}"
    );
    restore(&node, &before);

    // A kubeconfig for another API server.
    let err = node.fails(
        &[
            "init",
            "phase",
            "kubeconfig",
            "scheduler",
            "--node-name",
            "pki-node",
            "--apiserver-advertise-address",
            "192.0.2.11",
        ],
        1,
    );
    assert!(
        err.contains("/etc/kubernetes/scheduler.conf") && err.contains("wrong API Server URL"),
        "{err}"
    );

    // A CA whose key belongs to another CA.
    std::fs::copy(other.pki("ca.key"), node.pki("ca.key")).unwrap();
    let err = node.fails(&args(&["init", "phase", "certs", "ca"], NODE), 1);
    assert!(err.contains("/etc/kubernetes/pki/ca.key does not belong to the certificate /etc/kubernetes/pki/ca.crt"), "{err}");
    restore(&node, &before);

    // An expired leaf.
    expire(&node, "front-proxy-client", "front-proxy-ca");
    let err = node.fails(
        &args(&["init", "phase", "certs", "front-proxy-client"], NODE),
        1,
    );
    assert!(
        err.contains("/etc/kubernetes/pki/front-proxy-client.crt") && err.contains("expired"),
        "{err}"
    );
}

fn restore(node: &Node, before: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>) {
    for (path, bytes) in before {
        std::fs::write(node.root().join(path), bytes).unwrap();
    }
}

/// Replaces `<name>.crt` with a certificate of the same key, subject and CA that expired in 2020.
fn expire(node: &Node, name: &str, ca: &str) {
    use kubestrap::pki::cert::{Authority, Validity};
    let read = |f: String| std::fs::read(node.pki(&f)).unwrap();
    let ca_key = keys::parse_private_key_pem(&read(format!("{ca}.key"))).unwrap();
    let authority = Authority::new(&node.cert(&format!("{ca}.crt")).der, ca_key).unwrap();
    let current = node.cert(&format!("{name}.crt"));
    let key = keys::parse_private_key_pem(&read(format!("{name}.key"))).unwrap();
    let template = kubestrap::pki::cert::LeafTemplate {
        subject: kubestrap::pki::cert::Subject::new(current.common_name.clone(), &[]),
        usages: current.usages.clone(),
        alt_names: Default::default(),
    };
    let validity = Validity {
        not_before: time::macros::datetime!(2020-01-01 0:00 UTC),
        not_after: time::macros::datetime!(2020-02-01 0:00 UTC),
    };
    let issued = authority.sign(&template, validity, &key).unwrap();
    std::fs::write(node.pki(&format!("{name}.crt")), issued.pem).unwrap();
}

#[test]
fn external_ca_mode_checks_and_generates_nothing() {
    let node = Node::new();
    init_all(&node, NODE);
    std::fs::remove_file(node.pki("ca.key")).unwrap();
    std::fs::remove_file(node.pki("front-proxy-ca.key")).unwrap();
    let before = node.snapshot();
    let (certs, kubeconfigs) = init_all(&node, NODE);
    assert_eq!(node.snapshot(), before, "external CA mode writes nothing");
    assert!(
        certs.contains("[certs] Using existing ca keyless certificate authority\n"),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Using existing front-proxy-ca keyless certificate authority\n"),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Using existing etcd/ca certificate authority\n"),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Using the existing \"apiserver\" certificate and key\n"),
        "{certs}"
    );
    assert!(
        kubeconfigs.contains("[kubeconfig] External CA mode: Using user provided admin.conf\n"),
        "{kubeconfigs}"
    );
    assert!(
        kubeconfigs.contains("[kubeconfig] External CA mode: Using user provided scheduler.conf\n"),
        "{kubeconfigs}"
    );

    // A leaf the external CA should have signed is missing: the CA phase says which.
    std::fs::remove_file(node.pki("apiserver-kubelet-client.crt")).unwrap();
    let err = node.fails(&args(&["init", "phase", "certs", "all"], NODE), 1);
    assert!(
        err.contains("external CA mode")
            && err.contains("/etc/kubernetes/pki/apiserver-kubelet-client.crt"),
        "{err}"
    );
    let err = node.fails(
        &args(
            &["init", "phase", "certs", "apiserver-kubelet-client"],
            NODE,
        ),
        1,
    );
    assert!(
        err.contains("/etc/kubernetes/pki/apiserver-kubelet-client.crt"),
        "{err}"
    );
    assert!(
        !node.pki("apiserver-kubelet-client.crt").exists(),
        "nothing is generated for an external CA"
    );

    // A leaf signed by someone else.
    let other = Node::new();
    init_all(&other, NODE);
    copy(
        &other,
        &node,
        &["front-proxy-client.crt", "front-proxy-client.key"],
    );
    let err = node.fails(
        &args(&["init", "phase", "certs", "front-proxy-client"], NODE),
        1,
    );
    assert!(
        err.contains("/etc/kubernetes/pki/front-proxy-client.crt") && err.contains("not signed"),
        "{err}"
    );

    // A kubeconfig the external CA should have signed is missing.
    std::fs::remove_file(node.disk("/etc/kubernetes/scheduler.conf")).unwrap();
    let err = node.fails(
        &args(&["init", "phase", "kubeconfig", "scheduler"], NODE),
        1,
    );
    assert!(
        err.contains("/etc/kubernetes/scheduler.conf") && err.contains("external CA mode"),
        "{err}"
    );
}

#[test]
fn user_provided_cas_and_keys_in_every_pem_form_are_used() {
    let node = Node::new();
    let pki = node.pki("");
    std::fs::create_dir_all(pki.join("etcd")).unwrap();
    // kubeadm's RSA form (PKCS#1), openssl's EC form (SEC1 after EC PARAMETERS), and PKCS#8.
    openssl(&["genrsa", "-traditional", "-out", "ca.key", "2048"], &pki);
    openssl(
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-out",
            "front-proxy-ca.key",
        ],
        &pki,
    );
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "etcd/ca.key",
        ],
        &pki,
    );
    assert!(
        std::fs::read_to_string(pki.join("ca.key"))
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    let sec1 = std::fs::read_to_string(pki.join("front-proxy-ca.key")).unwrap();
    assert!(
        sec1.starts_with("-----BEGIN EC PARAMETERS-----")
            && sec1.contains("-----BEGIN EC PRIVATE KEY-----")
    );
    assert!(
        std::fs::read_to_string(pki.join("etcd/ca.key"))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    for (key, cn) in [
        ("ca", "kubernetes"),
        ("front-proxy-ca", "front-proxy-ca"),
        ("etcd/ca", "etcd-ca"),
    ] {
        openssl(
            &[
                "req",
                "-x509",
                "-key",
                &format!("{key}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                "3650",
                "-out",
                &format!("{key}.crt"),
            ],
            &pki,
        );
    }
    // A kubeadm-style RSA service-account key pair.
    openssl(&["genrsa", "-traditional", "-out", "sa.key", "2048"], &pki);
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], &pki);
    // A leaf made with openssl, its key in SEC1, signed by the etcd CA.
    openssl(
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-out",
            "etcd/healthcheck-client.key",
        ],
        &pki,
    );
    openssl(
        &[
            "req",
            "-new",
            "-key",
            "etcd/healthcheck-client.key",
            "-subj",
            "/CN=kube-etcd-healthcheck-client",
            "-out",
            "hc.csr",
        ],
        &pki,
    );
    std::fs::write(pki.join("hc.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "hc.csr",
            "-CA",
            "etcd/ca.crt",
            "-CAkey",
            "etcd/ca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            "hc.ext",
            "-out",
            "etcd/healthcheck-client.crt",
        ],
        &pki,
    );
    for scratch in ["hc.csr", "hc.ext", "etcd/ca.srl"] {
        let _ = std::fs::remove_file(pki.join(scratch));
    }
    let provided = node.snapshot();

    let (certs, _) = init_all(&node, NODE);
    assert!(
        certs.contains("[certs] Using existing ca certificate authority\n"),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Using existing front-proxy-ca certificate authority\n"),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Using existing etcd/ca certificate authority\n"),
        "{certs}"
    );
    assert!(
        certs.contains(
            "[certs] Using the existing \"etcd/healthcheck-client\" certificate and key\n"
        ),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Using the existing \"sa\" key\n"),
        "{certs}"
    );
    assert!(
        certs.contains("[certs] Generating \"apiserver\" certificate and key\n"),
        "{certs}"
    );
    let after = node.snapshot();
    for (path, bytes) in &provided {
        assert_eq!(
            after.get(path),
            Some(bytes),
            "{} was changed",
            path.display()
        );
    }
    for (file, ca_file, _, _, _) in LEAVES {
        openssl_verify(&pki, ca_file, file);
    }
    // Signatures follow the CA key: RSA CA → sha256WithRSA, P-384 etcd CA → ECDSA with SHA-384.
    let text = openssl(&["x509", "-noout", "-text", "-in", "apiserver.crt"], &pki);
    assert!(
        text.contains("Signature Algorithm: sha256WithRSAEncryption"),
        "{text}"
    );
    let text = openssl(&["x509", "-noout", "-text", "-in", "etcd/server.crt"], &pki);
    assert!(
        text.contains("Signature Algorithm: ecdsa-with-SHA384"),
        "{text}"
    );
    // The second run reuses everything, including what it generated from the provided CAs.
    let (certs, _) = init_all(&node, NODE);
    assert!(!certs.contains("Generating"), "{certs}");
    assert_eq!(node.snapshot(), after);
}

#[test]
fn dry_run_writes_nothing() {
    let node = Node::new();
    let out = node.ok(&args(&["init", "phase", "certs", "all", "--dry-run"], NODE));
    assert!(
        out.contains(&format!(
            "[dry-run] Would write path {} (mode 0600",
            node.disk("/etc/kubernetes/pki/ca.key").display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "[dry-run] Would write path {} (mode 0644",
            node.disk("/etc/kubernetes/pki/ca.crt").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("[certs] Generating \"sa\" key and public key"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_dir(node.root()).unwrap().count(),
        0,
        "--dry-run created files"
    );

    init_all(&node, NODE);
    std::fs::remove_file(node.disk("/etc/kubernetes/kubelet.conf")).unwrap();
    std::fs::remove_file(node.pki("sa.pub")).unwrap();
    let before = node.snapshot();
    let out = node.ok(&args(
        &["init", "phase", "kubeconfig", "all", "--dry-run"],
        NODE,
    ));
    assert!(
        out.contains(&format!(
            "[dry-run] Would write path {} (mode 0600",
            node.disk("/etc/kubernetes/kubelet.conf").display()
        )),
        "{out}"
    );
    let out = node.ok(&args(&["init", "phase", "certs", "sa", "--dry-run"], NODE));
    assert!(
        out.contains(&format!(
            "[dry-run] Would write path {} (mode 0644",
            node.disk("/etc/kubernetes/pki/sa.pub").display()
        )),
        "{out}"
    );
    assert_eq!(node.snapshot(), before);
}

#[test]
fn skip_phases_single_sub_phases_and_root_confinement() {
    let node = Node::new();
    let out = node.ok(&args(
        &[
            "init",
            "phase",
            "certs",
            "all",
            "--skip-phases",
            "certs/sa,certs/etcd-peer",
        ],
        NODE,
    ));
    assert!(!out.contains("\"sa\""), "{out}");
    assert!(!node.pki("sa.key").exists() && !node.pki("etcd/peer.crt").exists());
    assert!(node.pki("etcd/server.crt").exists());
    node.ok(&args(&["init", "phase", "certs", "sa"], NODE));
    assert!(node.pki("sa.key").exists() && node.pki("sa.pub").exists());

    // A sub-phase alone on an empty root: its CA is missing, and the error says what to run.
    let fresh = Node::new();
    let err = fresh.fails(&args(&["init", "phase", "certs", "apiserver"], NODE), 1);
    assert!(err.contains("kubestrap init phase certs ca"), "{err}");
    let err = fresh.fails(&args(&["init", "phase", "kubeconfig", "admin"], NODE), 1);
    assert!(
        err.contains("/etc/kubernetes/pki/ca.crt") && err.contains("init phase certs ca"),
        "{err}"
    );

    // Everything written is under --root, and the journal names canonical paths.
    let mut outside = Vec::new();
    walk(node.root(), &mut |p| {
        if !p.starts_with(node.root().join("etc/kubernetes"))
            && !p.starts_with(node.root().join("var/lib/kubestrap"))
        {
            outside.push(p.to_path_buf());
        }
    });
    assert!(outside.is_empty(), "{outside:?}");
    let journal = std::fs::read_to_string(node.disk("/var/lib/kubestrap/journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"path\":\"/etc/kubernetes/pki/ca.key\""),
        "{journal}"
    );
    assert!(
        !journal.contains(node.root().to_str().unwrap()),
        "journal paths are canonical"
    );
}

#[test]
fn external_etcd_skips_every_etcd_certificate() {
    let node = Node::new();
    let config = config_file(
        &node,
        "etcd:\n  external:\n    endpoints: [\"https://10.0.0.5:2379\"]\n    caFile: /etc/etcd/ca.crt\n    certFile: /etc/etcd/c.crt\n    keyFile: /etc/etcd/c.key\n",
        "",
    );
    let (certs, _) = init_all(&node, &["--config", &config]);
    assert!(!certs.contains("etcd"), "{certs}");
    assert!(!node.pki("etcd").exists());
    assert!(!node.pki("apiserver-etcd-client.crt").exists());
    let json = node.ok(&[
        "certs",
        "check-expiration",
        "--config",
        &config,
        "-o",
        "json",
    ]);
    assert!(!json.contains("etcd"), "{json}");
}

#[test]
fn apiserver_kubelet_client_group_follows_the_kubernetes_version() {
    for (version, orgs) in [
        ("v1.36.0", vec!["kubeadm:cluster-admins"]),
        ("v1.36.1", vec![]),
    ] {
        let node = Node::new();
        node.ok(&args(
            &[
                "init",
                "phase",
                "certs",
                "all",
                "--kubernetes-version",
                version,
            ],
            NODE,
        ));
        assert_eq!(
            node.cert("apiserver-kubelet-client.crt").organizations,
            orgs,
            "{version}"
        );
    }
}

const RENEWABLE: [&str; 11] = [
    "admin.conf",
    "apiserver",
    "apiserver-etcd-client",
    "apiserver-kubelet-client",
    "controller-manager.conf",
    "etcd-healthcheck-client",
    "etcd-peer",
    "etcd-server",
    "front-proxy-client",
    "scheduler.conf",
    "super-admin.conf",
];

#[test]
fn check_expiration_reports_kubeadms_document() {
    let node = Node::new();
    init_all(&node, NODE);
    let json: serde_json::Value =
        serde_json::from_str(&node.ok(&["certs", "check-expiration", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "CertificateExpirationInfo");
    assert_eq!(json["apiVersion"], "output.kubeadm.k8s.io/v1alpha3");
    let certs = json["certificates"].as_array().unwrap();
    let names: Vec<&str> = certs.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, RENEWABLE);
    for cert in certs {
        let residual = cert["residualTime"].as_i64().unwrap();
        assert!(
            (LEAF_VALIDITY - 400..=LEAF_VALIDITY - 300).contains(&residual),
            "{cert}"
        );
        assert_eq!(cert["missing"], false);
        assert_eq!(cert["externallyManaged"], false);
        let expected_ca = match cert["name"].as_str().unwrap() {
            n if n.starts_with("etcd") || n == "apiserver-etcd-client" => "etcd-ca",
            "front-proxy-client" => "front-proxy-ca",
            _ => "ca",
        };
        assert_eq!(cert["caName"], expected_ca, "{cert}");
        let date = cert["expirationDate"].as_str().unwrap();
        assert!(date.ends_with('Z') && date.len() == 20, "{date}");
    }
    let cas: Vec<&str> = json["certificateAuthorities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cas, ["ca", "etcd-ca", "front-proxy-ca"]);
    assert!(
        json["certificateAuthorities"][0].get("caName").is_none(),
        "caName is omitted for CAs"
    );

    std::fs::remove_file(node.disk("/etc/kubernetes/super-admin.conf")).unwrap();
    std::fs::remove_file(node.pki("ca.key")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&node.ok(&["certs", "check-expiration", "-o", "json"])).unwrap();
    let by_name = |list: &str, name: &str| {
        json[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let missing = by_name("certificates", "super-admin.conf");
    assert_eq!(missing["missing"], true);
    assert_eq!(missing["expirationDate"], serde_json::Value::Null);
    assert_eq!(
        by_name("certificates", "apiserver")["externallyManaged"],
        true
    );
    assert_eq!(
        by_name("certificates", "etcd-server")["externallyManaged"],
        false
    );
    assert_eq!(
        by_name("certificateAuthorities", "ca")["externallyManaged"],
        true
    );

    let text = node.ok(&["certs", "check-expiration"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "CERTIFICATE                  EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED"
    );
    assert!(
        lines[2].starts_with("apiserver                    ")
            && lines[2].contains(" UTC   364d            ca                      yes     "),
        "{text}"
    );
    assert!(text.contains("!MISSING! super-admin.conf"), "{text}");
    assert!(text.contains("\nCERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED\nca                      "), "{text}");
    assert!(text.contains("   9y              yes     \n"), "{text}");

    let yaml = node.ok(&["certs", "check-expiration", "-o", "yaml"]);
    assert!(yaml.contains("kind: CertificateExpirationInfo\n"), "{yaml}");
}

#[test]
fn renew_gives_new_keys_and_keeps_identities() {
    let node = Node::new();
    init_all(&node, FULL);
    let before = node.snapshot();
    let out = node.ok(&["certs", "renew", "all", "--dry-run"]);
    assert!(
        out.contains(&format!(
            "[dry-run] Would write path {} (mode 0600",
            node.disk("/etc/kubernetes/pki/apiserver.key").display()
        )),
        "{out}"
    );
    assert_eq!(node.snapshot(), before, "renew --dry-run wrote files");
    let out = node.ok(&["certs", "renew", "apiserver"]);
    assert_eq!(out, "certificate for serving the Kubernetes API renewed\n");
    let after = node.snapshot();
    let changed: Vec<String> = after
        .iter()
        .filter(|(p, b)| before.get(*p) != Some(*b))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert_eq!(
        changed,
        [
            "etc/kubernetes/pki/apiserver.crt",
            "etc/kubernetes/pki/apiserver.key"
        ]
    );

    let old = CertInfo::from_pem(&before[std::path::Path::new("etc/kubernetes/pki/etcd/peer.crt")])
        .unwrap();
    let old_admin = node.kubeconfig("admin.conf");
    let out = node.ok(&["certs", "renew", "all"]);
    assert!(out.contains("certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself renewed\n"), "{out}");
    assert!(
        out.contains("certificate for etcd nodes to communicate with each other renewed\n"),
        "{out}"
    );
    assert!(out.ends_with("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.\n"), "{out}");
    assert_eq!(out.matches(" renewed\n").count(), RENEWABLE.len(), "{out}");

    let pki = node.pki("");
    let peer = node.cert("etcd/peer.crt");
    openssl_verify(&pki, "etcd/ca.crt", "etcd/peer.crt");
    assert_eq!(
        (
            peer.common_name.clone(),
            peer.dns_names.clone(),
            peer.ips.clone(),
            peer.usages.clone()
        ),
        (old.common_name, old.dns_names, old.ips, old.usages)
    );
    assert_ne!(peer.public_key, old.public_key, "a new key");
    assert_eq!(node.mode("/etc/kubernetes/pki/etcd/peer.key"), 0o600);
    let after = node.snapshot();
    for ca in [
        "ca.crt",
        "ca.key",
        "front-proxy-ca.key",
        "etcd/ca.crt",
        "sa.key",
    ] {
        let p = std::path::PathBuf::from(format!("etc/kubernetes/pki/{ca}"));
        assert_eq!(after[&p], before[&p], "{ca} must not change");
    }
    assert_eq!(
        after[std::path::Path::new("etc/kubernetes/kubelet.conf")],
        before[std::path::Path::new("etc/kubernetes/kubelet.conf")]
    );

    let admin = node.kubeconfig("admin.conf");
    let client = |c: &kubestrap::kubeconfig::KubeConfig| {
        CertInfo::from_pem(
            &c.current()
                .unwrap()
                .user
                .user
                .client_certificate_data
                .as_ref()
                .unwrap()
                .0,
        )
        .unwrap()
    };
    assert_eq!(client(&admin).common_name, "kubernetes-admin");
    assert_eq!(client(&admin).organizations, ["kubeadm:cluster-admins"]);
    assert_ne!(client(&admin).public_key, client(&old_admin).public_key);
    client(&admin)
        .verify_signed_by(&node.cert("ca.crt"))
        .unwrap();
    assert_eq!(node.mode("/etc/kubernetes/admin.conf"), 0o600);
    // The renewed files are still accepted by init.
    let (certs, kubeconfigs) = init_all(&node, FULL);
    assert!(!certs.contains("Generating") && !kubeconfigs.contains("Writing"));

    // Missing files and an external CA are reported, not errors.
    std::fs::remove_file(node.pki("front-proxy-client.crt")).unwrap();
    std::fs::remove_file(node.pki("ca.key")).unwrap();
    let out = node.ok(&["certs", "renew", "all"]);
    assert!(
        out.contains("MISSING! certificate for the front proxy client\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "Detected external ca, certificate for serving the Kubernetes API can't be renewed\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("certificate for serving etcd renewed\n"),
        "{out}"
    );

    let err = node.fails(&["certs", "renew", "kubelet.conf"], 2);
    assert!(err.contains("kubelet.conf"), "{err}");
}

#[test]
fn generate_csr_writes_keys_and_verifiable_requests() {
    let node = Node::new();
    let config = config_file(&node, "controlPlaneEndpoint: cp.example.test\n", "");
    let out = node.ok(&["certs", "generate-csr", "--config", &config, "--dry-run"]);
    assert!(
        out.contains(&format!(
            "[dry-run] Would write path {} (mode 0644",
            node.disk("/etc/kubernetes/admin.conf.csr").display()
        )),
        "{out}"
    );
    assert_eq!(node.snapshot().len(), 1, "only the config file");
    let out = node.ok(&["certs", "generate-csr", "--config", &config]);
    assert!(
        out.starts_with("generating keys and CSRs in /etc/kubernetes/pki\n  apiserver\n"),
        "{out}"
    );
    assert!(
        out.contains("generating keys and CSRs in /etc/kubernetes\n  admin.conf\n"),
        "{out}"
    );
    let pki = node.pki("");
    for (file, _, cn, orgs, _) in LEAVES {
        let base = file.trim_end_matches(".crt");
        let csr = format!("{base}.csr");
        let text = openssl(&["req", "-verify", "-noout", "-text", "-in", &csr], &pki);
        assert!(
            text.contains("verify OK")
                || text.contains("Certificate request self-signature verify OK"),
            "{text}"
        );
        let subject = if orgs.is_empty() {
            format!("Subject: CN = {cn}")
        } else {
            format!("Subject: O = {}, CN = {cn}", orgs[0])
        };
        assert!(text.contains(&subject), "{csr}: {text}");
        assert_eq!(node.mode(&format!("/etc/kubernetes/pki/{base}.key")), 0o600);
        assert_eq!(node.mode(&format!("/etc/kubernetes/pki/{base}.csr")), 0o644);
        assert!(!node.pki(file).exists());
    }
    let text = openssl(&["req", "-noout", "-text", "-in", "apiserver.csr"], &pki);
    assert!(
        text.contains("DNS:cp.example.test")
            && text.contains("IP Address:10.96.0.1")
            && text.contains("IP Address:192.0.2.10"),
        "{text}"
    );
    let kubeconfig_dir = node.disk("/etc/kubernetes");
    for (file, user, _, server) in KUBECONFIGS {
        let text = openssl(
            &[
                "req",
                "-verify",
                "-noout",
                "-text",
                "-in",
                &format!("{file}.csr"),
            ],
            &kubeconfig_dir,
        );
        assert!(text.contains(&format!("CN = {user}")), "{file}: {text}");
        let config = node.kubeconfig(file);
        let current = config.current().unwrap();
        assert_eq!(current.cluster.cluster.server, *server);
        assert!(current.cluster.cluster.certificate_authority_data.is_none());
        assert!(current.user.user.client_certificate_data.is_none());
        let key =
            keys::parse_private_key_pem(&current.user.user.client_key_data.as_ref().unwrap().0)
                .unwrap();
        assert_eq!(key_pair_kind(&key), KeyKind::EcdsaP256);
        assert_eq!(node.mode(&format!("/etc/kubernetes/{file}")), 0o600);
    }
    let before = node.snapshot();
    let err = node.fails(&["certs", "generate-csr", "--config", &config], 1);
    assert!(
        err.contains("file already exists: /etc/kubernetes/pki/apiserver.key"),
        "{err}"
    );
    assert_eq!(node.snapshot(), before);
}

#[test]
fn certificate_key_prints_64_random_hex_characters() {
    let node = Node::new();
    let a = node.ok(&["certs", "certificate-key"]);
    let b = node.ok(&["certs", "certificate-key"]);
    for key in [&a, &b] {
        let key = key.trim_end_matches('\n');
        assert_eq!(key.len(), 64, "{key}");
        assert!(
            key.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            "{key}"
        );
    }
    assert_ne!(a, b);
    assert_eq!(std::fs::read_dir(node.root()).unwrap().count(), 0);
}
