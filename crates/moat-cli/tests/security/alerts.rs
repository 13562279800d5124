//! Alerts: a rule over audit events fires a signed webhook (`x-moat-signature`, keyed by a
//! Moat secret) once its threshold is passed, and not again during its quiet period.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use crate::common::{Node, manifest, wasm};

/// Each delivery: its `x-moat-signature` header and its body.
pub(crate) type Deliveries = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A loopback webhook receiver: keeps each request's signature header and body.
pub(crate) fn receiver() -> (u16, Deliveries) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(500)));
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then as much body as content-length says.
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if data.len() >= end + 4 + len {
                        let head = text[..end].to_string();
                        let sig = head
                            .lines()
                            .find_map(|l| l.strip_prefix("x-moat-signature: "))
                            .unwrap_or("")
                            .to_string();
                        keep.lock()
                            .unwrap()
                            .push((sig, data[end + 4..end + 4 + len].to_vec()));
                        break;
                    }
                }
            }
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (port, got)
}

#[test]
fn a_rule_fires_a_signed_webhook_once_per_quiet_period() {
    let (port, got) = receiver();
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("hook-key", "whsec_test_0123456789");
    node.moat_ok(&["kv", "create", "private"]);
    node.deploy(&manifest(dir.path(), "snoop", &wasm("tp_kv"), "/snoop", ""));
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        format!(
            r#"[[alert]]
name = "kv-snooping"
when = {{ kind = "event_count", action = "kv:*.denied" }}
group_by = "function"
window = "60s"
threshold = 2
quiet = "60s"
sinks = [{{ kind = "webhook", url = "http://127.0.0.1:{port}/hook", secret_name = "hook-key" }}, {{ kind = "log" }}]
"#
        ),
    )
    .unwrap();
    node.moat_ok(&["alerts", "add", rules.to_str().unwrap()]);
    assert!(node.moat_ok(&["alerts", "list"]).contains("kv-snooping"));

    // Two denials: at the threshold, nothing yet; the third passes it.
    for _ in 0..2 {
        node.get("/snoop?bucket=private&op=get&key=a");
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(got.lock().unwrap().is_empty());
    node.get("/snoop?bucket=private&op=get&key=a");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while got.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no webhook arrived");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (sig, body) = got.lock().unwrap()[0].clone();
    assert!(
        moat_telemetry::alerts::verify_webhook(&body, b"whsec_test_0123456789", &sig),
        "bad signature {sig:?} over {}",
        String::from_utf8_lossy(&body)
    );
    assert!(!moat_telemetry::alerts::verify_webhook(
        &body,
        b"another-key",
        &sig
    ));
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["alert"], "kv-snooping", "{payload}");
    assert_eq!(payload["group"]["function"], "snoop", "{payload}");
    assert!(!String::from_utf8_lossy(&body).contains("whsec"));

    // Quiet period: more denials, no second delivery.
    for _ in 0..5 {
        node.get("/snoop?bucket=private&op=get&key=a");
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(got.lock().unwrap().len(), 1);

    // A webhook without a signing secret is refused.
    std::fs::write(
        &rules,
        format!(
            "[[alert]]\nname = \"unsigned\"\nwhen = {{ kind = \"any\", action = \"dlp.finding\" }}\nwindow = \"10s\"\nsinks = [{{ kind = \"webhook\", url = \"http://127.0.0.1:{port}/\" }}]\n"
        ),
    )
    .unwrap();
    let out = node.moat(&["alerts", "add", rules.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("secret_name"),
        "{out:?}"
    );
}
