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

/// A loopback HTTP server that keeps every byte it receives and answers `ok`.
pub(crate) fn recording_target() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(300)));
            let mut buf = [0u8; 8192];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                keep.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, seen)
}

#[test]
fn a_secret_sent_out_to_an_allowed_host_is_refused_or_masked() {
    let (port, seen) = recording_target();
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", SECRET);
    for (name, mode) in [("out-block", "block"), ("out-redact", "redact")] {
        node.deploy(&manifest(
            dir.path(),
            name,
            &wasm("tp_fetch"),
            &format!("/{name}"),
            &format!(
                "[permissions]\noutbound_hosts = [\"http://127.0.0.1:{port}\"]\nsecrets = [\"stripe-key\"]\n[dlp]\nmode = \"{mode}\"\n"
            ),
        ));
    }
    let target = format!("http://127.0.0.1:{port}");
    let b64 = base64_std(SECRET.as_bytes());
    // Allowed host, clean request: fine.
    assert_eq!(
        node.get(&format!("/out-block?url={target}/clean")).body,
        "status 200: ok"
    );
    // Block: in the URL, a header, or the body (split across two chunks, or base64) — the
    // request is refused and the secret never reaches the host.
    for query in [
        format!("url={target}/?k={SECRET}"),
        format!("header={SECRET}&url={target}/"),
        format!("body=payload-{SECRET}-end&url={target}/"),
        format!("body=x{b64}x&url={target}/"),
    ] {
        let r = node.get(&format!("/out-block?{query}")).body;
        assert!(!r.starts_with("status 200"), "{query}: {r}");
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    {
        let seen = seen.lock().unwrap();
        assert!(!seen.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
        assert!(!seen.windows(b64.len()).any(|w| w == b64.as_bytes()));
    }
    // Redact: the request goes out with the secret masked.
    let r = node
        .get(&format!(
            "/out-redact?body=payload-{SECRET}-end&url={target}/"
        ))
        .body;
    assert_eq!(r, "status 200: ok");
    std::thread::sleep(std::time::Duration::from_millis(400));
    let seen = seen.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("payload-*") && !text.contains(SECRET),
        "{text}"
    );
    let found = node.audit_records(Some("out-block"), "dlp.finding", 4);
    let targets: Vec<String> = found
        .iter()
        .map(|r| r["event"]["target"].to_string())
        .collect();
    for channel in ["egress-url", "egress-header", "egress-body"] {
        assert!(targets.iter().any(|t| t.contains(channel)), "{targets:?}");
    }
}
