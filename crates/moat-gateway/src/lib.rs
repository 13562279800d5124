//! The data plane: where callers' requests enter.
//!
//! A request is given an id, matched to a route, authenticated, stripped of the caller's
//! credentials, and handed to the runtime. Every response carries `x-request-id`; every
//! platform error is SPEC §4's JSON and never says anything internal.
//!
//! Architecture invariant: the gateway reads nothing but the in-memory [`RouteTable`]; it
//! never touches the store, the manifest or the filesystem on the request path.

pub mod body;
mod errors;
pub mod frontdoor;
pub mod limits;
mod routes;
mod server;
pub mod validate;

pub use errors::{ErrorCode, error_response};
pub use routes::{Match, Route, RouteTable};
pub use server::{BoxError, Gateway, GatewayBody, GatewayConfig, Observer, ServeOptions, serve};

/// Checks bearer tokens for `auth = "token"` routes.
pub trait Authenticator: Send + Sync + 'static {
    /// Whether `token` may invoke `function`.
    fn may_invoke(&self, token: &str, function: &str) -> AuthDecision;
}

/// The answer of an [`Authenticator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    Allowed,
    /// Unknown, expired or revoked: `401`.
    Unauthenticated,
    /// A valid token without the right: `403`.
    Forbidden,
}

/// A new request id: 128 random bits as hex.
pub fn new_request_id() -> String {
    let mut b = [0u8; 16];
    // getrandom only fails if the OS has no randomness source at all; a constant id would
    // still be correct, just not unique, so do not fail the request for it.
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}
