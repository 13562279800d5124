//! Moat example function: answers `Hello, world!` (text/plain) to any request.

use std::io::Write as _;

use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("content-type is a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body is taken only once");
        // Send the status and headers, then stream the body.
        ResponseOutparam::set(response_out, Ok(response));

        let mut out = body.write().expect("the body stream is taken only once");
        out.write_all(b"Hello, world!").expect("write the body");
        out.flush().expect("flush the body");
        drop(out); // the stream must be dropped before the body is finished
        OutgoingBody::finish(body, None).expect("finish the body");
    }
}

wasi::http::proxy::export!(Hello);
