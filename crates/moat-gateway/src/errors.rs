//! SPEC §4's error model: `{"error": {"code", "message", "request_id", "details"}}`.
//!
//! Messages here are fixed strings chosen for callers; nothing from a trap, a path, a Rust
//! type or a version ever goes into one.

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, Full};
pub use moat_input::ErrorCode;

use crate::server::GatewayBody;

/// A platform error response, JSON per SPEC §4.
pub fn error_response(
    code: ErrorCode,
    request_id: &str,
    details: Option<serde_json::Value>,
) -> Response<GatewayBody> {
    let mut error = serde_json::json!({
        "code": code.as_str(),
        "message": code.message(),
        "request_id": request_id,
    });
    if let Some(details) = details {
        error["details"] = details;
    }
    let body = serde_json::json!({ "error": error }).to_string();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn error_body_follows_the_spec() {
        let r = error_response(ErrorCode::NotFound, "rid1", None);
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["x-request-id"], "rid1");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "not_found");
        assert_eq!(v["error"]["request_id"], "rid1");
        assert!(v["error"].get("details").is_none());
    }
}
