//! How the informer-driven controllers run: each waits for its informers' caches to sync, then
//! reconciles from them whenever one changes (and at least every resync period) with its own
//! service account's credentials; and the expectations that keep a controller from acting twice
//! on a cache that has not yet seen its own writes (the real controllers' ControllerExpectations).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::future::select_all;

use super::informer::{Informer, uid_of};
use super::{COMPONENT, Credentials};
use crate::common::client::ApiClient;
use crate::logf;

/// A full pass at least this often, changes or not.
const RESYNC: Duration = Duration::from_secs(30);
/// Changes that arrive together are handled in one pass.
const BATCH: Duration = Duration::from_millis(50);
/// Expectations not met after this long are dropped (the real controllers' TTL).
const EXPECTATION_TTL: Duration = Duration::from_secs(300);

/// A controller that reconciles everything it owns from the informer caches in one pass.
pub trait Reconciler: Send + 'static {
    /// The controller's name in logs (`deployment-controller`, …).
    fn name(&self) -> &'static str;
    /// The informers whose changes start a pass.
    fn informers(&self) -> Vec<Arc<Informer>>;
    /// One pass; Ok(Some(d)) asks for another pass within `d` (e.g. when a pod becomes available).
    fn reconcile(
        &mut self,
        client: &ApiClient,
    ) -> impl Future<Output = Result<Option<Duration>>> + Send;
}

/// Runs `reconciler` under `service_account` (with --use-service-account-credentials) forever.
pub fn spawn<R: Reconciler>(
    creds: Arc<Credentials>,
    service_account: &'static str,
    mut reconciler: R,
) {
    tokio::spawn(async move {
        let name = reconciler.name();
        let informers = reconciler.informers();
        logf!(COMPONENT, "Starting controller {name}");
        while !informers.iter().all(|i| i.synced()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        logf!(COMPONENT, "Caches are synced for {name}");
        let mut receivers: Vec<_> = informers.iter().map(|i| i.subscribe()).collect();
        let mut client = creds.for_controller(service_account).await;
        let mut refreshed = Instant::now();
        loop {
            if refreshed.elapsed() > Duration::from_secs(1800) {
                client = creds.for_controller(service_account).await;
                refreshed = Instant::now();
            }
            for receiver in receivers.iter_mut() {
                receiver.borrow_and_update();
            }
            let wait = match reconciler.reconcile(&client).await {
                Ok(next) => next.map_or(RESYNC, |n| n.clamp(BATCH, RESYNC)),
                Err(e) => {
                    logf!(COMPONENT, "{name}: {e:#}");
                    Duration::from_secs(1)
                }
            };
            let changed = select_all(receivers.iter_mut().map(|r| Box::pin(r.changed())));
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(wait) => {}
            }
            tokio::time::sleep(BATCH).await;
        }
    });
}

struct Pending {
    /// Objects created and not yet seen in the cache (`namespace/name`).
    creations: Vec<String>,
    /// Objects deleted and still in the cache (`namespace/name`, uid).
    deletions: Vec<(String, String)>,
    since: Instant,
}

/// What a controller wrote for an owner and waits to see in its cache before acting again.
#[derive(Default)]
pub struct Expectations {
    pending: HashMap<String, Pending>,
}

impl Expectations {
    fn entry(&mut self, owner: &str) -> &mut Pending {
        let pending = self
            .pending
            .entry(owner.to_string())
            .or_insert_with(|| Pending {
                creations: Vec::new(),
                deletions: Vec::new(),
                since: Instant::now(),
            });
        pending.since = Instant::now();
        pending
    }

    pub fn expect_creation(&mut self, owner: &str, key: String) {
        self.entry(owner).creations.push(key);
    }

    pub fn expect_deletion(&mut self, owner: &str, key: String, uid: String) {
        self.entry(owner).deletions.push((key, uid));
    }

    /// Whether `informer` reflects everything written for `owner` (or the wait timed out).
    pub fn satisfied(&mut self, owner: &str, informer: &Informer) -> bool {
        let Some(p) = self.pending.get(owner) else {
            return true;
        };
        let seen = p.creations.iter().all(|k| informer.get(k).is_some())
            && p.deletions
                .iter()
                .all(|(k, uid)| informer.get(k).is_none_or(|o| uid_of(&o) != uid));
        if seen || p.since.elapsed() > EXPECTATION_TTL {
            self.pending.remove(owner);
            return true;
        }
        false
    }

    /// Drops what is expected for owners that no longer exist.
    pub fn retain(&mut self, owners: &[&str]) {
        self.pending.retain(|k, _| owners.contains(&k.as_str()));
    }
}
