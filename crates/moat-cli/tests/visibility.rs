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

/// A running `moat logs NAME -f --output json`, its records read as they come.
struct Follower {
    child: std::process::Child,
    records: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Follower {
    fn start(node: &Node, name: &str, token: Option<&str>) -> Follower {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_moat"));
        cmd.args(["--admin", &node.admin, "--data-dir"])
            .arg(&node.data_dir)
            .env_remove("MOAT_TOKEN");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        let mut child = cmd
            .args(["logs", name, "-f", "--output", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, records) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let record = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("`moat logs -f` printed non-JSON ({e}): {line}"));
                let _ = tx.send(record);
            }
        });
        Follower { child, records }
    }

    /// Every record printed until one satisfies `last` (included), waiting up to 20 s.
    fn until(
        &self,
        what: &str,
        mut last: impl FnMut(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.records.recv_timeout(left) {
                Ok(record) => {
                    let done = last(&record);
                    seen.push(record);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("`moat logs -f` did not print {what}; printed {seen:?}"),
            }
        }
    }

    /// Waits up to 20 s for the command to exit; its status and what it said on stderr.
    fn exit(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "`moat logs -f` did not exit within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        (status, stderr)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tp-log writes `hello from stdout request /talker?MARKER` and the same on stderr.
fn marker_and_stream(record: &serde_json::Value) -> (String, String) {
    let text = record["text"].as_str().unwrap_or_default();
    let marker = text.rsplit_once('?').map_or("", |(_, m)| m.trim_end());
    (
        marker.to_string(),
        record["stream"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn logs_follow_prints_each_line_once_in_order_from_the_backlog_on() {
    let node = Node::start();
    let _dir = node.deploy_program("talker", "tp_log", "");
    let invoke = |marker: &str| assert_eq!(node.get(&format!("/talker?{marker}")).status, 200);
    let lines_of = |markers: &[String]| -> Vec<(String, String)> {
        let mut lines: Vec<(String, String)> = markers
            .iter()
            .flat_map(|m| [(m.clone(), "stdout".into()), (m.clone(), "stderr".into())])
            .collect();
        lines.sort();
        lines
    };
    let stored = || -> Vec<serde_json::Value> {
        node.moat_ok(&["logs", "talker", "--output", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let before: Vec<String> = (0..3).map(|i| format!("before-{i}")).collect();
    for m in &before {
        invoke(m);
    }
    // Stored before anyone follows, so they come from the backlog.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stored().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "the first invocations were not stored"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let follower = Follower::start(&node, "talker", None);
    let mut records = follower.until("the backlog", |r| r["id"] == stored()[5]["id"]);
    assert_eq!(records, stored());
    let after: Vec<String> = (0..7).map(|i| format!("after-{i}")).collect();
    for m in &after {
        invoke(m);
    }
    let all: Vec<String> = before.iter().chain(&after).cloned().collect();
    let expected = lines_of(&all);
    let mut count = records.len();
    records.extend(follower.until("the invocations made while following", |_| {
        count += 1;
        count == expected.len()
    }));
    // Each invocation's two lines exactly once (a duplicate would come in place of a line
    // still missing). Invocations finish after their responses are sent, so one made
    // later may be stored first: the order is the store's, ids rising.
    let mut printed: Vec<(String, String)> = records.iter().map(marker_and_stream).collect();
    printed.sort();
    assert_eq!(printed, expected);
    assert_eq!(records, stored());
    let ids: Vec<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids out of order: {ids:?}"
    );
}

fn create_token(node: &Node, role: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(
        &node.moat_ok(&["tokens", "create", "--role", role, "--output", "json"]),
    )
    .unwrap();
    (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn logs_follow_needs_the_logs_permission_while_it_runs() {
    let node = Node::start();
    let _dir = node.deploy_program("talker", "tp_log", "");
    // An auditor may use the admin API but not read function logs.
    let (auditor, _) = create_token(&node, "auditor");
    let refused = node.admin_get(
        "/v1/functions/talker/logs?follow=true",
        Some(auditor.as_str()),
    );
    refused.assert_error(403, "forbidden");
    let (status, stderr) = Follower::start(&node, "talker", Some(&auditor)).exit();
    assert!(!status.success());
    assert!(stderr.contains("forbidden"), "{stderr}");
    let unauthenticated = node.admin_get("/v1/functions/talker/logs?follow=true", None);
    unauthenticated.assert_error(401, "unauthorized");

    // A deployer may follow, until its token is revoked.
    let (deployer, id) = create_token(&node, "deployer");
    let follower = Follower::start(&node, "talker", Some(&deployer));
    assert_eq!(node.get("/talker?while-allowed").status, 200);
    follower.until("the invocation", |r| {
        marker_and_stream(r) == ("while-allowed".into(), "stderr".into())
    });
    node.moat_ok(&["tokens", "revoke", &id]);
    let (status, stderr) = follower.exit();
    assert!(!status.success());
    assert!(stderr.contains("may no longer read logs"), "{stderr}");
}

#[test]
fn logs_follow_ends_when_the_function_is_deleted_or_the_node_stops() {
    let node = Node::start();
    let _dir = node.deploy_program("talker", "tp_log", "");
    let _other = node.deploy_program("other", "tp_log", "");
    let missing = Follower::start(&node, "nobody", None).exit();
    assert!(!missing.0.success());
    assert!(missing.1.contains("not found"), "{}", missing.1);

    let deleted = Follower::start(&node, "talker", None);
    let stopped = Follower::start(&node, "other", None);
    assert_eq!(node.get("/talker?first").status, 200);
    assert_eq!(node.get("/other?first").status, 200);
    deleted.until("the invocation", |r| marker_and_stream(r).0 == "first");
    stopped.until("the invocation", |r| marker_and_stream(r).0 == "first");

    node.moat_ok(&["functions", "delete", "talker"]);
    let (status, stderr) = deleted.exit();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("`talker` was deleted"), "{stderr}");

    assert!(node.stop().success());
    let (status, stderr) = stopped.exit();
    assert!(!status.success());
    assert!(stderr.contains("node is stopping"), "{stderr}");
}

#[test]
fn log_export_writes_each_stored_record_as_a_json_line() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export.jsonl");
    let node = Node::start_on(
        &tmp.path().join("data"),
        &["--log-export", export.to_str().unwrap()],
    );
    let _dir = node.deploy_program("talker", "tp_log", "[dlp]\ndetectors = [\"credit-card\"]\n");
    let r = node.get("/talker?card-4111111111111111");
    assert_eq!(r.status, 200);
    let rid = r.header("x-request-id").unwrap().to_string();

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exported = loop {
        let text = std::fs::read_to_string(&export).unwrap_or_default();
        let mine: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
            .filter(|v| v["request_id"] == rid.as_str())
            .collect();
        if mine.len() >= 2 || std::time::Instant::now() > deadline {
            break mine;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(exported.len(), 2, "{exported:?}");
    // The same records, ids and all, as the store keeps them: redacted.
    let stored: Vec<serde_json::Value> = node
        .moat_ok(&["logs", "talker", "--request", &rid, "--output", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stored, exported);
    for record in &exported {
        assert_eq!(record["function"], "talker");
        assert!(record["id"].as_i64().is_some(), "{record}");
        let text = record["text"].as_str().unwrap();
        // The line held the card (the guest prints its request path), masked.
        assert!(
            text.contains("hello from") && text.contains("/talker?card-"),
            "{text}"
        );
        assert!(
            !text.contains("4111111111111111"),
            "an unredacted card was exported: {text}"
        );
    }
    let mut streams: Vec<&str> = exported
        .iter()
        .map(|r| r["stream"].as_str().unwrap())
        .collect();
    streams.sort();
    assert_eq!(streams, ["stderr", "stdout"]);
    let mode = std::fs::metadata(&export).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the export file is the node's alone");
    assert!(node.metric("moat_log_export_written_total") >= 2);
    assert_eq!(node.metric("moat_log_export_dropped_total"), 0);

    // Audit checkpoints are exported there too: a copy of the signed head outside the
    // store, which `audit-log verify --checkpoint` takes.
    node.moat_ok(&["audit-log", "checkpoint"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&export).unwrap();
        let found = text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["audit_checkpoint"].as_str().map(str::to_string)
        });
        if let Some(line) = found {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint exported"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let cp = tmp.path().join("checkpoint.txt");
    std::fs::write(&cp, format!("{line}\n")).unwrap();
    node.moat_ok(&["audit-log", "verify", "--checkpoint", cp.to_str().unwrap()]);
}

#[test]
fn a_log_export_path_that_cannot_be_written_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, output) = Node::try_start_on(
        &tmp.path().join("data"),
        &["--log-export", "/nonexistent-dir/export.jsonl"],
    );
    assert!(node.is_none());
    assert!(output.contains("--log-export"), "{output}");
}
