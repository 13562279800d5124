//! Bodies under limits: request bodies are counted and timed while they stream (never
//! buffered first and checked after), and responses are held back up to a buffer so that
//! small ones are judged whole before a byte is sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use crate::server::{BoxError, GatewayBody};

/// How much of a response is held back before it starts, so that a response up to this size
/// is judged whole (size limit now, data-loss prevention later). Documented in
/// docs/manifest.md.
pub const RESPONSE_HOLD_BYTES: usize = 1 << 20;

/// What went wrong with a request body, recorded by the body itself as it streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    TooLarge = 1,
    TooSlow = 2,
}

/// Shared between a [`LimitedBody`] and the gateway, which checks it after the guest ran.
#[derive(Clone, Default)]
pub struct FaultFlag(Arc<AtomicU8>);

impl FaultFlag {
    fn set(&self, fault: BodyFault) {
        let _ = self
            .0
            .compare_exchange(0, fault as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    pub fn get(&self) -> Option<BodyFault> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(BodyFault::TooLarge),
            2 => Some(BodyFault::TooSlow),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body {0:?}")]
pub struct BodyError(BodyFault);

/// A request body that fails once it passes `max` bytes or stalls longer than `idle`
/// between frames, and records why in its [`FaultFlag`].
pub struct LimitedBody<B> {
    inner: B,
    seen: u64,
    max: u64,
    idle: Duration,
    /// Armed only when the caller makes us wait: most bodies arrive whole (or are empty),
    /// and a timer per request would cost every request.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    flag: FaultFlag,
    failed: bool,
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, max: u64, idle: Duration, flag: FaultFlag) -> Self {
        LimitedBody {
            inner,
            seen: 0,
            max,
            idle,
            timer: None,
            flag,
            failed: false,
        }
    }

    fn fail(&mut self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failed = true;
        self.flag.set(fault);
        Poll::Ready(Some(Err(Box::new(BodyError(fault)))))
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                    if self.seen > self.max {
                        return self.fail(BodyFault::TooLarge);
                    }
                }
                // Progress: the next wait gets a fresh allowance.
                self.timer = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let idle = self.idle;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => self.fail(BodyFault::TooSlow),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads a whole (limited) body into memory: for validation, which must see all of it.
pub async fn read_all<B>(body: LimitedBody<B>) -> Result<Bytes, Option<BodyFault>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let flag = body.flag.clone();
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(flag.get()),
    }
}

/// A response body that is cut off (ends in an error, which resets the connection or the
/// HTTP/2 stream) once it passes `max` bytes.
pub struct CappedBody {
    /// Bytes already read (held back), sent before the rest of `inner`.
    prefix: Option<Bytes>,
    inner: GatewayBody,
    seen: u64,
    max: u64,
    on_cut: Option<Box<dyn FnOnce() + Send>>,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            self.seen += prefix.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                    if self.seen > self.max {
                        if let Some(f) = self.on_cut.take() {
                            f();
                        }
                        return Poll::Ready(Some(Err("response exceeded its size limit".into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.inner.is_end_stream()
    }
}

/// What holding back a response found.
pub enum Held {
    /// The whole response, within its limit.
    Whole(Bytes),
    /// A response longer than the hold buffer: what was held, then the rest, capped.
    Streaming(GatewayBody),
    /// Over `max` before anything was sent.
    TooLarge,
    /// The body failed (the guest trapped or timed out while writing it).
    Failed,
}

/// Holds back up to [`RESPONSE_HOLD_BYTES`] of a response. A response that ends within
/// the buffer is judged whole; a longer one streams on, cut off if it passes `max`.
pub async fn hold_back(mut body: GatewayBody, max: u64, on_cut: Box<dyn FnOnce() + Send>) -> Held {
    let mut held = BytesMut::new();
    let mut trailers = None;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(_)) => return Held::Failed,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    held.extend_from_slice(&data);
                    if held.len() as u64 > max {
                        return Held::TooLarge;
                    }
                    if held.len() >= RESPONSE_HOLD_BYTES {
                        return Held::Streaming(
                            CappedBody {
                                prefix: Some(held.freeze()),
                                inner: body,
                                seen: 0,
                                max,
                                on_cut: Some(on_cut),
                            }
                            .boxed_unsync(),
                        );
                    }
                }
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    break;
                }
            },
        }
    }
    // Trailers from a guest are dropped: no platform use for them yet, and fewer surprises.
    let _ = trailers;
    Held::Whole(held.freeze())
}

/// A body of several frames, as a guest writing in chunks produces (for tests here and in
/// `dlp`).
#[cfg(test)]
pub(crate) fn test_body(parts: impl IntoIterator<Item = Bytes>) -> GatewayBody {
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }
    Chunks(parts.into_iter().collect()).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn stream(chunks: Vec<&'static [u8]>) -> GatewayBody {
        test_body(chunks.into_iter().map(Bytes::from_static))
    }

    #[tokio::test]
    async fn a_request_body_over_its_limit_fails_and_says_so() {
        let flag = FaultFlag::default();
        let body = LimitedBody::new(
            Full::new(Bytes::from_static(b"0123456789")),
            5,
            Duration::from_secs(1),
            flag.clone(),
        );
        assert_eq!(read_all(body).await, Err(Some(BodyFault::TooLarge)));
        assert_eq!(flag.get(), Some(BodyFault::TooLarge));
        let ok = LimitedBody::new(
            Full::new(Bytes::from_static(b"01234")),
            5,
            Duration::from_secs(1),
            FaultFlag::default(),
        );
        assert_eq!(read_all(ok).await.unwrap(), Bytes::from_static(b"01234"));
    }

    #[tokio::test]
    async fn responses_are_judged_whole_or_cut_off() {
        let cut = Arc::new(AtomicU8::new(0));
        let on_cut = |c: &Arc<AtomicU8>| {
            let c = Arc::clone(c);
            Box::new(move || c.store(1, Ordering::SeqCst)) as Box<dyn FnOnce() + Send>
        };
        match hold_back(stream(vec![b"ab", b"cd"]), 10, on_cut(&cut)).await {
            Held::Whole(b) => assert_eq!(b, Bytes::from_static(b"abcd")),
            _ => panic!("expected the whole body"),
        }
        assert!(matches!(
            hold_back(stream(vec![b"abcdef", b"ghijkl"]), 10, on_cut(&cut)).await,
            Held::TooLarge
        ));
        assert_eq!(cut.load(Ordering::SeqCst), 0);
    }
}
