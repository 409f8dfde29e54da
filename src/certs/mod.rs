//! Certificate maintenance over the PKI and the kubeconfig files of a control-plane node: `certs
//! check-expiration`, `certs renew` and `certs generate-csr`, all read from the cluster model.

pub mod expiration;
pub mod renew;
pub mod requests;
pub mod upload;
