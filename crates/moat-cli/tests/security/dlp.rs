//! Data-loss prevention on responses and logs: a function that sends back a secret it may
//! read — raw, base64, hex or URL-encoded — or a card number, is blocked (`502
//! response_blocked`), masked (`redact`) or passes and is recorded (`alert`), as its `[dlp]`
//! says; its logs are always redacted; each finding is an audit event without the value.

use crate::common::{Node, manifest, wasm};

const SECRET: &str = "sk_live_51HdQ2pLk3yT9";

fn deploy(node: &Node, dir: &std::path::Path, name: &str, dlp: &str) {
    node.deploy(&manifest(
        dir,
        name,
        &wasm("tp_config"),
        &format!("/{name}"),
        &format!("[permissions]\nsecrets = [\"stripe-key\"]\n{dlp}"),
    ));
}

#[test]
fn a_secret_leaving_in_a_response_is_blocked_masked_or_recorded() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", SECRET);
    deploy(&node, dir.path(), "block", "");
    deploy(&node, dir.path(), "redact", "[dlp]\nmode = \"redact\"\n");
    deploy(&node, dir.path(), "alert", "[dlp]\nmode = \"alert\"\n");

    // Default mode: block, before anything is sent.
    let r = node.get("/block?key=stripe-key");
    r.assert_error(502, "response_blocked");
    assert!(!r.body.contains(SECRET));
    assert!(node.metric_labeled("moat_limit_hits_total", "function=\"block\",limit=\"dlp\"") >= 1);
    // A response without the secret passes.
    assert_eq!(node.get("/block?key=other").body, "other absent");

    let r = node.get("/redact?key=stripe-key");
    assert_eq!(r.status, 200);
    assert!(
        r.body.starts_with("stripe-key=") && !r.body.contains("sk_live"),
        "{}",
        r.body
    );

    let r = node.get("/alert?key=stripe-key");
    assert_eq!(r.body, format!("stripe-key={SECRET}"));

    // Each finding is an audit event naming the channel and detector, never the value.
    for f in ["block", "redact", "alert"] {
        let found = node.audit_records(Some(f), "dlp.finding", 1);
        assert!(!found.is_empty(), "{f}");
        assert_eq!(found[0]["event"]["target"], "response-body:secrets");
        assert!(!found[0].to_string().contains(SECRET));
    }
    assert!(
        node.metric_labeled(
            "moat_dlp_findings_total",
            "function=\"alert\",detector=\"secrets\""
        ) >= 1
    );

    // A new value of the secret is looked for at once.
    node.set_secret("stripe-key", "sk_live_rotated_77Qx");
    node.get("/block?key=stripe-key")
        .assert_error(502, "response_blocked");
}

#[test]
fn encoded_secrets_card_numbers_and_logs() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", SECRET);
    // tp_log writes its query's `line` to stdout and answers it back; the secret is given
    // in encoded forms a function might use to sneak it out.
    node.deploy(&manifest(
        dir.path(),
        "echo",
        &wasm("tp_log"),
        "/echo",
        "[permissions]\nsecrets = [\"stripe-key\"]\n[dlp]\ndetectors = [\"secrets\", \"credit-card\"]\n",
    ));
    let b64 = base64_std(SECRET.as_bytes());
    let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
    let url: String = SECRET.bytes().map(|b| format!("%{b:02X}")).collect();
    for leak in [SECRET, b64.as_str(), &hex, &url, "4111-1111-1111-1111"] {
        node.get(&format!("/echo?line=data:{leak}"))
            .assert_error(502, "response_blocked");
    }
    // A number failing the Luhn check is no card.
    assert_eq!(node.get("/echo?line=4111-1111-1111-1112").status, 200);

    // The function logged every one of those lines; its stored logs hold none of them.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = node.moat_ok(&["logs", "echo"]);
        if logs.matches("hello from stdout").count() >= 6 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(logs.matches("hello from stdout").count(), 6, "{logs}");
    for leak in [SECRET, b64.as_str(), &hex] {
        assert!(!logs.contains(leak), "{logs}");
    }
    assert!(!logs.contains("4111-1111-1111-1111"), "{logs}");
    assert!(
        !node
            .audit_records(Some("echo"), "dlp.finding", 1)
            .is_empty()
    );
}

fn base64_std(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
