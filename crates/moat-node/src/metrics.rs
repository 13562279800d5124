//! Counters for `/metrics`, in Prometheus' text format.
//!
//! Labels are bounded: function names (one per deployed function) and HTTP status codes.
//! Nothing that identifies a caller or holds a secret is ever a label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use crate::histogram::{self, ByLabel, Family, Histogram};

/// Invocation outcomes, in the order `moat_invocations_total` lists them.
const OUTCOMES: [&str; 3] = ["completed", "timed_out", "trapped"];

/// One function's per-request series. Made on first use and kept on the function's route
/// (`Route::stats`), so that serving a request updates them without a map lookup: atomics,
/// and one per-function lock for the status counts.
pub struct FunctionMetrics {
    /// `moat_gateway_responses_total` by status.
    responses: Mutex<BTreeMap<u16, u64>>,
    /// `moat_invocations_total`, at the index of the outcome in [`OUTCOMES`].
    outcomes: [AtomicU64; 3],
    duration: Arc<Histogram>,
    queue_wait: Arc<Histogram>,
}

impl FunctionMetrics {
    /// The series as a route keeps them (`Route::stats`).
    pub fn for_route(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    /// The series a route keeps, if it was given some by [`FunctionMetrics::for_route`].
    pub fn of_route(stats: &(dyn std::any::Any + Send + Sync)) -> Option<&FunctionMetrics> {
        stats.downcast_ref::<FunctionMetrics>()
    }

    /// An invocation was admitted after waiting `wait` for a slot.
    pub fn admitted(&self, wait: Duration) {
        self.queue_wait.observe(wait);
    }

    pub fn response(&self, status: u16) {
        if let Ok(mut m) = self.responses.lock() {
            *m.entry(status).or_default() += 1;
        }
    }
}

pub struct Metrics {
    /// function → its series (`""`: requests no route matched).
    functions: RwLock<ByLabel<Arc<FunctionMetrics>>>,
    limit_hits: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// function → (grant, decision) → count; refusals under the grant `-`.
    egress: Mutex<ByLabel<BTreeMap<(String, &'static str), u64>>>,
    dlp: Mutex<ByLabel<BTreeMap<&'static str, u64>>>,
    /// `moat_policy_decisions_total`, fed for every request to a token route.
    pub decisions: crate::decisions::PolicyDecisions,
    pub compilations: AtomicU64,
    pub artifact_rejections: AtomicU64,
    pub artifacts_loaded: AtomicU64,
    pub log_bytes_dropped: AtomicU64,
    pub log_records_dropped: AtomicU64,
    instantiation: Histogram,
    durations: Family,
    queue_waits: Family,
    store_ops: Family,
    /// What is read only when scraped (gauges), set once the node is wired.
    sources: OnceLock<crate::gauges::Sources>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            functions: Default::default(),
            limit_hits: Default::default(),
            egress: Default::default(),
            dlp: Default::default(),
            decisions: Default::default(),
            compilations: Default::default(),
            artifact_rejections: Default::default(),
            artifacts_loaded: Default::default(),
            log_bytes_dropped: Default::default(),
            log_records_dropped: Default::default(),
            instantiation: Histogram::new(histogram::INSTANTIATION_BUCKETS),
            durations: Family::new(
                "moat_invocation_duration_seconds",
                "Function invocations from instantiation until the instance ended (body included), by function.",
                "function",
                histogram::DURATION_BUCKETS,
            ),
            queue_waits: Family::new(
                "moat_queue_wait_seconds",
                "Time admitted invocations waited for a concurrency slot (0 when one was free), by function.",
                "function",
                histogram::QUEUE_BUCKETS,
            ),
            store_ops: Family::new(
                "moat_store_operation_seconds",
                "Store operations on the node's hot paths (audit and log writers, key-value), by operation.",
                "op",
                histogram::STORE_BUCKETS,
            ),
            sources: OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Gauges read at scrape time: the route table, the compiled-artifact directory, the
    /// exporters' counters.
    pub fn set_sources(&self, sources: crate::gauges::Sources) {
        let _ = self.sources.set(sources);
    }

    /// The series of `function`, made on first use; kept on its route.
    pub fn function(&self, function: &str) -> Arc<FunctionMetrics> {
        if let Ok(m) = self.functions.read()
            && let Some(f) = m.get(function)
        {
            return Arc::clone(f);
        }
        let made = Arc::new(FunctionMetrics {
            responses: Mutex::default(),
            outcomes: Default::default(),
            duration: self.durations.series(function),
            queue_wait: self.queue_waits.series(function),
        });
        match self.functions.write() {
            Ok(mut m) => Arc::clone(m.entry(function.to_string()).or_insert(made)),
            Err(_) => made,
        }
    }

    /// Times one store operation.
    pub async fn store_op<T>(
        &self,
        op: &'static str,
        f: impl std::future::Future<Output = T>,
    ) -> T {
        let started = std::time::Instant::now();
        let out = f.await;
        self.store_ops.observe(op, started.elapsed());
        out
    }

    /// An invocation of the function `f` ended (`outcome` is one of [`OUTCOMES`]).
    pub fn outcome(
        &self,
        f: &FunctionMetrics,
        outcome: &'static str,
        instantiate: Duration,
        total: Duration,
    ) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            f.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
        // An invocation stopped before its instance existed has no instantiation time.
        if !instantiate.is_zero() {
            self.instantiation.observe(instantiate);
        }
        f.duration.observe(total);
    }

    pub fn limit_hit(&self, function: &str, limit: &'static str) {
        if let Ok(mut m) = self.limit_hits.lock() {
            *m.entry((function.to_string(), limit)).or_default() += 1;
        }
    }

    pub fn dlp_finding(&self, function: &str, detector: &'static str) {
        if let Ok(mut m) = self.dlp.lock() {
            count(&mut m, function, detector);
        }
    }

    /// An outbound request of `function`: allowed by the grant `granted` (the manifest's
    /// text, so the label is bounded by the grants), or refused (`None`: the host was the
    /// guest's choice, so it is no label).
    pub fn egress(&self, function: &str, granted: Option<&str>) {
        let key = match granted {
            Some(grant) => (grant, "allowed"),
            None => ("-", "denied"),
        };
        if let Ok(mut m) = self.egress.lock() {
            count(&mut m, function, (key.0.to_string(), key.1));
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP moat_dlp_findings_total Data-loss prevention findings by function and detector."
        );
        let _ = writeln!(out, "# TYPE moat_dlp_findings_total counter");
        if let Ok(m) = self.dlp.lock() {
            for (f, by) in sorted(&m) {
                for (d, n) in by {
                    let _ = writeln!(
                        out,
                        "moat_dlp_findings_total{{function=\"{f}\",detector=\"{d}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP moat_egress_requests_total Outbound requests by function, grant that allowed them (`-` when refused) and decision."
        );
        let _ = writeln!(out, "# TYPE moat_egress_requests_total counter");
        if let Ok(m) = self.egress.lock() {
            for (f, by) in sorted(&m) {
                for ((host, d), n) in by {
                    let _ = writeln!(
                        out,
                        "moat_egress_requests_total{{function=\"{f}\",host=\"{host}\",decision=\"{d}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP moat_limit_hits_total Requests refused or stopped by a limit or check, by function and limit."
        );
        let _ = writeln!(out, "# TYPE moat_limit_hits_total counter");
        if let Ok(m) = self.limit_hits.lock() {
            for ((f, l), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "moat_limit_hits_total{{function=\"{f}\",limit=\"{l}\"}} {n}"
                );
            }
        }
        self.decisions.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP moat_gateway_responses_total Gateway responses by function and status."
        );
        let _ = writeln!(out, "# TYPE moat_gateway_responses_total counter");
        let functions: Vec<(String, Arc<FunctionMetrics>)> = match self.functions.read() {
            Ok(m) => sorted(&m)
                .into_iter()
                .map(|(f, m)| (f.clone(), Arc::clone(m)))
                .collect(),
            Err(_) => Vec::new(),
        };
        for (f, m) in &functions {
            let Ok(by_status) = m.responses.lock() else {
                continue;
            };
            for (status, n) in by_status.iter() {
                let _ = writeln!(
                    out,
                    "moat_gateway_responses_total{{function=\"{f}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP moat_invocations_total Function invocations by outcome."
        );
        let _ = writeln!(out, "# TYPE moat_invocations_total counter");
        for (f, m) in &functions {
            for (o, n) in OUTCOMES.iter().zip(&m.outcomes) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "moat_invocations_total{{function=\"{f}\",outcome=\"{o}\"}} {n}"
                    );
                }
            }
        }
        let counters = [
            (
                "moat_component_compilations_total",
                "Components compiled (in the compile child).",
                &self.compilations,
            ),
            (
                "moat_compiled_artifacts_loaded_total",
                "Compiled artifacts loaded after their MAC check.",
                &self.artifacts_loaded,
            ),
            (
                "moat_compiled_artifact_rejections_total",
                "Compiled artifacts refused because their MAC did not verify.",
                &self.artifact_rejections,
            ),
            (
                "moat_function_log_bytes_dropped_total",
                "Function output bytes dropped past the per-invocation bound.",
                &self.log_bytes_dropped,
            ),
            (
                "moat_function_log_records_dropped_total",
                "Function log records dropped because the log writer was behind.",
                &self.log_records_dropped,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP moat_instantiation_seconds Time to instantiate a fresh instance (all functions).\n# TYPE moat_instantiation_seconds histogram"
        );
        self.instantiation
            .render(&mut out, "moat_instantiation_seconds", "");
        self.durations.render(&mut out);
        self.queue_waits.render(&mut out);
        self.store_ops.render(&mut out);
        if let Some(sources) = self.sources.get() {
            sources.render(&mut out);
        }
        out
    }
}

fn count<K: Ord>(m: &mut ByLabel<BTreeMap<K, u64>>, function: &str, key: K) {
    match m.get_mut(function) {
        Some(inner) => *inner.entry(key).or_default() += 1,
        None => {
            m.entry(function.to_string()).or_default().insert(key, 1);
        }
    }
}

fn sorted<V>(m: &ByLabel<V>) -> Vec<(&String, &V)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_route_keeps_the_same_series_the_registry_renders() {
        let m = Metrics::default();
        let stats = m.function("f").for_route();
        let f = FunctionMetrics::of_route(&*stats).unwrap();
        f.response(200);
        f.admitted(Duration::from_millis(1));
        m.outcome(f, "trapped", Duration::ZERO, Duration::from_millis(2));
        assert!(
            FunctionMetrics::of_route(&*Arc::new(()) as &(dyn std::any::Any + Send + Sync))
                .is_none()
        );
        let text = m.render();
        assert!(
            text.contains("moat_gateway_responses_total{function=\"f\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("moat_invocations_total{function=\"f\",outcome=\"trapped\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("moat_queue_wait_seconds_count{function=\"f\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("moat_invocation_duration_seconds_count{function=\"f\"} 1"),
            "{text}"
        );
    }
}
