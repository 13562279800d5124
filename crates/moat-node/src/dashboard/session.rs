//! Dashboard sessions: a random id in an `HttpOnly; SameSite=Strict` cookie, everything
//! else on the server.
//!
//! A session holds the API token it was opened with, so that every request is judged by
//! that token's *current* standing (a revoked or expired token ends its sessions at once)
//! and role, through the same checks as the API. The token is held in memory only (zeroed
//! when the session goes), never sent back to the browser. Sessions are keyed by the SHA-256
//! of their id, so a lookup's timing says nothing about stored ids, and end after
//! [`IDLE`] without use or [`LIFETIME`] in all. Each has its own CSRF token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A session unused this long is gone.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session is gone this long after login, however busy.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Live sessions at most; past it the least recently used one is dropped.
const MAX_SESSIONS: usize = 1024;

/// The session cookie's name.
pub const COOKIE: &str = "moat_session";
/// The pre-session (login form) CSRF cookie's name: double-submitted with the form.
pub const LOGIN_COOKIE: &str = "moat_login_csrf";

struct Session {
    token: Zeroizing<String>,
    csrf: String,
    created: Instant,
    seen: Instant,
}

/// What a request learns from its session.
pub struct Current {
    /// The API token the session was opened with (checked again on every request).
    pub token: Zeroizing<String>,
    pub csrf: String,
}

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex: session ids and CSRF tokens.
pub fn random_hex() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(hex::encode(b))
}

fn key(id: &str) -> String {
    moat_store::sha256_hex(id.as_bytes())
}

impl Sessions {
    /// Opens a session for `token`; returns its id (for the cookie).
    pub fn open(&self, token: &str, now: Instant) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, s| alive(s, now));
            if live.len() >= MAX_SESSIONS
                && let Some(oldest) = live
                    .iter()
                    .min_by_key(|(_, s)| s.seen)
                    .map(|(k, _)| k.clone())
            {
                live.remove(&oldest);
            }
            live.insert(
                key(&id),
                Session {
                    token: Zeroizing::new(token.to_string()),
                    csrf,
                    created: now,
                    seen: now,
                },
            );
        }
        Ok(id)
    }

    /// The live session `id`, marked as used now; an expired one is removed.
    pub fn get(&self, id: &str, now: Instant) -> Option<Current> {
        let mut live = self.live.lock().ok()?;
        let k = key(id);
        let session = live.get_mut(&k)?;
        if !alive(session, now) {
            live.remove(&k);
            return None;
        }
        session.seen = now;
        Some(Current {
            token: session.token.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Whether session `id` is live, without counting this as a use (an open event stream
    /// asks this; it must not keep an idle session alive).
    pub fn is_live(&self, id: &str, now: Instant) -> bool {
        self.live
            .lock()
            .ok()
            .and_then(|live| live.get(&key(id)).map(|s| alive(s, now)))
            .unwrap_or(false)
    }

    /// Ends session `id` (logout, or its token no longer holds).
    pub fn close(&self, id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&key(id));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.seen) < IDLE
        && now.saturating_duration_since(s.created) < LIFETIME
}

/// Whether a submitted CSRF token is the expected one, compared in constant time.
pub fn csrf_matches(expected: &str, submitted: Option<&str>) -> bool {
    match submitted {
        Some(s) if !expected.is_empty() => bool::from(expected.as_bytes().ct_eq(s.as_bytes())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_after_their_lifetime_and_close_on_logout() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.open("secret-token", t0).unwrap();
        assert_eq!(id.len(), 64);
        let got = s.get(&id, t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(got.token.as_str(), "secret-token");
        assert_eq!(got.csrf.len(), 64);
        assert!(s.get("not-a-session", t0).is_none());

        // Used every 20 minutes, it lives until its lifetime ends.
        let mut t = t0;
        while t + Duration::from_secs(20 * 60) < t0 + LIFETIME {
            t += Duration::from_secs(20 * 60);
            assert!(s.get(&id, t).is_some(), "alive at {:?}", t - t0);
        }
        assert!(s.get(&id, t0 + LIFETIME).is_none());
        assert_eq!(s.len(), 0, "an expired session is removed");

        // Idle for 30 minutes: gone.
        let id = s.open("t", t0).unwrap();
        assert!(s.get(&id, t0 + IDLE - Duration::from_secs(1)).is_some());
        assert!(s.get(&id, t0 + 2 * IDLE).is_none());

        let id = s.open("t", t0).unwrap();
        assert!(s.is_live(&id, t0 + IDLE - Duration::from_secs(1)));
        // Asking does not keep it alive.
        assert!(!s.is_live(&id, t0 + IDLE));
        let id = s.open("t", t0).unwrap();
        s.close(&id);
        assert!(s.get(&id, t0).is_none());
        assert!(!s.is_live(&id, t0));
    }

    #[test]
    fn sessions_are_bounded_and_csrf_tokens_differ() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let first = s.open("t", t0).unwrap();
        for i in 1..=MAX_SESSIONS {
            s.open("t", t0 + Duration::from_millis(i as u64)).unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get(&first, t0 + Duration::from_secs(1)).is_none());
        let t1 = t0 + Duration::from_secs(2);
        let a = s.open("t", t1).unwrap();
        let b = s.open("t", t1).unwrap();
        let (a, b) = (s.get(&a, t1).unwrap(), s.get(&b, t1).unwrap());
        assert_ne!(a.csrf, b.csrf);
        assert!(csrf_matches(&a.csrf, Some(&a.csrf)));
        assert!(!csrf_matches(&a.csrf, Some(&b.csrf)));
        assert!(!csrf_matches(&a.csrf, None));
        assert!(!csrf_matches("", Some("")));
    }
}
