//! Decoding compressed bodies (`content-encoding`), so the scanner judges what a client will
//! read rather than bytes it cannot see into.
//!
//! Supported codings: `gzip` (and `x-gzip`; several members in a row, each checked against
//! its CRC-32 and length), `deflate` (zlib-wrapped, or raw deflate as browsers tolerate) and
//! `br`, stacked in any order (`content-encoding: gzip, br` is undone `br` first). Anything
//! else is [`DecodeError::Unsupported`]: a body that cannot be decoded cannot be judged.
//!
//! Decoding is incremental and bounded: input goes in as it arrives, decoded bytes come out
//! in pieces of at most [`PIECE`] bytes, and the total is capped — a decompression bomb ends
//! in [`DecodeError::TooLarge`] as soon as it passes the cap, having never held more than a
//! piece (plus a brotli window, at most 16 MiB: large windows are refused). Corrupt data,
//! data after the end of a stream, and a stream cut short are errors too; the caller refuses
//! the body on any error, never passes it unjudged.

use brotli_decompressor::{
    BrotliDecoderTakeOutput, BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc,
};
use flate2::{Crc, Decompress, FlushDecompress, Status};

/// The most decoded bytes handed to the sink at once.
pub const PIECE: usize = 32 * 1024;

/// The decoded size Moat allows a compressed body by default (a response may be allowed
/// more: see the gateway).
pub const DEFAULT_DECODED_LIMIT: u64 = 16 << 20;

/// A content coding Moat can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// Why a body could not be decoded. Messages never quote body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The coding is not named: the header is the function's output and may hold a secret.
    #[error("unsupported content-encoding")]
    Unsupported,
    #[error("the decoded body passes the limit of {0} bytes")]
    TooLarge(u64),
    #[error("corrupt {0} data")]
    Corrupt(&'static str),
    #[error("{0} data ends before its stream does")]
    Truncated(&'static str),
}

/// The codings of a `content-encoding` value, in the order they were applied. `identity`
/// is dropped; an empty list means the body is not encoded.
pub fn parse_content_encoding(value: &[u8]) -> Result<Vec<Coding>, DecodeError> {
    let text = std::str::from_utf8(value).map_err(|_| DecodeError::Unsupported)?;
    let mut out = Vec::new();
    for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match token.to_ascii_lowercase().as_str() {
            "identity" => {}
            "gzip" | "x-gzip" => out.push(Coding::Gzip),
            "deflate" => out.push(Coding::Deflate),
            "br" => out.push(Coding::Brotli),
            _ => return Err(DecodeError::Unsupported),
        }
    }
    Ok(out)
}

/// Undoes a list of codings, incrementally, up to a cap on decoded bytes.
pub struct Decoder {
    /// In decoding order: the last coding applied first.
    stages: Vec<Stage>,
    limit: u64,
    decoded: u64,
    failed: Option<DecodeError>,
}

type Sink<'a> = &'a mut dyn FnMut(&[u8]) -> Result<(), DecodeError>;

impl Decoder {
    /// A decoder for `codings` as [`parse_content_encoding`] returns them, that fails once
    /// more than `limit` bytes come out.
    pub fn new(codings: &[Coding], limit: u64) -> Decoder {
        Decoder {
            stages: codings.iter().rev().map(|c| Stage::new(*c)).collect(),
            limit,
            decoded: 0,
            failed: None,
        }
    }

    /// Decoded bytes so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Decodes `input`, handing what comes out to `sink` piece by piece.
    pub fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        self.step(input, false, sink)
    }

    /// Ends the body: every coding must have reached the end of its stream.
    pub fn finish(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        self.step(&[], true, sink)
    }

    fn step(
        &mut self,
        input: &[u8],
        last: bool,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let (limit, decoded) = (self.limit, &mut self.decoded);
        let mut counted = |piece: &[u8]| {
            *decoded += piece.len() as u64;
            if *decoded > limit {
                return Err(DecodeError::TooLarge(limit));
            }
            sink(piece);
            Ok(())
        };
        let result = run(&mut self.stages, input, &mut counted).and_then(|()| {
            if !last {
                return Ok(());
            }
            for i in 0..self.stages.len() {
                let (now, rest) = self.stages[i..].split_at_mut(1);
                now[0].finish(&mut |piece| run(rest, piece, &mut counted))?;
            }
            Ok(())
        });
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("decoded", &self.decoded)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Passes `input` through `stages` in turn, the last stage's output to `sink`.
fn run(stages: &mut [Stage], input: &[u8], sink: Sink<'_>) -> Result<(), DecodeError> {
    match stages.split_first_mut() {
        None => {
            if input.is_empty() {
                Ok(())
            } else {
                sink(input)
            }
        }
        Some((first, rest)) => first.push(input, &mut |piece| run(rest, piece, sink)),
    }
}

enum Stage {
    Gzip(Box<Gzip>),
    Deflate(Box<Deflate>),
    Brotli(Box<Brotli>),
}

impl Stage {
    fn new(coding: Coding) -> Stage {
        match coding {
            Coding::Gzip => Stage::Gzip(Box::new(Gzip::new())),
            Coding::Deflate => Stage::Deflate(Box::new(Deflate::new())),
            Coding::Brotli => Stage::Brotli(Box::new(Brotli::new())),
        }
    }

    fn push(&mut self, input: &[u8], out: Sink<'_>) -> Result<(), DecodeError> {
        match self {
            Stage::Gzip(g) => g.push(input, out),
            Stage::Deflate(d) => d.push(input, out),
            Stage::Brotli(b) => b.push(input, out),
        }
    }

    fn finish(&mut self, out: Sink<'_>) -> Result<(), DecodeError> {
        match self {
            Stage::Gzip(g) => g.finish(out),
            Stage::Deflate(d) => d.finish(out),
            Stage::Brotli(b) => b.finish(out),
        }
    }
}

/// One deflate stream (zlib-wrapped or raw): feeds input, reports whether it ended and how
/// much input it used.
struct Inflate {
    d: Decompress,
    buf: Box<[u8]>,
    ended: bool,
    what: &'static str,
}

impl Inflate {
    fn new(zlib: bool, what: &'static str) -> Inflate {
        Inflate {
            d: Decompress::new(zlib),
            buf: vec![0; PIECE].into_boxed_slice(),
            ended: false,
            what,
        }
    }

    /// Decodes from `input` until it is used up or the stream ends; returns the bytes used.
    fn push(&mut self, input: &[u8], out: Sink<'_>) -> Result<usize, DecodeError> {
        let mut used = 0;
        while !self.ended {
            let (in0, out0) = (self.d.total_in(), self.d.total_out());
            let status = self
                .d
                .decompress(&input[used..], &mut self.buf, FlushDecompress::None)
                .map_err(|_| DecodeError::Corrupt(self.what))?;
            let consumed = (self.d.total_in() - in0) as usize;
            let produced = (self.d.total_out() - out0) as usize;
            used += consumed;
            if produced > 0 {
                out(&self.buf[..produced])?;
            }
            if status == Status::StreamEnd {
                self.ended = true;
            } else if produced == self.buf.len() {
                // The piece was full: more output may be pending.
                continue;
            } else if used == input.len() {
                break; // everything given was used: wait for more input
            } else if consumed == 0 && produced == 0 {
                return Err(DecodeError::Corrupt(self.what));
            }
        }
        Ok(used)
    }
}

/// `deflate`: zlib-wrapped per the HTTP spec, or raw deflate as some servers send and
/// browsers accept; told apart by the zlib header.
struct Deflate {
    head: Vec<u8>,
    inflate: Option<Inflate>,
}

impl Deflate {
    fn new() -> Deflate {
        Deflate {
            head: Vec::new(),
            inflate: None,
        }
    }

    fn push(&mut self, input: &[u8], out: Sink<'_>) -> Result<(), DecodeError> {
        if input.is_empty() {
            return Ok(());
        }
        let pending;
        let input = match &self.inflate {
            Some(_) => input,
            None => {
                self.head.extend_from_slice(input);
                if self.head.len() < 2 {
                    return Ok(());
                }
                let (cmf, flg) = (self.head[0], self.head[1]);
                let zlib = cmf & 0x0f == 8
                    && cmf >> 4 <= 7
                    && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
                self.inflate = Some(Inflate::new(zlib, "deflate"));
                pending = std::mem::take(&mut self.head);
                &pending[..]
            }
        };
        let Some(inflate) = self.inflate.as_mut() else {
            return Ok(());
        };
        let used = inflate.push(input, out)?;
        if used < input.len() {
            return Err(DecodeError::Corrupt("deflate"));
        }
        Ok(())
    }

    fn finish(&mut self, out: Sink<'_>) -> Result<(), DecodeError> {
        match self.inflate.as_mut() {
            // No bytes at all: an empty body (a 204, a HEAD answer) has nothing to decode.
            None if self.head.is_empty() => Ok(()),
            None => Err(DecodeError::Truncated("deflate")),
            Some(inflate) => {
                inflate.push(&[], out)?;
                if inflate.ended {
                    Ok(())
                } else {
                    Err(DecodeError::Truncated("deflate"))
                }
            }
        }
    }
}

/// The most header bytes a gzip member may carry (file name, comment, extra field).
const MAX_GZIP_HEADER: usize = 64 * 1024;

enum GzipState {
    /// Collecting a member's header (the body may end here only before any of its bytes).
    Header(Vec<u8>),
    Body(Box<Inflate>, Crc),
    Trailer(Vec<u8>, Crc),
}

/// `gzip`: members in a row, each a header, raw deflate, then CRC-32 and length.
struct Gzip {
    state: GzipState,
}

impl Gzip {
    fn new() -> Gzip {
        Gzip {
            state: GzipState::Header(Vec::new()),
        }
    }

    fn push(&mut self, mut input: &[u8], out: Sink<'_>) -> Result<(), DecodeError> {
        const WHAT: &str = "gzip";
        while !input.is_empty() {
            match &mut self.state {
                GzipState::Header(head) => {
                    let before = head.len();
                    head.extend_from_slice(&input[..input.len().min(MAX_GZIP_HEADER)]);
                    match gzip_header_len(head)? {
                        None => {
                            if head.len() >= MAX_GZIP_HEADER {
                                return Err(DecodeError::Corrupt(WHAT));
                            }
                            return Ok(());
                        }
                        Some(len) => {
                            input = &input[len - before..];
                            self.state =
                                GzipState::Body(Box::new(Inflate::new(false, WHAT)), Crc::new());
                        }
                    }
                }
                GzipState::Body(inflate, crc) => {
                    let used = inflate.push(input, &mut |piece| {
                        crc.update(piece);
                        out(piece)
                    })?;
                    input = &input[used..];
                    if inflate.ended {
                        let crc = std::mem::replace(crc, Crc::new());
                        self.state = GzipState::Trailer(Vec::with_capacity(8), crc);
                    }
                }
                GzipState::Trailer(trailer, crc) => {
                    let take = (8 - trailer.len()).min(input.len());
                    trailer.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if trailer.len() == 8 {
                        let sum =
                            u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
                        let size =
                            u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
                        if sum != crc.sum() || size != crc.amount() {
                            return Err(DecodeError::Corrupt(WHAT));
                        }
                        self.state = GzipState::Header(Vec::new());
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: Sink<'_>) -> Result<(), DecodeError> {
        match &mut self.state {
            // A member ended, or no bytes came at all (an empty body).
            GzipState::Header(head) if head.is_empty() => Ok(()),
            GzipState::Body(inflate, crc) => {
                inflate.push(&[], &mut |piece| {
                    crc.update(piece);
                    out(piece)
                })?;
                Err(DecodeError::Truncated("gzip"))
            }
            _ => Err(DecodeError::Truncated("gzip")),
        }
    }
}

/// The length of a complete gzip member header at the start of `h`, `None` if more bytes
/// are needed (RFC 1952 §2.3).
fn gzip_header_len(h: &[u8]) -> Result<Option<usize>, DecodeError> {
    const WHAT: &str = "gzip";
    let check = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(DecodeError::Corrupt(WHAT))
        }
    };
    // Magic and method, checked as soon as they arrive.
    for (got, want) in h.iter().zip([0x1f, 0x8b, 8]) {
        check(*got == want)?;
    }
    if h.len() < 10 {
        return Ok(None);
    }
    let flags = h[3];
    check(flags & 0xe0 == 0)?;
    let mut at = 10;
    if flags & 0x04 != 0 {
        let Some(xlen) = h.get(at..at + 2) else {
            return Ok(None);
        };
        at += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [0x08, 0x10] {
        if flags & flag != 0 {
            match h
                .get(at..)
                .and_then(|rest| rest.iter().position(|b| *b == 0))
            {
                Some(zero) => at += zero + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & 0x02 != 0 {
        at += 2;
    }
    Ok((h.len() >= at).then_some(at))
}

/// `br`, with rust-brotli's streaming decoder; large windows (up to 1 GiB) refused.
struct Brotli {
    state: BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
    buf: Box<[u8]>,
    ended: bool,
    seen: bool,
}

impl Brotli {
    fn new() -> Brotli {
        let mut state = BrotliState::new(
            StandardAlloc::default(),
            StandardAlloc::default(),
            StandardAlloc::default(),
        );
        // RFC 7932 windows only (16 MiB at most): the large-window extension would let a
        // body make the decoder reserve up to 1 GiB.
        state.large_window = false;
        Brotli {
            state,
            buf: vec![0; PIECE].into_boxed_slice(),
            ended: false,
            seen: false,
        }
    }

    fn push(&mut self, input: &[u8], out: Sink<'_>) -> Result<(), DecodeError> {
        if input.is_empty() {
            return Ok(());
        }
        self.seen = true;
        if self.ended {
            return Err(DecodeError::Corrupt("br"));
        }
        self.drive(input, out)
    }

    fn drive(&mut self, input: &[u8], out: Sink<'_>) -> Result<(), DecodeError> {
        let (mut avail_in, mut in_off) = (input.len(), 0usize);
        loop {
            let (mut avail_out, mut out_off, mut total) = (self.buf.len(), 0usize, 0usize);
            let result = BrotliDecompressStream(
                &mut avail_in,
                &mut in_off,
                input,
                &mut avail_out,
                &mut out_off,
                &mut self.buf,
                &mut total,
                &mut self.state,
            );
            if out_off > 0 {
                out(&self.buf[..out_off])?;
            }
            match result {
                BrotliResult::NeedsMoreOutput => continue,
                BrotliResult::NeedsMoreInput => {
                    // The decoder keeps a meta-block's output in its window until the block
                    // ends (up to 16 MiB); take it now, so that what came in is judged
                    // before the compressed bytes that carry it may be passed on.
                    // (Size 0 asks for all of it: asked for less, this version of the
                    // decoder counts the bytes as taken but returns none.)
                    loop {
                        let mut size = 0;
                        let taken = BrotliDecoderTakeOutput(&mut self.state, &mut size);
                        if taken.is_empty() {
                            return Ok(());
                        }
                        for piece in taken.chunks(PIECE) {
                            out(piece)?;
                        }
                    }
                }
                BrotliResult::ResultSuccess => {
                    self.ended = true;
                    return if avail_in > 0 {
                        Err(DecodeError::Corrupt("br"))
                    } else {
                        Ok(())
                    };
                }
                BrotliResult::ResultFailure => return Err(DecodeError::Corrupt("br")),
            }
        }
    }

    fn finish(&mut self, out: Sink<'_>) -> Result<(), DecodeError> {
        if self.ended || !self.seen {
            return Ok(());
        }
        self.drive(&[], out)?;
        if self.ended {
            Ok(())
        } else {
            Err(DecodeError::Truncated("br"))
        }
    }
}

/// Decodes a whole body at once (tests, and callers that hold it whole).
pub fn decode_all(codings: &[Coding], body: &[u8], limit: u64) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut d = Decoder::new(codings, limit);
    d.feed(body, &mut |p| out.extend_from_slice(p))?;
    d.finish(&mut |p| out.extend_from_slice(p))?;
    Ok(out)
}

impl std::fmt::Display for Coding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{br, gzip, raw_deflate, zlib};
    use std::io::Write;

    fn text() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| format!("line {i} of a body to compress\n").into_bytes())
            .collect()
    }

    #[test]
    fn content_encoding_lists_are_parsed_in_applied_order() {
        assert_eq!(parse_content_encoding(b"gzip").unwrap(), vec![Coding::Gzip]);
        assert_eq!(
            parse_content_encoding(b" GZIP , br,identity").unwrap(),
            vec![Coding::Gzip, Coding::Brotli]
        );
        assert_eq!(parse_content_encoding(b"identity").unwrap(), vec![]);
        assert_eq!(
            parse_content_encoding(b"x-gzip, deflate").unwrap(),
            vec![Coding::Gzip, Coding::Deflate]
        );
        for bad in [&b"zstd"[..], b"gzip, compress", b"\xff"] {
            assert!(matches!(
                parse_content_encoding(bad),
                Err(DecodeError::Unsupported)
            ));
        }
    }

    #[test]
    fn every_coding_decodes_whole_and_byte_by_byte() {
        let plain = text();
        let cases = [
            (vec![Coding::Gzip], gzip(&plain)),
            (vec![Coding::Deflate], zlib(&plain)),
            (vec![Coding::Deflate], raw_deflate(&plain)),
            (vec![Coding::Brotli], br(&plain)),
            // `gzip, br`: gzip applied first, then brotli.
            (vec![Coding::Gzip, Coding::Brotli], br(&gzip(&plain))),
            (vec![Coding::Brotli, Coding::Deflate], zlib(&br(&plain))),
            // Two gzip members in a row.
            (
                vec![Coding::Gzip],
                [gzip(&plain[..1000]), gzip(&plain[1000..])].concat(),
            ),
        ];
        for (codings, body) in cases {
            assert_eq!(
                decode_all(&codings, &body, 1 << 30).unwrap(),
                plain,
                "{codings:?}"
            );
            let mut d = Decoder::new(&codings, 1 << 30);
            let mut out = Vec::new();
            for b in body.chunks(1) {
                d.feed(b, &mut |p| {
                    assert!(p.len() <= PIECE);
                    out.extend_from_slice(p)
                })
                .unwrap();
            }
            d.finish(&mut |p| out.extend_from_slice(p)).unwrap();
            assert_eq!(out, plain, "{codings:?} byte by byte");
        }
        // An empty body labeled with a coding has nothing to decode.
        for c in [Coding::Gzip, Coding::Deflate, Coding::Brotli] {
            assert_eq!(decode_all(&[c], b"", 10).unwrap(), b"");
        }
    }

    /// Each decoder hands out what its input so far holds, not at the end of a block: the
    /// gateway passes on compressed bytes only once what they decode to has been judged.
    #[test]
    fn output_comes_as_soon_as_the_input_holds_it() {
        let plain = text();
        for (coding, body) in [
            (Coding::Gzip, gzip(&plain)),
            (Coding::Deflate, zlib(&plain)),
            (Coding::Brotli, br(&plain)),
        ] {
            let mut d = Decoder::new(&[coding], 1 << 30);
            let mut out = 0usize;
            d.feed(&body[..body.len() / 2], &mut |p| out += p.len())
                .unwrap();
            assert!(out > plain.len() / 4, "{coding}: {out} of {}", plain.len());
        }
    }

    #[test]
    fn corrupt_truncated_and_trailing_data_are_errors() {
        let plain = text();
        for (coding, body) in [
            (Coding::Gzip, gzip(&plain)),
            (Coding::Deflate, zlib(&plain)),
            (Coding::Brotli, br(&plain)),
        ] {
            let cut = &body[..body.len() / 2];
            assert!(decode_all(&[coding], cut, 1 << 30).is_err(), "{coding} cut");
            let mut flipped = body.clone();
            let n = flipped.len();
            flipped[n - 3] ^= 0x55;
            assert!(
                decode_all(&[coding], &flipped, 1 << 30).is_err(),
                "{coding} flipped"
            );
            let mut trailing = body.clone();
            trailing.extend_from_slice(b"plain text after the end");
            assert!(
                decode_all(&[coding], &trailing, 1 << 30).is_err(),
                "{coding} trailing"
            );
        }
        assert!(decode_all(&[Coding::Gzip], b"not gzip at all", 1 << 30).is_err());
        assert!(decode_all(&[Coding::Brotli], &[0xff; 64], 1 << 30).is_err());
    }

    #[test]
    fn a_bomb_stops_at_the_limit_without_holding_its_output() {
        // 256 MiB of zeros, compressed to a few hundred KiB.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        let mut d = Decoder::new(&[Coding::Gzip], 4 << 20);
        let mut seen = 0usize;
        let err = d.feed(&bomb, &mut |p| seen += p.len()).unwrap_err();
        assert_eq!(err, DecodeError::TooLarge(4 << 20));
        assert!(seen <= 4 << 20, "{seen}");
        // Once failed, it stays failed.
        assert!(d.finish(&mut |_| {}).is_err());

        // Brotli packs zeros far tighter still.
        let mut bomb = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut bomb, 1 << 16, 1, 22);
            for _ in 0..64 {
                w.write_all(&zeros).unwrap();
            }
        }
        let mut seen = 0usize;
        let mut d = Decoder::new(&[Coding::Brotli], 1 << 20);
        let err = d.feed(&bomb, &mut |p| seen += p.len()).unwrap_err();
        assert_eq!(err, DecodeError::TooLarge(1 << 20));
        assert!(seen <= 1 << 20, "{seen}");
    }
}
