//! Checks on untrusted caller input, before anything else sees it: the HTTP/1 front door
//! ([`frontdoor`]), input validation from `[input]` ([`validate`]) and the error codes a
//! caller may be told ([`ErrorCode`]).
//!
//! Architecture invariant: this crate is pure parsing and checking — no wasmtime, no store,
//! no filesystem — so every parser here can be fuzzed on its own (`fuzz/`).

mod codes;
pub mod frontdoor;
pub mod validate;

pub use codes::ErrorCode;

/// A new request id: 128 random bits as hex.
pub fn new_request_id() -> String {
    hex::encode(new_request_id_bytes())
}

/// A new request id's 128 random bits, for who keeps them as bytes (a trace id).
pub fn new_request_id_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    // getrandom only fails if the OS has no randomness source at all; a constant id would
    // still be correct, just not unique, so do not fail the request for it.
    let _ = getrandom::fill(&mut b);
    b
}
