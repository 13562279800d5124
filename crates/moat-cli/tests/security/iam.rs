//! `moat iam review`: a grant that traffic never used is reported, and the suggested
//! least-privilege block deploys and still serves that traffic.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::common::{Node, manifest, wasm};

fn target() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}

#[test]
fn unused_grants_are_reported_and_the_suggestion_still_serves() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let port = target();
    node.set_secret("api-key", "k1");
    node.set_secret("never-read", "k2");
    let grants = format!(
        "[permissions]\noutbound_hosts = [\"http://127.0.0.1:{port}\", \"https://api.unused.example\"]\nsecrets = [\"api-key\", \"never-read\"]\n"
    );
    node.deploy(&manifest(
        dir.path(),
        "fetch",
        &wasm("tp_fetch"),
        "/fetch",
        &grants,
    ));
    node.deploy(&manifest(
        dir.path(),
        "cfg",
        &wasm("tp_config"),
        "/cfg",
        "[permissions]\nsecrets = [\"api-key\", \"never-read\"]\n",
    ));
    let traffic = format!("/fetch?url=http://127.0.0.1:{port}/");
    assert_eq!(node.get(&traffic).body, "status 200: ok");
    assert!(node.get("/cfg?key=api-key").body.starts_with("api-key=k1"));

    let v: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["iam", "review", "--output", "json"])).unwrap();
    let by = |name: &str| {
        v["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["function"] == name)
            .unwrap()
            .clone()
    };
    let fetch = by("fetch");
    assert_eq!(
        fetch["unused"]["outbound_hosts"],
        serde_json::json!(["https://api.unused.example"])
    );
    assert_eq!(
        fetch["unused"]["secrets"],
        serde_json::json!(["api-key", "never-read"])
    );
    let cfg = by("cfg");
    // get-all would count as reading every secret; this function asked for one by name.
    assert_eq!(cfg["unused"]["secrets"], serde_json::json!(["never-read"]));
    let text = node.moat_ok(&["iam", "review", "fetch"]);
    assert!(
        text.contains("unused outbound_hosts: https://api.unused.example"),
        "{text}"
    );

    // The suggested block, deployed, serves the same traffic.
    let suggested = fetch["suggested"].as_str().unwrap().to_string();
    assert!(
        !suggested.contains("unused.example") && !suggested.contains("never-read"),
        "{suggested}"
    );
    let m = manifest(dir.path(), "fetch", &wasm("tp_fetch"), "/fetch", &suggested);
    node.deploy(&m);
    assert_eq!(node.get(&traffic).body, "status 200: ok");
    let out = node.moat(&["iam", "review", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));

    // Buckets: the one read is used, the other is reported, and the suggestion serves.
    node.moat_ok(&["kv", "create", "used"]);
    node.moat_ok(&["kv", "create", "idle"]);
    let kv_grants = "[permissions]\nkv = [\"used\", \"idle\"]\n";
    node.deploy(&manifest(
        dir.path(),
        "store",
        &wasm("tp_kv"),
        "/store",
        kv_grants,
    ));
    assert_eq!(node.get("/store?bucket=used&op=get&key=a").body, "absent");
    let v: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["iam", "review", "store", "--output", "json"]))
            .unwrap();
    let store = &v["functions"][0];
    assert_eq!(store["unused"]["kv"], serde_json::json!(["idle"]), "{v}");
    let suggested = store["suggested"].as_str().unwrap().to_string();
    assert!(suggested.contains("kv = [\"used\"]"), "{suggested}");
    node.deploy(&manifest(
        dir.path(),
        "store",
        &wasm("tp_kv"),
        "/store",
        &suggested,
    ));
    assert_eq!(node.get("/store?bucket=used&op=get&key=a").body, "absent");
    assert_eq!(
        node.get("/store?bucket=idle&op=get&key=a").body,
        "open error Error::AccessDenied"
    );
}

#[test]
fn auditors_may_review_and_deployers_may_not() {
    let node = Node::start();
    let token = |role: &str| {
        let v: serde_json::Value = serde_json::from_str(
            &node.moat_ok(&["tokens", "create", "--role", role, "--output", "json"]),
        )
        .unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    assert_eq!(
        node.admin_get("/v1/iam/review", Some(&token("auditor")))
            .status,
        200
    );
    assert_eq!(
        node.admin_get("/v1/iam/review", Some(&token("deployer")))
            .status,
        403
    );
}
