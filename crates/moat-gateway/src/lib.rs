//! The data plane: where callers' requests enter.
//!
//! A request is given an id, matched to a route, authenticated, stripped of the caller's
//! credentials, and handed to the runtime. Every response carries `x-request-id`; every
//! platform error is SPEC §4's JSON and never says anything internal.
//!
//! Architecture invariant: the gateway reads nothing but the in-memory [`RouteTable`]; it
//! never touches the store, the manifest or the filesystem on the request path.

pub mod body;
pub mod dlp;
pub mod encoded;
mod errors;
pub mod limits;
mod routes;
mod server;
pub mod tls;
pub mod trace;

pub use errors::{ErrorCode, error_response};
pub use routes::{Match, Route, RouteTable};
pub use server::{BoxError, Gateway, GatewayBody, GatewayConfig, Observer, ServeOptions, serve};

/// Checks bearer tokens for `auth = "token"` routes.
pub trait Authenticator: Send + Sync + 'static {
    /// Whether `token` may invoke `function`.
    fn may_invoke(&self, token: &str, function: &str) -> AuthDecision;
    /// A stable id for a live token (for per-client rate limits); `None` for anything else,
    /// so an invented token never buys a caller a fresh bucket.
    fn identify(&self, token: &str) -> Option<String>;
}

/// The answer of an [`Authenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    Allowed,
    /// Unknown, expired or revoked: `401`.
    Unauthenticated,
    /// A valid token without the right: `403`. The token's public id (never the token), for
    /// the audit record of the refusal.
    Forbidden {
        token_id: String,
    },
}

pub use moat_input::{frontdoor, new_request_id, new_request_id_bytes, validate};
