//! Container runtimes: the CRI (containerd, CRI-O) through its gRPC socket, and the Docker Engine API.
//! Only Kubernetes' containers are touched: every CRI pod sandbox (the CRI namespace holds only the
//! kubelet's pods), and Docker containers named `k8s_*` or labelled `io.kubernetes.*`.

pub mod cri;
pub mod docker;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;

/// How long a container gets between TERM and KILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// How many containers are stopped at once.
pub const PARALLEL_STOPS: usize = 16;

/// Runs async client code from the synchronous host API.
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime for a container-runtime client")?;
    Ok(runtime.block_on(future))
}

/// The file-system path of a CRI endpoint (`unix:///run/x.sock` or a bare path).
pub fn socket_path(endpoint: &str) -> &str {
    endpoint.strip_prefix("unix://").unwrap_or(endpoint)
}
