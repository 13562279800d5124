//! The node's live event hub: every audit event as it is recorded, every gateway answer, and
//! every deploy, rollback or delete, fanned out to `/v1/events` subscribers (the dashboard).
//!
//! Publishing never blocks and costs nothing when no one listens: an event is serialized only
//! if there is a subscriber, and goes into a bounded broadcast ring. A subscriber that falls
//! behind loses the oldest events and is told how many (a `lagged` event); it never slows the
//! node. Events carry no secret values and no caller tokens: audit events hold none by
//! construction (token *ids* only), invocations hold function, status, duration and request
//! id, deploys hold function and version.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use moat_gateway::{Gateway, GatewayBody};
use moat_telemetry::audit::{AuditEvent, now_ms};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

/// Events kept for subscribers that are behind; past it the oldest are lost (`lagged`).
const RING: usize = 1024;

/// The kinds of event, as named in the SSE `event:` field and in `?types=`.
pub const KINDS: [&str; 3] = ["audit", "invocation", "deploy"];

/// One event, serialized once for every subscriber.
#[derive(Debug)]
pub struct Event {
    pub id: u64,
    pub kind: &'static str,
    /// Compact JSON (no newlines, so it is one SSE `data:` line).
    pub json: String,
}

pub struct Hub {
    tx: broadcast::Sender<Arc<Event>>,
    /// Live subscriptions. Checked on every request and audit event instead of
    /// `receiver_count`, which takes the channel's lock.
    listening: Arc<AtomicUsize>,
    next_id: AtomicU64,
    stop: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(RING);
        let (stop, _) = watch::channel(false);
        Hub {
            tx,
            listening: Arc::default(),
            next_id: AtomicU64::new(1),
            stop,
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> Subscription {
        self.listening.fetch_add(1, Ordering::Relaxed);
        Subscription {
            rx: self.tx.subscribe(),
            listening: Arc::clone(&self.listening),
        }
    }

    fn listened(&self) -> bool {
        self.listening.load(Ordering::Relaxed) > 0
    }

    /// Resolves when the node stops, so long-lived streams end and do not hold up draining.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Ends every stream (the node is stopping).
    pub fn close(&self) {
        let _ = self.stop.send(true);
    }

    fn publish(&self, kind: &'static str, data: impl FnOnce() -> Value) {
        if !self.listened() {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let json = data().to_string();
        // An error only means every subscriber left meanwhile.
        let _ = self.tx.send(Arc::new(Event { id, kind, json }));
    }

    /// An audit event, as it is recorded.
    pub fn audit(&self, event: &AuditEvent) {
        self.publish("audit", || {
            json!({
                "at_ms": event.at_ms,
                "actor": event.actor,
                "action": event.action,
                "target": event.target,
                "outcome": event.outcome.as_str(),
                "source": event.source,
                "request_id": event.request_id,
                "function": event.function,
                "details": event.details,
            })
        });
    }

    /// A gateway answer: `function` is `None` when no route matched.
    pub fn invocation(
        &self,
        function: Option<&str>,
        status: u16,
        duration_ms: f64,
        request_id: &str,
    ) {
        self.publish("invocation", || {
            json!({
                "at_ms": now_ms(),
                "function": function,
                "status": status,
                "duration_ms": (duration_ms * 1000.0).round() / 1000.0,
                "request_id": request_id,
            })
        });
    }

    /// A successful admin change of what serves: `action` is `deploy`, `rollback` or `delete`.
    pub fn deploy(&self, action: &'static str, function: &str, version: Option<i64>) {
        self.publish("deploy", || {
            json!({
                "at_ms": now_ms(),
                "action": action,
                "function": function,
                "version": version,
            })
        });
    }

    /// Publishes the admin API's successful deploys, rollbacks and deletes (`path` and the
    /// JSON answer as the admin API produced them).
    pub fn admin_change(&self, method: &http::Method, path: &str, answer: &Value) {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let version = answer.get("version").and_then(Value::as_i64);
        match (method, segments.as_slice()) {
            (&http::Method::POST, ["v1", "functions"]) => {
                if let Some(f) = answer.get("function").and_then(Value::as_str) {
                    self.deploy("deploy", f, version);
                }
            }
            (&http::Method::POST, ["v1", "functions", name, "rollback"]) => {
                self.deploy("rollback", name, version);
            }
            (&http::Method::DELETE, ["v1", "functions", name]) => {
                self.deploy("delete", name, None);
            }
            _ => {}
        }
    }
}

/// A receiver of the hub's events, counted while it lives.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<Event>>,
    listening: Arc<AtomicUsize>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.listening.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The gateway's handler, with every answer published as an `invocation` event: which
/// function (by the same route lookup the gateway makes), the status, the time to the
/// response head, and the request id the caller saw.
pub async fn observed(
    gateway: Arc<Gateway>,
    hub: Arc<Hub>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<GatewayBody> {
    if !hub.listened() {
        return gateway.handle(req, peer).await;
    }
    let started = Instant::now();
    let function = gateway
        .routes()
        .lookup(req.uri().path())
        .map(|r| r.function.clone());
    let response = Arc::clone(&gateway).handle(req, peer).await;
    let rid = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    hub.invocation(
        function.as_deref(),
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0,
        rid,
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use moat_telemetry::audit::Outcome;

    #[tokio::test]
    async fn nothing_is_built_without_subscribers_and_slow_ones_lag() {
        let hub = Hub::default();
        hub.deploy("deploy", "a", Some(1));
        let mut sub = hub.subscribe();
        let rx = &mut sub.rx;
        for i in 0..(RING + 10) {
            hub.audit(&AuditEvent::new(
                i as i64,
                "node",
                "x",
                "y",
                Outcome::Denied,
            ));
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected a lag, got {other:?}"),
        }
        let first = rx.recv().await.unwrap();
        // Ids start at 1 and were not spent while no one listened.
        assert_eq!(first.id, 11);
        assert_eq!(first.kind, "audit");
        assert!(!first.json.contains('\n'));
        drop(sub);
        assert!(!hub.listened());
    }

    #[test]
    fn admin_answers_become_deploy_events() {
        let hub = Hub::default();
        let mut sub = hub.subscribe();
        let rx = &mut sub.rx;
        hub.admin_change(
            &http::Method::POST,
            "/v1/functions",
            &json!({"function": "f", "version": 3}),
        );
        hub.admin_change(
            &http::Method::POST,
            "/v1/functions/f/rollback",
            &json!({"function": "f", "version": 2}),
        );
        hub.admin_change(&http::Method::GET, "/v1/functions", &json!({}));
        let a = rx.try_recv().unwrap();
        let b = rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err());
        let a: Value = serde_json::from_str(&a.json).unwrap();
        let b: Value = serde_json::from_str(&b.json).unwrap();
        assert_eq!(
            (a["action"].as_str(), a["version"].as_i64()),
            (Some("deploy"), Some(3))
        );
        assert_eq!(
            (b["action"].as_str(), b["function"].as_str()),
            (Some("rollback"), Some("f"))
        );
    }
}
