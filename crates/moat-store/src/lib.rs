//! Everything a Moat node keeps, behind one async interface.
//!
//! Code above this crate sees only [`Store`]: no SQL, no file paths, no backend types. The
//! embedded back end is SQLite ([`SqliteStore`]); a PostgreSQL back end implements the same
//! trait and must pass the same [`conformance`] suite. Each back end carries its own
//! migrations, numbered alike, so both reach the same logical schema.
//!
//! Crash consistency comes from the back end's transactions: every operation that changes
//! more than one row (a deploy, a rollback, a delete) is one transaction, so a crash leaves
//! either the old state or the new one.

pub mod crypto;
mod kv;
mod records;
mod sqlite;
pub mod supply;

#[doc(hidden)]
pub mod conformance;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use kv::KvStore;
pub use records::RecordStore;
pub use sqlite::SqliteStore;
pub use supply::{
    AdvisoryIgnore, AdvisoryRow, ImportCounts, SupplyRecord, SupplyStore, TrustedKey,
};

/// Errors a store reports. Messages are safe to show to an administrator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("route `{route}` is already served by function `{function}`")]
    RouteTaken { route: String, function: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("blob digest mismatch: expected `{expected}`, content hashes to `{actual}`")]
    DigestMismatch { expected: String, actual: String },
    #[error("the store's schema version {found} is newer than this node understands ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// The change would break something that depends on the current state.
    #[error("{0}")]
    Conflict(String),
    #[error("encrypted value unavailable: {0}")]
    Sealed(String),
    #[error("store error: {0}")]
    Backend(String),
}

/// The limits of one key-value bucket. Sizes count key and value bytes as the function
/// wrote them (not their encrypted form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketQuota {
    pub max_value_bytes: u64,
    pub max_keys: u64,
    pub max_total_bytes: u64,
}

impl Default for BucketQuota {
    fn default() -> Self {
        BucketQuota {
            max_value_bytes: 1 << 20,
            max_keys: 10_000,
            max_total_bytes: 64 << 20,
        }
    }
}

/// A bucket and its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    pub quota: BucketQuota,
    pub keys: u64,
    pub bytes: u64,
    pub created_at_ms: i64,
}

/// The largest key a function may use, in bytes.
pub const MAX_KV_KEY_BYTES: usize = 1024;

/// Keys per `list-keys` page.
pub const KV_PAGE: usize = 1000;

/// What an audit query selects.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Records with a greater sequence number.
    pub after_seq: u64,
    pub since_ms: Option<i64>,
    pub function: Option<String>,
    /// An exact action, or a prefix ending in `*` (`policy.*`).
    pub action: Option<String>,
    pub limit: u32,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A version about to be created by a deploy.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub function: String,
    pub route: String,
    /// SHA-256 (lowercase hex) of the component; the blob must already be stored.
    pub component_digest: String,
    /// The locked, validated function spec as JSON.
    pub spec_json: String,
    /// Signer, SBOM and findings, stored in the same transaction as the version.
    pub supply: Option<SupplyRecord>,
}

/// One deployed version of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub function: String,
    pub version: i64,
    pub route: String,
    pub component_digest: String,
    pub spec_json: String,
    pub created_at_ms: i64,
}

/// A function and the version that currently serves its route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub name: String,
    pub route: String,
    pub active_version: i64,
    pub latest_version: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// An API token. Only the SHA-256 of the token is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    /// SHA-256 (lowercase hex) of the secret token string.
    pub hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked: bool,
    /// For an `invoker` token: the one function it may call.
    pub function: Option<String>,
}

/// A secret's metadata. Its value never leaves the store except to the capability that
/// serves a granted function (and the DLP scanner that looks for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMeta {
    pub name: String,
    /// The current version: what an unpinned grant reads.
    pub version: i64,
    /// When the current version was set.
    pub updated_at_ms: i64,
    /// Every kept version, the current one included, oldest first.
    pub versions: Vec<SecretVersionMeta>,
}

/// One kept version of a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionMeta {
    pub version: i64,
    pub created_at_ms: i64,
}

/// One kept version of a secret, opened: for the node's config capability and DLP only.
/// Its `Debug` never shows the value, and the value is wiped when dropped.
#[derive(Clone)]
pub struct SecretValue {
    pub name: String,
    pub version: i64,
    pub value: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValue")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// How often a function used one of its permissions, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub function: String,
    /// A Cedar action, e.g. `http:request`, `secret:read`.
    pub action: String,
    /// The grant used: a host pattern, a secret name.
    pub resource: String,
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// A chunk of a function's captured output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub function: String,
    pub version: i64,
    pub request_id: String,
    /// `stdout`, `stderr` or `platform` (traps and other host-side notes).
    pub stream: String,
    pub at_ms: i64,
    pub text: String,
}

/// A log record as stored. Ids grow in the order records are appended, so a reader can
/// resume after the last id it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLog {
    pub id: i64,
    #[serde(flatten)]
    pub record: LogRecord,
}

/// A filter for [`Store::logs`].
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub function: String,
    pub request_id: Option<String>,
    pub since_ms: Option<i64>,
    /// Only records with a larger id, and then the oldest `limit` of them (a reader paging
    /// forward); without it, the newest `limit`.
    pub after_id: Option<i64>,
    pub limit: u32,
}

/// The node's persistent state. Every method is one atomic operation.
#[async_trait]
pub trait Store: SupplyStore + KvStore + RecordStore + Send + Sync + 'static {
    /// Stores content-addressed bytes. Idempotent; refuses bytes that do not hash to `digest`.
    async fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<()>;

    // --- keys for values sealed at rest ---
    /// Sets the keys values are sealed and opened with, and seals any secret an older
    /// version stored in plaintext.
    fn set_keys(&self, keys: crypto::Keyring) -> Result<()>;
    /// Re-wraps up to `limit` sealed values of each kind that are not under the primary key
    /// (one transaction); returns how many moved. Zero means every value is under it.
    async fn rewrap_sealed(&self, limit: u32) -> Result<u64>;
    /// Sets (`Some`) or removes (`None`) meta keys, all in one transaction.
    async fn update_meta(&self, changes: Vec<(String, Option<String>)>) -> Result<()>;

    // --- alert rules (JSON, as `moat-telemetry` reads them) ---
    /// Adds or replaces rules, all in one transaction.
    async fn put_alert_rules(&self, rules: Vec<(String, String)>) -> Result<()>;
    async fn delete_alert_rule(&self, name: &str) -> Result<bool>;
    async fn alert_rules(&self) -> Result<Vec<(String, String)>>;

    async fn get_blob(&self, digest: &str) -> Result<Option<Vec<u8>>>;
    async fn has_blob(&self, digest: &str) -> Result<bool>;

    /// Creates the next version of a function and makes it the one serving, in one
    /// transaction. Fails with [`StoreError::RouteTaken`] if another function serves the route.
    async fn deploy_version(&self, new: NewVersion) -> Result<VersionRecord>;
    /// Makes an existing version the one serving (rollback).
    async fn activate_version(&self, function: &str, version: i64) -> Result<VersionRecord>;
    /// Removes a function and all its versions. Returns whether it existed.
    async fn delete_function(&self, function: &str) -> Result<bool>;
    async fn list_functions(&self) -> Result<Vec<FunctionRecord>>;
    async fn get_function(&self, function: &str) -> Result<Option<FunctionRecord>>;
    async fn versions(&self, function: &str) -> Result<Vec<VersionRecord>>;
    /// The serving version of every function: what the gateway's route table is built from.
    async fn active_versions(&self) -> Result<Vec<VersionRecord>>;

    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets a value only if the key is absent; returns the value now stored.
    async fn init_meta(&self, key: &str, value: &str) -> Result<String>;

    async fn insert_token(&self, token: TokenRecord) -> Result<()>;
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Marks a token revoked. Returns whether it existed.
    async fn revoke_token(&self, id: &str) -> Result<bool>;

    /// Sets a secret's value as a new version, keeping the older ones; returns the version.
    /// Version numbers of a name only grow, even across a delete of the whole secret, so a
    /// pinned number never comes to mean another value.
    async fn put_secret(&self, name: &str, value: &str) -> Result<i64>;
    /// Deletes a secret and every kept version. Returns whether it existed.
    async fn delete_secret(&self, name: &str) -> Result<bool>;
    /// Deletes one kept version. Returns whether it existed; refuses the current version
    /// with [`StoreError::Conflict`] (delete the whole secret, or set a new version first).
    async fn delete_secret_version(&self, name: &str, version: i64) -> Result<bool>;
    async fn list_secrets(&self) -> Result<Vec<SecretMeta>>;
    /// Every kept version of every secret, opened, by name then version: for the node's
    /// config capability and its DLP scanners only.
    async fn secret_values(&self) -> Result<Vec<SecretValue>>;

    /// Guardrail policies: `(name, Cedar text)`.
    async fn put_policy(&self, name: &str, text: &str) -> Result<()>;
    async fn delete_policy(&self, name: &str) -> Result<bool>;
    async fn policies(&self) -> Result<Vec<(String, String)>>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// SHA-256 of `bytes` as lowercase hex: the digest blobs are stored under.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
