//! Signed checkpoints: an ed25519 signature over the chain's head at some seq.
//!
//! The hash chain alone detects edits only by someone who does not rewrite everything after
//! them; anyone with write access to the store can recompute a whole chain. A checkpoint,
//! signed with a key the store never sees and kept somewhere else (a log shipper, a ticket,
//! another machine), pins the head at its seq: a rewritten or truncated chain no longer matches.
//!
//! # What is signed
//!
//! The 19 bytes `moat-checkpoint-v1` and `0x00`, then `seq` (u64, 8 bytes big-endian), the
//! 32-byte head hash, and `at_ms` (i64, 8 bytes big-endian). Verification is ed25519
//! `verify_strict` (rejects small-order keys and malleable signatures).
//!
//! # Text form, one line
//!
//! ```text
//! moat-checkpoint v1 seq=42 head=<64 lowercase hex> at=1700000000000 sig=<base64, 64 bytes>
//! ```
//!
//! Fields in exactly this order, separated by single spaces; one trailing newline is allowed.
//!
//! # JSON form
//!
//! ```json
//! {"version": 1, "seq": 42, "head": "<hex>", "at_ms": 1700000000000, "signature": "<base64>"}
//! ```

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::chain::parse_hash_hex;

const SIGNED_TAG: &[u8] = b"moat-checkpoint-v1\0";
const TEXT_MAGIC: &str = "moat-checkpoint";
const TEXT_VERSION: &str = "v1";

/// A signed statement "the chain's record `seq` had hash `head_hash`", made at `at_ms`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CheckpointJson", into = "CheckpointJson")]
pub struct Checkpoint {
    /// The seq of the record whose hash is pinned (0 pins the empty chain).
    pub seq: u64,
    /// That record's hash.
    pub head_hash: [u8; 32],
    /// When the checkpoint was made, Unix milliseconds.
    pub at_ms: i64,
    /// ed25519 over the signed bytes (module documentation).
    pub signature: [u8; 64],
}

/// Why a checkpoint could not be read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The text form is not as documented.
    #[error("malformed checkpoint line: {0}")]
    Malformed(String),
    /// The JSON form is not as documented.
    #[error("malformed checkpoint json: {0}")]
    Json(String),
    /// The signature does not verify with the given public key: the checkpoint was altered,
    /// forged, or made with another key.
    #[error("checkpoint signature does not verify with this public key")]
    BadSignature,
}

impl Checkpoint {
    /// Signs `(seq, head_hash, at_ms)` with `key`.
    pub fn sign(seq: u64, head_hash: [u8; 32], at_ms: i64, key: &CheckpointKey) -> Self {
        let signature = key.0.sign(&signed_bytes(seq, &head_hash, at_ms)).to_bytes();
        Checkpoint {
            seq,
            head_hash,
            at_ms,
            signature,
        }
    }

    /// Checks the signature with `public` (strict ed25519).
    pub fn verify(&self, public: &VerifyingKey) -> Result<(), CheckpointError> {
        let signature = Signature::from_bytes(&self.signature);
        public
            .verify_strict(
                &signed_bytes(self.seq, &self.head_hash, self.at_ms),
                &signature,
            )
            .map_err(|_| CheckpointError::BadSignature)
    }

    /// The one-line text form (no trailing newline).
    pub fn to_line(&self) -> String {
        format!(
            "{TEXT_MAGIC} {TEXT_VERSION} seq={} head={} at={} sig={}",
            self.seq,
            hex::encode(self.head_hash),
            self.at_ms,
            BASE64.encode(self.signature)
        )
    }

    /// Parses the one-line text form. This checks the form only; call [`Checkpoint::verify`].
    pub fn parse_line(line: &str) -> Result<Self, CheckpointError> {
        let line = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(line);
        let bad = |m: String| Err(CheckpointError::Malformed(m));
        let parts: Vec<&str> = line.split(' ').collect();
        let [magic, version, seq, head, at, sig] = parts.as_slice() else {
            return bad(format!(
                "expected 6 space-separated fields, found {}",
                parts.len()
            ));
        };
        if *magic != TEXT_MAGIC {
            return bad(format!("expected `{TEXT_MAGIC}` first"));
        }
        if *version != TEXT_VERSION {
            return bad(format!("unsupported version `{}`", clip(version)));
        }
        let seq = field(seq, "seq")?;
        let head = field(head, "head")?;
        let at = field(at, "at")?;
        let sig = field(sig, "sig")?;
        Ok(Checkpoint {
            seq: parse_u64(seq).ok_or_else(|| malformed("seq", seq))?,
            head_hash: parse_hash_hex(head).ok_or_else(|| malformed("head", head))?,
            at_ms: parse_i64(at).ok_or_else(|| malformed("at", at))?,
            signature: parse_signature(sig).ok_or_else(|| malformed("sig", sig))?,
        })
    }

    /// The JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(CheckpointJson::from(self.clone())).unwrap_or_default()
    }

    /// Parses the JSON form. This checks the form only; call [`Checkpoint::verify`].
    pub fn parse_json(text: &str) -> Result<Self, CheckpointError> {
        serde_json::from_str(text).map_err(|e| CheckpointError::Json(e.to_string()))
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

fn signed_bytes(seq: u64, head_hash: &[u8; 32], at_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNED_TAG.len() + 48);
    out.extend_from_slice(SIGNED_TAG);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(head_hash);
    out.extend_from_slice(&at_ms.to_be_bytes());
    out
}

fn field<'a>(part: &'a str, name: &str) -> Result<&'a str, CheckpointError> {
    part.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('='))
        .ok_or_else(|| CheckpointError::Malformed(format!("expected `{name}=` field")))
}

fn malformed(name: &str, value: &str) -> CheckpointError {
    CheckpointError::Malformed(format!("bad `{name}` value `{}`", clip(value)))
}

/// Keeps echoed input short: a checkpoint line may come from anywhere.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Digits only: `u64::from_str` would also take a leading `+`.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_i64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_signature(s: &str) -> Option<[u8; 64]> {
    BASE64.decode(s).ok()?.try_into().ok()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointJson {
    version: u32,
    seq: u64,
    head: String,
    at_ms: i64,
    signature: String,
}

impl From<Checkpoint> for CheckpointJson {
    fn from(c: Checkpoint) -> Self {
        CheckpointJson {
            version: 1,
            seq: c.seq,
            head: hex::encode(c.head_hash),
            at_ms: c.at_ms,
            signature: BASE64.encode(c.signature),
        }
    }
}

impl TryFrom<CheckpointJson> for Checkpoint {
    type Error = String;

    fn try_from(j: CheckpointJson) -> Result<Self, String> {
        if j.version != 1 {
            return Err(format!("unsupported version `{}`", j.version));
        }
        Ok(Checkpoint {
            seq: j.seq,
            head_hash: parse_hash_hex(&j.head)
                .ok_or_else(|| format!("`head` is not 64 hex characters: `{}`", clip(&j.head)))?,
            at_ms: j.at_ms,
            signature: parse_signature(&j.signature).ok_or_else(|| {
                format!(
                    "`signature` is not base64 of 64 bytes: `{}`",
                    clip(&j.signature)
                )
            })?,
        })
    }
}

/// The ed25519 key that signs checkpoints. Its secret bytes are wiped when it is dropped and
/// never appear in `Debug` output or errors.
///
/// Stored as one line of standard base64 (32 bytes). The file's permissions are the caller's
/// business: open it with mode 0600 and hand the writer to [`CheckpointKey::write_to`].
pub struct CheckpointKey(SigningKey);

/// Why a checkpoint key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not base64 of 32 bytes (the text itself is not repeated: it may be secret).
    #[error("{what} is not base64 of 32 bytes")]
    Malformed {
        /// `checkpoint key` or `checkpoint public key`.
        what: &'static str,
    },
    /// The bytes are not a valid ed25519 public key.
    #[error("checkpoint public key is not a valid ed25519 point")]
    InvalidPublicKey,
    /// Reading or writing the key failed.
    #[error("checkpoint key `{path}`: {source}")]
    Io {
        /// The file, or `-` for a reader or writer.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

impl CheckpointKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The key with these 32 secret bytes (deterministic keys for tests).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        CheckpointKey(SigningKey::from_bytes(seed))
    }

    /// Reads the base64 text form; surrounding whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes =
            Zeroizing::new(
                BASE64
                    .decode(text.trim())
                    .map_err(|_| KeyError::Malformed {
                        what: "checkpoint key",
                    })?,
            );
        let seed: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Malformed {
                what: "checkpoint key",
            })?;
        Ok(Self::from_seed(seed))
    }

    /// The base64 text form of the secret key, wiped when dropped.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.0.to_bytes()))
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let mut file = std::fs::File::open(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::read_from(&mut file)
    }

    /// Reads the text form from `reader` (at most a few hundred bytes are read).
    pub fn read_from(reader: &mut impl Read) -> Result<Self, KeyError> {
        let mut text = Zeroizing::new(String::new());
        reader
            .take(1024)
            .read_to_string(&mut text)
            .map_err(|source| KeyError::Io {
                path: "-".into(),
                source,
            })?;
        Self::from_base64(&text)
    }

    /// Writes the text form and a newline to `writer`, e.g. a file the caller created with
    /// mode 0600.
    pub fn write_to(&self, writer: &mut impl Write) -> Result<(), KeyError> {
        let text = self.to_base64();
        writer
            .write_all(text.as_bytes())
            .and_then(|()| writer.write_all(b"\n"))
            .and_then(|()| writer.flush())
            .map_err(|source| KeyError::Io {
                path: "-".into(),
                source,
            })
    }

    /// The public half, which verifiers need.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// The public half as base64 text.
    pub fn public_base64(&self) -> String {
        public_key_to_base64(&self.verifying_key())
    }
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("public", &self.public_base64())
            .finish_non_exhaustive()
    }
}

/// A public key as base64 text.
pub fn public_key_to_base64(key: &VerifyingKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// Reads a public key from base64 text; surrounding whitespace is ignored.
pub fn public_key_from_base64(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes: [u8; 32] = BASE64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(KeyError::Malformed {
            what: "checkpoint public key",
        })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CheckpointKey {
        CheckpointKey::from_seed(&[7; 32])
    }

    #[test]
    fn sign_and_verify_round_trip_through_text_and_json() {
        let k = key();
        let cp = Checkpoint::sign(42, [9; 32], 1_700_000_000_000, &k);
        assert_eq!(cp.verify(&k.verifying_key()), Ok(()));
        let line = cp.to_line();
        assert!(line.starts_with(&format!(
            "moat-checkpoint v1 seq=42 head={} at=1700000000000 sig=",
            "09".repeat(32)
        )));
        assert_eq!(Checkpoint::parse_line(&line), Ok(cp.clone()));
        assert_eq!(Checkpoint::parse_line(&format!("{line}\n")), Ok(cp.clone()));
        assert_eq!(
            Checkpoint::parse_line(&format!("{line}\r\n")),
            Ok(cp.clone())
        );
        let json = cp.to_json().to_string();
        assert_eq!(Checkpoint::parse_json(&json), Ok(cp.clone()));
        assert_eq!(cp.to_json()["version"], 1);
    }

    #[test]
    fn altered_fields_break_the_signature() {
        let k = key();
        let cp = Checkpoint::sign(42, [9; 32], 5, &k);
        let public = k.verifying_key();
        for altered in [
            Checkpoint {
                seq: 43,
                ..cp.clone()
            },
            Checkpoint {
                head_hash: [8; 32],
                ..cp.clone()
            },
            Checkpoint {
                at_ms: 6,
                ..cp.clone()
            },
        ] {
            assert_eq!(altered.verify(&public), Err(CheckpointError::BadSignature));
        }
        let other = CheckpointKey::from_seed(&[8; 32]);
        assert_eq!(
            cp.verify(&other.verifying_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn malformed_lines_are_refused_with_a_reason() {
        let cp = Checkpoint::sign(1, [0; 32], -5, &key());
        let line = cp.to_line();
        assert_eq!(Checkpoint::parse_line(&line).map(|c| c.at_ms), Ok(-5));
        let cases = [
            (String::new(), "expected 6"),
            (
                line.replace("moat-checkpoint ", "moat-chekpoint "),
                "expected `moat-checkpoint`",
            ),
            (line.replace(" v1 ", " v2 "), "unsupported version `v2`"),
            (line.replace("seq=1", "seq=+1"), "bad `seq` value `+1`"),
            (line.replace("seq=1", "sequence=1"), "expected `seq=`"),
            (line.replace(&"0".repeat(64), "zz"), "bad `head` value `zz`"),
            (line.replace("at=-5", "at=five"), "bad `at` value `five`"),
            (format!("{line}AAAA"), "bad `sig`"),
            (line.replace(' ', "  "), "expected 6"),
            (format!("{line}\n\n"), "bad `sig`"),
        ];
        for (input, want) in cases {
            match Checkpoint::parse_line(&input) {
                Err(CheckpointError::Malformed(m)) => assert!(m.contains(want), "{input}: {m}"),
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn json_is_strict() {
        let cp = Checkpoint::sign(1, [0; 32], 0, &key());
        let mut v = cp.to_json();
        v["extra"] = 1.into();
        assert!(
            matches!(Checkpoint::parse_json(&v.to_string()), Err(CheckpointError::Json(m)) if m.contains("unknown field `extra`"))
        );
        let mut v = cp.to_json();
        v["version"] = 2.into();
        assert!(
            matches!(Checkpoint::parse_json(&v.to_string()), Err(CheckpointError::Json(m)) if m.contains("unsupported version `2`"))
        );
    }

    #[test]
    fn keys_round_trip_as_base64_and_never_print_their_secret() {
        let k = CheckpointKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let text = k.to_base64();
        let mut file = Vec::new();
        k.write_to(&mut file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file, format!("{}\n", text.as_str()).into_bytes());
        let back = CheckpointKey::read_from(&mut file.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.verifying_key(), k.verifying_key());
        let public = public_key_from_base64(&k.public_base64()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(public, k.verifying_key());
        assert!(!format!("{k:?}").contains(text.as_str()));
        let err = CheckpointKey::from_base64("c2VjcmV0")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("checkpoint key is not base64 of 32 bytes")
        );
    }

    #[test]
    fn load_reads_a_key_file() {
        let dir = std::env::temp_dir().join(format!("moat-telemetry-key-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("checkpoint.key");
        let k = key();
        let _ = std::fs::write(&path, format!("{}\n", k.to_base64().as_str()));
        let back = CheckpointKey::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.verifying_key(), k.verifying_key());
        let missing = CheckpointKey::load(&dir.join("missing"))
            .err()
            .map(|e| e.to_string());
        assert!(missing.is_some_and(|m| m.starts_with("checkpoint key `")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
