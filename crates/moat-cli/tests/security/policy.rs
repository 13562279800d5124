//! Guardrails: organization `forbid` policies beat any grant a manifest makes, bad policies
//! are refused with Cedar's message, and only admins manage them.

use std::io::Write;

use crate::common::{Node, manifest, wasm};

fn add_policy(node: &Node, dir: &std::path::Path, name: &str, text: &str) -> std::process::Output {
    let path = dir.join(format!("{name}.cedar"));
    std::fs::write(&path, text).unwrap();
    node.moat(&["policy", "add", path.to_str().unwrap()])
}

#[test]
fn a_guardrail_forbids_what_a_manifest_grants() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("root-db", "root-secret-value");
    node.set_secret("app-key", "app-secret-value");
    node.deploy(&manifest(
        dir.path(),
        "app",
        &wasm("tp_config"),
        "/app",
        "[permissions]\nsecrets = [\"root-db\", \"app-key\"]\n[dlp]\nmode = \"alert\"\n",
    ));
    assert!(
        node.get("/app?key=root-db")
            .body
            .starts_with("root-db=root-secret-value")
    );

    let out = add_policy(
        &node,
        dir.path(),
        "no-root-secrets",
        r#"forbid(principal, action == Action::"secret:read", resource) when { resource.name like "root-*" };"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = node.get("/app?key=root-db&all=1").body;
    assert!(
        r.starts_with("root-db absent") && r.ends_with("keys: app-key"),
        "{r}"
    );
    assert!(
        node.metric_labeled(
            "moat_limit_hits_total",
            "function=\"app\",limit=\"secret_denied\""
        ) >= 1
    );

    // Removing the guardrail restores the grant.
    node.moat_ok(&["policy", "remove", "no-root-secrets"]);
    assert!(
        node.get("/app?key=root-db")
            .body
            .starts_with("root-db=root-secret-value")
    );
}

#[test]
fn a_guardrail_forbids_plain_http_egress_even_when_granted() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    node.deploy(&manifest(
        dir.path(),
        "fetch",
        &wasm("tp_fetch"),
        "/fetch",
        &format!("[permissions]\noutbound_hosts = [\"http://127.0.0.1:{port}\"]\n"),
    ));
    let url = format!("/fetch?url=http://127.0.0.1:{port}/");
    assert_eq!(node.get(&url).body, "status 200: ok");
    let out = add_policy(
        &node,
        dir.path(),
        "no-plain-http",
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.scheme == "http" };"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = node.get(&url).body;
    assert!(
        body.starts_with("denied: ErrorCode::HttpRequestDenied"),
        "{body}"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = node.moat_ok(&["logs", "fetch"]);
    assert!(logs.contains("forbidden by policy"), "{logs}");
    let denied = node.audit_records(Some("fetch"), "http:request.denied", 1);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0]["event"]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("policy")
    );
}

#[test]
fn bad_policies_are_refused_with_cedars_message() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    for (name, text, expected) in [
        (
            "syntax",
            "forbid(principal, action resource);",
            "unexpected",
        ),
        (
            "permit",
            "permit(principal, action, resource);",
            "guardrails may only forbid",
        ),
        (
            "unknown-action",
            r#"forbid(principal, action == Action::"db:drop", resource);"#,
            "db:drop",
        ),
        (
            "bad-attr",
            r#"forbid(principal, action == Action::"http:request", resource) when { resource.colour == "red" };"#,
            "colour",
        ),
    ] {
        let out = add_policy(&node, dir.path(), name, text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.to_lowercase().contains(&expected.to_lowercase()),
            "{name}: {stderr}"
        );
    }
    assert!(node.moat_ok(&["policy", "list"]).contains("no guardrails"));
}

#[test]
fn only_admins_manage_guardrails() {
    let node = Node::start();
    let v: serde_json::Value = serde_json::from_str(
        &node.moat_ok(&["tokens", "create", "--role", "deployer", "--output", "json"]),
    )
    .unwrap();
    assert_eq!(
        node.admin_get("/v1/policies", Some(v["token"].as_str().unwrap()))
            .status,
        403
    );
}

#[test]
fn no_guardrail_can_lock_admins_out_of_guardrails() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let out = add_policy(
        &node,
        dir.path(),
        "lockout",
        r#"forbid(principal, action == Action::"policy:manage", resource);"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    node.moat_ok(&["policy", "remove", "lockout"]);
}
