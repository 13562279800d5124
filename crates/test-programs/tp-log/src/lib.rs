//! Test program: writes one line to stdout and one to stderr, then answers `logged`, so
//! tests can check that guest output is captured (and redacted) in the function's logs.

use std::io::Write as _;

use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Log;

impl Guest for Log {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        println!("hello from stdout request {path}");
        eprintln!("hello from stderr request {path}");
        respond(response_out, 200, "text/plain", b"logged");
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

wasi::http::proxy::export!(Log);
