//! A function reaching out: only granted hosts, never an internal address however it is
//! spelled or resolved, never the node itself, and each refusal is recorded.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{Node, manifest, wasm};

/// A tiny HTTP server on loopback: `/redirect?to=URL` answers 302, anything else `target-ok`.
/// Counts the connections it accepts.
fn target() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let reply = match path.split_once("/redirect?to=") {
                Some((_, to)) => format!(
                    "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                ),
                None => {
                    "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\ntarget-ok"
                        .to_string()
                }
            };
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (port, hits)
}

fn fetch(node: &Node, function: &str, url: &str) -> String {
    let r = node.get(&format!("/{function}?url={url}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn start() -> (Node, tempfile::TempDir, u16, Arc<AtomicUsize>) {
    let (port, hits) = target();
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_on(
        &tmp.path().join("data"),
        &[
            "--egress-timeout-ms",
            "1000",
            "--egress-resolve",
            "loop.test=127.0.0.1",
            "--egress-resolve",
            "private.test=10.0.0.1",
            "--egress-resolve",
            "meta.test=169.254.169.254",
            "--egress-resolve",
            "mixed.test=93.184.216.34,127.0.0.1",
            // Rebinding: public on the first lookup, loopback on every later one.
            "--egress-resolve",
            "rebind.test=198.51.100.7;127.0.0.1",
        ],
    );
    let admin_port = node.admin.rsplit(':').next().unwrap().to_string();
    let grants = format!(
        "[permissions]\noutbound_hosts = [\"http://127.0.0.1:{port}\", \"http://*.test:{port}\", \"http://127.0.0.1:{admin_port}\"]\n"
    );
    node.deploy(&manifest(
        tmp.path(),
        "fetch",
        &wasm("tp_fetch"),
        "/fetch",
        &grants,
    ));
    node.deploy(&manifest(
        tmp.path(),
        "nogrant",
        &wasm("tp_fetch"),
        "/nogrant",
        "",
    ));
    // Granted names only: no address is granted by number.
    let names = format!("[permissions]\noutbound_hosts = [\"http://*.test:{port}\"]\n");
    node.deploy(&manifest(
        tmp.path(),
        "wild",
        &wasm("tp_fetch"),
        "/wild",
        &names,
    ));
    (node, tmp, port, hits)
}

#[test]
fn a_granted_host_is_reachable_and_an_ungranted_function_reaches_nothing() {
    let (node, _t, port, hits) = start();
    assert_eq!(
        fetch(&node, "fetch", &format!("http://127.0.0.1:{port}/")),
        "status 200: target-ok"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let denied = fetch(&node, "nogrant", &format!("http://127.0.0.1:{port}/"));
    assert!(
        denied.starts_with("denied: ErrorCode::HttpRequestDenied"),
        "{denied}"
    );
    // Other ports, schemes and hosts are not granted.
    for url in [
        format!("http://127.0.0.1:{}/", port + 1),
        format!("https://127.0.0.1:{port}/"),
        "http://example.com/".into(),
    ] {
        assert!(
            fetch(&node, "fetch", &url).starts_with("denied: ErrorCode::HttpRequestDenied"),
            "{url}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(
        node.metric_labeled(
            "moat_limit_hits_total",
            "function=\"nogrant\",limit=\"egress_denied\""
        ) >= 1
    );
    // Egress by host: the allowed request under the grant that allowed it; refusals under
    // `-`, as the host they named was the guest's choice.
    assert_eq!(
        node.metric_labeled(
            "moat_egress_requests_total",
            &format!("function=\"fetch\",host=\"http://127.0.0.1:{port}\",decision=\"allowed\"")
        ),
        1
    );
    assert_eq!(
        node.metric_labeled(
            "moat_egress_requests_total",
            "function=\"fetch\",host=\"-\",decision=\"denied\""
        ),
        3
    );
    assert!(
        !node
            .admin_get("/metrics", None)
            .body
            .contains("example.com"),
        "a refused host became a label"
    );
    // Each refusal is an audit event naming the function and the target.
    let denied = node.audit_records(Some("nogrant"), "http:request.denied", 1);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(
        denied[0]["event"]["target"],
        format!("host:http://127.0.0.1:{port}")
    );
    assert_eq!(
        node.audit_records(Some("fetch"), "http:request.denied", 3)
            .len(),
        3
    );
}

#[test]
fn internal_addresses_are_refused_however_they_are_reached() {
    let (node, _t, port, hits) = start();
    let mut urls: Vec<String> = ["loop.test", "private.test", "meta.test", "mixed.test"]
        .iter()
        .map(|h| format!("http://{h}:{port}/"))
        .collect();
    // Numeric spellings of loopback, metadata and private addresses.
    for h in [
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "10.0.0.1",
        "[::1]",
    ] {
        urls.push(format!("http://{h}:{port}/"));
    }
    for url in &urls {
        let body = fetch(&node, "wild", url);
        assert!(
            body.starts_with("denied: ErrorCode::HttpRequestDenied"),
            "{url}: {body}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused request reached the target"
    );
    let denials = node.metric_labeled(
        "moat_limit_hits_total",
        "function=\"wild\",limit=\"egress_denied\"",
    );
    assert_eq!(denials as usize, urls.len());
    std::thread::sleep(Duration::from_millis(200));
    let logs = node.moat_ok(&["logs", "wild"]);
    assert!(logs.contains("resolves to 127.0.0.1 (loopback)"), "{logs}");
}

#[test]
fn dns_rebinding_cannot_switch_the_checked_address() {
    let (node, _t, port, hits) = start();
    // The first (only) lookup says 198.51.100.7: the connection goes there (and fails, as
    // nothing answers), never to the loopback address a second lookup would give.
    let body = fetch(&node, "fetch", &format!("http://rebind.test:{port}/"));
    assert!(body.starts_with("denied: "), "{body}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the request was rebound to loopback"
    );
    // The next request looks up again, gets loopback, and is refused.
    let body = fetch(&node, "fetch", &format!("http://rebind.test:{port}/"));
    assert!(
        body.starts_with("denied: ErrorCode::HttpRequestDenied"),
        "{body}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[test]
fn redirects_and_grants_never_reach_the_node_itself() {
    let (node, _t, port, hits) = start();
    let admin = format!("{}/v1/functions", node.admin);
    // Granted by address and port, but it is the node's own admin listener.
    assert!(fetch(&node, "fetch", &admin).starts_with("denied: ErrorCode::HttpRequestDenied"));
    // A redirect from a granted host into the admin API: following it is a new request,
    // refused the same way.
    let body = node
        .get(&format!(
            "/fetch?follow=1&url=http://127.0.0.1:{port}/redirect?to={admin}"
        ))
        .body;
    assert!(
        body.starts_with("denied: ErrorCode::HttpRequestDenied"),
        "{body}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the redirect itself was served"
    );
    std::thread::sleep(Duration::from_millis(50));
}
