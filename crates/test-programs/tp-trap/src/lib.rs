//! Test program: panics on every request, so tests can check that a guest panic becomes a
//! `function_failed` error and that the panic message (`secret-internal-detail`) reaches
//! only the function's logs, never the caller.

use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Trap;

impl Guest for Trap {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        panic!("deliberate panic: secret-internal-detail");
    }
}

wasi::http::proxy::export!(Trap);
