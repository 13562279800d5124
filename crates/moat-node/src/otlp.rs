//! OpenTelemetry export (`moat up --otlp-endpoint URL`): one trace per gateway request and
//! each line of function output as a log record, sent as OTLP/HTTP JSON to `URL/v1/traces`
//! and `URL/v1/logs`.
//!
//! Hand-built JSON rather than the `opentelemetry-otlp` crate: what Moat sends is six spans
//! and a few log records per request, the encoding is a small, stable part of the OTLP spec
//! (ids in hex, 64-bit times as decimal strings, enums as integers), and the crate would
//! bring its SDK, gRPC and a second HTTP client stack into the node for it.
//!
//! Off the request path: the gateway and the invocation log hand items to a bounded queue
//! with `try_send`; a task wakes every [`FLUSH`], drains the queue and POSTs batches of up
//! to [`BATCH`] items. It never waits on the queue itself: a receiver waiting for items would
//! be woken (a cross-thread wake, a futex call) by every request, which cost more than
//! encoding the trace. A
//! full queue drops the item and counts it; a failed POST drops the batch, counts it, and is
//! logged (at most every [`LOG_EVERY`]). Nothing here ever waits on the collector while a
//! request is being served.
//!
//! Trace ids are the request ids (both 128 random bits in hex), so a trace, the function's
//! log records and `moat logs --request` all name the same id. Span ids are derived from
//! the trace id and the phase, so a log record can name the execution span without state.
//! No caller identity, token, header or body is ever exported; log text is what the store
//! keeps, already redacted.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use moat_gateway::trace::{Phase, RequestTrace};
use tokio::sync::mpsc;

/// Items waiting to be exported before new ones are dropped.
const QUEUE: usize = 32_768;
/// Items per POST at most.
const BATCH: usize = 4_096;
/// How often the queue is drained (so it holds about this long of traffic).
const FLUSH: Duration = Duration::from_millis(200);
/// How often an export failure is logged (every failure is counted).
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Lines of one record exported as log records of their own; the rest go in one more.
const LINES_PER_RECORD: usize = 256;

/// One record of captured output, as the store keeps it (already redacted).
pub struct LogLine {
    pub function: String,
    pub version: i64,
    pub request_id: String,
    /// `stdout`, `stderr` or `platform` (a trap, a timeout, a denial).
    pub stream: String,
    pub at_ms: i64,
    pub text: String,
}

enum Item {
    Trace(RequestTrace),
    Log(LogLine),
}

#[derive(Default)]
struct Signal {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

pub struct Exporter {
    tx: mpsc::Sender<Item>,
    traces: Arc<Signal>,
    logs: Arc<Signal>,
}

/// Why an OTLP endpoint is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "--otlp-endpoint: expected an `http://` or `https://` URL such as `http://127.0.0.1:4318`, found `{0}`"
)]
pub struct BadEndpoint(String);

impl Exporter {
    /// Checks the endpoint and starts the export task.
    pub fn start(endpoint: &str) -> Result<Arc<Exporter>, BadEndpoint> {
        let base = endpoint.trim_end_matches('/');
        let uri: http::Uri = base.parse().map_err(|_| BadEndpoint(endpoint.into()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(BadEndpoint(endpoint.into()));
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let me = Arc::new(Exporter {
            tx,
            traces: Arc::default(),
            logs: Arc::default(),
        });
        tokio::spawn(export(
            rx,
            base.to_string(),
            Arc::clone(&me.traces),
            Arc::clone(&me.logs),
        ));
        Ok(me)
    }

    /// Queues a request's trace; never blocks.
    pub fn trace(&self, trace: RequestTrace) {
        if self.tx.try_send(Item::Trace(trace)).is_err() {
            self.traces.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues a record of function output; never blocks.
    pub fn log(&self, line: LogLine) {
        if self.tx.try_send(Item::Log(line)).is_err() {
            self.logs.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, out: &mut String) {
        for (name, help, pick) in [
            (
                "moat_otlp_exported_total",
                "Spans and log records accepted by the OTLP collector, by signal.",
                (|s: &Signal| &s.exported) as fn(&Signal) -> &AtomicU64,
            ),
            (
                "moat_otlp_dropped_total",
                "Traces and log records dropped because the export queue was full, by signal.",
                |s: &Signal| &s.dropped,
            ),
            (
                "moat_otlp_export_failures_total",
                "Failed OTLP POSTs (the batch is dropped), by signal.",
                |s: &Signal| &s.failed,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (signal, s) in [("traces", &self.traces), ("logs", &self.logs)] {
                let n = pick(s).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{signal=\"{signal}\"}} {n}");
            }
        }
    }
}

async fn export(
    mut rx: mpsc::Receiver<Item>,
    base: String,
    traces: Arc<Signal>,
    logs: Arc<Signal>,
) {
    let mut items = Vec::with_capacity(BATCH);
    // Kept across batches: a batch is megabytes of JSON at full load, and growing a fresh
    // buffer by doubling every 200 ms costs copies and page faults on the shared cores.
    let (mut spans, mut records) = (String::new(), String::new());
    let mut last_logged: Option<Instant> = None;
    let mut tick = tokio::time::interval(FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    // A full batch means the queue may hold more: send on without waiting for the tick.
    let mut behind = false;
    loop {
        if !behind {
            if stopping {
                return;
            }
            tick.tick().await;
        }
        while items.len() < BATCH {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                // The node is stopping: send what is left, then end.
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    stopping = true;
                    break;
                }
            }
        }
        behind = items.len() == BATCH;
        if items.is_empty() {
            continue;
        }
        spans.clear();
        records.clear();
        let (mut n_spans, mut n_records) = (0u64, 0u64);
        for item in items.drain(..) {
            match item {
                Item::Trace(t) => n_spans += encode_trace(&mut spans, &t),
                Item::Log(l) => n_records += encode_log(&mut records, &l),
            }
        }
        for (path, body, n, signal) in [
            ("/v1/traces", resource_spans(&spans), n_spans, &traces),
            ("/v1/logs", resource_logs(&records), n_records, &logs),
        ] {
            if n == 0 {
                continue;
            }
            match post(&format!("{base}{path}"), body).await {
                Ok(()) => {
                    signal.exported.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    signal.failed.fetch_add(1, Ordering::Relaxed);
                    if last_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                        last_logged = Some(Instant::now());
                        tracing::warn!(
                            "OTLP export to {base}{path} failed ({n} items dropped; counted in moat_otlp_export_failures_total): {e:#}"
                        );
                    }
                }
            }
        }
    }
}

async fn post(url: &str, body: String) -> anyhow::Result<()> {
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "moat-otlp")
        .body(Full::new(Bytes::from(body)))?;
    let status = crate::outbound::request(req).await?;
    if !status.is_success() {
        anyhow::bail!("the collector answered {status}");
    }
    Ok(())
}

const RESOURCE: &str = concat!(
    r#"{"attributes":[{"key":"service.name","value":{"stringValue":"moat"}},"#,
    r#"{"key":"service.version","value":{"stringValue":""#,
    env!("CARGO_PKG_VERSION"),
    r#""}}]}"#
);
const SCOPE: &str = concat!(
    r#"{"name":"moat","version":""#,
    env!("CARGO_PKG_VERSION"),
    r#""}"#
);

fn resource_spans(spans: &str) -> String {
    wrap(
        &[
            r#"{"resourceSpans":[{"resource":"#,
            RESOURCE,
            r#","scopeSpans":[{"scope":"#,
            SCOPE,
            r#","spans":["#,
        ],
        spans,
        "]}]}]}",
    )
}

fn resource_logs(records: &str) -> String {
    wrap(
        &[
            r#"{"resourceLogs":[{"resource":"#,
            RESOURCE,
            r#","scopeLogs":[{"scope":"#,
            SCOPE,
            r#","logRecords":["#,
        ],
        records,
        "]}]}]}",
    )
}

/// `head`, `items` and `tail` in one buffer allocated at its final size.
fn wrap(head: &[&str], items: &str, tail: &str) -> String {
    let len = head.iter().map(|h| h.len()).sum::<usize>() + items.len() + tail.len();
    let mut body = String::with_capacity(len);
    for h in head {
        body.push_str(h);
    }
    body.push_str(items);
    body.push_str(tail);
    body
}

/// The trace id for a request id: the id itself when it is 32 lowercase hex digits (Moat's
/// are), else the first 16 bytes of its SHA-256.
pub fn trace_id(request_id: &str) -> String {
    if request_id.len() == 32
        && request_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return request_id.to_string();
    }
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(request_id.as_bytes())[..16])
}

/// Span ids are derived from the trace id and a slot (0 is the root, then one per phase):
/// unique within the trace, never zero (splitmix64 of the trace id's low half and the slot).
fn span_seed(trace_id: &str) -> u64 {
    u64::from_str_radix(trace_id.get(16..32).unwrap_or("1"), 16).unwrap_or(1)
}

fn span_bits(seed: u64, slot: u64) -> u64 {
    let mut z = seed ^ slot.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).max(1)
}

fn slot(phase: Phase) -> u64 {
    match phase {
        Phase::Policy => 1,
        Phase::Validation => 2,
        Phase::Instantiation => 3,
        Phase::Execution => 4,
        Phase::Dlp => 5,
    }
}

/// Nanoseconds since the epoch (a u64 lasts until 2554, and formats faster than a u128).
fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// The encoders below run for every request the node serves, so they append to one buffer
// with `push_str` instead of going through `format_args!` and allocate nothing per item.

fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

fn push_hex(out: &mut String, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = DIGITS[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.push_str(std::str::from_utf8(&buf).unwrap_or("0000000000000001"));
}

/// `value` as a JSON string; names and ids (the usual case) are copied as they are.
fn json_string(out: &mut String, value: &str) {
    if value
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(value).to_string());
    }
}

fn attr_str(out: &mut String, key: &str, value: &str) {
    out.push_str(r#"{"key":""#);
    out.push_str(key);
    out.push_str(r#"","value":{"stringValue":"#);
    json_string(out, value);
    out.push_str("}},");
}

fn attr_int(out: &mut String, key: &str, value: u64) {
    out.push_str(r#"{"key":""#);
    out.push_str(key);
    out.push_str(r#"","value":{"intValue":""#);
    push_u64(out, value);
    out.push_str(r#""}},"#);
}

/// Appends the trace's spans (comma-separated); returns how many.
fn encode_trace(out: &mut String, t: &RequestTrace) -> u64 {
    let Some(start) = t.start else {
        return 0;
    };
    let start_ns = unix_nanos(start);
    let tid = trace_id(&t.request_id);
    let seed = span_seed(&tid);
    let root = span_bits(seed, 0);
    // 2 is ERROR: a platform failure or a guest failure; 4xx are the caller's, left unset.
    let code = match t.status {
        Some(s) if s < 500 => 0,
        _ => 2,
    };
    let span = Span {
        trace: &tid,
        id: root,
        parent: None,
        name: "moat.request",
        kind: 2,
        start_ns,
        duration: t.duration,
    };
    span.open(out);
    attr_str(out, "moat.request_id", &t.request_id);
    if let Some(f) = &t.function {
        attr_str(out, "moat.function", f);
        attr_int(out, "moat.function.version", t.version.max(0) as u64);
    }
    if let Some(status) = t.status {
        attr_int(out, "http.response.status_code", u64::from(status));
    }
    if !t.queue_wait.is_zero() {
        attr_int(out, "moat.queue_wait_us", t.queue_wait.as_micros() as u64);
    }
    close_span(out, code);
    for p in &t.phases {
        let span = Span {
            trace: &tid,
            id: span_bits(seed, slot(p.phase)),
            parent: Some(root),
            name: p.phase.span_name(),
            kind: 1,
            start_ns: start_ns.saturating_add(nanos(p.start)),
            duration: p.duration,
        };
        span.open(out);
        if p.phase == Phase::Dlp {
            attr_str(out, "moat.dlp.mode", t.dlp_mode);
            attr_int(out, "moat.dlp.headers_us", t.dlp_headers.as_micros() as u64);
            out.push_str(r#"{"key":"moat.response.streamed","value":{"boolValue":"#);
            out.push_str(if t.streamed { "true" } else { "false" });
            out.push_str("}},");
        }
        close_span(out, 0);
    }
    1 + t.phases.len() as u64
}

/// One OTLP span's fields before its attributes.
struct Span<'a> {
    trace: &'a str,
    id: u64,
    parent: Option<u64>,
    name: &'a str,
    /// 1 internal, 2 server.
    kind: u8,
    start_ns: u64,
    duration: Duration,
}

impl Span<'_> {
    /// Writes the span up to its open attribute list; [`close_span`] ends it.
    fn open(&self, out: &mut String) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(r#"{"traceId":""#);
        out.push_str(self.trace);
        out.push_str(r#"","spanId":""#);
        push_hex(out, self.id);
        if let Some(p) = self.parent {
            out.push_str(r#"","parentSpanId":""#);
            push_hex(out, p);
        }
        out.push_str(r#"","name":""#);
        out.push_str(self.name);
        out.push_str(r#"","kind":"#);
        push_u64(out, u64::from(self.kind));
        out.push_str(r#","startTimeUnixNano":""#);
        push_u64(out, self.start_ns);
        out.push_str(r#"","endTimeUnixNano":""#);
        push_u64(out, self.start_ns.saturating_add(nanos(self.duration)));
        out.push_str(r#"","attributes":["#);
    }
}

/// Ends a span; a status code of 0 (unset) is the default and is left out, as are empty
/// attributes (most spans have neither, and every byte is sent for every request).
fn close_span(out: &mut String, status: u8) {
    if out.ends_with(',') {
        out.pop();
        out.push(']');
    } else if out.ends_with(r#","attributes":["#) {
        out.truncate(out.len() - r#","attributes":["#.len());
    } else {
        out.push(']');
    }
    if status != 0 {
        out.push_str(r#","status":{"code":"#);
        push_u64(out, u64::from(status));
        out.push('}');
    }
    out.push('}');
}

/// Appends one log record per line (up to [`LINES_PER_RECORD`], the rest in one more);
/// returns how many.
fn encode_log(out: &mut String, l: &LogLine) -> u64 {
    let (severity, text) = match l.stream.as_str() {
        "stdout" => ("9", "INFO"),
        "stderr" => ("13", "WARN"),
        _ => ("17", "ERROR"),
    };
    let time_ns = u64::try_from(l.at_ms.max(0))
        .unwrap_or(0)
        .saturating_mul(1_000_000);
    // Everything after the body is the same for each line of the record.
    let mut tail = String::new();
    tail.push_str(r#","attributes":["#);
    attr_str(&mut tail, "moat.function", &l.function);
    attr_int(&mut tail, "moat.function.version", l.version.max(0) as u64);
    attr_str(&mut tail, "moat.stream", &l.stream);
    attr_str(&mut tail, "moat.request_id", &l.request_id);
    tail.pop();
    tail.push_str("]}");
    let mut head = String::new();
    head.push_str(r#"{"timeUnixNano":""#);
    push_u64(&mut head, time_ns);
    head.push_str(r#"","observedTimeUnixNano":""#);
    push_u64(&mut head, time_ns);
    head.push_str(r#"","severityNumber":"#);
    head.push_str(severity);
    head.push_str(r#","severityText":""#);
    head.push_str(text);
    head.push_str(r#"","#);
    if l.request_id != "-" {
        let tid = trace_id(&l.request_id);
        head.push_str(r#""traceId":""#);
        head.push_str(&tid);
        head.push_str(r#"","spanId":""#);
        push_hex(
            &mut head,
            span_bits(span_seed(&tid), slot(Phase::Execution)),
        );
        head.push_str(r#"","#);
    }
    head.push_str(r#""body":{"stringValue":"#);
    let mut lines = l.text.lines().filter(|s| !s.is_empty());
    let mut n = 0;
    let mut push = |out: &mut String, body: &str| {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&head);
        json_string(out, body);
        out.push('}');
        out.push_str(&tail);
        n += 1;
    };
    for line in lines.by_ref().take(LINES_PER_RECORD) {
        push(out, line);
    }
    let rest: Vec<&str> = lines.collect();
    if !rest.is_empty() {
        push(out, &rest.join("\n"));
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use moat_gateway::trace::PhaseTiming;

    fn span_id(trace_id: &str, slot: u64) -> String {
        let mut s = String::new();
        push_hex(&mut s, span_bits(span_seed(trace_id), slot));
        s
    }

    #[test]
    fn a_trace_encodes_as_otlp_json_with_a_root_and_child_spans() {
        let rid = "0123456789abcdef0123456789abcdef";
        let t = RequestTrace {
            request_id: rid.into(),
            function: Some("f".into()),
            version: 2,
            status: Some(200),
            start: Some(UNIX_EPOCH + Duration::from_secs(1)),
            duration: Duration::from_millis(3),
            phases: vec![PhaseTiming {
                phase: Phase::Execution,
                start: Duration::from_millis(1),
                duration: Duration::from_millis(1),
            }],
            ..Default::default()
        };
        let mut spans = String::new();
        assert_eq!(encode_trace(&mut spans, &t), 2);
        let v: serde_json::Value = serde_json::from_str(&resource_spans(&spans)).unwrap();
        let spans = &v["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(spans[0]["traceId"], rid);
        assert_eq!(spans[0]["name"], "moat.request");
        assert_eq!(spans[0]["startTimeUnixNano"], "1000000000");
        assert_eq!(spans[0]["endTimeUnixNano"], "1003000000");
        assert_eq!(spans[1]["parentSpanId"], spans[0]["spanId"]);
        assert_eq!(spans[1]["name"], "moat.execution");
        assert_eq!(spans[1]["startTimeUnixNano"], "1001000000");
        assert_ne!(spans[1]["spanId"], spans[0]["spanId"]);
    }

    #[test]
    fn numbers_and_ids_are_written_as_the_spec_wants() {
        let mut s = String::new();
        push_hex(&mut s, 0x1234);
        push_u64(&mut s, 0);
        push_u64(&mut s, u64::MAX);
        assert_eq!(s, "0000000000001234018446744073709551615");
        let rid = "0123456789abcdef0123456789abcdef";
        assert_eq!(trace_id(rid), rid);
        assert_eq!(trace_id("-").len(), 32);
        let ids: std::collections::HashSet<String> = (0..6).map(|i| span_id(rid, i)).collect();
        assert_eq!(ids.len(), 6);
        let mut j = String::new();
        json_string(&mut j, "tab\there \"q\" é");
        assert_eq!(
            serde_json::from_str::<String>(&j).unwrap(),
            "tab\there \"q\" é"
        );
    }

    #[test]
    fn log_lines_become_records_with_escaped_bodies_and_the_execution_span() {
        let rid = "0123456789abcdef0123456789abcdef";
        let mut out = String::new();
        let line = LogLine {
            function: "f".into(),
            version: 1,
            request_id: rid.into(),
            stream: "stderr".into(),
            at_ms: 5,
            text: "a \"quoted\"\n\nsecond\n".into(),
        };
        assert_eq!(encode_log(&mut out, &line), 2);
        let v: serde_json::Value = serde_json::from_str(&resource_logs(&out)).unwrap();
        let records = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
        assert_eq!(records[0]["body"]["stringValue"], "a \"quoted\"");
        assert_eq!(records[1]["body"]["stringValue"], "second");
        assert_eq!(records[0]["traceId"], rid);
        assert_eq!(records[0]["spanId"], span_id(rid, slot(Phase::Execution)));
        assert_eq!(records[0]["severityNumber"], 13);
        let many = LogLine {
            text: "x\n".repeat(LINES_PER_RECORD + 10),
            ..line
        };
        let mut out = String::new();
        assert_eq!(encode_log(&mut out, &many), LINES_PER_RECORD as u64 + 1);
    }
}
