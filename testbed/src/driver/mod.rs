//! The host side of the testbed: node images, clusters of Docker nodes (a test run's, or the command
//! line's that outlive it), and the scenario helpers tests use to drive them.

pub mod cluster;
pub mod docker;
pub mod fixture;
pub mod identity;
pub mod image;
pub mod inspect;
pub mod lb;
pub mod node_state;
pub mod persistent;
pub mod podnet;
pub mod scenario;
pub mod transfer;

pub use cluster::{Binaries, Cluster, ClusterSpec, Node, wait_until};
