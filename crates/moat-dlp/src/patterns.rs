//! The pattern detectors (card numbers, PEM keys, AWS key ids, JWTs, high-entropy tokens):
//! one `RegexSet` pass decides which detectors can match at all, then only those run.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use regex::bytes::{Regex, RegexSet};

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

/// The compiled pattern detectors of one scanner.
pub(crate) struct Patterns {
    prefilter: RegexSet,
    /// The detector of each prefilter pattern, in order.
    prefilter_detectors: Vec<Detector>,
    cards: bool,
    aws: Regex,
    pem: Regex,
    jwt: Regex,
    entropy: Regex,
}

impl Patterns {
    /// The pattern detectors in `enabled`, or `None` if only secrets are scanned.
    pub(crate) fn new(enabled: DetectorSet) -> Result<Option<Self>, DlpError> {
        let mut pre = Vec::new();
        let mut pre_detectors = Vec::new();
        for detector in enabled.iter() {
            // Each is the smallest thing a real match must contain, so the set pass is a
            // sound filter: no detector is skipped on a buffer where it could match.
            let pattern = match detector {
                // Cards are found by a hand-written pass (see `digit_runs`).
                Detector::Secrets | Detector::CreditCard => continue,
                Detector::PrivateKey => r"(?-u)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----",
                Detector::AwsKey => r"(?-u)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",
                Detector::Jwt => r"(?-u)eyJ[A-Za-z0-9_-]{8,}\.eyJ",
                Detector::HighEntropy => r"(?-u)[A-Za-z0-9+/_=-]{20}",
            };
            pre.push(pattern);
            pre_detectors.push(detector);
        }
        let cards = enabled.contains(Detector::CreditCard);
        if pre.is_empty() && !cards {
            return Ok(None);
        }
        let compile = |p: &str| Regex::new(p).map_err(|e| DlpError::Build(e.to_string()));
        Ok(Some(Patterns {
            prefilter: RegexSet::new(&pre).map_err(|e| DlpError::Build(e.to_string()))?,
            prefilter_detectors: pre_detectors,
            cards,
            aws: compile(r"(?-u)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}")?,
            pem: compile(r"(?-u)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")?,
            jwt: compile(r"(?-u)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_.-]*")?,
            entropy: compile(&format!(
                r"(?-u)[A-Za-z0-9+/_=-]{{{HIGH_ENTROPY_MIN_LEN},}}"
            ))?,
        }))
    }

    /// Appends every pattern match in `buf` to `out`.
    pub(crate) fn find(&self, buf: &[u8], out: &mut Vec<Hit>) {
        if self.cards {
            cards(buf, out);
        }
        for index in self.prefilter.matches(buf).iter() {
            match self.prefilter_detectors.get(index) {
                Some(Detector::PrivateKey) => self.pem_keys(buf, out),
                Some(Detector::AwsKey) => self.aws_keys(buf, out),
                Some(Detector::Jwt) => self.jwts(buf, out),
                Some(Detector::HighEntropy) => self.high_entropy(buf, out),
                Some(Detector::Secrets | Detector::CreditCard) | None => {}
            }
        }
    }

    fn aws_keys(&self, buf: &[u8], out: &mut Vec<Hit>) {
        for m in self.aws.find_iter(buf) {
            let left_ok = m.start() == 0 || !buf[m.start() - 1].is_ascii_alphanumeric();
            let right_ok = buf.get(m.end()).is_none_or(|b| !b.is_ascii_alphanumeric());
            if left_ok && right_ok {
                out.push(pattern_hit(Detector::AwsKey, m.start(), m.end(), None));
            }
        }
    }

    fn pem_keys(&self, buf: &[u8], out: &mut Vec<Hit>) {
        for m in self.pem.find_iter(buf) {
            let (end, closed) = pem_body_end(buf, m.end(), m.end());
            let cont = (!closed).then_some(Continuation::PrivateKey);
            out.push(pattern_hit(Detector::PrivateKey, m.start(), end, cont));
        }
    }

    fn jwts(&self, buf: &[u8], out: &mut Vec<Hit>) {
        for m in self.jwt.find_iter(buf) {
            let token = m.as_bytes();
            let header_len = token.iter().position(|&b| b == b'.').unwrap_or(token.len());
            let is_jwt = URL_SAFE_NO_PAD
                .decode(&token[..header_len])
                .is_ok_and(|h| memchr::memmem::find(&h, b"\"alg\"").is_some());
            if is_jwt {
                out.push(pattern_hit(
                    Detector::Jwt,
                    m.start(),
                    m.end(),
                    Some(Continuation::Jwt),
                ));
            }
        }
    }

    fn high_entropy(&self, buf: &[u8], out: &mut Vec<Hit>) {
        for m in self.entropy.find_iter(buf) {
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

/// Maximal runs of digits joined by single spaces or dashes that hold at least 13 digits.
///
/// Why hand-written: API responses are full of digits (ids, prices, timestamps), and a
/// regex for this starts a match attempt at every digit; this loop looks at each byte once
/// and runs several times faster than the regex did on JSON-like text.
fn digit_runs(buf: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
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
                return Some((start, i));
            }
        }
        None
    })
}

/// Card numbers: in each digit run, the leftmost-longest choice of consecutive groups of 3
/// or more digits holding 13–19 digits that pass Luhn. A group is never split, so digits
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
                if digits >= 13 && edges_ok && luhn(&buf[groups[i].0..groups[j].1]) {
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
}
