//! Test program: allocates and touches `?mb=N` MiB (default 256) of memory, then answers how
//! much it got. Under a `memory_mb` below N the allocation fails and the guest traps.

use tp_common::{query_number, respond};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Memory;

impl Guest for Memory {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let mb = match query_number(&request, "mb", 256) {
            Ok(mb) => mb as usize,
            Err(message) => return respond(response_out, 400, "text/plain", message.as_bytes()),
        };
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        for _ in 0..mb {
            // Touch every page so the memory is really used.
            blocks.push(vec![1u8; 1 << 20]);
        }
        let total: usize = blocks.iter().map(Vec::len).sum();
        respond(
            response_out,
            200,
            "text/plain",
            format!("allocated {} MiB", total >> 20).as_bytes(),
        );
    }
}

wasi::http::proxy::export!(Memory);
