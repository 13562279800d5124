//! Test program: answers `Hello, v2!` (text/plain); a second version of the `hello`
//! example, for redeploy and rollback tests.

use tp_common::respond;
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct HelloV2;

impl Guest for HelloV2 {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        respond(response_out, 200, "text/plain", b"Hello, v2!");
    }
}

wasi::http::proxy::export!(HelloV2);
