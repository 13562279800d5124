//! Test program: answers whether the query's `text` matches a regular expression, using a
//! `regex` version with a known advisory, so supply-chain tests have a real vulnerable
//! component built with `cargo auditable`.

use tp_common::{query_param, respond};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Audited;

impl Guest for Audited {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let text = query_param(&request, "text").unwrap_or_default();
        let answer = match regex::Regex::new("^[a-z]+$") {
            Ok(re) if re.is_match(&text) => "match",
            Ok(_) => "no match",
            Err(_) => "bad pattern",
        };
        respond(response_out, 200, "text/plain", answer.as_bytes());
    }
}

wasi::http::proxy::export!(Audited);
