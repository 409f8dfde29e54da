//! Building blocks every double shares: flags, kubeconfigs, TLS, the API client, serving, time, leader election.

pub mod client;
pub mod flags;
pub mod kubeconfig;
pub mod leader;
pub mod serve;
pub mod time;
pub mod tls;

/// Writes one log line to stderr, klog-style (`I1123 17:30:00.123456 component] message`).
#[macro_export]
macro_rules! logf {
    ($component:expr, $($arg:tt)*) => {
        eprintln!("{} {}] {}", $crate::common::time::log_stamp(), $component, format!($($arg)*))
    };
}
