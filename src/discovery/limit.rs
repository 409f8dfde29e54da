//! The per-client rate limit of the discovery endpoint: a token bucket per client address for requests
//! that did not name a served token, in a table of bounded size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most clients tracked at once; beyond it, idle clients are forgotten first, and when none is
/// idle a new client's failed requests are refused until one is.
pub const MAX_CLIENTS: usize = 16_384;
/// A client not seen for this long is idle.
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by client address.
#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimit {
    /// `per_second` failed requests a second per client, with bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `client`'s bucket; false when it is empty (the request is refused).
    pub fn allow(&self, client: IpAddr) -> bool {
        self.allow_at(client, Instant::now())
    }

    fn allow_at(&self, client: IpAddr, now: Instant) -> bool {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if !clients.contains_key(&client) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, b| now.duration_since(b.updated) < IDLE);
            if clients.len() >= MAX_CLIENTS {
                return false;
            }
        }
        let bucket = clients.entry(client).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How many clients are tracked.
    pub fn clients(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_refills_and_is_per_client() {
        let limit = RateLimit::new(10, 3);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let t0 = Instant::now();
        assert!((0..3).all(|_| limit.allow_at(a, t0)));
        assert!(!limit.allow_at(a, t0));
        assert!(limit.allow_at(b, t0), "another client has its own bucket");
        assert!(limit.allow_at(a, t0 + Duration::from_millis(110)));
        assert!(!limit.allow_at(a, t0 + Duration::from_millis(110)));
    }

    #[test]
    fn the_table_is_bounded() {
        let limit = RateLimit::new(1, 1);
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS as u32 {
            assert!(limit.allow_at(IpAddr::from(i.to_be_bytes()), t0));
        }
        assert!(!limit.allow_at(IpAddr::from([255, 1, 2, 3]), t0));
        assert_eq!(limit.clients(), MAX_CLIENTS);
        assert!(limit.allow_at(IpAddr::from([255, 1, 2, 3]), t0 + IDLE));
        assert_eq!(limit.clients(), 1);
    }
}
