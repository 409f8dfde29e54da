//! Which failed calls are worth another try — the API server still starting or restarting, overloaded
//! (429, 5xx), electing an etcd leader — and the back-off between tries. A 4xx answer (invalid object,
//! forbidden, not found, conflict) is final at once.

use std::future::Future;
use std::time::{Duration, Instant};

use super::error::ClusterError;

/// How long and how often a call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// No new try starts after this much time since the first.
    pub deadline: Duration,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    /// A minute: long enough for an API server that is restarting (its static pod changed) or
    /// still starting after `wait-control-plane`.
    fn default() -> Self {
        Retry {
            deadline: Duration::from_secs(60),
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl Retry {
    /// One try, no retries.
    pub fn once() -> Retry {
        Retry {
            deadline: Duration::ZERO,
            ..Retry::default()
        }
    }

    /// Retries for at most `deadline`.
    pub fn within(deadline: Duration) -> Retry {
        Retry {
            deadline,
            ..Retry::default()
        }
    }

    /// The pause before try number `attempt + 1` (doubling from `first_delay` up to `max_delay`).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Whether an error may go away by itself: no answer at all (refused, reset, timed out, a stream
/// cut), 429, or a 5xx (etcd leader changes and a server still starting answer 500/503/504).
/// Certificate and authentication failures are not: the same TLS settings fail the same way.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || (500..=599).contains(&status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            !is_tls_rejection(error)
        }
        _ => false,
    }
}

/// A TLS failure that repeats on every try: the server's certificate is not trusted, or the server
/// refused ours.
fn is_tls_rejection(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::AlertReceived(_)
                    | rustls::Error::InvalidCertRevocationList(_)
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::AlertReceived(_)
            );
        }
        source = e.source();
    }
    false
}

/// The server's own advice on when to come back (429 and some 5xx carry `retryAfterSeconds`).
fn retry_after(error: &kube::Error) -> Option<Duration> {
    match error {
        kube::Error::Api(status) => status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s))),
        _ => None,
    }
}

/// Runs `call` until it succeeds, fails for good, or `retry.deadline` has passed; a final error
/// says what was being done (`what`) and how many tries it took.
pub async fn retrying<T, F, Fut>(retry: &Retry, what: &str, mut call: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let pause = retry_after(&error)
            .unwrap_or_else(|| retry.delay(attempt))
            .min(retry.max_delay.max(retry.first_delay));
        if !is_transient(&error) || started.elapsed() + pause > retry.deadline {
            return Err(describe(what, error, attempt, started.elapsed()));
        }
        tokio::time::sleep(pause).await;
    }
}

/// A kube error as a [`ClusterError`] about `what`.
pub fn describe(what: &str, error: kube::Error, attempts: u32, elapsed: Duration) -> ClusterError {
    match error {
        kube::Error::Api(status) => ClusterError::Api {
            what: what.to_string(),
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        },
        other => {
            // kube prefixes transport errors with its variant's name ("ServiceError: …"): start at
            // the cause, which says what happened (connection refused, certificate not trusted…).
            let cause = match &other {
                kube::Error::Service(_) | kube::Error::HyperError(_) => {
                    std::error::Error::source(&other)
                }
                _ => None,
            };
            ClusterError::Transport {
                what: what.to_string(),
                detail: cause.map_or_else(|| error_chain(&other), error_chain),
                attempts,
                elapsed,
            }
        }
    }
}

/// An error and its causes on one line, without repeats (hyper and kube nest the same text).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Status::failure("m", reason).with_code(code).boxed())
    }

    #[test]
    fn server_side_trouble_is_transient_and_client_mistakes_are_not() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(&api(code, "x")), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 410, 422] {
            assert!(!is_transient(&api(code, "x")), "{code}");
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_transient(&kube::Error::Service(Box::new(refused))));
        let untrusted = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(!is_transient(&kube::Error::Service(Box::new(untrusted))));
        assert!(!is_transient(&kube::Error::SerdeError(
            serde_json::from_str::<u8>("x").unwrap_err()
        )));
    }

    #[test]
    fn the_back_off_doubles_up_to_its_cap() {
        let r = Retry::default();
        let delays: Vec<u128> = (1..=7).map(|a| r.delay(a).as_millis()).collect();
        assert_eq!(delays, vec![200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[tokio::test]
    async fn retries_until_success_and_stops_at_a_final_error() {
        let retry = Retry {
            deadline: Duration::from_secs(5),
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut calls = 0;
        let value = retrying(&retry, "reading x", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 4 {
                    Err(api(503, "ServiceUnavailable"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 4);

        let mut calls = 0;
        let err = retrying(&retry, "creating x", || {
            calls += 1;
            async { Err::<(), _>(api(422, "Invalid")) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(err.code(), Some(422));

        let short = Retry {
            deadline: Duration::from_millis(30),
            ..retry
        };
        let err = retrying(&short, "reading y", || async {
            Err::<(), _>(kube::Error::Service(Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))))
        })
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("reading y: connection refused (tried "),
            "{text}"
        );
    }
}
