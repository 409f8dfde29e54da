//! The cluster gateway: the only code that talks to a Kubernetes API server. Typed (k8s-openapi) and
//! dynamic (discovered) objects, server-side apply, patches, deletes, watch-based waits with deadlines,
//! retries of transient failures, the dry-run plan, and a journal entry before each change so a failed
//! run's changes can be undone.

pub mod calls;
pub mod client;
pub mod conditions;
pub mod connection;
pub mod discovery;
pub mod error;
pub mod gateway;
pub mod manifest;
pub mod object;
pub mod retry;
pub mod undo;
pub mod wait;

pub use calls::Patch;
pub use client::Client;
pub use conditions::Check;
pub use connection::{Connection, Credentials};
pub use error::ClusterError;
pub use gateway::{Deletion, Gateway, PodProxyGet};
pub use object::{Identity, ObjectRef, Typed};
pub use retry::Retry;
pub use undo::undo_entry;

/// The field manager of every write kubestrap makes (server-side apply owns fields by it).
pub const FIELD_MANAGER: &str = "kubestrap";
