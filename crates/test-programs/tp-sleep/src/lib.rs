//! Test program: sleeps `?ms=N` milliseconds (default 1000), then answers `slept N`. The sleep
//! waits in a host call (`std::thread::sleep` is a `wasi:clocks` poll on wasip2), not in guest
//! code, so tests can check that the wall-clock deadline also stops a guest blocked in the host.

use std::time::Duration;

use tp_common::{query_number, respond};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

const DEFAULT_MS: u64 = 1000;

struct Sleep;

impl Guest for Sleep {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let ms = match query_number(&request, "ms", DEFAULT_MS) {
            Ok(ms) => ms,
            Err(message) => return respond(response_out, 400, "text/plain", message.as_bytes()),
        };
        std::thread::sleep(Duration::from_millis(ms));
        let body = format!("slept {ms}");
        respond(response_out, 200, "text/plain", body.as_bytes());
    }
}

wasi::http::proxy::export!(Sleep);
