//! The pod-network addons' doubles (flannel, calico and weave): which images they provide and the
//! multi-call names they answer to.

pub mod calico;
pub mod calico_cni;
pub mod flannel;
pub mod weave;

pub use crate::common::command::{run, run_with_input};

/// The binaries an addon image provides, by repository (None: not an addon image of this module).
pub fn binaries(repo: &str) -> Option<&'static [&'static str]> {
    match repo_tail(repo) {
        "calico/node" => Some(&["calico-node"]),
        "calico/cni" => Some(&["install", "calico", "calico-ipam"]),
        "weaveworks/weave-kube" => Some(&["init.sh", "launch.sh"]),
        "weaveworks/weave-npc" => Some(&["weave-npc"]),
        _ => None,
    }
}

/// The image's entrypoint when a container gives no command: calico/node's runs its daemons
/// (the real image's runit; here the double's daemon mode).
pub fn entrypoint(repo: &str) -> Option<&'static [&'static str]> {
    match repo_tail(repo) {
        "calico/node" => Some(&["calico-node"]),
        "weaveworks/weave-npc" => Some(&["weave-npc"]),
        _ => None,
    }
}

/// Binaries an addon image keeps outside the PATH.
pub fn image_paths(repo: &str) -> &'static [&'static str] {
    match repo_tail(repo) {
        "calico/cni" => &[
            "/opt/cni/bin/install",
            "/opt/cni/bin/calico",
            "/opt/cni/bin/calico-ipam",
        ],
        "weaveworks/weave-kube" => &["/home/weave/init.sh", "/home/weave/launch.sh"],
        _ => &[],
    }
}

/// `owner/name` of a repository reference (`quay.io/calico/node` → `calico/node`).
fn repo_tail(repo: &str) -> &str {
    let mut parts = repo.rsplitn(3, '/');
    let name = parts.next().unwrap_or_default();
    let owner = parts.next().unwrap_or_default();
    let len = owner.len() + 1 + name.len();
    if owner.is_empty() {
        name
    } else {
        &repo[repo.len() - len..]
    }
}

/// The multi-call names this module answers to.
pub fn dispatches(name: &str) -> bool {
    matches!(
        name,
        "calico-node"
            | "install"
            | "calico"
            | "calico-ipam"
            | "init.sh"
            | "launch.sh"
            | "weave-npc"
            | "weave-net"
    )
}

/// Runs the double `name` (`tbnode` dispatches here for [`dispatches`] names).
pub fn main(name: &str, args: &[String]) -> i32 {
    match name {
        "calico-node" => calico::main(args),
        "install" => calico::install_main(args),
        "calico" => calico_cni::plugin_main(args),
        "calico-ipam" => calico_cni::ipam_main(args),
        "init.sh" => weave::init_main(args),
        "launch.sh" => weave::launch_main(args),
        "weave-npc" => weave::npc_main(args),
        "weave-net" => weave::plugin_main(args),
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_matched_by_owner_and_name() {
        assert_eq!(repo_tail("quay.io/calico/node"), "calico/node");
        assert_eq!(repo_tail("calico/cni"), "calico/cni");
        assert_eq!(repo_tail("node"), "node");
        assert!(binaries("quay.io/calico/cni").is_some());
        assert!(binaries("registry.k8s.io/node").is_none());
        assert_eq!(image_paths("mirror.example/k8s/calico/cni").len(), 3);
    }
}
