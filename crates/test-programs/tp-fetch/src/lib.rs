//! Test program: makes one outbound GET to `?url=...` (percent-encoding not needed; the rest
//! of the query after `url=` is the URL) and answers `status N: BODY`, or `denied: CODE` when
//! the host refuses it. With `follow=1` before `url=`, it follows one redirect itself, as a
//! guest trying to reach a refused address through a redirect would.

use tp_common::respond;
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, IncomingRequest, OutgoingRequest, ResponseOutparam, Scheme};

struct Fetch;

/// One GET: `Ok((status, location, body))` or the error code's debug text.
fn get(url: &str) -> Result<(u16, Option<String>, String), String> {
    let (scheme, rest) = url.split_once("://").ok_or("bad url")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
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
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
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
        let mut result = get(url);
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
