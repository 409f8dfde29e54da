//! Preflight: the host checks that run before init, join and reset, driven by the catalogue in
//! `preflight/checks.yaml` (one entry per check) and implemented once per check kind in [`kinds`].

pub mod catalogue;
pub mod context;
pub mod docs;
pub mod fix;
pub mod kinds;
pub mod report;
pub mod runner;
pub mod settings;

pub use catalogue::{Condition, Entry, Role, Severity};
pub use context::{ClockSource, Environment, Probe};
pub use report::{CheckResult, Report, Status};
pub use runner::{PreflightFailed, evaluate, evaluate_one, run};
pub use settings::PreflightInput;

/// Reset's preflight, for reset's `preflight` phase (after its confirmation prompt): the reset role's
/// checks (root, and the tools and runtime reset works through), printed kubeadm-style; fails with
/// [`PreflightFailed`] when an error is not ignored. Prints no JSON document: reset has its own.
pub fn run_reset(
    host: &crate::host::Host,
    cri_socket: &str,
    ignore_errors: &[String],
) -> anyhow::Result<Report> {
    let node_name = host.facts().hostname().unwrap_or_default().to_lowercase();
    let node = PreflightInput::for_reset(&node_name, cri_socket, ignore_errors);
    runner::run_printing(host, &node, &Environment::from_process(), false)
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The condition holds; the text says what was found.
    Pass(String),
    /// An advisory finding: reported as a warning whatever the entry's severity.
    Warn(String),
    /// The condition does not hold: reported with the entry's severity for the role.
    Fail(String),
    /// Not applicable or not checkable on this host; the text says why.
    Skip(String),
}

impl Outcome {
    pub fn message(&self) -> &str {
        match self {
            Outcome::Pass(m) | Outcome::Warn(m) | Outcome::Fail(m) | Outcome::Skip(m) => m,
        }
    }

    pub fn is_fail(&self) -> bool {
        matches!(self, Outcome::Fail(_))
    }
}
