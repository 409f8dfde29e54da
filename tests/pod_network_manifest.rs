//! `--pod-network-manifest`: hand-written upstream-like manifests (tests/fixtures/pod-network) edited at
//! their addon's fields — checked field by field, with every other document kept byte for byte and
//! every edited one identical but for the named fields; the edited manifests pass the Kubernetes schema
//! (kubernetes-validate); refusals (a missing field, the wrong addon, an unreadable file, http://,
//! `--pod-network none`) exit 2 with nothing written; an https:// URL is fetched from a TLS server on
//! loopback whose CA the child trusts through SSL_CERT_FILE.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use kubestrap::addons::manifest::{self, Change, Edited};
use kubestrap::addons::pod_network;
use kubestrap::config::flags::{InitFlags, PodNetwork};
use kubestrap::host::Facts;
use kubestrap::model::{InterfaceSelection, Model, PodInterface};
use kubestrap::podnet;
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pod-network")
        .join(name)
}

const FLANNEL: &str = "kube-flannel.yml";
const CALICO: &str = "calico.yaml";
const WEAVE: &str = "weave-daemonset-k8s.yaml";

fn model(pod_subnet: &str, addon: &str) -> Model {
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {{name: cp1}}\n\
         localAPIEndpoint: {{advertiseAddress: 192.168.8.201}}\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
         networking: {{podSubnet: \"{pod_subnet}\", serviceSubnet: \"10.96.0.0/12,fd00:10:96::/112\"}}\n"
    );
    let file = kubestrap::config::load::parse(&text).unwrap();
    let flags = InitFlags {
        pod_network: Some(PodNetwork::named(addon).unwrap()),
        ..Default::default()
    };
    kubestrap::model::resolve::init::resolve_file(file, &flags, &Facts::default(), &[])
        .unwrap()
        .model
}

/// The fixture `file` recognised (no --pod-network) and edited for `pod_subnet`, an interface MTU of
/// 1500 and a selection of `selection` (a subnet or an address).
fn edit(file: &str, pod_subnet: &str, selection: &str) -> Edited {
    let read = manifest::read(fixture(file).to_str().unwrap(), None).unwrap();
    let m = model(pod_subnet, read.addon.name);
    let interface = PodInterface {
        mtu: Some(1500),
        selection: match selection.parse() {
            Ok(net) => InterfaceSelection::Cidr(net),
            Err(_) => InterfaceSelection::CanReach(selection.parse().unwrap()),
        },
        ipip: None,
    };
    let values =
        pod_network::values(read.addon, &m.control_plane().unwrap(), Some(interface)).unwrap();
    read.edit(&values).unwrap()
}

/// The documents of a stream as (text, value), split at its `---` lines.
fn documents(text: &str) -> Vec<(String, Value)> {
    let mut chunks: Vec<String> = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if line.starts_with("---") && !chunks.last().unwrap().is_empty() {
            chunks.push(String::new());
        }
        chunks.last_mut().unwrap().push_str(line);
    }
    chunks
        .into_iter()
        .map(|c| {
            let mut docs = kubestrap::yaml::documents(&c).unwrap();
            assert!(docs.len() <= 1, "{c}");
            (c, docs.pop().unwrap_or(Value::Null))
        })
        .collect()
}

/// The JSON-pointer paths where `after` differs from `before` (the deepest ones: a changed, added or
/// removed key or element).
fn differences(before: &Value, after: &Value) -> BTreeSet<String> {
    fn walk(before: &Value, after: &Value, path: String, out: &mut BTreeSet<String>) {
        match (before, after) {
            (Value::Object(a), Value::Object(b)) => {
                for key in a.keys().chain(b.keys()) {
                    let here = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                    match (a.get(key), b.get(key)) {
                        (Some(x), Some(y)) => walk(x, y, here, out),
                        _ => {
                            out.insert(here);
                        }
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                for i in 0..a.len().max(b.len()) {
                    let here = format!("{path}/{i}");
                    match (a.get(i), b.get(i)) {
                        (Some(x), Some(y)) => walk(x, y, here, out),
                        _ => {
                            out.insert(here);
                        }
                    }
                }
            }
            (x, y) if x != y => {
                out.insert(path);
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(before, after, String::new(), &mut out);
    out
}

/// Every document of `file` comes out of the edit: byte for byte unless it is one of `edited`
/// (by kind/name), and those differ from the input only at `paths`.
fn only_these_changed(file: &str, edited: &Edited, expected: &[(&str, &[&str])]) {
    let original = std::fs::read_to_string(fixture(file)).unwrap();
    let before = documents(&original);
    let after = documents(&edited.text);
    assert_eq!(before.len(), after.len(), "{}", edited.text);
    let mut seen = BTreeSet::new();
    for ((text_before, value_before), (text_after, value_after)) in before.iter().zip(&after) {
        let id = format!(
            "{}/{}",
            value_before["kind"].as_str().unwrap_or_default(),
            value_before["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
        );
        match expected.iter().find(|(name, _)| *name == id) {
            Some((_, paths)) => {
                seen.insert(id.clone());
                let want: BTreeSet<String> = paths.iter().map(|p| p.to_string()).collect();
                assert_eq!(differences(value_before, value_after), want, "{id}");
            }
            None => assert_eq!(text_before, text_after, "{id} is kept byte for byte"),
        }
    }
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
}

fn find(edited: &Edited, kind: &str, name: &str) -> Value {
    for (_, value) in documents(&edited.text) {
        let items: Vec<Value> = if value["kind"] == "List" {
            value["items"].as_array().unwrap().clone()
        } else {
            vec![value]
        };
        for item in items {
            if item["kind"] == kind && item["metadata"]["name"] == name {
                return item;
            }
        }
    }
    panic!("{kind}/{name} not in\n{}", edited.text)
}

fn container(daemonset: &Value, name: &str) -> Value {
    let pod = &daemonset["spec"]["template"]["spec"];
    pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["initContainers"].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
        .unwrap()
        .clone()
}

fn env(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].as_str().unwrap().to_string())
}

fn json_key(config_map: &Value, key: &str) -> Value {
    serde_json::from_str(config_map["data"][key].as_str().unwrap()).unwrap()
}

fn change(object: &str, field: &str, old: Option<&str>, new: Option<&str>) -> Change {
    Change {
        object: object.to_string(),
        field: field.to_string(),
        old: old.map(str::to_string),
        new: new.map(str::to_string),
    }
}

#[test]
fn flannel_ipv4_fields_are_set_and_nothing_else_moves() {
    let edited = edit(FLANNEL, "10.200.0.0/16", "192.168.8.0/24");
    assert_eq!(edited.addon.name, "flannel");
    let cm = find(&edited, "ConfigMap", "kube-flannel-cfg");
    assert_eq!(
        json_key(&cm, "net-conf.json"),
        json!({"Network": "10.200.0.0/16", "EnableNFTables": false, "Backend": {"Type": "vxlan"}})
    );
    let cni = json_key(&cm, "cni-conf.json");
    assert_eq!(
        cni["plugins"][0]["delegate"],
        json!({"hairpinMode": true, "isDefaultGateway": true, "mtu": 1450})
    );
    assert_eq!(
        cni["plugins"][1],
        json!({"type": "portmap", "capabilities": {"portMappings": true}})
    );
    let flanneld = container(
        &find(&edited, "DaemonSet", "kube-flannel-ds"),
        "kube-flannel",
    );
    assert_eq!(
        flanneld["args"],
        json!([
            "--ip-masq",
            "--kube-subnet-mgr",
            "--iface-regex=^192\\.168\\.8\\.[0-9]+$"
        ])
    );
    assert_eq!(
        edited.changes,
        [
            change(
                "ConfigMap kube-flannel/kube-flannel-cfg",
                "data[\"net-conf.json\"].Network",
                Some("10.244.0.0/16"),
                Some("10.200.0.0/16")
            ),
            change(
                "ConfigMap kube-flannel/kube-flannel-cfg",
                "data[\"cni-conf.json\"].plugins[type=flannel].delegate.mtu",
                None,
                Some("1450")
            ),
            change(
                "DaemonSet kube-flannel/kube-flannel-ds",
                "containers[kube-flannel].args[--iface|--iface-regex|--iface-can-reach]",
                None,
                Some("--iface-regex=^192\\.168\\.8\\.[0-9]+$")
            ),
        ]
    );
    only_these_changed(
        FLANNEL,
        &edited,
        &[
            (
                "ConfigMap/kube-flannel-cfg",
                &["/data/net-conf.json", "/data/cni-conf.json"],
            ),
            (
                "DaemonSet/kube-flannel-ds",
                &["/spec/template/spec/containers/0/args/2"],
            ),
        ],
    );
    // Six objects, all typed.
    assert_eq!(edited.objects.len(), 6);
}

#[test]
fn flannel_dual_stack_and_can_reach_replace_an_existing_interface_flag() {
    let original = std::fs::read_to_string(fixture(FLANNEL)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kube-flannel.yml");
    std::fs::write(
        &file,
        original.replace(
            "        - --kube-subnet-mgr\n",
            "        - --kube-subnet-mgr\n        - --iface=eth0\n",
        ),
    )
    .unwrap();
    let read = manifest::read(file.to_str().unwrap(), podnet::get("flannel")).unwrap();
    let m = model("10.200.0.0/16,fd00:10:200::/56", "flannel");
    let values = pod_network::values(
        read.addon,
        &m.control_plane().unwrap(),
        Some(PodInterface {
            mtu: Some(9000),
            selection: InterfaceSelection::CanReach("192.168.8.100".parse().unwrap()),
            ipip: None,
        }),
    )
    .unwrap();
    let edited = read.edit(&values).unwrap();
    let cm = find(&edited, "ConfigMap", "kube-flannel-cfg");
    assert_eq!(
        json_key(&cm, "net-conf.json"),
        json!({"Network": "10.200.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:10:200::/56",
               "EnableNFTables": false, "Backend": {"Type": "vxlan"}})
    );
    assert_eq!(
        json_key(&cm, "cni-conf.json")["plugins"][0]["delegate"]["mtu"],
        8950
    );
    let flanneld = container(
        &find(&edited, "DaemonSet", "kube-flannel-ds"),
        "kube-flannel",
    );
    // node 1's interface name is replaced, in place, by a selection every node satisfies
    assert_eq!(
        flanneld["args"],
        json!([
            "--ip-masq",
            "--kube-subnet-mgr",
            "--iface-can-reach=192.168.8.100"
        ])
    );
    assert!(edited.changes.contains(&change(
        "DaemonSet kube-flannel/kube-flannel-ds",
        "containers[kube-flannel].args[--iface|--iface-regex|--iface-can-reach]",
        Some("--iface=eth0"),
        Some("--iface-can-reach=192.168.8.100")
    )));
}

#[test]
fn calico_fields_are_set_and_nothing_else_moves() {
    let edited = edit(CALICO, "10.200.0.0/16", "192.168.8.0/24");
    assert_eq!(edited.addon.name, "calico");
    let cm = find(&edited, "ConfigMap", "calico-config");
    assert_eq!(cm["data"]["veth_mtu"], "1480");
    // The CNI config template (not JSON: `"mtu": __CNI_MTU__`) is untouched.
    let original = documents(&std::fs::read_to_string(fixture(CALICO)).unwrap());
    let template = original
        .iter()
        .find(|(_, v)| v["metadata"]["name"] == "calico-config")
        .unwrap()
        .1["data"]["cni_network_config"]
        .clone();
    assert_eq!(cm["data"]["cni_network_config"], template);
    let node = container(&find(&edited, "DaemonSet", "calico-node"), "calico-node");
    assert_eq!(
        env(&node, "CALICO_IPV4POOL_CIDR").as_deref(),
        Some("10.200.0.0/16")
    );
    assert_eq!(
        env(&node, "IP_AUTODETECTION_METHOD").as_deref(),
        Some("cidr=192.168.8.0/24")
    );
    assert_eq!(env(&node, "IP").as_deref(), Some("autodetect"));
    assert_eq!(
        edited.changes,
        [
            change(
                "DaemonSet kube-system/calico-node",
                "containers[calico-node].env[CALICO_IPV4POOL_CIDR]",
                None,
                Some("10.200.0.0/16")
            ),
            change(
                "ConfigMap kube-system/calico-config",
                "data[\"veth_mtu\"]",
                Some("0"),
                Some("1480")
            ),
            change(
                "DaemonSet kube-system/calico-node",
                "containers[calico-node].env[IP_AUTODETECTION_METHOD]",
                None,
                Some("cidr=192.168.8.0/24")
            ),
        ]
    );
    only_these_changed(
        CALICO,
        &edited,
        &[
            ("ConfigMap/calico-config", &["/data/veth_mtu"]),
            (
                "DaemonSet/calico-node",
                &[
                    "/spec/template/spec/containers/0/env/14",
                    "/spec/template/spec/containers/0/env/15",
                ],
            ),
        ],
    );
    // The PodDisruptionBudget and the CRD are applied like the rest.
    assert_eq!(edited.objects.len(), 10);
}

#[test]
fn weave_list_is_edited_in_place() {
    let edited = edit(WEAVE, "10.32.0.0/12", "192.168.8.0/24");
    assert_eq!(edited.addon.name, "weave");
    let weave = container(&find(&edited, "DaemonSet", "weave-net"), "weave");
    assert_eq!(
        env(&weave, "IPALLOC_RANGE").as_deref(),
        Some("10.32.0.0/12")
    );
    assert_eq!(env(&weave, "WEAVE_MTU").as_deref(), Some("1376"));
    assert_eq!(env(&weave, "INIT_CONTAINER").as_deref(), Some("true"));
    assert_eq!(edited.changes.len(), 2, "{:?}", edited.changes);
    only_these_changed(
        WEAVE,
        &edited,
        &[(
            "List/",
            &[
                "/items/5/spec/template/spec/containers/0/env/2",
                "/items/5/spec/template/spec/containers/0/env/3",
            ],
        )],
    );
    assert_eq!(edited.objects.len(), 6);
}

#[test]
fn what_the_fields_cannot_carry_is_refused() {
    // calico's CNI template cannot take an IPv6 pool by a typed edit
    let read = manifest::read(fixture(CALICO).to_str().unwrap(), None).unwrap();
    let m = model("10.200.0.0/16,fd00:10:200::/56", "calico");
    let values = pod_network::values(read.addon, &m.control_plane().unwrap(), None).unwrap();
    let err = read.edit(&values).unwrap_err().to_string();
    assert!(
        err.contains("--pod-network-manifest") && err.contains("IPv6 pod subnet fd00:10:200::/56"),
        "{err}"
    );
}

#[test]
fn edited_manifests_pass_kubernetes_validate() {
    let out = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (file, subnet, selection) in [
        (FLANNEL, "10.200.0.0/16", "192.168.8.0/24"),
        (FLANNEL, "10.200.0.0/16,fd00:10:200::/56", "192.168.8.100"),
        (CALICO, "10.200.0.0/16", "192.168.8.100"),
        (WEAVE, "10.32.0.0/12", "192.168.8.0/24"),
    ] {
        let edited = edit(file, subnet, selection);
        // Each object on its own (kubernetes-validate does not look into a List's items).
        let mut objects = Vec::new();
        for (_, value) in documents(&edited.text) {
            match value {
                Value::Null => {}
                v if v["kind"] == "List" => objects.extend(v["items"].as_array().unwrap().clone()),
                v => objects.push(v),
            }
        }
        let path = out.path().join(format!("{}-{}.yaml", files.len(), file));
        std::fs::write(&path, kubestrap::yaml::to_documents(&objects).unwrap()).unwrap();
        files.push((path, objects.len()));
    }
    let result = Command::new("python3")
        .args(["-m", "kubernetes_validate", "-k", "1.33.0", "--strict"])
        .args(files.iter().map(|(f, _)| f))
        .output()
        .expect("python3 must be installed");
    let report = String::from_utf8_lossy(&result.stdout).to_string()
        + &String::from_utf8_lossy(&result.stderr);
    assert!(
        !report.contains("No module named kubernetes_validate"),
        "kubernetes-validate must be installed (see .ci/pip-packages)"
    );
    assert!(result.status.success(), "{report}");
    let objects: usize = files.iter().map(|(_, n)| n).sum();
    assert_eq!(report.matches("passed").count(), objects, "{report}");
}

// ---- through the CLI ----

fn kubestrap(root: &Path, args: &[&str], envs: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = Command::cargo_bin("kubestrap").unwrap();
    cmd.arg("--root")
        .arg(root)
        .args([
            "init",
            "--node-name",
            "cp1",
            "--apiserver-advertise-address",
            "192.0.2.10",
        ])
        .args(args);
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.output().unwrap()
}

fn assert_empty(root: &Path, case: &str) {
    let left: Vec<_> = std::fs::read_dir(root).unwrap().collect();
    assert!(left.is_empty(), "{case}: written under --root: {left:?}");
}

#[test]
fn refusals_exit_2_name_the_flag_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flannel = std::fs::read_to_string(fixture(FLANNEL)).unwrap();
    let calico = std::fs::read_to_string(fixture(CALICO)).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let no_network = write(
        "no-network.yml",
        flannel.replace("      \"Network\": \"10.244.0.0/16\",\n", ""),
    );
    let no_config_map = write(
        "no-calico-config.yaml",
        calico.replace(
            "name: calico-config\n  namespace",
            "name: calico-settings\n  namespace",
        ),
    );
    let no_container = write(
        "renamed-container.yml",
        flannel.replace("- name: kube-flannel\n", "- name: flanneld\n"),
    );
    let unknown = write(
        "other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\n".to_string(),
    );
    let flannel_path = fixture(FLANNEL).to_str().unwrap().to_string();
    let calico_path = fixture(CALICO).to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "missing Network",
            vec!["--pod-network-manifest", &no_network],
            vec![
                "--pod-network-manifest",
                "no-network.yml",
                "ConfigMap/kube-flannel-cfg data[\"net-conf.json\"].Network",
                "does not set it",
            ],
        ),
        (
            "missing ConfigMap",
            vec!["--pod-network-manifest", &no_config_map],
            vec!["the manifest has no ConfigMap/calico-config", "veth_mtu"],
        ),
        (
            "missing container",
            vec!["--pod-network-manifest", &no_container],
            vec!["has no container \"kube-flannel\""],
        ),
        (
            "wrong addon",
            vec![
                "--pod-network",
                "calico",
                "--pod-network-manifest",
                &flannel_path,
            ],
            vec![
                "not a calico manifest",
                "no DaemonSet calico-node",
                "--pod-network flannel",
            ],
        ),
        (
            "no addon",
            vec!["--pod-network-manifest", &unknown],
            vec![
                "recognised as no pod-network addon",
                "kube-flannel-ds (flannel)",
            ],
        ),
        (
            "unreadable",
            vec!["--pod-network-manifest", "/nonexistent/kube-flannel.yml"],
            vec![
                "--pod-network-manifest",
                "/nonexistent/kube-flannel.yml",
                "can not be read",
            ],
        ),
        (
            "http",
            vec![
                "--pod-network-manifest",
                "http://127.0.0.1:1/kube-flannel.yml",
            ],
            vec![
                "http://127.0.0.1:1/kube-flannel.yml",
                "plain http is refused",
            ],
        ),
        (
            "none",
            vec![
                "--pod-network",
                "none",
                "--pod-network-manifest",
                &flannel_path,
            ],
            vec!["--pod-network", "conflicts with --pod-network-manifest"],
        ),
        (
            "calico IPv6",
            vec![
                "--pod-network-manifest",
                &calico_path,
                "--pod-network-cidr",
                "10.200.0.0/16,fd00:10:200::/56",
            ],
            vec!["IPv6 pod subnet fd00:10:200::/56"],
        ),
    ];
    for (case, args, needles) in cases {
        let root = tempfile::tempdir().unwrap();
        let mut all = args.clone();
        all.extend(["phase", "addon", "pod-network"]);
        let out = kubestrap(root.path(), &all, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{case}: {needle:?} in {stderr}");
        }
        assert_empty(root.path(), case);
    }
}

#[test]
fn dry_run_prints_the_edited_manifest_and_the_changes() {
    let root = tempfile::tempdir().unwrap();
    let out = kubestrap(
        root.path(),
        &[
            "--dry-run",
            "--pod-network-manifest",
            fixture(WEAVE).to_str().unwrap(),
            "phase",
            "addon",
            "pod-network",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // recognised as weave without --pod-network; the default pod subnet set, said on stderr
    assert!(
        stderr.contains(
            "[addons] --pod-network-manifest: set DaemonSet kube-system/weave-net \
             containers[weave].env[IPALLOC_RANGE]: (absent) → \"10.244.0.0/16\""
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("Weave Net is archived upstream"),
        "{stderr}"
    );
    assert!(
        stdout.contains("[dry-run] Content of the weave manifest from "),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\t            - name: IPALLOC_RANGE\n\t              value: 10.244.0.0/16\n"
        ) || stdout.contains("value: 10.244.0.0/16"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Would apply api-object apps/v1 DaemonSet kube-system/weave-net"),
        "{stdout}"
    );
    assert_empty(root.path(), "dry run");
}

// ---- an https:// URL ----

/// (CA PEM, serving cert PEM, key PEM) for 127.0.0.1.
fn tls_material() -> (String, Vec<u8>, Vec<u8>) {
    use kubestrap::pki::cert::{self, AltNames, Authority, LeafTemplate, Subject, Usage, Validity};
    let validity = || Validity::from_now(Duration::from_secs(3600)).unwrap();
    let ca_key = kubestrap::pki::keys::generate(Default::default()).unwrap();
    let ca = cert::self_signed_ca("manifest-test-ca", validity(), &ca_key).unwrap();
    let authority = Authority::new(&ca.der, ca_key).unwrap();
    let key = kubestrap::pki::keys::generate(Default::default()).unwrap();
    let mut names = AltNames::default();
    names.add_ip(IpAddr::from([127, 0, 0, 1]));
    let template = LeafTemplate {
        subject: Subject::new("manifests", &[]),
        usages: vec![Usage::ServerAuth],
        alt_names: names,
    };
    let serving = authority.sign(&template, validity(), &key).unwrap();
    (
        ca.pem,
        serving.pem.into_bytes(),
        kubestrap::pki::keys::private_key_pem(&key).into_bytes(),
    )
}

/// Serves `/kube-flannel.yml` (and 404 for anything else) over TLS on loopback, for the life of the
/// test process; returns the base URL.
fn serve(cert: &[u8], key: &[u8], body: String) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .map(|c| c.unwrap())
        .collect();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, PrivateKeyDer::from_pem_slice(key).unwrap())
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(50) {
            let Ok(tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&request);
            let (status, extra, text) = if head.starts_with("GET /kube-flannel.yml ") {
                ("200 OK", "", body.as_str())
            } else if head.starts_with("GET /moved ") {
                ("302 Found", "Location: /kube-flannel.yml\r\n", "")
            } else if head.starts_with("GET /downgraded ") {
                (
                    "302 Found",
                    "Location: http://127.0.0.1:1/kube-flannel.yml\r\n",
                    "",
                )
            } else {
                ("404 Not Found", "", "no such manifest")
            };
            let response = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = tls.write_all(response.as_bytes());
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    url
}

#[test]
fn an_https_url_is_fetched_and_edited_and_an_untrusted_or_missing_one_refused() {
    let (ca, cert, key) = tls_material();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let url = serve(
        &cert,
        &key,
        std::fs::read_to_string(fixture(FLANNEL)).unwrap(),
    );
    let trusted = [("SSL_CERT_FILE", ca_file.as_path())];
    let phase = ["phase", "addon", "pod-network"];

    let root = tempfile::tempdir().unwrap();
    let manifest_url = format!("{url}/kube-flannel.yml");
    let mut args = vec![
        "--dry-run",
        "--pod-network-cidr",
        "10.201.0.0/16",
        "--pod-network-manifest",
        &manifest_url,
    ];
    args.extend(phase);
    let out = kubestrap(root.path(), &args, &trusted);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("data[\"net-conf.json\"].Network: \"10.244.0.0/16\" → \"10.201.0.0/16\""),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "Content of the flannel manifest from {manifest_url}, edited"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"Network\": \"10.201.0.0/16\""),
        "{stdout}"
    );
    assert_empty(root.path(), "fetched dry run");

    // a redirect within https is followed
    let root = tempfile::tempdir().unwrap();
    let moved = format!("{url}/moved");
    let mut args = vec!["--dry-run", "--pod-network-manifest", &moved];
    args.extend(phase);
    let out = kubestrap(root.path(), &args, &trusted);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("Would apply api-object apps/v1 DaemonSet kube-flannel/kube-flannel-ds")
    );

    // a server whose CA the client does not trust, a missing document, a redirect to http://
    let missing = format!("{url}/calico.yaml");
    let downgraded = format!("{url}/downgraded");
    for (location, envs, needle) in [
        (manifest_url.as_str(), &[][..], "can not be fetched"),
        (missing.as_str(), &trusted[..], "HTTP 404"),
        (
            downgraded.as_str(),
            &trusted[..],
            "refused a redirect to http://127.0.0.1:1/kube-flannel.yml",
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let mut args = vec!["--pod-network-manifest", location];
        args.extend(phase);
        let out = kubestrap(root.path(), &args, envs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--pod-network-manifest")
                && stderr.contains(location)
                && stderr.contains(needle),
            "{stderr}"
        );
        assert_empty(root.path(), location);
    }
}
