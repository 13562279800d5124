//! Admin endpoints for components and functions: upload, deploy, show, delete, rollback, logs.

use super::*;

/// A deploy request carries the spec, a signature and possibly an SBOM of thousands of
/// packages.
const MAX_DEPLOY_REQUEST_BYTES: usize = 16 << 20;

pub(super) async fn route(
    node: &Arc<Node>,
    caller: &TokenRecord,
    req: Request<Incoming>,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
) -> ApiResult {
    match (method, segments) {
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
                /// A minisign signature of the component.
                #[serde(default)]
                signature: Option<String>,
                /// Dependencies the client read from an SBOM file or lockfiles.
                #[serde(default)]
                sbom: Option<crate::supply::ClientSbom>,
            }
            let body = read_body(req, MAX_DEPLOY_REQUEST_BYTES).await?;
            let request: DeployRequest = serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_manifest",
                    format!("invalid deploy request: {e}"),
                )
            })?;
            let bytes = node
                .store
                .get_blob(&request.component)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    ApiError::from(DeployError::Component(format!(
                        "component `{}` has not been uploaded",
                        request.component
                    )))
                })?;
            let checked = node
                .supply
                .check(
                    &request.spec.name,
                    &bytes,
                    request.signature.as_deref(),
                    request.sbom,
                )
                .await?;
            drop(bytes);
            let signer = checked.record.signer.clone();
            let record = node
                .functions
                .deploy(request.spec, &request.component, Some(checked.record))
                .await?;
            tracing::info!(function = %record.function, version = record.version, signer = ?signer, findings = checked.findings.len(), "deployed");
            let mut v = version_json(&record);
            v["signer"] = json!(signer);
            v["findings"] = json!(checked.findings);
            v["ignored_findings"] = json!(checked.ignored);
            Ok((StatusCode::CREATED, v))
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
            let f = function_record(node, name).await?;
            let versions = node.store.versions(name).await.map_err(store_error)?;
            let active = versions.iter().find(|v| v.version == f.active_version);
            let spec: Value = active
                .and_then(|v| serde_json::from_str(&v.spec_json).ok())
                .unwrap_or(Value::Null);
            let mut shown = json!({
                "function": f,
                "spec": spec,
                "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
            });
            // What the component is made of is for readers of functions, not invokers.
            if let Some(v) = active
                && node
                    .policies
                    .token_may(caller, Action::FunctionRead.as_str(), None)
            {
                let supply = node
                    .store
                    .version_supply(name, v.version)
                    .await
                    .map_err(store_error)?;
                shown["supply"] = supply_json(supply.as_ref());
                let blob = node
                    .store
                    .get_blob(&v.component_digest)
                    .await
                    .map_err(store_error)?;
                shown["component"] = blob
                    .and_then(|b| moat_supply::inspect_component(&b).ok())
                    .map(|info| json!(info))
                    .unwrap_or(Value::Null);
            }
            Ok((StatusCode::OK, shown))
        }
        (&Method::GET, ["v1", "functions", name, "sbom"]) => {
            need(node, caller, Action::FunctionRead)?;
            let f = function_record(node, name).await?;
            let version = query_int(query, "version")?.unwrap_or(f.active_version);
            let supply = node
                .store
                .version_supply(name, version)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("no bill of materials for `{name}` version {version}"),
                    )
                })?;
            let sbom: moat_supply::Sbom =
                serde_json::from_str(&supply.sbom_json).map_err(internal)?;
            Ok((StatusCode::OK, sbom.to_cyclonedx_json()))
        }
        (&Method::DELETE, ["v1", "functions", name]) => {
            need(node, caller, Action::FunctionDelete)?;
            if node.functions.delete(name).await? {
                node.log_feed.function_deleted(name);
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
            // A rollback may not bring back what today's settings would refuse to deploy.
            let target = node.functions.rollback_target(name, r.to).await?;
            node.supply.check_stored(name, target.version).await?;
            let record = node.functions.rollback(name, Some(target.version)).await?;
            tracing::info!(function = %name, version = record.version, "rolled back");
            Ok((StatusCode::OK, version_json(&record)))
        }
        (&Method::GET, ["v1", "functions", name, "logs"]) => {
            // `?follow=true` is a stream, served by `follow_logs`.
            need(node, caller, Action::LogsRead)?;
            let (filter, limit) = log_filter(name, query)?;
            let logs = node
                .store
                .logs(filter.query(None, limit))
                .await
                .map_err(store_error)?;
            Ok((StatusCode::OK, json!({ "logs": logs })))
        }
        _ => Err(no_endpoint(method, segments)),
    }
}

/// The filters of a logs read (`request_id`, `since_ms`) and how many stored records to
/// give (`limit`, the newest).
fn log_filter(
    name: &str,
    query: &HashMap<String, String>,
) -> Result<(follow::Filter, u32), ApiError> {
    let limit = query_int(query, "limit")?.unwrap_or(1000).clamp(1, 10_000) as u32;
    if query
        .get("follow")
        .is_some_and(|v| v != "true" && v != "false")
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "`follow` must be `true` or `false`",
        ));
    }
    let filter = follow::Filter {
        function: name.to_string(),
        request_id: query.get("request_id").cloned(),
        since_ms: query_int(query, "since_ms")?,
    };
    Ok((filter, limit))
}

/// The function named by `GET /v1/functions/NAME/logs?follow=true`, if this is one.
pub(super) fn followed<'a>(method: &Method, path: &'a str, query: Option<&str>) -> Option<&'a str> {
    if *method != Method::GET {
        return None;
    }
    let name = path
        .strip_prefix("/v1/functions/")?
        .strip_suffix("/logs")
        .filter(|name| !name.contains('/'))?;
    let follow = parse_query(query?)
        .get("follow")
        .is_some_and(|v| v == "true");
    follow.then_some(name)
}

/// `GET /v1/functions/NAME/logs?follow=true`: the stored records that match, then each new
/// one as it is stored, as newline-delimited JSON (see `crate::follow`). Same right and
/// filters as a plain read; the stream ends when the token may no longer read logs.
pub(super) async fn follow_logs(
    node: &Arc<Node>,
    caller: &TokenRecord,
    req: &Request<Incoming>,
    name: &str,
) -> Result<GatewayBody, ApiError> {
    need(node, caller, Action::LogsRead)?;
    let query = parse_query(req.uri().query().unwrap_or(""));
    let (filter, limit) = log_filter(name, &query)?;
    let permit = node.log_feed.admit().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many log streams are open",
        )
    })?;
    // Subscribed before the backlog is read, so no record falls between the two.
    let subscription = node.log_feed.subscribe(name);
    function_record(node, name).await?;
    let backlog = node
        .store
        .logs(filter.query(None, limit))
        .await
        .map_err(store_error)?;
    let token = zeroize::Zeroizing::new(bearer_token(req).unwrap_or_default().to_string());
    let watcher = Arc::clone(node);
    let still_allowed = move || {
        watcher.tokens.check(&token).is_some_and(|t| {
            watcher
                .policies
                .token_may(&t, Action::LogsRead.as_str(), None)
        })
    };
    Ok(follow::open(follow::Follow {
        store: Arc::clone(&node.store),
        subscription,
        filter,
        backlog,
        permit,
        still_allowed: Box::new(still_allowed),
        stopping: node.events.stopping(),
    }))
}

/// A version's supply-chain record as `functions show` prints it.
fn supply_json(s: Option<&moat_store::SupplyRecord>) -> Value {
    let Some(s) = s else {
        return Value::Null;
    };
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let sbom = parse(&s.sbom_json);
    let packages = sbom["components"].as_array().map_or(0, Vec::len);
    json!({
        "signer": s.signer,
        "sbom_source": parse(&s.sbom_source),
        "packages": packages,
        "findings": parse(&s.findings_json),
    })
}

async fn function_record(node: &Node, name: &str) -> Result<moat_store::FunctionRecord, ApiError> {
    node.store
        .get_function(name)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(name))
}
