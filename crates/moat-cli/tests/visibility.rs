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

/// A histogram's cumulative buckets, `(le, count)`, in order.
fn buckets(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<(f64, f64)> {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name} {labels:?}"));
    let prometheus_parse::Value::Histogram(b) = &sample.value else {
        panic!("{name} is not a histogram");
    };
    let b: Vec<(f64, f64)> = b.iter().map(|h| (h.less_than, h.count)).collect();
    assert!(
        b.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name} not cumulative: {b:?}"
    );
    assert_eq!(b.last().unwrap().0, f64::INFINITY);
    b
}

/// How many observations of the histogram fell at or below `le`.
fn at_most(b: &[(f64, f64)], le: f64) -> f64 {
    b.iter().find(|(bound, _)| *bound >= le).unwrap().1
}

#[test]
fn histograms_and_gauges_move_with_known_traffic() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.deploy(&manifest(dir.path(), "hello", &wasm("hello"), "/hello", ""));
    node.deploy(&manifest(
        dir.path(),
        "slow",
        &wasm("tp_sleep"),
        "/slow",
        "[limits]\nmax_concurrency = 1\n",
    ));
    for _ in 0..4 {
        assert_eq!(node.get("/hello").status, 200);
    }
    // Two at once on a function with one slot: one runs, one waits about 600 ms.
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let url = format!("{}/slow?ms=600", node.gateway);
            let t = std::thread::spawn(move || common::request("GET", &url, None, &[]).status);
            std::thread::sleep(Duration::from_millis(50));
            t
        })
        .collect();
    std::thread::sleep(Duration::from_millis(250));
    let during = scrape(&node);
    let slow = [("function", "slow")];
    assert_eq!(value(&during, "moat_invocations_in_flight", &slow), 1.0);
    assert_eq!(value(&during, "moat_queue_depth", &slow), 1.0);
    for c in calls {
        assert_eq!(c.join().unwrap(), 200);
    }
    let hello = [("function", "hello")];
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let s = scrape(&node);
        let done = |f| {
            at_most(
                &buckets(&s, "moat_invocation_duration_seconds", &[("function", f)]),
                f64::INFINITY,
            )
        };
        if done("hello") == 4.0 && done("slow") == 2.0 {
            break s;
        }
        assert!(Instant::now() < deadline, "invocations not all counted");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Durations: both sleepers took at least 600 ms, hello far less than a second.
    let d = buckets(&after, "moat_invocation_duration_seconds", &slow);
    assert_eq!(at_most(&d, 0.5), 0.0, "{d:?}");
    assert_eq!(at_most(&d, f64::INFINITY), 2.0);
    assert!(value(&after, "moat_invocation_duration_seconds_sum", &slow) >= 1.2);
    assert_eq!(
        value(&after, "moat_invocation_duration_seconds_count", &slow),
        2.0
    );
    let d = buckets(&after, "moat_invocation_duration_seconds", &hello);
    assert_eq!(at_most(&d, 1.0), 4.0, "{d:?}");
    // Queue wait: one sleeper got its slot at once, the other waited for the first.
    let q = buckets(&after, "moat_queue_wait_seconds", &slow);
    assert_eq!(
        (at_most(&q, 0.1), at_most(&q, f64::INFINITY)),
        (1.0, 2.0),
        "{q:?}"
    );
    assert!(value(&after, "moat_queue_wait_seconds_sum", &slow) >= 0.4);
    let q = buckets(&after, "moat_queue_wait_seconds", &hello);
    assert_eq!(at_most(&q, 0.1), 4.0, "{q:?}");
    // Every instance was instantiated and timed.
    let i = buckets(&after, "moat_instantiation_seconds", &[]);
    assert_eq!(at_most(&i, f64::INFINITY), 6.0, "{i:?}");
    assert!(value(&after, "moat_instantiation_seconds_sum", &[]) > 0.0);
    assert_eq!(value(&after, "moat_invocations_in_flight", &slow), 0.0);
    // The deploys were audited: the audit writer's store appends are timed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while value(
        &scrape(&node),
        "moat_store_operation_seconds_count",
        &[("op", "append_audit")],
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "audit appends not timed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(value(&after, "moat_process_resident_memory_bytes", &[]) > 4e6);
    assert!(value(&after, "moat_compiled_artifacts", &[]) >= 2.0);
    assert!(value(&after, "moat_compiled_artifact_bytes", &[]) > 10_000.0);
    // No caller identity in any label: only these label names exist.
    for s in &after.samples {
        for (k, _) in s.labels.iter() {
            assert!(
                [
                    "function", "status", "outcome", "limit", "detector", "decision", "op",
                    "signal"
                ]
                .contains(&k.as_str()),
                "{} has label {k}",
                s.metric
            );
        }
    }
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
