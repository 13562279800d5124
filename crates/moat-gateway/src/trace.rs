//! Per-request phase timings for tracing: measured only when the observer asks for them, and
//! handed over once both the answer and the invocation (which may outlive the answer while
//! its body streams) have ended.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::routes::Route;
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
    /// Every phase, in order; `Phase::ALL[p as usize] == p`.
    pub const ALL: [Phase; 5] = [
        Phase::Policy,
        Phase::Validation,
        Phase::Instantiation,
        Phase::Execution,
        Phase::Dlp,
    ];

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
#[derive(Debug, Clone, Copy)]
pub struct PhaseTiming {
    pub start: Duration,
    pub duration: Duration,
}

/// What one request went through, with times. No caller identity, no token, no body.
///
/// Fixed-size on purpose: one is filled for every request the node serves, so it holds no
/// `String` or `Vec` of its own (the route is shared, the id is 16 bytes).
#[derive(Clone)]
pub struct RequestTrace {
    /// The request id's 16 bytes (Moat's request ids are them in hex), also the trace id.
    pub id: [u8; 16],
    /// The route that matched; `None` when none did.
    pub route: Option<Arc<Route>>,
    /// `None` when the caller went away before it was answered.
    pub status: Option<u16>,
    /// Wall-clock start, for exporters.
    pub start: SystemTime,
    /// Until the later of the answer and the end of the invocation.
    pub duration: Duration,
    /// Each phase the request went through, at `Phase as usize`.
    pub phases: [Option<PhaseTiming>; 5],
    /// Time spent waiting for a concurrency slot.
    pub queue_wait: Duration,
    /// `[dlp]` mode, or `"off"`.
    pub dlp_mode: &'static str,
    /// Time DLP spent on the response headers (judged before the body is held back).
    pub dlp_headers: Duration,
    /// The body was longer than the hold-back buffer and was judged while streaming.
    pub streamed: bool,
}

impl RequestTrace {
    /// A trace of nothing yet, for the request with id `id` started at `start`.
    pub fn new(id: [u8; 16], start: SystemTime) -> RequestTrace {
        RequestTrace {
            id,
            route: None,
            status: None,
            start,
            duration: Duration::ZERO,
            phases: [None; 5],
            queue_wait: Duration::ZERO,
            dlp_mode: "off",
            dlp_headers: Duration::ZERO,
            streamed: false,
        }
    }

    /// The request id, as the gateway gave it to the caller.
    pub fn request_id(&self) -> String {
        hex::encode(self.id)
    }

    /// The phases the request went through, in order.
    pub fn phases(&self) -> impl Iterator<Item = (Phase, PhaseTiming)> + '_ {
        Phase::ALL
            .iter()
            .zip(&self.phases)
            .filter_map(|(p, t)| Some((*p, (*t)?)))
    }
}

/// A request id as 16 bytes: the id itself when it is 32 hex digits (Moat's always are),
/// else the first 16 bytes of its SHA-256 (never all zero, which OTLP calls invalid).
pub fn id_bytes(request_id: &str) -> [u8; 16] {
    let mut id = [0u8; 16];
    if hex::decode_to_slice(request_id, &mut id).is_err() || id == [0; 16] {
        use sha2::Digest;
        id.copy_from_slice(&sha2::Sha256::digest(request_id.as_bytes())[..16]);
    }
    id
}

struct Shared {
    started: Instant,
    trace: Mutex<RequestTrace>,
    observer: Arc<dyn Observer>,
}

impl Drop for Shared {
    // The last holder (the handler or the invocation's report) hands the trace over.
    fn drop(&mut self) {
        let Ok(trace) = self.trace.get_mut() else {
            return;
        };
        trace.duration = self.started.elapsed();
        self.observer.traced(trace.clone());
    }
}

/// A request's trace, or nothing when the observer does not want traces (then every method
/// is a no-op and nothing is measured).
#[derive(Clone, Default)]
pub struct Trace(Option<Arc<Shared>>);

impl Trace {
    pub(crate) fn start(observer: &Arc<dyn Observer>, id: [u8; 16]) -> Trace {
        if !observer.traces() {
            return Trace(None);
        }
        Trace(Some(Arc::new(Shared {
            started: Instant::now(),
            trace: Mutex::new(RequestTrace::new(id, SystemTime::now())),
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
            self.with(|t| t.phases[phase as usize] = Some(PhaseTiming { start, duration }));
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
