//! The runtime double's images: there is no registry, so an image is "present" when the testbed can
//! run it (the control-plane images map to the doubles, `etcd:<tag>` to the installed etcd when the
//! minor matches, `pause` to the process-less sandbox) and every other image fails to pull as from an
//! unreachable registry. The ImageService answers from that mapping.

use std::collections::BTreeSet;
use std::process::Command;

use kubestrap::host::runtime::cri::api;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::server::image_service_server::ImageService;
use super::store::Store;

/// The binaries an image provides, or why the testbed cannot provide it.
pub fn binaries(image: &str) -> Result<&'static [&'static str], String> {
    let (repo, tag) = split(image);
    let name = repo.rsplit('/').next().unwrap_or(repo);
    if let Some(provided) = crate::addons::binaries(repo) {
        return Ok(provided);
    }
    match name {
        // The add-on images kubeadm deploys: the testbed's kube-proxy and CoreDNS doubles.
        "kube-proxy" => Ok(&["kube-proxy"]),
        "coredns" => Ok(&["coredns"]),
        "kube-apiserver" => Ok(&["kube-apiserver"]),
        "kube-controller-manager" => Ok(&["kube-controller-manager"]),
        "kube-scheduler" => Ok(&["kube-scheduler"]),
        // The test images: Kubernetes' e2e agnhost (the testbed's own) and a busybox whose
        // applets are the node's tools.
        "agnhost" => Ok(&["agnhost"]),
        "busybox" => Ok(BUSYBOX),
        // flannel's images: flanneld (at /opt/bin, see `files`) and the CNI plugin's `/flannel`,
        // both with the `cp` their init containers run.
        "flannel" | "flannel-cni-plugin" => Ok(&["cp"]),
        // The sandbox ("infra") image: a testbed sandbox has no process of its own.
        "pause" => Ok(&[]),
        "etcd" => {
            let wanted: String = tag.split('.').take(2).collect::<Vec<_>>().join(".");
            match installed_etcd_minor() {
                Some(v) if v == wanted => Ok(&["etcd", "etcdctl", "etcdutl"]),
                Some(v) => Err(format!(
                    "the testbed provides etcd {v} only; render etcd with an etcd.local.imageTag of {v}"
                )),
                None => Err("no etcd binary is installed on this node".into()),
            }
        }
        _ => Err(
            "no registry is reachable from the testbed; only the control-plane images are provided"
                .into(),
        ),
    }
}

/// The busybox test image's applets (what its tests use; the node's /usr provides them).
const BUSYBOX: &[&str] = &[
    "sh", "ash", "sleep", "cat", "echo", "ls", "wget", "nc", "true", "false", "env", "printenv",
    "hostname", "ip", "mkdir", "touch", "date", "head", "tail", "grep", "test", "[", "ps", "kill",
    "id", "sed", "cut", "wc", "nslookup", "busybox",
];

/// The image's entrypoint, used when a container sets no command (CoreDNS's Deployment and
/// agnhost pods give only args). The real images run `/coredns` and `/agnhost`; here the doubles
/// are on the image's PATH under those names.
pub fn entrypoint(image: &str) -> &'static [&'static str] {
    let (repo, _) = split(image);
    if let Some(entrypoint) = crate::addons::entrypoint(repo) {
        return entrypoint;
    }
    match repo.rsplit('/').next().unwrap_or(repo) {
        "coredns" => &["coredns"],
        "agnhost" => &["agnhost"],
        _ => &[],
    }
}

/// Files an image holds outside its PATH: (path in the container, the node file bound there).
pub fn files(image: &str) -> &'static [(&'static str, &'static str)] {
    let (repo, _) = split(image);
    match repo.rsplit('/').next().unwrap_or(repo) {
        "flannel" => &[("/opt/bin/flanneld", "/opt/testbed/bin/tbnode")],
        "flannel-cni-plugin" => &[("/flannel", crate::addons::flannel::cni::PLUGIN_PATH)],
        _ => &[],
    }
}

/// Paths outside the PATH where the image holds one of its binaries (calico's cni image keeps its
/// installer and plugins in /opt/cni/bin); the container's root links them to the doubles.
pub fn image_paths(image: &str) -> &'static [&'static str] {
    crate::addons::image_paths(split(image).0)
}

/// Repository and tag of a reference (`latest` when it names none; a digest is kept as the tag).
fn split(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// The fully qualified reference, as containerd names images (`nginx` → `docker.io/library/nginx:latest`).
pub fn normalize(image: &str) -> String {
    let (repo, tag) = split(image);
    let first = repo.split('/').next().unwrap_or(repo);
    let has_registry =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = match (has_registry, repo.contains('/')) {
        (true, _) => repo.to_string(),
        (false, true) => format!("docker.io/{repo}"),
        (false, false) => format!("docker.io/library/{repo}"),
    };
    if tag.starts_with("sha256:") {
        format!("{repo}@{tag}")
    } else {
        format!("{repo}:{tag}")
    }
}

/// The image's id: a digest of its reference (the testbed's images have no content of their own).
pub fn image_id(image: &str) -> String {
    let digest = Sha256::digest(normalize(image).as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

fn installed_etcd_minor() -> Option<String> {
    let out = Command::new("etcd").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next()?.split_whitespace().last()?;
    Some(version.split('.').take(2).collect::<Vec<_>>().join("."))
}

/// The CRI description of a present image.
pub fn describe(image: &str) -> api::Image {
    let reference = normalize(image);
    let (repo, _) = split(&reference);
    api::Image {
        id: image_id(image),
        repo_tags: vec![reference.clone()],
        repo_digests: vec![format!("{repo}@{}", image_id(image))],
        size: 0,
        spec: Some(api::ImageSpec {
            image: reference,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The error a pull of an image the testbed cannot provide ends with, worded as containerd's.
pub fn pull_error(image: &str, why: &str) -> Status {
    let reference = normalize(image);
    Status::not_found(format!(
        "failed to pull and unpack image \"{reference}\": failed to resolve reference \"{reference}\": {reference}: not found ({why})"
    ))
}

/// The ImageService: status and pulls from the mapping; the list is what was pulled or is in use.
#[derive(Clone)]
pub struct Images {
    pub store: Store,
}

fn requested(spec: Option<&api::ImageSpec>) -> Result<String, Status> {
    spec.map(|s| s.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Status::invalid_argument("image spec is required"))
}

#[tonic::async_trait]
impl ImageService for Images {
    async fn list_images(
        &self,
        request: Request<api::ListImagesRequest>,
    ) -> Result<Response<api::ListImagesResponse>, Status> {
        let wanted = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| normalize(&s.image))
            .filter(|s| !s.is_empty());
        let known: BTreeSet<String> = self.store.images_known();
        let images = known
            .iter()
            .filter(|i| binaries(i).is_ok())
            .filter(|i| wanted.as_ref().is_none_or(|w| normalize(i) == *w))
            .map(|i| describe(i))
            .collect();
        Ok(Response::new(api::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        request: Request<api::ImageStatusRequest>,
    ) -> Result<Response<api::ImageStatusResponse>, Status> {
        let image = requested(request.get_ref().image.as_ref())?;
        Ok(Response::new(api::ImageStatusResponse {
            image: binaries(&image).ok().map(|_| describe(&image)),
            ..Default::default()
        }))
    }

    async fn pull_image(
        &self,
        request: Request<api::PullImageRequest>,
    ) -> Result<Response<api::PullImageResponse>, Status> {
        let image = requested(request.get_ref().image.as_ref())?;
        binaries(&image).map_err(|why| pull_error(&image, &why))?;
        self.store.record_pull(&normalize(&image));
        Ok(Response::new(api::PullImageResponse {
            image_ref: image_id(&image),
        }))
    }

    async fn remove_image(
        &self,
        request: Request<api::RemoveImageRequest>,
    ) -> Result<Response<api::RemoveImageResponse>, Status> {
        let image = requested(request.get_ref().image.as_ref())?;
        self.store.forget_pull(&normalize(&image));
        Ok(Response::new(api::RemoveImageResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_map_to_binaries() {
        assert_eq!(
            binaries("registry.k8s.io/kube-apiserver:v1.34.3").unwrap(),
            &["kube-apiserver"]
        );
        assert!(binaries("registry.k8s.io/pause:3.10.1").is_ok());
        assert!(binaries("registry.k8s.io/coredns/coredns:v1.12.1").is_ok());
        assert!(binaries("registry.k8s.io/kube-proxy:v1.34.3").is_ok());
        assert_eq!(
            entrypoint("registry.k8s.io/coredns/coredns:v1.12.1"),
            ["coredns"]
        );
        assert!(entrypoint("registry.k8s.io/kube-proxy:v1.34.3").is_empty());
        assert!(binaries("registry.k8s.io/nginx:1.27").is_err());
        assert_eq!(
            files("ghcr.io/flannel-io/flannel:v0.27.4"),
            [("/opt/bin/flanneld", "/opt/testbed/bin/tbnode")]
        );
    }

    #[test]
    fn references_are_normalized_as_containerd_does() {
        assert_eq!(normalize("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalize("bitnami/etcd:3.5"), "docker.io/bitnami/etcd:3.5");
        assert_eq!(
            normalize("registry.k8s.io/kube-apiserver:v1.34.3"),
            "registry.k8s.io/kube-apiserver:v1.34.3"
        );
        assert_eq!(normalize("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(
            image_id("nginx"),
            image_id("docker.io/library/nginx:latest")
        );
    }

    #[test]
    fn a_failed_pull_reads_like_a_registry_error() {
        let status = pull_error("registry.k8s.io/coredns/coredns:v1.12.1", "no registry");
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(
            status.message().starts_with(
                "failed to pull and unpack image \"registry.k8s.io/coredns/coredns:v1.12.1\""
            ),
            "{}",
            status.message()
        );
    }
}
