//! The testbed's multi-call binary: the doubles (the container runtime among them), the node's
//! service manager and its systemctl, chosen by the name it runs as or by its first argument.

use std::path::Path;

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let invoked = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let (name, rest) = if invoked == "tbnode" && args.len() > 1 {
        let name = args.remove(1);
        (name, args[1..].to_vec())
    } else {
        (invoked, args[1..].to_vec())
    };
    let code = match name.as_str() {
        "kube-apiserver" => kubestrap_testbed::apiserver::main(&rest),
        "kubelet" => kubestrap_testbed::kubelet::main(&rest),
        "kube-controller-manager" => kubestrap_testbed::controller_manager::main(&rest),
        "kube-scheduler" => kubestrap_testbed::scheduler::main(&rest),
        "kube-proxy" => kubestrap_testbed::proxy::main(&rest),
        "coredns" => kubestrap_testbed::coredns::main(&rest),
        "containerd" => kubestrap_testbed::cri::main(&rest),
        "agnhost" => kubestrap_testbed::agnhost::main(&rest),
        "flanneld" => kubestrap_testbed::addons::flannel::main(&rest),
        "flannel-cni" => kubestrap_testbed::addons::flannel::cni::main(&rest),
        "dns-forward" => kubestrap_testbed::node::dns::main(&rest),
        "pod-exec" => kubestrap_testbed::cri::sandbox::main(&rest),
        // PID 1 runs as `systemd` so that /proc/1/comm names the init system kubestrap drives.
        "init" | "systemd" => kubestrap_testbed::node::init::main(&rest),
        "systemctl" => kubestrap_testbed::node::systemctl::main(&rest),
        other if kubestrap_testbed::addons::dispatches(other) => {
            kubestrap_testbed::addons::main(other, &rest)
        }
        other => {
            eprintln!("tbnode: unknown component {other:?}");
            2
        }
    };
    std::process::exit(code);
}
