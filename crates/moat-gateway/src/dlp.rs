//! Data-loss prevention on responses: what a function sends back is judged by its route's
//! scanner (`moat-dlp`) before it reaches the caller.
//!
//! A response up to the hold-back size (`body::RESPONSE_HOLD_BYTES`, 1 MiB) is judged whole:
//! in `block` mode a finding turns it into `502 response_blocked`; in `redact` mode the
//! matches are masked; in `alert` mode it passes. A longer response streams through a
//! [`moat_dlp::StreamScanner`], which releases only judged bytes; a finding in `block` mode
//! cuts the stream off. Headers are judged too. A compressed response is judged decoded
//! (`crate::encoded`); one Moat cannot decode is refused. Every finding is reported
//! (function, channel, detector, request id — never the matched bytes).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http::header::HeaderValue;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use moat_dlp::{Channel, Finding, Mode, Scanner, StreamScanner};

use crate::server::{BoxError, GatewayBody};

/// A route's DLP settings.
pub struct RouteDlp {
    pub scanner: Arc<Scanner>,
    pub mode: Mode,
}

/// Told about each finding.
pub type Report<'a> = &'a (dyn Fn(Channel, &Finding) + Send + Sync);

/// Told about each finding in a streamed body.
pub type FindingSink = Box<dyn Fn(Channel, &Finding) + Send + Sync>;

/// Why a response may not go out.
#[derive(Debug, PartialEq, Eq)]
pub struct Blocked;

impl RouteDlp {
    /// Judges (and in redact mode masks) the response headers. A `content-encoding` Moat
    /// cannot undo is refused here: its body could not be judged.
    pub fn headers(&self, headers: &mut HeaderMap, report: Report<'_>) -> Result<(), Blocked> {
        for value in headers.values_mut() {
            let findings = self.scanner.scan(value.as_bytes());
            if findings.is_empty() {
                continue;
            }
            for f in &findings {
                report(Channel::ResponseHeader, f);
            }
            match self.mode {
                Mode::Block => return Err(Blocked),
                Mode::Redact => {
                    let (masked, _) = self.scanner.redact(value.as_bytes());
                    // Masking keeps the value printable; fall back to dropping it.
                    *value = HeaderValue::from_bytes(&masked)
                        .unwrap_or_else(|_| HeaderValue::from_static(""));
                }
                Mode::Alert => {}
            }
        }
        // After the values are judged (a finding there is reported as such).
        crate::encoded::codings(headers)?;
        Ok(())
    }

    /// Judges a whole (held-back) body; a compressed one decoded, within a cap derived from
    /// `max_response_bytes` (in redact mode a finding sends it decoded, masked, and without
    /// its `content-encoding`).
    pub fn whole(
        &self,
        headers: &mut HeaderMap,
        body: Bytes,
        max_response_bytes: u64,
        report: Report<'_>,
    ) -> Result<Bytes, Blocked> {
        let codings = crate::encoded::codings(headers)?;
        if !codings.is_empty() {
            return crate::encoded::whole(
                self,
                &codings,
                headers,
                body,
                max_response_bytes,
                report,
            );
        }
        match self.mode {
            Mode::Redact => {
                let (masked, findings) = self.scanner.redact(&body);
                for f in &findings {
                    report(Channel::ResponseBody, f);
                }
                Ok(if findings.is_empty() {
                    body
                } else {
                    Bytes::from(masked.into_owned())
                })
            }
            Mode::Block | Mode::Alert => {
                let findings = self.scanner.scan(&body);
                for f in &findings {
                    report(Channel::ResponseBody, f);
                }
                if self.mode == Mode::Block && !findings.is_empty() {
                    Err(Blocked)
                } else {
                    Ok(body)
                }
            }
        }
    }

    /// Wraps a body too long to hold back (a compressed one is decoded as it streams).
    pub fn stream(
        &self,
        headers: &mut HeaderMap,
        inner: GatewayBody,
        max_response_bytes: u64,
        report: FindingSink,
    ) -> GatewayBody {
        match crate::encoded::codings(headers) {
            Ok(codings) if codings.is_empty() => {}
            Ok(codings) => {
                return crate::encoded::stream(
                    self,
                    &codings,
                    headers,
                    inner,
                    max_response_bytes,
                    report,
                );
            }
            // Refused with the headers already; never reached, but never unjudged either.
            Err(Blocked) => return refused_body(),
        }
        ScannedBody {
            inner,
            scan: self.scanner.stream(),
            mode: self.mode,
            report,
            done: false,
        }
        .boxed_unsync()
    }
}

/// A body that fails at once: the stream is cut off before a byte.
fn refused_body() -> GatewayBody {
    struct Fail(bool);
    impl Body for Fail {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if self.0 {
                return Poll::Ready(None);
            }
            self.0 = true;
            Poll::Ready(Some(Err("response refused by data-loss prevention".into())))
        }
    }
    Fail(false).boxed_unsync()
}

struct ScannedBody {
    inner: GatewayBody,
    scan: StreamScanner,
    mode: Mode,
    report: FindingSink,
    done: bool,
}

impl ScannedBody {
    /// Applies the mode to one step's output: the bytes to send, or an error that cuts off.
    fn judge(
        &mut self,
        released: moat_dlp::Released,
        original: Option<Bytes>,
    ) -> Result<Bytes, BoxError> {
        for f in &released.findings {
            (self.report)(Channel::ResponseBody, f);
        }
        match self.mode {
            Mode::Block if !released.findings.is_empty() => {
                Err("response cut off by data-loss prevention".into())
            }
            // Alert passes what the function wrote, unmasked.
            Mode::Alert => Ok(original.unwrap_or_else(|| Bytes::from(released.bytes))),
            _ => Ok(Bytes::from(released.bytes)),
        }
    }
}

impl Body for ScannedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers are dropped, as in `hold_back`
                    };
                    if self.mode == Mode::Alert {
                        // Judge, but send the chunk as written, at once.
                        let findings = self.scan.feed(&data);
                        for f in &findings {
                            (self.report)(Channel::ResponseBody, f);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    let released = self.scan.feed_release(&data);
                    match self.judge(released, None) {
                        Ok(bytes) if bytes.is_empty() => continue,
                        Ok(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                        Err(e) => {
                            self.done = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    if self.mode == Mode::Alert {
                        let findings = self.scan.finish();
                        for f in &findings {
                            (self.report)(Channel::ResponseBody, f);
                        }
                        return Poll::Ready(None);
                    }
                    let released = self.scan.finish_release();
                    return match self.judge(released, None) {
                        Ok(bytes) if bytes.is_empty() => Poll::Ready(None),
                        Ok(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                        Err(e) => Poll::Ready(Some(Err(e))),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_ENCODING;
    use std::sync::Mutex;

    fn dlp(mode: Mode) -> RouteDlp {
        let scanner = Scanner::builder()
            .secret("api-key", b"sk_live_abcdef123456")
            .build()
            .unwrap();
        RouteDlp {
            scanner: Arc::new(scanner),
            mode,
        }
    }

    #[test]
    fn whole_bodies_are_blocked_masked_or_passed() {
        let seen = Mutex::new(Vec::new());
        let report = |c: Channel, f: &Finding| seen.lock().unwrap().push((c, f.detector));
        let body = Bytes::from_static(b"{\"key\":\"sk_live_abcdef123456\"}");
        let whole = |mode, body: &Bytes| {
            dlp(mode).whole(&mut HeaderMap::new(), body.clone(), 1 << 20, &report)
        };
        assert_eq!(whole(Mode::Block, &body), Err(Blocked));
        let masked = whole(Mode::Redact, &body).unwrap();
        assert!(!masked.windows(6).any(|w| w == b"sk_liv"));
        assert_eq!(whole(Mode::Alert, &body).unwrap(), body);
        assert_eq!(seen.lock().unwrap().len(), 3);
        let clean = Bytes::from_static(b"nothing here");
        assert_eq!(whole(Mode::Block, &clean).unwrap(), clean);
    }

    #[test]
    fn headers_are_judged_and_unknown_codings_refused() {
        let report = |_: Channel, _: &Finding| {};
        let mut h = HeaderMap::new();
        h.insert("x-leak", HeaderValue::from_static("sk_live_abcdef123456"));
        assert_eq!(
            dlp(Mode::Block).headers(&mut h.clone(), &report),
            Err(Blocked)
        );
        dlp(Mode::Redact).headers(&mut h, &report).unwrap();
        assert!(!h["x-leak"].to_str().unwrap().contains("sk_live"));
        for (coding, ok) in [
            ("gzip", true),
            ("gzip, br", true),
            ("zstd", false),
            ("br, x", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
            assert_eq!(
                dlp(Mode::Alert).headers(&mut h, &report).is_ok(),
                ok,
                "{coding}"
            );
        }
    }

    fn chunks(parts: Vec<Vec<u8>>) -> GatewayBody {
        crate::body::test_body(parts.into_iter().map(Bytes::from))
    }

    #[tokio::test]
    async fn a_streamed_secret_split_across_chunks_cuts_the_stream_off() {
        let parts = || {
            vec![
                vec![b'a'; 5000],
                b"xx sk_live_abc".to_vec(),
                b"def123456 yy".to_vec(),
            ]
        };
        let stream = |mode, parts| {
            dlp(mode).stream(
                &mut HeaderMap::new(),
                chunks(parts),
                1 << 20,
                Box::new(|_, _| {}),
            )
        };
        assert!(stream(Mode::Block, parts()).collect().await.is_err());
        // Redact: the same stream arrives whole, masked.
        let out = stream(Mode::Redact, parts())
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(out.len(), 5026);
        assert!(out.ends_with(b" yy"));
        assert!(!out.windows(4).any(|w| w == b"sk_l"));
        // Alert: unchanged.
        let out = stream(Mode::Alert, parts())
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert!(out.windows(20).any(|w| w == b"sk_live_abcdef123456"));
    }
}
