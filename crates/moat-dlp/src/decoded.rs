//! A compressed body judged as it streams: decoded ([`crate::decode`]), the decoded bytes
//! scanned, and what may be sent under the mode released step by step. Shared by responses
//! (the gateway) and outbound request bodies (the runtime's egress guard).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::decode::{Coding, DecodeError, Decoder};
use crate::{Finding, Mode, Scanner, StreamScanner};

/// What one step lets out.
#[derive(Debug, Default)]
pub struct Step {
    /// The bytes to send now: compressed chunks as the function wrote them (`block`,
    /// `alert`), or decoded and masked bytes (`redact`). Empty in `block` mode once there
    /// is a finding: the caller cuts the body off.
    pub bytes: Vec<u8>,
    /// Findings in the decoded bytes judged by this step.
    pub findings: Vec<Finding>,
}

/// Judges a compressed body chunk by chunk.
///
/// In `block` mode a compressed chunk is released only once every decoded byte the body
/// had produced when it was fed has been judged, so the chunk that carries a finding
/// never goes out (the decoders hand out what their input holds at once). `alert` releases
/// each chunk as it comes; `redact` releases the decoded bytes, masked.
pub struct DecodedStream {
    decoder: Decoder,
    scan: StreamScanner,
    mode: Mode,
    /// Block mode: chunks held, each with the decoded length once it had been fed.
    pending: VecDeque<(Vec<u8>, u64)>,
    blocked: bool,
}

impl DecodedStream {
    /// A stream for a body with `codings`, failing once more than `limit` decoded bytes
    /// come out.
    pub fn new(scanner: &Arc<Scanner>, codings: &[Coding], limit: u64, mode: Mode) -> Self {
        DecodedStream {
            decoder: Decoder::new(codings, limit),
            scan: scanner.stream(),
            mode,
            pending: VecDeque::new(),
            blocked: false,
        }
    }

    /// Feeds one compressed chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Step, DecodeError> {
        self.step(Some(chunk))
    }

    /// Ends the body: every coding must have reached its end.
    pub fn finish(&mut self) -> Result<Step, DecodeError> {
        self.step(None)
    }

    fn step(&mut self, chunk: Option<&[u8]>) -> Result<Step, DecodeError> {
        let (scan, mode) = (&mut self.scan, self.mode);
        let mut out = Step::default();
        let mut judge = |piece: &[u8]| {
            if mode == Mode::Redact {
                let r = scan.feed_release(piece);
                out.bytes.extend_from_slice(&r.bytes);
                out.findings.extend(r.findings);
            } else {
                out.findings.extend(scan.feed(piece));
            }
        };
        match chunk {
            Some(data) => self.decoder.feed(data, &mut judge)?,
            None => self.decoder.finish(&mut judge)?,
        }
        if chunk.is_none() {
            if mode == Mode::Redact {
                let r = self.scan.finish_release();
                out.bytes.extend_from_slice(&r.bytes);
                out.findings.extend(r.findings);
            } else {
                out.findings.extend(self.scan.finish());
            }
        }
        match mode {
            Mode::Redact => {}
            Mode::Alert => out.bytes = chunk.map(<[u8]>::to_vec).unwrap_or_default(),
            Mode::Block => {
                if self.blocked || !out.findings.is_empty() {
                    self.blocked = true;
                    self.pending.clear();
                    return Ok(out);
                }
                if let Some(data) = chunk {
                    self.pending
                        .push_back((data.to_vec(), self.decoder.decoded()));
                }
                let judged = self.scan.judged() as u64;
                while let Some((data, mark)) = self.pending.front() {
                    if *mark > judged {
                        break;
                    }
                    out.bytes.extend_from_slice(data);
                    self.pending.pop_front();
                }
            }
        }
        Ok(out)
    }
}

impl std::fmt::Debug for DecodedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedStream")
            .field("mode", &self.mode)
            .field("decoder", &self.decoder)
            .field("held_chunks", &self.pending.len())
            .finish_non_exhaustive()
    }
}
