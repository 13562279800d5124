//! SPEC §4's error model: `{"error": {"code", "message", "request_id", "details"}}`.
//!
//! Messages here are fixed strings chosen for callers; nothing from a trap, a path, a Rust
//! type or a version ever goes into one.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use crate::server::GatewayBody;

/// The platform's error codes (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    ValidationFailed,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    HeaderFieldsTooLarge,
    UriTooLong,
    RateLimited,
    FunctionFailed,
    ResponseBlocked,
    ResponseTooLarge,
    Overloaded,
    StoreUnavailable,
    Timeout,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::HeaderFieldsTooLarge => "header_fields_too_large",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::FunctionFailed => "function_failed",
            ErrorCode::ResponseBlocked => "response_blocked",
            ErrorCode::ResponseTooLarge => "response_too_large",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::Timeout => "timeout",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::ValidationFailed => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::HeaderFieldsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::FunctionFailed => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ResponseBlocked | ErrorCode::ResponseTooLarge => StatusCode::BAD_GATEWAY,
            ErrorCode::Overloaded | ErrorCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The caller-facing message: fixed text, nothing internal.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "the request is malformed",
            ErrorCode::ValidationFailed => "the request body failed validation",
            ErrorCode::Unauthorized => "a valid bearer token is required",
            ErrorCode::Forbidden => "this token may not call this function",
            ErrorCode::NotFound => "no function serves this path",
            ErrorCode::MethodNotAllowed => "this method is not allowed here",
            ErrorCode::RequestTimeout => "the request was not received in time",
            ErrorCode::PayloadTooLarge => "the request body is too large",
            ErrorCode::UnsupportedMediaType => "this content type is not accepted here",
            ErrorCode::HeaderFieldsTooLarge => "the request headers are too large",
            ErrorCode::UriTooLong => "the request line is too long",
            ErrorCode::RateLimited => "too many requests; retry later",
            ErrorCode::FunctionFailed => "the function failed; see its logs with the request id",
            ErrorCode::ResponseBlocked => "the response was blocked by data-loss prevention",
            ErrorCode::ResponseTooLarge => "the function's response is too large",
            ErrorCode::Overloaded => "the function is at capacity; retry later",
            ErrorCode::StoreUnavailable => "the store is unavailable; retry later",
            ErrorCode::Timeout => "the function did not finish in time",
        }
    }
}

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
