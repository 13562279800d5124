//! Node defaults, in one place. `docs/manifest.md` documents the same values.

/// `limits.timeout_ms` when a manifest does not set it.
pub const TIMEOUT_MS: u64 = 10_000;
/// `limits.memory_mb` when a manifest does not set it.
pub const MEMORY_MB: u32 = 128;
/// `limits.max_concurrency`: invocations of one function at once.
pub const MAX_CONCURRENCY: u32 = 256;
/// How long a request may wait in a function's queue for a slot before `503 overloaded`.
pub const QUEUE_WAIT_MS: u64 = 1000;
/// `limits.max_body_bytes`.
pub const MAX_BODY_BYTES: u64 = 1 << 20;
/// `limits.max_response_bytes`.
pub const MAX_RESPONSE_BYTES: u64 = 4 << 20;
/// Function output kept per function per second (after the per-invocation bound); the
/// rest is counted and dropped.
pub const LOG_BYTES_PER_SEC: u64 = 1 << 20;
/// Bytes of stdout, and of stderr, kept per invocation; the rest is counted and dropped.
pub const LOG_BYTES_PER_STREAM: usize = 64 * 1024;
/// Log records kept per function in the store.
pub const LOG_RECORDS_KEPT: u32 = 10_000;
/// Log records older than this are removed (checked every minute).
pub const LOG_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Audit events waiting to be written before more count as overflow (`moat up --audit-queue`,
/// hidden: tests make it small to lose events on purpose).
pub const AUDIT_QUEUE: usize = 65_536;
/// Largest admin request body that is not a component upload.
pub const MAX_ADMIN_JSON_BYTES: usize = 8 << 20;
/// How long a stopping node waits for in-flight requests.
pub const DRAIN_SECS: u64 = 30;
/// Concurrent outbound requests per function.
pub const EGRESS_CONCURRENCY: usize = 16;
/// Time for one outbound request: resolve, connect, TLS and the response head.
pub const EGRESS_TIMEOUT_MS: u64 = 10_000;
