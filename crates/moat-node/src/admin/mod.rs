//! The admin API: JSON over HTTP under `/v1/`, bearer-token auth, described by
//! `/v1/openapi.json`. `/healthz`, `/readyz` and `/metrics` need no token.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use moat_gateway::GatewayBody;
use moat_manifest::FunctionSpec;
use moat_runtime::compile::MAX_COMPONENT_BYTES;
use moat_store::{TokenRecord, VersionRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::defaults;
use crate::follow;
use crate::functions::DeployError;
use crate::tokens::{Action, ROLES};

mod access;
mod functions;
mod operations;
mod supply;

const OPENAPI: &str = include_str!("../openapi.json");

/// An admin API error, in the same JSON shape as the gateway's.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Structured detail where it helps the caller (e.g. the findings that blocked a deploy).
    details: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }
}

impl From<crate::supply::SupplyError> for ApiError {
    fn from(e: crate::supply::SupplyError) -> Self {
        use crate::supply::SupplyError;
        let (status, code) = match &e {
            SupplyError::Signature { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "signature_rejected")
            }
            SupplyError::Vulnerable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "vulnerable_dependencies")
            }
            SupplyError::Component(_) => (StatusCode::BAD_REQUEST, "invalid_component"),
            SupplyError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        let mut api = ApiError::new(status, code, e.to_string());
        if let SupplyError::Vulnerable { findings, .. } = &e {
            api.details = Some(json!(findings));
        }
        api
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        let (status, code) = match &e {
            DeployError::Manifest(_) => (StatusCode::BAD_REQUEST, "invalid_manifest"),
            DeployError::Component(_) => (StatusCode::BAD_REQUEST, "invalid_component"),
            DeployError::Compile(_) => (StatusCode::UNPROCESSABLE_ENTITY, "compile_failed"),
            DeployError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            DeployError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            DeployError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

type ApiResult = Result<(StatusCode, Value), ApiError>;

fn respond(
    body: Bytes,
    status: StatusCode,
    content_type: &'static str,
    rid: &str,
) -> Response<GatewayBody> {
    let mut r = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    if let Ok(v) = header::HeaderValue::from_str(rid) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}

/// A `200` whose body is written as it is produced.
/// A streamed answer's body: each chunk sent on the channel, until its sender is dropped.
pub(crate) fn channel_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> GatewayBody {
    use http_body_util::BodyExt;
    struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);
    impl hyper::body::Body for ChannelBody {
        type Data = Bytes;
        type Error = moat_gateway::BoxError;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
        }
    }
    ChannelBody(rx).boxed_unsync()
}

fn streaming(body: GatewayBody, content_type: &'static str, rid: &str) -> Response<GatewayBody> {
    let mut r = Response::new(body);
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    // Proxies must pass each line on as it comes.
    headers.insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    if let Ok(v) = header::HeaderValue::from_str(rid) {
        headers.insert("x-request-id", v);
    }
    r
}

/// Handles one admin request.
pub async fn handle(
    node: Arc<Node>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<GatewayBody> {
    let rid = moat_gateway::new_request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if crate::dashboard::serves(&path) {
        return crate::dashboard::handle(node, req, peer, &rid).await;
    }
    // Unauthenticated, read-only endpoints.
    match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => {
            return respond(
                Bytes::from_static(b"{\"status\":\"ok\"}"),
                StatusCode::OK,
                "application/json",
                &rid,
            );
        }
        (&Method::GET, "/readyz") => {
            let ready = node.ready.load(Ordering::Acquire);
            let (status, body) = if ready {
                (StatusCode::OK, &b"{\"status\":\"ready\"}"[..])
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    &b"{\"status\":\"starting\"}"[..],
                )
            };
            return respond(Bytes::from_static(body), status, "application/json", &rid);
        }
        (&Method::GET, "/metrics") => {
            let mut text = node.metrics.render();
            let a = &node.audit;
            text.push_str(&format!(
                "# HELP moat_audit_records_written_total Audit records appended to the chain.\n\
                 # TYPE moat_audit_records_written_total counter\n\
                 moat_audit_records_written_total {}\n\
                 # HELP moat_audit_overflow_total Audit events not recorded because the queue was full.\n\
                 # TYPE moat_audit_overflow_total counter\n\
                 moat_audit_overflow_total {}\n\
                 # HELP moat_audit_write_failures_total Failed audit store writes (retried).\n\
                 # TYPE moat_audit_write_failures_total counter\n\
                 moat_audit_write_failures_total {}\n\
                 # HELP moat_audit_backlog Audit events waiting to be written.\n\
                 # TYPE moat_audit_backlog gauge\n\
                 moat_audit_backlog {}\n",
                a.written.load(Ordering::Relaxed),
                a.overflow.load(Ordering::Relaxed),
                a.write_failures.load(Ordering::Relaxed),
                a.backlog(),
            ));
            return respond(
                text.into(),
                StatusCode::OK,
                "text/plain; version=0.0.4",
                &rid,
            );
        }
        (&Method::GET, "/v1/openapi.json") => {
            return respond(
                Bytes::from_static(OPENAPI.as_bytes()),
                StatusCode::OK,
                "application/json",
                &rid,
            );
        }
        _ => {}
    }
    let (actor, result) = match authorize(&node, &req) {
        Err(e) => ("anonymous".to_string(), Err(e)),
        Ok(caller) => {
            let actor = moat_telemetry::audit::actor::token(&caller.id);
            match functions::followed(&method, &path, req.uri().query()) {
                // A stream, not a JSON answer: only its refusal goes the common way.
                Some(name) => match functions::follow_logs(&node, &caller, &req, name).await {
                    Ok(body) => return streaming(body, "application/x-ndjson", &rid),
                    Err(e) => (actor, Err(e)),
                },
                None => (actor, route(&node, &caller, req, &method, &path).await),
            }
        }
    };
    audit_admin(&node, &actor, &method, &path, peer, &rid, &result);
    if let Ok((_, answer)) = &result {
        node.events.admin_change(&method, &path, answer);
    }
    let (status, body) = match result {
        Ok((status, body)) => (status, body),
        Err(e) => (e.status, {
            let mut error = json!({"code": e.code, "message": e.message, "request_id": rid});
            if let Some(details) = e.details {
                error["details"] = details;
            }
            json!({ "error": error })
        }),
    };
    respond(body.to_string().into(), status, "application/json", &rid)
}

/// Every admin action that changes something, and every refused one (a failed login, a
/// role without the right), is an audit record: who, what, from where, and the outcome.
fn audit_admin(
    node: &Node,
    actor: &str,
    method: &Method,
    path: &str,
    peer: std::net::SocketAddr,
    rid: &str,
    result: &ApiResult,
) {
    use moat_telemetry::audit::{AuditEvent, Outcome, now_ms};
    let (outcome, status) = match result {
        Ok((status, _)) => (Outcome::Succeeded, *status),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => (Outcome::Denied, e.status),
        Err(e) if e.status == StatusCode::FORBIDDEN => (Outcome::Denied, e.status),
        Err(e) => (Outcome::Failed, e.status),
    };
    let reads = *method == Method::GET || *method == Method::HEAD;
    if reads && outcome != Outcome::Denied {
        return;
    }
    if status == StatusCode::UNAUTHORIZED {
        // Anyone who can reach the listener can send these: folded, not one record each.
        node.limits
            .anonymous_refusal(crate::limits_audit::AUTH_FAILED, path, peer.ip(), rid);
        return;
    }
    let action = format!("admin.{}", method.as_str().to_ascii_lowercase());
    // The path names the resource (`/v1/functions/orders`); bodies are never recorded, as
    // they may hold secret values.
    node.audit.record(
        AuditEvent::new(now_ms(), actor, action, path, outcome)
            .with_source(peer.ip().to_string())
            .with_request_id(rid)
            .with_details(json!({ "status": status.as_u16() })),
    );
}

fn authorize(node: &Node, req: &Request<Incoming>) -> Result<TokenRecord, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer token is required",
        )
    };
    let token = bearer_token(req).ok_or_else(unauthorized)?;
    node.tokens.check(token).ok_or_else(unauthorized)
}

fn bearer_token(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

/// Refuses with `403` unless the policy engine lets the caller's role do `action`.
fn need(node: &Node, caller: &TokenRecord, action: Action) -> Result<(), ApiError> {
    if node.policies.token_may(caller, action.as_str(), None) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("role `{}` may not do this ({action:?})", caller.role),
        ))
    }
}

async fn route(
    node: &Arc<Node>,
    caller: &TokenRecord,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> ApiResult {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let s = segments.as_slice();
    match s.get(1).copied() {
        Some("components" | "functions") => {
            functions::route(node, caller, req, method, s, &query).await
        }
        Some("whoami" | "tokens" | "secrets" | "policies" | "master-key") => {
            access::route(node, caller, req, method, s, &query).await
        }
        Some("alerts" | "kv" | "audit" | "iam") => {
            operations::route(node, caller, req, method, s, &query).await
        }
        Some("trust" | "settings" | "advisories") => {
            supply::route(node, caller, req, method, s, &query).await
        }
        _ => Err(no_endpoint(method, s)),
    }
}

fn no_endpoint(method: &Method, segments: &[&str]) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no admin endpoint {method} /{}", segments.join("/")),
    )
}

/// Creates a token; returns its record and the secret, which is shown once and never stored.
async fn issue_token(
    node: &Arc<Node>,
    name: Option<String>,
    role: String,
    function: Option<String>,
    lifetime_ms: Option<i64>,
) -> Result<(TokenRecord, zeroize::Zeroizing<String>), ApiError> {
    if !ROLES.contains(&role.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "unknown role `{role}`; expected one of {}",
                ROLES.join(", ")
            ),
        ));
    }
    if function.is_some() && role != "invoker" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "`function` scopes only `invoker` tokens",
        ));
    }
    let secret = crate::datadir::new_token().map_err(internal)?;
    let now = moat_store::now_ms();
    let record = TokenRecord {
        id: moat_gateway::new_request_id()[..16].to_string(),
        name: name.unwrap_or_else(|| role.clone()),
        role,
        hash: moat_store::sha256_hex(secret.as_bytes()),
        created_at_ms: now,
        expires_at_ms: lifetime_ms.map(|l| now + l),
        revoked: false,
        function,
    };
    node.store
        .insert_token(record.clone())
        .await
        .map_err(store_error)?;
    node.tokens.reload(&node.store).await.map_err(internal)?;
    tracing::info!(token = %record.id, role = %record.role, "token created");
    Ok((record, secret))
}

/// A token as shown to administrators: never its hash or secret.
fn token_json(t: &TokenRecord) -> Value {
    json!({
        "id": t.id, "name": t.name, "role": t.role, "function": t.function,
        "created_at_ms": t.created_at_ms, "expires_at_ms": t.expires_at_ms, "revoked": t.revoked,
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        e.to_string(),
    )
}

/// Names of secrets and policies: `[a-z0-9-]`, at most `max` characters.
fn check_name(kind: &str, name: &str, max: usize) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("a {kind} name is 1-{max} characters of [a-z0-9-], found `{name}`"),
        ))
    }
}

fn version_json(v: &VersionRecord) -> Value {
    json!({
        "function": v.function,
        "version": v.version,
        "route": v.route,
        "component": v.component_digest,
        "created_at_ms": v.created_at_ms,
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("function `{name}` not found"),
    )
}

fn store_error(e: moat_store::StoreError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        e.to_string(),
    )
}

/// Reads a body, refusing it as soon as it passes `limit` (never buffering more).
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than {limit} bytes or was cut off"),
            )
        })
}

/// An optional integer query parameter; anything else is a `400` naming the parameter.
fn query_int(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(key)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("`{key}` must be an integer"),
                )
            })
        })
        .transpose()
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1]).zip(hex(bytes[i + 2])),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some((hi, lo)), _) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `(&Method::X, ["v1", ...])` arm of the admin router is in the OpenAPI document,
    /// with that method (path parameters compared by position, not name).
    #[test]
    fn every_endpoint_is_in_the_openapi_document() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        let shape = |path: &str| -> String {
            path.split('/')
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect::<Vec<_>>()
                .join("/")
        };
        let documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, ops)| {
                let ops = ops.as_object().cloned().unwrap_or_default();
                let path = shape(path);
                ops.keys()
                    .map(move |m| (m.to_uppercase(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let sources = [
            include_str!("functions.rs"),
            include_str!("access.rs"),
            include_str!("operations.rs"),
            include_str!("supply.rs"),
        ];
        let mut routes = 0;
        for source in sources {
            for arm in source.split("(&Method::").skip(1) {
                let Some((method, rest)) = arm.split_once(", [") else {
                    continue;
                };
                let Some((segments, _)) = rest.split_once(']') else {
                    continue;
                };
                // `name, rest @ ..` arms stand for several documented paths: the fixed
                // prefix must be documented with that method.
                let (segments, open) = match segments.split_once("@ ..") {
                    Some((head, _)) => (head.rsplit_once(',').map_or(head, |(h, _)| h), true),
                    None => (segments, false),
                };
                let path: String = segments
                    .split(',')
                    .map(|s| {
                        let s = s.trim();
                        match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                            Some(literal) => literal.to_string(),
                            None => "{}".to_string(),
                        }
                    })
                    .fold(String::new(), |acc, s| acc + "/" + &s);
                routes += 1;
                let found = documented.iter().any(|(m, p)| {
                    m == method && (*p == path || (open && p.starts_with(&format!("{path}/"))))
                });
                assert!(found, "{method} {path} is not in openapi.json");
            }
        }
        assert!(routes > 30, "found only {routes} routes");
    }

    #[test]
    fn query_decoding() {
        let q = parse_query("request_id=a%20b&x=%zz&y=1+2&bad=%e2%82");
        assert_eq!(q["request_id"], "a b");
        assert_eq!(q["x"], "%zz");
        assert_eq!(q["y"], "1 2");
        assert_eq!(q["bad"], "\u{fffd}");
    }
}
