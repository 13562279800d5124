//! Supply-chain state shared by every node: trusted signing keys, node settings, the
//! imported advisory database, advisory exceptions, and what each deployed version was
//! found to contain (signer, SBOM, findings).
//!
//! Kept apart from [`crate::Store`]'s core so each back end implements it in its own file;
//! every [`crate::Store`] is also a [`SupplyStore`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

/// A public key whose signatures a node accepts (`moat trust add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    /// The operator's name for it (`ci`).
    pub name: String,
    /// The key's id as minisign prints it (16 hex digits).
    pub key_id: String,
    /// The public key file's text (minisign format).
    pub public_key: String,
    pub added_at_ms: i64,
}

/// An accepted advisory: findings with this id do not block deploys until `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvisoryIgnore {
    pub id: String,
    pub reason: String,
    pub until_ms: i64,
    /// Who accepted it (the admin token's id).
    pub created_by: String,
    pub created_at_ms: i64,
}

/// What a deploy learned about a version's supply chain, stored with the version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SupplyRecord {
    /// Who signed the component: the trusted key's name and id, or `None` if unsigned.
    pub signer: Option<String>,
    /// Where the dependency list came from (`cargo-auditable`, `sbom`, `lockfile`, `none`).
    pub sbom_source: String,
    /// The dependency list as CycloneDX JSON.
    pub sbom_json: String,
    /// The advisory findings at the last scan, as JSON.
    pub findings_json: String,
}

/// One stored OSV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryRow {
    pub id: String,
    /// The record's `modified` timestamp as OSV writes it (RFC 3339); a re-import replaces
    /// a stored record only with one at least as new.
    pub modified: String,
    /// The OSV JSON.
    pub json: String,
}

/// What an advisory import changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImportCounts {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
}

#[async_trait]
pub trait SupplyStore: Send + Sync {
    /// Adds a trusted key; [`crate::StoreError::AlreadyExists`] if the name is taken.
    async fn put_trusted_key(&self, key: TrustedKey) -> Result<()>;
    async fn delete_trusted_key(&self, name: &str) -> Result<bool>;
    async fn trusted_keys(&self) -> Result<Vec<TrustedKey>>;

    /// Sets (`Some`) or clears (`None`) a node setting.
    async fn put_setting(&self, key: &str, value: Option<String>) -> Result<()>;
    async fn settings(&self) -> Result<Vec<(String, String)>>;

    /// Adds or replaces OSV records in one transaction (a record replaces a stored one
    /// with the same id unless the stored one is newer).
    async fn import_advisories(&self, rows: Vec<AdvisoryRow>) -> Result<ImportCounts>;
    /// Every stored OSV record's JSON.
    async fn advisories(&self) -> Result<Vec<String>>;

    async fn put_advisory_ignore(&self, ignore: AdvisoryIgnore) -> Result<()>;
    async fn delete_advisory_ignore(&self, id: &str) -> Result<bool>;
    async fn advisory_ignores(&self) -> Result<Vec<AdvisoryIgnore>>;

    /// A version's supply-chain record (written by the deploy that made the version).
    async fn version_supply(&self, function: &str, version: i64) -> Result<Option<SupplyRecord>>;
    /// Every version that has a supply-chain record: `(function, version, record)`.
    async fn all_version_supply(&self) -> Result<Vec<(String, i64, SupplyRecord)>>;
    /// Replaces a version's findings after a re-scan.
    async fn set_version_findings(
        &self,
        function: &str,
        version: i64,
        findings_json: &str,
    ) -> Result<()>;
}
