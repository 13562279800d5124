//! Test program: writes `?bytes=N` bytes (default 10 MiB) to stdout in 64 KiB chunks, then
//! answers `done`, so tests can check that log capture is bounded and counts what it drops.
//! The output is lines of 63 `x` and a newline; if a write fails, it answers `500` with the
//! error and the number of bytes written before it.

use std::io::Write as _;

use tp_common::{query_number, respond};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

const DEFAULT_BYTES: u64 = 10 * 1024 * 1024;
const CHUNK_BYTES: usize = 64 * 1024;
const LINE: &[u8; 64] = b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";

struct BigLog;

impl Guest for BigLog {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let bytes = match query_number(&request, "bytes", DEFAULT_BYTES) {
            Ok(bytes) => bytes,
            Err(message) => return respond(response_out, 400, "text/plain", message.as_bytes()),
        };
        let chunk = LINE.repeat(CHUNK_BYTES / LINE.len());
        let mut stdout = std::io::stdout().lock();
        let mut written: u64 = 0;
        while written < bytes {
            let len = (bytes - written).min(CHUNK_BYTES as u64) as usize;
            let result = stdout
                .write_all(&chunk[..len])
                .and_then(|()| stdout.flush());
            if let Err(error) = result {
                let message = format!("stdout write failed after {written} bytes: {error}");
                return respond(response_out, 500, "text/plain", message.as_bytes());
            }
            written += len as u64;
        }
        respond(response_out, 200, "text/plain", b"done");
    }
}

wasi::http::proxy::export!(BigLog);
