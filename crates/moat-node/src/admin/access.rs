//! Admin endpoints for who may do what: tokens, secrets, guardrail policies, the master key.

use super::*;

pub(super) async fn route(
    node: &Arc<Node>,
    caller: &TokenRecord,
    req: Request<Incoming>,
    method: &Method,
    segments: &[&str],
    _query: &HashMap<String, String>,
) -> ApiResult {
    match (method, segments) {
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
            let grants: Vec<(String, moat_manifest::Permissions)> = active
                .iter()
                .filter_map(|v| {
                    let spec: FunctionSpec = serde_json::from_str(&v.spec_json).ok()?;
                    Some((v.function.clone(), spec.permissions))
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
                        .filter(|(_, p)| p.secrets.contains(&m.name))
                        .map(|(f, _)| f.as_str())
                        .collect();
                    // Each kept version, and the serving functions pinned to it (the
                    // others read the current version).
                    let versions: Vec<Value> = m
                        .versions
                        .iter()
                        .map(|v| {
                            let pinned: Vec<&str> = grants
                                .iter()
                                .filter(|(_, p)| p.secret_version(&m.name) == Some(v.version))
                                .map(|(f, _)| f.as_str())
                                .collect();
                            json!({
                                "version": v.version, "created_at_ms": v.created_at_ms,
                                "current": v.version == m.version, "pinned_by": pinned,
                            })
                        })
                        .collect();
                    let last_read_ms = reads
                        .iter()
                        .filter(|u| u.action == "secret:read" && u.resource == m.name)
                        .map(|u| u.last_seen_ms)
                        .max();
                    json!({
                        "name": m.name, "version": m.version, "updated_at_ms": m.updated_at_ms,
                        "versions": versions, "readers": readers, "last_read_ms": last_read_ms,
                    })
                })
                .collect();
            Ok((StatusCode::OK, json!({ "secrets": list })))
        }
        (&Method::DELETE, ["v1", "secrets", name, rest @ ..])
            if matches!(rest, [] | ["versions", _]) =>
        {
            need(node, caller, Action::SecretsManage)?;
            // `/versions/N`: one old version (a path, so the audit record names it);
            // otherwise the secret and every version. Refused (409) while a serving function
            // pins what would go.
            let version = match rest {
                ["versions", n] => {
                    Some(n.parse::<i64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "bad_request",
                            format!("a secret version is a whole number from 1, not `{n}`"),
                        )
                    })?)
                }
                _ => None,
            };
            if !crate::secrets::delete(&node.functions, &node.store, name, version).await? {
                let what = match version {
                    Some(v) => format!("version {v} of secret `{name}`"),
                    None => format!("secret `{name}`"),
                };
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("{what} not found"),
                ));
            }
            node.vault.reload(&node.store).await.map_err(internal)?;
            // Each function's DLP scanner looks for the values it may read: rebuild them.
            node.functions.invalidate_routes();
            node.functions.refresh_routes().await?;
            tracing::info!(secret = %name, ?version, by = %caller.id, "secret deleted");
            Ok((
                StatusCode::OK,
                match version {
                    Some(v) => json!({ "deleted": name, "version": v }),
                    None => json!({ "deleted": name }),
                },
            ))
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
        _ => Err(no_endpoint(method, segments)),
    }
}
