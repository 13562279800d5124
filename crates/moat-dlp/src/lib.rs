//! Data-loss prevention for what leaves a function.
//!
//! A [`Scanner`] looks at the bytes a function sends out — response bodies and headers,
//! outbound request URLs, headers and bodies, and log lines ([`Channel`]) — for:
//!
//! - the values of every secret the function can read, raw and encoded (base64 standard
//!   and URL-safe at every alignment, hex in both cases, percent-encoding), always on;
//! - card numbers passing Luhn, PEM private keys, AWS access key ids and JWTs
//!   ([`DetectorSet::default`]);
//! - long high-entropy tokens, opt-in.
//!
//! It only finds and masks: the caller applies the function's [`Mode`] (block, redact,
//! alert), except on logs, which the caller always redacts ([`Channel::effective_mode`]).
//! Bodies that arrive in chunks go through a [`StreamScanner`].
//!
//! Architecture invariant: this crate does no IO, and is one of the three places where
//! plaintext secret values exist (with the store's decrypt path and the capability that
//! serves a grant). It never hands them back: a [`Finding`] carries a secret's name, never
//! its value, and no `Debug` or `Display` here prints a value.
//!
//! ```
//! use std::sync::Arc;
//! use moat_dlp::{Channel, DetectorSet, Mode, Scanner};
//!
//! let scanner = Arc::new(
//!     Scanner::builder()
//!         .secret("stripe-key", b"sk_live_0123456789")
//!         .detectors(DetectorSet::from_names(["credit-card", "jwt"])?)
//!         .build()?,
//! );
//! let body = b"{\"debug\":\"c2tfbGl2ZV8wMTIzNDU2Nzg5\"}"; // the key, base64-encoded
//! let findings = scanner.scan(body);
//! assert_eq!(findings[0].secret.as_deref(), Some("stripe-key"));
//!
//! // Logs are redacted whatever the mode.
//! assert_eq!(Channel::Log.effective_mode(Mode::Block), Mode::Redact);
//! let (line, _) = scanner.redact(b"key=sk_live_0123456789");
//! assert_eq!(&line[..], b"key=******************");
//!
//! // A chunked body: findings split across chunks are still found.
//! let mut stream = scanner.stream();
//! let mut out = stream.feed_release(b"key=sk_live_01").bytes;
//! out.extend(stream.feed_release(b"23456789 ok").bytes);
//! out.extend(stream.finish_release().bytes);
//! assert_eq!(out, b"key=****************** ok");
//! # Ok::<(), moat_dlp::DlpError>(())
//! ```
//!
//! What it does not promise: a function that means to exfiltrate can always transform a
//! secret in ways no fixed list of encodings covers (reversing, XOR, splitting across two
//! responses). The scanner catches accidental leaks and the encodings that tools produce.

#[cfg(any(test, feature = "test-support"))]
pub mod compress;
pub mod decode;
mod decoded;
mod error;
mod finder;
mod literals;
mod names;
mod patterns;
mod scanner;
mod stream;

pub use decoded::{DecodedStream, Step};
pub use error::DlpError;
pub use literals::{MIN_BASE64_SECRET_LEN, MIN_SECRET_LEN};
pub use names::{Channel, Detector, DetectorSet, Encoding, Mode};
pub use patterns::{HIGH_ENTROPY_BASE64_BITS, HIGH_ENTROPY_HEX_BITS, HIGH_ENTROPY_MIN_LEN};
pub use scanner::{Finding, MASK, PATTERN_HORIZON, Scanner, ScannerBuilder};
pub use stream::{Released, StreamScanner};
