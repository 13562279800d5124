//! Config and secrets through `wasi:config/store`: a function sees its `[config]` and the
//! secrets it is granted, nothing else — not another function's, not in `get-all` — and no
//! command or endpoint ever returns a secret's value.

use crate::common::{Node, manifest, wasm};

#[test]
fn functions_see_only_their_config_and_granted_secrets() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", "sk_live_first");
    node.set_secret("root-password", "hunter2");
    node.deploy(&manifest(
        dir.path(),
        "orders",
        &wasm("tp_config"),
        "/orders",
        // `alert`: this test reads secret values back through the response on purpose.
        "[permissions]\nsecrets = [\"stripe-key\"]\n[config]\ncurrency = \"EUR\"\n[dlp]\nmode = \"alert\"\n",
    ));
    node.deploy(&manifest(
        dir.path(),
        "other",
        &wasm("tp_config"),
        "/other",
        "",
    ));

    let r = node.get("/orders?key=stripe-key&all=1").body;
    assert!(r.starts_with("stripe-key=sk_live_first\n"), "{r}");
    assert!(r.ends_with("keys: currency,stripe-key"), "{r}");
    assert!(
        node.get("/orders?key=currency")
            .body
            .starts_with("currency=EUR")
    );
    // Not granted: absent from get and get-all.
    let r = node.get("/orders?key=root-password&all=1").body;
    assert!(r.starts_with("root-password absent"), "{r}");
    assert!(!r.contains("hunter2"));
    // Another function's grant is not this one's.
    let r = node.get("/other?key=stripe-key&all=1").body;
    assert_eq!(r, "stripe-key absent\nkeys: ");
    // Asking for an existing secret by name without the right is a recorded denial; asking
    // for a key that is no secret is not.
    let denied = node.audit_records(Some("other"), "secret:read.denied", 1);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["event"]["target"], "secret:stripe-key");
    assert_eq!(
        node.audit_records(Some("orders"), "secret:read.denied", 1)[0]["event"]["target"],
        "secret:root-password"
    );
    node.get("/other?key=no-such-key");
    assert_eq!(
        node.audit_records(Some("other"), "secret:read.denied", 2)
            .len(),
        1
    );

    // A new version is served to the next invocation.
    node.set_secret("stripe-key", "sk_live_second");
    assert!(
        node.get("/orders?key=stripe-key")
            .body
            .starts_with("stripe-key=sk_live_second")
    );

    // Listing shows names, versions and readers; never a value.
    let list = node.moat_ok(&["secrets", "list", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let stripe = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "stripe-key")
        .unwrap();
    assert_eq!(stripe["version"], 2);
    assert_eq!(stripe["readers"], serde_json::json!(["orders"]));
    assert!(stripe["last_read_ms"].as_i64().unwrap() > 0, "{stripe}");
    let root = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "root-password")
        .unwrap();
    assert!(root["last_read_ms"].is_null(), "{root}");
    for value in ["sk_live", "hunter2"] {
        assert!(!list.contains(value), "{list}");
    }
    // There is no endpoint that returns one.
    let r = node.admin_get("/v1/secrets/stripe-key", Some(&node.token()));
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn a_config_key_that_is_also_a_granted_secret_fails_the_deploy() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        "clash",
        &wasm("tp_config"),
        "/clash",
        "[permissions]\nsecrets = [\"token\"]\n[config]\ntoken = \"x\"\n",
    );
    let out = node.moat(&["deploy", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`config.token`"));
}

#[test]
fn only_admins_manage_secrets() {
    let node = Node::start();
    let v: serde_json::Value = serde_json::from_str(
        &node.moat_ok(&["tokens", "create", "--role", "deployer", "--output", "json"]),
    )
    .unwrap();
    let deployer = v["token"].as_str().unwrap();
    assert_eq!(node.admin_get("/v1/secrets", Some(deployer)).status, 403);
}
