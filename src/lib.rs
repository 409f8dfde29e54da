//! kubestrap: bootstraps Kubernetes clusters the way kubeadm does (init, join, reset).

// Output goes through `output` (a closed stdout is a quiet exit there, never a panic).
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod addons;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod discovery;
pub mod error;
pub mod etcd;
pub mod host;
pub mod kubeconfig;
pub mod kubelet;
pub mod model;
pub mod net;
pub mod output;
pub mod patches;
pub mod phases;
pub mod pki;
pub mod podnet;
pub mod preflight;
pub mod render;
pub mod staticpods;
pub mod status;
pub mod token;
pub mod verify;
pub mod workflow;
pub mod yaml;
