//! Hostile callers against the gateway's HTTP handling: every refusal is SPEC §4 JSON with
//! a request id, and a connection that tried to smuggle is closed.

use std::time::{Duration, Instant};

use crate::common::{Node, manifest, raw_request, wasm};

fn node() -> (Node, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_on(&tmp.path().join("data"), &["--client-timeout-ms", "500"]);
    node.deploy(&manifest(tmp.path(), "hello", &wasm("hello"), "/hello", ""));
    node.deploy(&manifest(tmp.path(), "echo", &wasm("echo"), "/echo", ""));
    (node, tmp)
}

/// Asserts a raw response is the given JSON refusal and the only response on the wire.
fn assert_refused(reply: &str, status: u16, code: &str) {
    assert!(reply.starts_with(&format!("HTTP/1.1 {status} ")), "{reply}");
    assert!(reply.contains(&format!("\"code\":\"{code}\"")), "{reply}");
    assert!(reply.to_lowercase().contains("x-request-id: "), "{reply}");
    assert_eq!(
        reply.matches("HTTP/1.1 ").count(),
        1,
        "more than one response: {reply}"
    );
}

fn hits(node: &Node, code: &str) -> u64 {
    node.metric_labeled("moat_limit_hits_total", &format!("limit=\"{code}\""))
}

#[test]
fn content_length_with_transfer_encoding_is_refused_and_the_connection_closed() {
    let (node, _t) = node();
    // A classic CL.TE smuggle: a proxy reading content-length would forward the hidden
    // request as body; a server reading chunked would run it.
    let smuggle = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 44\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nhost: x\r\n\r\n";
    let t = Instant::now();
    let reply = raw_request(&node.gateway, smuggle, Duration::from_secs(5));
    assert_refused(&reply, 400, "bad_request");
    assert!(
        !reply.contains("Hello, world!"),
        "the smuggled request ran: {reply}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the connection was left open"
    );
    // Behind an innocent request on the same keep-alive connection, too.
    use std::io::{Read, Write};
    let mut conn =
        std::net::TcpStream::connect(node.gateway.trim_start_matches("http://")).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        first.starts_with("HTTP/1.1 200") && first.ends_with("Hello, world!"),
        "{first}"
    );
    conn.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    assert_refused(&String::from_utf8_lossy(&rest), 400, "bad_request");
    assert!(hits(&node, "bad_request") >= 2);
    assert_eq!(node.get("/hello").body, "Hello, world!");
}

#[test]
fn two_different_content_lengths_are_refused() {
    let (node, _t) = node();
    let reply = raw_request(
        &node.gateway,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 30\r\n\r\nabc",
        Duration::from_secs(5),
    );
    assert_refused(&reply, 400, "bad_request");
}

#[test]
fn ten_thousand_headers_or_one_huge_header_are_431() {
    let (node, _t) = node();
    let mut many = b"GET /hello HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_refused(
        &raw_request(&node.gateway, &many, Duration::from_secs(5)),
        431,
        "header_fields_too_large",
    );
    let huge = format!(
        "GET /hello HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    assert_refused(
        &raw_request(&node.gateway, huge.as_bytes(), Duration::from_secs(5)),
        431,
        "header_fields_too_large",
    );
    let long = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(10_000));
    assert_refused(
        &raw_request(&node.gateway, long.as_bytes(), Duration::from_secs(5)),
        414,
        "uri_too_long",
    );
    assert!(hits(&node, "header_fields_too_large") >= 2);
}

#[test]
fn a_slow_head_gets_408() {
    let (node, _t) = node();
    let t = Instant::now();
    // Half a head, then nothing: the client never finishes.
    let reply = raw_request(
        &node.gateway,
        b"GET /hello HTTP/1.1\r\nhost: x\r\nx-slow: ",
        Duration::from_secs(5),
    );
    assert_refused(&reply, 408, "request_timeout");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(node.get("/hello").body, "Hello, world!");
}

#[test]
fn a_slow_body_gets_408() {
    let (node, _t) = node();
    let t = Instant::now();
    let reply = raw_request(
        &node.gateway,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten b",
        Duration::from_secs(5),
    );
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    assert!(reply.contains("\"code\":\"request_timeout\""), "{reply}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(node.metric_labeled("moat_limit_hits_total", "limit=\"body_timeout\"") >= 1);
}

#[test]
fn http2_with_prior_knowledge_is_served() {
    let (node, _t) = node();
    let addr = node.gateway.trim_start_matches("http://").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = rt.block_on(async move {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("http://x/hello")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    assert_eq!((status, body.as_str()), (200, "Hello, world!"));
}

#[test]
fn a_json_body_with_newlines_in_the_same_packet_as_its_head_is_served() {
    // Regression (fuzz/ `lf-body`): only head bytes may be judged for bare line feeds.
    let (node, _t) = node();
    let reply = raw_request(
        &node.gateway,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 13\r\nconnection: close\r\n\r\n{\n  \"a\": 1\n}\n",
        Duration::from_secs(5),
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // A head with bare line feeds is refused.
    let reply = raw_request(
        &node.gateway,
        b"GET /hello HTTP/1.1\nhost: x\n\n",
        Duration::from_secs(5),
    );
    assert_refused(&reply, 400, "bad_request");
}
