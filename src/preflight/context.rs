//! What a check reads: the node's settings, the host (state paths under `--root`, /proc and /sys
//! through [`Facts`]) and the process environment (PATH, proxy variables), all replaceable in tests.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::settings::PreflightInput;
use crate::host::{Facts, Host};

/// Where the clock-synchronisation state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    /// Ask the kernel (adjtimex).
    Kernel,
    /// A fixed answer (tests: the machine's clock state cannot be changed safely).
    Assume { synchronized: bool },
}

/// The parts of the process environment checks use.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Directories of `PATH`, in order.
    pub path: Vec<PathBuf>,
    /// Environment variables (proxy settings, `DOCKER_HOST`).
    pub vars: BTreeMap<String, String>,
    pub clock: ClockSource,
}

impl Environment {
    /// The environment of this process.
    pub fn from_process() -> Self {
        let path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let vars = std::env::vars().collect();
        Environment {
            path,
            vars,
            clock: ClockSource::Kernel,
        }
    }

    /// An environment with the given PATH directories and variables (tests).
    pub fn with(path: Vec<PathBuf>, vars: &[(&str, &str)]) -> Self {
        Environment {
            path,
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            clock: ClockSource::Kernel,
        }
    }

    /// A non-empty variable, trying each spelling in turn (e.g. `HTTPS_PROXY`, `https_proxy`).
    pub fn var(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .filter_map(|n| self.vars.get(*n))
            .map(String::as_str)
            .find(|v| !v.is_empty())
    }

    /// The first executable regular file called `name` in PATH.
    pub fn find_executable(&self, name: &str) -> Option<PathBuf> {
        if name.contains('/') {
            let path = PathBuf::from(name);
            return is_executable(&path).then_some(path);
        }
        self.path
            .iter()
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Everything one check may look at.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a> {
    pub host: &'a Host,
    pub node: &'a PreflightInput,
    pub env: &'a Environment,
}

impl<'a> Probe<'a> {
    pub fn new(host: &'a Host, node: &'a PreflightInput, env: &'a Environment) -> Self {
        Probe { host, node, env }
    }

    pub fn facts(&self) -> &Facts {
        self.host.facts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_found_in_path_order_and_must_be_executable() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("tool"), "not executable").unwrap();
        std::fs::write(b.path().join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            b.path().join("tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let env = Environment::with(vec![a.path().into(), b.path().into()], &[]);
        assert_eq!(env.find_executable("tool"), Some(b.path().join("tool")));
        assert_eq!(env.find_executable("missing"), None);
    }

    #[test]
    fn variables_fall_back_across_spellings_and_skip_empty_values() {
        let env = Environment::with(
            vec![],
            &[("HTTPS_PROXY", ""), ("https_proxy", "http://p:3128")],
        );
        assert_eq!(
            env.var(&["HTTPS_PROXY", "https_proxy"]),
            Some("http://p:3128")
        );
        assert_eq!(env.var(&["NO_PROXY"]), None);
    }
}
