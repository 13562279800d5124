//! The dashboard's pages, rendered on the server: overview (functions, live invocations and
//! errors, security events, audit and alert summaries), one function, the audit log, alerts,
//! and the login form. Each section is shown only if the caller's role may read it through
//! the API; every value from a function, manifest or audit record goes through [`esc`].

use std::fmt::Write;

use moat_manifest::FunctionSpec;
use moat_store::{FunctionRecord, LogQuery, VersionRecord};
use moat_telemetry::audit::ChainedRecord;
use serde_json::Value;

use super::html::{Frame, csrf_field, esc, head, row, table, time};
use super::*;

/// A page for `GET /ui/…` by a signed-in caller.
pub(super) async fn get(
    node: &Arc<Node>,
    caller: &Caller,
    path: &str,
    query: Option<&str>,
) -> Reply {
    let query: HashMap<String, String> = query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (form_decode(k), form_decode(v)))
        .collect();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (title, body) = match segments.as_slice() {
        ["ui", ""] => ("Overview", overview(node, caller).await),
        ["ui", "functions", name] => (*name, function(node, caller, name).await),
        ["ui", "audit"] => ("Audit log", audit(node, caller, &query).await),
        ["ui", "alerts"] => ("Alerts", alerts(node, caller, &query).await),
        _ => {
            return Reply::html(
                StatusCode::NOT_FOUND,
                message("Not found", "There is no such dashboard page."),
            );
        }
    };
    let who = caller.who();
    let frame = Frame {
        title,
        who: &who,
        csrf: caller.csrf(),
    };
    match body {
        Ok(body) => Reply::html(StatusCode::OK, frame.wrap(&body)),
        Err(e) => Reply::html(
            StatusCode::SERVICE_UNAVAILABLE,
            frame.wrap(&format!(
                "<p class=\"error\">The store could not be read: {}</p>",
                esc(&e.to_string())
            )),
        ),
    }
}

type Page = Result<String, moat_store::StoreError>;

fn not_allowed(what: &str, caller: &Caller) -> String {
    format!(
        "<p class=\"muted\">Your role (<code>{}</code>) may not see {}.</p>",
        esc(&caller.token.role),
        esc(what)
    )
}

/// A function's grants from its serving spec.
fn grants(spec: Option<&FunctionSpec>) -> String {
    let Some(spec) = spec else {
        return String::new();
    };
    let p = &spec.permissions;
    let mut parts = Vec::new();
    for (kind, list) in [
        ("outbound", &p.outbound_hosts),
        ("kv", &p.kv),
        ("secrets", &p.secrets),
    ] {
        if !list.is_empty() {
            parts.push(format!("{kind}: {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("; ")
    }
}

fn spec_of(v: Option<&VersionRecord>) -> Option<FunctionSpec> {
    v.and_then(|v| serde_json::from_str(&v.spec_json).ok())
}

async fn functions_table(node: &Arc<Node>, caller: &Caller) -> Page {
    let list: Vec<FunctionRecord> = node.store.list_functions().await?;
    let may_roll = caller.may(node, Action::FunctionRollback);
    let mut rows = Vec::new();
    for f in &list {
        let versions = node.store.versions(&f.name).await?;
        let spec = spec_of(versions.iter().find(|v| v.version == f.active_version));
        let auth = spec.as_ref().map_or("", |s| match s.auth {
            moat_manifest::Auth::Public => "public",
            moat_manifest::Auth::Token => "token",
        });
        let mut r = format!(
            "<tr data-function=\"{n}\"><td><a href=\"/ui/functions/{n}\">{n}</a></td><td>{route}</td>\
             <td>{auth}</td><td>{active} of {count}</td><td>{grants}</td><td>",
            n = esc(&f.name),
            route = esc(&f.route),
            active = f.active_version,
            count = versions.len(),
            grants = esc(&grants(spec.as_ref())),
        );
        let previous = versions
            .iter()
            .map(|v| v.version)
            .filter(|v| *v < f.active_version)
            .max();
        if let (true, Some(prev)) = (may_roll, previous) {
            r.push_str(&rollback_form(caller, &f.name, prev));
        }
        r.push_str("</td></tr>");
        rows.push(r);
    }
    Ok(table(
        "functions",
        &["Function", "Route", "Auth", "Serving", "Grants", ""],
        &rows,
        "No functions deployed.",
    ))
}

fn rollback_form(caller: &Caller, name: &str, to: i64) -> String {
    format!(
        "<form method=\"post\" action=\"/ui/functions/{n}/rollback\" class=\"inline\">{csrf}\
         <input type=\"hidden\" name=\"to\" value=\"{to}\">\
         <button type=\"submit\">Roll back to {to}</button></form>",
        n = esc(name),
        csrf = csrf_field(caller.csrf()),
    )
}

fn security(r: &ChainedRecord) -> bool {
    matches!(
        r.event.outcome,
        Outcome::Denied | Outcome::Failed | Outcome::Detected
    )
}

fn audit_row(r: &ChainedRecord) -> String {
    let e = &r.event;
    let details = if e.details.is_null() {
        String::new()
    } else {
        e.details.to_string()
    };
    row(
        e.outcome.as_str(),
        &[
            &r.seq.to_string(),
            &time(e.at_ms),
            &e.actor,
            &e.action,
            &e.target,
            e.outcome.as_str(),
            e.function.as_deref().unwrap_or(""),
            e.source.as_deref().unwrap_or(""),
            e.request_id.as_deref().unwrap_or(""),
            &details,
        ],
    )
}

const AUDIT_HEADERS: [&str; 10] = [
    "Seq",
    "Time (UTC)",
    "Actor",
    "Action",
    "Target",
    "Outcome",
    "Function",
    "Source",
    "Request",
    "Details",
];

fn chain_status(s: &super::chain::Status) -> String {
    match &s.finding {
        None => format!(
            "<p class=\"ok\" id=\"chain-status\">Chain verified: {} records, intact from seq 1 \
             (checked {}). Truncation or a recomputed chain shows only against an exported \
             checkpoint: <code>moat audit-log verify --checkpoint FILE</code>.</p>",
            s.records,
            time(s.checked_at_ms)
        ),
        Some(f) => format!(
            "<p class=\"error\" id=\"chain-status\">Chain verification FAILED after {} good \
             records: {} (checked {}).</p>",
            s.records,
            esc(f),
            time(s.checked_at_ms)
        ),
    }
}

async fn overview(node: &Arc<Node>, caller: &Caller) -> Page {
    let mut out = String::new();
    out.push_str("<section><h2>Functions</h2>");
    if caller.may(node, Action::FunctionRead) {
        out.push_str(&functions_table(node, caller).await?);
    } else {
        out.push_str(&not_allowed("functions", caller));
    }
    out.push_str("</section>");

    if !caller.may(node, Action::AuditRead) {
        out.push_str("<section><h2>Live</h2>");
        out.push_str(&not_allowed(
            "live events, security events or the audit log",
            caller,
        ));
        out.push_str("</section>");
        return Ok(out);
    }
    out.push_str(
        "<section id=\"live\" data-types=\"invocation,audit,deploy\"><h2>Live \
         <span id=\"live-status\" class=\"muted\">connecting…</span></h2>\
         <div class=\"cols\"><div><h3>Invocations</h3>",
    );
    out.push_str(
        &table(
            "live",
            &["Time", "Function", "Status", "ms", "Request"],
            &[],
            "Waiting for requests…",
        )
        .replace("<tbody>", "<tbody id=\"live-invocations\">"),
    );
    out.push_str("</div><div><h3>Errors</h3>");
    out.push_str(
        &table(
            "live",
            &["Time", "Function", "Status", "ms", "Request"],
            &[],
            "No errors since this page opened.",
        )
        .replace("<tbody>", "<tbody id=\"live-errors\">"),
    );
    out.push_str(
        "</div></div><h3>Deploys and rollbacks</h3><ul id=\"live-deploys\" class=\"feed\"><li class=\"muted empty\">None since this page opened.</li></ul></section>",
    );

    let status = node.dashboard.chain.status(&*node.store).await?;
    let recent = super::chain::newest(&*node.store, status.last_seq, 25, security).await?;
    out.push_str(
        "<section><h2>Security events</h2><p class=\"muted\">Denials, failures and \
                  detections, newest first; new ones appear as they happen.</p>",
    );
    let rows: Vec<String> = recent.iter().map(audit_row).collect();
    out.push_str(
        &table(
            "audit",
            &AUDIT_HEADERS,
            &rows,
            "No security events recorded.",
        )
        .replace("<tbody>", "<tbody id=\"security-events\">"),
    );
    out.push_str("</section><section><h2>Audit log</h2>");
    out.push_str(&chain_status(&status));
    out.push_str("<p><a href=\"/ui/audit\">Show the audit log</a></p></section>");

    let rules = crate::alerts::load_rules(&*node.store)
        .await
        .map(|r| r.len())
        .unwrap_or(0);
    let _ = write!(
        out,
        "<section><h2>Alerts</h2><p>{rules} rule(s). <a href=\"/ui/alerts\">Show alerts</a></p></section>"
    );
    Ok(out)
}

async fn function(node: &Arc<Node>, caller: &Caller, name: &str) -> Page {
    if !caller.may(node, Action::FunctionRead) {
        return Ok(not_allowed("functions", caller));
    }
    let Some(f) = node.store.get_function(name).await? else {
        return Ok(format!(
            "<p class=\"error\">No function <code>{}</code>.</p>",
            esc(name)
        ));
    };
    let versions = node.store.versions(name).await?;
    let spec = spec_of(versions.iter().find(|v| v.version == f.active_version));
    let mut out = format!(
        "<h2>{n}</h2><p>Route <code>{route}</code>, serving version {active} (latest {latest}).</p>",
        n = esc(&f.name),
        route = esc(&f.route),
        active = f.active_version,
        latest = f.latest_version,
    );
    if let Some(spec) = &spec {
        let l = &spec.limits;
        let limits = [
            ("memory_mb", l.memory_mb.map(|v| v.to_string())),
            ("timeout_ms", l.timeout_ms.map(|v| v.to_string())),
            ("max_concurrency", l.max_concurrency.map(|v| v.to_string())),
            ("rate_limit", l.rate_limit.clone()),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} = {v}")))
        .collect::<Vec<_>>()
        .join(", ");
        let config: Vec<&str> = spec.config.keys().map(String::as_str).collect();
        let _ = write!(
            out,
            "<h3>Grants</h3><ul><li>Outbound hosts: {}</li><li>Key-value buckets: {}</li>\
             <li>Secrets: {}</li><li>Config keys: {}</li></ul><p>Limits: {}</p>",
            esc(&list_or_none(&spec.permissions.outbound_hosts)),
            esc(&list_or_none(&spec.permissions.kv)),
            esc(&list_or_none(&spec.permissions.secrets)),
            esc(&list_or_none(&config)),
            esc(if limits.is_empty() {
                "node defaults"
            } else {
                &limits
            }),
        );
    }
    let may_roll = caller.may(node, Action::FunctionRollback);
    let rows: Vec<String> = versions
        .iter()
        .rev()
        .map(|v| {
            let serving = v.version == f.active_version;
            let action = if serving {
                "serving".to_string()
            } else if may_roll {
                rollback_form(caller, &f.name, v.version)
            } else {
                String::new()
            };
            format!(
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{action}</td></tr>",
                v.version,
                esc(&time(v.created_at_ms)),
                esc(&v.route),
                esc(v.component_digest.get(..16).unwrap_or(&v.component_digest)),
                class = if serving { "serving" } else { "" },
            )
        })
        .collect();
    out.push_str("<h3>Versions</h3>");
    out.push_str(&table(
        "versions",
        &["Version", "Deployed (UTC)", "Route", "Component", ""],
        &rows,
        "No versions.",
    ));
    out.push_str("<h3>Recent output</h3>");
    if caller.may(node, Action::LogsRead) {
        let logs = node
            .store
            .logs(LogQuery {
                function: name.to_string(),
                limit: 50,
                ..Default::default()
            })
            .await?;
        let rows: Vec<String> = logs
            .iter()
            .rev()
            .map(|l| &l.record)
            .map(|l| {
                row(
                    &l.stream,
                    &[&time(l.at_ms), &l.request_id, &l.stream, &l.text],
                )
            })
            .collect();
        out.push_str(&table(
            "logs",
            &["Time (UTC)", "Request", "Stream", "Text (redacted)"],
            &rows,
            "No output recorded.",
        ));
    } else {
        out.push_str(&not_allowed("logs", caller));
    }
    Ok(out)
}

fn list_or_none<S: AsRef<str>>(list: &[S]) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list.iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn audit(node: &Arc<Node>, caller: &Caller, query: &HashMap<String, String>) -> Page {
    if !caller.may(node, Action::AuditRead) {
        return Ok(not_allowed("the audit log", caller));
    }
    let status = node.dashboard.chain.status(&*node.store).await?;
    let action = query.get("action").filter(|a| !a.is_empty());
    let function = query.get("function").filter(|f| !f.is_empty());
    let only_security = query.get("security").is_some_and(|v| v == "1");
    let keep = |r: &ChainedRecord| {
        action.is_none_or(|a| match a.strip_suffix('*') {
            Some(prefix) => r.event.action.starts_with(prefix),
            None => r.event.action == *a,
        }) && function.is_none_or(|f| r.event.function.as_deref() == Some(f.as_str()))
            && (!only_security || security(r))
    };
    let records = super::chain::newest(&*node.store, status.last_seq, 200, keep).await?;
    let mut out = String::from("<h2>Audit log</h2>");
    out.push_str(&chain_status(&status));
    let _ = write!(
        out,
        "<form method=\"get\" action=\"/ui/audit\" class=\"filters\">\
         <label>Action <input name=\"action\" value=\"{}\" placeholder=\"kv:*\"></label> \
         <label>Function <input name=\"function\" value=\"{}\"></label> \
         <label><input type=\"checkbox\" name=\"security\" value=\"1\"{}> security events only</label> \
         <button type=\"submit\">Filter</button></form>",
        esc(action.map_or("", String::as_str)),
        esc(function.map_or("", String::as_str)),
        if only_security { " checked" } else { "" },
    );
    let rows: Vec<String> = records.iter().map(audit_row).collect();
    out.push_str(&table("audit", &AUDIT_HEADERS, &rows, "No records match."));
    out.push_str("<p class=\"muted\">The newest 200 matching records.</p>");
    Ok(out)
}

/// A webhook URL without its path and query, which may hold a credential.
fn webhook_origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(webhook)".into(),
    }
}

async fn alerts(node: &Arc<Node>, caller: &Caller, query: &HashMap<String, String>) -> Page {
    if !caller.may(node, Action::AuditRead) {
        return Ok(not_allowed("alerts", caller));
    }
    let rules = match crate::alerts::load_rules(&*node.store).await {
        Ok(r) => r,
        Err(e) => {
            return Ok(format!(
                "<p class=\"error\">Alert rules could not be read: {}</p>",
                esc(&e.to_string())
            ));
        }
    };
    let may_test = caller.may(node, Action::AlertsManage);
    let mut out = format!(
        "<h2>Alerts</h2><p>Fired {} time(s) since this node started; {} webhook delivery(ies) \
         failed after every retry. Rules are judged against every audit event.</p>",
        node.alerts.fired.load(std::sync::atomic::Ordering::Relaxed),
        node.alerts
            .delivery_failures
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    if let Some(sent) = query.get("sent") {
        let _ = write!(
            out,
            "<p class=\"ok\">A test firing of <code>{}</code> was sent to its sinks.</p>",
            esc(sent)
        );
    }
    let rows: Vec<String> = rules
        .iter()
        .map(|r| {
            let v = serde_json::to_value(r).unwrap_or(Value::Null);
            let text = |k: &str| match v.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let sinks = r
                .sinks
                .iter()
                .map(|s| match s {
                    moat_telemetry::alerts::Sink::Log {} => "log".to_string(),
                    moat_telemetry::alerts::Sink::Webhook { url, .. } => {
                        format!("webhook {}", webhook_origin(url))
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let test = if may_test {
                format!(
                    "<form method=\"post\" action=\"/ui/alerts/{n}/test\" class=\"inline\">{csrf}\
                     <button type=\"submit\">Send test</button></form>",
                    n = esc(&r.name),
                    csrf = csrf_field(caller.csrf()),
                )
            } else {
                String::new()
            };
            format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{test}</td></tr>",
                esc(&r.name),
                esc(&text("when")),
                esc(&text("group_by")),
                esc(&text("window")),
                esc(&text("threshold")),
                esc(&text("quiet")),
                esc(&sinks),
            )
        })
        .collect();
    out.push_str(&table(
        "alerts",
        &[
            "Rule",
            "When",
            "Group by",
            "Window",
            "Threshold",
            "Quiet",
            "Sinks",
            "",
        ],
        &rows,
        "No alert rules. Add some with `moat alerts add FILE.toml`.",
    ));
    Ok(out)
}

/// The login form, with a fresh pre-session CSRF token (also set as a cookie).
pub(super) fn login_form(d: &Dashboard, error: Option<&str>, status: StatusCode) -> Reply {
    let nonce = match session::random_hex() {
        Ok(n) => n,
        Err(_) => {
            return Reply::html(
                StatusCode::SERVICE_UNAVAILABLE,
                message("Try again", "No randomness was available."),
            );
        }
    };
    let mut body = head("Log in");
    let _ = writeln!(
        body,
        "<main class=\"login\"><h1>Moat</h1>{err}\
         <form method=\"post\" action=\"/ui/login\">{csrf}\
         <label>Admin API token <input type=\"password\" name=\"token\" autocomplete=\"off\" \
         autofocus required></label> <button type=\"submit\">Log in</button></form>\
         <p class=\"muted\">The token is exchanged for a session cookie; what you see follows \
         its role.</p></main></body></html>",
        err = error.map_or(String::new(), |e| format!(
            "<p class=\"error\" id=\"login-error\">{}</p>",
            esc(e)
        )),
        csrf = csrf_field(&nonce),
    );
    Reply::html(status, body).with_cookie(set_cookie(d, session::LOGIN_COOKIE, &nonce, "/ui/login"))
}

/// A 403 page for a refused state-changing request; nothing was changed.
pub(super) fn refused(why: &str) -> Reply {
    Reply::html(
        StatusCode::FORBIDDEN,
        message("Refused", &format!("Nothing was changed: {why}.")),
    )
}

/// A small standalone page with a heading and a sentence.
pub(super) fn message(title: &str, text: &str) -> String {
    format!(
        "{}<main><h1>{}</h1><p id=\"message\">{}</p><p><a href=\"/ui/\">Back to the dashboard</a></p></main></body></html>\n",
        head(title),
        esc(title),
        esc(text)
    )
}
