//! The decoders against damaged input, with a fixed-seed PRNG: a valid compressed body with
//! random bytes flipped, cut or appended, fed whole or in random chunks, never panics, and
//! the chunked result equals the whole one (same bytes, or an error both ways) — so how a
//! function splits its writes cannot change what data-loss prevention sees. And a secret
//! compressed in any coding is found by a streamed scan of the decoded bytes.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed step must panic")]

use std::io::Write;
use std::sync::Arc;

use moat_dlp::decode::{Coding, Decoder, decode_all};
use moat_dlp::{DecodedStream, Mode, Scanner};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn compress(coding: Coding, data: &[u8]) -> Vec<u8> {
    match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Coding::Brotli => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 3, 20);
                w.write_all(data).unwrap();
            }
            out
        }
    }
}

fn chunked(codings: &[Coding], body: &[u8], rng: &mut Rng, limit: u64) -> Option<Vec<u8>> {
    let mut d = Decoder::new(codings, limit);
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(300));
        d.feed(&rest[..n], &mut |p| out.extend_from_slice(p)).ok()?;
        rest = &rest[n..];
    }
    d.finish(&mut |p| out.extend_from_slice(p)).ok()?;
    Some(out)
}

#[test]
fn damaged_bodies_decode_the_same_whole_and_in_chunks() {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let codings = [Coding::Gzip, Coding::Deflate, Coding::Brotli];
    let mut errors = 0;
    for case in 0..300 {
        let coding = codings[case % 3];
        let len = rng.below(20_000);
        let plain: Vec<u8> = (0..len)
            .map(|i| b"abcdefgh \n"[(i * 7 + case) % 10])
            .collect();
        let mut body = compress(coding, &plain);
        match rng.below(4) {
            0 => {}
            1 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(body.len());
                    body[at] ^= 1 << rng.below(8);
                }
            }
            2 => body.truncate(rng.below(body.len())),
            _ => body.extend((0..1 + rng.below(16)).map(|_| rng.next() as u8)),
        }
        let limit = if rng.below(5) == 0 {
            len as u64 / 2
        } else {
            1 << 30
        };
        let whole = decode_all(&[coding], &body, limit).ok();
        let pieces = chunked(&[coding], &body, &mut rng, limit);
        assert!(
            whole == pieces,
            "case {case} ({coding}): whole and chunked differ"
        );
        match &whole {
            // An empty body (cut to nothing) carries nothing, whatever its label says.
            Some(out) if body.is_empty() => assert!(out.is_empty()),
            // Gzip and zlib carry checksums: what they accept is the original. Brotli has
            // none, so a flipped bit may decode to other bytes — which are then what is
            // judged, as a client would read them.
            Some(out) if coding != Coding::Brotli => {
                assert!(out == &plain, "case {case}: accepted, so the original")
            }
            Some(_) => {}
            None => errors += 1,
        }
    }
    assert!(errors > 50, "damage should be noticed: {errors}");
}

#[test]
fn a_compressed_secret_is_found_however_the_body_is_cut() {
    let secret = b"sk_live_0123456789abcdef";
    let scanner = Arc::new(Scanner::builder().secret("key", secret).build().unwrap());
    let mut rng = Rng(42);
    for case in 0..60 {
        let coding = [Coding::Gzip, Coding::Deflate, Coding::Brotli][case % 3];
        let mut plain: Vec<u8> = (0..rng.below(50_000))
            .map(|i| b"0123456789abcdef\n"[i % 17])
            .collect();
        let at = rng.below(plain.len());
        plain.splice(at..at, secret.iter().copied());
        let body = compress(coding, &plain);
        let mut judged = DecodedStream::new(&scanner, &[coding], 1 << 30, Mode::Block);
        let mut findings = 0;
        let mut sent = Vec::new();
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(2000));
            let step = judged.feed(&rest[..n]).unwrap();
            findings += step.findings.len();
            sent.extend(step.bytes);
            rest = &rest[n..];
        }
        let step = judged.finish().unwrap();
        findings += step.findings.len();
        sent.extend(step.bytes);
        assert_eq!(findings, 1, "case {case} ({coding})");
        // What block mode released before the finding does not decode to the secret.
        let mut d = Decoder::new(&[coding], 1 << 30);
        let mut seen = Vec::new();
        let _ = d.feed(&sent, &mut |p| seen.extend_from_slice(p));
        assert!(
            !seen.windows(secret.len()).any(|w| w == secret),
            "case {case}"
        );
    }
}
