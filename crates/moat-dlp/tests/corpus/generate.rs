//! A seeded, labeled DLP corpus: positives (secret values in every encoding the scanner
//! promises, card numbers, PEM private keys, AWS key ids, JWTs) and look-alike negatives,
//! each embedded in a JSON body, a log line, a query string, a header or prose. Shared by
//! `tests/corpus.rs` and `examples/dlp_corpus.rs`.
//!
//! Negatives are genuinely negative. Where a look-alike cannot be told from the real thing
//! by any scanner (a random 16-digit number with a card network's prefix that happens to
//! pass Luhn; about one in ten do), the generator draws again until the number fails Luhn.
//! Look-alikes that a careful scanner can tell apart are kept as drawn: millisecond and
//! microsecond timestamps and order numbers pass Luhn one time in ten too, but no network
//! issues numbers with their prefixes and lengths.

#![allow(dead_code, reason = "each includer uses a different part")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use moat_dlp::{Detector, Finding};

/// xorshift64*: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    pub fn string(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    pub fn digits(&mut self, n: usize) -> String {
        self.string(n, DIGITS)
    }
}

const DIGITS: &[u8] = b"0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// What a sample is expected to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// A finding of this detector overlapping the planted bytes (for secrets: naming this
    /// secret).
    Positive {
        detector: Detector,
        secret: Option<String>,
    },
    /// No finding at all.
    Negative,
}

#[derive(Debug, Clone)]
pub struct Sample {
    /// What was planted, e.g. `card/amex/dashed` or `uuid`; the first segment is the class.
    pub kind: String,
    pub label: Label,
    pub body: Vec<u8>,
    /// Where the planted value sits in `body`.
    pub span: Range<usize>,
}

pub struct Corpus {
    /// The secrets to give the scanner, by name.
    pub secrets: Vec<(String, Vec<u8>)>,
    pub samples: Vec<Sample>,
}

/// Embeds `value` in one of the contexts a function's output takes. `value` must already be
/// escaped for the context (a PEM key in JSON carries `\n` escapes).
fn embed(rng: &mut Rng, value: &str, field: &str) -> (Vec<u8>, Range<usize>) {
    let user = rng
        .pick(&["alice", "bob", "carol", "dave", "erin"])
        .to_owned();
    let req = uuid(rng);
    let (before, after) = match rng.below(6) {
        0 => (
            format!("{{\"user\":\"{user}\",\"request_id\":\"{req}\",\"{field}\":\""),
            format!("\",\"ok\":true,\"count\":{}}}", rng.below(500)),
        ),
        1 => (
            format!(
                "2025-0{}-1{}T08:{:02}:{:02}.{:03}Z INFO handler: user={user} {field}=",
                1 + rng.below(9),
                rng.below(10),
                rng.below(60),
                rng.below(60),
                rng.below(1000)
            ),
            format!(" latency_ms={} status=200\n", rng.below(900)),
        ),
        2 => (
            format!("GET /v1/items?user={user}&{field}="),
            format!("&page={} HTTP/1.1", rng.below(40)),
        ),
        3 => (format!("X-{field}: "), String::new()),
        4 => (
            format!("Hello {user},\n\nhere is the {field} you asked for: "),
            String::from("\n\nRegards,\nthe support team\n"),
        ),
        _ => (
            format!(
                "[{{\"id\":{},\"tags\":[\"a\",\"b\"],\"{field}\":\"",
                rng.below(10_000)
            ),
            format!("\",\"price\":{}.{:02}}}]", rng.below(1000), rng.below(100)),
        ),
    };
    let mut body = before.into_bytes();
    let start = body.len();
    body.extend_from_slice(value.as_bytes());
    let end = body.len();
    body.extend_from_slice(after.as_bytes());
    (body, start..end)
}

/// A JSON string holding `value` (newlines escaped), or raw text, chosen at random; then
/// embedded. PEM keys go through here.
fn embed_multiline(rng: &mut Rng, value: &str, field: &str) -> (Vec<u8>, Range<usize>) {
    if rng.below(2) == 0 {
        embed(rng, &value.replace('\n', "\\n"), field)
    } else {
        let before = format!("config dump for {field}:\n");
        let mut body = before.into_bytes();
        let start = body.len();
        body.extend_from_slice(value.as_bytes());
        let end = body.len();
        body.extend_from_slice(b"\nend of dump\n");
        (body, start..end)
    }
}

pub fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0;
    for (i, d) in digits
        .bytes()
        .rev()
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
    sum % 10 == 0
}

/// `prefix` followed by random digits to `len`, the last one chosen so that Luhn passes.
fn luhn_number(rng: &mut Rng, prefix: &str, len: usize) -> String {
    let mut s = prefix.to_owned();
    s.push_str(&rng.digits(len - prefix.len() - 1));
    for check in b'0'..=b'9' {
        let candidate = format!("{s}{}", char::from(check));
        if luhn_ok(&candidate) {
            return candidate;
        }
    }
    unreachable!("one check digit always makes Luhn pass")
}

/// Groups `digits` the way the brand prints them: `plain`, `spaced` or `dashed`.
fn format_card(digits: &str, style: &str) -> String {
    let sep = match style {
        "spaced" => " ",
        "dashed" => "-",
        _ => return digits.to_owned(),
    };
    let groups: &[usize] = if digits.len() == 15 {
        &[4, 6, 5]
    } else {
        &[4, 4, 4, 4]
    };
    let mut out = Vec::new();
    let mut at = 0;
    for &g in groups {
        out.push(&digits[at..at + g]);
        at += g;
    }
    out.join(sep)
}

const BRANDS: [(&str, &[&str], usize); 4] = [
    ("visa", &["4"], 16),
    (
        "mastercard",
        &["51", "52", "53", "54", "55", "2221", "2500", "2720"],
        16,
    ),
    ("amex", &["34", "37"], 15),
    ("discover", &["6011", "644", "65"], 16),
];

fn uuid(rng: &mut Rng) -> String {
    let h = rng.string(32, HEX);
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        char::from(*rng.pick(b"89ab")),
        &h[17..20],
        &h[20..32]
    )
}

fn hex(bytes: &[u8], upper: bool) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        if upper {
            let _ = write!(s, "{b:02X}");
        } else {
            let _ = write!(s, "{b:02x}");
        }
    }
    s
}

/// Percent-encoding as URL libraries (`rfc`), form encoders (`form`) and hand-written loops
/// (`all`) produce it.
fn percent(bytes: &[u8], style: &str, upper: bool) -> String {
    let mut s = String::new();
    for &b in bytes {
        let keep = match style {
            "rfc" => b.is_ascii_alphanumeric() || b"-._~".contains(&b),
            "form" => b.is_ascii_alphanumeric() || b"*-._".contains(&b),
            _ => false,
        };
        if keep {
            s.push(char::from(b));
        } else if style == "form" && b == b' ' {
            s.push('+');
        } else if upper {
            let _ = write!(s, "%{b:02X}");
        } else {
            let _ = write!(s, "%{b:02x}");
        }
    }
    s
}

/// The secrets: API-key-like strings of several shapes, passwords with characters that
/// need escaping, and binary keys.
fn make_secrets(rng: &mut Rng) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..20 {
        let value: Vec<u8> = match i % 5 {
            0 => format!("sk_live_{}", rng.string(24, ALNUM)).into_bytes(),
            1 => format!("ghp_{}", rng.string(36, ALNUM)).into_bytes(),
            2 => format!(
                "xoxb-{}-{}-{}",
                rng.digits(12),
                rng.digits(13),
                rng.string(24, ALNUM)
            )
            .into_bytes(),
            3 => format!(
                "{} {}/{}+{}!",
                rng.string(6, ALNUM),
                rng.string(8, ALNUM),
                rng.string(5, ALNUM),
                rng.string(7, ALNUM)
            )
            .into_bytes(),
            _ => rng.bytes(24),
        };
        out.push((format!("secret-{i}"), value));
    }
    out
}

const SECRET_FORMS: [&str; 13] = [
    "raw",
    "b64-std-0",
    "b64-std-1",
    "b64-std-2",
    "b64-url-0",
    "b64-url-1",
    "b64-url-2",
    "hex-lower",
    "hex-upper",
    "pct-all-upper",
    "pct-all-lower",
    "pct-rfc",
    "pct-form",
];

/// `secret` in `form`, as a string for embedding. Base64 forms put the secret at the given
/// byte offset (mod 3) inside a longer blob of random bytes.
fn encode_secret(rng: &mut Rng, secret: &[u8], form: &str) -> String {
    let b64 = |rng: &mut Rng, offset: usize, url: bool| {
        let n = 3 * rng.range(0, 6) + offset;
        let mut plain = rng.bytes(n);
        plain.extend_from_slice(secret);
        let n = rng.range(0, 40);
        plain.extend(rng.bytes(n));
        let padded = rng.below(2) == 0;
        match (url, padded) {
            (false, true) => STANDARD.encode(&plain),
            (false, false) => STANDARD_NO_PAD.encode(&plain),
            (true, true) => URL_SAFE.encode(&plain),
            (true, false) => URL_SAFE_NO_PAD.encode(&plain),
        }
    };
    match form {
        "raw" => String::from_utf8_lossy(secret).into_owned(),
        "b64-std-0" => b64(rng, 0, false),
        "b64-std-1" => b64(rng, 1, false),
        "b64-std-2" => b64(rng, 2, false),
        "b64-url-0" => b64(rng, 0, true),
        "b64-url-1" => b64(rng, 1, true),
        "b64-url-2" => b64(rng, 2, true),
        "hex-lower" => {
            let n = rng.range(0, 8);
            let pad = rng.bytes(n);
            format!("{}{}", hex(&pad, false), hex(secret, false))
        }
        "hex-upper" => hex(secret, true),
        "pct-all-upper" => percent(secret, "all", true),
        "pct-all-lower" => percent(secret, "all", false),
        "pct-rfc" => percent(secret, "rfc", rng.below(2) == 0),
        _ => percent(secret, "form", true),
    }
}

fn pem(rng: &mut Rng, label: &str, body_bytes: usize) -> String {
    let body = STANDARD.encode(rng.bytes(body_bytes));
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    let _ = write!(s, "-----END {label}-----");
    s
}

fn jwt(rng: &mut Rng) -> String {
    let alg = rng.pick(&["HS256", "RS256", "ES256", "EdDSA"]);
    let header = format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}");
    let payload = format!(
        "{{\"sub\":\"{}\",\"iat\":{},\"scope\":\"read write\"}}",
        rng.digits(8),
        1_700_000_000 + rng.below(50_000_000)
    );
    let sig = rng.bytes(if *alg == "HS256" { 32 } else { 64 });
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

fn positive(
    kind: String,
    detector: Detector,
    secret: Option<String>,
    (body, span): (Vec<u8>, Range<usize>),
) -> Sample {
    Sample {
        kind,
        label: Label::Positive { detector, secret },
        body,
        span,
    }
}

fn negative(kind: &str, (body, span): (Vec<u8>, Range<usize>)) -> Sample {
    Sample {
        kind: kind.to_owned(),
        label: Label::Negative,
        body,
        span,
    }
}

/// A 16-digit number with a card brand's prefix that fails Luhn.
fn failing_card(rng: &mut Rng) -> String {
    let (_, prefixes, len) = rng.pick(&BRANDS);
    let prefix = *rng.pick(prefixes);
    loop {
        let n = format!("{prefix}{}", rng.digits(len - prefix.len()));
        if !luhn_ok(&n) {
            return n;
        }
    }
}

/// The corpus for `seed`: 2,200 positives and 6,000 negatives.
pub fn generate(seed: u64) -> Corpus {
    let mut rng = Rng::new(seed);
    let secrets = make_secrets(&mut rng);
    let mut samples = Vec::new();

    // Positives. Secrets: every (secret, form) pair at least three times.
    for i in 0..1040 {
        let (name, value) = &secrets[i % secrets.len()];
        let form = SECRET_FORMS[(i / secrets.len()) % SECRET_FORMS.len()];
        // Binary values cannot sit raw in text; they go out hex-encoded instead.
        let form = if form == "raw" && std::str::from_utf8(value).is_err() {
            "hex-upper"
        } else {
            form
        };
        let encoded = encode_secret(&mut rng, value, form);
        let field = *rng.pick(&["token", "debug", "payload", "data", "auth"]);
        let ctx = embed(&mut rng, &encoded, field);
        samples.push(positive(
            format!("secret/{form}"),
            Detector::Secrets,
            Some(name.clone()),
            ctx,
        ));
    }
    for i in 0..600 {
        let (brand, prefixes, len) = BRANDS[i % 4];
        let style = ["plain", "spaced", "dashed"][(i / 4) % 3];
        let prefix = rng_pick_str(&mut rng, prefixes);
        let number = luhn_number(&mut rng, prefix, len);
        let ctx = embed(&mut rng, &format_card(&number, style), "card");
        samples.push(positive(
            format!("card/{brand}/{style}"),
            Detector::CreditCard,
            None,
            ctx,
        ));
    }
    let pem_kinds = [
        ("rsa", "RSA PRIVATE KEY", 1190),
        ("ec", "EC PRIVATE KEY", 121),
        ("openssh", "OPENSSH PRIVATE KEY", 400),
        ("pkcs8", "PRIVATE KEY", 1217),
        ("pkcs8-encrypted", "ENCRYPTED PRIVATE KEY", 1300),
    ];
    for i in 0..200 {
        let (kind, label, len) = pem_kinds[i % pem_kinds.len()];
        let key = pem(&mut rng, label, len);
        let ctx = embed_multiline(&mut rng, &key, "key");
        samples.push(positive(
            format!("private-key/{kind}"),
            Detector::PrivateKey,
            None,
            ctx,
        ));
    }
    for i in 0..180 {
        let prefix = ["AKIA", "ASIA", "ABIA", "ACCA"][i % 4];
        let id = format!("{prefix}{}", rng.string(16, UPPER_ALNUM));
        let ctx = embed(&mut rng, &id, "aws_access_key_id");
        samples.push(positive(
            format!("aws-key/{prefix}"),
            Detector::AwsKey,
            None,
            ctx,
        ));
    }
    for _ in 0..180 {
        let token = jwt(&mut rng);
        let token = if rng.below(3) == 0 {
            format!("Bearer {token}")
        } else {
            token
        };
        let ctx = embed(&mut rng, &token, "authorization");
        samples.push(positive("jwt".to_owned(), Detector::Jwt, None, ctx));
    }

    // Negatives.
    for i in 0..800 {
        let style = ["plain", "spaced", "dashed"][i % 3];
        let n = failing_card(&mut rng);
        let ctx = embed(&mut rng, &format_card(&n, style), "card");
        samples.push(negative(&format!("luhn-fail/{style}"), ctx));
    }
    for _ in 0..500 {
        let v = uuid(&mut rng);
        let v = if rng.below(4) == 0 {
            v.to_uppercase()
        } else {
            v
        };
        let ctx = embed(&mut rng, &v, "request_id");
        samples.push(negative("uuid", ctx));
    }
    for i in 0..600 {
        let (kind, n) = if i % 2 == 0 {
            ("sha1", 20)
        } else {
            ("sha256", 32)
        };
        let v = hex(&rng.bytes(n), i % 4 >= 2);
        let ctx = embed(&mut rng, &v, "digest");
        samples.push(negative(&format!("hash/{kind}"), ctx));
    }
    for i in 0..600 {
        let n = rng.range(12, 400);
        let bytes = rng.bytes(n);
        let v = match i % 4 {
            0 => STANDARD.encode(&bytes),
            1 => STANDARD_NO_PAD.encode(&bytes),
            2 => URL_SAFE.encode(&bytes),
            _ => URL_SAFE_NO_PAD.encode(&bytes),
        };
        let ctx = embed(&mut rng, &v, "blob");
        samples.push(negative("base64-random", ctx));
    }
    for i in 0..300 {
        // Keys of the same shapes as the scanner's secrets, but other values.
        let v = match i % 3 {
            0 => format!("sk_live_{}", rng.string(24, ALNUM)),
            1 => format!("ghp_{}", rng.string(36, ALNUM)),
            _ => hex(&rng.bytes(24), false),
        };
        let ctx = embed(&mut rng, &v, "token");
        samples.push(negative("other-key", ctx));
    }
    for i in 0..500 {
        let v = match i % 5 {
            0 => format!("ORD-{}-{}", 2019 + rng.below(7), rng.digits(9)),
            1 => format!(
                "{}-{}-{}",
                rng.range(100, 999),
                rng.digits(7),
                rng.digits(7)
            ),
            2 => format!("#{}", rng.range(1000, 9_999_999)),
            3 => format!("INV{}{}", 2019 + rng.below(7), rng.digits(8)),
            _ => {
                // A bare numeric id: drawn again while it could be a card number.
                let len = rng.range(10, 19);
                loop {
                    let n = format!("{}{}", rng.range(1, 9), rng.digits(len - 1));
                    if !luhn_ok(&n) {
                        break n;
                    }
                }
            }
        };
        let ctx = embed(&mut rng, &v, "order_id");
        samples.push(negative("order-id", ctx));
    }
    for i in 0..500 {
        let v = match i % 5 {
            0 => format!(
                "+1 {}-{}-{}",
                rng.range(200, 999),
                rng.digits(3),
                rng.digits(4)
            ),
            1 => format!("+1{}{}", rng.range(200, 999), rng.digits(7)),
            2 => format!("+44 20 {} {}", rng.digits(4), rng.digits(4)),
            3 => format!("+49 30 {}", rng.digits(9)),
            _ => format!(
                "({}) {}-{}",
                rng.range(200, 999),
                rng.digits(3),
                rng.digits(4)
            ),
        };
        let ctx = embed(&mut rng, &v, "phone");
        samples.push(negative("phone", ctx));
    }
    for i in 0..500 {
        let secs = 1_500_000_000 + rng.below(400_000_000);
        let v = match i % 5 {
            0 => secs.to_string(),
            1 => format!("{secs}{:03}", rng.below(1000)),
            2 => format!("{secs}{:06}", rng.below(1_000_000)),
            3 => format!(
                "20{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
                rng.range(10, 30),
                rng.range(1, 12),
                rng.range(1, 28),
                rng.below(24),
                rng.below(60),
                rng.below(60),
                rng.below(1_000_000)
            ),
            _ => format!("{secs}.{:09}", rng.below(1_000_000_000)),
        };
        let ctx = embed(&mut rng, &v, "ts");
        samples.push(negative("timestamp", ctx));
    }
    let public = [
        ("public-key", "PUBLIC KEY", 294),
        ("rsa-public-key", "RSA PUBLIC KEY", 270),
        ("certificate", "CERTIFICATE", 900),
        ("csr", "CERTIFICATE REQUEST", 700),
        ("pgp-public", "PGP PUBLIC KEY BLOCK", 600),
    ];
    for i in 0..300 {
        let (kind, label, len) = public[i % public.len()];
        let v = pem(&mut rng, label, len);
        let ctx = embed_multiline(&mut rng, &v, "cert");
        samples.push(negative(&format!("pem/{kind}"), ctx));
    }
    for i in 0..300 {
        let v = match i % 6 {
            0 => format!("AKIA{}", rng.string(15, UPPER_ALNUM)),
            1 => format!("AKIA{}", rng.string(17, UPPER_ALNUM)),
            2 => format!("AKIB{}", rng.string(16, UPPER_ALNUM)),
            3 => format!(
                "AKIA{}",
                rng.string(16, b"abcdefghijklmnopqrstuvwxyz0123456789")
            ),
            4 => format!("XAKIA{}", rng.string(16, UPPER_ALNUM)),
            _ => format!("AIDA{}", rng.string(16, UPPER_ALNUM)),
        };
        let ctx = embed(&mut rng, &v, "key_id");
        samples.push(negative("aws-lookalike", ctx));
    }
    for i in 0..300 {
        let seg = |rng: &mut Rng| {
            let n = rng.range(8, 60);
            URL_SAFE_NO_PAD.encode(rng.bytes(n))
        };
        let v = match i % 3 {
            // Random segments.
            0 => format!("{}.{}.{}", seg(&mut rng), seg(&mut rng), seg(&mut rng)),
            // JSON headers without an algorithm.
            1 => format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(format!("{{\"kid\":\"{}\"}}", rng.digits(6))),
                URL_SAFE_NO_PAD.encode(format!("{{\"n\":{}}}", rng.below(1000))),
                seg(&mut rng)
            ),
            // A dotted version-and-build string.
            _ => format!(
                "v{}.{}.{}-{}",
                rng.below(10),
                rng.below(30),
                rng.below(100),
                rng.string(12, ALNUM)
            ),
        };
        let ctx = embed(&mut rng, &v, "token");
        samples.push(negative("jwt-lookalike", ctx));
    }
    for _ in 0..300 {
        let words = [
            "the", "order", "shipped", "widget", "invoice", "customer", "blue", "small",
        ];
        let mut v = String::new();
        for _ in 0..rng.range(3, 20) {
            let word: &&str = rng.pick(&words);
            v.push_str(word);
            v.push(' ');
        }
        let _ = write!(v, "{} items", rng.below(100));
        let ctx = embed(&mut rng, &v, "message");
        samples.push(negative("prose", ctx));
    }

    Corpus { secrets, samples }
}

fn rng_pick_str<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len())]
}

/// Counts of one row of the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub hit: usize,
    pub total: usize,
}

impl Tally {
    pub fn rate(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.hit as f64 / self.total as f64
        }
    }
}

/// Recall per detector and per kind of positive, false positives per kind of negative.
#[derive(Debug, Default)]
pub struct Report {
    pub recall_by_detector: BTreeMap<Detector, Tally>,
    pub recall_by_kind: BTreeMap<String, Tally>,
    pub fp_by_kind: BTreeMap<String, Tally>,
    /// Up to a few samples of each kind that went wrong, for debugging.
    pub failures: Vec<Sample>,
}

impl Report {
    pub fn recall(&self) -> Tally {
        self.recall_by_detector
            .values()
            .fold(Tally::default(), |a, t| Tally {
                hit: a.hit + t.hit,
                total: a.total + t.total,
            })
    }

    pub fn false_positives(&self) -> Tally {
        self.fp_by_kind
            .values()
            .fold(Tally::default(), |a, t| Tally {
                hit: a.hit + t.hit,
                total: a.total + t.total,
            })
    }
}

/// Runs `scan` over every sample. A positive is recalled when a finding of its detector (for
/// a secret: naming it) overlaps the planted bytes; a negative is a false positive when it
/// has any finding.
pub fn evaluate(corpus: &Corpus, scan: impl Fn(&[u8]) -> Vec<Finding>) -> Report {
    let mut report = Report::default();
    let mut failed_kinds: BTreeMap<String, usize> = BTreeMap::new();
    for sample in &corpus.samples {
        let findings = scan(&sample.body);
        let ok = match &sample.label {
            Label::Positive { detector, secret } => {
                let found = findings.iter().any(|f| {
                    f.detector == *detector
                        && (secret.is_none() || f.secret == *secret)
                        && f.range.start < sample.span.end
                        && sample.span.start < f.range.end
                });
                for tally in [
                    report.recall_by_detector.entry(*detector).or_default(),
                    report
                        .recall_by_kind
                        .entry(sample.kind.clone())
                        .or_default(),
                ] {
                    tally.total += 1;
                    tally.hit += usize::from(found);
                }
                found
            }
            Label::Negative => {
                let tally = report.fp_by_kind.entry(sample.kind.clone()).or_default();
                tally.total += 1;
                tally.hit += usize::from(!findings.is_empty());
                findings.is_empty()
            }
        };
        if !ok {
            let n = failed_kinds.entry(sample.kind.clone()).or_default();
            *n += 1;
            if *n <= 3 {
                report.failures.push(sample.clone());
            }
        }
    }
    report
}
