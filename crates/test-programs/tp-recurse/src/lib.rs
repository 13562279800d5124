//! Test program: recurses `?depth=N` levels (default effectively unbounded) with a frame the
//! optimizer cannot remove. The guest stack limit must turn this into a clean trap.

use tp_common::{query_number, respond};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Recurse;

#[inline(never)]
fn descend(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 16]);
    if n == 0 {
        frame[0]
    } else {
        descend(n - 1).wrapping_add(frame[15])
    }
}

impl Guest for Recurse {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let depth = match query_number(&request, "depth", u64::MAX / 2) {
            Ok(depth) => depth,
            Err(message) => return respond(response_out, 400, "text/plain", message.as_bytes()),
        };
        let sum = descend(std::hint::black_box(depth));
        respond(
            response_out,
            200,
            "text/plain",
            format!("reached {sum}").as_bytes(),
        );
    }
}

wasi::http::proxy::export!(Recurse);
