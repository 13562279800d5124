//! The web dashboard and the live event stream, on the admin listener: `/` (redirects),
//! `/ui/…` (server-rendered pages, one small script, one stylesheet, all embedded in the
//! binary) and `GET /v1/events` (server-sent events, bearer token or session cookie).
//!
//! Every dashboard request is judged like an API request: a session holds an API token,
//! which is checked again each time and whose role goes through the same policy checks
//! (`need`). State-changing requests (`POST` only) must come from the dashboard's own
//! origin (`Origin`, `Sec-Fetch-Site`) and carry the session's CSRF token (the login form:
//! a pre-session token, double-submitted as a cookie and a field). Every response carries a
//! CSP without inline script, `X-Frame-Options: DENY`, `nosniff`, `no-referrer` and
//! `no-store`. See docs/threat-model.md, "Dashboard".

mod actions;
mod chain;
mod html;
mod pages;
mod session;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use moat_gateway::GatewayBody;
use moat_store::TokenRecord;
use moat_telemetry::audit::{AuditEvent, Outcome, now_ms};
use serde_json::json;

use crate::Node;
use crate::tokens::Action;

const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
/// Dashboard forms are small; anything bigger is refused unread.
const MAX_FORM_BYTES: usize = 16 * 1024;
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The dashboard's state on a node.
pub struct Dashboard {
    sessions: session::Sessions,
    chain: chain::Verifier,
    /// The admin listener speaks TLS: cookies get `Secure`, origins are `https://`.
    secure: AtomicBool,
    streams: Arc<tokio::sync::Semaphore>,
}

impl Dashboard {
    pub fn new() -> Self {
        Dashboard {
            sessions: session::Sessions::default(),
            chain: chain::Verifier::default(),
            secure: AtomicBool::new(false),
            streams: Arc::new(tokio::sync::Semaphore::new(stream::MAX_STREAMS)),
        }
    }

    pub fn set_secure(&self, secure: bool) {
        self.secure.store(secure, Ordering::Relaxed);
    }

    fn secure(&self) -> bool {
        self.secure.load(Ordering::Relaxed)
    }
}

/// Whether the dashboard answers `path` (the admin API answers everything else).
pub fn serves(path: &str) -> bool {
    matches!(path, "/" | "/ui" | "/favicon.ico" | "/v1/events") || path.starts_with("/ui/")
}

/// A signed-in caller: the token's current record, and the session when there is one.
struct Caller {
    token: TokenRecord,
    session: Option<(String, session::Current)>,
}

impl Caller {
    fn may(&self, node: &Node, action: Action) -> bool {
        node.policies.token_may(&self.token, action.as_str(), None)
    }

    fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |(_, s)| s.csrf.as_str())
    }

    fn who(&self) -> String {
        format!("{} ({})", self.token.name, self.token.role)
    }
}

/// A finished page or refusal, before the common headers.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: GatewayBody,
    headers: Vec<(header::HeaderName, String)>,
}

impl Reply {
    fn html(status: StatusCode, body: String) -> Reply {
        Reply::text(status, "text/html; charset=utf-8", body)
    }

    fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            content_type,
            body: Full::new(body.into())
                .map_err(|never| match never {})
                .boxed_unsync(),
            headers: Vec::new(),
        }
    }

    fn json_error(status: StatusCode, code: &str, message: &str, rid: &str) -> Reply {
        let body = json!({"error": {"code": code, "message": message, "request_id": rid}});
        Reply::text(status, "application/json", body.to_string())
    }

    fn redirect(to: &str) -> Reply {
        let mut r = Reply::text(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
        r.headers.push((header::LOCATION, to.to_string()));
        r
    }

    fn with_cookie(mut self, cookie: String) -> Reply {
        self.headers.push((header::SET_COOKIE, cookie));
        self
    }

    fn finish(self, rid: &str) -> Response<GatewayBody> {
        let mut r = Response::new(self.body);
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        for (name, value) in [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
        if let Ok(v) = HeaderValue::from_str(rid) {
            h.insert("x-request-id", v);
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.append(name, v);
            }
        }
        r
    }
}

/// Handles a request for a path [`serves`] accepts.
pub async fn handle(
    node: Arc<Node>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    rid: &str,
) -> Response<GatewayBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let reply = match (&method, path.as_str()) {
        (&Method::GET, "/" | "/ui") => Reply::redirect("/ui/"),
        // Browsers ask for it on every page; without this each visit was a failed login.
        (&Method::GET, "/favicon.ico") => Reply::text(StatusCode::NO_CONTENT, "image/x-icon", ""),
        (&Method::GET, "/ui/app.js") => Reply::text(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            Bytes::from_static(APP_JS.as_bytes()),
        ),
        (&Method::GET, "/ui/style.css") => Reply::text(
            StatusCode::OK,
            "text/css; charset=utf-8",
            Bytes::from_static(STYLE_CSS.as_bytes()),
        ),
        (&Method::GET, "/v1/events") => events(&node, &req, peer, rid),
        (&Method::GET, "/ui/login") => match signed_in(&node, req.headers()) {
            Some(_) => Reply::redirect("/ui/"),
            None => pages::login_form(&node.dashboard, None, StatusCode::OK),
        },
        (&Method::POST, "/ui/login") => actions::login(&node, req, peer, rid).await,
        (&Method::POST, _) => actions::post(&node, req, peer, rid, &path).await,
        (&Method::GET, _) => match signed_in(&node, req.headers()) {
            None => Reply::redirect("/ui/login"),
            Some(caller) => pages::get(&node, &caller, &path, req.uri().query()).await,
        },
        _ => Reply::html(
            StatusCode::METHOD_NOT_ALLOWED,
            pages::message("Not allowed", "The dashboard answers GET and POST only."),
        ),
    };
    reply.finish(rid)
}

/// `GET /v1/events`: a bearer token or a session, with the right to read the audit log.
fn events(
    node: &Arc<Node>,
    req: &Request<Incoming>,
    peer: std::net::SocketAddr,
    rid: &str,
) -> Reply {
    let caller = match bearer(req.headers()) {
        Some(token) => node.tokens.check(token).map(|token| Caller {
            token,
            session: None,
        }),
        None => signed_in(node, req.headers()),
    };
    let Some(caller) = caller else {
        record_refusal(
            node,
            "anonymous",
            "auth.failed",
            "/v1/events",
            peer,
            rid,
            401,
        );
        return Reply::json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer token or dashboard session is required",
            rid,
        );
    };
    let actor = moat_telemetry::audit::actor::token(&caller.token.id);
    if !caller.may(node, Action::AuditRead) {
        record_refusal(node, &actor, "admin.get", "/v1/events", peer, rid, 403);
        return Reply::json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("role `{}` may not do this (AuditRead)", caller.token.role),
            rid,
        );
    }
    let kinds = match stream::parse_types(req.uri().query()) {
        Ok(k) => k,
        Err(e) => return Reply::json_error(StatusCode::BAD_REQUEST, "bad_request", &e, rid),
    };
    // The stream is judged again while it runs: it ends when its token is revoked or
    // expires, its role loses `audit:read`, or its session ends (logout, expiry).
    let session_id = caller.session.as_ref().map(|(id, _)| id.clone());
    let token = match (&caller.session, bearer(req.headers())) {
        (Some((_, s)), _) => s.token.clone(),
        (None, Some(t)) => zeroize::Zeroizing::new(t.to_string()),
        (None, None) => zeroize::Zeroizing::new(String::new()),
    };
    let watcher = Arc::clone(node);
    let still_allowed = move || {
        let session_live = session_id
            .as_deref()
            .is_none_or(|id| watcher.dashboard.sessions.is_live(id, Instant::now()));
        session_live
            && watcher.tokens.check(&token).is_some_and(|t| {
                watcher
                    .policies
                    .token_may(&t, Action::AuditRead.as_str(), None)
            })
    };
    let Ok(permit) = Arc::clone(&node.dashboard.streams).try_acquire_owned() else {
        return Reply::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many event streams are open",
            rid,
        );
    };
    Reply {
        status: StatusCode::OK,
        content_type: "text/event-stream",
        body: stream::open(&node.events, kinds, permit, Box::new(still_allowed)),
        headers: vec![(
            header::HeaderName::from_static("x-accel-buffering"),
            "no".into(),
        )],
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

/// The value of cookie `name`, from every `cookie` header.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The caller of a live session whose token still holds; a session whose token was
/// revoked or expired is closed.
fn signed_in(node: &Node, headers: &HeaderMap) -> Option<Caller> {
    let id = cookie(headers, session::COOKIE)?;
    let current = node.dashboard.sessions.get(id, Instant::now())?;
    match node.tokens.check(&current.token) {
        Some(token) => Some(Caller {
            token,
            session: Some((id.to_string(), current)),
        }),
        None => {
            node.dashboard.sessions.close(id);
            None
        }
    }
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Strict; Path=/`, `Secure` over TLS; an empty
/// value with `Max-Age=0` deletes it.
fn set_cookie(dashboard: &Dashboard, name: &str, value: &str, path: &str) -> String {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path={path}");
    if value.is_empty() {
        c.push_str("; Max-Age=0");
    }
    if dashboard.secure() {
        c.push_str("; Secure");
    }
    c
}

/// Refuses a state-changing request that a browser says came from another origin, or that
/// says nothing about where it came from.
///
/// `Sec-Fetch-Site` decides when present (page script cannot set it; it must be
/// `same-origin`, so a page on another port of the same host is refused too). Because the
/// dashboard sends `Referrer-Policy: no-referrer`, browsers send `Origin: null` with its own
/// form posts, so `null` is accepted only with `Sec-Fetch-Site: same-origin`. Without
/// `Sec-Fetch-Site` (older browsers, or plain HTTP off loopback, which is not a secure
/// context), `Origin` must name this listener.
fn same_origin(dashboard: &Dashboard, req: &Request<Incoming>) -> Result<(), &'static str> {
    let headers = req.headers();
    let fetch_site = headers.get("sec-fetch-site");
    if fetch_site.is_some_and(|site| site.as_bytes() != b"same-origin") {
        return Err("the request came from another site or origin (Sec-Fetch-Site)");
    }
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    match (headers.get(header::ORIGIN), host) {
        (Some(origin), _) if origin.as_bytes() == b"null" && fetch_site.is_some() => Ok(()),
        (Some(origin), Some(host)) => {
            let scheme = if dashboard.secure() { "https" } else { "http" };
            if origin.as_bytes() == format!("{scheme}://{host}").as_bytes() {
                Ok(())
            } else {
                Err("the request came from another origin (Origin)")
            }
        }
        (Some(_), None) => Err("the request names no host"),
        (None, _) if fetch_site.is_some() => Ok(()),
        (None, _) => Err("the request says nothing of its origin (no Origin or Sec-Fetch-Site)"),
    }
}

/// An audit record for a refused dashboard request or stream (like the API's).
fn record_refusal(
    node: &Node,
    actor: &str,
    action: &'static str,
    path: &str,
    peer: std::net::SocketAddr,
    rid: &str,
    status: u16,
) {
    use crate::limits_audit::{AUTH_FAILED, DASHBOARD_REFUSED};
    if actor == "anonymous" && matches!(action, AUTH_FAILED | DASHBOARD_REFUSED) {
        // Anyone who can reach the listener can send these: folded, not one record each.
        node.limits.anonymous_refusal(action, path, peer.ip(), rid);
        return;
    }
    node.audit.record(
        AuditEvent::new(now_ms(), actor, action, path, Outcome::Denied)
            .with_source(peer.ip().to_string())
            .with_request_id(rid)
            .with_details(json!({ "status": status })),
    );
}

/// Reads an `application/x-www-form-urlencoded` body (at most [`MAX_FORM_BYTES`]).
async fn read_form(req: Request<Incoming>) -> Option<HashMap<String, String>> {
    let body = Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .ok()?
        .to_bytes();
    let text = std::str::from_utf8(&body).ok()?;
    Some(
        text.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (form_decode(k), form_decode(v)))
            .collect(),
    )
}

fn form_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match hex(bytes[i + 1]).zip(hex(bytes[i + 2])) {
                Some((hi, lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        assert_eq!(form_decode("a+b%3Cc%3e%zz%4"), "a b<c>%zz%4");
        assert_eq!(form_decode("%41"), "A");
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("x_moat_session=bad; a=1"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("moat_session=good"),
        );
        assert_eq!(cookie(&h, "moat_session"), Some("good"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
