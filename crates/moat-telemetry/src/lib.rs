//! Visibility: the tamper-evident audit chain, signed checkpoints, and alert rules.
//!
//! A pure library: no database, no async runtime, no clock reads except the thin
//! [`audit::now_ms`] wrapper and [`alerts::backoff_with_jitter`]. The node wires it to its
//! store and HTTP client; every function here takes time as an argument, so tests are exact.

pub mod alerts;
pub mod audit;
