//! Lease-based leader election as client-go's leaderelection does it (coordination.k8s.io/v1 Lease).

use std::time::Duration;

use serde_json::{Value, json};

use super::client::ApiClient;
use super::time;
use crate::logf;

pub struct Election {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub retry_period: Duration,
}

impl Election {
    /// The election a component configures with `--leader-elect*` (None with
    /// `--leader-elect=false`); the identity is `<hostname>_<uid>` as client-go makes it.
    pub fn from_flags(
        flags: &super::flags::Flags,
        default_name: &str,
    ) -> anyhow::Result<Option<Election>> {
        if !flags.bool("leader-elect", true)? {
            return Ok(None);
        }
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        Ok(Some(Election {
            namespace: flags.string("leader-elect-resource-namespace", "kube-system"),
            name: flags.string("leader-elect-resource-name", default_name),
            identity: format!("{hostname}_{}", crate::apiserver::store::new_uid()),
            lease_duration: flags
                .duration("leader-elect-lease-duration", Duration::from_secs(15))?,
            retry_period: flags.duration("leader-elect-retry-period", Duration::from_secs(2))?,
        }))
    }

    fn path(&self) -> String {
        format!(
            "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
            self.namespace, self.name
        )
    }

    /// Blocks until this identity holds the lease.
    pub async fn acquire(&self, client: &ApiClient) {
        logf!(
            self.name,
            "attempting to acquire leader lease {}/{}...",
            self.namespace,
            self.name
        );
        loop {
            match self.try_acquire_or_renew(client).await {
                Ok(true) => {
                    logf!(
                        self.name,
                        "successfully acquired lease {}/{}",
                        self.namespace,
                        self.name
                    );
                    return;
                }
                Ok(false) => {}
                Err(e) => logf!(
                    self.name,
                    "error retrieving resource lock {}/{}: {e}",
                    self.namespace,
                    self.name
                ),
            }
            tokio::time::sleep(self.retry_period).await;
        }
    }

    /// Renews the lease until renewal fails for longer than the lease duration; then returns
    /// (the caller exits, as the real components do when they lose leadership).
    pub async fn hold(&self, client: &ApiClient) {
        let mut last_renewal = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.retry_period).await;
            match self.try_acquire_or_renew(client).await {
                Ok(true) => last_renewal = std::time::Instant::now(),
                Ok(false) => {
                    logf!(
                        self.name,
                        "leaderelection lost: lease taken by another holder"
                    );
                    return;
                }
                Err(e) => {
                    logf!(
                        self.name,
                        "failed to renew lease {}/{}: {e}",
                        self.namespace,
                        self.name
                    );
                    if last_renewal.elapsed() > self.lease_duration {
                        logf!(self.name, "leaderelection lost");
                        return;
                    }
                }
            }
        }
    }

    async fn try_acquire_or_renew(
        &self,
        client: &ApiClient,
    ) -> Result<bool, super::client::ApiError> {
        let now = time::now_micro();
        let seconds = self.lease_duration.as_secs();
        match client.get(&self.path()).await {
            Err(e) if e.is_not_found() => {
                let lease = json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {
                        "holderIdentity": self.identity,
                        "leaseDurationSeconds": seconds,
                        "acquireTime": now,
                        "renewTime": now,
                        "leaseTransitions": 0,
                    }
                });
                let collection = format!(
                    "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
                    self.namespace
                );
                match client.create(&collection, &lease).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.is_conflict() => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
            Ok(mut lease) => {
                let holder = lease["spec"]["holderIdentity"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if holder != self.identity && !expired(&lease) {
                    return Ok(false);
                }
                if holder != self.identity {
                    let transitions = lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0) + 1;
                    lease["spec"]["leaseTransitions"] = json!(transitions);
                    lease["spec"]["acquireTime"] = json!(now);
                    lease["spec"]["holderIdentity"] = json!(self.identity);
                }
                lease["spec"]["renewTime"] = json!(now);
                lease["spec"]["leaseDurationSeconds"] = json!(seconds);
                match client.replace(&self.path(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.is_conflict() => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

fn expired(lease: &Value) -> bool {
    let duration = lease["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(15);
    lease["spec"]["renewTime"]
        .as_str()
        .and_then(time::parse)
        .map(|renewed| renewed.unix_timestamp() + duration < time::unix_now())
        .unwrap_or(true)
}
