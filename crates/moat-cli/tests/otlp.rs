//! OpenTelemetry export: a node started with `--otlp-endpoint` sends a trace per request
//! (a `moat.request` root with its five phases as children) and each line of function
//! output as a log record, as OTLP/HTTP protobuf, to a collector stub on loopback; a
//! collector that is down costs requests nothing and is counted.
//!
//! The stub decodes the protobuf with the OTLP field numbers and hands the test the same
//! message in OTLP's JSON mapping (camelCase names, hex ids, 64-bit numbers as strings), so
//! the assertions read like the spec.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Node, manifest, request, wasm};
use serde_json::{Value, json};

/// One protobuf field's value, as the wire format has it.
#[derive(Debug, Clone)]
enum Wire {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
}

/// A protobuf message decoded without its schema: each field with its number.
#[derive(Debug, Default)]
struct Pb(Vec<(u64, Wire)>);

fn read_varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = buf[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
    }
    panic!("varint longer than 10 bytes");
}

impl Pb {
    fn decode(buf: &[u8]) -> Pb {
        let (mut fields, mut at) = (Vec::new(), 0);
        while at < buf.len() {
            let key = read_varint(buf, &mut at);
            let value = match key & 7 {
                0 => Wire::Varint(read_varint(buf, &mut at)),
                1 => {
                    at += 8;
                    Wire::Fixed64(u64::from_le_bytes(buf[at - 8..at].try_into().unwrap()))
                }
                2 => {
                    let len = read_varint(buf, &mut at) as usize;
                    at += len;
                    Wire::Bytes(buf[at - len..at].to_vec())
                }
                w => panic!("wire type {w} is not used by OTLP"),
            };
            fields.push((key >> 3, value));
        }
        Pb(fields)
    }

    fn all(&self, field: u64) -> impl Iterator<Item = &Wire> {
        self.0
            .iter()
            .filter(move |(n, _)| *n == field)
            .map(|(_, w)| w)
    }

    fn bytes(&self, field: u64) -> Option<&[u8]> {
        self.all(field).find_map(|w| match w {
            Wire::Bytes(b) => Some(b.as_slice()),
            _ => None,
        })
    }

    fn messages(&self, field: u64) -> Vec<Pb> {
        self.all(field)
            .filter_map(|w| match w {
                Wire::Bytes(b) => Some(Pb::decode(b)),
                _ => None,
            })
            .collect()
    }

    fn text(&self, field: u64) -> Value {
        self.bytes(field).map_or(Value::Null, |b| {
            String::from_utf8(b.to_vec()).unwrap().into()
        })
    }

    fn hex(&self, field: u64) -> Value {
        self.bytes(field)
            .map_or(Value::Null, |b| hex::encode(b).into())
    }

    fn number(&self, field: u64) -> Value {
        match self.all(field).next() {
            Some(Wire::Varint(v) | Wire::Fixed64(v)) => v.to_string().into(),
            _ => Value::Null,
        }
    }

    /// `common.v1.AnyValue`, in the JSON mapping.
    fn any_value(&self) -> Value {
        if let Some(s) = self.bytes(1) {
            return json!({ "stringValue": String::from_utf8(s.to_vec()).unwrap() });
        }
        match (self.all(2).next(), self.all(3).next()) {
            (Some(Wire::Varint(b)), _) => json!({ "boolValue": *b != 0 }),
            (_, Some(Wire::Varint(i))) => json!({ "intValue": i.to_string() }),
            other => panic!("unexpected AnyValue {other:?}"),
        }
    }

    /// Repeated `common.v1.KeyValue` at `field`, in the JSON mapping.
    fn attributes(&self, field: u64) -> Value {
        self.messages(field)
            .iter()
            .map(|kv| json!({ "key": kv.text(1), "value": kv.messages(2)[0].any_value() }))
            .collect()
    }
}

/// `ExportTraceServiceRequest` (`/v1/traces`) or `ExportLogsServiceRequest` (`/v1/logs`) in
/// the JSON mapping, for the fields Moat sends.
fn otlp_json(path: &str, body: &[u8]) -> Value {
    let request = Pb::decode(body);
    let resources: Vec<Value> = request
        .messages(1)
        .iter()
        .map(|rs| {
            let resource = json!({ "attributes": rs.messages(1)[0].attributes(1) });
            let scopes: Vec<Value> = rs
                .messages(2)
                .iter()
                .map(|scoped| {
                    let scope = &scoped.messages(1)[0];
                    let scope = json!({ "name": scope.text(1), "version": scope.text(2) });
                    let items: Vec<Value> = scoped
                        .messages(2)
                        .iter()
                        .map(|i| match path {
                            "/v1/traces" => json!({
                                "traceId": i.hex(1), "spanId": i.hex(2),
                                "parentSpanId": i.hex(4), "name": i.text(5),
                                "kind": i.number(6),
                                "startTimeUnixNano": i.number(7),
                                "endTimeUnixNano": i.number(8),
                                "attributes": i.attributes(9),
                                "status": i.messages(15).first().map(|st| json!({ "code": st.number(3) })),
                            }),
                            _ => json!({
                                "timeUnixNano": i.number(1), "severityNumber": i.number(2),
                                "severityText": i.text(3),
                                "body": i.messages(5)[0].any_value(),
                                "attributes": i.attributes(6),
                                "traceId": i.hex(9), "spanId": i.hex(10),
                            }),
                        })
                        .collect();
                    let key = if path == "/v1/traces" { "spans" } else { "logRecords" };
                    json!({ "scope": scope, (key): items })
                })
                .collect();
            let key = if path == "/v1/traces" { "scopeSpans" } else { "scopeLogs" };
            json!({ "resource": resource, (key): scopes })
        })
        .collect();
    let key = if path == "/v1/traces" {
        "resourceSpans"
    } else {
        "resourceLogs"
    };
    json!({ (key): resources })
}

/// A minimal OTLP/HTTP collector: answers every POST with 200 and passes on the path, the
/// body and the body in the JSON mapping.
fn collector() -> (String, mpsc::Receiver<(String, Vec<u8>, Value)>) {
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
                    let (mut length, mut protobuf) = (0, false);
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
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-type")
                        {
                            protobuf = v.trim() == "application/x-protobuf";
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    assert!(protobuf, "OTLP body is not application/x-protobuf");
                    let json = otlp_json(&path, &body);
                    let _ = tx.send((path, body, json));
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
        let Ok((path, raw, body)) = received.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        assert!(
            !raw.windows(token.len()).any(|w| w == token.as_bytes()),
            "a token was exported"
        );
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

    // Audit checkpoints go to the collector too, as log records of the `audit-checkpoint`
    // stream: a copy of the chain's signed head outside the store.
    let said = node.moat_ok(&["audit-log", "checkpoint"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let checkpoint = loop {
        assert!(Instant::now() < deadline, "no checkpoint was exported");
        let Ok((path, _, body)) = received.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if path != "/v1/logs" {
            continue;
        }
        let found = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| attr(l, "moat.stream").unwrap()["stringValue"] == "audit-checkpoint")
            .cloned();
        if let Some(found) = found {
            break found;
        }
    };
    let line = checkpoint["body"]["stringValue"].as_str().unwrap();
    assert!(line.starts_with("moat-checkpoint "), "{line}");
    assert!(
        said.contains(line),
        "the CLI printed {said}, the collector got {line}"
    );
    assert!(attr(&checkpoint, "moat.function").is_none());
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
