//! Test program: writes one line to stdout and one to stderr, then answers `logged` (or the
//! query's `line`, as given), so tests can check that guest output is captured (and
//! redacted) in the function's logs, and what data-loss prevention does with a response.

use tp_common::{query_param, respond};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Log;

impl Guest for Log {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        println!("hello from stdout request {path}");
        eprintln!("hello from stderr request {path}");
        let answer = query_param(&request, "line").unwrap_or_else(|| "logged".into());
        respond(response_out, 200, "text/plain", answer.as_bytes());
    }
}

wasi::http::proxy::export!(Log);
