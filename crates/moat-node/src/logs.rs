//! Captured function output: handed off the request path to a batching writer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use moat_gateway::{AuthDecision, Observer, Route};
use moat_runtime::{Outcome, Report};
use moat_store::{LogRecord, Store, now_ms};
use tokio::sync::mpsc;

use crate::defaults;
use crate::follow::LogFeed;
use crate::metrics::{FunctionMetrics, Metrics};

/// Records each invocation's output and outcome. Never blocks a request: when the writer is
/// behind, records are dropped and counted in `/metrics`.
pub struct InvocationLog {
    tx: mpsc::Sender<LogRecord>,
    metrics: Arc<Metrics>,
    audit: Arc<crate::audit::Audit>,
    /// Bytes each function may still log this second, so one chatty function cannot fill
    /// the store however many invocations it runs.
    budgets: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
    /// Where limit hits become audit records and traces and output are exported (set once
    /// at start; unset only while the node is being wired).
    exports: std::sync::OnceLock<Exports>,
}

pub struct Exports {
    pub limits: Arc<crate::limits_audit::LimitAudit>,
    pub otlp: Option<Arc<crate::otlp::Exporter>>,
}

impl InvocationLog {
    /// Starts the writer task; what it stores goes on to `feed`'s followers and to the
    /// JSON-lines `export`, if any.
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        audit: Arc<crate::audit::Audit>,
        feed: Arc<LogFeed>,
        export: Option<Arc<crate::export::LineExport>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(10_000);
        tokio::spawn(writer(store, rx, Arc::clone(&metrics), feed, export));
        InvocationLog {
            tx,
            metrics,
            audit,
            budgets: Default::default(),
            exports: std::sync::OnceLock::new(),
        }
    }

    pub fn set_exports(&self, exports: Exports) {
        let _ = self.exports.set(exports);
    }

    fn limit_audit(&self, function: &str, kind: &'static str, request_id: &str) {
        if let Some(e) = self.exports.get() {
            e.limits.hit(function, kind, request_id);
        }
    }

    /// Takes up to `wanted` bytes from the function's per-second log budget.
    fn take_budget(&self, function: &str, wanted: u64) -> u64 {
        let Ok(mut budgets) = self.budgets.lock() else {
            return 0;
        };
        let now = std::time::Instant::now();
        let entry = budgets
            .entry(function.to_string())
            .or_insert((now, defaults::LOG_BYTES_PER_SEC));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, defaults::LOG_BYTES_PER_SEC);
        }
        let granted = wanted.min(entry.1);
        entry.1 -= granted;
        granted
    }

    fn push(&self, record: LogRecord) {
        if let Some(otlp) = self.exports.get().and_then(|e| e.otlp.as_ref()) {
            otlp.log(record.clone());
        }
        if self.tx.try_send(record).is_err() {
            self.metrics
                .log_records_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl InvocationLog {
    /// The function's metric series: kept on its route, or looked up if the route was made
    /// without them.
    fn with_stats(&self, route: &Route, update: impl FnOnce(&FunctionMetrics)) {
        match FunctionMetrics::of_route(&*route.stats) {
            Some(f) => update(f),
            None => update(&self.metrics.function(&route.function)),
        }
    }

    /// Log text as stored: always redacted by the function's scanner, whatever its
    /// `[dlp]` mode (a function's logs are read by people who may not see its secrets).
    fn redacted(&self, route: &Route, request_id: &str, bytes: &[u8]) -> String {
        match &route.dlp {
            Some(dlp) => {
                let (masked, findings) = dlp.scanner.redact(bytes);
                for f in &findings {
                    self.dlp_finding(&route.function, "log", f.detector.as_str(), request_id);
                }
                String::from_utf8_lossy(&masked).into_owned()
            }
            None => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

/// A DLP finding: counted, logged (never the value) and recorded in the audit chain.
pub fn record_dlp_finding(
    audit: &crate::audit::Audit,
    metrics: &Metrics,
    function: &str,
    channel: &'static str,
    detector: &'static str,
    request_id: &str,
) {
    metrics.dlp_finding(function, detector);
    tracing::warn!(
        function,
        channel,
        detector,
        request_id,
        "data-loss prevention finding"
    );
    audit.record(
        moat_telemetry::audit::AuditEvent::new(
            now_ms(),
            moat_telemetry::audit::actor::function(function),
            "dlp.finding",
            format!("{channel}:{detector}"),
            moat_telemetry::audit::Outcome::Detected,
        )
        .with_function(function)
        .with_request_id(request_id)
        .with_details(serde_json::json!({ "channel": channel, "detector": detector })),
    );
}

impl Observer for InvocationLog {
    fn dlp_finding(
        &self,
        function: &str,
        channel: &'static str,
        detector: &'static str,
        request_id: &str,
    ) {
        record_dlp_finding(
            &self.audit,
            &self.metrics,
            function,
            channel,
            detector,
            request_id,
        );
    }

    fn finished(&self, route: &Route, request_id: &str, report: Report) {
        let outcome = match &report.outcome {
            Outcome::Completed => "completed",
            Outcome::Trapped(_) => "trapped",
            Outcome::TimedOut => "timed_out",
        };
        self.with_stats(route, |f| {
            self.metrics
                .outcome(f, outcome, report.instantiate, report.total)
        });
        if let Outcome::Trapped(_) = report.outcome {
            self.limit_audit(&route.function, "trap", request_id);
        }
        self.metrics
            .log_bytes_dropped
            .fetch_add(report.dropped_log_bytes, Ordering::Relaxed);
        let record = |stream: &str, text: String| LogRecord {
            function: route.function.clone(),
            version: route.version,
            request_id: request_id.to_string(),
            stream: stream.to_string(),
            at_ms: now_ms(),
            text,
        };
        let mut over_budget = 0u64;
        for (stream, bytes) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
            if bytes.is_empty() {
                continue;
            }
            let granted = self.take_budget(&route.function, bytes.len() as u64) as usize;
            over_budget += (bytes.len() - granted) as u64;
            if granted > 0 {
                self.push(record(
                    stream,
                    self.redacted(route, request_id, &bytes[..granted]),
                ));
            }
        }
        if over_budget > 0 {
            self.metrics
                .log_bytes_dropped
                .fetch_add(over_budget, Ordering::Relaxed);
            self.metrics.limit_hit(&route.function, "log_rate");
            self.limit_audit(&route.function, "log_rate", request_id);
        }
        match report.outcome {
            Outcome::Completed => {}
            Outcome::Trapped(text) => {
                let text = self.redacted(route, request_id, text.as_bytes());
                self.push(record("platform", format!("trap: {text}")))
            }
            Outcome::TimedOut => self.push(record(
                "platform",
                format!("timed out after {:?}", route.options.timeout),
            )),
        }
        if report.dropped_log_bytes > 0 {
            self.push(record(
                "platform",
                format!(
                    "{} bytes of output dropped past the per-invocation bound",
                    report.dropped_log_bytes
                ),
            ));
        }
    }

    fn responded(&self, route: Option<&Route>, status: u16) {
        match route {
            Some(route) => self.with_stats(route, |f| f.response(status)),
            None => self.metrics.function("").response(status),
        }
    }

    fn limit_hit(&self, function: &str, limit: &'static str, request_id: &str) {
        self.metrics.limit_hit(function, limit);
        self.limit_audit(function, limit, request_id);
        tracing::debug!(function, limit, request_id, "limit hit");
    }

    fn admitted(&self, route: &Route, wait: Duration) {
        self.with_stats(route, |f| f.admitted(wait));
    }

    fn authorized(&self, function: &str, decision: &AuthDecision, request_id: &str) {
        self.metrics.decisions.count(function, decision);
        // Refusals are security events, folded per second like limit hits (not counted as
        // limit hits: they are decisions, in `moat_policy_decisions_total`).
        let Some(limits) = self.exports.get().map(|e| &e.limits) else {
            return;
        };
        match decision {
            AuthDecision::Allowed => {}
            AuthDecision::Unauthenticated => limits.unauthenticated(function, request_id),
            AuthDecision::Forbidden { token_id } => limits.denied(function, token_id, request_id),
        }
    }

    fn traces(&self) -> bool {
        self.exports.get().is_some_and(|e| e.otlp.is_some())
    }

    fn traced(&self, trace: moat_gateway::trace::RequestTrace) {
        if let Some(otlp) = self.exports.get().and_then(|e| e.otlp.as_ref()) {
            otlp.trace(trace);
        }
    }
}

async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<LogRecord>,
    metrics: Arc<Metrics>,
    feed: Arc<LogFeed>,
    export: Option<Arc<crate::export::LineExport>>,
) {
    // Retention by age, for every function (by count is per function, below).
    let aging = Arc::clone(&store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let max_age = i64::try_from(defaults::LOG_MAX_AGE.as_millis()).unwrap_or(i64::MAX);
            let before = moat_store::now_ms().saturating_sub(max_age);
            if let Err(e) = aging.prune_logs_before(before).await {
                tracing::warn!("cannot remove old function logs: {e}");
            }
        }
    });
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Gather what else arrives shortly, then write it in one transaction.
        let deadline = tokio::time::sleep(Duration::from_millis(50));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                more = rx.recv() => match more {
                    Some(r) if batch.len() < 1000 => batch.push(r),
                    Some(r) => { batch.push(r); break; }
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        let mut functions: Vec<String> = batch.iter().map(|r| r.function.clone()).collect();
        functions.sort();
        functions.dedup();
        let appended = metrics
            .store_op("append_logs", store.append_logs(std::mem::take(&mut batch)))
            .await;
        match appended {
            // Followers get records once stored, with their ids, in id order.
            Ok(stored) => {
                if let Some(export) = &export {
                    export.send(&stored);
                }
                feed.publish(stored)
            }
            Err(e) => tracing::error!("cannot store function logs: {e}"),
        }
        for f in functions {
            let _ = metrics
                .store_op(
                    "prune_logs",
                    store.prune_logs(&f, defaults::LOG_RECORDS_KEPT),
                )
                .await;
        }
    }
}

impl moat_runtime::egress::EgressObserver for InvocationLog {
    fn decided(&self, function: &str, target: &str, granted: Option<&str>, reason: &str) {
        self.metrics.egress(function, granted);
        if granted.is_none() {
            self.metrics.limit_hit(function, "egress_denied");
            tracing::warn!(function, target, reason, "outbound request denied");
            self.audit
                .denied(function, "http:request", &format!("host:{target}"), reason);
            self.push(LogRecord {
                function: function.to_string(),
                version: 0,
                request_id: "-".into(),
                stream: "platform".into(),
                at_ms: now_ms(),
                text: format!("outbound request to {target} denied: {reason}"),
            });
        }
    }
}
