//! Compressed bodies under data-loss prevention (issue 5: "compressed responses are scanned
//! after decoding or refused"): a function that sends its secret gzip-, deflate- or
//! brotli-compressed — in a response or in an outbound request to a host it may reach — is
//! blocked or masked as if it had sent it plain; a decompression bomb and an unknown coding
//! are refused without exhausting the node; a clean compressed response passes intact.

use std::io::{Read, Write};

use moat_dlp::compress::{br, gzip, raw_deflate, zlib as deflate};

use crate::common::{Node, manifest, wasm};

const SECRET: &str = "sk_live_51HdQ2pLk3yT9";

type Compress = fn(&[u8]) -> Vec<u8>;

/// Each coding as a function would label it, with the compressor that makes it.
fn codings() -> [(&'static str, Compress); 5] {
    [
        ("gzip", gzip),
        ("deflate", deflate),
        ("deflate", raw_deflate),
        ("br", br),
        ("gzip,%20br", |d| br(&gzip(d))),
    ]
}

/// `n` MiB of zeros as that many gzip members of 1 MiB each (a valid gzip body).
fn zeros_gzip(n: usize) -> Vec<u8> {
    gzip(&vec![0u8; 1 << 20]).repeat(n)
}

/// A raw HTTP/1.1 POST, so compressed bytes come back exactly as sent.
fn post(node: &Node, path: &str, body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let addr = node.gateway.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn deploy_echo(node: &Node, dir: &std::path::Path, name: &str, mode: &str) {
    // tp_log answers its request body with `content-encoding: <encoding>`.
    node.deploy(&manifest(
        dir,
        name,
        &wasm("tp_log"),
        &format!("/{name}"),
        &format!(
            "[limits]\nmax_body_bytes = 4194304\n[permissions]\nsecrets = [\"stripe-key\"]\n[dlp]\nmode = \"{mode}\"\n"
        ),
    ));
}

#[test]
fn a_compressed_secret_in_a_response_is_blocked_or_masked() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", SECRET);
    deploy_echo(&node, dir.path(), "block", "block");
    deploy_echo(&node, dir.path(), "redact", "redact");
    let plain = format!("{{\"debug\":\"key={SECRET}\"}}");
    for (coding, compress) in codings() {
        let body = compress(plain.as_bytes());
        let (status, _, answer) = post(&node, &format!("/block?encoding={coding}"), &body);
        assert_eq!(status, 502, "{coding}");
        assert!(String::from_utf8_lossy(&answer).contains("response_blocked"));

        // Redact: the caller gets the decoded body, masked, no longer labeled compressed.
        let (status, headers, answer) = post(&node, &format!("/redact?encoding={coding}"), &body);
        assert_eq!(status, 200, "{coding}");
        assert_eq!(header(&headers, "content-encoding"), None, "{coding}");
        assert_eq!(
            header(&headers, "content-length"),
            Some(plain.len().to_string().as_str())
        );
        let text = String::from_utf8(answer).unwrap();
        assert!(
            text.starts_with("{\"debug\":\"key=*") && !text.contains("sk_live"),
            "{coding}: {text}"
        );
    }
    let found = node.audit_records(Some("block"), "dlp.finding", 5);
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(!found[0].to_string().contains(SECRET));

    // A clean compressed response passes byte for byte, still compressed.
    for (coding, compress) in codings() {
        let body = compress(b"{\"status\":\"nothing to see\"}");
        let (status, headers, answer) = post(&node, &format!("/block?encoding={coding}"), &body);
        assert_eq!(status, 200, "{coding}");
        assert_eq!(answer, body, "{coding}");
        assert!(header(&headers, "content-encoding").is_some());
    }

    // A coding Moat cannot undo is refused, whatever it holds.
    let (status, _, _) = post(&node, "/block?encoding=zstd", b"anything");
    assert_eq!(status, 502);
    // So is corrupt data labeled gzip: it could not be judged.
    let (status, _, _) = post(&node, "/block?encoding=gzip", &gzip(b"hello")[..15]);
    assert_eq!(status, 502);
}

fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_decompression_bomb_is_refused_without_exhausting_the_node() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", SECRET);
    deploy_echo(&node, dir.path(), "bomb", "block");
    deploy_echo(&node, dir.path(), "bomb-redact", "redact");
    // 512 MiB of zeros in about 520 KiB, and 1 GiB in a few KiB (gzip inside gzip).
    let half = zeros_gzip(512);
    assert!(half.len() < 1 << 20, "{}", half.len());
    let gig = gzip(&zeros_gzip(1024));
    assert!(gig.len() < 64 << 10, "{}", gig.len());
    let before = peak_rss_kib(node.pid());
    for (path, body) in [
        ("/bomb?encoding=gzip", &half),
        ("/bomb?encoding=gzip,%20gzip", &gig),
        ("/bomb-redact?encoding=gzip", &half),
    ] {
        let (status, _, answer) = post(&node, path, body);
        assert_eq!(status, 502, "{path}");
        assert!(String::from_utf8_lossy(&answer).contains("response_blocked"));
    }
    // Decoding stopped at its cap and never held the output: the node's peak memory
    // barely moved (a decoder without a cap that kept what it decoded would need 1 GiB).
    let grown = peak_rss_kib(node.pid()).saturating_sub(before);
    assert!(grown < 200 << 10, "peak memory grew by {grown} KiB");
    assert!(node.metric_labeled("moat_limit_hits_total", "function=\"bomb\",limit=\"dlp\"") >= 2);
    // The node still serves.
    let (status, _, _) = post(&node, "/bomb?encoding=gzip", &gzip(b"fine"));
    assert_eq!(status, 200);
}

#[test]
fn a_compressed_secret_sent_out_to_an_allowed_host_is_refused() {
    let (port, seen) = crate::dlp::recording_target();
    let recorded = std::sync::Arc::clone(&seen);
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", SECRET);
    node.deploy(&manifest(
        dir.path(),
        "out",
        &wasm("tp_fetch"),
        "/out",
        &format!(
            "[limits]\nmax_body_bytes = 4194304\n[permissions]\noutbound_hosts = [\"http://127.0.0.1:{port}\"]\nsecrets = [\"stripe-key\"]\n"
        ),
    ));
    let target = format!("http://127.0.0.1:{port}/");
    let leak = format!("payload={SECRET}&more=data");
    for (coding, compress) in codings() {
        let body = compress(leak.as_bytes());
        let (_, _, answer) = post(
            &node,
            &format!("/out?bodyin=1&encoding={coding}&url={target}"),
            &body,
        );
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(!answer.starts_with("status 200"), "{coding}: {answer}");
    }
    // A bomb and an unknown coding are refused too; a clean compressed body goes out as is.
    let (_, _, answer) = post(
        &node,
        &format!("/out?bodyin=1&encoding=gzip&url={target}"),
        &zeros_gzip(512),
    );
    assert!(!String::from_utf8_lossy(&answer).starts_with("status 200"));
    let (_, _, answer) = post(
        &node,
        &format!("/out?bodyin=1&encoding=zstd&url={target}"),
        b"whatever",
    );
    assert!(!String::from_utf8_lossy(&answer).starts_with("status 200"));
    std::thread::sleep(std::time::Duration::from_millis(400));
    {
        // Nothing carrying the secret reached the host, compressed or not.
        let seen = seen.lock().unwrap();
        for (_, compress) in codings() {
            let sent = compress(leak.as_bytes());
            assert!(!seen.windows(sent.len()).any(|w| w == sent.as_slice()));
        }
        assert!(!seen.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    }
    let clean = gzip(b"payload=nothing-secret");
    let (_, _, answer) = post(
        &node,
        &format!("/out?bodyin=1&encoding=gzip&url={target}"),
        &clean,
    );
    assert_eq!(String::from_utf8_lossy(&answer), "status 200: ok");
    std::thread::sleep(std::time::Duration::from_millis(400));
    let seen = seen.lock().unwrap();
    assert!(seen.windows(clean.len()).any(|w| w == clean.as_slice()));
    let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(text.contains("content-encoding: gzip"), "{text}");
    let found = node.audit_records(Some("out"), "dlp.finding", 5);
    assert!(
        found
            .iter()
            .all(|r| r["event"]["target"] == "egress-body:secrets"),
        "{found:?}"
    );
    assert_eq!(found.len(), 5);
    drop(seen);

    // Redact: the body goes out decoded, masked, and no longer labeled compressed.
    node.deploy(&manifest(
        dir.path(),
        "out-redact",
        &wasm("tp_fetch"),
        "/out-redact",
        &format!(
            "[permissions]\noutbound_hosts = [\"http://127.0.0.1:{port}\"]\nsecrets = [\"stripe-key\"]\n[dlp]\nmode = \"redact\"\n"
        ),
    ));
    let (_, _, answer) = post(
        &node,
        &format!("/out-redact?bodyin=1&encoding=br&url={target}"),
        &br(leak.as_bytes()),
    );
    assert_eq!(String::from_utf8_lossy(&answer), "status 200: ok");
    std::thread::sleep(std::time::Duration::from_millis(400));
    let text = String::from_utf8_lossy(&seen_clone(&recorded)).into_owned();
    assert!(!text.contains(SECRET));
    let last = text
        .rsplit("POST / HTTP/1.1")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        last.contains("payload=****") && !last.contains("content-encoding"),
        "{last}"
    );
}

fn seen_clone(seen: &std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> Vec<u8> {
    seen.lock().unwrap().clone()
}

/// Hex lines from a xorshift generator: text that compresses only about twofold, so a few
/// MiB of it stay longer than the hold-back once compressed.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("{x:016x}\n").as_bytes());
    }
    out.truncate(len);
    out
}

/// The data of a chunked body, and whether its last chunk arrived.
fn dechunk(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let Some(size) = std::str::from_utf8(&b[..nl])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
        else {
            return (out, false);
        };
        if size == 0 {
            return (out, true);
        }
        let Some(data) = b.get(nl + 2..nl + 2 + size) else {
            out.extend_from_slice(&b[(nl + 2).min(b.len())..]);
            return (out, false);
        };
        out.extend_from_slice(data);
        b = b.get(nl + 4 + size..).unwrap_or_default();
    }
}

#[test]
fn a_streamed_compressed_response_is_judged_as_it_goes() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", SECRET);
    deploy_echo(&node, dir.path(), "long", "block");
    deploy_echo(&node, dir.path(), "long-redact", "redact");
    let clean = noise(3 << 20);
    let compressed = gzip(&clean);
    assert!(compressed.len() > 1 << 20, "longer than the hold-back");

    // Clean: streamed on, byte for byte as the function compressed it.
    let (status, headers, raw) = post(&node, "/long?encoding=gzip", &compressed);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let (body, complete) = dechunk(&raw);
    assert!(complete);
    assert_eq!(body, compressed);

    // The secret near the end: the stream is cut off, and nothing sent decodes to it.
    let mut leaky = clean.clone();
    leaky.extend_from_slice(format!(" key={SECRET} ").as_bytes());
    leaky.extend_from_slice(&noise(4096));
    let compressed = gzip(&leaky);
    let (status, _, raw) = post(&node, "/long?encoding=gzip", &compressed);
    assert_eq!(status, 200, "the response had started");
    let (sent, complete) = dechunk(&raw);
    assert!(!complete && sent.len() < compressed.len());
    let mut decoded = Vec::new();
    let _ = flate2::write::GzDecoder::new(&mut decoded).write_all(&sent);
    assert!(decoded.len() > 1 << 20, "{}", decoded.len());
    assert!(
        !decoded
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    );

    // Redact: sent decoded, masked, without content-encoding.
    let (status, headers, raw) = post(&node, "/long-redact?encoding=gzip", &compressed);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), None);
    let (body, complete) = dechunk(&raw);
    assert!(complete);
    assert_eq!(body.len(), leaky.len());
    assert!(!body.windows(7).any(|w| w == b"sk_live"));
    assert!(body.windows(5).any(|w| w == b"key=*"));
}
