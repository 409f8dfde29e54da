//! What host subsystems report about what they find and remove: item kinds, owners, outcomes and the reset report.

use std::fmt;

use serde::Serialize;

pub use super::plan::{Item, Kind};

/// An addon whose host artefacts kubestrap knows: a pod-network addon of the catalogue (by its folder
/// name, see [`crate::podnet`]) or one of the service-proxy addons below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Addon(pub &'static str);

impl Addon {
    pub const KUBE_PROXY: Addon = Addon("kube-proxy");
    pub const KUBE_ROUTER: Addon = Addon("kube-router");

    pub fn name(self) -> &'static str {
        self.0
    }
}

/// Who made an item, as far as the host can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// Written by kubestrap itself, per the journal.
    Kubestrap,
    /// Made by Kubernetes components: the kubelet, kubeadm's layout, pods of the CRI.
    Kubernetes,
    /// Made by a supported addon.
    Addon(Addon),
    /// Someone else's (Docker, podman, the user, the OS); never removed.
    Foreign(&'static str),
}

impl Owner {
    /// True for items a cluster made (kubestrap, Kubernetes or a supported addon).
    pub fn is_cluster(self) -> bool {
        !matches!(self, Owner::Foreign(_))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Kubestrap => write!(f, "kubestrap (journal)"),
            Owner::Kubernetes => write!(f, "Kubernetes"),
            Owner::Addon(a) => write!(f, "{}", a.name()),
            Owner::Foreign(who) => write!(f, "{who}"),
        }
    }
}

/// One artefact on the host, with its owner.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Found {
    pub kind: Kind,
    pub target: String,
    pub owner: Owner,
}

impl Found {
    pub fn new(kind: Kind, target: impl Into<String>, owner: Owner) -> Self {
        Found {
            kind,
            target: target.into(),
            owner,
        }
    }

    pub fn item(&self, reason: impl Into<String>) -> Item {
        Item::new(self.kind, self.target.clone(), reason)
    }

    pub fn removed(&self) -> Outcome {
        Outcome::Removed(self.item(format!("made by {}", self.owner)))
    }

    pub fn kept(&self, reason: impl Into<String>) -> Outcome {
        Outcome::Kept(self.item(reason))
    }

    /// Kept because it belongs to someone else.
    pub fn kept_foreign(&self) -> Outcome {
        self.kept(format!("not ours: {}", self.owner))
    }

    pub fn left(&self, reason: impl Into<String>, reboot_required: bool) -> Outcome {
        Outcome::Left {
            item: self.item(reason),
            reboot_required,
        }
    }
}

/// What removing one item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Removed(Item),
    /// Left in place on purpose (someone else's, or protected data).
    Kept(Item),
    /// Should have gone but could not; `reboot_required` when the kernel holds it.
    Left {
        item: Item,
        reboot_required: bool,
    },
}

/// The reset report: what went, what was kept on purpose, what is left and whether a reboot is needed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub removed: Vec<Item>,
    pub kept: Vec<Item>,
    pub left: Vec<Item>,
    pub reboot_required: bool,
}

impl Report {
    pub fn push(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Removed(item) => self.removed.push(item),
            Outcome::Kept(item) => {
                if !self.kept.contains(&item) {
                    self.kept.push(item)
                }
            }
            Outcome::Left {
                mut item,
                reboot_required,
            } => {
                item.reboot_required = reboot_required;
                self.reboot_required |= reboot_required;
                if !self.left.contains(&item) {
                    self.left.push(item)
                }
            }
        }
    }

    pub fn extend(&mut self, outcomes: impl IntoIterator<Item = Outcome>) {
        for o in outcomes {
            self.push(o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_serialises_in_the_interface_shape() {
        let mut report = Report::default();
        let tunl0 = Found::new(Kind::Link, "tunl0", Owner::Addon(Addon("calico")));
        report.push(tunl0.left("Operation not permitted", true));
        report.push(Found::new(Kind::Link, "docker0", Owner::Foreign("Docker")).kept_foreign());
        report.push(Found::new(Kind::Ipset, "KUBE-X", Owner::Kubernetes).removed());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["reboot_required"], true);
        assert_eq!(json["left"][0]["kind"], "link");
        assert_eq!(json["left"][0]["reboot_required"], true);
        assert_eq!(json["kept"][0]["reason"], "not ours: Docker");
        assert_eq!(json["removed"][0]["kind"], "ipset");
        assert!(json["removed"][0].get("reboot_required").is_none());
    }
}
