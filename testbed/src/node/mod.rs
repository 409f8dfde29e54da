//! What runs on a testbed node besides the Kubernetes doubles: its PID 1 (a minimal service
//! manager), `systemctl` talking to it, and the unit files it reads.

pub mod dns;
pub mod init;
pub mod network;
pub mod systemctl;
pub mod units;
