//! Every pod-network addon's rendered manifest, in several variants (IPv4, dual-stack, IPv6-only where
//! the addon carries it; MTUs known and unknown; subnet and can-reach interface selections; a mirror),
//! validated against the Kubernetes 1.33 schema by the PyPI tool `kubernetes-validate` (strict: an
//! unknown field fails), beside the typed decoding the renderer does itself.

use std::process::Command;

use kubestrap::addons::pod_network;
use kubestrap::config::flags::{InitFlags, PodNetwork};
use kubestrap::host::Facts;
use kubestrap::model::{InterfaceSelection, Model, PodInterface};
use kubestrap::podnet;

fn model(config: &str, addon: &str) -> Model {
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {{name: cp1}}\n\
         localAPIEndpoint: {{advertiseAddress: 192.168.8.201}}\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n{config}"
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

#[test]
fn every_rendered_addon_passes_kubernetes_validate() {
    let out = tempfile::tempdir().unwrap();
    let variants: [(&str, &str, Option<PodInterface>); 4] = [
        ("default", "", None),
        (
            "v4-subnet-1500",
            "networking: {podSubnet: 10.200.0.0/16}\n",
            Some(PodInterface {
                mtu: Some(1500),
                selection: InterfaceSelection::Cidr("192.168.8.0/24".parse().unwrap()),
                // a kernel without IP-in-IP: calico renders its VXLAN variant
                ipip: Some(false),
            }),
        ),
        (
            "dual-mirror-9000",
            "imageRepository: mirror.example/k8s\nnetworking: {podSubnet: \"10.200.0.0/16,fd00:10:200::/56\", \
             serviceSubnet: \"10.96.0.0/12,fd00:10:96::/112\"}\n",
            Some(PodInterface {
                mtu: Some(9000),
                selection: InterfaceSelection::CanReach("192.168.8.201".parse().unwrap()),
                ipip: None,
            }),
        ),
        (
            "v6-subnet-1400",
            "networking: {podSubnet: \"fd00:10:200::/56\", serviceSubnet: \"fd00:10:96::/112\"}\n",
            Some(PodInterface {
                mtu: Some(1400),
                selection: InterfaceSelection::Cidr("fd00:1::/64".parse().unwrap()),
                ipip: Some(true),
            }),
        ),
    ];
    let mut files = Vec::new();
    for addon in podnet::all() {
        for (name, config, interface) in &variants {
            if config.contains("fd00:10:200") && !addon.supports(podnet::Family::Ipv6) {
                continue;
            }
            let m = model(config, addon.name);
            let (text, objects) =
                pod_network::render(addon, &m.control_plane().unwrap(), *interface).unwrap();
            assert!(!objects.is_empty());
            let file = out.path().join(format!("{}-{name}.yaml", addon.name));
            std::fs::write(&file, text).unwrap();
            files.push((file, objects.len()));
        }
    }
    assert!(files.len() >= 10, "{files:?}");
    // Through the module, so a console script missing from PATH (pyenv before a rehash) does not matter.
    let result = Command::new("python3")
        .args(["-m", "kubernetes_validate", "-k", "1.33.0", "--strict"])
        .args(files.iter().map(|(f, _)| f))
        .output()
        .expect("python3 must be installed");
    assert!(
        !String::from_utf8_lossy(&result.stderr).contains("No module named kubernetes_validate"),
        "kubernetes-validate must be installed (pip install kubernetes-validate; see .ci/pip-packages)"
    );
    let report = String::from_utf8_lossy(&result.stdout).to_string()
        + &String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{report}");
    let objects: usize = files.iter().map(|(_, n)| n).sum();
    assert_eq!(report.matches("passed").count(), objects, "{report}");
}
