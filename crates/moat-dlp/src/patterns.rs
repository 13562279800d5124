//! The pattern detectors (card numbers, PEM keys, AWS key ids, JWTs, high-entropy tokens):
//! a skipping pass for card numbers, one literal search for the anchors every PEM header,
//! AWS key id and JWT starts with, and a regex pass for the opt-in high-entropy detector.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use regex::bytes::Regex;
use zeroize::Zeroizing;

use crate::finder::LiteralFinder;
use crate::{Detector, DetectorSet, DlpError, Encoding};

/// Runs of base64 or hex characters shorter than this are never judged high-entropy.
pub const HIGH_ENTROPY_MIN_LEN: usize = 20;

/// A run made only of hex digits is high-entropy at or above this many bits per character
/// (the ceiling for hex is 4; 20 random hex digits average about 3.3).
pub const HIGH_ENTROPY_HEX_BITS: f64 = 3.0;

/// Any other run of `n` characters is high-entropy at or above
/// `min(HIGH_ENTROPY_BASE64_BITS, log2(n) - 1)` bits per character. A run of `n` characters
/// cannot exceed `log2(n)` bits, so a flat threshold would miss short random tokens; random
/// base64 sits about 0.3–0.8 bits under `log2(n)` for the lengths that matter.
pub const HIGH_ENTROPY_BASE64_BITS: f64 = 4.5;

/// One match, before it becomes a [`crate::Finding`]: positions are relative to the scanned
/// buffer and the secret is an index into the scanner's name list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) detector: Detector,
    pub(crate) secret: Option<usize>,
    pub(crate) encoding: Option<Encoding>,
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Set for tokens of unbounded length whose match ran to the end of the buffer: in a
    /// stream, the bytes that follow may still belong to the token.
    pub(crate) cont: Option<Continuation>,
}

/// How a token of unbounded length continues into bytes not yet seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continuation {
    Jwt,
    HighEntropy,
    PrivateKey,
}

impl Continuation {
    /// The end of the token that continues at `from` in `buf`. `from` may be `buf.len()`.
    pub(crate) fn extend(self, buf: &[u8], from: usize) -> usize {
        match self {
            Continuation::Jwt => run_end(buf, from, is_jwt_byte),
            Continuation::HighEntropy => run_end(buf, from, is_token_byte),
            // The end marker may have started before `from` (split across chunks), so look
            // back far enough to see all of it.
            Continuation::PrivateKey => pem_body_end(buf, from, from.saturating_sub(64)).0,
        }
    }
}

fn run_end(buf: &[u8], from: usize, allowed: fn(u8) -> bool) -> usize {
    buf.get(from..)
        .and_then(|rest| rest.iter().position(|&b| !allowed(b)))
        .map_or(buf.len(), |i| from + i)
}

fn is_jwt_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'=' | b'-')
}

/// Bytes that may appear between a PEM header and its end line: base64, the
/// `Proc-Type`/`DEK-Info` headers of encrypted keys, line breaks, and the `\n` escapes of a
/// key embedded in a JSON string.
fn is_pem_body_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'+' | b'/' | b'=' | b'-' | b':' | b',' | b' ' | b'\t' | b'\r' | b'\n' | b'\\'
        )
}

/// The end of a PEM body starting at `from`: just past the `-----END … -----` line if it is
/// found (searching from `search_from`) before the first byte that cannot be in a key, else
/// that first byte. The flag says whether the end line was found.
fn pem_body_end(buf: &[u8], from: usize, search_from: usize) -> (usize, bool) {
    let limit = run_end(buf, from, is_pem_body_byte);
    let Some(region) = buf.get(search_from..limit) else {
        return (limit, false);
    };
    if let Some(at) = memchr::memmem::find(region, b"-----END") {
        let after = at + 8;
        if let Some(close) = region
            .get(after..)
            .and_then(|r| memchr::memmem::find(r, b"-----"))
        {
            return ((search_from + after + close + 5).max(from), true);
        }
    }
    (limit, false)
}

/// The regular expressions the hand-written matchers below implement, kept as their
/// specification (the tests compare both on random input).
#[cfg(test)]
const AWS_REGEX: &str = r"(?-u)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}";
#[cfg(test)]
const PEM_REGEX: &str = r"(?-u)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----";
#[cfg(test)]
const JWT_REGEX: &str = r"(?-u)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_.-]*";

const PEM_ANCHOR: &[u8] = b"-----BEGIN ";
const AWS_ANCHORS: [&[u8]; 4] = [b"AKIA", b"ASIA", b"ABIA", b"ACCA"];
const JWT_ANCHOR: &[u8] = b"eyJ";

/// The compiled pattern detectors of one scanner.
///
/// Why anchors rather than one regex pass per detector: every PEM header, AWS key id and JWT
/// starts with a fixed literal, so one SIMD literal search over the buffer finds every place
/// a match can start, and the (short, deterministic) rest of each pattern is checked there
/// by hand. Text without an anchor costs one pass at memory speed instead of a regex set
/// pass and up to three regex passes.
pub(crate) struct Patterns {
    /// Every anchor of the enabled anchored detectors.
    anchors: Option<LiteralFinder>,
    /// The detector of each anchor, in order.
    anchor_detectors: Vec<Detector>,
    cards: bool,
    entropy: Option<Regex>,
}

impl Patterns {
    /// The pattern detectors in `enabled`, or `None` if only secrets are scanned.
    pub(crate) fn new(enabled: DetectorSet) -> Result<Option<Self>, DlpError> {
        let mut anchors = Vec::new();
        let mut anchor_detectors = Vec::new();
        let mut add = |detector, anchor: &[u8]| {
            anchors.push(Zeroizing::new(anchor.to_vec()));
            anchor_detectors.push(detector);
        };
        if enabled.contains(Detector::PrivateKey) {
            add(Detector::PrivateKey, PEM_ANCHOR);
        }
        if enabled.contains(Detector::AwsKey) {
            for anchor in AWS_ANCHORS {
                add(Detector::AwsKey, anchor);
            }
        }
        if enabled.contains(Detector::Jwt) {
            add(Detector::Jwt, JWT_ANCHOR);
        }
        let cards = enabled.contains(Detector::CreditCard);
        let entropy = if enabled.contains(Detector::HighEntropy) {
            Some(
                Regex::new(&format!(
                    r"(?-u)[A-Za-z0-9+/_=-]{{{HIGH_ENTROPY_MIN_LEN},}}"
                ))
                .map_err(|e| DlpError::Build(e.to_string()))?,
            )
        } else {
            None
        };
        if anchors.is_empty() && !cards && entropy.is_none() {
            return Ok(None);
        }
        let anchors = if anchors.is_empty() {
            None
        } else {
            Some(LiteralFinder::new(anchors)?)
        };
        Ok(Some(Patterns {
            anchors,
            anchor_detectors,
            cards,
            entropy,
        }))
    }

    /// Appends every pattern match in `buf` to `out`.
    pub(crate) fn find(&self, buf: &[u8], out: &mut Vec<Hit>) {
        if self.cards {
            cards(buf, out);
        }
        if let Some(anchors) = &self.anchors {
            let mut at = Vec::new();
            anchors.for_each(buf, |index, start, _| {
                if let Some(&detector) = self.anchor_detectors.get(index) {
                    at.push((start, detector));
                }
            });
            // Each detector reports what a left-to-right, non-overlapping regex search
            // would: a match starting inside an earlier match of the same detector (even
            // one rejected afterwards) is not looked at.
            at.sort_unstable();
            let (mut pem_from, mut aws_from, mut jwt_from) = (0, 0, 0);
            for (start, detector) in at {
                match detector {
                    Detector::PrivateKey if start >= pem_from => {
                        if let Some(header_end) = pem_header_at(buf, start) {
                            pem_from = header_end;
                            let (end, closed) = pem_body_end(buf, header_end, header_end);
                            let cont = (!closed).then_some(Continuation::PrivateKey);
                            out.push(pattern_hit(Detector::PrivateKey, start, end, cont));
                        }
                    }
                    Detector::AwsKey if start >= aws_from => {
                        if let Some(end) = aws_key_at(buf, start) {
                            aws_from = end;
                            let left_ok = start == 0 || !buf[start - 1].is_ascii_alphanumeric();
                            let right_ok = buf.get(end).is_none_or(|b| !b.is_ascii_alphanumeric());
                            if left_ok && right_ok {
                                out.push(pattern_hit(Detector::AwsKey, start, end, None));
                            }
                        }
                    }
                    Detector::Jwt if start >= jwt_from => {
                        if let Some((header_end, end)) = jwt_at(buf, start) {
                            jwt_from = end;
                            let is_jwt = URL_SAFE_NO_PAD
                                .decode(&buf[start..header_end])
                                .is_ok_and(|h| memchr::memmem::find(&h, b"\"alg\"").is_some());
                            if is_jwt {
                                out.push(pattern_hit(
                                    Detector::Jwt,
                                    start,
                                    end,
                                    Some(Continuation::Jwt),
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(entropy) = &self.entropy {
            for m in entropy.find_iter(buf) {
                if is_high_entropy(m.as_bytes()) {
                    out.push(pattern_hit(
                        Detector::HighEntropy,
                        m.start(),
                        m.end(),
                        Some(Continuation::HighEntropy),
                    ));
                }
            }
        }
    }
}

/// The end of the match of [`AWS_REGEX`] starting at `start` (an AWS anchor), if any.
fn aws_key_at(buf: &[u8], start: usize) -> Option<usize> {
    let end = start + 20;
    let tail = buf.get(start + 4..end)?;
    tail.iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        .then_some(end)
}

/// The end of the match of [`PEM_REGEX`] starting at `start`, if any. The words before
/// `PRIVATE KEY` are upper-case letters or digits each followed by one space; no word can
/// both start `PRIVATE KEY-----` and continue the words, so the parse is unique.
fn pem_header_at(buf: &[u8], start: usize) -> Option<usize> {
    let mut at = start + PEM_ANCHOR.len();
    loop {
        let rest = buf.get(at..)?;
        if rest.starts_with(b"PRIVATE KEY-----") {
            return Some(at + 16);
        }
        let word = rest
            .iter()
            .position(|b| !(b.is_ascii_uppercase() || b.is_ascii_digit()))?;
        if word == 0 || rest[word] != b' ' {
            return None;
        }
        at += word + 1;
    }
}

/// The header end (the `.`) and the end of the match of [`JWT_REGEX`] starting at `start`
/// (an `eyJ`), if any.
fn jwt_at(buf: &[u8], start: usize) -> Option<(usize, usize)> {
    let header_end = run_end(buf, start + 3, is_base64url_byte);
    if header_end - (start + 3) < 8 || buf.get(header_end) != Some(&b'.') {
        return None;
    }
    if !buf.get(header_end + 1..)?.starts_with(JWT_ANCHOR) {
        return None;
    }
    Some((header_end, run_end(buf, header_end + 4, is_jwt_byte)))
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}

/// Whether a byte can be part of a card number: a digit or a group separator.
const fn card_bytes() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        table[b as usize] = true;
        b += 1;
    }
    table[b' ' as usize] = true;
    table[b'-' as usize] = true;
    table
}

static CARD_BYTE: [bool; 256] = card_bytes();

/// The fewest digits a card number has.
const MIN_CARD_DIGITS: usize = 13;

/// Maximal runs of digits, spaces and dashes at least [`MIN_CARD_DIGITS`] bytes long.
///
/// Why it skips: API responses are full of short digit runs (prices, quantities,
/// timestamps) and card numbers are rare, so looking at every byte dominated the scan. Any
/// run of 13 such bytes covers the byte 12 past wherever the search stands, so only that
/// byte is looked at; when it is not a card byte, the next 13 positions are ruled out at
/// once. When it is, the run around it is measured (each byte is measured at most once).
fn card_byte_runs(buf: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let is_card = |b: &u8| CARD_BYTE[usize::from(*b)];
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let probe = from + MIN_CARD_DIGITS - 1;
            let b = *buf.get(probe)?;
            if !is_card(&b) {
                from = probe + 1;
                continue;
            }
            let start = buf[from..probe]
                .iter()
                .rposition(|b| !is_card(b))
                .map_or(from, |i| from + i + 1);
            let end = buf[probe..]
                .iter()
                .position(|b| !is_card(b))
                .map_or(buf.len(), |i| probe + i);
            // `buf[end]` is not a card byte: no run starts before `end + 1`.
            from = end + 1;
            if end - start >= MIN_CARD_DIGITS {
                return Some((start, end));
            }
        }
    })
}

/// Maximal runs of digits joined by single spaces or dashes that hold at least 13 digits.
fn digit_runs(buf: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    card_byte_runs(buf).flat_map(move |(lo, hi)| {
        let mut i = lo;
        std::iter::from_fn(move || {
            while i < hi {
                if !buf[i].is_ascii_digit() {
                    i += 1;
                    continue;
                }
                let start = i;
                let mut digits = 0;
                loop {
                    while i < hi && buf[i].is_ascii_digit() {
                        i += 1;
                        digits += 1;
                    }
                    // `buf[hi]`, if any, is not a digit: a run never crosses `hi`.
                    let joined = matches!(buf.get(i), Some(b' ' | b'-'))
                        && buf.get(i + 1).is_some_and(u8::is_ascii_digit);
                    if !joined {
                        break;
                    }
                    i += 1;
                }
                if digits >= MIN_CARD_DIGITS {
                    return Some((start, i));
                }
            }
            None
        })
    })
}

/// Card numbers: in each digit run, the leftmost-longest choice of consecutive groups of 3
/// or more digits (the first of four, if there are several) holding 13–19 digits that pass
/// Luhn and [`issued`]. A group is never split, so digits
/// inside a longer run never match, and a run glued to letters (`id4111…`) is some other
/// token, not a card.
fn cards(buf: &[u8], out: &mut Vec<Hit>) {
    for (start, end) in digit_runs(buf) {
        let left_ok = start == 0 || !buf[start - 1].is_ascii_alphanumeric();
        let right_ok = buf.get(end).is_none_or(|b| !b.is_ascii_alphanumeric());
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut at = start;
        for part in buf[start..end].split(|b| !b.is_ascii_digit()) {
            groups.push((at, at + part.len()));
            at += part.len() + 1;
        }
        let last = groups.len() - 1;
        let mut i = 0;
        while i < groups.len() {
            let mut best = None;
            let mut digits = 0;
            for j in i..groups.len() {
                let len = groups[j].1 - groups[j].0;
                digits += len;
                // A short group (`12 4111…`) is a different number, as is a run past 19.
                if digits > 19 || len < 3 {
                    break;
                }
                let edges_ok = (i > 0 || left_ok) && (j < last || right_ok);
                // Printed card numbers are grouped from a first group of four (4-4-4-4,
                // Amex 4-6-5); other groupings are other numbers (UUIDs start 8-4-4,
                // order numbers 3-7-7).
                let layout_ok = j == i || groups[i].1 - groups[i].0 == 4;
                let number = &buf[groups[i].0..groups[j].1];
                if digits >= 13 && edges_ok && layout_ok && luhn(number) && issued(number, digits) {
                    best = Some(j);
                }
            }
            match best {
                Some(j) => {
                    out.push(pattern_hit(
                        Detector::CreditCard,
                        groups[i].0,
                        groups[j].1,
                        None,
                    ));
                    i = j + 1;
                }
                None => i += 1,
            }
        }
    }
}

fn pattern_hit(detector: Detector, start: usize, end: usize, cont: Option<Continuation>) -> Hit {
    Hit {
        detector,
        secret: None,
        encoding: None,
        start,
        end,
        cont,
    }
}

/// Whether a number of `len` digits (separators in `s` are skipped) starts with the issuer
/// prefix of a card network that issues numbers of that length: Visa (4; 13, 16, 19),
/// Mastercard (51–55, 2221–2720; 16), Mir (2200–2204; 16–19), American Express (34, 37;
/// 15), Diners Club (300–305, 36, 38, 39; 14–19), JCB (3528–3589; 16–19), UATP (1; 15),
/// Maestro (50, 56–59; 13–19), and everything starting with 6 (Discover, UnionPay, RuPay,
/// Maestro; 13–19).
///
/// Why: one random digit string in ten passes Luhn, and API bodies are full of long digit
/// strings that are not cards (millisecond and microsecond timestamps start with 1, order
/// numbers with a year). No network issues those prefixes at those lengths.
fn issued(s: &[u8], len: usize) -> bool {
    let mut prefix = 0u32;
    for d in s.iter().filter(|b| b.is_ascii_digit()).take(4) {
        prefix = prefix * 10 + u32::from(d - b'0');
    }
    let (p1, p2, p3) = (prefix / 1000, prefix / 100, prefix / 10);
    match p1 {
        1 => len == 15,
        2 => {
            (2221..=2720).contains(&prefix) && len == 16
                || (2200..=2204).contains(&prefix) && len >= 16
        }
        3 => {
            matches!(p2, 34 | 37) && len == 15
                || ((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39)) && len >= 14
                || (3528..=3589).contains(&prefix) && len >= 16
        }
        4 => matches!(len, 13 | 16 | 19),
        5 => (51..=55).contains(&p2) && len == 16 || matches!(p2, 50 | 56..=59),
        6 => true,
        _ => false,
    }
}

/// The Luhn checksum over the digits of `s` (other bytes are skipped).
fn luhn(s: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in s
        .iter()
        .rev()
        .filter(|b| b.is_ascii_digit())
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        sum += if i % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    sum.is_multiple_of(10)
}

/// Shannon entropy in bits per byte.
fn entropy(run: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in run {
        counts[usize::from(b)] += 1;
    }
    let n = run.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether a run of token characters looks like a random secret. Besides the entropy
/// threshold, a run must mix digits with letters (and, outside hex, both letter cases):
/// identifiers such as `ThisIsAVeryLongVariableName` reach base64-like entropy without
/// being secrets.
fn is_high_entropy(run: &[u8]) -> bool {
    if run.len() < HIGH_ENTROPY_MIN_LEN {
        return false;
    }
    let has_digit = run.iter().any(u8::is_ascii_digit);
    if run.iter().all(u8::is_ascii_hexdigit) {
        let has_letter = run.iter().any(u8::is_ascii_alphabetic);
        return has_digit && has_letter && entropy(run) >= HIGH_ENTROPY_HEX_BITS;
    }
    let has_upper = run.iter().any(u8::is_ascii_uppercase);
    let has_lower = run.iter().any(u8::is_ascii_lowercase);
    let threshold = HIGH_ENTROPY_BASE64_BITS.min((run.len() as f64).log2() - 1.0);
    has_digit && has_upper && has_lower && entropy(run) >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_known_test_numbers_and_rejects_off_by_one() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(luhn(b"378282246310005"));
        assert!(!luhn(b"4111111111111112"));
    }

    #[test]
    fn issuer_prefixes_and_lengths() {
        for (number, want) in [
            (&b"4111111111111111"[..], true),
            (b"4222222222222", true),
            (b"378282246310005", true),
            (b"5500-0000-0000-0004", true),
            (b"2223000048400011", true),
            (b"6011111111111117", true),
            (b"3530111333300000", true),
            (b"30569309025904", true),
            (b"1700000000123", false),  // a millisecond timestamp
            (b"2024-000123456", false), // an order number
            (b"41111111111111", false), // Visa has no 14-digit numbers
            (b"7000000000000006", false),
        ] {
            let len = number.iter().filter(|b| b.is_ascii_digit()).count();
            assert_eq!(
                issued(number, len),
                want,
                "{}",
                String::from_utf8_lossy(number)
            );
        }
    }

    #[test]
    fn entropy_judges_tokens_not_words() {
        assert!(is_high_entropy(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
        assert!(is_high_entropy(b"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"));
        assert!(!is_high_entropy(b"ThisIsAVeryLongVariableName"));
        assert!(!is_high_entropy(b"00000000000000000000000000"));
        assert!(!is_high_entropy(b"Password123Password123"));
        assert!(!is_high_entropy(b"short9Xy"));
    }

    #[test]
    fn pem_body_stops_at_the_end_line() {
        let buf =
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\nThanks Bob";
        let (end, closed) = pem_body_end(buf, 31, 31);
        assert!(closed);
        assert_eq!(&buf[..end], &buf[..buf.len() - 11]);
    }

    /// A random buffer over `alphabet`, with `plants` pasted in at random places.
    fn random_buf(seed: u64, len: usize, alphabet: &[u8], plants: &[&[u8]]) -> Vec<u8> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut buf: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        for _ in 0..len / 40 {
            let plant = plants[(next() % plants.len() as u64) as usize];
            let at = (next() % len as u64) as usize;
            let end = (at + plant.len()).min(len);
            buf[at..end].copy_from_slice(&plant[..end - at]);
        }
        buf
    }

    /// The byte-at-a-time digit-run loop the skipping one replaced.
    fn digit_runs_reference(buf: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < buf.len() {
            if !buf[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let start = i;
            let mut digits = 0;
            loop {
                while i < buf.len() && buf[i].is_ascii_digit() {
                    i += 1;
                    digits += 1;
                }
                let joined = matches!(buf.get(i), Some(b' ' | b'-'))
                    && buf.get(i + 1).is_some_and(u8::is_ascii_digit);
                if !joined {
                    break;
                }
                i += 1;
            }
            if digits >= 13 {
                out.push((start, i));
            }
        }
        out
    }

    #[test]
    fn skipping_digit_runs_equal_the_byte_loop() {
        for seed in 0..200u64 {
            let buf = random_buf(
                seed,
                2000,
                b"0123456789012345 -x",
                &[b"4111 1111 1111 1111"],
            );
            assert_eq!(
                digit_runs(&buf).collect::<Vec<_>>(),
                digit_runs_reference(&buf),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn anchored_matchers_equal_their_regexes() {
        let plants: &[&[u8]] = &[
            b"-----BEGIN RSA PRIVATE KEY-----",
            b"-----BEGIN PRIVATE KEY-----",
            b"-----BEGIN ",
            b"PRIVATE KEY-----",
            b"AKIA",
            b"ASIA",
            b"ACCA",
            b"ABIA",
            b"eyJ",
            b"eyJhbGciOiJIUzI1NiJ9.eyJ",
        ];
        let regexes = [
            (Regex::new(PEM_REGEX), 0),
            (Regex::new(AWS_REGEX), 1),
            (Regex::new(JWT_REGEX), 2),
        ];
        let mut matched = [0usize; 3];
        for seed in 0..300u64 {
            let buf = random_buf(seed, 3000, b"ABCIKSPRVEY -.eyJ0_", plants);
            for (re, which) in &regexes {
                let re = re.as_ref().unwrap_or_else(|e| panic!("{e}"));
                let want: Vec<(usize, usize)> =
                    re.find_iter(&buf).map(|m| (m.start(), m.end())).collect();
                let mut got = Vec::new();
                let mut from = 0;
                for start in 0..buf.len() {
                    if start < from {
                        continue;
                    }
                    let end = match which {
                        0 => buf[start..]
                            .starts_with(PEM_ANCHOR)
                            .then(|| pem_header_at(&buf, start))
                            .flatten(),
                        1 => AWS_ANCHORS
                            .iter()
                            .any(|a| buf[start..].starts_with(a))
                            .then(|| aws_key_at(&buf, start))
                            .flatten(),
                        _ => buf[start..]
                            .starts_with(JWT_ANCHOR)
                            .then(|| jwt_at(&buf, start).map(|(_, e)| e))
                            .flatten(),
                    };
                    if let Some(end) = end {
                        got.push((start, end));
                        from = end;
                    }
                }
                matched[*which] += want.len();
                assert_eq!(got, want, "seed {seed} regex {which}");
            }
        }
        assert!(matched.iter().all(|&n| n > 10), "{matched:?}");
    }
}
