//! Test program: counts the requests its instance has handled, in a `static`, and answers the
//! count as text/plain. With a fresh instance per request the answer is always `1`.

use std::sync::atomic::{AtomicU32, Ordering};

use tp_common::respond;
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

/// Requests handled by this instance; state that must not survive between requests.
static REQUESTS: AtomicU32 = AtomicU32::new(0);

struct Counter;

impl Guest for Counter {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let count = REQUESTS.fetch_add(1, Ordering::SeqCst) + 1;
        let body = count.to_string();
        respond(response_out, 200, "text/plain", body.as_bytes());
    }
}

wasi::http::proxy::export!(Counter);
