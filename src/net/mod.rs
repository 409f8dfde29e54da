//! Network arithmetic shared by configuration, certificates and preflight.

pub mod cidr;
