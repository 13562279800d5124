//! What a node records about activity: the hash-chained audit log, each function's captured
//! output, and aggregated permission use (for `iam review`).

use async_trait::async_trait;

use crate::{AuditQuery, LogQuery, LogRecord, Result, StoredLog, UsageRecord};

#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Appends events to the hash chain in one transaction, after the stored head.
    async fn append_audit(
        &self,
        events: Vec<moat_telemetry::audit::AuditEvent>,
    ) -> Result<Vec<moat_telemetry::audit::ChainedRecord>>;
    async fn audit_records(
        &self,
        query: AuditQuery,
    ) -> Result<Vec<moat_telemetry::audit::ChainedRecord>>;

    /// Adds aggregated permission uses (counts add up; first/last seen widen).
    async fn record_usage(&self, records: Vec<UsageRecord>) -> Result<()>;
    /// Uses last seen at or after `since_ms`, for one function or all.
    async fn usage(&self, function: Option<&str>, since_ms: i64) -> Result<Vec<UsageRecord>>;

    /// Appends records in one transaction; returns them with the ids they were given.
    async fn append_logs(&self, records: Vec<LogRecord>) -> Result<Vec<StoredLog>>;
    /// Records matching `query`, oldest first.
    async fn logs(&self, query: LogQuery) -> Result<Vec<StoredLog>>;
    /// Keeps only the newest `keep` log records of a function.
    async fn prune_logs(&self, function: &str, keep: u32) -> Result<u64>;
    /// Removes every function's log records older than `before_ms`.
    async fn prune_logs_before(&self, before_ms: i64) -> Result<u64>;
}
