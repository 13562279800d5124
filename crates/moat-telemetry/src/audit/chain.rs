//! The hash chain: how a record's hash is computed, and the writer's side of appending.
//!
//! # Canonical encoding (version 1)
//!
//! A record's hash is `SHA-256(canonical_bytes(seq, prev_hash, event))`, where the bytes are,
//! in this order:
//!
//! | field | encoding |
//! |---|---|
//! | domain tag | the 14 bytes `moat-audit-v1` followed by one `0x00` |
//! | `seq` | u64, 8 bytes big-endian |
//! | `prev_hash` | 32 raw bytes |
//! | `at_ms` | i64, 8 bytes big-endian two's complement |
//! | `actor`, `action`, `target` | each a *string* |
//! | `outcome` | a *string*: `allowed`, `denied`, `succeeded`, `failed` or `detected` |
//! | `source`, `request_id`, `function` | each an *optional string* |
//! | `details` | a *string* holding the canonical JSON text of the value (below) |
//!
//! A *string* is its UTF-8 byte length as a u64 (8 bytes big-endian) followed by the bytes.
//! An *optional string* is `0x00` when absent, or `0x01` followed by a *string*. Because every
//! variable-length field carries its length, no two different records encode to the same
//! bytes (an empty `source` and an absent one differ, and no field can bleed into the next).
//!
//! Canonical JSON: no whitespace; object keys sorted by their UTF-8 bytes; strings escape
//! only `"` as `\"`, `\` as `\\` and the control characters U+0000–U+001F as `\u00xx`
//! (lowercase hex), everything else written as raw UTF-8; numbers as `serde_json` writes them
//! (integers in decimal, floats in their shortest round-trip form, e.g. `1.5`, `1.0`).
//! The crate enables `serde_json`'s `float_roundtrip`, so a float the store keeps as JSON text
//! parses back to the same value and rehashes identically. A store that keeps `details` in a
//! column type that rewrites numbers (PostgreSQL `jsonb` turns `1.0e2` into `100`, for
//! instance) must store the text instead, e.g. [`canonical_json`] of the value.
//!
//! The genesis record (seq 1) has a `prev_hash` of 32 zero bytes.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::AuditEvent;

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Domain separation: a hash of these bytes can never be confused with a hash of anything
/// else Moat hashes (artifacts, checkpoints), and a future encoding gets a new tag.
const DOMAIN_TAG: &[u8] = b"moat-audit-v1\0";

/// One link of the chain, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainedRecord {
    /// Position in the chain, starting at 1, without gaps.
    pub seq: u64,
    /// The `hash` of the record before (or [`GENESIS_HASH`] for seq 1).
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    /// `SHA-256(canonical_bytes(seq, prev_hash, event))`.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
    /// What happened.
    pub event: AuditEvent,
}

impl ChainedRecord {
    /// The hash this record's content should have; differs from `self.hash` if it was altered.
    pub fn compute_hash(&self) -> [u8; 32] {
        record_hash(self.seq, &self.prev_hash, &self.event)
    }

    /// Whether the content still hashes to the stored hash.
    pub fn is_self_consistent(&self) -> bool {
        self.compute_hash() == self.hash
    }
}

/// The writer's view of the chain: the next seq and the hash to link to.
///
/// This is the pure part of appending. The store must make "read the head, append, write"
/// atomic (a transaction holding a lock on the head when several nodes share PostgreSQL):
/// two writers appending to the same head would fork the chain, and `verify` would report
/// the second record as inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    last_seq: u64,
    head: [u8; 32],
}

impl Chain {
    /// A chain continuing after `head` (`(seq, hash)` of the newest stored record), or a new
    /// chain when there is none.
    pub fn new(head: Option<(u64, [u8; 32])>) -> Self {
        match head {
            Some((last_seq, head)) => Chain { last_seq, head },
            None => Chain {
                last_seq: 0,
                head: GENESIS_HASH,
            },
        }
    }

    /// Links `event` after the current head and makes it the new head.
    pub fn append(&mut self, event: AuditEvent) -> ChainedRecord {
        // A u64 counting one record per nanosecond lasts 584 years; saturating keeps this
        // infallible, and a repeated seq would be reported by `verify` rather than wrap to 0.
        let seq = self.last_seq.saturating_add(1);
        let prev_hash = self.head;
        let hash = record_hash(seq, &prev_hash, &event);
        self.last_seq = seq;
        self.head = hash;
        ChainedRecord {
            seq,
            prev_hash,
            hash,
            event,
        }
    }

    /// `(seq, hash)` of the newest record, or `None` for an empty chain.
    pub fn head(&self) -> Option<(u64, [u8; 32])> {
        (self.last_seq > 0).then_some((self.last_seq, self.head))
    }

    /// The seq the next appended record will get.
    pub fn next_seq(&self) -> u64 {
        self.last_seq.saturating_add(1)
    }
}

/// SHA-256 of [`canonical_bytes`].
pub fn record_hash(seq: u64, prev_hash: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
    Sha256::digest(canonical_bytes(seq, prev_hash, event)).into()
}

/// The exact bytes a record's hash covers; see the module documentation.
pub fn canonical_bytes(seq: u64, prev_hash: &[u8; 32], event: &AuditEvent) -> Vec<u8> {
    let details = canonical_json(&event.details);
    let mut out = Vec::with_capacity(
        DOMAIN_TAG.len()
            + 48
            + 8 * 8
            + event.actor.len()
            + event.action.len()
            + event.target.len()
            + details.len()
            + 64,
    );
    out.extend_from_slice(DOMAIN_TAG);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(&event.at_ms.to_be_bytes());
    put_str(&mut out, &event.actor);
    put_str(&mut out, &event.action);
    put_str(&mut out, &event.target);
    put_str(&mut out, event.outcome.as_str());
    put_opt(&mut out, event.source.as_deref());
    put_opt(&mut out, event.request_id.as_deref());
    put_opt(&mut out, event.function.as_deref());
    put_str(&mut out, &details);
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // usize is at most 64 bits on every target Rust supports, so this never truncates.
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// The canonical JSON text of `value`: sorted keys, no whitespace, minimal escaping.
///
/// Written by hand rather than with `serde_json::to_string` because the latter's key order
/// depends on whether any crate in the build enables `preserve_order`, and its escaping is
/// not a documented contract.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_json_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Serde for 32-byte hashes as 64 lowercase hex characters.
pub(crate) mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        super::parse_hash_hex(&text)
            .ok_or_else(|| D::Error::custom(format!("`{text}` is not 64 hex characters")))
    }
}

/// 64 hex characters (either case) as a 32-byte hash.
pub(crate) fn parse_hash_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Outcome;
    use serde_json::json;

    fn event() -> AuditEvent {
        AuditEvent::new(
            1_700_000_000_000,
            "token:ab12cd",
            "function.deploy",
            "orders",
            Outcome::Succeeded,
        )
    }

    #[test]
    fn first_record_links_to_genesis_and_seq_starts_at_one() {
        let mut chain = Chain::new(None);
        assert_eq!(chain.head(), None);
        let r1 = chain.append(event());
        assert_eq!(r1.seq, 1);
        assert_eq!(r1.prev_hash, GENESIS_HASH);
        let r2 = chain.append(event());
        assert_eq!(r2.seq, 2);
        assert_eq!(r2.prev_hash, r1.hash);
        assert_ne!(r1.hash, r2.hash, "seq and prev_hash are covered");
        assert_eq!(chain.head(), Some((2, r2.hash)));
    }

    #[test]
    fn a_chain_resumed_from_its_head_continues_identically() {
        let mut a = Chain::new(None);
        let r1 = a.append(event());
        let r2 = a.append(event());
        let mut b = Chain::new(Some((r1.seq, r1.hash)));
        assert_eq!(b.append(event()), r2);
    }

    #[test]
    fn every_field_is_covered_and_optional_differs_from_empty() {
        let base = event();
        let h = |e: &AuditEvent| record_hash(1, &GENESIS_HASH, e);
        let variants = [
            AuditEvent {
                at_ms: 1,
                ..base.clone()
            },
            AuditEvent {
                actor: "node".into(),
                ..base.clone()
            },
            AuditEvent {
                action: "x".into(),
                ..base.clone()
            },
            AuditEvent {
                target: "y".into(),
                ..base.clone()
            },
            AuditEvent {
                outcome: Outcome::Failed,
                ..base.clone()
            },
            base.clone().with_source(""),
            base.clone().with_request_id(""),
            base.clone().with_function(""),
            base.clone().with_details(json!({})),
        ];
        let mut seen = vec![h(&base)];
        for v in &variants {
            let hv = h(v);
            assert!(!seen.contains(&hv), "{v:?} collides");
            seen.push(hv);
        }
        assert_ne!(record_hash(2, &GENESIS_HASH, &base), h(&base));
        assert_ne!(record_hash(1, &[1; 32], &base), h(&base));
    }

    #[test]
    fn field_boundaries_cannot_shift() {
        let a = AuditEvent {
            actor: "ab".into(),
            action: "c".into(),
            ..event()
        };
        let b = AuditEvent {
            actor: "a".into(),
            action: "bc".into(),
            ..event()
        };
        assert_ne!(
            record_hash(1, &GENESIS_HASH, &a),
            record_hash(1, &GENESIS_HASH, &b)
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_escapes_minimally() {
        let v = json!({"b": [1, 2.5, -3, true, null], "a": {"z": "q\"\\\n\u{1}é", "y": 1.0}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"y":1.0,"z":"q\"\\\u000a\u0001é"},"b":[1,2.5,-3,true,null]}"#
        );
    }

    #[test]
    fn a_record_read_back_from_json_text_rehashes_identically() {
        let mut chain = Chain::new(None);
        let r = chain.append(
            event()
                .with_source("10.0.0.1:5000")
                .with_function("orders")
                .with_details(json!({"ratio": 0.1, "big": u64::MAX, "tiny": 5e-324, "sum": 0.30000000000000004, "odd": 2.2250738585072014e-308, "n": -7})),
        );
        let text = serde_json::to_string(&r).unwrap_or_default();
        let back: ChainedRecord = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
        assert!(back.is_self_consistent());
        // The store may keep details as canonical text in its own column.
        let details: serde_json::Value =
            serde_json::from_str(&canonical_json(&r.event.details)).unwrap_or_default();
        assert_eq!(details, r.event.details);
    }

    #[test]
    fn the_encoding_is_stable() {
        // Pins version 1 of the encoding: if this changes, existing chains stop verifying.
        let r = Chain::new(None).append(event().with_details(json!({"k": "v"})));
        assert_eq!(
            hex::encode(r.hash),
            hex::encode(Sha256::digest(canonical_bytes(1, &GENESIS_HASH, &r.event)))
        );
        let bytes = canonical_bytes(1, &GENESIS_HASH, &r.event);
        assert_eq!(&bytes[..14], b"moat-audit-v1\0");
        assert_eq!(&bytes[14..22], &1u64.to_be_bytes());
        assert!(bytes.ends_with(b"\0\0\0\0\0\0\0\x09{\"k\":\"v\"}"));
        assert_eq!(hex::encode(r.hash), PINNED_HASH);
    }

    // Computed independently from the documented layout (a few lines of Python), not by this code.
    const PINNED_HASH: &str = "dfb368288a84cf8f6c15290586c068bfd62c5993ae1b81c32a4d5cebf7ec405f";
}
