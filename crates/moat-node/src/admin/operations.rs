//! Admin endpoints for running a node: alerts, key-value buckets, the audit log, IAM review.

use super::*;

pub(super) async fn route(
    node: &Arc<Node>,
    caller: &TokenRecord,
    req: Request<Incoming>,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
) -> ApiResult {
    match (method, segments) {
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
            let number = |key: &str| query_int(query, key);
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
        _ => Err(no_endpoint(method, segments)),
    }
}
