//! Kernel checks: the release, and options read from the kernel's own configuration
//! (/proc/config.gz, else /boot/config-<release>). Never modprobe or /proc/modules: kernels with
//! everything built in have neither.

use std::collections::BTreeMap;
use std::io::Read;

use super::super::Outcome;
use super::super::context::Probe;
use super::cgroups;
use crate::host::Facts;

/// A kernel configuration and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    pub source: String,
    /// `NAME` (without `CONFIG_`) → `y`, `m` or a value; options that are not set are absent.
    pub options: BTreeMap<String, String>,
}

impl KernelConfig {
    pub fn parse(source: impl Into<String>, text: &str) -> Self {
        let options = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("CONFIG_"))
            .filter_map(|l| l.split_once('='))
            .filter(|(_, v)| *v != "n")
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        KernelConfig {
            source: source.into(),
            options,
        }
    }

    /// The value of the first alternative that is set (`"A|B"`: A or B).
    pub fn lookup(&self, alternatives: &str) -> Option<(&str, &str)> {
        alternatives.split('|').find_map(|name| {
            self.options
                .get_key_value(name.trim())
                .map(|(k, v)| (k.as_str(), v.as_str()))
        })
    }
}

/// The running kernel's release (`/proc/sys/kernel/osrelease`).
pub fn kernel_release(facts: &Facts) -> anyhow::Result<String> {
    Ok(facts.read_proc("sys/kernel/osrelease")?.trim().to_string())
}

/// The running kernel's configuration, if the kernel or the distribution publishes it.
/// Whether the kernel has IP-in-IP (`CONFIG_NET_IPIP`); None when its configuration is unreadable.
/// An addon whose encapsulation needs it renders (and is sized by) its fallback when this is Some(false).
pub fn has_ipip(facts: &Facts) -> Option<bool> {
    read_kernel_config(facts).map(|config| config.lookup("NET_IPIP").is_some())
}

pub fn read_kernel_config(facts: &Facts) -> Option<KernelConfig> {
    let gz = facts.proc_path("config.gz");
    if let Ok(file) = std::fs::File::open(&gz) {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .is_ok()
        {
            return Some(KernelConfig::parse("/proc/config.gz", &text));
        }
    }
    let release = kernel_release(facts).ok()?;
    let name = format!("config-{release}");
    let text = std::fs::read_to_string(facts.boot_path(&name)).ok()?;
    Some(KernelConfig::parse(format!("/boot/{name}"), &text))
}

/// `KernelConfig`: the configuration can be read, so the option checks mean something.
pub fn config_readable(probe: &Probe) -> anyhow::Result<Outcome> {
    Ok(match read_kernel_config(probe.facts()) {
        Some(config) => Outcome::Pass(format!(
            "read {} options from {}",
            config.options.len(),
            config.source
        )),
        None => {
            let release = kernel_release(probe.facts()).unwrap_or_else(|_| "<release>".into());
            Outcome::Fail(format!(
                "the kernel configuration is not readable: neither /proc/config.gz nor /boot/config-{release} exists, \
                 so kernel options are not checked"
            ))
        }
    })
}

/// `KernelConfig-…`: each option (or one of its alternatives) is built in or a module.
pub fn config_options(probe: &Probe, options: &[String]) -> anyhow::Result<Outcome> {
    let Some(config) = read_kernel_config(probe.facts()) else {
        return Ok(Outcome::Skip(
            "not checked: the kernel configuration is not readable (see the KernelConfig check)"
                .to_string(),
        ));
    };
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for wanted in options {
        match config.lookup(wanted) {
            Some((name, value)) => found.push(format!("CONFIG_{name}={value}")),
            None => missing.push(
                wanted
                    .split('|')
                    .map(|n| format!("CONFIG_{}", n.trim()))
                    .collect::<Vec<_>>()
                    .join(" or "),
            ),
        }
    }
    Ok(if missing.is_empty() {
        Outcome::Pass(format!("{} ({})", found.join(", "), config.source))
    } else {
        Outcome::Fail(format!(
            "the kernel lacks {} (read from {})",
            missing.join(", "),
            config.source
        ))
    })
}

/// Major, minor and patch of a release such as `6.1.0-18-amd64` or `4.19`.
pub fn parse_release(release: &str) -> Option<(u32, u32, u32)> {
    let core: String = release
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = core.split('.').filter(|p| !p.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// `KernelVersion`: the release is at least `min`; on cgroup v2, `cgroup_v2_recommended` is advised.
pub fn version(probe: &Probe, min: &str, cgroup_v2_recommended: &str) -> anyhow::Result<Outcome> {
    let release = kernel_release(probe.facts())?;
    let (Some(running), Some(minimum), Some(recommended)) = (
        parse_release(&release),
        parse_release(min),
        parse_release(cgroup_v2_recommended),
    ) else {
        return Ok(Outcome::Fail(format!(
            "cannot read the kernel release {release:?}"
        )));
    };
    Ok(if running < minimum {
        Outcome::Fail(format!(
            "kernel release {release} is unsupported: Kubernetes needs {min} or later (4.19 is the oldest LTS it supports; any 5.x or 6.x will do)"
        ))
    } else if cgroups::is_v2(probe.facts()) && running < recommended {
        Outcome::Warn(format!(
            "kernel release {release} runs cgroup v2, for which {cgroup_v2_recommended} or later is recommended"
        ))
    } else {
        Outcome::Pass(format!("kernel release {release}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_and_alternatives() {
        let config = KernelConfig::parse(
            "test",
            "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_D=\"x\"\nCONFIG_E=n\n",
        );
        assert_eq!(config.lookup("A"), Some(("A", "y")));
        assert_eq!(config.lookup("B"), None);
        assert_eq!(config.lookup("B|C"), Some(("C", "m")));
        assert_eq!(config.lookup("D"), Some(("D", "x")));
        assert_eq!(config.lookup("E"), None);
    }

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.18.44-fc-v782"), Some((6, 18, 44)));
        assert_eq!(parse_release("4.19"), Some((4, 19, 0)));
        assert_eq!(parse_release("5.10.0-28-amd64"), Some((5, 10, 0)));
        assert_eq!(parse_release("banana"), None);
        assert!(parse_release("4.18.0-553.el8").unwrap() < parse_release("4.19").unwrap());
    }
}
