//! Hostile input against `[input]`: each refusal happens before the guest runs (the guest
//! here is `tp-counter`-like `echo`, and a refused request never reaches it).

use crate::common::{Node, manifest, request, wasm};

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["qty", "sku"],
  "additionalProperties": false,
  "properties": {
    "qty": {"type": "integer", "minimum": 1, "maximum": 100},
    "sku": {"type": "string", "pattern": "^SKU-[0-9]{4}$"}
  }
}"#;

fn node_with_orders() -> (Node, tempfile::TempDir) {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        "orders",
        &wasm("echo"),
        "/orders",
        "[input]\nmethods = [\"POST\"]\ncontent_types = [\"application/json\"]\nschema = \"order.json\"\n",
    );
    std::fs::write(m.join("order.json"), SCHEMA).unwrap();
    node.deploy(&m);
    (node, dir)
}

fn post(node: &Node, body: &[u8], content_type: &str) -> crate::common::Reply {
    request(
        "POST",
        &format!("{}/orders", node.gateway),
        Some(body),
        &[("content-type".to_string(), content_type.to_string())],
    )
}

#[test]
fn a_valid_order_reaches_the_function() {
    let (node, _d) = node_with_orders();
    let r = post(
        &node,
        br#"{"qty": 2, "sku": "SKU-0001"}"#,
        "application/json",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["body"], r#"{"qty": 2, "sku": "SKU-0001"}"#);
}

#[test]
fn wrong_method_is_405_with_allow() {
    let (node, _d) = node_with_orders();
    let r = node.get("/orders");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn wrong_content_type_is_415() {
    let (node, _d) = node_with_orders();
    post(&node, br#"{"qty": 2, "sku": "SKU-0001"}"#, "text/plain")
        .assert_error(415, "unsupported_media_type");
}

#[test]
fn schema_violations_are_400_with_pointers_and_no_schema_internals() {
    let (node, _d) = node_with_orders();
    let r = post(
        &node,
        br#"{"qty": 0, "sku": "SKU-12", "extra": true}"#,
        "application/json",
    );
    r.assert_error(400, "validation_failed");
    let details = r.json()["error"]["details"].clone();
    let pointers: Vec<&str> = details
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pointer"].as_str().unwrap())
        .collect();
    assert!(
        pointers.contains(&"/qty") && pointers.contains(&"/sku"),
        "{details}"
    );
    for internal in [
        "SKU-[",
        "[0-9]",
        "minimum",
        "100",
        "order.json",
        "additionalProperties",
    ] {
        assert!(
            !r.body.contains(internal),
            "`{internal}` leaked: {}",
            r.body
        );
    }
    assert!(
        node.metric_labeled("moat_limit_hits_total", "limit=\"validation\"") >= 1,
        "the refusal was not recorded"
    );
}

#[test]
fn malformed_deep_and_huge_json_are_bad_input_not_crashes() {
    let (node, _d) = node_with_orders();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = format!(r#"{{"qty": 1{}, "sku": "SKU-0001"}}"#, "0".repeat(5000));
    for body in [&b"{not json"[..], deep.as_bytes(), huge.as_bytes(), b""] {
        post(&node, body, "application/json").assert_error(400, "validation_failed");
    }
    let r = post(
        &node,
        br#"{"qty": 2, "sku": "SKU-0001"}"#,
        "application/json",
    );
    assert_eq!(r.status, 200, "the node is unharmed");
}

#[test]
fn a_schema_that_refers_outside_itself_fails_the_deploy_and_fetches_nothing() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    // A listener that would see the fetch.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    for reference in [
        format!("http://127.0.0.1:{port}/schema.json"),
        "file:///etc/passwd".to_string(),
    ] {
        let m = manifest(
            dir.path(),
            "remote",
            &wasm("echo"),
            "/remote",
            "[input]\nschema = \"s.json\"\n",
        );
        std::fs::write(m.join("s.json"), format!(r#"{{"$ref": "{reference}"}}"#)).unwrap();
        let out = node.moat(&["deploy", m.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{reference}: {stderr}");
        assert!(stderr.contains("input.schema"), "{stderr}");
    }
    assert!(
        listener.accept().is_err(),
        "the validator fetched a remote schema"
    );
    node.get("/remote").assert_error(404, "not_found");
}
