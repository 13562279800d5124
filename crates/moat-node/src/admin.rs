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
use moat_store::{LogQuery, TokenRecord, VersionRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::defaults;
use crate::functions::DeployError;
use crate::tokens::{Action, ROLES};

const OPENAPI: &str = include_str!("openapi.json");

/// An admin API error, in the same JSON shape as the gateway's.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
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

/// Handles one admin request.
pub async fn handle(
    node: Arc<Node>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<GatewayBody> {
    let rid = moat_gateway::new_request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
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
        Ok(caller) => (
            moat_telemetry::audit::actor::token(&caller.id),
            route(&node, &caller, req, &method, &path).await,
        ),
    };
    audit_admin(&node, &actor, &method, &path, peer, &rid, &result);
    let (status, body) = match result {
        Ok((status, body)) => (status, body),
        Err(e) => (
            e.status,
            json!({"error": {"code": e.code, "message": e.message, "request_id": rid}}),
        ),
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
    let action = match status {
        StatusCode::UNAUTHORIZED => "auth.failed".to_string(),
        _ => format!("admin.{}", method.as_str().to_ascii_lowercase()),
    };
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
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(unauthorized)?;
    node.tokens.check(token).ok_or_else(unauthorized)
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
    match (method, segments.as_slice()) {
        (&Method::PUT, ["v1", "components", digest]) => {
            need(node, caller, Action::FunctionDeploy)?;
            let digest = digest.to_string();
            let body = read_body(req, MAX_COMPONENT_BYTES).await?;
            let info = node.functions.upload(&digest, &body).await?;
            Ok((
                StatusCode::CREATED,
                json!({
                    "digest": digest, "size": info.size,
                    "imports": info.imports, "exports": info.exports,
                }),
            ))
        }
        (&Method::POST, ["v1", "functions"]) => {
            need(node, caller, Action::FunctionDeploy)?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct DeployRequest {
                spec: FunctionSpec,
                component: String,
            }
            let body = read_body(req, defaults::MAX_ADMIN_JSON_BYTES).await?;
            let request: DeployRequest = serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_manifest",
                    format!("invalid deploy request: {e}"),
                )
            })?;
            let record = node
                .functions
                .deploy(request.spec, &request.component)
                .await?;
            tracing::info!(function = %record.function, version = record.version, "deployed");
            Ok((StatusCode::CREATED, version_json(&record)))
        }
        (&Method::GET, ["v1", "functions"]) => {
            need(node, caller, Action::FunctionRead)?;
            let list = node.store.list_functions().await.map_err(store_error)?;
            Ok((StatusCode::OK, json!({ "functions": list })))
        }
        (&Method::GET, ["v1", "functions", name]) => {
            // Whoever may invoke a function may also look up its route (`moat invoke`).
            if !node
                .policies
                .token_may(caller, "function:invoke", Some(name))
            {
                need(node, caller, Action::FunctionRead)?;
            }
            let f = node
                .store
                .get_function(name)
                .await
                .map_err(store_error)?
                .ok_or_else(|| not_found(name))?;
            let versions = node.store.versions(name).await.map_err(store_error)?;
            let active = versions.iter().find(|v| v.version == f.active_version);
            let spec: Value = active
                .and_then(|v| serde_json::from_str(&v.spec_json).ok())
                .unwrap_or(Value::Null);
            Ok((
                StatusCode::OK,
                json!({
                    "function": f,
                    "spec": spec,
                    "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
                }),
            ))
        }
        (&Method::DELETE, ["v1", "functions", name]) => {
            need(node, caller, Action::FunctionDelete)?;
            if node.functions.delete(name).await? {
                tracing::info!(function = %name, "deleted");
                Ok((StatusCode::OK, json!({ "deleted": name })))
            } else {
                Err(not_found(name))
            }
        }
        (&Method::POST, ["v1", "functions", name, "rollback"]) => {
            need(node, caller, Action::FunctionRollback)?;
            #[derive(Deserialize, Default)]
            #[serde(deny_unknown_fields)]
            struct Rollback {
                to: Option<i64>,
            }
            let body = read_body(req, defaults::MAX_ADMIN_JSON_BYTES).await?;
            let r: Rollback = if body.is_empty() {
                Rollback::default()
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("invalid rollback request: {e}"),
                    )
                })?
            };
            let record = node.functions.rollback(name, r.to).await?;
            tracing::info!(function = %name, version = record.version, "rolled back");
            Ok((StatusCode::OK, version_json(&record)))
        }
        (&Method::GET, ["v1", "functions", name, "logs"]) => {
            need(node, caller, Action::LogsRead)?;
            let number = |key: &str| query_int(&query, key);
            let limit = number("limit")?.unwrap_or(1000).clamp(1, 10_000) as u32;
            let logs = node
                .store
                .logs(LogQuery {
                    function: name.to_string(),
                    request_id: query.get("request_id").cloned(),
                    since_ms: number("since_ms")?,
                    limit,
                })
                .await
                .map_err(store_error)?;
            Ok((StatusCode::OK, json!({ "logs": logs })))
        }
        (&Method::GET, ["v1", "whoami"]) => Ok((StatusCode::OK, token_json(caller))),
        (&Method::GET, ["v1", "tokens"]) => {
            need(node, caller, Action::TokensManage)?;
            let tokens = node.store.list_tokens().await.map_err(store_error)?;
            let tokens: Vec<Value> = tokens.iter().map(token_json).collect();
            Ok((StatusCode::OK, json!({ "tokens": tokens })))
        }
        (&Method::POST, ["v1", "tokens"]) => {
            need(node, caller, Action::TokensManage)?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewToken {
                name: Option<String>,
                role: Option<String>,
                function: Option<String>,
                expires_in_secs: Option<u64>,
            }
            let body = read_body(req, defaults::MAX_ADMIN_JSON_BYTES).await?;
            let t: NewToken = serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("invalid token request: {e}"),
                )
            })?;
            let role = t.role.unwrap_or_else(|| "none".into());
            let lifetime = t.expires_in_secs.map(|s| (s as i64).saturating_mul(1000));
            let (record, secret) = issue_token(node, t.name, role, t.function, lifetime).await?;
            let mut v = token_json(&record);
            v["token"] = Value::String(secret.to_string());
            Ok((StatusCode::CREATED, v))
        }
        (&Method::DELETE, ["v1", "tokens", id]) => {
            need(node, caller, Action::TokensManage)?;
            if !node.store.revoke_token(id).await.map_err(store_error)? {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("token `{id}` not found"),
                ));
            }
            node.tokens.reload(&node.store).await.map_err(internal)?;
            tracing::info!(token = %id, by = %caller.id, "token revoked");
            Ok((StatusCode::OK, json!({ "revoked": id })))
        }
        (&Method::POST, ["v1", "tokens", id, "rotate"]) => {
            need(node, caller, Action::TokensManage)?;
            let old = node
                .store
                .list_tokens()
                .await
                .map_err(store_error)?
                .into_iter()
                .find(|t| t.id == *id && !t.revoked)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("live token `{id}` not found"),
                    )
                })?;
            let lifetime = old.expires_at_ms.map(|e| e - old.created_at_ms);
            // The new token first, then the old one revoked: never a moment with neither.
            let (record, secret) = issue_token(
                node,
                Some(old.name.clone()),
                old.role.clone(),
                old.function.clone(),
                lifetime,
            )
            .await?;
            node.store.revoke_token(id).await.map_err(store_error)?;
            node.tokens.reload(&node.store).await.map_err(internal)?;
            tracing::info!(token = %id, new = %record.id, by = %caller.id, "token rotated");
            let mut v = token_json(&record);
            v["token"] = Value::String(secret.to_string());
            v["replaces"] = Value::String(id.to_string());
            Ok((StatusCode::CREATED, v))
        }
        (&Method::PUT, ["v1", "secrets", name]) => {
            need(node, caller, Action::SecretsManage)?;
            check_name("secret", name, 128)?;
            let body = read_body(req, 64 * 1024).await?;
            let value =
                zeroize::Zeroizing::new(String::from_utf8(body.to_vec()).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "a secret value must be UTF-8 text",
                    )
                })?);
            let version = node
                .store
                .put_secret(name, &value)
                .await
                .map_err(store_error)?;
            node.vault.reload(&node.store).await.map_err(internal)?;
            // Each function's DLP scanner looks for the values it may read: rebuild them.
            node.functions.invalidate_routes();
            node.functions.refresh_routes().await?;
            tracing::info!(secret = %name, version, by = %caller.id, "secret set");
            Ok((StatusCode::OK, json!({ "name": name, "version": version })))
        }
        (&Method::GET, ["v1", "secrets"]) => {
            need(node, caller, Action::SecretsManage)?;
            let metas = node.store.list_secrets().await.map_err(store_error)?;
            let active = node.store.active_versions().await.map_err(store_error)?;
            let grants: Vec<(String, Vec<String>)> = active
                .iter()
                .filter_map(|v| {
                    let spec: FunctionSpec = serde_json::from_str(&v.spec_json).ok()?;
                    Some((v.function.clone(), spec.permissions.secrets))
                })
                .collect();
            // Reads by functions, as the config capability recorded them.
            node.usage.flush(&node.store).await.map_err(internal)?;
            let reads = node.store.usage(None, 0).await.map_err(store_error)?;
            let list: Vec<Value> = metas
                .iter()
                .map(|m| {
                    let readers: Vec<&str> = grants
                        .iter()
                        .filter(|(_, s)| s.contains(&m.name))
                        .map(|(f, _)| f.as_str())
                        .collect();
                    let last_read_ms = reads
                        .iter()
                        .filter(|u| u.action == "secret:read" && u.resource == m.name)
                        .map(|u| u.last_seen_ms)
                        .max();
                    json!({
                        "name": m.name, "version": m.version, "updated_at_ms": m.updated_at_ms,
                        "readers": readers, "last_read_ms": last_read_ms,
                    })
                })
                .collect();
            Ok((StatusCode::OK, json!({ "secrets": list })))
        }
        (&Method::DELETE, ["v1", "secrets", name]) => {
            need(node, caller, Action::SecretsManage)?;
            if !node.store.delete_secret(name).await.map_err(store_error)? {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("secret `{name}` not found"),
                ));
            }
            node.vault.reload(&node.store).await.map_err(internal)?;
            // Each function's DLP scanner looks for the values it may read: rebuild them.
            node.functions.invalidate_routes();
            node.functions.refresh_routes().await?;
            tracing::info!(secret = %name, by = %caller.id, "secret deleted");
            Ok((StatusCode::OK, json!({ "deleted": name })))
        }
        (&Method::GET, ["v1", "policies"]) => {
            need(node, caller, Action::PolicyManage)?;
            let list: Vec<Value> = node
                .store
                .policies()
                .await
                .map_err(store_error)?
                .into_iter()
                .map(|(name, text)| json!({ "name": name, "text": text }))
                .collect();
            Ok((StatusCode::OK, json!({ "policies": list })))
        }
        (&Method::PUT, ["v1", "policies", name]) => {
            need(node, caller, Action::PolicyManage)?;
            check_name("policy", name, 63)?;
            let body = read_body(req, 256 * 1024).await?;
            let text = String::from_utf8(body.to_vec()).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_policy",
                    "a policy file must be UTF-8",
                )
            })?;
            let count = node.policies.read().check_guardrail(&text).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_policy", e.to_string())
            })?;
            node.store
                .put_policy(name, &text)
                .await
                .map_err(store_error)?;
            node.reload_guardrails().await.map_err(internal)?;
            tracing::info!(policy = %name, count, by = %caller.id, "guardrail added");
            Ok((StatusCode::OK, json!({ "name": name, "policies": count })))
        }
        (&Method::DELETE, ["v1", "policies", name]) => {
            need(node, caller, Action::PolicyManage)?;
            if !node.store.delete_policy(name).await.map_err(store_error)? {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("policy `{name}` not found"),
                ));
            }
            node.reload_guardrails().await.map_err(internal)?;
            tracing::info!(policy = %name, by = %caller.id, "guardrail removed");
            Ok((StatusCode::OK, json!({ "deleted": name })))
        }
        (&Method::POST, ["v1", "master-key", "rotate"]) => {
            need(node, caller, Action::KeysManage)?;
            let done = crate::rotate::rotate(&node.keys, &node.store)
                .await
                .map_err(|e| {
                    ApiError::new(StatusCode::CONFLICT, "rotation_failed", format!("{e:#}"))
                })?;
            Ok((
                StatusCode::OK,
                json!({ "rewrapped": done.rewrapped, "key_id": done.key_id }),
            ))
        }
        (&Method::POST, ["v1", "alerts"]) => {
            need(node, caller, Action::AlertsManage)?;
            let body = read_body(req, defaults::MAX_ADMIN_JSON_BYTES).await?;
            let text = String::from_utf8(body.to_vec()).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_alert",
                    "the rules file is not UTF-8",
                )
            })?;
            let rules = crate::alerts::parse_rules(&text, &node.vault)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_alert", e))?;
            let mut all = crate::alerts::load_rules(&*node.store)
                .await
                .map_err(internal)?;
            all.retain(|r| !rules.iter().any(|n| n.name == r.name));
            all.extend(rules.iter().cloned());
            // Judged together before anything is stored: a bad combination changes nothing.
            moat_telemetry::alerts::AlertEngine::new(all.clone()).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_alert", e.to_string())
            })?;
            let rows = rules
                .iter()
                .map(|r| Ok((r.name.clone(), serde_json::to_string(r)?)))
                .collect::<Result<Vec<_>, serde_json::Error>>()
                .map_err(internal)?;
            node.store
                .put_alert_rules(rows)
                .await
                .map_err(store_error)?;
            node.alerts.set_rules(all).map_err(internal)?;
            let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
            Ok((StatusCode::CREATED, json!({ "added": names })))
        }
        (&Method::GET, ["v1", "alerts"]) => {
            need(node, caller, Action::AuditRead)?;
            let rules = crate::alerts::load_rules(&*node.store)
                .await
                .map_err(internal)?;
            Ok((StatusCode::OK, json!({ "alerts": rules })))
        }
        (&Method::DELETE, ["v1", "alerts", name]) => {
            need(node, caller, Action::AlertsManage)?;
            if !node
                .store
                .delete_alert_rule(name)
                .await
                .map_err(store_error)?
            {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("alert `{name}` not found"),
                ));
            }
            let all = crate::alerts::load_rules(&*node.store)
                .await
                .map_err(internal)?;
            node.alerts.set_rules(all).map_err(internal)?;
            Ok((StatusCode::OK, json!({ "deleted": name })))
        }
        (&Method::POST, ["v1", "alerts", name, "test"]) => {
            need(node, caller, Action::AlertsManage)?;
            node.alerts
                .test(name)
                .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e))?;
            Ok((StatusCode::OK, json!({ "sent": name })))
        }
        (&Method::GET, ["v1", "kv"]) => {
            need(node, caller, Action::KvManage)?;
            let buckets = node.store.list_buckets().await.map_err(store_error)?;
            Ok((StatusCode::OK, json!({ "buckets": buckets })))
        }
        (&Method::POST, ["v1", "kv"]) => {
            need(node, caller, Action::KvManage)?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewBucket {
                name: String,
                max_value_bytes: Option<u64>,
                max_keys: Option<u64>,
                max_total_bytes: Option<u64>,
            }
            let body = read_body(req, defaults::MAX_ADMIN_JSON_BYTES).await?;
            let b: NewBucket = serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("invalid bucket request: {e}"),
                )
            })?;
            if !moat_manifest::is_name(&b.name, 63) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "expected a bucket name of 1-63 characters of [a-z0-9-], found `{}`",
                        b.name
                    ),
                ));
            }
            let d = moat_store::BucketQuota::default();
            let quota = moat_store::BucketQuota {
                max_value_bytes: b.max_value_bytes.unwrap_or(d.max_value_bytes),
                max_keys: b.max_keys.unwrap_or(d.max_keys),
                max_total_bytes: b.max_total_bytes.unwrap_or(d.max_total_bytes),
            };
            match node.store.create_bucket(&b.name, quota).await {
                Ok(()) => Ok((
                    StatusCode::CREATED,
                    json!({ "name": b.name, "quota": quota }),
                )),
                Err(moat_store::StoreError::AlreadyExists(what)) => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("{what} already exists"),
                )),
                Err(e) => Err(store_error(e)),
            }
        }
        (&Method::DELETE, ["v1", "kv", name]) => {
            need(node, caller, Action::KvManage)?;
            if node.store.delete_bucket(name).await.map_err(store_error)? {
                Ok((StatusCode::OK, json!({ "deleted": name })))
            } else {
                Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("bucket `{name}` not found"),
                ))
            }
        }
        (&Method::GET, ["v1", "audit"]) => {
            need(node, caller, Action::AuditRead)?;
            let number = |key: &str| query_int(&query, key);
            let records = node
                .store
                .audit_records(moat_store::AuditQuery {
                    after_seq: number("after_seq")?.unwrap_or(0).max(0) as u64,
                    since_ms: number("since_ms")?,
                    function: query.get("function").cloned(),
                    action: query.get("action").cloned(),
                    limit: number("limit")?.unwrap_or(1000).clamp(1, 10_000) as u32,
                })
                .await
                .map_err(store_error)?;
            Ok((
                StatusCode::OK,
                json!({
                    "records": records,
                    "public_key": node.audit.public_key(),
                    "backlog": node.audit.backlog(),
                }),
            ))
        }
        (&Method::GET, ["v1", "audit", "checkpoint"]) => {
            need(node, caller, Action::AuditRead)?;
            let cp = node.audit.checkpoint_now().await.map_err(internal)?;
            Ok((
                StatusCode::OK,
                json!({
                    "checkpoint": cp.map(|c| c.to_line()),
                    "public_key": node.audit.public_key(),
                }),
            ))
        }
        (&Method::GET, ["v1", "iam", "review"]) => {
            need(node, caller, Action::IamReview)?;
            node.usage.flush(&node.store).await.map_err(internal)?;
            let since_ms = match query.get("since_ms") {
                Some(v) => v.parse::<i64>().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "`since_ms` must be an integer",
                    )
                })?,
                None => 0,
            };
            let only = query.get("function").map(String::as_str);
            let used = node
                .store
                .usage(only, since_ms)
                .await
                .map_err(store_error)?;
            let mut reviews = Vec::new();
            for v in node.store.active_versions().await.map_err(store_error)? {
                if only.is_some_and(|f| f != v.function) {
                    continue;
                }
                let spec: FunctionSpec = serde_json::from_str(&v.spec_json).map_err(internal)?;
                reviews.push(crate::usage::review(&spec, &used));
            }
            if let Some(f) = only
                && reviews.is_empty()
            {
                return Err(not_found(f));
            }
            Ok((
                StatusCode::OK,
                json!({ "since_ms": since_ms, "functions": reviews }),
            ))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no admin endpoint {method} {path}"),
        )),
    }
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

    #[test]
    fn query_decoding() {
        let q = parse_query("request_id=a%20b&x=%zz&y=1+2&bad=%e2%82");
        assert_eq!(q["request_id"], "a b");
        assert_eq!(q["x"], "%zz");
        assert_eq!(q["y"], "1 2");
        assert_eq!(q["bad"], "\u{fffd}");
    }
}
