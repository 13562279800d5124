//! Hostile functions and callers against the per-function limits. Each test checks the
//! protection's own status, code and `moat_limit_hits_total` series, and that a
//! well-behaved function keeps answering meanwhile.

use std::time::Duration;

use crate::common::{Node, Reply, manifest, request, wasm};

fn deploy(node: &Node, name: &str, program: &str, extra: &str) -> tempfile::TempDir {
    node.deploy_program(name, program, extra)
}

fn hits(node: &Node, function: &str, limit: &str) -> u64 {
    node.metric_labeled(
        "moat_limit_hits_total",
        &format!("function=\"{function}\",limit=\"{limit}\""),
    )
}

/// Limit-hit audit records for `function` and `action`, waiting up to ten seconds until
/// their `count`s add up to `hits` (hits in one second are folded into one record, written
/// when the second ends). Returns the records.
fn limit_records(node: &Node, function: &str, action: &str, hits: u64) -> Vec<serde_json::Value> {
    let (records, counted) = node.audit_folded(Some(function), action, hits);
    assert_eq!(counted, hits, "{records:#?}");
    for r in &records {
        let e = &r["event"];
        assert_eq!(e["function"], function);
        assert_eq!(e["target"], function);
        assert_eq!(e["actor"], "node");
        assert_eq!(e["details"]["aggregated"], true);
        assert!(
            e["request_id"].as_str().is_some_and(|id| id.len() == 32),
            "{e}"
        );
    }
    records
}

fn hello_still_answers(node: &Node) {
    let r = node.get("/hello");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello, world!"));
}

#[test]
fn memory_growth_past_memory_mb_traps_and_is_recorded() {
    let node = Node::start();
    let _d = deploy(&node, "mem", "tp_memory", "[limits]\nmemory_mb = 32\n");
    let _h = deploy(&node, "hello", "hello", "");
    assert_eq!(
        node.get("/mem?mb=8").body,
        "allocated 8 MiB",
        "within the limit"
    );
    node.get("/mem?mb=512").assert_error(500, "function_failed");
    assert_eq!(hits(&node, "mem", "memory"), 1);
    hello_still_answers(&node);
}

#[test]
fn deep_recursion_traps_cleanly() {
    let node = Node::start();
    let _d = deploy(&node, "deep", "tp_recurse", "");
    let _h = deploy(&node, "hello", "hello", "");
    assert_eq!(node.get("/deep?depth=100").status, 200);
    node.get("/deep").assert_error(500, "function_failed");
    hello_still_answers(&node);
    assert_eq!(
        node.get("/deep?depth=100").status,
        200,
        "the node is unharmed"
    );
}

#[test]
fn beyond_max_concurrency_and_a_short_queue_callers_get_503() {
    let node = Node::start();
    let _d = deploy(&node, "slow", "tp_sleep", "[limits]\nmax_concurrency = 1\n");
    let _h = deploy(&node, "hello", "hello", "");
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let url = format!("{}/slow?ms=2500", node.gateway);
            let t = std::thread::spawn(move || request("GET", &url, None, &[]));
            std::thread::sleep(Duration::from_millis(100));
            t
        })
        .collect();
    // The function at its limit does not slow another one.
    let t = std::time::Instant::now();
    hello_still_answers(&node);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let replies: Vec<Reply> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 1);
    for r in replies.iter().filter(|r| r.status != 200) {
        r.assert_error(503, "overloaded");
    }
    assert_eq!(hits(&node, "slow", "concurrency"), 2);
}

#[test]
fn an_oversized_body_is_refused_with_413() {
    let node = Node::start();
    let _d = deploy(&node, "echo", "echo", "[limits]\nmax_body_bytes = 1000\n");
    let url = format!("{}/echo", node.gateway);
    assert_eq!(request("POST", &url, Some(&[b'a'; 1000]), &[]).status, 200);
    // Declared too large: refused before any byte of the body is read.
    request("POST", &url, Some(&[b'a'; 1001]), &[]).assert_error(413, "payload_too_large");
    // Chunked, with no declared length, and never finished: refused while streaming.
    let head = "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
    let mut raw = head.as_bytes().to_vec();
    for _ in 0..10 {
        raw.extend_from_slice(b"190\r\n");
        raw.extend_from_slice(&[b'b'; 400]);
        raw.extend_from_slice(b"\r\n");
    }
    let reply = crate::common::raw_request(&node.gateway, &raw, Duration::from_secs(10));
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("payload_too_large"), "{reply}");
    assert_eq!(hits(&node, "echo", "body"), 2);
}

#[test]
fn a_response_over_max_response_bytes_is_refused_or_cut_off() {
    let node = Node::start();
    let _d = deploy(
        &node,
        "big",
        "tp_big_response",
        "[limits]\nmax_response_bytes = 100000\n",
    );
    assert_eq!(node.get("/big?bytes=100000").body.len(), 100_000);
    // Judged whole before it starts: a proper error.
    node.get("/big?bytes=200000")
        .assert_error(502, "response_too_large");
    assert_eq!(hits(&node, "big", "response_size"), 1);

    // Longer than the hold-back buffer: it has started, so it is cut off.
    let _d2 = deploy(
        &node,
        "huge",
        "tp_big_response",
        "[limits]\nmax_response_bytes = 2000000\n",
    );
    let reply = crate::common::raw_request(
        &node.gateway,
        b"GET /huge?bytes=8000000 HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(20),
    );
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    assert!(
        reply.len() < 2_100_000,
        "not cut off: {} bytes",
        reply.len()
    );
    assert!(
        !reply.ends_with("0\r\n\r\n"),
        "the cut-off response looked complete"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(hits(&node, "huge", "response_size"), 1);
}

#[test]
fn callers_over_their_rate_get_429_with_retry_after_and_others_do_not() {
    let node = Node::start();
    let _d = deploy(
        &node,
        "limited",
        "hello",
        "[limits]\nrate_limit = \"3/m\"\n",
    );
    for _ in 0..3 {
        assert_eq!(node.get("/limited").status, 200);
    }
    let r = node.get("/limited");
    r.assert_error(429, "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // X-Forwarded-For from an untrusted peer does not make a new client.
    let url = format!("{}/limited", node.gateway);
    let spoof = [("x-forwarded-for".to_string(), "198.51.100.7".to_string())];
    request("GET", &url, None, &spoof).assert_error(429, "rate_limited");
    // An invented token does not buy a fresh bucket either.
    let invented = [(
        "authorization".to_string(),
        "Bearer moat_made_up".to_string(),
    )];
    request("GET", &url, None, &invented).assert_error(429, "rate_limited");
    // A caller with its own (live) token has its own bucket.
    let token = [(
        "authorization".to_string(),
        format!("Bearer {}", node.token()),
    )];
    assert_eq!(request("GET", &url, None, &token).status, 200);
    assert_eq!(hits(&node, "limited", "rate"), 3);
    // Each refusal is in the audit chain: the first at once, the next ones folded.
    let records = limit_records(&node, "limited", "limit.rate", 3);
    assert_eq!(records[0]["event"]["outcome"], "denied");
    assert_eq!(records[0]["event"]["details"]["count"], 1);
}

#[test]
fn a_rate_limited_flood_is_folded_into_a_few_audit_records() {
    let node = Node::start();
    let _d = deploy(
        &node,
        "flooded",
        "hello",
        "[limits]\nrate_limit = \"1/h\"\n",
    );
    assert_eq!(node.get("/flooded").status, 200);
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..150 {
        let r = node.get("/flooded");
        assert_eq!(r.status, 429);
        ids.push(r.header("x-request-id").unwrap().to_string());
    }
    let secs = started.elapsed().as_secs();
    let records = limit_records(&node, "flooded", "limit.rate", 150);
    // One record at once, then at most one per second of flood (plus the window that ends
    // after it): the chain grows with time, not with the attacker's request rate.
    assert!(
        records.len() as u64 <= secs + 3,
        "{} records for a {secs} s flood",
        records.len()
    );
    let first = &records[0]["event"]["details"];
    assert_eq!(first["first_request_id"], ids[0].as_str());
    let last = &records.last().unwrap()["event"]["details"];
    assert_eq!(last["last_request_id"], ids[149].as_str());
}

#[test]
fn a_timeout_is_counted_and_audited() {
    let node = Node::start();
    let _d = deploy(&node, "sleepy", "tp_sleep", "[limits]\ntimeout_ms = 300\n");
    node.get("/sleepy?ms=5000").assert_error(504, "timeout");
    assert_eq!(hits(&node, "sleepy", "timeout"), 1);
    let r = limit_records(&node, "sleepy", "limit.timeout", 1);
    assert_eq!(r[0]["event"]["outcome"], "denied");
    assert_eq!(r[0]["event"]["details"]["limit"], "timeout");
}

#[test]
fn a_trap_is_audited_with_its_function_and_count() {
    let node = Node::start();
    let _d = deploy(&node, "crash", "tp_trap", "");
    let r = node.get("/crash");
    r.assert_error(500, "function_failed");
    let records = limit_records(&node, "crash", "function.trap", 1);
    let e = &records[0]["event"];
    assert_eq!(e["outcome"], "failed");
    assert_eq!(e["request_id"], r.header("x-request-id").unwrap());
    // The trap text is for the function's log only, not the chain.
    assert!(!e.to_string().contains("secret-internal-detail"), "{e}");
}

#[test]
fn behind_a_trusted_proxy_forwarded_clients_get_their_own_buckets() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_on(
        &tmp.path().join("data"),
        &["--trusted-proxy", "127.0.0.0/8"],
    );
    node.deploy(&manifest(
        tmp.path(),
        "limited",
        &wasm("hello"),
        "/limited",
        "[limits]\nrate_limit = \"1/m\"\n",
    ));
    let url = format!("{}/limited", node.gateway);
    let from = |ip: &str| [("x-forwarded-for".to_string(), ip.to_string())];
    assert_eq!(
        request("GET", &url, None, &from("198.51.100.1")).status,
        200
    );
    request("GET", &url, None, &from("198.51.100.1")).assert_error(429, "rate_limited");
    assert_eq!(
        request("GET", &url, None, &from("198.51.100.2")).status,
        200
    );
}

#[test]
fn a_log_flood_is_bounded_per_invocation_and_counted() {
    let node = Node::start();
    let _d = deploy(&node, "flood", "tp_big_log", "");
    let r = node.get("/flood?bytes=10485760");
    assert_eq!((r.status, r.body.as_str()), (200, "done"));
    std::thread::sleep(Duration::from_millis(300));
    let dropped = node.metric("moat_function_log_bytes_dropped_total");
    assert!(dropped >= 10_485_760 - 64 * 1024, "dropped only {dropped}");
    let logs = node.moat_ok(&["logs", "flood", "--output", "json"]);
    let kept: usize = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["stream"] == "stdout")
        .map(|v| v["text"].as_str().unwrap_or("").len())
        .sum();
    assert!(kept <= 64 * 1024, "kept {kept} bytes");
    assert!(
        logs.contains("dropped past the per-invocation bound"),
        "{logs}"
    );
}
