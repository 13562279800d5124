//! OpenTelemetry export: a node started with `--otlp-endpoint` sends a trace per request
//! (a `moat.request` root with its five phases as children) and each line of function
//! output as a log record, to a collector stub on loopback; a collector that is down costs
//! requests nothing and is counted.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Node, manifest, request, wasm};
use serde_json::Value;

/// A minimal OTLP/HTTP collector: answers every POST with 200 and passes on (path, JSON).
fn collector() -> (String, mpsc::Receiver<(String, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut length = 0;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let json: Value = serde_json::from_slice(&body).expect("OTLP body is JSON");
                    let _ = tx.send((path, json));
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
                }
            });
        }
    });
    (url, rx)
}

fn attr<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn nanos(v: &Value) -> u128 {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn a_request_is_exported_as_a_trace_of_its_phases_and_its_output_as_log_records() {
    let (url, received) = collector();
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_on(&tmp.path().join("data"), &["--otlp-endpoint", &url]);
    node.deploy(&manifest(
        tmp.path(),
        "talker",
        &wasm("tp_log"),
        "/talker",
        "[dlp]\ndetectors = [\"credit-card\"]\n",
    ));
    let token = node.token();
    let r = request(
        "GET",
        &format!("{}/talker?otlp-marker", node.gateway),
        None,
        &[("authorization".into(), format!("Bearer {token}"))],
    );
    assert_eq!(r.status, 200);
    let rid = r.header("x-request-id").unwrap().to_string();

    let (mut spans, mut logs) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(15);
    while (spans.len() < 6 || logs.len() < 2) && Instant::now() < deadline {
        let Ok((path, body)) = received.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        assert!(!body.to_string().contains(&token), "a token was exported");
        match path.as_str() {
            "/v1/traces" => {
                let service = &body["resourceSpans"][0]["resource"];
                assert_eq!(
                    attr(service, "service.name").unwrap()["stringValue"],
                    "moat"
                );
                for s in body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .unwrap()
                {
                    if s["traceId"] == rid.as_str() {
                        spans.push(s.clone());
                    }
                }
            }
            "/v1/logs" => {
                for l in body["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
                    .as_array()
                    .unwrap()
                {
                    if l["traceId"] == rid.as_str() {
                        logs.push(l.clone());
                    }
                }
            }
            other => panic!("unexpected OTLP path {other}"),
        }
    }

    let mut names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "moat.dlp",
            "moat.execution",
            "moat.instantiation",
            "moat.policy",
            "moat.request",
            "moat.validation"
        ],
        "{spans:#?}"
    );
    let root = spans.iter().find(|s| s["name"] == "moat.request").unwrap();
    assert_eq!(
        attr(root, "moat.function").unwrap()["stringValue"],
        "talker"
    );
    assert_eq!(attr(root, "moat.request_id").unwrap()["stringValue"], rid);
    assert_eq!(
        attr(root, "http.response.status_code").unwrap()["intValue"],
        "200"
    );
    let (start, end) = (
        nanos(&root["startTimeUnixNano"]),
        nanos(&root["endTimeUnixNano"]),
    );
    assert!(start < end);
    for child in spans.iter().filter(|s| s["name"] != "moat.request") {
        assert_eq!(child["parentSpanId"], root["spanId"], "{child}");
        assert_ne!(child["spanId"], root["spanId"]);
        let (s, e) = (
            nanos(&child["startTimeUnixNano"]),
            nanos(&child["endTimeUnixNano"]),
        );
        assert!(start <= s && s <= e && e <= end, "{child} outside {root}");
    }
    let dlp = spans.iter().find(|s| s["name"] == "moat.dlp").unwrap();
    assert_eq!(attr(dlp, "moat.dlp.mode").unwrap()["stringValue"], "block");
    // Phases follow one another: policy, validation, instantiation, execution.
    let at =
        |name: &str| nanos(&spans.iter().find(|s| s["name"] == name).unwrap()["startTimeUnixNano"]);
    assert!(at("moat.policy") <= at("moat.validation"));
    assert!(at("moat.validation") <= at("moat.instantiation"));
    assert!(at("moat.instantiation") <= at("moat.execution"));

    let bodies: Vec<&str> = logs
        .iter()
        .map(|l| l["body"]["stringValue"].as_str().unwrap())
        .collect();
    assert!(
        bodies.contains(&"hello from stdout request /talker?otlp-marker"),
        "{logs:#?}"
    );
    assert!(bodies.contains(&"hello from stderr request /talker?otlp-marker"));
    let execution = spans
        .iter()
        .find(|s| s["name"] == "moat.execution")
        .unwrap();
    for l in &logs {
        assert_eq!(attr(l, "moat.function").unwrap()["stringValue"], "talker");
        assert_eq!(attr(l, "moat.request_id").unwrap()["stringValue"], rid);
        assert_eq!(l["spanId"], execution["spanId"]);
    }
}

#[test]
fn a_collector_that_is_down_is_counted_and_costs_requests_nothing() {
    // A port that was just free: nothing listens there.
    let url = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_on(&tmp.path().join("data"), &["--otlp-endpoint", &url]);
    let _d = node.deploy_program("hello", "hello", "");
    for _ in 0..3 {
        assert_eq!(node.get("/hello").status, 200);
    }
    let failures = |signal: &str| {
        node.metric_labeled(
            "moat_otlp_export_failures_total",
            &format!("signal=\"{signal}\""),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while failures("traces") == 0 {
        assert!(
            Instant::now() < deadline,
            "the failed export was not counted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        node.metric_labeled("moat_otlp_exported_total", "signal=\"traces\""),
        0
    );
    assert_eq!(node.get("/hello").status, 200);
}

#[test]
fn a_bad_otlp_endpoint_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, output) = Node::try_start_on(
        &tmp.path().join("data"),
        &["--otlp-endpoint", "ftp://example.com"],
    );
    assert!(node.is_none());
    assert!(output.contains("--otlp-endpoint"), "{output}");
}
