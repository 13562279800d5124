//! What one audit record says happened: who, did what, to what, with which outcome.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A decision let the action go ahead (e.g. an admin write that policy permitted).
    Allowed,
    /// A decision refused the action (policy, authentication, a limit).
    Denied,
    /// The action was carried out.
    Succeeded,
    /// The action was attempted and failed.
    Failed,
    /// Something was noticed without a decision being made (e.g. a DLP finding in report mode).
    Detected,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Allowed,
        Outcome::Denied,
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Detected,
    ];

    /// The lowercase name used in JSON, TOML, the canonical hash encoding and the CLI.
    ///
    /// These names are part of the hash encoding: renaming one breaks every existing chain.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Detected => "detected",
        }
    }

    /// The outcome named `name`, if there is one (what a store reads back from a text column).
    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One security-relevant event: an admin action, a denial, a DLP finding, a limit hit, a
/// failed login.
///
/// The fields are plain strings on purpose: the store keeps them in columns and reads them
/// back, and the hash chain covers exactly these values (see [`crate::audit::canonical_bytes`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who did it: `token:ab12cd`, `function:orders`, `node`.
    pub actor: String,
    /// What was done, dotted: `function.deploy`, `policy.denied`, `dlp.finding`, `limit.rate`,
    /// `auth.failed`.
    pub action: String,
    /// What it was done to: a function name, a secret name, a host, a route.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The client address, when the event came from a request.
    #[serde(default)]
    pub source: Option<String>,
    /// The `x-request-id` of the request, when there was one.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The function concerned, when there is one (alerts can group by it).
    #[serde(default)]
    pub function: Option<String>,
    /// Anything else worth keeping, as JSON. Never secrets or matched DLP values.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl AuditEvent {
    /// An event with no source, request id, function or details; add them with the
    /// `with_*` methods.
    pub fn new(
        at_ms: i64,
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        AuditEvent {
            at_ms,
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            outcome,
            source: None,
            request_id: None,
            function: None,
            details: serde_json::Value::Null,
        }
    }

    /// Sets the client address.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Sets the function concerned.
    #[must_use]
    pub fn with_function(mut self, function: impl Into<String>) -> Self {
        self.function = Some(function.into());
        self
    }

    /// Sets the details.
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Actor names in the forms the rest of Moat uses, so that alert rules and `audit-log show`
/// filters can rely on them.
pub mod actor {
    /// The actor for an API token, named by its public id (never the secret part).
    pub fn token(id: &str) -> String {
        format!("token:{id}")
    }

    /// The actor for a function acting through a capability.
    pub fn function(name: &str) -> String {
        format!("function:{name}")
    }

    /// The node itself (startup, key rotation, a limit it enforced on its own).
    pub const NODE: &str = "node";
}

/// The current time in Unix milliseconds: the one place this crate reads a clock, for callers
/// that do not pass time in themselves. A clock before 1970 reads as 0.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
