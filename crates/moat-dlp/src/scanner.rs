//! The scanner: one literal finder over every secret-derived literal, plus the pattern
//! detectors; whole-buffer `scan` and `redact`.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::finder::LiteralFinder;
use crate::literals::{self, MIN_SECRET_LEN};
use crate::patterns::{Hit, Patterns};
use crate::{Detector, DetectorSet, DlpError, Encoding, StreamScanner};

/// The byte every matched byte is replaced with by [`Scanner::redact`].
///
/// Why same-length `*` rather than a `[REDACTED:…]` marker: offsets stay valid, so a
/// [`Finding`]'s range points at the same bytes in the input and the output and a stream can
/// be masked chunk by chunk; `*` is valid in header values, URL paths and queries, JSON
/// strings and log lines, and a masked valid UTF-8 text stays valid UTF-8 (secrets that are
/// UTF-8 match only at character boundaries; every other match is ASCII). The cost: the
/// length of a masked value stays visible.
pub const MASK: u8 = b'*';

/// How far a stream must look ahead for the pattern detectors: the longest card number with
/// separators, AWS key id, PEM header line, and JWT header segment that are guaranteed to be
/// caught across chunk boundaries. See [`StreamScanner`].
pub const PATTERN_HORIZON: usize = 256;

/// One thing found. It names what was found and where, never the matched bytes: it is safe
/// to log, audit and show to the function's owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    /// The detector that matched.
    pub detector: Detector,
    /// For [`Detector::Secrets`], the NAME of the secret whose value was found.
    pub secret: Option<String>,
    /// For [`Detector::Secrets`], the form the value was found in.
    pub encoding: Option<Encoding>,
    /// Byte offsets in the scanned buffer (for a stream: since the start of the stream).
    pub range: Range<usize>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detector.as_str())?;
        if let Some(name) = &self.secret {
            write!(f, " `{name}`")?;
        }
        if let Some(encoding) = self.encoding {
            write!(f, " ({encoding})")?;
        }
        write!(f, " at bytes {}..{}", self.range.start, self.range.end)
    }
}

/// Builds a [`Scanner`] from secrets given one at a time.
///
/// Defaults: no secrets; detectors [`DetectorSet::default()`], which is every detector
/// except the opt-in [`Detector::HighEntropy`]. Secret values are copied into zeroizing
/// buffers and wiped when the builder is dropped or built.
#[derive(Default)]
pub struct ScannerBuilder {
    secrets: Vec<(String, Zeroizing<Vec<u8>>)>,
    detectors: DetectorSet,
}

impl ScannerBuilder {
    /// Adds a secret the function can read, by name and value.
    #[must_use]
    pub fn secret(mut self, name: impl Into<String>, value: &[u8]) -> Self {
        self.secrets
            .push((name.into(), Zeroizing::new(value.to_vec())));
        self
    }

    /// Sets the enabled detectors (`secrets` stays on whatever the set says).
    #[must_use]
    pub fn detectors(mut self, detectors: DetectorSet) -> Self {
        self.detectors = detectors;
        self
    }

    /// Builds the scanner.
    pub fn build(self) -> Result<Scanner, DlpError> {
        Scanner::new(&self.secrets, self.detectors)
    }
}

impl fmt::Debug for ScannerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScannerBuilder")
            .field(
                "secrets",
                &self.secrets.iter().map(|s| &s.0).collect::<Vec<_>>(),
            )
            .field("detectors", &self.detectors)
            .finish()
    }
}

/// The DLP scanner of one function version: built once when the function or its secrets
/// change, then shared (it is `Send + Sync`; wrap it in an [`Arc`]).
///
/// Secret values: the derived literals are kept in zeroizing buffers and wiped when the
/// scanner is dropped. The search engine's own tables still encode them and cannot be wiped
/// without `unsafe`; they are freed when the scanner is dropped. `Debug` prints counts only.
pub struct Scanner {
    names: Vec<String>,
    unscanned: Vec<String>,
    literals: Option<LiteralFinder>,
    /// For each literal: the index of its secret in `names` and its encoding.
    literal_meta: Vec<(usize, Encoding)>,
    patterns: Option<Patterns>,
    detectors: DetectorSet,
    max_literal_len: usize,
}

impl Scanner {
    /// A builder with no secrets and the default detectors.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder::default()
    }

    /// Builds a scanner for `secrets` (name, value) and `detectors`.
    ///
    /// Values shorter than [`crate::MIN_SECRET_LEN`] bytes are not scanned (see
    /// [`Scanner::unscanned_secrets`]); values shorter than [`crate::MIN_BASE64_SECRET_LEN`]
    /// are not looked for in base64.
    pub fn new<S: AsRef<str>>(
        secrets: &[(S, Zeroizing<Vec<u8>>)],
        detectors: DetectorSet,
    ) -> Result<Scanner, DlpError> {
        let mut names = Vec::new();
        let mut unscanned = Vec::new();
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut literal_meta = Vec::new();
        for (name, value) in secrets {
            let name = name.as_ref().to_owned();
            if value.len() < MIN_SECRET_LEN {
                unscanned.push(name);
                continue;
            }
            let index = names.len();
            names.push(name);
            for literal in literals::derive(value) {
                literal_meta.push((index, literal.encoding));
                patterns.push(literal.bytes);
            }
        }
        // Every occurrence of every literal is reported, so one secret inside another is
        // still named. The finder keeps the literals (zeroizing) to verify matches.
        let literals = if patterns.is_empty() {
            None
        } else {
            Some(LiteralFinder::new(patterns)?)
        };
        let max_literal_len = literals.as_ref().map_or(0, LiteralFinder::max_len);
        Ok(Scanner {
            names,
            unscanned,
            literals,
            literal_meta,
            patterns: Patterns::new(detectors)?,
            detectors: detectors.with(Detector::Secrets),
            max_literal_len,
        })
    }

    /// The enabled detectors.
    pub fn detectors(&self) -> DetectorSet {
        self.detectors
    }

    /// Names of the secrets too short to scan (under [`crate::MIN_SECRET_LEN`] bytes).
    pub fn unscanned_secrets(&self) -> &[String] {
        &self.unscanned
    }

    /// The longest match a [`StreamScanner`] is guaranteed to catch across chunk boundaries:
    /// the longest secret-derived literal or [`PATTERN_HORIZON`], whichever is larger.
    pub fn max_pattern_len(&self) -> usize {
        self.max_literal_len.max(PATTERN_HORIZON)
    }

    /// Every finding in `bytes`, ordered by start offset.
    pub fn scan(&self, bytes: &[u8]) -> Vec<Finding> {
        self.hits(bytes)
            .iter()
            .map(|h| self.finding(h, 0))
            .collect()
    }

    /// `bytes` with every finding masked by [`MASK`], and the findings. Bytes outside the
    /// findings are returned unchanged; with no findings the input is returned borrowed.
    ///
    /// This is also what the caller applies to log lines, whatever the function's mode
    /// ([`crate::Channel::effective_mode`]).
    pub fn redact<'a>(&self, bytes: &'a [u8]) -> (Cow<'a, [u8]>, Vec<Finding>) {
        let hits = self.hits(bytes);
        if hits.is_empty() {
            return (Cow::Borrowed(bytes), Vec::new());
        }
        let mut out = bytes.to_vec();
        for hit in &hits {
            out[hit.start..hit.end].fill(MASK);
        }
        let findings = hits.iter().map(|h| self.finding(h, 0)).collect();
        (Cow::Owned(out), findings)
    }

    /// A stream scanner for a body that arrives in chunks.
    pub fn stream(self: &Arc<Self>) -> StreamScanner {
        StreamScanner::new(Arc::clone(self))
    }

    /// Every match in `buf`, ordered by start then end. The end of `buf` counts as a token
    /// boundary.
    pub(crate) fn hits(&self, buf: &[u8]) -> Vec<Hit> {
        let mut out = Vec::new();
        if let Some(finder) = &self.literals {
            finder.for_each(buf, |index, start, end| {
                if let Some(&(secret, encoding)) = self.literal_meta.get(index) {
                    out.push(Hit {
                        detector: Detector::Secrets,
                        secret: Some(secret),
                        encoding: Some(encoding),
                        start,
                        end,
                        cont: None,
                    });
                }
            });
        }
        if let Some(patterns) = &self.patterns {
            patterns.find(buf, &mut out);
        }
        out.sort_by_key(|h| (h.start, h.end));
        out
    }

    /// The public form of `hit`, with offsets shifted by `base`.
    pub(crate) fn finding(&self, hit: &Hit, base: usize) -> Finding {
        Finding {
            detector: hit.detector,
            secret: hit.secret.and_then(|i| self.names.get(i)).cloned(),
            encoding: hit.encoding,
            range: base + hit.start..base + hit.end,
        }
    }
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("secrets", &self.names.len())
            .field("literals", &self.literal_meta.len())
            .field("detectors", &self.detectors)
            .field("max_pattern_len", &self.max_pattern_len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(secret: &[u8]) -> Scanner {
        Scanner::builder()
            .secret("api-key", secret)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn scanner_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Scanner>();
        check::<StreamScanner>();
    }

    #[test]
    fn redact_without_findings_borrows() {
        let s = scanner(b"hunter2hunter2");
        let (out, findings) = s.redact(b"nothing to see");
        assert!(matches!(out, Cow::Borrowed(_)));
        assert!(findings.is_empty());
    }

    #[test]
    fn finding_display_names_the_secret_not_the_value() {
        let s = scanner(b"hunter2hunter2");
        let findings = s.scan(b"x hunter2hunter2 y");
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].to_string(),
            "secrets `api-key` (raw) at bytes 2..16"
        );
    }

    #[test]
    fn short_secrets_are_reported_unscanned() {
        let s = Scanner::builder()
            .secret("pin", b"123")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.unscanned_secrets(), ["pin".to_owned()]);
        assert!(s.scan(b"123").is_empty());
    }
}
