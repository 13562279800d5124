//! Test program: writes one line to stdout and one to stderr, then answers `logged`, so
//! tests can check that guest output is captured (and redacted) in the function's logs.

use tp_common::respond;
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Log;

impl Guest for Log {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        println!("hello from stdout request {path}");
        eprintln!("hello from stderr request {path}");
        respond(response_out, 200, "text/plain", b"logged");
    }
}

wasi::http::proxy::export!(Log);
