//! Node defaults, in one place. `docs/manifest.md` documents the same values.

/// `limits.timeout_ms` when a manifest does not set it.
pub const TIMEOUT_MS: u64 = 10_000;
/// `limits.memory_mb` when a manifest does not set it.
pub const MEMORY_MB: u32 = 128;
/// Bytes of stdout, and of stderr, kept per invocation; the rest is counted and dropped.
pub const LOG_BYTES_PER_STREAM: usize = 64 * 1024;
/// Log records kept per function in the store.
pub const LOG_RECORDS_KEPT: u32 = 10_000;
/// Largest admin request body that is not a component upload.
pub const MAX_ADMIN_JSON_BYTES: usize = 8 << 20;
/// How long a stopping node waits for in-flight requests.
pub const DRAIN_SECS: u64 = 30;
