//! The node's kubelet as kubestrap configures it: its files rendered from the model ([`files`]), the
//! cgroup driver chosen from the runtime ([`cgroup`]), the package's standalone kubelet told apart
//! from a configured one ([`standalone`]), the health of the control plane it runs ([`health`]), and
//! the rotatable client certificate of kubelet.conf ([`finalize`]).

pub mod cgroup;
pub mod files;
pub mod finalize;
pub mod health;
pub mod standalone;

/// The kubelet's systemd unit.
pub const UNIT: &str = "kubelet.service";
/// The kubelet's HTTPS port (its API).
pub const PORT: u16 = 10250;
