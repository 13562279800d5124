//! The names a manifest and the audit log use: modes, detectors, channels, secret encodings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DlpError;

/// What the platform does when a scan finds something (`[dlp].mode`).
///
/// The scanner itself only finds and masks; the caller applies the mode. Logs are the
/// exception: they are always redacted, whatever the mode (see [`Channel::effective_mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Refuse to let the data out (a response becomes `response_blocked`, egress is denied).
    #[default]
    Block,
    /// Let the data out with every finding masked.
    Redact,
    /// Let the data out unchanged and record the finding.
    Alert,
}

impl Mode {
    /// The manifest name of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Block => "block",
            Mode::Redact => "redact",
            Mode::Alert => "alert",
        }
    }
}

impl FromStr for Mode {
    type Err = DlpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(Mode::Block),
            "redact" => Ok(Mode::Redact),
            "alert" => Ok(Mode::Alert),
            other => Err(DlpError::UnknownMode(other.to_owned())),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One kind of thing the scanner looks for (`[dlp].detectors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    /// The values of the secrets the function can read, raw and encoded. Always on.
    Secrets,
    /// Card numbers: 13–19 digits, optionally grouped by single spaces or dashes from a first
    /// group of four, passing Luhn and starting with a card network's issuer prefix for that
    /// length.
    CreditCard,
    /// PEM private keys (`-----BEGIN … PRIVATE KEY-----`).
    PrivateKey,
    /// AWS access key ids (`AKIA`, `ASIA`, `ABIA`, `ACCA` and 16 upper-case letters or digits).
    AwsKey,
    /// JSON Web Tokens whose header decodes to JSON naming an `"alg"`.
    Jwt,
    /// Long runs of base64 or hex characters with high Shannon entropy. Opt-in only: base64
    /// payloads (images, ciphertexts) trigger it too.
    HighEntropy,
}

impl Detector {
    /// Every detector, in a fixed order.
    pub const ALL: [Detector; 6] = [
        Detector::Secrets,
        Detector::CreditCard,
        Detector::PrivateKey,
        Detector::AwsKey,
        Detector::Jwt,
        Detector::HighEntropy,
    ];

    /// The manifest name of this detector, also used in metrics and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Secrets => "secrets",
            Detector::CreditCard => "credit-card",
            Detector::PrivateKey => "private-key",
            Detector::AwsKey => "aws-key",
            Detector::Jwt => "jwt",
            Detector::HighEntropy => "high-entropy",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl FromStr for Detector {
    type Err = DlpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Detector::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| DlpError::UnknownDetector(s.to_owned()))
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of enabled detectors. [`Detector::Secrets`] is always in it: no constructor or
/// method can take it out, because a function must never be able to opt out of secret
/// scanning.
///
/// The default is every detector except [`Detector::HighEntropy`], which is opt-in.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DetectorSet(u8);

impl DetectorSet {
    /// Only the always-on secret detector.
    pub fn secrets_only() -> Self {
        DetectorSet(Detector::Secrets.bit())
    }

    /// Every detector, including the opt-in high-entropy one.
    pub fn all() -> Self {
        Detector::ALL.into_iter().collect()
    }

    /// The set named by manifest strings; `secrets` is added whether named or not.
    pub fn from_names<I, S>(names: I) -> Result<Self, DlpError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::secrets_only();
        for name in names {
            set = set.with(name.as_ref().parse()?);
        }
        Ok(set)
    }

    /// This set with `detector` added.
    #[must_use]
    pub fn with(self, detector: Detector) -> Self {
        DetectorSet(self.0 | detector.bit())
    }

    /// Whether `detector` is enabled.
    pub fn contains(self, detector: Detector) -> bool {
        self.0 & detector.bit() != 0
    }

    /// The enabled detectors, in [`Detector::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Detector> {
        Detector::ALL.into_iter().filter(move |d| self.contains(*d))
    }
}

impl Default for DetectorSet {
    fn default() -> Self {
        Detector::ALL
            .into_iter()
            .filter(|d| *d != Detector::HighEntropy)
            .collect()
    }
}

impl FromIterator<Detector> for DetectorSet {
    fn from_iter<T: IntoIterator<Item = Detector>>(iter: T) -> Self {
        iter.into_iter().fold(Self::secrets_only(), Self::with)
    }
}

impl fmt::Debug for DetectorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Detector::as_str))
            .finish()
    }
}

impl Serialize for DetectorSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for DetectorSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<Detector>::deserialize(deserializer)?;
        Ok(names.into_iter().collect())
    }
}

/// Where scanned bytes are going. Each channel has a stable name for metrics and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// The body of the function's response.
    ResponseBody,
    /// A header (name and value) of the function's response.
    ResponseHeader,
    /// The URL of an outbound request.
    EgressUrl,
    /// A header of an outbound request.
    EgressHeader,
    /// The body of an outbound request.
    EgressBody,
    /// A line the function logged.
    Log,
}

impl Channel {
    /// The stable name of this channel.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::ResponseBody => "response-body",
            Channel::ResponseHeader => "response-header",
            Channel::EgressUrl => "egress-url",
            Channel::EgressHeader => "egress-header",
            Channel::EgressBody => "egress-body",
            Channel::Log => "log",
        }
    }

    /// The mode to apply on this channel given the function's configured mode.
    ///
    /// Logs are always redacted: blocking a log line would only hide the leak from the
    /// operator, and alerting alone would store the secret in the log store.
    pub fn effective_mode(self, configured: Mode) -> Mode {
        match self {
            Channel::Log => Mode::Redact,
            _ => configured,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The form in which a secret's value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The bytes as stored.
    Raw,
    /// Standard base64 (`+`, `/`), at any alignment, padded or not.
    Base64,
    /// URL-safe base64 (`-`, `_`), at any alignment, padded or not.
    Base64Url,
    /// Lower-case hex.
    HexLower,
    /// Upper-case hex.
    HexUpper,
    /// Percent-encoding (URL or form encoding, upper or lower-case escapes).
    Percent,
}

impl Encoding {
    /// The stable name of this encoding.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Base64 => "base64",
            Encoding::Base64Url => "base64url",
            Encoding::HexLower => "hex",
            Encoding::HexUpper => "hex-upper",
            Encoding::Percent => "percent",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
