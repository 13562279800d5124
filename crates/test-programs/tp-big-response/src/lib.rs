//! Test program: answers `?bytes=N` bytes (default 8 MiB) of `x`, written in 64 KiB chunks
//! with no content-length, so limits must be enforced while the response streams.

use std::io::Write as _;

use tp_common::query_number;
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct BigResponse;

impl Guest for BigResponse {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let bytes = query_number(&request, "bytes", 8 << 20).unwrap_or(0);
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("the body is taken only once");
        ResponseOutparam::set(response_out, Ok(response));
        let mut out = body.write().expect("the body stream is taken only once");
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0u64;
        while written < bytes {
            let len = (bytes - written).min(chunk.len() as u64) as usize;
            if out
                .write_all(&chunk[..len])
                .and_then(|()| std::io::Write::flush(&mut out))
                .is_err()
            {
                return; // the host cut the response off
            }
            written += len as u64;
        }
        drop(out);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasi::http::proxy::export!(BigResponse);
