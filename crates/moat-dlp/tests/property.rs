//! Property-style attacks with a fixed-seed PRNG: a random secret, in a random encoding, at
//! a random place in random JSON-like text, must always be found and masked, whole and
//! streamed in random chunks; text without it must never name it.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use moat_dlp::{Detector, DetectorSet, Finding, Scanner};
use zeroize::Zeroizing;

/// xorshift64*: deterministic, so a failure names a case that can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

const TEXT: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 {}[]:,\"._-/+=%";

/// Random JSON-like filler of about `n` bytes.
fn filler(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        let n = 3 + rng.below(8);
        let key = rng.bytes(n, b"abcdefghijklmnopqrstuvwxyz_");
        out.extend_from_slice(b"\"");
        out.extend(key);
        out.extend_from_slice(b"\":");
        match rng.below(3) {
            0 => out.extend(rng.next().to_string().bytes().take(1 + rng.below(8))),
            1 => {
                out.push(b'"');
                let len = rng.below(24);
                out.extend(rng.bytes(len, TEXT).into_iter().filter(|&b| b != b'"'));
                out.push(b'"');
            }
            _ => out.extend_from_slice(b"true"),
        }
        out.extend_from_slice(b", ");
    }
    out
}

/// `secret` as some tool might send it, with the name of the form.
fn encode(rng: &mut Rng, secret: &[u8]) -> (&'static str, Vec<u8>) {
    // Base64 forms wrap the secret in random neighbours, so every alignment occurs.
    let (lead, trail) = (rng.below(5), rng.below(5));
    let mut wrapped = rng.bytes(lead, &(0..=255).collect::<Vec<u8>>());
    wrapped.extend_from_slice(secret);
    wrapped.extend(rng.bytes(trail, TEXT));
    match rng.below(9) {
        0 => ("raw", secret.to_vec()),
        1 => ("base64", STANDARD.encode(&wrapped).into_bytes()),
        2 => (
            "base64-nopad",
            STANDARD_NO_PAD.encode(&wrapped).into_bytes(),
        ),
        3 => ("base64url", URL_SAFE.encode(&wrapped).into_bytes()),
        4 => (
            "base64url-nopad",
            URL_SAFE_NO_PAD.encode(&wrapped).into_bytes(),
        ),
        5 => (
            "hex",
            secret
                .iter()
                .flat_map(|b| format!("{b:02x}").into_bytes())
                .collect(),
        ),
        6 => (
            "HEX",
            secret
                .iter()
                .flat_map(|b| format!("{b:02X}").into_bytes())
                .collect(),
        ),
        7 => (
            "percent",
            secret
                .iter()
                .flat_map(|&b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        vec![b]
                    } else {
                        format!("%{b:02X}").into_bytes()
                    }
                })
                .collect(),
        ),
        _ => (
            "percent-all-lower",
            secret
                .iter()
                .flat_map(|b| format!("%{b:02x}").into_bytes())
                .collect(),
        ),
    }
}

fn named(findings: &[Finding], name: &str) -> usize {
    findings
        .iter()
        .filter(|f| f.detector == Detector::Secrets && f.secret.as_deref() == Some(name))
        .count()
}

#[test]
fn an_embedded_secret_is_always_found_and_masked() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..400 {
        let len = 6 + rng.below(60);
        let secret = if rng.below(2) == 0 {
            rng.bytes(len, TEXT)
        } else {
            rng.bytes(len, &(0..=255).collect::<Vec<u8>>())
        };
        let secrets = vec![
            ("target", Zeroizing::new(secret.clone())),
            ("decoy", Zeroizing::new(rng.bytes(24, TEXT))),
        ];
        let scanner = Arc::new(
            Scanner::new(&secrets, DetectorSet::default()).unwrap_or_else(|e| panic!("{e}")),
        );
        let (form, encoded) = encode(&mut rng, &secret);
        let (nb, na) = (rng.below(2000), rng.below(2000));
        let before = filler(&mut rng, nb);
        let after = filler(&mut rng, na);
        let body = [before.as_slice(), &encoded, &after].concat();
        let at = before.len()..before.len() + encoded.len();

        let (masked, findings) = scanner.redact(&body);
        assert!(
            named(&findings, "target") >= 1,
            "case {case}: {form} not found"
        );
        assert!(
            findings
                .iter()
                .filter(|f| f.secret.as_deref() == Some("target"))
                .all(|f| f.range.start >= at.start && f.range.end <= at.end),
            "case {case}: {form} found outside where it was put"
        );
        // The masked output no longer contains the secret in the form it was sent in.
        assert!(
            memchr::memmem::find(&masked, &encoded).is_none(),
            "case {case}: {form} survived redaction"
        );
        // The same body streamed in random chunks gives the same bytes and findings.
        let mut stream = scanner.stream();
        let mut out = Vec::new();
        let mut streamed = Vec::new();
        let mut rest = body.as_slice();
        while !rest.is_empty() {
            let n = (1 + rng.below(600)).min(rest.len());
            let r = stream.feed_release(&rest[..n]);
            out.extend(r.bytes);
            streamed.extend(r.findings);
            rest = &rest[n..];
        }
        let r = stream.finish_release();
        out.extend(r.bytes);
        streamed.extend(r.findings);
        assert_eq!(out, masked.as_ref(), "case {case}: stream differs");
        let key = |f: &Finding| (f.range.start, f.range.end, f.detector, f.secret.clone());
        let mut a = streamed;
        let mut b = findings;
        a.sort_by_key(key);
        b.sort_by_key(key);
        assert_eq!(a, b, "case {case}: stream findings differ");
    }
}

#[test]
fn text_without_the_secret_never_names_it() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for case in 0..200 {
        let n = 16 + rng.below(32);
        let secrets = vec![("target", Zeroizing::new(rng.bytes(n, TEXT)))];
        let scanner =
            Scanner::new(&secrets, DetectorSet::secrets_only()).unwrap_or_else(|e| panic!("{e}"));
        let body = filler(&mut rng, 8000);
        assert!(scanner.scan(&body).is_empty(), "case {case}");
    }
}
