//! The host side of the testbed: node images, clusters of Docker nodes, and the scenario helpers
//! tests use to drive them.

pub mod cluster;
pub mod docker;
pub mod fixture;
pub mod image;
pub mod scenario;

pub use cluster::{Binaries, Cluster, ClusterSpec, Node, wait_until};
