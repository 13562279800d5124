//! Test program: writes one line to stdout and one to stderr, then answers `logged` (or the
//! query's `line`, as given), so tests can check that guest output is captured (and
//! redacted) in the function's logs, and what data-loss prevention does with a response.
//! With `encoding=E`, it answers its request body as it came (bytes the test compressed)
//! with `content-encoding: E`, as a function returning a compressed response would.
//! With `?print=TEXT` it also prints TEXT, percent-decoded, as a line of its own (a function
//! logging markup, for the dashboard's escaping test).

use tp_common::{query_param, read_body, respond, respond_with};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Log;

impl Guest for Log {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        println!("hello from stdout request {path}");
        eprintln!("hello from stderr request {path}");
        if let Some(text) = query_param(&request, "print") {
            println!("{}", percent_decode(&text));
        }
        if let Some(encoding) = query_param(&request, "encoding") {
            let encoding = encoding.replace("%20", " ").replace("%2C", ",");
            let body = read_body(request);
            let headers: [(&str, &[u8]); 1] = [("content-encoding", encoding.as_bytes())];
            return respond_with(response_out, 200, "text/plain", &headers, &body);
        }
        let answer = query_param(&request, "line").unwrap_or_else(|| "logged".into());
        respond(response_out, 200, "text/plain", answer.as_bytes());
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

wasi::http::proxy::export!(Log);
