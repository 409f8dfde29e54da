//! Kubernetes and etcd versions: parsing, the supported range, and each minor's pinned component table.

use std::fmt;

pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.34.3";
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";

/// The components kubeadm pins for a Kubernetes minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentTable {
    pub minor: u32,
    pub etcd: &'static str,
    pub coredns: &'static str,
    pub pause: &'static str,
}

/// Supported minors, oldest first.
pub const COMPONENT_TABLES: [ComponentTable; 4] = [
    ComponentTable {
        minor: 33,
        etcd: "3.5.21-0",
        coredns: "v1.12.0",
        pause: "3.10",
    },
    ComponentTable {
        minor: 34,
        etcd: "3.6.5-0",
        coredns: "v1.12.1",
        pause: "3.10.1",
    },
    ComponentTable {
        minor: 35,
        etcd: "3.6.6-0",
        coredns: "v1.13.1",
        pause: "3.10.1",
    },
    ComponentTable {
        minor: 36,
        etcd: "3.7.0-0",
        coredns: "v1.14.6",
        pause: "3.10.2",
    },
];

/// A Kubernetes release version such as `v1.34.3` (pre-release suffixes like `-rc.1` are kept).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub pre: Option<String>,
}

impl KubeVersion {
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = text.strip_prefix('v').unwrap_or(text);
        let (core, pre) = match body.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (body, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let [major, minor, patch] = parts.as_slice() else {
            return Err(
                if text.starts_with("stable") || text.starts_with("latest") {
                    "version labels need the internet to resolve; give an explicit version such as v1.34.3".to_string()
                } else {
                    "not a Kubernetes version (expected vMAJOR.MINOR.PATCH, e.g. v1.34.3)"
                        .to_string()
                },
            );
        };
        let num = |s: &str| -> Result<u32, String> {
            if s.is_empty()
                || !s.chars().all(|c| c.is_ascii_digit())
                || (s.len() > 1 && s.starts_with('0'))
            {
                return Err(
                    "not a Kubernetes version (expected vMAJOR.MINOR.PATCH, e.g. v1.34.3)"
                        .to_string(),
                );
            }
            s.parse()
                .map_err(|_| "version number too large".to_string())
        };
        Ok(KubeVersion {
            major: num(major)?,
            minor: num(minor)?,
            patch: num(patch)?,
            pre,
        })
    }

    /// The component table for this version's minor, if it is supported.
    pub fn components(&self) -> Option<&'static ComponentTable> {
        if self.major != 1 {
            return None;
        }
        COMPONENT_TABLES.iter().find(|t| t.minor == self.minor)
    }
}

impl serde::Serialize for KubeVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Reads a version written by [`fmt::Display`]; only supported versions (with a component table) are accepted.
impl<'de> serde::Deserialize<'de> for KubeVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let version = KubeVersion::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))?;
        if version.components().is_none() {
            return Err(serde::de::Error::custom(format!(
                "{text:?}: kubestrap supports Kubernetes v1.33 to v1.36"
            )));
        }
        Ok(version)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

/// An etcd version from an image tag such as `3.6.5-0` or `v3.5.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EtcdVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl EtcdVersion {
    pub fn from_tag(tag: &str) -> Result<Self, String> {
        let body = tag.strip_prefix('v').unwrap_or(tag);
        let core = body.split(['-', '+']).next().unwrap_or(body);
        let parts: Vec<u32> = core
            .split('.')
            .map(|p| p.parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| "not an etcd version tag (expected e.g. 3.6.5-0)".to_string())?;
        let [major, minor, patch] = parts.as_slice() else {
            return Err("not an etcd version tag (expected e.g. 3.6.5-0)".to_string());
        };
        let version = EtcdVersion {
            major: *major,
            minor: *minor,
            patch: *patch,
        };
        if version
            < (EtcdVersion {
                major: 3,
                minor: 4,
                patch: 0,
            })
        {
            return Err("etcd older than 3.4 is not supported".to_string());
        }
        Ok(version)
    }

    /// etcd 3.6 replaced the `--experimental-*` flags kubeadm uses and added `/livez` and `/readyz`.
    pub fn has_v36_flags(&self) -> bool {
        (self.major, self.minor) >= (3, 6)
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_versions() {
        let v = KubeVersion::parse("v1.34.3").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 34, 3));
        assert_eq!(v.components().unwrap().etcd, "3.6.5-0");
        assert_eq!(
            KubeVersion::parse("1.35.0-rc.1").unwrap().to_string(),
            "v1.35.0-rc.1"
        );
        assert!(
            KubeVersion::parse("stable-1")
                .unwrap_err()
                .contains("explicit")
        );
        assert!(KubeVersion::parse("v1.34").is_err());
        assert!(KubeVersion::parse("v1.034.0").is_err());
        assert!(
            KubeVersion::parse("v1.30.0")
                .unwrap()
                .components()
                .is_none()
        );
    }

    #[test]
    fn etcd_tags() {
        assert!(EtcdVersion::from_tag("3.6.5-0").unwrap().has_v36_flags());
        assert!(!EtcdVersion::from_tag("3.5.21-0").unwrap().has_v36_flags());
        assert!(!EtcdVersion::from_tag("v3.4.23").unwrap().has_v36_flags());
        assert!(EtcdVersion::from_tag("3.3.10").is_err());
        assert!(EtcdVersion::from_tag("latest").is_err());
    }
}
