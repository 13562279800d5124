//! The tamper-evident audit log: events, the hash chain, signed checkpoints, verification.
//!
//! The node appends every admin action and security event through a [`Chain`] (inside a
//! store transaction), periodically signs its head into a [`Checkpoint`] kept off-node, and
//! `moat audit-log verify` feeds the stored records to [`verify`].

mod chain;
mod checkpoint;
mod event;
mod verify;

pub use chain::{Chain, ChainedRecord, GENESIS_HASH, canonical_bytes, canonical_json, record_hash};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointKey, KeyError, public_key_from_base64,
    public_key_to_base64,
};
pub use ed25519_dalek::VerifyingKey;
pub use event::{AuditEvent, Outcome, actor, now_ms};
pub use verify::{Finding, VerifyReport, verify};
