//! Key-value buckets through `wasi:keyvalue`: a function uses only the buckets it is granted,
//! judged per call (a guardrail can forbid writes), never another function's; quotas hold;
//! every refusal is an audit event.

use crate::common::{Node, manifest, wasm};

fn kv(node: &Node, function: &str, query: &str) -> String {
    node.get(&format!("/{function}?{query}")).body
}

#[test]
fn functions_use_only_their_buckets_and_quotas_hold() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.moat_ok(&[
        "kv",
        "create",
        "orders",
        "--max-keys",
        "3",
        "--max-value-bytes",
        "16",
    ]);
    node.moat_ok(&["kv", "create", "billing"]);
    let deploy = |name: &str, extra: &str| {
        node.deploy(&manifest(
            dir.path(),
            name,
            &wasm("tp_kv"),
            &format!("/{name}"),
            extra,
        ));
    };
    deploy("shop", "[permissions]\nkv = [\"orders\", \"ghost\"]\n");
    deploy("billing", "[permissions]\nkv = [\"billing\"]\n");
    deploy("snoop", "");

    // Granted: every operation works.
    assert_eq!(
        kv(&node, "shop", "bucket=orders&op=set&key=a&value=hello"),
        "set"
    );
    assert_eq!(
        kv(&node, "shop", "bucket=orders&op=get&key=a"),
        "value hello"
    );
    assert_eq!(
        kv(&node, "shop", "bucket=orders&op=exists&key=a"),
        "exists true"
    );
    assert_eq!(
        kv(&node, "shop", "bucket=orders&op=incr&key=n"),
        "counter 1"
    );
    assert_eq!(
        kv(&node, "shop", "bucket=orders&op=incr&key=n"),
        "counter 2"
    );
    assert_eq!(kv(&node, "shop", "bucket=orders&op=list"), "keys a,n");
    // Granted but never created: no such store.
    assert_eq!(
        kv(&node, "shop", "bucket=ghost&op=get&key=a"),
        "open error Error::NoSuchStore"
    );

    // Not granted, or granted to another function: the bucket does not open.
    assert_eq!(
        kv(&node, "snoop", "bucket=orders&op=get&key=a"),
        "open error Error::AccessDenied"
    );
    assert_eq!(
        kv(&node, "billing", "bucket=orders&op=get&key=a"),
        "open error Error::AccessDenied"
    );
    assert_eq!(
        kv(&node, "billing", "bucket=billing&op=get&key=a"),
        "absent"
    );
    // The same key in another bucket is another value.
    assert_eq!(
        kv(&node, "billing", "bucket=billing&op=set&key=a&value=x"),
        "set"
    );
    assert_eq!(
        kv(&node, "shop", "bucket=orders&op=get&key=a"),
        "value hello"
    );

    // Quotas: value size, then key count.
    let r = kv(
        &node,
        "shop",
        "bucket=orders&op=set&key=b&value=0123456789abcdefXYZ",
    );
    assert!(
        r.starts_with("set error Error::Other(") && r.contains("limit"),
        "{r}"
    );
    let r = kv(&node, "shop", "bucket=orders&op=fill&n=5&value=v");
    assert!(
        r.starts_with("fill error Error::Other(") && r.contains("keys"),
        "{r}"
    );
    let list = node.moat_ok(&["kv", "list", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let orders = v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "orders")
        .unwrap();
    assert_eq!(orders["keys"], 3, "{list}");

    // Each refusal is an audit event naming the function, action and bucket.
    let denied = node.audit_records(Some("snoop"), "kv:read.denied", 1);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["event"]["target"], "bucket:orders");
    assert_eq!(denied[0]["event"]["outcome"], "denied");
    assert_eq!(node.audit_records(Some("billing"), "kv:*", 1).len(), 1);
    assert!(
        node.metric_labeled(
            "moat_limit_hits_total",
            "function=\"snoop\",limit=\"kv_denied\""
        ) >= 1
    );

    // Deleting the bucket deletes its data.
    node.moat_ok(&["kv", "delete", "orders"]);
    assert_eq!(
        kv(&node, "shop", "bucket=orders&op=get&key=a"),
        "open error Error::NoSuchStore"
    );
    node.moat_ok(&["kv", "create", "orders"]);
    assert_eq!(kv(&node, "shop", "bucket=orders&op=get&key=a"), "absent");
}

#[test]
fn a_guardrail_forbids_writes_that_a_grant_allows() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.moat_ok(&["kv", "create", "ledger"]);
    node.deploy(&manifest(
        dir.path(),
        "app",
        &wasm("tp_kv"),
        "/app",
        "[permissions]\nkv = [\"ledger\"]\n",
    ));
    assert_eq!(
        kv(&node, "app", "bucket=ledger&op=set&key=a&value=1"),
        "set"
    );
    let policy = dir.path().join("read-only-ledger.cedar");
    std::fs::write(
        &policy,
        r#"forbid(principal, action == Action::"kv:write", resource) when { resource.name == "ledger" };"#,
    )
    .unwrap();
    node.moat_ok(&["policy", "add", policy.to_str().unwrap()]);
    assert_eq!(kv(&node, "app", "bucket=ledger&op=get&key=a"), "value 1");
    assert_eq!(
        kv(&node, "app", "bucket=ledger&op=set&key=a&value=2"),
        "set error Error::AccessDenied"
    );
    assert_eq!(
        kv(&node, "app", "bucket=ledger&op=incr&key=n"),
        "incr error Error::AccessDenied"
    );
    assert_eq!(kv(&node, "app", "bucket=ledger&op=get&key=a"), "value 1");
    let denied = node.audit_records(Some("app"), "kv:write.denied", 2);
    assert_eq!(denied.len(), 2, "{denied:?}");
    // Only admins manage buckets.
    let out = node.moat_ok(&["tokens", "create", "--role", "deployer", "--output", "json"]);
    let token = serde_json::from_str::<serde_json::Value>(&out).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = node.admin_get("/v1/kv", Some(&token));
    assert_eq!(r.status, 403, "{}", r.body);
}
