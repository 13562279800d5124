//! Admin endpoints for the supply chain and node settings: trusted signing keys,
//! `require_signature` / `block_severity`, advisory imports (with a re-scan of every
//! deployed version) and advisory exceptions.

use super::*;
use crate::supply::{SETTINGS, check_setting};
use moat_store::{AdvisoryIgnore, AdvisoryRow, TrustedKey};

/// Largest advisory import body: an OSV export for crates.io, npm and PyPI together is
/// far below this as compact JSON lines.
const MAX_IMPORT_BYTES: usize = 1 << 30;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid {what}: {e}")))
}

pub(super) async fn route(
    node: &Arc<Node>,
    caller: &TokenRecord,
    req: Request<Incoming>,
    method: &Method,
    segments: &[&str],
    _query: &HashMap<String, String>,
) -> ApiResult {
    match (method, segments) {
        (&Method::GET, ["v1", "trust"]) => {
            need(node, caller, Action::AuditRead)?;
            let keys = node.store.trusted_keys().await.map_err(store_error)?;
            Ok((StatusCode::OK, json!({ "keys": keys })))
        }
        (&Method::POST, ["v1", "trust"]) => {
            need(node, caller, Action::SupplyManage)?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewKey {
                name: String,
                public_key: String,
            }
            let body = read_body(req, defaults::MAX_ADMIN_JSON_BYTES).await?;
            let k: NewKey = json_body(&body, "trusted key")?;
            check_name("trusted key", &k.name, 63)?;
            let key_id = moat_supply::public_key_id(
                &k.name,
                &moat_supply::PublicKeyText(k.public_key.clone()),
            )
            .map_err(|e| bad_request(e.to_string()))?;
            if let Some(same) = node
                .store
                .trusted_keys()
                .await
                .map_err(store_error)?
                .into_iter()
                .find(|t| t.key_id == key_id)
            {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("key `{key_id}` is already trusted as `{}`", same.name),
                ));
            }
            let key = TrustedKey {
                name: k.name,
                key_id,
                public_key: k.public_key,
                added_at_ms: moat_store::now_ms(),
            };
            match node.store.put_trusted_key(key.clone()).await {
                Ok(()) => {
                    tracing::info!(key = %key.name, id = %key.key_id, by = %caller.id, "signing key trusted");
                    Ok((StatusCode::CREATED, json!(key)))
                }
                Err(moat_store::StoreError::AlreadyExists(what)) => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("{what} already exists"),
                )),
                Err(e) => Err(store_error(e)),
            }
        }
        (&Method::DELETE, ["v1", "trust", name]) => {
            need(node, caller, Action::SupplyManage)?;
            if node
                .store
                .delete_trusted_key(name)
                .await
                .map_err(store_error)?
            {
                Ok((StatusCode::OK, json!({ "deleted": name })))
            } else {
                Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("trusted key `{name}` not found"),
                ))
            }
        }
        (&Method::GET, ["v1", "settings"]) => {
            need(node, caller, Action::AuditRead)?;
            let stored = node.store.settings().await.map_err(store_error)?;
            let list: Vec<Value> = SETTINGS
                .iter()
                .map(|(key, help)| {
                    let value = stored.iter().find(|(k, _)| k == key).map(|(_, v)| v);
                    json!({ "key": key, "value": value, "accepts": help })
                })
                .collect();
            Ok((StatusCode::OK, json!({ "settings": list })))
        }
        (&Method::PUT, ["v1", "settings", key]) => {
            need(node, caller, Action::SettingsManage)?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewValue {
                value: String,
            }
            let body = read_body(req, defaults::MAX_ADMIN_JSON_BYTES).await?;
            let v: NewValue = json_body(&body, "setting")?;
            let value = check_setting(key, &v.value).map_err(bad_request)?;
            node.store
                .put_setting(key, Some(value.clone()))
                .await
                .map_err(store_error)?;
            tracing::info!(setting = %key, %value, by = %caller.id, "node setting changed");
            record_setting(node, caller, key, Some(&value));
            Ok((StatusCode::OK, json!({ "key": key, "value": value })))
        }
        (&Method::DELETE, ["v1", "settings", key]) => {
            need(node, caller, Action::SettingsManage)?;
            if !SETTINGS.iter().any(|(k, _)| k == key) {
                return Err(bad_request(format!("unknown setting `{key}`")));
            }
            node.store
                .put_setting(key, None)
                .await
                .map_err(store_error)?;
            record_setting(node, caller, key, None);
            Ok((StatusCode::OK, json!({ "key": key, "value": Value::Null })))
        }
        (&Method::GET, ["v1", "advisories"]) => {
            need(node, caller, Action::AuditRead)?;
            let ignores = node.store.advisory_ignores().await.map_err(store_error)?;
            Ok((
                StatusCode::OK,
                json!({ "advisories": node.supply.advisory_count(), "ignores": ignores }),
            ))
        }
        (&Method::POST, ["v1", "advisories"]) => {
            need(node, caller, Action::SupplyManage)?;
            // OSV records as JSON lines (what `moat advisories import` sends).
            let body = read_body(req, MAX_IMPORT_BYTES).await?;
            let mut rows = Vec::new();
            for (n, line) in body.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                rows.push(
                    advisory_row(line).map_err(|e| {
                        bad_request(format!("line {}: not an OSV record: {e}", n + 1))
                    })?,
                );
            }
            let (counts, new) = node.supply.import(rows).await.map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    e.to_string(),
                )
            })?;
            tracing::info!(added = counts.added, updated = counts.updated, new_findings = new.len(), by = %caller.id, "advisories imported");
            Ok((
                StatusCode::OK,
                json!({
                    "imported": counts,
                    "advisories": node.supply.advisory_count(),
                    "new_findings": new,
                }),
            ))
        }
        (&Method::PUT, ["v1", "advisories", "ignores", id]) => {
            need(node, caller, Action::SupplyManage)?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewIgnore {
                reason: String,
                until_ms: i64,
            }
            let body = read_body(req, defaults::MAX_ADMIN_JSON_BYTES).await?;
            let i: NewIgnore = json_body(&body, "advisory exception")?;
            let valid_id = !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
            if !valid_id {
                return Err(bad_request(format!("`{id}` is not an advisory id")));
            }
            if i.reason.trim().is_empty() {
                return Err(bad_request("an exception needs a reason"));
            }
            if i.until_ms <= moat_store::now_ms() {
                return Err(bad_request("an exception's `until` must be in the future"));
            }
            let ignore = AdvisoryIgnore {
                id: id.to_string(),
                reason: i.reason,
                until_ms: i.until_ms,
                created_by: caller.id.clone(),
                created_at_ms: moat_store::now_ms(),
            };
            node.store
                .put_advisory_ignore(ignore.clone())
                .await
                .map_err(store_error)?;
            tracing::info!(advisory = %id, until_ms = ignore.until_ms, by = %caller.id, "advisory exception added");
            Ok((StatusCode::OK, json!(ignore)))
        }
        (&Method::DELETE, ["v1", "advisories", "ignores", id]) => {
            need(node, caller, Action::SupplyManage)?;
            if node
                .store
                .delete_advisory_ignore(id)
                .await
                .map_err(store_error)?
            {
                Ok((StatusCode::OK, json!({ "deleted": id })))
            } else {
                Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no exception for `{id}`"),
                ))
            }
        }
        _ => Err(no_endpoint(method, segments)),
    }
}

/// A settings change, with its new value, in the audit chain (settings hold no secrets).
fn record_setting(node: &Node, caller: &TokenRecord, key: &str, value: Option<&str>) {
    use moat_telemetry::audit::{AuditEvent, Outcome, actor, now_ms};
    node.audit.record(
        AuditEvent::new(
            now_ms(),
            actor::token(&caller.id),
            "setting.changed",
            key,
            Outcome::Succeeded,
        )
        .with_details(json!({ "value": value })),
    );
}

/// One line of an import: an OSV record of a supported ecosystem.
fn advisory_row(line: &[u8]) -> Result<AdvisoryRow, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("no `id`")?
        .to_string();
    // The same parser the database uses: a record it cannot read is refused now, not
    // skipped at the next start.
    moat_supply::AdvisoryDb::from_records([std::str::from_utf8(line).map_err(|e| e.to_string())?])
        .map_err(|e| e.to_string())?;
    let modified = value
        .get("modified")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(AdvisoryRow {
        id,
        modified,
        json: value.to_string(),
    })
}
