//! API tokens and roles: tokens are stored as SHA-256 hashes and checked in constant time;
//! a token's role decides what it may do.
//!
//! | role       | may                                                                 |
//! |------------|---------------------------------------------------------------------|
//! | `admin`    | everything                                                          |
//! | `deployer` | upload and deploy components, roll back, read functions and logs   |
//! | `auditor`  | read the audit log and IAM review (nothing else)                    |
//! | `invoker`  | call functions through the gateway (one function, with `--function`) |
//! | `none`     | nothing: a new token has no role unless given one                   |

use std::sync::{Arc, RwLock};

use moat_gateway::{AuthDecision, Authenticator};
use moat_store::{Store, TokenRecord, now_ms, sha256_hex};
use subtle::ConstantTimeEq;

/// The role a bootstrap token gets.
pub const ADMIN_ROLE: &str = "admin";
pub const ROLES: &[&str] = &["admin", "deployer", "auditor", "invoker", "none"];

/// Operations of the admin API, each checked against the caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    FunctionRead,
    FunctionDeploy,
    FunctionRollback,
    FunctionDelete,
    LogsRead,
    TokensManage,
    SecretsManage,
}

/// Whether `role` may perform `action`.
pub fn allows(role: &str, action: Action) -> bool {
    use Action::*;
    match role {
        "admin" => true,
        "deployer" => matches!(
            action,
            FunctionRead | FunctionDeploy | FunctionRollback | LogsRead
        ),
        // The audit log and IAM review are the auditor's; neither exists yet.
        "auditor" => false,
        _ => false,
    }
}

/// An in-memory copy of the token table, reloaded whenever it changes.
#[derive(Default)]
pub struct Tokens {
    records: RwLock<Vec<TokenRecord>>,
}

impl Tokens {
    pub async fn load(store: &Arc<dyn Store>) -> anyhow::Result<Self> {
        let t = Tokens::default();
        t.reload(store).await?;
        Ok(t)
    }

    pub async fn reload(&self, store: &Arc<dyn Store>) -> anyhow::Result<()> {
        let records = store.list_tokens().await?;
        if let Ok(mut r) = self.records.write() {
            *r = records;
        }
        Ok(())
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
    fn identify(&self, token: &str) -> Option<String> {
        self.check(token).map(|r| r.id)
    }

    fn may_invoke(&self, token: &str, function: &str) -> AuthDecision {
        let Some(record) = self.check(token) else {
            return AuthDecision::Unauthenticated;
        };
        let role_may = matches!(record.role.as_str(), "admin" | "invoker");
        let scope_ok = record.function.as_deref().is_none_or(|f| f == function);
        if role_may && scope_ok {
            AuthDecision::Allowed
        } else {
            AuthDecision::Forbidden
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(allows("admin", Action::TokensManage));
        assert!(allows("deployer", Action::FunctionDeploy));
        assert!(!allows("deployer", Action::TokensManage));
        assert!(!allows("deployer", Action::FunctionDelete));
        assert!(!allows("auditor", Action::FunctionRead));
        assert!(!allows("invoker", Action::FunctionRead));
        assert!(!allows("none", Action::FunctionRead));
        assert!(!allows("made-up", Action::FunctionRead));
    }
}
