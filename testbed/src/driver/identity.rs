//! Who a testbed cluster belongs to — a test run (removed when the run ends, swept by the next run
//! after a crash) or the command line (kept until `kubestrap-testbed down`) — and the Docker names,
//! labels and address range that follow from it. The two owners use different label keys, so a
//! clean-up that looks for one can never find the other's containers, networks or volumes.

use std::path::{Path, PathBuf};

/// The label of a test run's containers, networks and volumes (value: the run id). The tests'
/// clean-up of crashed runs removes everything that carries it.
pub const TEST_LABEL: &str = "io.kubestrap.testbed";
/// The label of a command-line cluster's containers, networks and volumes (value: its name).
pub const CLI_LABEL: &str = "io.kubestrap.testbed.cli";
/// The state directory (absolute path) whose binaries a command-line cluster's nodes run.
pub const STATE_LABEL: &str = "io.kubestrap.testbed.state";
/// On node containers: the node's name, its address on the cluster network and the node image it
/// was made from (Docker labels are fixed at creation, so they survive stop, pause and partition).
pub const NODE_LABEL: &str = "io.kubestrap.testbed.node";
pub const IP_LABEL: &str = "io.kubestrap.testbed.ip";
pub const IMAGE_LABEL: &str = "io.kubestrap.testbed.node-image";

/// Command-line cluster names: a lowercase DNS label short enough for the Docker names built on it.
pub const MAX_NAME_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A test run: torn down when its `Cluster` is dropped, swept by the next run after a crash.
    Test { run_id: String },
    /// A cluster of the command line, named by the user; it lives until `down` removes it.
    Cli { name: String, state_root: PathBuf },
}

impl Owner {
    /// A fresh test run: `tb<pid>x<4 random hex digits>`.
    pub fn new_test_run() -> Owner {
        let mut b = [0u8; 2];
        let _ = aws_lc_rs::rand::fill(&mut b);
        Owner::Test {
            run_id: format!("tb{}x{:02x}{:02x}", std::process::id(), b[0], b[1]),
        }
    }

    /// A command-line cluster; `name` must pass [`check_name`].
    pub fn cli(name: &str, state_root: &Path) -> Owner {
        Owner::Cli {
            name: name.to_string(),
            state_root: state_root.to_path_buf(),
        }
    }

    /// The run id or the cluster's name.
    pub fn id(&self) -> &str {
        match self {
            Owner::Test { run_id } => run_id,
            Owner::Cli { name, .. } => name,
        }
    }

    /// `key=value` of the label that marks everything of this cluster.
    pub fn label(&self) -> String {
        match self {
            Owner::Test { run_id } => format!("{TEST_LABEL}={run_id}"),
            Owner::Cli { name, .. } => format!("{CLI_LABEL}={name}"),
        }
    }

    /// Every label of the cluster's network and containers (`key=value`).
    pub fn labels(&self) -> Vec<String> {
        let mut labels = vec![self.label()];
        if let Owner::Cli { state_root, .. } = self {
            labels.push(format!("{STATE_LABEL}={}", state_root.display()));
        }
        labels
    }

    /// The `--filter` that selects the cluster's containers, networks and volumes.
    pub fn filter(&self) -> String {
        format!("label={}", self.label())
    }

    /// Docker names start with this: `kubestrap-testbed-<run id>` or `kubestrap-testbed-cli-<name>`.
    pub fn prefix(&self) -> String {
        match self {
            Owner::Test { run_id } => format!("kubestrap-testbed-{run_id}"),
            Owner::Cli { name, .. } => format!("kubestrap-testbed-cli-{name}"),
        }
    }

    pub fn network_name(&self) -> String {
        self.prefix()
    }

    pub fn container_name(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix())
    }

    /// The /16 whose /24s the cluster's network is picked from: test runs and command-line
    /// clusters never share a range, so an address says which kind of cluster it is.
    pub fn address_range(&self) -> &'static str {
        match self {
            Owner::Test { .. } => "10.213",
            Owner::Cli { .. } => "10.214",
        }
    }

    /// Test clusters are removed when their `Cluster` value is dropped; command-line ones stay.
    pub fn removed_on_drop(&self) -> bool {
        matches!(self, Owner::Test { .. })
    }
}

/// Checks a command-line cluster name: 1 to 32 characters of `a-z`, `0-9` and `-`, starting and
/// ending with a letter or digit (it becomes part of Docker names and a label value).
pub fn check_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = !name.starts_with('-') && !name.ends_with('-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_chars || !ends_ok {
        return Err(format!(
            "{name:?} is not a valid cluster name: use 1 to {MAX_NAME_LEN} lowercase letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_runs_and_cli_clusters_use_different_label_keys_names_and_ranges() {
        let test = Owner::new_test_run();
        let cli = Owner::cli("demo", Path::new("/var/state"));
        assert!(test.label().starts_with("io.kubestrap.testbed=tb"));
        assert_eq!(cli.label(), "io.kubestrap.testbed.cli=demo");
        // Docker's `label=<key>` filter matches the key exactly, so the tests' sweep
        // (`label=io.kubestrap.testbed`) cannot select a CLI cluster's objects.
        assert!(!cli.label().starts_with(&format!("{TEST_LABEL}=")));
        assert_eq!(
            cli.labels(),
            [
                "io.kubestrap.testbed.cli=demo",
                "io.kubestrap.testbed.state=/var/state"
            ]
        );
        assert_eq!(
            cli.container_name("node1"),
            "kubestrap-testbed-cli-demo-node1"
        );
        assert_eq!(cli.network_name(), "kubestrap-testbed-cli-demo");
        assert_ne!(test.address_range(), cli.address_range());
        assert!(test.removed_on_drop() && !cli.removed_on_drop());
    }

    #[test]
    fn cluster_names_are_dns_labels() {
        for good in ["kubestrap", "a", "repro-42", &"x".repeat(32)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "-a", "a-", "Demo", "a_b", "a.b", "a/b", &"x".repeat(33)] {
            let err = check_name(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
