//! API tokens: stored as SHA-256 hashes, checked in constant time.

use std::sync::{Arc, RwLock};

use moat_gateway::{AuthDecision, Authenticator};
use moat_store::{Store, TokenRecord, now_ms, sha256_hex};
use subtle::ConstantTimeEq;

/// The role a bootstrap token gets.
pub const ADMIN_ROLE: &str = "admin";

/// An in-memory copy of the token table, refreshed whenever it changes.
#[derive(Default)]
pub struct Tokens {
    records: RwLock<Vec<TokenRecord>>,
}

impl Tokens {
    pub async fn load(store: &Arc<dyn Store>) -> anyhow::Result<Self> {
        Ok(Tokens {
            records: RwLock::new(store.list_tokens().await?),
        })
    }

    /// The live token matching `token`, if any. Every stored hash is compared, in constant
    /// time, so timing tells nothing about which (or whether any) token matched.
    pub fn check(&self, token: &str) -> Option<TokenRecord> {
        let presented = sha256_hex(token.as_bytes());
        let records = self.records.read().ok()?;
        let mut found = None;
        for r in records.iter() {
            if bool::from(r.hash.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(r);
            }
        }
        let now = now_ms();
        found
            .filter(|r| !r.revoked && r.expires_at_ms.is_none_or(|exp| exp > now))
            .cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.records.read().map(|r| r.is_empty()).unwrap_or(true)
    }
}

impl Authenticator for Tokens {
    fn may_invoke(&self, token: &str, _function: &str) -> AuthDecision {
        // Every live token may invoke for now; per-function grants come with Cedar.
        match self.check(token) {
            Some(_) => AuthDecision::Allowed,
            None => AuthDecision::Unauthenticated,
        }
    }
}
