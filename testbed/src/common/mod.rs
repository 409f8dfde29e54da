//! Building blocks every double shares: flags, kubeconfigs, TLS, the API client, serving, time, leader
//! election, label selectors and the pod-to-node fit rules.

pub mod client;
pub mod command;
pub mod events;
pub mod flags;
pub mod kubeconfig;
pub mod labels;
pub mod leader;
pub mod scheduling;
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
