//! Moat example function: answers, as JSON, the method, path, headers and body it received.
//!
//! ```json
//! {"method": "POST", "path": "/echo/x?y=1", "headers": [["content-type", "text/plain"]], "body": "hi"}
//! ```
//!
//! Header values and the body are decoded as UTF-8, replacing invalid bytes with U+FFFD.

use std::fmt::Write as _;
use std::io::Write as _;

use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

struct Echo;

impl Guest for Echo {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Other(other) => other,
        };
        let path = request.path_with_query().unwrap_or_default();
        let headers = request.headers().entries();

        let body = match read_body(&request) {
            Ok(body) => body,
            Err(message) => return respond(response_out, 400, "text/plain", message.as_bytes()),
        };

        let mut json = String::new();
        json.push_str("{\"method\": ");
        push_json_string(&mut json, &method);
        json.push_str(", \"path\": ");
        push_json_string(&mut json, &path);
        json.push_str(", \"headers\": [");
        for (i, (name, value)) in headers.iter().enumerate() {
            if i > 0 {
                json.push_str(", ");
            }
            json.push('[');
            push_json_string(&mut json, name);
            json.push_str(", ");
            push_json_string(&mut json, &String::from_utf8_lossy(value));
            json.push(']');
        }
        json.push_str("], \"body\": ");
        push_json_string(&mut json, &String::from_utf8_lossy(&body));
        json.push('}');

        respond(response_out, 200, "application/json", json.as_bytes());
    }
}

/// Reads the whole request body: `consume` → `stream` → `blocking_read` until closed.
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request
        .consume()
        .map_err(|()| "request body already consumed")?;
    let stream = body
        .stream()
        .map_err(|()| "request body stream already taken")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(format!(
                    "reading the request body failed: {}",
                    error.to_debug_string()
                ));
            }
        }
    }
    drop(stream); // the stream must be dropped before its body
    drop(body);
    Ok(bytes)
}

/// Appends `s` as a JSON string literal: quotes, backslashes and control characters escaped.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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

wasi::http::proxy::export!(Echo);
