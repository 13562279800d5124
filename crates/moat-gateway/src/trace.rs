//! Per-request phase timings for tracing: measured only when the observer asks for them, and
//! handed over once both the answer and the invocation (which may outlive the answer while
//! its body streams) have ended.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::server::Observer;

/// A timed step of a request, in the order a request meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Authentication and the authorization decision (Cedar), or a public route's pass.
    Policy,
    /// `[input]` checks: method, content type, declared size, body read and JSON Schema.
    Validation,
    /// A fresh instance from the pooling allocator.
    Instantiation,
    /// The guest's handler, until the instance has ended (body included).
    Execution,
    /// Response checks before the answer starts: the size limit and data-loss prevention
    /// of the held-back body.
    Dlp,
}

impl Phase {
    /// The span name (`moat.` and the phase).
    pub fn span_name(self) -> &'static str {
        match self {
            Phase::Policy => "moat.policy",
            Phase::Validation => "moat.validation",
            Phase::Instantiation => "moat.instantiation",
            Phase::Execution => "moat.execution",
            Phase::Dlp => "moat.dlp",
        }
    }
}

/// One timed phase, relative to the start of the request.
#[derive(Debug, Clone)]
pub struct PhaseTiming {
    pub phase: Phase,
    pub start: Duration,
    pub duration: Duration,
}

/// What one request went through, with times. No caller identity, no token, no body.
#[derive(Debug, Clone, Default)]
pub struct RequestTrace {
    pub request_id: String,
    /// `None` when no route matched.
    pub function: Option<String>,
    pub version: i64,
    /// `None` when the caller went away before it was answered.
    pub status: Option<u16>,
    /// Wall-clock start, for exporters.
    pub start: Option<SystemTime>,
    /// Until the later of the answer and the end of the invocation.
    pub duration: Duration,
    pub phases: Vec<PhaseTiming>,
    /// Time spent waiting for a concurrency slot.
    pub queue_wait: Duration,
    /// `[dlp]` mode, or `"off"`.
    pub dlp_mode: &'static str,
    /// Time DLP spent on the response headers (judged before the body is held back).
    pub dlp_headers: Duration,
    /// The body was longer than the hold-back buffer and was judged while streaming.
    pub streamed: bool,
}

struct Shared {
    started: Instant,
    trace: Mutex<RequestTrace>,
    observer: Arc<dyn Observer>,
}

impl Drop for Shared {
    // The last holder (the handler or the invocation's report) hands the trace over.
    fn drop(&mut self) {
        let mut trace = match self.trace.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return,
        };
        trace.duration = self.started.elapsed();
        self.observer.traced(trace);
    }
}

/// A request's trace, or nothing when the observer does not want traces (then every method
/// is a no-op and nothing is measured).
#[derive(Clone, Default)]
pub struct Trace(Option<Arc<Shared>>);

impl Trace {
    pub(crate) fn start(observer: &Arc<dyn Observer>, request_id: &str) -> Trace {
        if !observer.traces() {
            return Trace(None);
        }
        Trace(Some(Arc::new(Shared {
            started: Instant::now(),
            trace: Mutex::new(RequestTrace {
                request_id: request_id.to_string(),
                start: Some(SystemTime::now()),
                dlp_mode: "off",
                phases: Vec::with_capacity(5),
                ..Default::default()
            }),
            observer: Arc::clone(observer),
        })))
    }

    /// The start of a phase, when tracing.
    pub(crate) fn begin(&self) -> Option<Instant> {
        self.0.as_ref().map(|_| Instant::now())
    }

    /// Records a phase from `from` (given by [`Trace::begin`]) until now.
    pub(crate) fn end(&self, phase: Phase, from: Option<Instant>) {
        if let Some(from) = from {
            self.span(phase, from, from.elapsed());
        }
    }

    /// Records a phase that started at `from` and took `duration`.
    pub(crate) fn span(&self, phase: Phase, from: Instant, duration: Duration) {
        if let Some(shared) = &self.0 {
            let start = from.saturating_duration_since(shared.started);
            self.with(|t| {
                t.phases.push(PhaseTiming {
                    phase,
                    start,
                    duration,
                })
            });
        }
    }

    pub(crate) fn with(&self, f: impl FnOnce(&mut RequestTrace)) {
        if let Some(shared) = &self.0
            && let Ok(mut t) = shared.trace.lock()
        {
            f(&mut t);
        }
    }
}

/// Times a phase until dropped, so a phase that ends in a refusal is recorded too.
pub(crate) struct PhaseGuard<'a> {
    trace: &'a Trace,
    phase: Phase,
    from: Option<Instant>,
}

impl Trace {
    pub(crate) fn phase(&self, phase: Phase) -> PhaseGuard<'_> {
        PhaseGuard {
            trace: self,
            phase,
            from: self.begin(),
        }
    }
}

impl Drop for PhaseGuard<'_> {
    fn drop(&mut self) {
        self.trace.end(self.phase, self.from);
    }
}
