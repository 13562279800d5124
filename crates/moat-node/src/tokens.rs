//! API tokens and roles: tokens are stored as SHA-256 hashes and checked in constant time;
//! a token's role decides what it may do.
//!
//! Roles are Cedar policies (`moat_policy`):
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

use crate::policy::Policies;

/// The role a bootstrap token gets.
pub const ADMIN_ROLE: &str = "admin";
pub const ROLES: &[&str] = &["admin", "deployer", "auditor", "invoker", "none"];

/// Operations of the admin API, each checked against the caller's role by Cedar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    FunctionRead,
    FunctionDeploy,
    FunctionRollback,
    FunctionDelete,
    LogsRead,
    TokensManage,
    SecretsManage,
    PolicyManage,
    IamReview,
    KvManage,
    AuditRead,
    KeysManage,
    AlertsManage,
    /// Trusted signing keys, advisory imports and exceptions.
    SupplyManage,
    SettingsManage,
}

impl Action {
    /// The Cedar action (see `moat_policy::SCHEMA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::FunctionRead => "function:read",
            Action::FunctionDeploy => "function:deploy",
            Action::FunctionRollback => "function:rollback",
            Action::FunctionDelete => "function:delete",
            Action::LogsRead => "logs:read",
            Action::TokensManage => "tokens:manage",
            Action::SecretsManage => "secrets:manage",
            Action::PolicyManage => "policy:manage",
            Action::IamReview => "iam:review",
            Action::KvManage => "kv:manage",
            Action::AuditRead => "audit:read",
            Action::KeysManage => "keys:manage",
            Action::AlertsManage => "alerts:manage",
            Action::SupplyManage => "supply:manage",
            Action::SettingsManage => "settings:manage",
        }
    }
}

/// An in-memory copy of the token table, reloaded whenever it changes.
pub struct Tokens {
    records: RwLock<Vec<TokenRecord>>,
    policies: Policies,
}

impl Tokens {
    pub async fn load(store: &Arc<dyn Store>, policies: Policies) -> anyhow::Result<Self> {
        let t = Tokens {
            records: RwLock::new(Vec::new()),
            policies,
        };
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
        if self
            .policies
            .token_may(&record, "function:invoke", Some(function))
        {
            AuthDecision::Allowed
        } else {
            AuthDecision::Forbidden {
                token_id: record.id,
            }
        }
    }
}
