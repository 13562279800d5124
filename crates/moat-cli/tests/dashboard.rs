//! The live view: `GET /v1/events` (server-sent events) and the web dashboard, against a real
//! node. Each protection is attacked: the stream without a token or with the wrong role, the
//! login without its CSRF token, state-changing posts from another origin or without the
//! session's CSRF token, markup in values the pages show. The last test drives the
//! dashboard in headless Chromium (e2e/dashboard.mjs).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;
#[path = "common/web.rs"]
mod web;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Node, manifest, repo_root, wasm};
use web::{Stream, enc, field, login, origin, send};

fn create_token(node: &Node, role: &str, name: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(&node.moat_ok(&[
        "tokens", "create", "--role", role, "--name", name, "--output", "json",
    ]))
    .unwrap();
    (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

fn active_version(node: &Node, function: &str) -> i64 {
    let v: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["functions", "show", function, "--output", "json"]))
            .unwrap();
    v["function"]["active_version"].as_i64().unwrap()
}

/// How many `action` refusals at `target` the chain stands for, once it stands for
/// `expected` (see `audit_folded`).
fn counted(node: &Node, action: &str, target: &str, expected: u64) -> u64 {
    let (records, _) = node.audit_folded(None, action, expected);
    records
        .iter()
        .filter(|r| r["event"]["target"] == target)
        .map(|r| r["event"]["details"]["count"].as_u64().unwrap_or(1))
        .sum()
}

#[test]
fn the_event_stream_needs_a_token_or_session_that_may_read_the_audit_log() {
    let node = Node::start();
    let a = &node.admin;
    let refused = send(a, "GET", "/v1/events", &[], "");
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("\"unauthorized\""));
    assert_eq!(
        send(
            a,
            "GET",
            "/v1/events",
            &[("authorization", "Bearer moat_guessed")],
            ""
        )
        .status,
        401
    );
    assert_eq!(
        send(
            a,
            "GET",
            "/v1/events",
            &[("cookie", &format!("moat_session={}", "ab".repeat(32)))],
            ""
        )
        .status,
        401
    );
    // Three failed logins from one address within a second: the first recorded at once,
    // the other two folded into one record that counts them.
    assert_eq!(counted(&node, "auth.failed", "/v1/events", 3), 3);

    // Roles without `audit:read` are refused, by bearer and by session alike.
    let (deployer, _) = create_token(&node, "deployer", "ci");
    let bearer = format!("Bearer {deployer}");
    assert_eq!(
        send(a, "GET", "/v1/events", &[("authorization", &bearer)], "").status,
        403
    );
    let session = login(a, &deployer);
    assert_eq!(
        send(a, "GET", "/v1/events", &[("cookie", &session.cookie)], "").status,
        403
    );
    // An auditor may; an unknown event type is a 400.
    let (auditor, auditor_id) = create_token(&node, "auditor", "sec");
    let bearer = format!("Bearer {auditor}");
    let bad = send(
        a,
        "GET",
        "/v1/events?types=audit,secrets",
        &[("authorization", &bearer)],
        "",
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    let s = Stream::open(a, "", &[("authorization", &bearer)]);
    assert!(s.head.starts_with("HTTP/1.1 200"), "{}", s.head);
    let doc = node.admin_get("/v1/openapi.json", None).json();
    assert!(doc["paths"]["/v1/events"]["get"].is_object());
    assert!(
        s.head.contains("content-type: text/event-stream"),
        "{}",
        s.head
    );
    // A stream does not outlive its token.
    let mut s = s;
    assert!(
        !s.ends_within(Duration::from_secs(3)),
        "ended while allowed"
    );
    node.moat_ok(&["tokens", "revoke", &auditor_id]);
    assert!(
        s.ends_within(Duration::from_secs(10)),
        "the stream outlived its revoked token"
    );
}

#[test]
fn the_event_stream_carries_audit_events_invocations_and_deploys_without_tokens() {
    let node = Node::start();
    let token = node.token();
    let bearer = format!("Bearer {token}");
    let mut all = Stream::open(&node.admin, "", &[("authorization", &bearer)]);
    let mut only_invocations = Stream::open(
        &node.admin,
        "?types=invocation",
        &[("authorization", &bearer)],
    );

    node.moat_ok(&["kv", "create", "orders"]);
    let _dir = node.deploy_program("snoop", "tp_kv", "");
    all.wait("deploy", |v| {
        v["function"] == "snoop" && v["version"] == 1 && v["action"] == "deploy"
    });

    // A bucket the function was never granted: an audit event, then the invocation.
    let reply = node.get("/snoop?bucket=orders&op=get&key=a");
    assert_eq!(reply.body, "open error Error::AccessDenied");
    let rid = reply.header("x-request-id").unwrap().to_string();
    let denied = all.wait("audit", |v| v["action"] == "kv:read.denied");
    assert_eq!(denied["function"], "snoop");
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["target"], "bucket:orders");
    let call = all.wait("invocation", |v| v["request_id"] == rid.as_str());
    assert_eq!(call["function"], "snoop");
    assert_eq!(call["status"], 200);
    assert!(call["duration_ms"].as_f64().unwrap() > 0.0, "{call}");
    let missing = node.get("/nowhere");
    all.wait("invocation", |v| {
        v["status"] == 404 && v["function"].is_null()
    });
    assert_eq!(missing.status, 404);

    // The filtered stream saw the invocation but none of the audit events before it.
    only_invocations.wait("invocation", |v| v["request_id"] == rid.as_str());
    let filtered = only_invocations.drain(Duration::from_millis(300));
    assert!(!filtered.contains("event: audit"), "{filtered}");
    assert!(!filtered.contains("event: deploy"), "{filtered}");

    // A failed admin login is an audit event too; nothing streamed holds a token.
    let guess = "moat_guessed-token-value";
    common::request(
        "GET",
        &format!("{}/v1/functions", node.admin),
        None,
        &[("authorization".into(), format!("Bearer {guess}"))],
    );
    all.wait("audit", |v| v["action"] == "auth.failed");
    let text = all.drain(Duration::from_millis(300));
    assert!(!text.contains(&token), "the admin token was streamed");
    assert!(!text.contains(guess), "a presented token was streamed");
}

#[test]
fn the_event_stream_takes_the_session_cookie_until_logout() {
    let node = Node::start();
    let a = &node.admin;
    let session = login(a, &node.token());
    let mut s = Stream::open(a, "?types=invocation", &[("cookie", &session.cookie)]);
    assert!(s.head.starts_with("HTTP/1.1 200"), "{}", s.head);
    let _dir = node.deploy_program("logger", "tp_log", "");
    let rid = node
        .get("/logger")
        .header("x-request-id")
        .unwrap()
        .to_string();
    s.wait("invocation", |v| v["request_id"] == rid.as_str());

    let o = origin(a);
    let out = send(
        a,
        "POST",
        "/ui/logout",
        &[("cookie", &session.cookie), (o.0, &o.1)],
        &format!("csrf={}", session.csrf),
    );
    assert_eq!(out.status, 303);
    assert_eq!(out.header("location"), Some("/ui/login"));
    assert!(out.cookie("moat_session").unwrap().contains("Max-Age=0"));
    assert_eq!(
        send(a, "GET", "/v1/events", &[("cookie", &session.cookie)], "").status,
        401
    );
    assert_eq!(
        send(a, "GET", "/ui/", &[("cookie", &session.cookie)], "").header("location"),
        Some("/ui/login")
    );
    // The stream opened with the session ends with it.
    assert!(
        s.ends_within(Duration::from_secs(10)),
        "the stream outlived its session"
    );

    // An open stream does not hold up a stopping node: it ends, and the node drains at once.
    let bearer = format!("Bearer {}", node.token());
    let mut open = Stream::open(a, "", &[("authorization", &bearer)]);
    let started = Instant::now();
    assert!(node.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    open.drain(Duration::from_millis(100));
}

#[test]
fn login_gives_a_strict_http_only_session_cookie_and_needs_its_csrf_token() {
    let node = Node::start();
    let a = &node.admin;
    let token = node.token();
    let first = send(a, "GET", "/", &[], "");
    assert_eq!(
        (first.status, first.header("location")),
        (303, Some("/ui/"))
    );
    let ui = send(a, "GET", "/ui/", &[], "");
    assert_eq!((ui.status, ui.header("location")), (303, Some("/ui/login")));

    let form = send(a, "GET", "/ui/login", &[], "");
    let pre = form.cookie("moat_login_csrf").unwrap().to_string();
    assert!(
        pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );
    let pre = pre.split(';').next().unwrap().to_string();
    let csrf = field(&form.body, "csrf").unwrap();
    assert_eq!(pre, format!("moat_login_csrf={csrf}"));
    let body = format!("csrf={csrf}&token={}", enc(&token));
    let o = origin(a);
    let post = |headers: &[(&str, &str)], body: &str| send(a, "POST", "/ui/login", headers, body);

    // Login CSRF: each missing piece is refused, and no session is made.
    for (what, answer) in [
        ("no pre-session cookie", post(&[(o.0, &o.1)], &body)),
        (
            "another form's token",
            post(
                &[("cookie", &pre), (o.0, &o.1)],
                &format!("csrf={}&token={}", "0".repeat(64), enc(&token)),
            ),
        ),
        (
            "no token field",
            post(
                &[("cookie", &pre), (o.0, &o.1)],
                &format!("token={}", enc(&token)),
            ),
        ),
        (
            "a cross-site origin",
            post(
                &[("cookie", &pre), ("origin", "http://evil.example")],
                &body,
            ),
        ),
        (
            "a same-site, cross-origin request",
            post(
                &[
                    ("cookie", &pre),
                    (o.0, &o.1),
                    ("sec-fetch-site", "same-site"),
                ],
                &body,
            ),
        ),
        ("no origin at all", post(&[("cookie", &pre)], &body)),
    ] {
        assert_eq!(answer.status, 403, "{what}: {}", answer.body);
        assert!(answer.cookie("moat_session").is_none(), "{what}");
    }
    // Nobody is signed in yet: folded per address and second, every refusal counted.
    assert_eq!(counted(&node, "dashboard.refused", "/ui/login", 6), 6);

    // A wrong token is a failed login, audited like the API's.
    let wrong = post(
        &[("cookie", &pre), (o.0, &o.1)],
        &format!("csrf={csrf}&token=moat_wrong"),
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not valid"));
    assert!(wrong.cookie("moat_session").is_none());
    let failed = node.audit_records(None, "auth.failed", 1);
    assert!(
        failed.iter().any(|r| r["event"]["target"] == "/ui/login"),
        "{failed:?}"
    );

    // The right token: a random session id in a strict, HTTP-only cookie (not Secure on
    // plain HTTP); the token itself goes nowhere.
    let ok = post(
        &[
            ("cookie", &pre),
            (o.0, &o.1),
            ("sec-fetch-site", "same-origin"),
        ],
        &body,
    );
    assert_eq!((ok.status, ok.header("location")), (303, Some("/ui/")));
    let cookie = ok.cookie("moat_session").unwrap();
    let parts: Vec<&str> = cookie.split("; ").collect();
    let id = parts[0].strip_prefix("moat_session=").unwrap();
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(parts.contains(&flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(!ok.headers.iter().any(|(_, v)| v.contains(&token)));
    let page = send(a, "GET", "/ui/", &[("cookie", parts[0])], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("bootstrap-admin (admin)"));
    assert!(!page.body.contains(&token));
    assert_eq!(node.audit_records(None, "dashboard.login", 1).len(), 1);

    // A session ends with its token.
    let (other, id) = create_token(&node, "admin", "temp");
    let s = login(a, &other);
    node.moat_ok(&["tokens", "revoke", &id]);
    let after = send(a, "GET", "/ui/", &[("cookie", &s.cookie)], "");
    assert_eq!(after.header("location"), Some("/ui/login"));

    // Logging in again replaces the browser's session: the old id is dead.
    let both = format!("{pre}; {}", parts[0]);
    let again = post(&[("cookie", &both), (o.0, &o.1)], &body);
    assert_eq!(again.status, 303, "{}", again.body);
    let new = again
        .cookie("moat_session")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert_ne!(new, parts[0]);
    let old = send(a, "GET", "/ui/", &[("cookie", parts[0])], "");
    assert_eq!(old.header("location"), Some("/ui/login"));
    assert_eq!(send(a, "GET", "/ui/", &[("cookie", new)], "").status, 200);
}

#[test]
fn over_tls_the_session_cookie_is_secure() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_on(&tmp.path().join("data"), &["--tls-self-signed"]);
    let cert = node.data_dir.join("tls/cert.pem");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "-o", "/dev/null", "--cacert"])
            .arg(&cert)
            .args(args)
            .output()
            .expect("curl is installed (apt-get install -y curl)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let jar = tmp.path().join("jar");
    let form_head = curl(&[
        "-c",
        jar.to_str().unwrap(),
        &format!("{}/ui/login", node.admin),
    ]);
    let pre = form_head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: moat_login_csrf=")
        })
        .unwrap();
    assert!(pre.contains("; Secure"), "{pre}");
    let nonce = pre.split(';').next().unwrap().split('=').nth(1).unwrap();
    let head = curl(&[
        "-b",
        jar.to_str().unwrap(),
        "-H",
        &format!("origin: {}", node.admin),
        "--data-urlencode",
        &format!("csrf={nonce}"),
        "--data-urlencode",
        &format!("token={}", node.token()),
        &format!("{}/ui/login", node.admin),
    ]);
    let cookie = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: moat_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie:\n{head}"));
    for flag in ["; Secure", "; HttpOnly", "; SameSite=Strict", "; Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
}

#[test]
fn state_changing_requests_need_the_same_origin_and_the_sessions_csrf_token() {
    let node = Node::start();
    let a = &node.admin;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "orders", &wasm("tp_log"), "/orders", "");
    node.deploy(&m);
    node.deploy(&m);
    assert_eq!(active_version(&node, "orders"), 2);
    let me = login(a, &node.token());
    let other = login(a, &node.token());
    let o = origin(a);
    let rollback = |headers: &[(&str, &str)], csrf: &str| {
        send(
            a,
            "POST",
            "/ui/functions/orders/rollback",
            headers,
            &format!("csrf={csrf}&to=1"),
        )
    };
    let cookie = ("cookie", me.cookie.as_str());
    let localhost = a.replace("127.0.0.1", "localhost");
    for (what, answer) in [
        (
            "no CSRF token",
            send(
                a,
                "POST",
                "/ui/functions/orders/rollback",
                &[cookie, (o.0, &o.1)],
                "to=1",
            ),
        ),
        (
            "a wrong CSRF token",
            rollback(&[cookie, (o.0, &o.1)], &"f".repeat(64)),
        ),
        (
            "another session's CSRF token",
            rollback(&[cookie, (o.0, &o.1)], &other.csrf),
        ),
        (
            "a cross-site origin",
            rollback(&[cookie, ("origin", &localhost)], &me.csrf),
        ),
        (
            "a same-site page on another port",
            rollback(
                &[
                    cookie,
                    ("origin", "http://127.0.0.1:1"),
                    ("sec-fetch-site", "same-site"),
                ],
                &me.csrf,
            ),
        ),
        (
            "Sec-Fetch-Site: cross-site",
            rollback(&[cookie, ("sec-fetch-site", "cross-site")], &me.csrf),
        ),
        ("no Origin or Sec-Fetch-Site", rollback(&[cookie], &me.csrf)),
        (
            "origin \"null\"",
            rollback(&[cookie, ("origin", "null")], &me.csrf),
        ),
        (
            "origin \"null\" from another site",
            rollback(
                &[cookie, ("origin", "null"), ("sec-fetch-site", "cross-site")],
                &me.csrf,
            ),
        ),
    ] {
        assert_eq!(answer.status, 403, "{what}: {}", answer.body);
        assert_eq!(
            active_version(&node, "orders"),
            2,
            "{what} changed something"
        );
    }
    // Without a session: refused too.
    assert_eq!(rollback(&[(o.0, &o.1)], &me.csrf).status, 401);
    assert_eq!(active_version(&node, "orders"), 2);

    // Same origin, the session's token: done, audited, and on the event stream.
    let bearer = format!("Bearer {}", node.token());
    let mut events = Stream::open(a, "?types=deploy", &[("authorization", &bearer)]);
    // As a browser sends it under `Referrer-Policy: no-referrer`: `Origin: null`, vouched
    // for by `Sec-Fetch-Site`.
    let done = rollback(
        &[
            cookie,
            ("origin", "null"),
            ("sec-fetch-site", "same-origin"),
        ],
        &me.csrf,
    );
    assert_eq!(
        (done.status, done.header("location")),
        (303, Some("/ui/functions/orders"))
    );
    assert_eq!(active_version(&node, "orders"), 1);
    events.wait("deploy", |v| v["action"] == "rollback" && v["version"] == 1);
    let records = node.audit_records(None, "admin.post", 1);
    assert!(
        records
            .iter()
            .any(|r| r["event"]["target"] == "/ui/functions/orders/rollback"
                && r["event"]["outcome"] == "succeeded"),
        "{records:?}"
    );
    assert!(node.audit_records(None, "dashboard.refused", 9).len() >= 9);

    // The session's role decides, as in the API: an auditor may neither roll back nor send
    // a test alert, and sees no rollback buttons.
    let (auditor, _) = create_token(&node, "auditor", "sec");
    let au = login(a, &auditor);
    let c = ("cookie", au.cookie.as_str());
    let no = send(
        a,
        "POST",
        "/ui/functions/orders/rollback",
        &[c, (o.0, &o.1)],
        &format!("csrf={}&to=2", au.csrf),
    );
    assert_eq!(no.status, 403, "{}", no.body);
    assert_eq!(active_version(&node, "orders"), 1);
    let overview = send(a, "GET", "/ui/", &[c], "");
    assert!(
        overview.body.contains("may not see functions"),
        "{}",
        overview.body
    );
    let page = send(a, "GET", "/ui/functions/orders", &[c], "");
    assert!(page.body.contains("may not see functions"), "{}", page.body);
    assert!(!page.body.contains("Roll back to"), "{}", page.body);
    let test = send(
        a,
        "POST",
        "/ui/alerts/any/test",
        &[c, (o.0, &o.1)],
        &format!("csrf={}", au.csrf),
    );
    assert_eq!(test.status, 403);

    // An admin sends a test alert: only with the session's CSRF token.
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        "[[alert]]\nname = \"kv-snooping\"\nwhen = { kind = \"event_count\", action = \"kv:*.denied\" }\nwindow = \"60s\"\nthreshold = 2\nsinks = [{ kind = \"log\" }]\n",
    )
    .unwrap();
    node.moat_ok(&["alerts", "add", rules.to_str().unwrap()]);
    let path = "/ui/alerts/kv-snooping/test";
    let forged = send(a, "POST", path, &[cookie, (o.0, &o.1)], "csrf=");
    assert_eq!(forged.status, 403);
    let sent = send(
        a,
        "POST",
        path,
        &[cookie, (o.0, &o.1)],
        &format!("csrf={}", me.csrf),
    );
    assert_eq!(sent.status, 303, "{}", sent.body);
    let to = sent.header("location").unwrap();
    assert_eq!(to, "/ui/alerts?sent=kv-snooping");
    let page = send(a, "GET", to, &[cookie], "");
    assert!(
        page.body
            .contains("A test firing of <code>kv-snooping</code> was sent")
    );
    assert!(page.body.contains("Fired 1 time(s)"), "{}", page.body);
    let posts = node.audit_records(None, "admin.post", 2);
    assert!(
        posts
            .iter()
            .any(|r| r["event"]["target"] == path && r["event"]["outcome"] == "succeeded"),
        "{posts:?}"
    );
}

#[test]
fn pages_escape_what_functions_manifests_and_tokens_say_and_carry_protective_headers() {
    let node = Node::start();
    let a = &node.admin;
    let dir = tempfile::tempdir().unwrap();
    node.deploy(&manifest(
        dir.path(),
        "logger",
        &wasm("tp_log"),
        "/logger",
        "[config]\n\"<script>alert('cfg')</script>\" = \"x\"\n",
    ));
    let logged = "<script>alert('log')</script><img src=x onerror=alert(2)>";
    assert_eq!(
        node.get(&format!("/logger?print={}", enc(logged))).status,
        200
    );
    let (token, _) = create_token(&node, "admin", "<script>alert('who')</script>");
    let s = login(a, &token);

    // The function's output is stored by a batching writer: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = send(
            a,
            "GET",
            "/ui/functions/logger",
            &[("cookie", &s.cookie)],
            "",
        );
        if page.body.contains("alert(&#39;log&#39;)") || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(page.status, 200);
    for escaped in [
        "&lt;script&gt;alert(&#39;cfg&#39;)&lt;/script&gt;",
        "&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;",
        "&lt;script&gt;alert(&#39;who&#39;)&lt;/script&gt; (admin)",
    ] {
        assert!(
            page.body.contains(escaped),
            "{escaped} missing:\n{}",
            page.body
        );
    }
    // The only script element is the dashboard's own, and no markup came through raw.
    assert_eq!(page.body.matches("<script").count(), 1, "{}", page.body);
    assert!(page.body.contains("<script src=\"/ui/app.js\"></script>"));
    assert!(!page.body.contains("<img"));

    for (path, cookie) in [
        ("/ui/", s.cookie.as_str()),
        ("/ui/login", ""),
        ("/ui/app.js", ""),
        ("/ui/functions/logger", s.cookie.as_str()),
    ] {
        let r = send(a, "GET", path, &[("cookie", cookie)], "");
        assert_eq!(r.status, 200, "{path}");
        for (name, value) in [
            (
                "content-security-policy",
                "default-src 'self'; frame-ancestors 'none'",
            ),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            let got = r
                .header(name)
                .unwrap_or_else(|| panic!("{path}: no {name}"));
            assert!(got.starts_with(value), "{path}: {name}: {got}");
        }
        let csp = r.header("content-security-policy").unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    // No inline script anywhere in the pages: the CSP would refuse it.
    let overview = send(a, "GET", "/ui/", &[("cookie", &s.cookie)], "");
    assert!(!overview.body.contains("<script>"));
    assert!(!overview.body.contains(" onclick="));
}

/// Fails, never skips, when a tool the browser test needs is missing.
fn require(cmd: &str, args: &[&str], install: &str) {
    let ok = Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{cmd}` is needed by the dashboard's browser test; install it: {install}"
    );
}

#[test]
fn the_dashboard_works_in_chromium_and_refuses_cross_site_posts() {
    require("chromium", &["--version"], "apt-get install -y chromium");
    require("node", &["--version"], "apt-get install -y nodejs npm");
    let e2e = repo_root().join("e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "playwright-core is needed by the dashboard's browser test; install it: (cd e2e && npm ci)"
    );
    let node = Node::start();
    node.moat_ok(&["kv", "create", "orders"]);
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "snoop", &wasm("tp_kv"), "/snoop", "");
    node.deploy(&m);
    node.deploy(&m);
    let _shop = node.deploy_program(
        "shop",
        "tp_log",
        "[config]\n\"<script>alert('cfg')</script>\" = \"x\"\n",
    );
    let shot = repo_root().join("target/e2e/dashboard.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg(e2e.join("dashboard.mjs"))
        .env("MOAT_ADMIN", &node.admin)
        .env("MOAT_GATEWAY", &node.gateway)
        .env("MOAT_TOKEN", node.token())
        .env("MOAT_SCREENSHOT", &shot)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{said}");
    assert!(out.status.success(), "e2e/dashboard.mjs failed:\n{said}");
    assert!(said.contains("e2e: ok"), "{said}");
    // The cross-site and cross-origin posts changed nothing.
    assert_eq!(active_version(&node, "snoop"), 2, "{said}");
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    // Browsing the dashboard is no failed login (a browser also asks for /favicon.ico).
    let failed = node.audit_records(None, "auth.failed", 0);
    assert!(failed.is_empty(), "{failed:?}");
    let refused = node.audit_records(None, "dashboard.refused", 2);
    assert!(
        refused
            .iter()
            .filter(|r| r["event"]["target"] == "/ui/functions/snoop/rollback")
            .count()
            >= 2,
        "{refused:?}\n{said}"
    );
}

#[test]
fn the_audit_page_shows_whether_the_stored_chain_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_on(&data, &[]);
    for i in 0..4 {
        node.moat_ok(&["kv", "create", &format!("b{i}")]);
    }
    assert_eq!(node.audit_records(None, "admin.post", 4).len(), 4);
    let s = login(&node.admin, &node.token());
    let page = send(
        &node.admin,
        "GET",
        "/ui/audit",
        &[("cookie", &s.cookie)],
        "",
    );
    assert!(page.body.contains("Chain verified: "), "{}", page.body);
    assert!(page.body.contains("/v1/kv"), "{}", page.body);
    node.stop();

    // Someone with the database rewrites record 3.
    let c = rusqlite::Connection::open(data.join("moat.db")).unwrap();
    c.execute_batch("UPDATE audit_log SET target = '/v1/kv/innocent' WHERE seq = 3;")
        .unwrap();
    drop(c);
    let node = Node::start_on(&data, &[]);
    let s = login(&node.admin, &node.token());
    for path in ["/ui/audit", "/ui/"] {
        let page = send(&node.admin, "GET", path, &[("cookie", &s.cookie)], "");
        assert!(
            page.body
                .contains("Chain verification FAILED after 2 good records")
                && page.body.contains("record 3 was changed"),
            "{path}: {}",
            page.body
        );
    }
}
