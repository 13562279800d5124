//! Helpers shared by the test programs: sending a complete response and reading the query.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Sends a complete response with one `content-type` header.
pub fn respond(response_out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
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

/// The value of `name` in the request's query string (the first one; no percent-decoding).
pub fn query_param(request: &IncomingRequest, name: &str) -> Option<String> {
    let path_with_query = request.path_with_query()?;
    let (_, query) = path_with_query.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// The query parameter `name` as a whole number, or `default` when it is absent.
/// The error is a message for a `400` response.
pub fn query_number(request: &IncomingRequest, name: &str, default: u64) -> Result<u64, String> {
    match query_param(request, name) {
        None => Ok(default),
        Some(value) => value
            .parse()
            .map_err(|_| format!("{name}={value} is not a whole number")),
    }
}

/// Sends a complete response with `content-type` and the given extra headers.
pub fn respond_with(
    response_out: ResponseOutparam,
    status: u16,
    content_type: &str,
    extra: &[(&str, &[u8])],
    body: &[u8],
) {
    let mut list = vec![("content-type".to_string(), content_type.as_bytes().to_vec())];
    list.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_vec())));
    let headers = Fields::from_list(&list).expect("valid headers");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("a valid status code");
    let outgoing_body = response.body().expect("the body is taken only once");
    ResponseOutparam::set(response_out, Ok(response));
    let mut out = outgoing_body
        .write()
        .expect("the body stream is taken only once");
    // In pieces, as a function streaming a large body would.
    for piece in body.chunks(64 * 1024) {
        out.write_all(piece).expect("write the body");
        out.flush().expect("flush the body");
    }
    drop(out);
    OutgoingBody::finish(outgoing_body, None).expect("finish the body");
}

/// Reads a request's whole body (after its query has been read: this consumes it).
pub fn read_body(request: IncomingRequest) -> Vec<u8> {
    let Ok(body) = request.consume() else {
        return Vec::new();
    };
    let Ok(stream) = body.stream() else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}
