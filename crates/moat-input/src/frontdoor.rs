//! The front door: every HTTP/1 byte a caller sends passes a framing check before hyper
//! sees it.
//!
//! hyper is lenient where RFC 9112 allows it (a request with both `content-length` and
//! `transfer-encoding` is read as chunked), and answers its own limit errors with bare
//! responses. A proxy in front of Moat may frame such a request differently — that is
//! request smuggling — so Moat refuses it outright, closes the connection, and answers
//! every refusal in SPEC §4's JSON with a request id. To do that for every request on a
//! keep-alive connection, [`Scanner`] follows the framing of the whole byte stream (heads,
//! fixed-length and chunked bodies) without buffering bodies. HTTP/2 connections (the
//! prior-knowledge preface) pass through: h2 frames are length-delimited and hyper's h2
//! limits apply.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::ErrorCode;

/// Limits on request heads.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_headers: usize,
    pub max_head_bytes: usize,
    pub max_request_line: usize,
    /// Time a caller has to finish a request head once it has started it (`408` beyond).
    pub head_timeout: Duration,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_headers: 100,
            max_head_bytes: 32 * 1024,
            max_request_line: 8 * 1024,
            head_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// Malformed framing, or ambiguous framing (`content-length` with `transfer-encoding`,
    /// two different lengths): `400`.
    Framing,
    /// Too many or too large headers: `431`.
    HeadTooLarge,
    /// The request line is too long: `414`.
    LineTooLong,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const MAX_CHUNK_LINE: usize = 1024;
const MAX_TRAILERS: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a request head (possibly not started).
    Head,
    /// `n` more body bytes of a fixed-length body.
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data; the number of its bytes seen.
    ChunkEnd(u8),
    Trailers,
    /// HTTP/2: nothing more to check here.
    Passthrough,
}

/// Follows the framing of an HTTP/1 request stream. Pure: no IO, fed bytes as they arrive.
#[derive(Debug, Clone)]
pub struct Scanner {
    limits: HeadLimits,
    state: State,
    /// The head (or chunk-size line, or trailers) being collected.
    line: Vec<u8>,
    /// Whether the first bytes of the connection have been checked for the h2 preface.
    decided_protocol: bool,
    /// The connection's first bytes while they still match the h2 preface.
    preface: Vec<u8>,
}

impl Scanner {
    pub fn new(limits: HeadLimits) -> Self {
        Scanner {
            limits,
            state: State::Head,
            line: Vec::new(),
            decided_protocol: false,
            preface: Vec::new(),
        }
    }

    /// Whether a request head has been started but not finished (the head timer runs).
    pub fn in_partial_head(&self) -> bool {
        self.state == State::Head && self.line.iter().any(|b| !b"\r\n".contains(b))
    }

    /// Checks the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Violation> {
        if self.decided_protocol {
            return self.scan(bytes);
        }
        // Until the first bytes tell HTTP/2's preface from an HTTP/1 request, hold them, so
        // the verdict never depends on where a read happened to end.
        let take = (H2_PREFACE.len() - self.preface.len()).min(bytes.len());
        self.preface.extend_from_slice(&bytes[..take]);
        let n = self.preface.len();
        if self.preface[..] != H2_PREFACE[..n] {
            self.decided_protocol = true;
            let held = std::mem::take(&mut self.preface);
            self.scan(&held)?;
            return self.scan(&bytes[take..]);
        }
        if n == H2_PREFACE.len() {
            self.decided_protocol = true;
            self.state = State::Passthrough;
        }
        Ok(())
    }

    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), Violation> {
        while !bytes.is_empty() {
            bytes = match self.state {
                State::Passthrough => return Ok(()),
                State::Head => self.head(bytes)?,
                State::Length(n) => {
                    let take = (n as usize).min(bytes.len());
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Length(left)
                    };
                    &bytes[take..]
                }
                State::ChunkSize => self.chunk_size(bytes)?,
                State::ChunkData(n) => {
                    let take = (n as usize).min(bytes.len());
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd(0)
                    } else {
                        State::ChunkData(left)
                    };
                    &bytes[take..]
                }
                State::ChunkEnd(seen) => {
                    let expected = if seen == 0 { b'\r' } else { b'\n' };
                    if bytes[0] != expected {
                        return Err(Violation::Framing);
                    }
                    self.state = if seen == 0 {
                        State::ChunkEnd(1)
                    } else {
                        State::ChunkSize
                    };
                    &bytes[1..]
                }
                State::Trailers => self.trailers(bytes)?,
            };
        }
        Ok(())
    }

    fn head<'a>(&mut self, bytes: &'a [u8]) -> Result<&'a [u8], Violation> {
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        let mut bytes = bytes;
        if self.line.is_empty() {
            let skip = bytes
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            bytes = &bytes[skip..];
            if bytes.is_empty() {
                return Ok(bytes);
            }
        }
        let before = self.line.len();
        // Search from a little before the new bytes, so a CRLFCRLF split across reads is found.
        let search_from = before.saturating_sub(3);
        let room = self.limits.max_head_bytes + 1 - before.min(self.limits.max_head_bytes);
        let take = bytes.len().min(room);
        self.line.extend_from_slice(&bytes[..take]);
        let end = find(&self.line[search_from..], b"\r\n\r\n").map(|i| search_from + i + 4);
        // Only head bytes are judged here: what follows the head is body or the next request.
        // Of several violations, the one earliest in the stream is reported, so the verdict
        // never depends on where reads were cut.
        let head_len = end.unwrap_or(self.line.len());
        let mut earliest: Option<(usize, Violation)> = None;
        let mut consider = |at: usize, v: Violation| {
            if earliest.is_none_or(|(p, _)| at < p) {
                earliest = Some((at, v));
            }
        };
        let first_line = self.line[..head_len]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(head_len);
        if first_line > self.limits.max_request_line {
            consider(self.limits.max_request_line, Violation::LineTooLong);
        }
        if let Some(at) = bare_lf(&self.line[..head_len], before) {
            consider(at, Violation::Framing);
        }
        if head_len > self.limits.max_head_bytes {
            consider(self.limits.max_head_bytes, Violation::HeadTooLarge);
        }
        if let Some((_, v)) = earliest {
            return Err(v);
        }
        let Some(end) = end else {
            return Ok(&bytes[take..]);
        };
        let head = std::mem::take(&mut self.line);
        self.state = self.framing(&head[..end])?;
        // Bytes of this read past the head belong to the body or the next request.
        let consumed = end - before;
        Ok(&bytes[consumed..])
    }

    /// Reads a complete head and decides how its body is framed.
    fn framing(&self, head: &[u8]) -> Result<State, Violation> {
        let first_line = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
        if first_line > self.limits.max_request_line {
            return Err(Violation::LineTooLong);
        }
        let mut headers = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(Violation::Framing),
            Err(httparse::Error::TooManyHeaders) => return Err(Violation::HeadTooLarge),
            Err(_) => return Err(Violation::Framing),
        }
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut has_te = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let text = std::str::from_utf8(h.value).map_err(|_| Violation::Framing)?;
                for part in text.split(',') {
                    let part = part.trim();
                    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Violation::Framing);
                    }
                    let n: u64 = part.parse().map_err(|_| Violation::Framing)?;
                    if length.is_some_and(|prev| prev != n) {
                        return Err(Violation::Framing);
                    }
                    length = Some(n);
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                if has_te {
                    return Err(Violation::Framing);
                }
                has_te = true;
                let value = std::str::from_utf8(h.value).map_err(|_| Violation::Framing)?;
                // Only plain `chunked`: anything else is a framing no peer agrees on.
                if !value.trim().eq_ignore_ascii_case("chunked") {
                    return Err(Violation::Framing);
                }
                chunked = true;
            }
        }
        if has_te && length.is_some() {
            return Err(Violation::Framing);
        }
        if has_te && req.version != Some(1) {
            return Err(Violation::Framing);
        }
        Ok(match (chunked, length) {
            (true, _) => State::ChunkSize,
            (false, Some(n)) if n > 0 => State::Length(n),
            _ => State::Head,
        })
    }

    fn chunk_size<'a>(&mut self, bytes: &'a [u8]) -> Result<&'a [u8], Violation> {
        let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
            self.line.extend_from_slice(bytes);
            if self.line.len() > MAX_CHUNK_LINE {
                return Err(Violation::Framing);
            }
            return Ok(&[]);
        };
        self.line.extend_from_slice(&bytes[..=nl]);
        let line = std::mem::take(&mut self.line);
        if line.len() > MAX_CHUNK_LINE || !line.ends_with(b"\r\n") {
            return Err(Violation::Framing);
        }
        let line = &line[..line.len() - 2];
        let size = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size).map_err(|_| Violation::Framing)?;
        if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Violation::Framing);
        }
        let n = u64::from_str_radix(size, 16).map_err(|_| Violation::Framing)?;
        self.state = if n == 0 {
            State::Trailers
        } else {
            State::ChunkData(n)
        };
        Ok(&bytes[nl + 1..])
    }

    fn trailers<'a>(&mut self, bytes: &'a [u8]) -> Result<&'a [u8], Violation> {
        for (i, b) in bytes.iter().enumerate() {
            self.line.push(*b);
            refuse_bare_lf(&self.line, self.line.len() - 1)?;
            if self.line.len() > MAX_TRAILERS {
                return Err(Violation::HeadTooLarge);
            }
            // The trailer section ends with an empty line: CRLF at its start or CRLFCRLF.
            if self.line == b"\r\n" || self.line.ends_with(b"\r\n\r\n") {
                self.line.clear();
                self.state = State::Head;
                return Ok(&bytes[i + 1..]);
            }
        }
        Ok(&[])
    }
}

/// A line ending without its CR: hyper (httparse) accepts it, other HTTP peers may not, and
/// a head framed that way would not be seen to end here; so it is refused outright.
fn bare_lf(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find(|&i| buf[i] == b'\n' && (i == 0 || buf[i - 1] != b'\r'))
}

fn refuse_bare_lf(buf: &[u8], from: usize) -> Result<(), Violation> {
    match bare_lf(buf, from) {
        Some(_) => Err(Violation::Framing),
        None => Ok(()),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The JSON refusal written straight to the socket, then the connection is closed.
fn refusal(code: ErrorCode) -> Vec<u8> {
    let request_id = crate::new_request_id();
    let (status, text) = match code {
        ErrorCode::HeaderFieldsTooLarge => (431, "Request Header Fields Too Large"),
        ErrorCode::RequestTimeout => (408, "Request Timeout"),
        ErrorCode::UriTooLong => (414, "URI Too Long"),
        _ => (400, "Bad Request"),
    };
    let body = serde_json::json!({"error": {
        "code": code.as_str(), "message": code.message(), "request_id": request_id,
    }})
    .to_string();
    format!(
        "HTTP/1.1 {status} {text}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A connection whose reads pass through a [`Scanner`]. On a violation it writes the
/// refusal itself and ends the stream, so hyper never sees the offending request.
pub struct Guarded<S = TcpStream> {
    stream: S,
    scanner: Scanner,
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_armed: bool,
    refused: Option<ErrorCode>,
    on_refusal: Option<Box<dyn FnOnce(ErrorCode) + Send>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Guarded<S> {
    pub fn new(
        stream: S,
        limits: HeadLimits,
        on_refusal: Box<dyn FnOnce(ErrorCode) + Send>,
    ) -> Self {
        Guarded {
            stream,
            scanner: Scanner::new(limits),
            timer: Box::pin(tokio::time::sleep(limits.head_timeout)),
            timer_armed: false,
            refused: None,
            on_refusal: Some(on_refusal),
        }
    }

    fn refuse(&mut self, cx: &mut Context<'_>, code: ErrorCode) -> Poll<std::io::Result<()>> {
        let response = refusal(code);
        // Best effort and non-blocking: a small response into an empty socket buffer (or,
        // under TLS, into the session's buffer, flushed once).
        let mut stream = Pin::new(&mut self.stream);
        if let Poll::Ready(Ok(_)) = stream.as_mut().poll_write(cx, &response) {
            let _ = stream.poll_flush(cx);
        }
        self.refused = Some(code);
        if let Some(f) = self.on_refusal.take() {
            f(code);
        }
        Poll::Ready(Ok(())) // EOF for hyper
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.refused.is_some() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let verdict = self.scanner.feed(&buf.filled()[before..]);
                if let Err(v) = verdict {
                    buf.set_filled(before);
                    let code = match v {
                        Violation::Framing => ErrorCode::BadRequest,
                        Violation::HeadTooLarge => ErrorCode::HeaderFieldsTooLarge,
                        Violation::LineTooLong => ErrorCode::UriTooLong,
                    };
                    return self.refuse(cx, code);
                }
                if self.scanner.in_partial_head() {
                    if !self.timer_armed {
                        let deadline =
                            tokio::time::Instant::now() + self.scanner.limits.head_timeout;
                        self.timer.as_mut().reset(deadline);
                        self.timer_armed = true;
                    }
                } else {
                    self.timer_armed = false;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if self.timer_armed && self.timer.as_mut().poll(cx).is_ready() {
                    return self.refuse(cx, ErrorCode::RequestTimeout);
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(input: &[u8]) -> Result<(), Violation> {
        Scanner::new(HeadLimits::default()).feed(input)
    }

    /// Feeds the input in two pieces split at every point (every few hundred points of a
    /// long input, and all near its ends), so no result depends on read boundaries.
    fn scan_split(input: &[u8]) -> Result<(), Violation> {
        let whole = scan(input);
        let step = (input.len() / 200).max(1);
        let near_end = input.len().saturating_sub(64);
        let points = (0..input.len()).filter(|i| i % step == 0 || *i < 64 || *i >= near_end);
        for i in points {
            let mut s = Scanner::new(HeadLimits::default());
            let r = s.feed(&input[..i]).and_then(|()| s.feed(&input[i..]));
            assert_eq!(r, whole, "split at {i} changed the verdict");
        }
        whole
    }

    #[test]
    fn ordinary_keep_alive_traffic_passes() {
        let stream = b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello\
            POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nx-t: 1\r\n\r\n\
            GET /d HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(scan_split(stream), Ok(()));
    }

    #[test]
    fn smuggling_shapes_are_refused_on_any_request_of_a_connection() {
        let cases: [&[u8]; 7] = [
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5, 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
        ];
        for case in cases {
            assert_eq!(
                scan_split(case),
                Err(Violation::Framing),
                "{}",
                String::from_utf8_lossy(case)
            );
            // Behind an innocent first request on the same connection, too.
            let mut stream = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
            stream.extend_from_slice(case);
            assert_eq!(scan(&stream), Err(Violation::Framing));
        }
        // Equal repeated lengths are one length.
        assert_eq!(
            scan(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx"),
            Ok(())
        );
        // A request hidden in a body is body, not a request.
        assert_eq!(
            scan(b"POST / HTTP/1.1\r\ncontent-length: 45\r\n\r\nGET / HTTP/1.1\r\ncontent-length: 1, 2\r\n\r\n"),
            Ok(())
        );
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        for body in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"11111111111111111\r\n",
        ] {
            let mut stream = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
            stream.extend_from_slice(body);
            assert_eq!(
                scan(&stream),
                Err(Violation::Framing),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn head_limits() {
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..10_000 {
            many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(scan(&many), Err(Violation::HeadTooLarge));
        let mut hundred_and_one = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..101 {
            hundred_and_one.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        hundred_and_one.extend_from_slice(b"\r\n");
        assert_eq!(scan(&hundred_and_one), Err(Violation::HeadTooLarge));
        let big = format!("GET / HTTP/1.1\r\nx-big: {}\r\n\r\n", "a".repeat(40_000));
        assert_eq!(scan(big.as_bytes()), Err(Violation::HeadTooLarge));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9_000));
        assert_eq!(scan_split(long.as_bytes()), Err(Violation::LineTooLong));
        // An endless head with no CRLF at all is cut off at the head limit.
        assert!(scan(&vec![b'a'; 100_000]).is_err());
    }

    #[test]
    fn bare_lf_heads_are_refused_regression_fuzz_lf_heads() {
        // Found by fuzz/ (`lf-heads`): httparse ends a head at a bare LF, the scanner did not.
        let stream = b"GET / HTTP/1.1\nhost: x\n\nPOST / HTTP/1.1\ncontent-length: 5\ntransfer-encoding: chunked\n\n0\r\n\r\n";
        assert_eq!(scan_split(stream), Err(Violation::Framing));
        let trailers = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx: 1\n\n";
        assert_eq!(scan_split(trailers), Err(Violation::Framing));
    }

    #[test]
    fn a_body_with_newlines_in_the_same_read_as_its_head_passes_regression_fuzz_lf_body() {
        assert_eq!(
            scan_split(
                b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 14\r\n\r\n{\n  \"a\": 1\n}\n"
            ),
            Ok(())
        );
        assert_eq!(scan_split(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n\n"), Ok(()));
    }

    #[test]
    fn the_earliest_violation_wins_however_reads_are_cut_regression_fuzz_violation_order() {
        // A request line growing past its limit before a bare LF arrives: LineTooLong whether
        // the LF comes in the same read or a later one.
        let limits = HeadLimits {
            max_request_line: 60,
            ..HeadLimits::default()
        };
        let mut stream = b"GET /".to_vec();
        stream.extend_from_slice(&[b'a'; 80]);
        stream.extend_from_slice(b"\nx");
        let whole = Scanner::new(limits).feed(&stream);
        assert_eq!(whole, Err(Violation::LineTooLong));
        for i in 0..stream.len() {
            let mut s = Scanner::new(limits);
            let r = s.feed(&stream[..i]).and_then(|()| s.feed(&stream[i..]));
            assert_eq!(r, whole, "split at {i}");
        }
    }

    #[test]
    fn the_h2_preface_is_recognised_however_it_is_split_regression_fuzz_h2_split() {
        for i in 0..=H2_PREFACE.len() {
            let mut s = Scanner::new(HeadLimits::default());
            s.feed(&H2_PREFACE[..i]).unwrap();
            s.feed(&H2_PREFACE[i..]).unwrap();
            assert_eq!(s.state, State::Passthrough, "split at {i}");
        }
        let mut s = Scanner::new(HeadLimits::default());
        for b in H2_PREFACE {
            s.feed(&[*b]).unwrap();
        }
        assert_eq!(s.state, State::Passthrough);
        // Something that starts like the preface but is not, is HTTP/1 (and malformed).
        assert_eq!(scan_split(b"PRI * HTTP/1.1\r\n\r\n"), Ok(()));
    }

    #[test]
    fn the_verdict_on_an_oversized_head_does_not_depend_on_reads_regression_fuzz_limit_order() {
        let limits = HeadLimits::default();
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(limits.max_request_line));
        let pad = limits.max_head_bytes + 1 - line.len() - 4;
        let head = format!("{line}x: {}\r\n", "b".repeat(pad - 5));
        let stream = format!("{head}\r\n");
        assert_eq!(scan_split(stream.as_bytes()), Err(Violation::LineTooLong));
    }

    #[test]
    fn http2_prior_knowledge_passes_through() {
        let mut s = Scanner::new(HeadLimits::default());
        s.feed(&H2_PREFACE[..5]).unwrap();
        s.feed(&H2_PREFACE[5..]).unwrap();
        s.feed(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00 anything at all")
            .unwrap();
        assert_eq!(s.state, State::Passthrough);
    }

    #[test]
    fn the_head_timer_runs_only_inside_a_started_head() {
        let mut s = Scanner::new(HeadLimits::default());
        assert!(!s.in_partial_head());
        s.feed(b"GET / HT").unwrap();
        assert!(s.in_partial_head());
        s.feed(b"TP/1.1\r\n\r\n").unwrap();
        assert!(!s.in_partial_head());
    }
}
