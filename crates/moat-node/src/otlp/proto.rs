//! OTLP messages in protobuf's wire format (`application/x-protobuf`, the OTLP/HTTP default),
//! written by hand: Moat sends two message shapes — six spans per request and a few log
//! records — and the encoding of those is a small, stable part of the OTLP spec. Field
//! numbers are those of `opentelemetry/proto/{collector,trace,logs,common,resource}/v1`.
//!
//! These run for every request the node serves, so they append to one buffer, write ids and
//! times as raw bytes (no hex, no decimal), and allocate nothing per span or record.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use moat_gateway::trace::{Phase, RequestTrace};

use moat_store::LogRecord;

/// Lines of one record exported as log records of their own; the rest go in one more.
pub const LINES_PER_RECORD: usize = 256;

// Wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, field << 3 | wire);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, value: &[u8]) {
    key(out, field, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
    key(out, field, VARINT);
    varint(out, value);
}

fn fixed64_field(out: &mut Vec<u8>, field: u64, value: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A nested message as field `field`: its length is written once `body` is, in front of it
/// (one byte is kept for it; a longer length moves the body up).
pub fn message(out: &mut Vec<u8>, field: u64, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.push(0);
    body(out);
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
        return;
    }
    let (mut prefix, mut n, mut v) = ([0u8; 10], 0, len as u64);
    while v >= 0x80 {
        prefix[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    prefix[n] = v as u8;
    n += 1;
    out.resize(out.len() + n - 1, 0);
    out.copy_within(at + 1..at + 1 + len, at + n);
    out[at..at + n].copy_from_slice(&prefix[..n]);
}

// common.v1.KeyValue { key = 1; value = 2 } and AnyValue { string_value = 1;
// bool_value = 2; int_value = 3 }.
fn attr_str(out: &mut Vec<u8>, field: u64, key: &str, value: &str) {
    message(out, field, |kv| {
        bytes_field(kv, 1, key.as_bytes());
        message(kv, 2, |v| bytes_field(v, 1, value.as_bytes()));
    });
}

fn attr_int(out: &mut Vec<u8>, field: u64, key: &str, value: u64) {
    message(out, field, |kv| {
        bytes_field(kv, 1, key.as_bytes());
        message(kv, 2, |v| varint_field(v, 3, value));
    });
}

fn attr_bool(out: &mut Vec<u8>, field: u64, key: &str, value: bool) {
    message(out, field, |kv| {
        bytes_field(kv, 1, key.as_bytes());
        message(kv, 2, |v| varint_field(v, 2, u64::from(value)));
    });
}

/// Room kept at the front of a batch buffer for the envelope around its items.
pub const HEAD_ROOM: usize = 160;

/// A fresh batch buffer: [`HEAD_ROOM`] bytes for the envelope, then the items.
pub fn batch_buffer(capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEAD_ROOM + capacity);
    buf.resize(HEAD_ROOM, 0);
    buf
}

/// Wraps the items after [`HEAD_ROOM`] (spans or log records, each already field 2 of a
/// `ScopeSpans` / `ScopeLogs`) in the request around them, in place:
/// `Export{Trace,Logs}ServiceRequest { resource_{spans,logs} = 1 { resource = 1;
/// scope_{spans,logs} = 2 { scope = 1; items } } }` — the two shapes are the same on the
/// wire.
pub fn finish_batch(mut buf: Vec<u8>) -> Bytes {
    let items = buf.len() - HEAD_ROOM;
    let (resource, scope) = (resource(), scope());
    let scoped = scope.len() + items;
    let mut head = Vec::with_capacity(HEAD_ROOM);
    let mut inner = resource.clone();
    key(&mut inner, 2, LEN);
    varint(&mut inner, scoped as u64);
    inner.extend_from_slice(&scope);
    key(&mut head, 1, LEN);
    varint(&mut head, (inner.len() + scoped - scope.len()) as u64);
    head.extend_from_slice(&inner);
    let from = HEAD_ROOM - head.len();
    buf[from..HEAD_ROOM].copy_from_slice(&head);
    Bytes::from(buf).slice(from..)
}

/// `resource = 1` of a `Resource{Spans,Logs}`: `service.name` and `service.version`.
fn resource() -> Vec<u8> {
    let mut out = Vec::new();
    message(&mut out, 1, |r| {
        attr_str(r, 1, "service.name", "moat");
        attr_str(r, 1, "service.version", env!("CARGO_PKG_VERSION"));
    });
    out
}

/// `scope = 1` of a `Scope{Spans,Logs}`: `InstrumentationScope { name = 1; version = 2 }`.
fn scope() -> Vec<u8> {
    let mut out = Vec::new();
    message(&mut out, 1, |s| {
        bytes_field(s, 1, b"moat");
        bytes_field(s, 2, env!("CARGO_PKG_VERSION").as_bytes());
    });
    out
}

/// Span ids are derived from the trace id and a slot (0 is the root, then one per phase):
/// unique within the trace, never zero (splitmix64 of the trace id's low half and the slot).
pub fn span_id(trace_id: &[u8; 16], slot: u64) -> [u8; 8] {
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let mut z = u64::from_be_bytes(low) ^ slot.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).max(1).to_be_bytes()
}

pub fn slot(phase: Phase) -> u64 {
    phase as u64 + 1
}

/// Nanoseconds since the epoch (a u64 lasts until 2554).
fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, nanos)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One span's fields before its attributes (`trace.v1.Span`).
struct Span<'a> {
    trace: &'a [u8; 16],
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: &'a str,
    /// 1 internal, 2 server.
    kind: u64,
    start_ns: u64,
    duration: Duration,
}

impl Span<'_> {
    /// Appends the span as field 2 of a `ScopeSpans`; `more` writes its attributes (field
    /// 9); a status code of 0 (unset) is the default and is left out.
    fn write(&self, out: &mut Vec<u8>, status: u64, more: impl FnOnce(&mut Vec<u8>)) {
        message(out, 2, |s| {
            bytes_field(s, 1, self.trace);
            bytes_field(s, 2, &self.id);
            if let Some(parent) = &self.parent {
                bytes_field(s, 4, parent);
            }
            bytes_field(s, 5, self.name.as_bytes());
            varint_field(s, 6, self.kind);
            fixed64_field(s, 7, self.start_ns);
            fixed64_field(s, 8, self.start_ns.saturating_add(nanos(self.duration)));
            more(s);
            if status != 0 {
                message(s, 15, |st| varint_field(st, 3, status));
            }
        });
    }
}

/// Appends the trace's spans; returns how many.
pub fn encode_trace(out: &mut Vec<u8>, t: &RequestTrace) -> u64 {
    let start_ns = unix_nanos(t.start);
    let root = span_id(&t.id, 0);
    // 2 is ERROR: a platform failure or a guest failure; 4xx are the caller's, left unset.
    let code = match t.status {
        Some(s) if s < 500 => 0,
        _ => 2,
    };
    let span = Span {
        trace: &t.id,
        id: root,
        parent: None,
        name: "moat.request",
        kind: 2,
        start_ns,
        duration: t.duration,
    };
    span.write(out, code, |s| {
        let mut rid = [0u8; 32];
        if hex::encode_to_slice(t.id, &mut rid).is_ok() {
            bytes_field_attr(s, "moat.request_id", &rid);
        }
        if let Some(route) = &t.route {
            attr_str(s, 9, "moat.function", &route.function);
            attr_int(s, 9, "moat.function.version", route.version.max(0) as u64);
        }
        if let Some(status) = t.status {
            attr_int(s, 9, "http.response.status_code", u64::from(status));
        }
        if !t.queue_wait.is_zero() {
            attr_int(s, 9, "moat.queue_wait_us", t.queue_wait.as_micros() as u64);
        }
    });
    let mut n = 1;
    for (phase, timing) in t.phases() {
        let span = Span {
            trace: &t.id,
            id: span_id(&t.id, slot(phase)),
            parent: Some(root),
            name: phase.span_name(),
            kind: 1,
            start_ns: start_ns.saturating_add(nanos(timing.start)),
            duration: timing.duration,
        };
        span.write(out, 0, |s| {
            if phase == Phase::Dlp {
                attr_str(s, 9, "moat.dlp.mode", t.dlp_mode);
                attr_int(
                    s,
                    9,
                    "moat.dlp.headers_us",
                    t.dlp_headers.as_micros() as u64,
                );
                attr_bool(s, 9, "moat.response.streamed", t.streamed);
            }
        });
        n += 1;
    }
    n
}

/// A string attribute whose value is ASCII bytes already at hand.
fn bytes_field_attr(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    message(out, 9, |kv| {
        bytes_field(kv, 1, key.as_bytes());
        message(kv, 2, |v| bytes_field(v, 1, value));
    });
}

/// Appends one log record (`logs.v1.LogRecord`, field 2 of a `ScopeLogs`) per line of the
/// output, up to [`LINES_PER_RECORD`] and the rest in one more; returns how many.
pub fn encode_log(out: &mut Vec<u8>, l: &LogRecord) -> u64 {
    let (severity, text): (u64, &str) = match l.stream.as_str() {
        "stdout" | "audit-checkpoint" => (9, "INFO"),
        "stderr" => (13, "WARN"),
        _ => (17, "ERROR"),
    };
    let time_ns = u64::try_from(l.at_ms.max(0))
        .unwrap_or(0)
        .saturating_mul(1_000_000);
    // "-" is output not tied to a request (an outbound denial): no trace to point at.
    let trace = (l.request_id != "-").then(|| moat_gateway::trace::id_bytes(&l.request_id));
    let record = |out: &mut Vec<u8>, body: &str| {
        message(out, 2, |r| {
            fixed64_field(r, 1, time_ns);
            varint_field(r, 2, severity);
            bytes_field(r, 3, text.as_bytes());
            message(r, 5, |v| bytes_field(v, 1, body.as_bytes()));
            if !l.function.is_empty() {
                attr_str(r, 6, "moat.function", &l.function);
                attr_int(r, 6, "moat.function.version", l.version.max(0) as u64);
            }
            attr_str(r, 6, "moat.stream", &l.stream);
            attr_str(r, 6, "moat.request_id", &l.request_id);
            if let Some(trace) = &trace {
                bytes_field(r, 9, trace);
                bytes_field(r, 10, &span_id(trace, slot(Phase::Execution)));
            }
            fixed64_field(r, 11, time_ns);
        });
    };
    let mut lines = l.text.lines().filter(|s| !s.is_empty());
    let mut n = 0;
    for line in lines.by_ref().take(LINES_PER_RECORD) {
        record(out, line);
        n += 1;
    }
    let rest: Vec<&str> = lines.collect();
    if !rest.is_empty() {
        record(out, &rest.join("\n"));
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn varints_and_long_messages_are_encoded_as_the_wire_format_wants() {
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            varint(&mut out, v);
        }
        assert_eq!(
            out,
            [
                0, 1, 0x7f, 0x80, 0x01, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0x01
            ]
        );
        // A message longer than 127 bytes gets a two-byte length, and its body moves up.
        let mut out = vec![9];
        message(&mut out, 2, |m| m.extend(std::iter::repeat_n(7u8, 200)));
        assert_eq!(&out[..4], &[9, 0x12, 0xc8, 0x01]);
        assert_eq!(out.len(), 4 + 200);
        assert!(out[4..].iter().all(|b| *b == 7));
    }

    #[test]
    fn span_ids_differ_within_a_trace_and_are_never_zero() {
        let id = moat_gateway::trace::id_bytes("0123456789abcdef0123456789abcdef");
        let ids: std::collections::HashSet<[u8; 8]> = (0..6).map(|s| span_id(&id, s)).collect();
        assert_eq!(ids.len(), 6);
        assert!(!ids.contains(&[0; 8]));
        assert_eq!(span_id(&[0; 16], 0), span_id(&[0; 16], 0));
    }
}
