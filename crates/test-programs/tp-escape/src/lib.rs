//! Test program: tries to escape the sandbox with ordinary `std` calls and reports, as JSON,
//! what each attempt got:
//!
//! ```json
//! {"read_etc_passwd": "denied: ...", "read_dir_root": "denied: ...", "env_vars": 0,
//!  "args": 0, "stdin": "denied: ...", "tcp_connect": "denied: ...", "write_file": "denied: ..."}
//! ```
//!
//! Each string field is `"denied: <error>"` when the attempt failed and starts with
//! `"ALLOWED"` when it succeeded (followed by what it got). Reading stdin counts as denied
//! when it yields no bytes (closed stdin). The TCP target comes from the query string,
//! `?connect=127.0.0.1:PORT` (default `127.0.0.1:8081`, the admin API).

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};

use tp_common::{query_param, respond};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

const DEFAULT_CONNECT: &str = "127.0.0.1:8081";

struct Escape;

impl Guest for Escape {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let connect = query_param(&request, "connect").unwrap_or_else(|| DEFAULT_CONNECT.into());
        let Ok(connect) = connect.parse::<SocketAddr>() else {
            let message = format!("connect={connect} is not an IP:PORT socket address");
            return respond(response_out, 400, "text/plain", message.as_bytes());
        };

        let read_etc_passwd = match std::fs::read("/etc/passwd") {
            Ok(bytes) => {
                let head = &bytes[..bytes.len().min(20)];
                format!("ALLOWED: {}", String::from_utf8_lossy(head))
            }
            Err(error) => denied(error),
        };
        let read_dir_root = match std::fs::read_dir("/") {
            Ok(entries) => format!("ALLOWED: {} entries", entries.count()),
            Err(error) => denied(error),
        };
        let env_vars = std::env::vars_os().count();
        let args = std::env::args_os().count();
        let stdin = {
            let mut buf = [0u8; 64];
            match std::io::stdin().read(&mut buf) {
                Ok(0) => "denied: end of file (0 bytes read)".to_string(),
                Ok(n) => format!("ALLOWED: read {n} bytes"),
                Err(error) => denied(error),
            }
        };
        let tcp_connect = match TcpStream::connect(connect) {
            Ok(_stream) => format!("ALLOWED: connected to {connect}"),
            Err(error) => denied(error),
        };
        let write_file = match std::fs::write("/tmp/x", b"moat sandbox escape test") {
            Ok(()) => "ALLOWED: wrote /tmp/x".to_string(),
            Err(error) => denied(error),
        };

        let mut json = String::from("{");
        push_field(&mut json, "read_etc_passwd", &json_string(&read_etc_passwd));
        push_field(&mut json, "read_dir_root", &json_string(&read_dir_root));
        push_field(&mut json, "env_vars", &env_vars.to_string());
        push_field(&mut json, "args", &args.to_string());
        push_field(&mut json, "stdin", &json_string(&stdin));
        push_field(&mut json, "tcp_connect", &json_string(&tcp_connect));
        push_field(&mut json, "write_file", &json_string(&write_file));
        json.push('}');

        respond(response_out, 200, "application/json", json.as_bytes());
    }
}

fn denied(error: std::io::Error) -> String {
    format!("denied: {error}")
}

/// Appends `"name": value` to a JSON object under construction; `value` is already JSON.
fn push_field(json: &mut String, name: &str, value: &str) {
    if json.len() > 1 {
        json.push_str(", ");
    }
    json.push_str(&json_string(name));
    json.push_str(": ");
    json.push_str(value);
}

/// `s` as a JSON string literal: quotes, backslashes and control characters escaped.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
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
    out
}

wasi::http::proxy::export!(Escape);
