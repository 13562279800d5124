//! The byte strings a secret's value can appear as: raw, base64 at every alignment, hex and
//! percent-encoded. Every derived string is plaintext-equivalent, so each lives in a
//! [`Zeroizing`] buffer, wiped when the scanner is dropped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use zeroize::Zeroizing;

use crate::Encoding;

/// Secrets shorter than this are not scanned at all: a three-byte value would match all
/// over ordinary text, and blocking on it would make the function unusable. Their names are
/// reported by [`crate::Scanner::unscanned_secrets`] so the platform can warn at deploy.
pub const MIN_SECRET_LEN: usize = 4;

/// Secrets shorter than this are matched raw, in hex and percent-encoded, but not in base64.
///
/// Why: at byte offset 2 inside a longer base64 stream only the characters that depend on
/// the secret alone can be matched, which for a 6-byte secret is 7 characters (42 bits). A
/// 4-byte secret would leave 5 characters (30 bits), which random base64 payloads of a few
/// megabytes hit by chance.
pub const MIN_BASE64_SECRET_LEN: usize = 6;

/// One derived literal and the encoding it came from.
pub(crate) struct Literal {
    pub(crate) encoding: Encoding,
    pub(crate) bytes: Zeroizing<Vec<u8>>,
}

/// Every form of `secret` worth matching, without duplicates. Empty if the secret is shorter
/// than [`MIN_SECRET_LEN`].
pub(crate) fn derive(secret: &[u8]) -> Vec<Literal> {
    let mut out: Vec<Literal> = Vec::new();
    if secret.len() < MIN_SECRET_LEN {
        return out;
    }
    let mut push = |encoding: Encoding, bytes: Zeroizing<Vec<u8>>| {
        // A form equal to one already listed (hex of a digit-only value in both cases, a
        // percent-encoding of a value with nothing to escape) would only double the reports.
        // An empty literal would match at every offset; none can arise, but the cost of
        // being wrong is every response blocked, so it is checked here too.
        if !bytes.is_empty() && !out.iter().any(|l| l.bytes == bytes) {
            out.push(Literal { encoding, bytes });
        }
    };

    push(Encoding::Raw, Zeroizing::new(secret.to_vec()));
    push(Encoding::HexLower, hex(secret, b"0123456789abcdef"));
    push(Encoding::HexUpper, hex(secret, b"0123456789ABCDEF"));
    for style in &PERCENT_STYLES {
        for digits in [b"0123456789ABCDEF", b"0123456789abcdef"] {
            push(Encoding::Percent, percent(secret, style, digits));
        }
    }
    if secret.len() >= MIN_BASE64_SECRET_LEN {
        for offset in 0..3 {
            let standard = base64_inner_run(secret, offset);
            let url_safe = Zeroizing::new(
                standard
                    .iter()
                    .map(|&c| match c {
                        b'+' => b'-',
                        b'/' => b'_',
                        c => c,
                    })
                    .collect::<Vec<u8>>(),
            );
            push(Encoding::Base64, standard);
            push(Encoding::Base64Url, url_safe);
        }
    }
    out
}

fn hex(secret: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(secret.len() * 2));
    for &b in secret {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 0xf)]);
    }
    out
}

/// How one family of encoders percent-encodes: which bytes besides letters and digits pass
/// through, whether letters and digits are escaped too, and whether space becomes `+`.
struct PercentStyle {
    keep_alnum: bool,
    keep: &'static [u8],
    space_plus: bool,
}

/// The encoders seen in practice. A value with nothing to escape yields its raw form, which
/// the de-duplication drops.
const PERCENT_STYLES: [PercentStyle; 4] = [
    // RFC 3986 unreserved characters (most URL libraries).
    PercentStyle {
        keep_alnum: true,
        keep: b"-._~",
        space_plus: false,
    },
    // application/x-www-form-urlencoded (HTML forms, query strings built by form encoders).
    PercentStyle {
        keep_alnum: true,
        keep: b"*-._",
        space_plus: true,
    },
    // JavaScript's encodeURIComponent.
    PercentStyle {
        keep_alnum: true,
        keep: b"-_.!~*'()",
        space_plus: false,
    },
    // Every byte escaped: the form a hand-written exfiltration loop produces.
    PercentStyle {
        keep_alnum: false,
        keep: b"",
        space_plus: false,
    },
];

fn percent(secret: &[u8], style: &PercentStyle, digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(secret.len() * 3));
    for &b in secret {
        if (style.keep_alnum && b.is_ascii_alphanumeric()) || style.keep.contains(&b) {
            out.push(b);
        } else if style.space_plus && b == b' ' {
            out.push(b'+');
        } else {
            out.push(b'%');
            out.push(digits[usize::from(b >> 4)]);
            out.push(digits[usize::from(b & 0xf)]);
        }
    }
    out
}

/// The standard-base64 characters that depend only on `secret` when it sits `offset` bytes
/// (0, 1 or 2) past a 3-byte group boundary inside a longer byte stream.
///
/// Base64 maps each 3-byte group to 4 characters of 6 bits. A character whose 6 bits
/// straddle a neighbouring byte changes with that neighbour, so the run starts after the
/// characters touching the bytes before the secret (0, 2 or 3 characters for offsets 0, 1,
/// 2) and stops before the first character touching the bytes after it. This run is a
/// substring of every encoding of every stream that contains the secret at that alignment,
/// padded or not, wherever the stream ends.
fn base64_inner_run(secret: &[u8], offset: usize) -> Zeroizing<Vec<u8>> {
    let mut input = Zeroizing::new(vec![0u8; offset]);
    input.extend_from_slice(secret);
    let encoded = Zeroizing::new(STANDARD_NO_PAD.encode(input.as_slice()));
    let total = input.len();
    let start = [0, 2, 3][offset % 3];
    // In a final partial group of 1 byte, the first character is whole (6 of its 8 bits);
    // of 2 bytes, the first two characters are (12 of its 16 bits).
    let end = 4 * (total / 3) + [0, 1, 2][total % 3];
    Zeroizing::new(
        encoded
            .as_bytes()
            .get(start..end)
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        memchr::memmem::find(hay, needle).is_some()
    }

    #[test]
    fn inner_runs_are_found_inside_every_longer_encoding() {
        let secret = b"sk_live_0123456789abcdefXYZ?>~";
        let literals = derive(secret);
        for before in 0..7usize {
            for after in 0..4usize {
                for fill in [0u8, 0xff, 0x5a] {
                    let mut stream = vec![fill; before];
                    stream.extend_from_slice(secret);
                    stream.extend(std::iter::repeat_n(fill ^ 0x33, after));
                    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                        let enc = engine.encode(&stream);
                        assert!(
                            literals
                                .iter()
                                .filter(|l| matches!(
                                    l.encoding,
                                    Encoding::Base64 | Encoding::Base64Url
                                ))
                                .any(|l| contains(enc.as_bytes(), &l.bytes)),
                            "before={before} after={after}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn short_secrets_are_skipped_and_mid_length_ones_get_no_base64() {
        assert!(derive(b"abc").is_empty());
        let mid = derive(b"abcde");
        assert!(!mid.is_empty());
        assert!(
            mid.iter()
                .all(|l| !matches!(l.encoding, Encoding::Base64 | Encoding::Base64Url))
        );
    }

    #[test]
    fn percent_forms_cover_common_encoders() {
        let lits = derive(b"a b/c");
        let forms: Vec<&[u8]> = lits.iter().map(|l| l.bytes.as_slice()).collect();
        for want in [
            &b"a%20b%2Fc"[..],
            b"a%20b%2fc",
            b"a+b%2Fc",
            b"%61%20%62%2F%63",
        ] {
            assert!(forms.contains(&want), "{}", String::from_utf8_lossy(want));
        }
    }
}
