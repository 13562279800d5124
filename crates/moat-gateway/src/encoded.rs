//! Compressed responses under data-loss prevention: a body with a `content-encoding` is
//! decoded (`moat_dlp::decode`: gzip, deflate, br, stacked) and the decoded bytes judged, so
//! a secret cannot leave by being compressed.
//!
//! - The decoded size is capped ([`decode_limit`]); past the cap, on corrupt or truncated
//!   data, or with a coding Moat does not know, the response is refused (`502
//!   response_blocked` before it starts, cut off once streaming), never passed unjudged.
//! - `block` and `alert`: a clean response passes byte for byte as the function compressed
//!   it. A streamed one releases a compressed chunk only once everything it decodes to has
//!   been judged, so a finding cuts the stream off before the compressed bytes carrying it
//!   go out.
//! - `redact`: a held-back response with a finding is sent decoded and masked, without
//!   `content-encoding` (and with its new length); a clean one passes compressed. A streamed
//!   one is always sent decoded and masked, since its headers leave before the verdict.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use moat_dlp::decode::{Coding, DecodeError, Decoder};
use moat_dlp::{Channel, DecodedStream, Finding, Mode, Step};

use crate::dlp::{Blocked, FindingSink, Report, RouteDlp};
use crate::server::{BoxError, GatewayBody};

/// The fewest decoded bytes a compressed response may hold, whatever its
/// `max_response_bytes` (a function may send that many bytes, so it may send that many
/// decoded ones; compressed text often decodes to ten times its size).
pub const MIN_DECODED_LIMIT: u64 = moat_dlp::decode::DEFAULT_DECODED_LIMIT;

/// The most decoded bytes a compressed response may hold.
pub fn decode_limit(max_response_bytes: u64) -> u64 {
    max_response_bytes.max(MIN_DECODED_LIMIT)
}

/// The codings of a response, or `Blocked` for one Moat cannot undo.
pub(crate) fn codings(headers: &HeaderMap) -> Result<Vec<Coding>, Blocked> {
    let mut out = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        out.extend(moat_dlp::decode::parse_content_encoding(value.as_bytes()).map_err(refused)?);
    }
    Ok(out)
}

fn refused(e: DecodeError) -> Blocked {
    tracing::warn!("compressed response refused by data-loss prevention: {e}");
    Blocked
}

/// Decodes `body` through a stream scanner; returns the findings.
fn scan_decoded(
    dlp: &RouteDlp,
    codings: &[Coding],
    body: &[u8],
    limit: u64,
) -> Result<Vec<Finding>, DecodeError> {
    let mut scan = dlp.scanner.stream();
    let mut findings = Vec::new();
    let mut decoder = Decoder::new(codings, limit);
    decoder.feed(body, &mut |piece| findings.extend(scan.feed(piece)))?;
    decoder.finish(&mut |piece| findings.extend(scan.feed(piece)))?;
    findings.extend(scan.finish());
    Ok(findings)
}

/// Judges a whole (held-back) compressed body.
pub(crate) fn whole(
    dlp: &RouteDlp,
    codings: &[Coding],
    headers: &mut HeaderMap,
    body: Bytes,
    max_response_bytes: u64,
    report: Report<'_>,
) -> Result<Bytes, Blocked> {
    let limit = decode_limit(max_response_bytes);
    let findings = scan_decoded(dlp, codings, &body, limit).map_err(refused)?;
    for f in &findings {
        report(Channel::ResponseBody, f);
    }
    if findings.is_empty() {
        return Ok(body);
    }
    match dlp.mode {
        Mode::Block => Err(Blocked),
        Mode::Alert => Ok(body),
        Mode::Redact => {
            // Decoded again only now that something must be masked.
            let decoded = moat_dlp::decode::decode_all(codings, &body, limit).map_err(refused)?;
            if decoded.len() as u64 > max_response_bytes {
                tracing::warn!("redacted response refused: decoded, it is over its size limit");
                return Err(Blocked);
            }
            let (masked, _) = dlp.scanner.redact(&decoded);
            headers.remove(CONTENT_ENCODING);
            Ok(Bytes::from(masked.into_owned()))
        }
    }
}

/// Wraps a compressed body too long to hold back.
pub(crate) fn stream(
    dlp: &RouteDlp,
    codings: &[Coding],
    headers: &mut HeaderMap,
    inner: GatewayBody,
    max_response_bytes: u64,
    report: FindingSink,
) -> GatewayBody {
    if dlp.mode == Mode::Redact {
        // The verdict comes after the headers leave: send it decoded, and masked where
        // needed, from the start. Its length is no longer known.
        headers.remove(CONTENT_ENCODING);
        headers.remove(CONTENT_LENGTH);
    }
    DecodedScan {
        inner,
        judged: DecodedStream::new(
            &dlp.scanner,
            codings,
            decode_limit(max_response_bytes),
            dlp.mode,
        ),
        block: dlp.mode == Mode::Block,
        alert: dlp.mode == Mode::Alert,
        report,
        done: false,
    }
    .boxed_unsync()
}

struct DecodedScan {
    inner: GatewayBody,
    judged: DecodedStream,
    block: bool,
    alert: bool,
    report: FindingSink,
    done: bool,
}

impl DecodedScan {
    /// Decodes `chunk` (or, with `None`, ends the body) and judges what comes out: the
    /// bytes to send now, or an error that cuts the stream off.
    fn step(&mut self, chunk: Option<Bytes>) -> Result<Bytes, BoxError> {
        let step = match &chunk {
            Some(data) => self.judged.feed(data),
            None => self.judged.finish(),
        };
        let step = step.map_err(|e| -> BoxError {
            tracing::warn!("compressed response cut off by data-loss prevention: {e}");
            "compressed response could not be judged".into()
        })?;
        for f in &step.findings {
            (self.report)(Channel::ResponseBody, f);
        }
        if self.mode_blocks(&step) {
            return Err("response cut off by data-loss prevention".into());
        }
        Ok(match chunk {
            // Alert passes each chunk as written, without a copy.
            Some(data) if self.alert => data,
            _ => Bytes::from(step.bytes),
        })
    }

    fn mode_blocks(&self, step: &Step) -> bool {
        self.block && !step.findings.is_empty()
    }
}

impl Body for DecodedScan {
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
            let chunk = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Some(data),
                    Err(_) => continue, // trailers are dropped, as in `hold_back`
                },
                Poll::Ready(None) => {
                    self.done = true;
                    None
                }
            };
            match self.step(chunk) {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use moat_dlp::compress::{br, gzip, zlib as deflate};
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    const SECRET: &[u8] = b"sk_live_abcdef123456";

    fn dlp(mode: Mode) -> RouteDlp {
        let scanner = moat_dlp::Scanner::builder()
            .secret("api-key", SECRET)
            .build()
            .unwrap();
        RouteDlp {
            scanner: Arc::new(scanner),
            mode,
        }
    }

    fn encoded(coding: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
        h
    }

    type Compress = fn(&[u8]) -> Vec<u8>;

    fn compressors() -> [(&'static str, Compress); 4] {
        [
            ("gzip", gzip),
            ("deflate", deflate),
            ("br", br),
            ("gzip, br", |d| br(&gzip(d))),
        ]
    }

    #[test]
    fn a_compressed_secret_is_blocked_masked_or_recorded_and_clean_bodies_pass_intact() {
        let body = [&b"{\"key\":\""[..], SECRET, b"\"}"].concat();
        for (coding, compress) in compressors() {
            let seen = Mutex::new(0);
            let report = |_: Channel, _: &Finding| *seen.lock().unwrap() += 1;
            let sent = Bytes::from(compress(&body));
            let whole = |mode, headers: &mut HeaderMap, b: &Bytes| {
                dlp(mode).whole(headers, b.clone(), 1 << 20, &report)
            };
            assert_eq!(
                whole(Mode::Block, &mut encoded(coding), &sent),
                Err(Blocked)
            );
            // Alert: passes as the function compressed it.
            let mut h = encoded(coding);
            assert_eq!(whole(Mode::Alert, &mut h, &sent).unwrap(), sent);
            assert!(h.contains_key(CONTENT_ENCODING));
            // Redact: decoded, masked, and no longer said to be compressed.
            let mut h = encoded(coding);
            let out = whole(Mode::Redact, &mut h, &sent).unwrap();
            assert_eq!(out.len(), body.len());
            assert!(out.starts_with(b"{\"key\":\"*") && !out.windows(7).any(|w| w == b"sk_live"));
            assert!(!h.contains_key(CONTENT_ENCODING), "{coding}");
            assert_eq!(*seen.lock().unwrap(), 3, "{coding}");
            // A clean compressed body passes byte for byte, still compressed, in every mode.
            let clean = Bytes::from(compress(b"{\"key\":\"nothing secret\"}"));
            for mode in [Mode::Block, Mode::Redact, Mode::Alert] {
                let mut h = encoded(coding);
                assert_eq!(whole(mode, &mut h, &clean).unwrap(), clean);
                assert!(h.contains_key(CONTENT_ENCODING));
            }
        }
    }

    #[test]
    fn bombs_and_corrupt_bodies_are_refused_in_every_mode() {
        let report = |_: Channel, _: &Finding| {};
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = Bytes::from(e.finish().unwrap());
        let corrupt = Bytes::from(gzip(b"some text")[..12].to_vec());
        for mode in [Mode::Block, Mode::Redact, Mode::Alert] {
            for body in [&bomb, &corrupt] {
                let r = dlp(mode).whole(&mut encoded("gzip"), body.clone(), 1 << 20, &report);
                assert_eq!(r, Err(Blocked));
            }
        }
        // The cap follows a larger response limit.
        assert_eq!(decode_limit(1 << 20), MIN_DECODED_LIMIT);
        assert!(
            dlp(Mode::Block)
                .whole(&mut encoded("gzip"), bomb, 128 << 20, &report)
                .is_ok()
        );
    }

    /// A long compressed stream: chunks of the compressed body as a function writes them.
    fn chunked(compressed: &[u8]) -> GatewayBody {
        chunked_by(compressed, 4096)
    }

    fn chunked_by(compressed: &[u8], size: usize) -> GatewayBody {
        crate::body::test_body(
            compressed
                .chunks(size)
                .map(|c| Bytes::from(c.to_vec()))
                .collect::<Vec<_>>(),
        )
    }

    /// Text that compresses poorly enough to stream: pseudo-random hex lines.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
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

    #[tokio::test]
    async fn a_streamed_compressed_secret_is_cut_off_before_its_bytes_go_out() {
        let mut plain = noise(600_000);
        plain.extend_from_slice(b" leak: ");
        plain.extend_from_slice(SECRET);
        plain.extend_from_slice(&noise(100_000));
        for (coding, compress) in compressors() {
            let compressed = compress(&plain);
            let codings = moat_dlp::decode::parse_content_encoding(coding.as_bytes()).unwrap();
            // Block: whatever was released before the cut must not decode to the secret.
            // Small chunks, so the one carrying the secret arrives before it can be judged.
            let mut body = stream(
                &dlp(Mode::Block),
                &codings,
                &mut encoded(coding),
                chunked_by(&compressed, 64),
                1 << 30,
                Box::new(|_, _| {}),
            );
            let mut released = Vec::new();
            let mut cut = false;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => released.extend_from_slice(f.data_ref().unwrap()),
                    Err(_) => {
                        cut = true;
                        break;
                    }
                }
            }
            assert!(cut, "{coding}");
            assert!(
                !released.is_empty() && released.len() < compressed.len(),
                "{coding}"
            );
            let mut seen = Vec::new();
            let mut d = Decoder::new(&codings, 1 << 30);
            let _ = d.feed(&released, &mut |p| seen.extend_from_slice(p));
            assert!(!seen.windows(SECRET.len()).any(|w| w == SECRET), "{coding}");
            assert!(seen.len() > 100_000, "{coding}: released {}", seen.len());

            // Redact: decoded and masked, without content-encoding or length.
            let mut h = encoded(coding);
            h.insert(CONTENT_LENGTH, HeaderValue::from(compressed.len()));
            let out = stream(
                &dlp(Mode::Redact),
                &codings,
                &mut h,
                chunked(&compressed),
                1 << 30,
                Box::new(|_, _| {}),
            )
            .collect()
            .await
            .unwrap()
            .to_bytes();
            assert!(!h.contains_key(CONTENT_ENCODING) && !h.contains_key(CONTENT_LENGTH));
            assert_eq!(out.len(), plain.len());
            assert!(!out.windows(7).any(|w| w == b"sk_live"), "{coding}");

            // Alert: unchanged, compressed.
            let out = stream(
                &dlp(Mode::Alert),
                &codings,
                &mut encoded(coding),
                chunked(&compressed),
                1 << 30,
                Box::new(|_, _| {}),
            )
            .collect()
            .await
            .unwrap()
            .to_bytes();
            assert_eq!(out, compressed);
        }
    }

    #[tokio::test]
    async fn a_clean_compressed_stream_passes_intact_and_a_bomb_is_cut_off() {
        let plain = noise(900_000);
        for (coding, compress) in compressors() {
            let compressed = compress(&plain);
            let codings = moat_dlp::decode::parse_content_encoding(coding.as_bytes()).unwrap();
            let out = stream(
                &dlp(Mode::Block),
                &codings,
                &mut encoded(coding),
                chunked(&compressed),
                1 << 30,
                Box::new(|_, _| {}),
            )
            .collect()
            .await
            .unwrap()
            .to_bytes();
            assert_eq!(out, compressed, "{coding}");
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        for mode in [Mode::Block, Mode::Redact, Mode::Alert] {
            let r = stream(
                &dlp(mode),
                &[Coding::Gzip],
                &mut encoded("gzip"),
                chunked(&bomb),
                1 << 20,
                Box::new(|_, _| {}),
            )
            .collect()
            .await;
            assert!(r.is_err(), "{mode:?}");
        }
    }
}
