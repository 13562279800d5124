//! Delivering firings: the `x-moat-signature` HMAC and the retry schedule.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The header that carries [`sign_webhook`]'s value (SPEC §4).
pub const SIGNATURE_HEADER: &str = "x-moat-signature";

/// HMAC-SHA256's block size: keys are hashed if longer and zero-padded to this.
const BLOCK: usize = 64;

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // RFC 2104 reduces any key to one block (hash it if longer, pad with zeros). Doing that
    // here lets us use the infallible block-sized constructor instead of `new_from_slice`,
    // whose error can never happen for HMAC but would need an unwrap.
    let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block)
}

/// `sha256=<lowercase hex HMAC-SHA256 of body under key>`, the value of `x-moat-signature`.
pub fn sign_webhook(body: &[u8], key: &[u8]) -> String {
    let mut m = mac(key);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` under `key`, compared in constant time
/// (for receivers, and tests).
pub fn verify_webhook(body: &[u8], key: &[u8], header: &str) -> bool {
    let Some(tag) = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut m = mac(key);
    m.update(body);
    m.verify_slice(&tag).is_ok()
}

/// Exponential backoff between webhook attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The delay before the first retry.
    pub base: Duration,
    /// No delay is longer than this.
    pub cap: Duration,
    /// Retries after the first attempt; then the firing is given up (and counted).
    pub max_retries: u32,
}

impl Default for RetrySchedule {
    /// 1 s, 2 s, 4 s, … capped at 5 min, 8 retries (about 9 minutes in all).
    fn default() -> Self {
        RetrySchedule {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            max_retries: 8,
        }
    }
}

impl RetrySchedule {
    /// The delay before retry `retry` (1 is the first retry): `base * 2^(retry-1)`, at most
    /// `cap`; `None` for 0 or past `max_retries`. Deterministic, for tests and for callers
    /// that add their own jitter.
    pub fn delay(&self, retry: u32) -> Option<Duration> {
        if retry == 0 || retry > self.max_retries {
            return None;
        }
        let factor = 1u32.checked_shl(retry - 1).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.cap))
    }

    /// [`RetrySchedule::delay`] with "equal jitter": half the delay, plus `random`'s share of
    /// the other half, so many nodes retrying one receiver spread out. `random` is any u64
    /// (pass a fixed one in tests).
    pub fn delay_with_jitter(&self, retry: u32, random: u64) -> Option<Duration> {
        let d = self.delay(retry)?;
        let nanos = d.as_nanos();
        let half = nanos / 2;
        let extra = ((nanos - half) * u128::from(random)) >> 64;
        let total = u64::try_from(half + extra).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(total))
    }
}

/// The default schedule's deterministic delay before retry `retry`, staying at the cap for
/// retries past the last (0 is no delay).
pub fn backoff(retry: u32) -> Duration {
    let s = RetrySchedule {
        max_retries: u32::MAX,
        ..RetrySchedule::default()
    };
    s.delay(retry).unwrap_or(Duration::ZERO)
}

/// [`backoff`] with equal jitter from the operating system's randomness (no jitter if that
/// fails: a retry a little less spread out is better than none).
pub fn backoff_with_jitter(retry: u32) -> Duration {
    let s = RetrySchedule {
        max_retries: u32::MAX,
        ..RetrySchedule::default()
    };
    let random = getrandom::u64().unwrap_or(u64::MAX);
    s.delay_with_jitter(retry, random).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_rfc_4231() {
        // Test case 2.
        assert_eq!(
            sign_webhook(b"what do ya want for nothing?", b"Jefe"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            sign_webhook(
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                &[0xaa; 131]
            ),
            "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Exactly one block, and empty.
        let full = [0x0b; 64];
        assert!(verify_webhook(b"x", &full, &sign_webhook(b"x", &full)));
        assert!(verify_webhook(b"", b"", &sign_webhook(b"", b"")));
    }

    #[test]
    fn verification_refuses_altered_bodies_keys_and_headers() {
        let sig = sign_webhook(b"{\"a\":1}", b"k");
        assert!(verify_webhook(b"{\"a\":1}", b"k", &sig));
        assert!(!verify_webhook(b"{\"a\":2}", b"k", &sig));
        assert!(!verify_webhook(b"{\"a\":1}", b"j", &sig));
        assert!(!verify_webhook(
            b"{\"a\":1}",
            b"k",
            &sig.replace("sha256=", "sha1=")
        ));
        assert!(!verify_webhook(b"{\"a\":1}", b"k", &sig[..sig.len() - 2]));
        assert!(!verify_webhook(b"{\"a\":1}", b"k", "sha256=zz"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops() {
        let s = RetrySchedule::default();
        let secs: Vec<_> = (1..=8)
            .filter_map(|r| s.delay(r))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 64, 128]);
        assert_eq!(s.delay(0), None);
        assert_eq!(s.delay(9), None);
        assert_eq!(backoff(10), Duration::from_secs(300));
        assert_eq!(backoff(1_000), Duration::from_secs(300), "no overflow");
        assert_eq!(backoff(0), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_between_half_and_the_full_delay() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_with_jitter(3, 0), Some(Duration::from_secs(2)));
        assert_eq!(
            s.delay_with_jitter(3, u64::MAX / 2 + 1),
            Some(Duration::from_secs(3))
        );
        let max = s.delay_with_jitter(3, u64::MAX).unwrap_or_default();
        assert!(max < Duration::from_secs(4) && max > Duration::from_millis(3999));
        for r in 1..20 {
            let d = backoff_with_jitter(r);
            assert!(d >= backoff(r) / 2 && d <= backoff(r), "{r}: {d:?}");
        }
    }
}
