//! Limit hits (rate, timeout, memory, concurrency, body, …), traps, validation failures and
//! refused invocations (`401`/`403` at the gateway) as audit records (SPEC §5), aggregated so
//! that a flood cannot flood the chain.
//!
//! # Design
//!
//! Hits are grouped by (function, kind, and for a `403` the refused token's id). The first
//! hit of a group is recorded **at once**, as a record with `count: 1`, so an alert rule sees
//! it without delay and a lone timeout is in the chain within the writer's batch time. That
//! opens a window of [`WINDOW`]; further hits in it are only counted (with their first and
//! last request ids and times). When the window ends, a group that had more hits is recorded
//! as **one** record with their count, and a new window opens; a group that had none is
//! closed, so the next hit is again recorded at once. A sustained flood of any size therefore costs one record per group per
//! second, and the counts across a group's records add up to every hit: nothing is dropped,
//! only folded. Groups are bounded by the deployed functions times the fixed kinds (times the
//! live tokens for `403`s: an invented token is a `401`, which has no token id).
//!
//! Record: actor `node`, action `limit.<kind>` (`function.trap` for a trap,
//! `validation.failed` for an `[input]` refusal), target the function (`frontdoor` for a
//! connection refused before routing), the first request id, and `details`:
//! `{"aggregated": true, "limit": kind, "count": n, "first_request_id", "last_request_id",
//! "first_ms", "last_ms", "window_ms"}`. A refused invocation is the same record without
//! `limit`: action `invoke.unauthenticated` (no, an unknown, an expired or a revoked token;
//! actor `anonymous`) or `invoke.denied` (a live token policy does not let call the
//! function; actor `token:<id>`). The token itself is never recorded.
//!
//! Refusals of callers without a valid token on the admin listener (`auth.failed`: a bad
//! token to the admin API, the event stream or the dashboard login; `dashboard.refused`: a
//! post that fails the CSRF or same-origin check before anyone is signed in) are folded the
//! same way, grouped by (path, action, client address), so that anyone who can reach the
//! listener cannot grow the chain by a record per request. Record: action as named, actor
//! `anonymous`, target the path, `source` the address, `details` as above plus the `status`
//! answered. As the path and address are the caller's choice, at most
//! [`ANONYMOUS_GROUPS`] such groups are open at once; refusals beyond them fold into one
//! group with path and source `*`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moat_telemetry::audit::{AuditEvent, Outcome, actor, now_ms};

use crate::audit::Audit;

/// How long hits of one group are folded into one record.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Kinds recorded elsewhere in the chain already (a DLP block is a `dlp.finding`, a refused
/// outbound request an `http:request.denied`), so they are not recorded twice.
const RECORDED_ELSEWHERE: &[&str] = &["dlp", "egress_denied"];

/// The kinds of a refused invocation, which are not limits.
const UNAUTHENTICATED: &str = "unauthenticated";
const DENIED: &str = "denied";

/// Refusals on the admin listener of callers with no valid token: kind, action and status.
pub const AUTH_FAILED: &str = "auth.failed";
pub const DASHBOARD_REFUSED: &str = "dashboard.refused";

/// Groups of anonymous admin-listener refusals open at once (their keys are the caller's).
pub const ANONYMOUS_GROUPS: usize = 64;

/// What hits are folded by: function (the path, for an anonymous refusal), kind, and the
/// token refused (`403`s) or the client address (anonymous refusals).
type Key = (String, &'static str, Option<String>);

fn anonymous(kind: &str) -> bool {
    matches!(kind, AUTH_FAILED | DASHBOARD_REFUSED)
}

struct Group {
    opened: Instant,
    /// Hits since the last record.
    count: u64,
    first: Option<(String, i64)>,
    last: Option<(String, i64)>,
}

pub struct LimitAudit {
    audit: Arc<Audit>,
    groups: Mutex<HashMap<Key, Group>>,
    /// Records made (one per group per window at most).
    records: AtomicU64,
    /// Hits folded into a later record instead of a record of their own.
    folded: AtomicU64,
}

impl LimitAudit {
    /// Starts the task that closes windows.
    pub fn start(audit: Arc<Audit>) -> Arc<LimitAudit> {
        let me = Arc::new(LimitAudit {
            audit,
            groups: Mutex::new(HashMap::new()),
            records: AtomicU64::new(0),
            folded: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WINDOW / 4);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { return };
                me.close_windows(false);
            }
        });
        me
    }

    /// One hit of `kind` for `function` (`""`: before any route matched).
    pub fn hit(&self, function: &str, kind: &'static str, request_id: &str) {
        if RECORDED_ELSEWHERE.contains(&kind) {
            return;
        }
        self.fold((function.to_string(), kind, None), request_id);
    }

    /// An invocation of `function` refused for want of a live token (`401`).
    pub fn unauthenticated(&self, function: &str, request_id: &str) {
        self.fold((function.to_string(), UNAUTHENTICATED, None), request_id);
    }

    /// An invocation of `function` refused because policy does not let `token_id` call it
    /// (`403`).
    pub fn denied(&self, function: &str, token_id: &str, request_id: &str) {
        self.fold(
            (function.to_string(), DENIED, Some(token_id.to_string())),
            request_id,
        );
    }

    /// A caller without a valid token refused on the admin listener at `path` (`kind` is
    /// [`AUTH_FAILED`] or [`DASHBOARD_REFUSED`]).
    pub fn anonymous_refusal(
        &self,
        kind: &'static str,
        path: &str,
        source: std::net::IpAddr,
        request_id: &str,
    ) {
        self.fold(
            (path.to_string(), kind, Some(source.to_string())),
            request_id,
        );
    }

    fn fold(&self, mut key: Key, request_id: &str) {
        let at = now_ms();
        let (first, key) = {
            let Ok(mut groups) = self.groups.lock() else {
                return;
            };
            if anonymous(key.1)
                && !groups.contains_key(&key)
                && groups.keys().filter(|k| anonymous(k.1)).count() >= ANONYMOUS_GROUPS
            {
                key = ("*".to_string(), key.1, Some("*".to_string()));
            }
            let first = match groups.get_mut(&key) {
                Some(g) => {
                    g.count += 1;
                    let seen = (request_id.to_string(), at);
                    if g.first.is_none() {
                        g.first = Some(seen.clone());
                    }
                    g.last = Some(seen);
                    false
                }
                None => {
                    groups.insert(
                        key.clone(),
                        Group {
                            opened: Instant::now(),
                            count: 0,
                            first: None,
                            last: None,
                        },
                    );
                    true
                }
            };
            (first, key)
        };
        if first {
            let seen = (request_id.to_string(), at);
            self.emit(&key, 1, &seen, &seen);
        } else {
            self.folded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records every group whose window has ended (all of them with `all`, when stopping).
    pub fn close_windows(&self, all: bool) {
        let mut due = Vec::new();
        if let Ok(mut groups) = self.groups.lock() {
            groups.retain(|key, g| {
                if !all && g.opened.elapsed() < WINDOW {
                    return true;
                }
                match (g.count, g.first.take(), g.last.take()) {
                    (n, Some(first), Some(last)) if n > 0 => {
                        due.push((key.clone(), n, first, last));
                        g.count = 0;
                        g.opened = Instant::now();
                        !all
                    }
                    // A quiet window closes the group: the next hit is recorded at once.
                    _ => false,
                }
            });
        }
        for (key, n, first, last) in due {
            self.emit(&key, n, &first, &last);
        }
    }

    fn emit(
        &self,
        (function, kind, token_id): &Key,
        count: u64,
        first: &(String, i64),
        last: &(String, i64),
    ) {
        self.records.fetch_add(1, Ordering::Relaxed);
        if anonymous(kind) {
            return self.emit_anonymous(function, kind, token_id.as_deref(), count, first, last);
        }
        let (action, outcome) = match *kind {
            "trap" => ("function.trap".to_string(), Outcome::Failed),
            "validation" => ("validation.failed".to_string(), Outcome::Denied),
            UNAUTHENTICATED => ("invoke.unauthenticated".to_string(), Outcome::Denied),
            DENIED => ("invoke.denied".to_string(), Outcome::Denied),
            other => (format!("limit.{other}"), Outcome::Denied),
        };
        let who = match (token_id, *kind) {
            (Some(id), _) => actor::token(id),
            (None, UNAUTHENTICATED) => "anonymous".to_string(),
            (None, _) => actor::NODE.to_string(),
        };
        let target = if function.is_empty() {
            "frontdoor"
        } else {
            function
        };
        let mut details = serde_json::json!({
            "aggregated": true,
            "count": count,
            "first_request_id": first.0,
            "last_request_id": last.0,
            "first_ms": first.1,
            "last_ms": last.1,
            "window_ms": WINDOW.as_millis() as u64,
        });
        if !matches!(*kind, UNAUTHENTICATED | DENIED) {
            details["limit"] = serde_json::Value::from(*kind);
        }
        let mut event =
            AuditEvent::new(first.1, who, action, target, outcome).with_details(details);
        if !function.is_empty() {
            event = event.with_function(function);
        }
        if first.0 != "-" {
            event = event.with_request_id(first.0.clone());
        }
        self.audit.record(event);
    }

    /// The record of anonymous refusals at `path` from `source`.
    fn emit_anonymous(
        &self,
        path: &str,
        kind: &'static str,
        source: Option<&str>,
        count: u64,
        first: &(String, i64),
        last: &(String, i64),
    ) {
        let status = if kind == AUTH_FAILED { 401 } else { 403 };
        let mut event = AuditEvent::new(first.1, "anonymous", kind, path, Outcome::Denied)
            .with_request_id(first.0.clone())
            .with_details(serde_json::json!({
                "aggregated": true,
                "count": count,
                "status": status,
                "first_request_id": first.0,
                "last_request_id": last.0,
                "first_ms": first.1,
                "last_ms": last.1,
                "window_ms": WINDOW.as_millis() as u64,
            }));
        if let Some(source) = source {
            event = event.with_source(source);
        }
        self.audit.record(event);
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP moat_limit_audit_records_total Audit records made for limit hits, traps, validation failures and refused invocations (at most one per function and kind per second, plus the first).\n\
             # TYPE moat_limit_audit_records_total counter\nmoat_limit_audit_records_total {}\n\
             # HELP moat_limit_audit_folded_total Limit hits and refused invocations counted into an aggregated audit record instead of one of their own.\n\
             # TYPE moat_limit_audit_folded_total counter\nmoat_limit_audit_folded_total {}",
            self.records.load(Ordering::Relaxed),
            self.folded.load(Ordering::Relaxed)
        );
    }
}
