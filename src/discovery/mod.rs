//! The token-signed discovery endpoint (`kubestrap discovery serve`): what it serves (the cluster-info
//! kubeconfig and one detached JWS per token), where that comes from (the cluster's
//! `kube-public/cluster-info`, or the node's own PKI signed with given tokens), the per-client rate
//! limit, the HTTPS server, and the systemd unit init installs for it; and the joining node's side: fetching
//! cluster-info ([`fetch`]) and verifying its signature and CA ([`verify`]).

pub mod fetch;
pub mod limit;
pub mod published;
pub mod server;
pub mod source;
pub mod tokens;
pub mod unit;
pub mod verify;

pub use published::{Lookup, Published};
pub use server::{Server, ServerOptions};

/// The discovery endpoint's default port (kube-discovery's, kubeadm 1.5).
pub const DEFAULT_PORT: u16 = 9898;
/// The one path the endpoint answers.
pub const PATH: &str = "/cluster-info/v1/";
