//! Errors of the DLP crate: bad mode or detector names, and matchers that could not be built.

/// What can go wrong when configuring or building a scanner.
///
/// Messages are lowercase, put user input in backticks and never contain a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DlpError {
    /// A `[dlp].mode` that is not one of the known modes.
    #[error("unknown dlp mode `{0}`, expected one of: block, redact, alert")]
    UnknownMode(String),
    /// A `[dlp].detectors` entry that is not one of the known detectors.
    #[error(
        "unknown dlp detector `{0}`, expected one of: secrets, credit-card, private-key, aws-key, jwt, high-entropy"
    )]
    UnknownDetector(String),
    /// The matcher could not be built (for example, far too many or too long secrets). The
    /// reason comes from the matching engine and never includes pattern bytes.
    #[error("could not build the dlp matcher: {0}")]
    Build(String),
}
