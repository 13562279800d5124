//! Fuzzes the gateway's front door, `frontdoor::Scanner`, which follows the HTTP/1 framing of
//! every byte a caller sends: no panic, a verdict that does not depend on how the stream was
//! cut into reads, and no accepted stream in which a request head (as httparse, and so hyper,
//! reads it) carries both `content-length` and `transfer-encoding`.
//!
//! Input: byte 0 is flags (bit 0: small head limits, so limit paths are reachable with short
//! inputs; bits 1-2: how many of the split points to use), bytes 1-6 are three little-endian
//! u16 split points (taken modulo the stream length + 1), the rest is the stream.
//!
//! `MOAT_FUZZ_KNOWN` (comma-separated ids, see [`known`]) skips inputs that hit a reported
//! and not yet fixed finding, so a run can look past it. Strict (unset) is the default.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use moat_input::frontdoor::{HeadLimits, Scanner};

const HEADER: usize = 7;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Streams up to this long are also fed one byte at a time.
const BYTEWISE_MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (header, stream) = data.split_at(HEADER);
    let limits = if header[0] & 1 == 0 {
        HeadLimits::default()
    } else {
        HeadLimits {
            max_headers: 4,
            max_head_bytes: 200,
            max_request_line: 60,
            ..HeadLimits::default()
        }
    };
    let uses = usize::from((header[0] >> 1) & 3);
    let mut points: Vec<usize> = header[1..]
        .chunks(2)
        .take(uses)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (stream.len() + 1))
        .collect();
    points.sort_unstable();

    let mut whole = Scanner::new(limits);
    let verdict = whole.feed(stream);

    // The same stream cut at the chosen points (a repeated point is an empty read).
    let mut pieces = Scanner::new(limits);
    let mut start = 0;
    let mut split_verdict = Ok(());
    for end in points.iter().copied().chain([stream.len()]) {
        split_verdict = pieces.feed(&stream[start..end]);
        if split_verdict.is_err() {
            break;
        }
        start = end;
    }
    assert_eq!(
        split_verdict, verdict,
        "cutting the stream at {points:?} changed the verdict"
    );

    if stream.len() <= BYTEWISE_MAX {
        let mut bytewise = Scanner::new(limits);
        let bytewise_verdict = stream
            .iter()
            .try_for_each(|b| bytewise.feed(std::slice::from_ref(b)));
        assert_eq!(
            bytewise_verdict, verdict,
            "feeding one byte at a time changed the verdict"
        );
        if verdict.is_ok() {
            assert_eq!(format!("{bytewise:?}"), format!("{whole:?}"));
        }
    }

    if verdict.is_ok() {
        assert_eq!(format!("{pieces:?}"), format!("{whole:?}"));
        assert_eq!(pieces.in_partial_head(), whole.in_partial_head());
        check_heads(stream, limits);
    }
});

/// Walks an accepted stream request by request as httparse reads heads, framing bodies by
/// the scanner's own rules, and checks that no head mixes the two body framings: that shape
/// is the request smuggling the front door exists to refuse.
fn check_heads(stream: &[u8], limits: HeadLimits) {
    if stream.starts_with(H2_PREFACE) {
        return;
    }
    let mut rest = stream;
    loop {
        let skip = rest
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        rest = &rest[skip..];
        if rest.is_empty() {
            return;
        }
        let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            // An unfinished head at the end, or one hyper refuses itself: nothing to frame.
            Ok(httparse::Status::Partial) | Err(_) => return,
        };
        let mut length = None;
        let mut te = None;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = Some(h.value);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te = Some(h.value);
            }
        }
        assert!(
            !(length.is_some() && te.is_some()),
            "accepted a stream with a request carrying both content-length and \
             transfer-encoding at offset {}",
            stream.len() - rest.len()
        );
        rest = &rest[head_len..];
        rest = match (te, length) {
            (Some(te), _) => {
                if !te.eq_ignore_ascii_case(b"chunked") {
                    return;
                }
                match skip_chunked(rest) {
                    Some(r) => r,
                    None => return,
                }
            }
            (None, Some(cl)) => {
                let Some(n) = std::str::from_utf8(cl)
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                else {
                    return;
                };
                match rest.get(n..) {
                    Some(r) => r,
                    None => return,
                }
            }
            (None, None) => rest,
        };
    }
}

/// A chunked body and its trailers, by the scanner's rules; `None` when the stream ends
/// inside it (or it is something the scanner would have refused).
fn skip_chunked(mut rest: &[u8]) -> Option<&[u8]> {
    loop {
        let nl = rest.iter().position(|b| *b == b'\n')?;
        let line = rest[..=nl].strip_suffix(b"\r\n")?;
        let size = line.split(|b| *b == b';').next()?;
        let size = std::str::from_utf8(size).ok()?;
        let n = usize::from_str_radix(size, 16).ok()?;
        rest = &rest[nl + 1..];
        if n == 0 {
            if let Some(r) = rest.strip_prefix(b"\r\n") {
                return Some(r);
            }
            let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
            return Some(&rest[end + 4..]);
        }
        rest = rest.get(n..)?.strip_prefix(b"\r\n")?;
    }
}

/// Findings reported and not yet fixed; delete an entry once its fix lands. None is open:
/// `h2-split`, `lf-heads`, `limit-order` and `lf-body` were fixed in moat-input, each with a
/// regression test named after it.
fn known(id: &str) -> bool {
    static KNOWN: LazyLock<Vec<String>> = LazyLock::new(|| {
        std::env::var("MOAT_FUZZ_KNOWN")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    KNOWN.iter().any(|k| k == id)
}
