//! Test program: computes forever and never answers (no host calls, so no chance to yield),
//! so tests can check that epoch interruption stops a guest stuck in pure computation.

use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Spin;

impl Guest for Spin {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        let mut n: u64 = 0;
        loop {
            // `black_box` keeps the optimizer from proving the loop useless and removing it.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

wasi::http::proxy::export!(Spin);
