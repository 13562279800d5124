//! SPEC §4's error codes: each with its status and a fixed caller-facing message.

use http::StatusCode;

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
