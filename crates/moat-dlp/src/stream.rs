//! Scanning a body that arrives in chunks, so that a match split across chunk boundaries is
//! still found, and masking it chunk by chunk.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use zeroize::Zeroize;

use crate::patterns::Continuation;
use crate::{Finding, MASK, Scanner};

/// What one step of a stream lets out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Released {
    /// The bytes now safe to send on, with every finding in them masked by [`MASK`]. They
    /// continue exactly where the previous release stopped.
    pub bytes: Vec<u8>,
    /// The findings that start in these bytes; ranges are offsets since the stream began.
    pub findings: Vec<Finding>,
}

/// A scanner for one chunked body (from [`Scanner::stream`]).
///
/// Guarantee. Let `M` be [`Scanner::max_pattern_len`]. A step holds back the last `M - 1`
/// bytes seen (all of them at [`StreamScanner::finish`]); every byte before that point —
/// [`StreamScanner::judged`] — has been judged. For every match of at most `M` bytes that
/// contains a judged byte, the whole match was in view when it was judged: such matches are
/// found exactly as a whole-body [`Scanner::scan`] finds them, and the masked bytes released
/// equal a whole-body [`Scanner::redact`]. That covers every secret-derived literal (their
/// length is included in `M`), card numbers, AWS key ids, PEM header lines and JWTs whose
/// header segment fits in [`crate::PATTERN_HORIZON`] bytes. Each finding is reported once,
/// by the step that judges its first byte.
///
/// Tokens of unbounded length (a PEM body, a JWT payload, a high-entropy run) are found by
/// their first `M` bytes; when one runs to the end of what has been seen, the bytes that
/// follow are masked as part of it for as long as they can belong to it (the token's
/// alphabet, or a PEM key up to its end line). A high-entropy run longer than `M` is judged
/// on the part in view, so its verdict may differ from a whole-body scan.
///
/// The scanner keeps up to `2 × M` bytes (held bytes and `M` bytes of already released
/// context, used to judge token boundaries); they are wiped on drop.
pub struct StreamScanner {
    scanner: Arc<Scanner>,
    /// Released context (`..ctx_len`) followed by held bytes, unmasked.
    buf: Vec<u8>,
    ctx_len: usize,
    /// Stream offset of `buf[0]`.
    base: usize,
    /// Stream ranges to mask that reach into held bytes.
    masks: Vec<Range<usize>>,
    /// A token that ran to the end of the view, and the stream offset where it continues.
    open: Option<(Continuation, usize)>,
}

impl StreamScanner {
    pub(crate) fn new(scanner: Arc<Scanner>) -> Self {
        StreamScanner {
            scanner,
            buf: Vec::new(),
            ctx_len: 0,
            base: 0,
            masks: Vec::new(),
            open: None,
        }
    }

    /// Judges what can be judged after `chunk` and returns the new findings. Use this when
    /// the caller keeps its own copy of the bytes (block and alert modes): everything before
    /// [`StreamScanner::judged`] may be sent.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Finding> {
        self.step(chunk, false, false).findings
    }

    /// Like [`StreamScanner::feed`], and also returns the judged bytes, masked (redact mode).
    pub fn feed_release(&mut self, chunk: &[u8]) -> Released {
        self.step(chunk, false, true)
    }

    /// Ends the stream: judges the held bytes, treating the end as a token boundary.
    pub fn finish(&mut self) -> Vec<Finding> {
        self.step(&[], true, false).findings
    }

    /// Like [`StreamScanner::finish`], and also returns the held bytes, masked.
    pub fn finish_release(&mut self) -> Released {
        self.step(&[], true, true)
    }

    /// How many bytes since the start of the stream have been judged (and, with the
    /// `_release` calls, released).
    pub fn judged(&self) -> usize {
        self.base + self.ctx_len
    }

    /// How many bytes are held back, not yet judged.
    pub fn held(&self) -> usize {
        self.buf.len() - self.ctx_len
    }

    fn step(&mut self, chunk: &[u8], last: bool, release: bool) -> Released {
        self.buf.extend_from_slice(chunk);
        let horizon = self.scanner.max_pattern_len();
        let pending = self.ctx_len;
        let end = self.buf.len();
        // Judge up to `judge`: a match of at most `horizon` bytes holding a byte before it
        // ends by `end`, so it is wholly in view.
        let judge = if last {
            end
        } else {
            end.saturating_sub(horizon - 1).max(pending)
        };
        let base = self.base;
        let mut findings = Vec::new();
        let mut next_open = None;

        if let Some((cont, from)) = self.open.take() {
            let from = from.saturating_sub(base);
            let stop = cont.extend(&self.buf, from);
            self.masks.push(base + from..base + stop);
            if stop == end && !last {
                next_open = Some((cont, base + stop));
            }
        }
        for hit in self.scanner.hits(&self.buf) {
            if hit.end <= pending || hit.start >= judge {
                // Already judged with the context, or judged by a later step with more
                // bytes in view.
                continue;
            }
            self.masks.push(base + hit.start..base + hit.end);
            if hit.start < pending {
                // Found and reported when its first byte was judged; only its mask matters.
                continue;
            }
            findings.push(self.scanner.finding(&hit, base));
            if let Some(cont) = hit.cont
                && hit.end == end
                && !last
            {
                next_open = Some((cont, base + end));
            }
        }
        self.open = next_open;

        let bytes = if release {
            let mut out = self.buf[pending..judge].to_vec();
            let (lo, hi) = (base + pending, base + judge);
            for m in &self.masks {
                let (s, e) = (m.start.max(lo), m.end.min(hi));
                if s < e {
                    out[s - lo..e - lo].fill(MASK);
                }
            }
            out
        } else {
            Vec::new()
        };

        // Keep `horizon` released bytes as context for judging token boundaries.
        let keep_from = judge.saturating_sub(horizon);
        self.buf[..keep_from].zeroize();
        self.buf.drain(..keep_from);
        self.base += keep_from;
        self.ctx_len = judge - keep_from;
        let judged = base + judge;
        self.masks.retain(|m| m.end > judged);
        Released { bytes, findings }
    }
}

impl Drop for StreamScanner {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl fmt::Debug for StreamScanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamScanner")
            .field("judged", &self.judged())
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}
