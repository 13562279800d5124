//! The dashboard's state-changing requests: log in, log out, roll a function back, send a
//! test alert. Each is checked in the same order: same origin, then the CSRF token (for
//! login, the pre-session token), then who is asking and whether their role may.

use super::*;

/// `POST /ui/login`: an API token, exchanged for a session cookie.
pub(super) async fn login(
    node: &Arc<Node>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    rid: &str,
) -> Reply {
    const PATH: &str = "/ui/login";
    if let Err(why) = same_origin(&node.dashboard, &req) {
        record_refusal(node, "anonymous", "dashboard.refused", PATH, peer, rid, 403);
        return pages::refused(why);
    }
    let pre_session = cookie(req.headers(), session::LOGIN_COOKIE).map(str::to_string);
    let previous = cookie(req.headers(), session::COOKIE).map(str::to_string);
    let Some(form) = read_form(req).await else {
        return pages::login_form(
            &node.dashboard,
            Some("The form could not be read."),
            StatusCode::BAD_REQUEST,
        );
    };
    let submitted = form.get("csrf").map(String::as_str);
    if !pre_session.is_some_and(|expected| session::csrf_matches(&expected, submitted)) {
        record_refusal(node, "anonymous", "dashboard.refused", PATH, peer, rid, 403);
        return pages::refused("the login form's CSRF token is missing or does not match");
    }
    let token = form.get("token").map(|t| t.trim()).unwrap_or("");
    let Some(record) = node.tokens.check(token) else {
        record_refusal(node, "anonymous", "auth.failed", PATH, peer, rid, 401);
        return pages::login_form(
            &node.dashboard,
            Some("That token is not valid (unknown, revoked or expired)."),
            StatusCode::UNAUTHORIZED,
        );
    };
    // A login replaces the browser's session, if it had one: never two at once.
    if let Some(old) = previous {
        node.dashboard.sessions.close(&old);
    }
    let id = match node.dashboard.sessions.open(token, Instant::now()) {
        Ok(id) => id,
        Err(_) => {
            return Reply::html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message("Try again", "No randomness was available for a session."),
            );
        }
    };
    node.audit.record(
        AuditEvent::new(
            now_ms(),
            moat_telemetry::audit::actor::token(&record.id),
            "dashboard.login",
            PATH,
            Outcome::Succeeded,
        )
        .with_source(peer.ip().to_string())
        .with_request_id(rid),
    );
    let d = &node.dashboard;
    Reply::redirect("/ui/")
        .with_cookie(set_cookie(d, session::COOKIE, &id, "/"))
        .with_cookie(set_cookie(d, session::LOGIN_COOKIE, "", "/ui/login"))
}

/// Every other `POST /ui/…`: same origin, a session, its CSRF token, then the action.
pub(super) async fn post(
    node: &Arc<Node>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    rid: &str,
    path: &str,
) -> Reply {
    let caller = signed_in(node, req.headers());
    let actor = caller.as_ref().map_or("anonymous".to_string(), |c| {
        moat_telemetry::audit::actor::token(&c.token.id)
    });
    if let Err(why) = same_origin(&node.dashboard, &req) {
        record_refusal(node, &actor, "dashboard.refused", path, peer, rid, 403);
        return pages::refused(why);
    }
    let Some(caller) = caller else {
        record_refusal(node, "anonymous", "auth.failed", path, peer, rid, 401);
        return Reply::html(
            StatusCode::UNAUTHORIZED,
            pages::message(
                "Signed out",
                "Your session has ended. Log in again at /ui/login.",
            ),
        );
    };
    let Some(form) = read_form(req).await else {
        return Reply::html(
            StatusCode::BAD_REQUEST,
            pages::message("Bad request", "The form could not be read."),
        );
    };
    if !session::csrf_matches(caller.csrf(), form.get("csrf").map(String::as_str)) {
        record_refusal(node, &actor, "dashboard.refused", path, peer, rid, 403);
        return pages::refused("the form's CSRF token is missing or does not match");
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match segments.as_slice() {
        ["ui", "logout"] => {
            if let Some((id, _)) = &caller.session {
                node.dashboard.sessions.close(id);
            }
            record(
                node,
                &actor,
                "dashboard.logout",
                path,
                peer,
                rid,
                Outcome::Succeeded,
                303,
            );
            return Reply::redirect("/ui/login").with_cookie(set_cookie(
                &node.dashboard,
                session::COOKIE,
                "",
                "/",
            ));
        }
        ["ui", "functions", name, "rollback"] => {
            rollback(node, &caller, name, form.get("to")).await
        }
        ["ui", "alerts", name, "test"] => {
            if caller.may(node, Action::AlertsManage) {
                node.alerts
                    .test(name)
                    .map(|()| format!("/ui/alerts?sent={name}"))
                    .map_err(|e| (StatusCode::NOT_FOUND, e))
            } else {
                Err((
                    StatusCode::FORBIDDEN,
                    forbidden(&caller, Action::AlertsManage),
                ))
            }
        }
        _ => {
            return Reply::html(
                StatusCode::NOT_FOUND,
                pages::message("Not found", "There is no such dashboard action."),
            );
        }
    };
    match result {
        Ok(to) => {
            record(
                node,
                &actor,
                "admin.post",
                path,
                peer,
                rid,
                Outcome::Succeeded,
                303,
            );
            Reply::redirect(&to)
        }
        Err((status, why)) => {
            let outcome = if status == StatusCode::FORBIDDEN {
                Outcome::Denied
            } else {
                Outcome::Failed
            };
            record(
                node,
                &actor,
                "admin.post",
                path,
                peer,
                rid,
                outcome,
                status.as_u16(),
            );
            Reply::html(status, pages::message("Not done", &why))
        }
    }
}

fn forbidden(caller: &Caller, action: Action) -> String {
    format!("role `{}` may not do this ({action:?})", caller.token.role)
}

async fn rollback(
    node: &Arc<Node>,
    caller: &Caller,
    name: &str,
    to: Option<&String>,
) -> Result<String, (StatusCode, String)> {
    if !caller.may(node, Action::FunctionRollback) {
        return Err((
            StatusCode::FORBIDDEN,
            forbidden(caller, Action::FunctionRollback),
        ));
    }
    let to = match to.map(|t| t.trim()).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("`to` must be a version number, found `{t}`"),
            )
        })?),
    };
    let record = node.functions.rollback(name, to).await.map_err(|e| {
        let status = match e {
            crate::functions::DeployError::NotFound(_) => StatusCode::NOT_FOUND,
            crate::functions::DeployError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, e.to_string())
    })?;
    tracing::info!(function = %name, version = record.version, "rolled back from the dashboard");
    node.events.deploy("rollback", name, Some(record.version));
    Ok(format!("/ui/functions/{name}"))
}

#[expect(clippy::too_many_arguments, reason = "one audit record's fields")]
fn record(
    node: &Node,
    actor: &str,
    action: &str,
    path: &str,
    peer: std::net::SocketAddr,
    rid: &str,
    outcome: Outcome,
    status: u16,
) {
    node.audit.record(
        AuditEvent::new(now_ms(), actor, action, path, outcome)
            .with_source(peer.ip().to_string())
            .with_request_id(rid)
            .with_details(json!({ "status": status })),
    );
}
