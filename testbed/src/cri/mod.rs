//! The container runtime double (`/usr/bin/containerd`, the node's containerd.service): a CRI
//! runtime.v1 gRPC server (RuntimeService and ImageService) on /run/containerd/containerd.sock whose
//! containers are sandboxed processes (`tbnode pod-exec`). Like containerd it outlives the kubelet:
//! pods keep running while the kubelet is stopped and end only when they are stopped or removed
//! through the CRI (or the node shuts down).

pub mod images;
pub mod sandbox;
pub mod service;
pub mod store;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};

use crate::logf;

/// The generated server side of the CRI; the messages are kubestrap's (`cri::api`).
#[allow(clippy::all, missing_docs)]
pub mod server {
    tonic::include_proto!("runtime.v1");
}

use server::image_service_server::ImageServiceServer;
use server::runtime_service_server::RuntimeServiceServer;

/// The default socket (`/var/run` is a link to `/run` on a node, as on Debian).
pub const SOCKET: &str = "/run/containerd/containerd.sock";

/// Where the runtime keeps its state and the containers' roots: gone with /run at a node restart.
pub const STATE_DIR: &str = "/run/testbed-cri";

const COMPONENT: &str = "containerd";

/// Sends each request to the RuntimeService or the ImageService by its gRPC path.
#[derive(Clone)]
struct Routes {
    runtime: RuntimeServiceServer<service::Runtime>,
    images: ImageServiceServer<images::Images>,
}

impl Service<http::Request<Body>> for Routes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request
            .uri()
            .path()
            .starts_with("/runtime.v1.ImageService/")
        {
            self.images.call(request)
        } else {
            self.runtime.call(request)
        }
    }
}

/// `containerd [--address <socket>]`: serves the CRI until the process is stopped.
pub fn main(args: &[String]) -> i32 {
    crate::run_component(COMPONENT, args, run)
}

fn socket_from(args: &[String]) -> Result<PathBuf> {
    let mut socket = PathBuf::from(SOCKET);
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-a" | "--address" => match iter.next() {
                Some(path) => socket = PathBuf::from(path),
                None => bail!("flag needs an argument: {arg}"),
            },
            a if a.starts_with("--address=") => socket = PathBuf::from(&a["--address=".len()..]),
            other => bail!(
                "flag provided but not defined: {other} (the testbed's containerd takes only --address)"
            ),
        }
    }
    Ok(socket)
}

async fn run(args: Vec<String>) -> Result<()> {
    let socket = socket_from(&args)?;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)
        .with_context(|| format!("listen on {}", socket.display()))?;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/opt/testbed/bin/tbnode"));
    let store = store::Store::open(Path::new(STATE_DIR), exe);
    let adopted = store.containers().map(|c| c.len()).unwrap_or(0);
    logf!(
        COMPONENT,
        "containerd (testbed CRI runtime) serving on {} with {adopted} containers from a previous run",
        socket.display()
    );
    let poller = store.clone();
    tokio::spawn(async move {
        loop {
            poller.poll_unwaited();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let routes = Routes {
        runtime: RuntimeServiceServer::new(service::Runtime {
            store: store.clone(),
            cgroup_driver: service::cgroup_driver(
                std::fs::read_to_string(service::CONFIG).ok().as_deref(),
            ),
        }),
        images: ImageServiceServer::new(images::Images { store }),
    };
    tonic::transport::Server::builder()
        .serve_with_incoming(
            routes,
            tokio_stream::wrappers::UnixListenerStream::new(listener),
        )
        .await
        .context("serve the CRI")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_the_default_or_the_address_flag() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(socket_from(&[]).unwrap(), PathBuf::from(SOCKET));
        assert_eq!(
            socket_from(&args(&["--address", "/tmp/c.sock"])).unwrap(),
            PathBuf::from("/tmp/c.sock")
        );
        assert_eq!(
            socket_from(&args(&["--address=/tmp/d.sock"])).unwrap(),
            PathBuf::from("/tmp/d.sock")
        );
        assert!(socket_from(&args(&["--config", "x"])).is_err());
    }
}
