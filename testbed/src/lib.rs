//! kubestrap's testbed: simulated multi-node clusters on Docker, with real etcd and doubles of
//! kube-apiserver, kubelet, kube-controller-manager and kube-scheduler driven by the files kubestrap
//! writes, and a CRI runtime (containerd) double that runs the pods. Never linked into the kubestrap binary.

pub mod addons;
pub mod agnhost;
pub mod apiserver;
pub mod cli;
pub mod common;
pub mod controller_manager;
pub mod coredns;
pub mod cri;
pub mod driver;
pub mod kubelet;
pub mod node;
pub mod proxy;
pub mod scheduler;

use std::future::Future;

/// The Kubernetes version the doubles report when nothing else says (kubestrap's default).
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.34.3";

/// The binaries the nodes run, as Cargo builds them for this package's tests and benchmarks.
/// `TESTBED_KUBESTRAP=<path>` runs the scenarios with another kubestrap build instead.
#[macro_export]
macro_rules! binaries {
    () => {
        $crate::driver::Binaries {
            tbnode: env!("CARGO_BIN_EXE_tbnode").into(),
            kubestrap: std::env::var_os("TESTBED_KUBESTRAP")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_testbed-kubestrap").into()),
        }
    };
}

/// Runs a component's async main on its own runtime; errors end the process with status 1 and
/// cobra's `Error: ` prefix, as the real binaries do.
pub fn run_component<F, Fut>(component: &str, args: &[String], main: F) -> i32
where
    F: FnOnce(Vec<String>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {component}: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(main(args.to_vec())) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    }
}
