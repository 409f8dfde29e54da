//! `kubestrap version`: the tool's version, in kubeadm's `output.kubeadm.k8s.io/v1alpha3` shape for -o json|yaml,
//! the version alone for -o short.

use serde::Serialize;

use super::GlobalOpts;
use crate::config::versions::DEFAULT_KUBERNETES_VERSION;
use crate::output::Format;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientVersion {
    major: String,
    minor: String,
    git_version: String,
    platform: String,
    default_kubernetes_version: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    client_version: ClientVersion,
}

pub fn run(global: &GlobalOpts) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split('.');
    let info = VersionInfo {
        client_version: ClientVersion {
            major: parts.next().unwrap_or("0").to_string(),
            minor: parts.next().unwrap_or("0").to_string(),
            git_version: format!("v{version}"),
            platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
            default_kubernetes_version: DEFAULT_KUBERNETES_VERSION.to_string(),
        },
    };
    if global.output == Format::Short {
        return crate::output::print(format!("{}\n", info.client_version.git_version));
    }
    global.ui().result(&info, || {
        format!(
            "kubestrap version: v{version} ({}), default Kubernetes {DEFAULT_KUBERNETES_VERSION}\n",
            info.client_version.platform
        )
    })
}
