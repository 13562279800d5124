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
//! Off the request path: the gateway and the invocation log push items onto a bounded
//! buffer under a short lock; a task wakes every [`FLUSH`], swaps the buffer for its empty
//! spare and POSTs what it took in batches of up to [`BATCH`] items. Nothing is woken per
//! item (a channel's receiver would be woken, a cross-thread wake and a futex call, by every
//! request), and in steady state nothing is allocated per item either: the two buffers keep
//! their capacity. A full buffer drops the item and counts it; a failed POST drops the
//! batch, counts it, and is logged (at most every [`LOG_EVERY`]). Nothing here ever waits on
//! the collector while a request is being served.
//!
//! Trace ids are the request ids (both 128 random bits, the request id in hex), so a trace, the function's
//! log records and `moat logs --request` all name the same id. Span ids are derived from
//! the trace id and the phase, so a log record can name the execution span without state.
//! No caller identity, token, header or body is ever exported; log text is what the store
//! keeps, already redacted.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use moat_gateway::trace::RequestTrace;
use moat_store::LogRecord;

mod proto;

/// Items of each signal waiting to be exported before new ones are dropped.
const QUEUE: usize = 32_768;
/// Items per POST at most.
const BATCH: usize = 4_096;
/// How often the queue is drained (so it holds about this long of traffic).
const FLUSH: Duration = Duration::from_millis(200);
/// How often an export failure is logged (every failure is counted).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What waits to be exported.
#[derive(Default)]
struct Pending {
    traces: Vec<RequestTrace>,
    logs: Vec<LogRecord>,
}

/// Shared by the exporter's handles and its task.
#[derive(Default)]
struct Queue {
    pending: Mutex<Pending>,
    /// The node is stopping: the task sends what is left, then ends.
    closed: AtomicBool,
}

#[derive(Default)]
struct Signal {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

pub struct Exporter {
    queue: Arc<Queue>,
    traces: Arc<Signal>,
    logs: Arc<Signal>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Release);
    }
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
        let me = Arc::new(Exporter {
            queue: Arc::default(),
            traces: Arc::default(),
            logs: Arc::default(),
        });
        tokio::spawn(export(
            Arc::clone(&me.queue),
            base.to_string(),
            Arc::clone(&me.traces),
            Arc::clone(&me.logs),
        ));
        Ok(me)
    }

    /// Queues a request's trace; never waits beyond a push under the lock.
    pub fn trace(&self, trace: RequestTrace) {
        let queued = self.queue.pending.lock().is_ok_and(|mut p| {
            let room = p.traces.len() < QUEUE;
            if room {
                p.traces.push(trace);
            }
            room
        });
        if !queued {
            self.traces.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues an audit checkpoint's line as a log record (stream `audit-checkpoint`, no
    /// function), so the chain's signed head is also kept by the collector.
    pub fn checkpoint(&self, at_ms: i64, line: &str) {
        self.log(LogRecord {
            function: String::new(),
            version: 0,
            request_id: "-".into(),
            stream: "audit-checkpoint".into(),
            at_ms,
            text: line.to_string(),
        });
    }

    /// Queues a record of function output; never waits beyond a push under the lock.
    pub fn log(&self, line: LogRecord) {
        let queued = self.queue.pending.lock().is_ok_and(|mut p| {
            let room = p.logs.len() < QUEUE;
            if room {
                p.logs.push(line);
            }
            room
        });
        if !queued {
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

async fn export(queue: Arc<Queue>, base: String, traces: Arc<Signal>, logs: Arc<Signal>) {
    let mut taken = Pending::default();
    let mut last_logged: Option<Instant> = None;
    let mut tick = tokio::time::interval(FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The sizes of the last bodies, so a new one is allocated once at about its size.
    let (mut spans_size, mut records_size) = (0, 0);
    loop {
        tick.tick().await;
        let stopping = queue.closed.load(Ordering::Acquire);
        if let Ok(mut pending) = queue.pending.lock() {
            std::mem::swap(&mut *pending, &mut taken);
        }
        let mut failure = None;
        for chunk in taken.traces.chunks(BATCH) {
            let mut body = proto::batch_buffer(spans_size);
            let n: u64 = chunk
                .iter()
                .map(|t| proto::encode_trace(&mut body, t))
                .sum();
            spans_size = body.len();
            failure = failure.or(send(&base, "/v1/traces", body, n, &traces).await);
        }
        for chunk in taken.logs.chunks(BATCH) {
            let mut body = proto::batch_buffer(records_size);
            let n: u64 = chunk.iter().map(|l| proto::encode_log(&mut body, l)).sum();
            records_size = body.len();
            failure = failure.or(send(&base, "/v1/logs", body, n, &logs).await);
        }
        // Emptied, capacity kept: the next swap hands these back for the node to fill.
        taken.traces.clear();
        taken.logs.clear();
        if let Some(failure) = failure
            && last_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY)
        {
            last_logged = Some(Instant::now());
            tracing::warn!(
                "OTLP export failed (the batch is dropped; counted in moat_otlp_export_failures_total): {failure}"
            );
        }
        if stopping {
            return;
        }
    }
}

/// POSTs one batch of `n` spans or records; the failure, if any, described.
async fn send(base: &str, path: &str, body: Vec<u8>, n: u64, signal: &Signal) -> Option<String> {
    if n == 0 {
        return None;
    }
    match post(&format!("{base}{path}"), proto::finish_batch(body)).await {
        Ok(()) => {
            signal.exported.fetch_add(n, Ordering::Relaxed);
            None
        }
        Err(e) => {
            signal.failed.fetch_add(1, Ordering::Relaxed);
            Some(format!("{base}{path}: {n} items: {e:#}"))
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
