//! The HTTP server loop (shared with the admin API) and the gateway's request handler.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use moat_runtime::{InvokeError, Report, Runtime};
use tokio::net::TcpListener;

use crate::errors::{ErrorCode, error_response};
use crate::routes::{Route, RouteTable};
use crate::{AuthDecision, Authenticator, new_request_id};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response Moat sends.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// Receives what happened to each request, for logs and metrics (off the response path).
pub trait Observer: Send + Sync + 'static {
    /// A function invocation has ended, body and all.
    fn finished(&self, route: &Route, request_id: &str, report: Report);
    /// The gateway answered (`function` is `None` when no route matched).
    fn responded(&self, function: Option<&str>, status: u16);
}

/// The gateway's shared state.
pub struct Gateway {
    routes: RwLock<Arc<RouteTable>>,
    runtime: Arc<Runtime>,
    auth: Arc<dyn Authenticator>,
    observer: Arc<dyn Observer>,
}

impl Gateway {
    pub fn new(
        runtime: Arc<Runtime>,
        auth: Arc<dyn Authenticator>,
        observer: Arc<dyn Observer>,
    ) -> Arc<Self> {
        Arc::new(Gateway {
            routes: RwLock::new(Arc::new(RouteTable::default())),
            runtime,
            auth,
            observer,
        })
    }

    /// Replaces the whole route table at once: a request sees the old table or the new one.
    pub fn set_routes(&self, table: RouteTable) {
        if let Ok(mut routes) = self.routes.write() {
            *routes = Arc::new(table);
        }
    }

    pub fn routes(&self) -> Arc<RouteTable> {
        match self.routes.read() {
            Ok(r) => Arc::clone(&r),
            Err(_) => Arc::new(RouteTable::default()),
        }
    }

    /// Handles one caller request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<GatewayBody> {
        let request_id = new_request_id();
        let table = self.routes();
        let route = match check_path(req.uri().path()) {
            Err(code) => Err(code),
            Ok(()) => table
                .lookup(req.uri().path())
                .cloned()
                .ok_or(ErrorCode::NotFound),
        };
        let route = match route {
            Ok(r) => r,
            Err(code) => {
                self.observer.responded(None, code.status().as_u16());
                return error_response(code, &request_id, None);
            }
        };
        let response = self.invoke(&route, req, &request_id).await;
        self.observer
            .responded(Some(&route.function), response.status().as_u16());
        response
    }

    async fn invoke(
        &self,
        route: &Arc<Route>,
        mut req: Request<Incoming>,
        request_id: &str,
    ) -> Response<GatewayBody> {
        if !route.public {
            let decision = match bearer(&req) {
                None => AuthDecision::Unauthenticated,
                Some(token) => self.auth.may_invoke(token, &route.function),
            };
            match decision {
                AuthDecision::Allowed => {}
                AuthDecision::Unauthenticated => {
                    return error_response(ErrorCode::Unauthorized, request_id, None);
                }
                AuthDecision::Forbidden => {
                    return error_response(ErrorCode::Forbidden, request_id, None);
                }
            }
            // The caller's credentials are never the function's business.
            req.headers_mut().remove(header::AUTHORIZATION);
        }
        let rid = HeaderValue::from_str(request_id).unwrap_or(HeaderValue::from_static("-"));
        req.headers_mut().insert("x-request-id", rid.clone());
        if req.uri().authority().is_none() && !req.headers().contains_key(header::HOST) {
            req.headers_mut()
                .insert(header::HOST, HeaderValue::from_static("localhost"));
        }

        let observer = Arc::clone(&self.observer);
        let (for_report, rid_for_report) = (Arc::clone(route), request_id.to_string());
        let result = self
            .runtime
            .invoke(&route.prepared, req, route.options, move |report| {
                observer.finished(&for_report, &rid_for_report, report)
            })
            .await;
        match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                parts.headers.insert("x-request-id", rid);
                Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
            }
            Err(InvokeError::TimedOut) => error_response(ErrorCode::Timeout, request_id, None),
            Err(InvokeError::Failed) => error_response(ErrorCode::FunctionFailed, request_id, None),
            Err(InvokeError::Internal(msg)) => {
                tracing::warn!(request_id, function = %route.function, "invocation setup failed: {msg}");
                error_response(ErrorCode::FunctionFailed, request_id, None)
            }
        }
    }
}

/// Refuses paths with dot segments (raw or percent-encoded) or encoded slashes: they mean
/// different things to different parsers, and no route needs them.
fn check_path(path: &str) -> Result<(), ErrorCode> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return Err(ErrorCode::BadRequest);
    }
    let dotted = lower.replace("%2e", ".");
    if dotted.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(ErrorCode::BadRequest);
    }
    Ok(())
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

type Handler = Arc<
    dyn Fn(
            Request<Incoming>,
            SocketAddr,
        ) -> Pin<Box<dyn Future<Output = Response<GatewayBody>> + Send>>
        + Send
        + Sync,
>;

/// Serves HTTP/1.1 and HTTP/2 on `listener` until `shutdown` resolves, then stops accepting
/// and waits up to `drain` for in-flight requests to finish.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    handler: F,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<GatewayBody>> + Send + 'static,
{
    let handler: Handler = Arc::new(move |req, peer| Box::pin(handler(req, peer)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = Arc::clone(&handler);
                let service = hyper::service::service_fn(move |req| {
                    let handler = Arc::clone(&handler);
                    async move { Ok::<_, std::convert::Infallible>(handler(req, peer).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection from {peer} ended: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {drain:?}; closing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_encoded_slashes_are_refused() {
        for bad in [
            "/a/../b",
            "/a/%2e%2E/b",
            "/a/./b",
            "/..",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
        ] {
            assert_eq!(check_path(bad), Err(ErrorCode::BadRequest), "{bad}");
        }
        for ok in ["/", "/hello", "/a/b.c", "/a/..b", "/a%20b"] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
    }
}
