//! Watch-based waits with a deadline: kube-runtime's `await_condition` on one object, started again
//! after transient failures (the API server restarting, a watch expiring) until the deadline, and a
//! timeout that says what was awaited and what was last seen.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::runtime::wait::{self, await_condition};
use kube::runtime::watcher;

use super::client::Client;
use super::conditions::Check;
use super::error::ClusterError;
use super::object::{ObjectRef, Typed, typed_api};
use super::retry::{describe, is_transient};

/// Waits until `check` holds for the object at `at` (typed `K`), or `timeout` passes. Returns the
/// object (None when the check was met by its absence).
pub async fn until<K, C>(
    client: &Client,
    at: &ObjectRef,
    what: &str,
    timeout: Duration,
    check: C,
) -> Result<Option<K>, ClusterError>
where
    K: Typed,
    C: Fn(Option<&K>) -> Check + Send + Sync + 'static,
{
    let api: Api<K> = typed_api(client.kube(), at.namespace.as_deref());
    let started = Instant::now();
    let deadline = started + timeout;
    let last = Arc::new(Mutex::new(String::new()));
    let check = Arc::new(check);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let seen = last.clone();
        let check = check.clone();
        let condition = move |obj: Option<&K>| match check(obj) {
            Check::Met => true,
            Check::Waiting(state) => {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = state;
                false
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let failure = match tokio::time::timeout(
            remaining,
            await_condition(api.clone(), &at.name, condition),
        )
        .await
        {
            Ok(Ok(found)) => return Ok(found),
            Ok(Err(wait::Error::ProbeFailed(e))) => e,
            Err(_) => {
                return Err(ClusterError::WaitTimedOut {
                    what: what.to_string(),
                    after: timeout,
                    last: last.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                });
            }
        };
        let pause = client.retry().delay(attempt);
        if !watch_may_recover(&failure) || Instant::now() + pause >= deadline {
            return Err(watch_failure(what, failure, attempt, started.elapsed()));
        }
        *last.lock().unwrap_or_else(|p| p.into_inner()) = format!("the watch failed: {failure}");
        tokio::time::sleep(pause).await;
    }
}

/// Failures that a fresh list and watch get past: transient transport and server errors, and an
/// expired resourceVersion (410 Gone).
fn watch_may_recover(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => is_transient(e),
        watcher::Error::WatchError(status) => {
            status.code == 410 || status.code == 429 || status.code >= 500
        }
        watcher::Error::NoResourceVersion => false,
    }
}

fn watch_failure(
    what: &str,
    error: watcher::Error,
    attempts: u32,
    elapsed: Duration,
) -> ClusterError {
    let doing = format!("watching for {what}");
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => describe(&doing, e, attempts, elapsed),
        watcher::Error::WatchError(status) => {
            describe(&doing, kube::Error::Api(status), attempts, elapsed)
        }
        other => ClusterError::Transport {
            what: doing,
            detail: other.to_string(),
            attempts,
            elapsed,
        },
    }
}
