//! Broken authentication and over-privileged tokens: every token case gets the status SPEC
//! §4 gives it, roles limit the admin API, and scopes limit invocation.

use std::time::Duration;

use crate::common::{Node, manifest, request, wasm};

fn private(node: &Node, dir: &std::path::Path, name: &str) {
    let m = manifest(dir, name, &wasm("hello"), &format!("/{name}"), "");
    let toml = m.join("moat.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("auth = \"public\"\n", "");
    std::fs::write(&toml, text).unwrap();
    node.deploy(&m);
}

fn create(node: &Node, args: &[&str]) -> (String, String) {
    let mut all = vec!["tokens", "create", "--output", "json"];
    all.extend_from_slice(args);
    let v: serde_json::Value = serde_json::from_str(&node.moat_ok(&all)).unwrap();
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

fn call(node: &Node, path: &str, token: &str) -> crate::common::Reply {
    request(
        "GET",
        &format!("{}{path}", node.gateway),
        None,
        &[("authorization".to_string(), format!("Bearer {token}"))],
    )
}

#[test]
fn invoker_tokens_call_only_their_function_and_nothing_else() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    private(&node, dir.path(), "a");
    private(&node, dir.path(), "b");
    let (_, scoped) = create(&node, &["--role", "invoker", "--function", "a"]);
    assert_eq!(call(&node, "/a", &scoped).body, "Hello, world!");
    call(&node, "/b", &scoped).assert_error(403, "forbidden");
    // No admin API for an invoker.
    let r = node.admin_get("/v1/functions", Some(&scoped));
    assert_eq!(r.status, 403, "{}", r.body);
    // `moat invoke` works with the invoker's own token (it may look up only its function).
    let out = std::process::Command::new(crate::common::MOAT)
        .args(["--admin", &node.admin, "--token", &scoped, "invoke", "a"])
        .env("MOAT_GATEWAY_URL", &node.gateway)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Hello, world!");
    assert_eq!(node.admin_get("/v1/functions/b", Some(&scoped)).status, 403);
    let (_, any) = create(&node, &["--role", "invoker"]);
    assert_eq!(call(&node, "/b", &any).status, 200);
    // A token with no role may do nothing.
    let (_, nobody) = create(&node, &[]);
    call(&node, "/a", &nobody).assert_error(403, "forbidden");
    call(&node, "/a", "moat_unknown").assert_error(401, "unauthorized");
}

#[test]
fn revoked_expired_and_rotated_tokens_are_401() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    private(&node, dir.path(), "a");
    let (id, token) = create(&node, &["--role", "invoker"]);
    assert_eq!(call(&node, "/a", &token).status, 200);
    node.moat_ok(&["tokens", "revoke", &id]);
    call(&node, "/a", &token).assert_error(401, "unauthorized");

    let (_, short) = create(&node, &["--role", "invoker", "--expires", "1s"]);
    assert_eq!(call(&node, "/a", &short).status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    call(&node, "/a", &short).assert_error(401, "unauthorized");

    let (id, old) = create(&node, &["--role", "invoker"]);
    let v: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["tokens", "rotate", &id, "--output", "json"]))
            .unwrap();
    let new = v["token"].as_str().unwrap();
    call(&node, "/a", &old).assert_error(401, "unauthorized");
    assert_eq!(call(&node, "/a", new).status, 200);
}

#[test]
fn rotating_the_bootstrap_admin_token_keeps_the_cli_working() {
    let node = Node::start();
    let old = node.token();
    let me: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["tokens", "list", "--output", "json"])).unwrap();
    let id = me["tokens"][0]["id"].as_str().unwrap().to_string();
    node.moat_ok(&["tokens", "rotate", &id]);
    let new = node.token();
    assert_ne!(new, old);
    assert_eq!(node.admin_get("/v1/functions", Some(&old)).status, 401);
    assert_eq!(node.admin_get("/v1/functions", Some(&new)).status, 200);
    node.moat_ok(&["functions", "list"]);
}

#[test]
fn roles_limit_the_admin_api() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let (_, deployer) = create(&node, &["--role", "deployer"]);
    let (_, auditor) = create(&node, &["--role", "auditor"]);
    // A deployer deploys and reads, but cannot manage tokens or delete.
    let m = manifest(dir.path(), "hello", &wasm("hello"), "/hello", "");
    let out = std::process::Command::new(crate::common::MOAT)
        .args(["--admin", &node.admin, "--token", &deployer, "deploy"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.admin_get("/v1/functions", Some(&deployer)).status, 200);
    assert_eq!(node.admin_get("/v1/tokens", Some(&deployer)).status, 403);
    let del = request(
        "DELETE",
        &format!("{}/v1/functions/hello", node.admin),
        None,
        &[("authorization".to_string(), format!("Bearer {deployer}"))],
    );
    assert_eq!(del.status, 403, "{}", del.body);
    // An auditor reads no functions.
    assert_eq!(node.admin_get("/v1/functions", Some(&auditor)).status, 403);
    // Unknown roles and misplaced scopes are refused.
    assert!(
        !node
            .moat(&["tokens", "create", "--role", "root"])
            .status
            .success()
    );
    assert!(
        !node
            .moat(&["tokens", "create", "--role", "admin", "--function", "x"])
            .status
            .success()
    );
    // No listing ever shows a secret or its hash.
    let list = node.moat_ok(&["tokens", "list", "--output", "json"]);
    assert!(
        !list.contains(&deployer) && !list.contains("hash"),
        "{list}"
    );
}

/// Refusal records of `function` for `action`, waiting up to ten seconds until their
/// `count`s add up to `refused` (refusals in one second are folded into one record, written
/// when the second ends).
fn refusal_records(
    node: &Node,
    function: &str,
    action: &str,
    refused: u64,
) -> Vec<serde_json::Value> {
    let (records, counted) = node.audit_folded(Some(function), action, refused);
    assert_eq!(counted, refused, "{records:#?}");
    for r in &records {
        let e = &r["event"];
        assert_eq!(e["function"], function);
        assert_eq!(e["target"], function);
        assert_eq!(e["outcome"], "denied");
        assert_eq!(e["details"]["aggregated"], true);
    }
    records
}

/// Issue #6: a gateway `401` or `403` is a security event in the audit chain (never with the
/// token presented), a flood of them is folded into a few records whose counts add up, and
/// `moat_policy_decisions_total` counts every decision.
#[test]
fn refused_invocations_are_audited_folded_and_counted() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    private(&node, dir.path(), "a");
    let (_, allowed) = create(&node, &["--role", "invoker", "--function", "a"]);
    let (other_id, other) = create(&node, &["--role", "invoker", "--function", "b"]);
    let decisions = |d: &str| {
        node.metric_labeled(
            "moat_policy_decisions_total",
            &format!("function=\"a\",decision=\"{d}\""),
        )
    };

    assert_eq!(call(&node, "/a", &allowed).status, 200);
    let none = node.get("/a");
    none.assert_error(401, "unauthorized");
    call(&node, "/a", "moat_invented_token").assert_error(401, "unauthorized");
    let forbidden = call(&node, "/a", &other);
    forbidden.assert_error(403, "forbidden");
    assert_eq!(
        (
            decisions("allowed"),
            decisions("denied"),
            decisions("unauthenticated")
        ),
        (1, 1, 2)
    );
    // Refusals are decisions, not limits.
    assert_eq!(
        node.metric_labeled("moat_limit_hits_total", "function=\"a\""),
        0
    );

    let unauthenticated = refusal_records(&node, "a", "invoke.unauthenticated", 2);
    let first = &unauthenticated[0]["event"];
    assert_eq!(first["actor"], "anonymous");
    assert_eq!(
        first["details"]["count"], 1,
        "the first is recorded at once"
    );
    assert_eq!(first["request_id"], none.header("x-request-id").unwrap());
    let denied = refusal_records(&node, "a", "invoke.denied", 1);
    let e = &denied[0]["event"];
    assert_eq!(e["actor"], format!("token:{other_id}"));
    assert_eq!(e["request_id"], forbidden.header("x-request-id").unwrap());
    assert!(
        node.audit_records(None, "invoke.*", 1)
            .iter()
            .all(|r| r["event"]["function"] == "a"),
        "an allowed call is no security event"
    );

    // A flood of refusals costs about one record per second, not one per request.
    let started = std::time::Instant::now();
    for i in 0..200 {
        let r = if i % 2 == 0 {
            node.get("/a")
        } else {
            call(&node, "/a", "moat_invented_token")
        };
        assert_eq!(r.status, 401);
    }
    let secs = started.elapsed().as_secs();
    let records = refusal_records(&node, "a", "invoke.unauthenticated", 202);
    assert!(
        records.len() as u64 <= secs + 4,
        "{} records for a {secs} s flood",
        records.len()
    );
    assert_eq!(decisions("unauthenticated"), 202);
    assert_eq!(decisions("allowed"), 1);

    // No record holds a token that was presented, and the chain still verifies.
    let log = node.moat_ok(&["audit-log", "show", "--output", "json"]);
    for secret in [&allowed, &other, "moat_invented_token"] {
        assert!(!log.contains(secret), "a token is in the audit log");
    }
    let out = node.moat(&["audit-log", "verify"]);
    assert!(out.status.success(), "{out:?}");
}
