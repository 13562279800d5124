//! Test program: makes one outbound GET to `?url=...` (percent-encoding not needed; the rest
//! of the query after `url=` is the URL) and answers `status N: BODY`, or `denied: CODE` when
//! the host refuses it. With `follow=1` before `url=`, it follows one redirect itself, as a
//! guest trying to reach a refused address through a redirect would. With `header=V` before
//! `url=`, the request carries `x-data: V`; with `body=V`, it is a POST whose body is V,
//! written in two chunks split in the middle (for data-loss prevention tests). With
//! `bodyin=1`, the POST's body is this request's own body, and with `encoding=E` it is
//! sent with `content-encoding: E` (bytes the test compressed).

use tp_common::respond;
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, IncomingRequest, OutgoingRequest, ResponseOutparam, Scheme};

struct Fetch;

/// One GET: `Ok((status, location, body))` or the error code's debug text.
fn get(url: &str) -> Result<(u16, Option<String>, String), String> {
    send(url, None, None, None)
}

fn send(
    url: &str,
    header: Option<&str>,
    encoding: Option<&str>,
    body: Option<&[u8]>,
) -> Result<(u16, Option<String>, String), String> {
    let (scheme, rest) = url.split_once("://").ok_or("bad url")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    if let Some(h) = header {
        fields
            .append("x-data", h.as_bytes())
            .map_err(|e| format!("{e:?}"))?;
    }
    if let Some(e) = encoding {
        fields
            .append("content-encoding", e.as_bytes())
            .map_err(|e| format!("{e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    if body.is_some() {
        request
            .set_method(&wasi::http::types::Method::Post)
            .map_err(|()| "method")?;
    }
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let outgoing_body = match body {
        Some(_) => Some(request.body().map_err(|()| "body")?),
        None => None,
    };
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    if let (Some(ob), Some(bytes)) = (outgoing_body, body) {
        let (a, b) = bytes.split_at(bytes.len() / 2);
        {
            let stream = ob.write().map_err(|()| "write")?;
            for part in [a, b] {
                // blocking-write-and-flush takes at most 4096 bytes at a time.
                for piece in part.chunks(4096) {
                    stream
                        .blocking_write_and_flush(piece)
                        .map_err(|e| format!("{e:?}"))?;
                }
            }
        }
        wasi::http::types::OutgoingBody::finish(ob, None).map_err(|e| format!("{e:?}"))?;
    }
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response")?
        .map_err(|()| "taken")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let body = response.consume().map_err(|()| "body")?;
    let stream = body.stream().map_err(|()| "stream")?;
    let mut bytes = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        bytes.extend_from_slice(&chunk);
    }
    Ok((
        status,
        location,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

impl Guest for Fetch {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let query = request.path_with_query().unwrap_or_default();
        let follow = query.contains("follow=1");
        let Some((_, url)) = query.split_once("url=") else {
            return respond(response_out, 400, "text/plain", b"missing url=");
        };
        let (before, _) = query.split_once("url=").unwrap_or_default();
        let param = |name: &str| {
            before
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        let header = param("header");
        let encoding = param("encoding").map(|e| e.replace("%20", " ").replace("%2C", ","));
        let url = url.to_string();
        let body: Option<Vec<u8>> = match param("bodyin") {
            Some(_) => Some(tp_common::read_body(request)),
            None => param("body").map(|b| b.as_bytes().to_vec()),
        };
        let mut result = send(&url, header, encoding.as_deref(), body.as_deref());
        if follow && let Ok((300..=399, Some(location), _)) = &result {
            result = get(&location.clone());
        }
        let text = match result {
            Ok((status, _, body)) => format!("status {status}: {body}"),
            Err(e) => format!("denied: {e}"),
        };
        respond(response_out, 200, "text/plain", text.as_bytes());
    }
}

wasi::http::proxy::export!(Fetch);
