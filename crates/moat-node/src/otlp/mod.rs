//! OpenTelemetry export (`moat up --otlp-endpoint URL`): one trace per gateway request and
//! each line of function output as a log record, sent as OTLP/HTTP protobuf (the OTLP
//! default, `application/x-protobuf`) to `URL/v1/traces` and `URL/v1/logs`.
//!
//! Hand-encoded ([`proto`]) rather than the `opentelemetry-otlp` crate: what Moat sends is
//! six spans and a few log records per request, the encoding is a small, stable part of the
//! OTLP spec, and the crate would bring its SDK, gRPC and a second HTTP client stack into the
//! node for it. Protobuf rather than OTLP's JSON: it is what every collector accepts, and
//! encoding it costs the node a quarter of the JSON (ids and times are raw bytes).
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
//! Trace ids are the request ids (both 128 random bits, the request id in hex), so a trace, the function's
//! log records and `moat logs --request` all name the same id. Span ids are derived from
//! the trace id and the phase, so a log record can name the execution span without state.
//! No caller identity, token, header or body is ever exported; log text is what the store
//! keeps, already redacted.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use moat_gateway::trace::RequestTrace;
use tokio::sync::mpsc;

mod proto;

/// Items waiting to be exported before new ones are dropped.
const QUEUE: usize = 32_768;
/// Items per POST at most.
const BATCH: usize = 4_096;
/// How often the queue is drained (so it holds about this long of traffic).
const FLUSH: Duration = Duration::from_millis(200);
/// How often an export failure is logged (every failure is counted).
const LOG_EVERY: Duration = Duration::from_secs(10);

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
    let mut last_logged: Option<Instant> = None;
    let mut tick = tokio::time::interval(FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    // A full batch means the queue may hold more: send on without waiting for the tick.
    let mut behind = false;
    // The sizes of the last bodies, so a new one is allocated once at about its size.
    let (mut spans_size, mut records_size) = (0, 0);
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
        let mut spans = proto::batch_buffer(spans_size);
        let mut records = proto::batch_buffer(records_size);
        let (mut n_spans, mut n_records) = (0u64, 0u64);
        for item in items.drain(..) {
            match item {
                Item::Trace(t) => n_spans += proto::encode_trace(&mut spans, &t),
                Item::Log(l) => n_records += proto::encode_log(&mut records, &l),
            }
        }
        (spans_size, records_size) = (spans.len(), records.len());
        for (path, body, n, signal) in [
            ("/v1/traces", spans, n_spans, &traces),
            ("/v1/logs", records, n_records, &logs),
        ] {
            if n == 0 {
                continue;
            }
            match post(&format!("{base}{path}"), proto::finish_batch(body)).await {
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

async fn post(url: &str, body: Bytes) -> anyhow::Result<()> {
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .header(http::header::USER_AGENT, "moat-otlp")
        .body(Full::new(body))?;
    let status = crate::outbound::request(req).await?;
    if !status.is_success() {
        anyhow::bail!("the collector answered {status}");
    }
    Ok(())
}
