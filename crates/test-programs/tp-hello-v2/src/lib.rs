//! Test program: answers `Hello, v2!` (text/plain); a second version of the `hello`
//! example, for redeploy and rollback tests.

use std::io::Write as _;

use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct HelloV2;

impl Guest for HelloV2 {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        respond(response_out, 200, "text/plain", b"Hello, v2!");
    }
}

/// Sends a complete response with one `content-type` header.
fn respond(response_out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers =
        Fields::from_list(&[("content-type".to_string(), content_type.as_bytes().to_vec())])
            .expect("content-type is a valid header");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("a valid status code");
    let outgoing_body = response.body().expect("the body is taken only once");
    ResponseOutparam::set(response_out, Ok(response));

    let mut out = outgoing_body
        .write()
        .expect("the body stream is taken only once");
    out.write_all(body).expect("write the body");
    out.flush().expect("flush the body");
    drop(out); // the stream must be dropped before the body is finished
    OutgoingBody::finish(outgoing_body, None).expect("finish the body");
}

wasi::http::proxy::export!(HelloV2);
