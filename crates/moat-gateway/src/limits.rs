//! Per-function concurrency (with a short bounded queue) and per-client rate limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `max` invocations of a function at once; up to `queue` more wait up to
/// `queue_wait` for a slot; the rest are refused at once (`503 overloaded`). Each function
/// has its own, so one at its limit never takes slots from another.
pub struct Concurrency {
    slots: std::sync::Arc<Semaphore>,
    max: usize,
    waiting: AtomicUsize,
    queue: usize,
    queue_wait: Duration,
}

impl Concurrency {
    pub fn new(max: usize, queue: usize, queue_wait: Duration) -> Self {
        Concurrency {
            slots: std::sync::Arc::new(Semaphore::new(max)),
            max,
            waiting: AtomicUsize::new(0),
            queue,
            queue_wait,
        }
    }

    /// Invocations holding a slot now (for the in-flight gauge; read, never waited on).
    pub fn in_flight(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Requests waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A slot, or `None` when the function is at capacity and its queue is full or the
    /// wait ran out.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = std::sync::Arc::clone(&self.slots).try_acquire_owned() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit = tokio::time::timeout(
            self.queue_wait,
            std::sync::Arc::clone(&self.slots).acquire_owned(),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.ok()?.ok()
    }
}

/// A token bucket per (function, client).
pub struct RateLimiter {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before idle (full) ones are swept, so the map cannot grow without bound.
const MAX_BUCKETS: usize = 100_000;

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl RateLimiter {
    /// Takes one token for `client` of `function` under `count` per `per_secs`.
    /// `Err(retry_after_secs)` when the bucket is empty.
    pub fn check(
        &self,
        function: &str,
        client: &str,
        count: u32,
        per_secs: u32,
    ) -> Result<(), u64> {
        let capacity = f64::from(count);
        let rate = capacity / f64::from(per_secs.max(1));
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= MAX_BUCKETS {
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < capacity);
        }
        let bucket = buckets
            .entry((function.to_string(), client.to_string()))
            .or_insert(Bucket {
                tokens: capacity,
                at: now,
            });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// An IP network in CIDR form, for trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected an address or CIDR such as `10.0.0.0/8`, found `{s}`");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The caller's address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most address in `x-forwarded-for` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|n| n.contains(peer)) {
        return peer;
    }
    let Some(chain) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !trusted.iter().any(|n| n.contains(client)) {
                    return client;
                }
            }
            // A malformed hop ends the chain we can believe.
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_buckets_refill_and_say_when_to_retry() {
        let rl = RateLimiter::default();
        for _ in 0..3 {
            assert!(rl.check("f", "a", 3, 60).is_ok());
        }
        let retry = rl.check("f", "a", 3, 60).unwrap_err();
        assert!((1..=20).contains(&retry), "{retry}");
        assert!(rl.check("f", "b", 3, 60).is_ok(), "clients are separate");
        assert!(rl.check("g", "a", 3, 60).is_ok(), "functions are separate");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer cannot choose its address.
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // A trusted proxy's header is read right to left, skipping other trusted hops.
        assert_eq!(
            client_ip(ip("10.1.1.1"), Some("6.6.6.6, 1.2.3.4, 10.2.2.2"), &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("::ffff:10.1.1.1"), Some("1.2.3.4"), &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), Some("garbage"), &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(client_ip(ip("10.1.1.1"), None, &trusted), ip("10.1.1.1"));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!(
            "0.0.0.0/0"
                .parse::<IpNet>()
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
    }

    #[tokio::test]
    async fn concurrency_queues_briefly_then_refuses() {
        let c = Concurrency::new(1, 1, Duration::from_millis(50));
        let held = c.acquire().await.unwrap();
        assert_eq!((c.in_flight(), c.queued()), (1, 0));
        // One may wait; it times out since the slot is never freed.
        assert!(c.acquire().await.is_none());
        drop(held);
        assert!(c.acquire().await.is_some());
    }
}
