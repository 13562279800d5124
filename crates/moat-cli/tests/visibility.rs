//! What an operator sees: `/metrics` in the Prometheus text format, moving as traffic says,
//! and `moat logs -f` following a function's output as it happens.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::{Node, manifest, wasm};

fn scrape(node: &Node) -> prometheus_parse::Scrape {
    let text = node.admin_get("/metrics", None).body;
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("/metrics parses as Prometheus text format")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn metrics_parse_and_move_with_known_traffic() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.deploy(&manifest(dir.path(), "hello", &wasm("hello"), "/hello", ""));
    let before = scrape(&node);
    for _ in 0..5 {
        assert_eq!(node.get("/hello").status, 200);
    }
    assert_eq!(node.get("/nowhere").status, 404);
    let after = scrape(&node);
    let ok = [("function", "hello"), ("status", "200")];
    assert_eq!(
        value(&after, "moat_gateway_responses_total", &ok)
            - value(&before, "moat_gateway_responses_total", &ok),
        5.0
    );
    let completed = [("function", "hello"), ("outcome", "completed")];
    let deadline = Instant::now() + Duration::from_secs(5);
    // Invocation outcomes are counted when each instance has finished, just after replying.
    while value(&scrape(&node), "moat_invocations_total", &completed) < 5.0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every sample's family has a TYPE; counters never go down.
    for s in &after.samples {
        assert!(!s.metric.is_empty());
        let was = value(&before, &s.metric, &[]);
        if matches!(s.value, prometheus_parse::Value::Counter(_)) {
            assert!(
                value(&after, &s.metric, &[]) >= was,
                "{} went down",
                s.metric
            );
        }
    }
    assert!(after.docs.contains_key("moat_audit_records_written_total"));
}

#[test]
fn logs_follow_shows_a_new_invocation() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.deploy(&manifest(
        dir.path(),
        "talker",
        &wasm("tp_log"),
        "/talker",
        "",
    ));
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_moat"))
        .args(["--admin", &node.admin, "--data-dir"])
        .arg(&node.data_dir)
        .args(["logs", "talker", "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let marker = format!("marker-{}", std::process::id());
    assert_eq!(node.get(&format!("/talker?{marker}")).status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(&marker) => break,
            Ok(line) => seen.push(line),
            Err(_) => panic!("`moat logs -f` did not show the new invocation; saw {seen:?}"),
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
}
