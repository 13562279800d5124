//! The HTTP server loop (shared with the admin API) and the gateway's request handler.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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

use http_body_util::Full;

use crate::body::{BodyFault, FaultFlag, Held, LimitedBody, hold_back, read_all};
use crate::errors::{ErrorCode, error_response};
use crate::frontdoor::{Guarded, HeadLimits};
use crate::limits::{IpNet, RateLimiter, client_ip};
use crate::routes::{Route, RouteTable};
use crate::trace::{Phase, RequestTrace, Trace};
use crate::validate::RuleFailure;
use crate::{AuthDecision, Authenticator, new_request_id_bytes};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response Moat sends.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// Receives what happened to each request, for logs and metrics (off the response path).
pub trait Observer: Send + Sync + 'static {
    /// A function invocation has ended, body and all.
    fn finished(&self, route: &Route, request_id: &str, report: Report);
    /// The gateway answered (`route` is `None` when none matched).
    fn responded(&self, route: Option<&Route>, status: u16);
    /// A protection refused or stopped something (`limit` as in `moat_limit_hits_total`).
    fn limit_hit(&self, function: &str, limit: &'static str, request_id: &str);
    /// Whether the caller may invoke a token route's `function`, as decided before anything
    /// else runs (public routes ask no one, so they are never reported here). Called for
    /// every request to a token route: an implementation keeps the `Allowed` case cheap.
    fn authorized(&self, _function: &str, _decision: &AuthDecision, _request_id: &str) {}
    /// Data-loss prevention found something leaving `function` (never the bytes found).
    fn dlp_finding(
        &self,
        _function: &str,
        _channel: &'static str,
        _detector: &'static str,
        _request_id: &str,
    ) {
    }
    /// An invocation got its concurrency slot after waiting `wait` (zero when one was free).
    fn admitted(&self, _route: &Route, _wait: Duration) {}
    /// Whether [`Observer::traced`] wants per-request phase timings; when `false` the
    /// gateway measures nothing for it.
    fn traces(&self) -> bool {
        false
    }
    /// A request and its invocation have both ended: its phases, timed.
    fn traced(&self, _trace: RequestTrace) {}
}

/// Gateway settings that can change while the node runs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Peers whose `x-forwarded-for` is believed when identifying a client.
    pub trusted_proxies: Vec<IpNet>,
    /// Longest pause allowed while a caller sends its body (`408` beyond).
    pub body_idle: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            trusted_proxies: Vec::new(),
            body_idle: Duration::from_secs(10),
        }
    }
}

/// The gateway's shared state.
pub struct Gateway {
    routes: RwLock<Arc<RouteTable>>,
    config: RwLock<Arc<GatewayConfig>>,
    runtime: Arc<Runtime>,
    auth: Arc<dyn Authenticator>,
    observer: Arc<dyn Observer>,
    rates: RateLimiter,
}

impl Gateway {
    pub fn new(
        runtime: Arc<Runtime>,
        auth: Arc<dyn Authenticator>,
        observer: Arc<dyn Observer>,
    ) -> Arc<Self> {
        Arc::new(Gateway {
            routes: RwLock::new(Arc::new(RouteTable::default())),
            config: RwLock::new(Arc::new(GatewayConfig::default())),
            runtime,
            auth,
            observer,
            rates: RateLimiter::default(),
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

    pub fn set_config(&self, config: GatewayConfig) {
        if let Ok(mut c) = self.config.write() {
            *c = Arc::new(config);
        }
    }

    fn config(&self) -> Arc<GatewayConfig> {
        match self.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(_) => Arc::new(GatewayConfig::default()),
        }
    }

    /// Handles one caller request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<GatewayBody> {
        let id = new_request_id_bytes();
        let request_id = hex::encode(id);
        let trace = Trace::start(&self.observer, id);
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
                trace.with(|t| t.status = Some(code.status().as_u16()));
                return error_response(code, &request_id, None);
            }
        };
        trace.with(|t| t.route = Some(Arc::clone(&route)));
        let response = match self.admit(&route, req, peer, &request_id, &trace).await {
            Ok(response) => response,
            Err(refusal) => refusal,
        };
        self.observer
            .responded(Some(&route), response.status().as_u16());
        trace.with(|t| t.status = Some(response.status().as_u16()));
        response
    }

    /// Every check that runs before the guest, in order: auth, rate, method and content
    /// type, body size, validation, concurrency. Then the guest, then the response checks.
    async fn admit(
        &self,
        route: &Arc<Route>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        request_id: &str,
        trace: &Trace,
    ) -> Result<Response<GatewayBody>, Response<GatewayBody>> {
        let fail = |code: ErrorCode| error_response(code, request_id, None);
        let limit = |name: &'static str, code: ErrorCode| {
            self.observer.limit_hit(&route.function, name, request_id);
            error_response(code, request_id, None)
        };
        let token = bearer(&req).map(str::to_string);
        let policy = trace.phase(Phase::Policy);
        if !route.public {
            let decision = match &token {
                None => AuthDecision::Unauthenticated,
                Some(token) => self.auth.may_invoke(token, &route.function),
            };
            self.observer
                .authorized(&route.function, &decision, request_id);
            match decision {
                AuthDecision::Allowed => {}
                AuthDecision::Unauthenticated => return Err(fail(ErrorCode::Unauthorized)),
                AuthDecision::Forbidden { .. } => return Err(fail(ErrorCode::Forbidden)),
            }
            // The caller's credentials are never the function's business.
            req.headers_mut().remove(header::AUTHORIZATION);
        }
        drop(policy);
        let config = self.config();
        if let Some((count, per_secs)) = route.rate_limit {
            let identity = token.as_deref().and_then(|t| self.auth.identify(t));
            let client = match identity {
                Some(id) => format!("token:{id}"),
                None => {
                    let xff = req
                        .headers()
                        .get("x-forwarded-for")
                        .and_then(|v| v.to_str().ok());
                    format!("ip:{}", client_ip(peer.ip(), xff, &config.trusted_proxies))
                }
            };
            if let Err(retry_after) = self.rates.check(&route.function, &client, count, per_secs) {
                let mut r = limit("rate", ErrorCode::RateLimited);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return Err(r);
            }
        }
        let validation = trace.phase(Phase::Validation);
        match route.input.check_head(req.method(), req.headers()) {
            Ok(()) => {}
            Err(RuleFailure::Method) => {
                let mut r = limit("validation", ErrorCode::MethodNotAllowed);
                if let Ok(allow) = HeaderValue::from_str(&route.input.allow_header()) {
                    r.headers_mut().insert(header::ALLOW, allow);
                }
                return Err(r);
            }
            Err(RuleFailure::ContentType) => {
                return Err(limit("validation", ErrorCode::UnsupportedMediaType));
            }
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > route.max_body_bytes) {
            return Err(limit("body", ErrorCode::PayloadTooLarge));
        }

        let rid = HeaderValue::from_str(request_id).unwrap_or(HeaderValue::from_static("-"));
        req.headers_mut().insert("x-request-id", rid.clone());
        if req.uri().authority().is_none() && !req.headers().contains_key(header::HOST) {
            req.headers_mut()
                .insert(header::HOST, HeaderValue::from_static("localhost"));
        }
        let validate = route.input.wants_validation(req.method(), req.headers());
        let (parts, body) = req.into_parts();
        let fault = FaultFlag::default();
        let body = LimitedBody::new(body, route.max_body_bytes, config.body_idle, fault.clone());
        let body: GatewayBody = match (&route.input.schema, validate) {
            (Some(schema), true) => {
                let bytes = match read_all(body).await {
                    Ok(b) => b,
                    Err(Some(BodyFault::TooLarge)) => {
                        return Err(limit("body", ErrorCode::PayloadTooLarge));
                    }
                    Err(Some(BodyFault::TooSlow)) => {
                        return Err(limit("body_timeout", ErrorCode::RequestTimeout));
                    }
                    Err(None) => return Err(fail(ErrorCode::BadRequest)),
                };
                if let Err(violations) = schema.check(&bytes) {
                    self.observer
                        .limit_hit(&route.function, "validation", request_id);
                    let details = violations
                        .iter()
                        .map(|v| serde_json::json!({"pointer": v.pointer, "message": v.message}))
                        .collect();
                    return Err(error_response(
                        ErrorCode::ValidationFailed,
                        request_id,
                        Some(serde_json::Value::Array(details)),
                    ));
                }
                Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed_unsync()
            }
            _ => body.boxed_unsync(),
        };
        let req = Request::from_parts(parts, body);
        drop(validation);

        let waiting = Instant::now();
        let Some(permit) = route.concurrency.acquire().await else {
            return Err(limit("concurrency", ErrorCode::Overloaded));
        };
        let wait = waiting.elapsed();
        self.observer.admitted(route, wait);
        trace.with(|t| t.queue_wait = wait);
        let observer = Arc::clone(&self.observer);
        let (for_report, rid_for_report) = (Arc::clone(route), request_id.to_string());
        let (invoked, invocation_trace) = (Instant::now(), trace.clone());
        let result = self
            .runtime
            .invoke(
                &route.prepared,
                req,
                route.options,
                &route.grants,
                move |report| {
                    // The slot is held until the guest has finished, body included.
                    drop(permit);
                    invocation_trace.span(Phase::Instantiation, invoked, report.instantiate);
                    invocation_trace.span(
                        Phase::Execution,
                        invoked + report.instantiate,
                        report.total.saturating_sub(report.instantiate),
                    );
                    drop(invocation_trace);
                    if report.memory_limit_hit {
                        observer.limit_hit(&for_report.function, "memory", &rid_for_report);
                    }
                    if matches!(report.outcome, moat_runtime::Outcome::TimedOut) {
                        observer.limit_hit(&for_report.function, "timeout", &rid_for_report);
                    }
                    observer.finished(&for_report, &rid_for_report, report)
                },
            )
            .await;
        // A body that broke its limits is the caller's fault, whatever the guest made of it.
        match fault.get() {
            Some(BodyFault::TooLarge) => return Err(limit("body", ErrorCode::PayloadTooLarge)),
            Some(BodyFault::TooSlow) => {
                return Err(limit("body_timeout", ErrorCode::RequestTimeout));
            }
            None => {}
        }
        let response = match result {
            Ok(response) => response,
            Err(InvokeError::TimedOut) => return Err(fail(ErrorCode::Timeout)),
            Err(InvokeError::Overloaded) => {
                return Err(limit("node_capacity", ErrorCode::Overloaded));
            }
            Err(InvokeError::Failed) => return Err(fail(ErrorCode::FunctionFailed)),
            Err(InvokeError::Internal(msg)) => {
                tracing::warn!(request_id, function = %route.function, "invocation setup failed: {msg}");
                return Err(fail(ErrorCode::FunctionFailed));
            }
        };
        self.respond(route, response, rid, request_id, trace).await
    }

    /// Holds the response back up to the buffer size and enforces `max_response_bytes`.
    async fn respond(
        &self,
        route: &Arc<Route>,
        response: Response<moat_runtime::HyperOutgoingBody>,
        rid: HeaderValue,
        request_id: &str,
        trace: &Trace,
    ) -> Result<Response<GatewayBody>, Response<GatewayBody>> {
        let (mut parts, body) = response.into_parts();
        let max = route.max_response_bytes;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            self.observer
                .limit_hit(&route.function, "response_size", request_id);
            return Err(error_response(
                ErrorCode::ResponseTooLarge,
                request_id,
                None,
            ));
        }
        let blocked = |observer: &Arc<dyn Observer>| {
            observer.limit_hit(&route.function, "dlp", request_id);
            error_response(ErrorCode::ResponseBlocked, request_id, None)
        };
        let report = |c: moat_dlp::Channel, f: &moat_dlp::Finding| {
            self.observer
                .dlp_finding(&route.function, c.as_str(), f.detector.as_str(), request_id);
        };
        let headers_judged = trace.begin();
        if let Some(dlp) = &route.dlp
            && dlp.headers(&mut parts.headers, &report).is_err()
        {
            return Err(blocked(&self.observer));
        }
        if let Some(from) = headers_judged {
            let mode = route.dlp.as_ref().map_or("off", |d| d.mode.as_str());
            trace.with(|t| (t.dlp_headers, t.dlp_mode) = (from.elapsed(), mode));
        }
        let (observer, function, rid_text) = (
            Arc::clone(&self.observer),
            route.function.clone(),
            request_id.to_string(),
        );
        let on_cut = Box::new(move || observer.limit_hit(&function, "response_size", &rid_text));
        let held = hold_back(body.map_err(BoxError::from).boxed_unsync(), max, on_cut).await;
        // From here the guest has produced what is held back; the rest is judging it.
        let _judging = trace.phase(Phase::Dlp);
        if matches!(held, Held::Streaming(_)) {
            trace.with(|t| t.streamed = true);
        }
        let body = match held {
            Held::Whole(bytes) => {
                let bytes = match &route.dlp {
                    Some(dlp) => match dlp.whole(&mut parts.headers, bytes, max, &report) {
                        Ok(bytes) => bytes,
                        Err(_) => return Err(blocked(&self.observer)),
                    },
                    None => bytes,
                };
                parts.headers.remove(header::TRANSFER_ENCODING);
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed_unsync()
            }
            Held::Streaming(body) => match &route.dlp {
                Some(dlp) => {
                    let (observer, function, rid_text) = (
                        Arc::clone(&self.observer),
                        route.function.clone(),
                        request_id.to_string(),
                    );
                    dlp.stream(
                        &mut parts.headers,
                        body,
                        max,
                        Box::new(move |c, f| {
                            observer.dlp_finding(
                                &function,
                                c.as_str(),
                                f.detector.as_str(),
                                &rid_text,
                            );
                        }),
                    )
                }
                None => body,
            },
            Held::TooLarge => {
                self.observer
                    .limit_hit(&route.function, "response_size", request_id);
                return Err(error_response(
                    ErrorCode::ResponseTooLarge,
                    request_id,
                    None,
                ));
            }
            // The guest failed while writing: nothing was sent yet, so say so properly.
            Held::Failed => {
                return Err(error_response(ErrorCode::FunctionFailed, request_id, None));
            }
        };
        parts.headers.insert("x-request-id", rid);
        Ok(Response::from_parts(parts, body))
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

fn bearer<B>(req: &Request<B>) -> Option<&str> {
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

/// Connection-level limits of a listener.
#[derive(Clone)]
pub struct ServeOptions {
    pub head: HeadLimits,
    /// Open connections at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long to wait for in-flight requests when stopping.
    pub drain: Duration,
    /// Called when the front door refuses a connection's request (for metrics).
    pub on_refusal: Arc<dyn Fn(ErrorCode) + Send + Sync>,
    /// Serve HTTPS with this configuration (responses then carry HSTS); `None` is plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// `strict-transport-security` on every response served over TLS: a year, subdomains too.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Serves HTTP/1.1 and HTTP/2 on `listener` until `shutdown` resolves, then stops accepting
/// and waits up to `drain` for in-flight requests to finish.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    handler: F,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<GatewayBody>> + Send + 'static,
{
    let handler: Handler = Arc::new(move |req, peer| Box::pin(handler(req, peer)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The front door answers a slow head with a 408 first; this also closes idle
        // keep-alive connections.
        .header_read_timeout(options.head.head_timeout + Duration::from_secs(1))
        .max_buf_size(options.head.max_head_bytes.max(8192) * 2)
        .max_headers(options.head.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(options.head.max_head_bytes as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let connections = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
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
                let Ok(slot) = Arc::clone(&connections).try_acquire_owned() else {
                    (options.on_refusal)(ErrorCode::Overloaded);
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let handler = Arc::clone(&handler);
                let tls = options.tls.is_some();
                let service = hyper::service::service_fn(move |req| {
                    let handler = Arc::clone(&handler);
                    async move {
                        let mut response = handler(req, peer).await;
                        if tls {
                            response.headers_mut().insert(
                                header::STRICT_TRANSPORT_SECURITY,
                                HeaderValue::from_static(HSTS),
                            );
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let on_refusal = Arc::clone(&options.on_refusal);
                let on_refusal: Box<dyn FnOnce(ErrorCode) + Send> = Box::new(move |code| on_refusal(code));
                let (builder, watcher, head) = (builder.clone(), graceful.watcher(), options.head);
                let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
                tokio::spawn(async move {
                    let result = match acceptor {
                        None => {
                            let io = Guarded::new(stream, head, on_refusal);
                            let conn = builder.serve_connection(TokioIo::new(io), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Some(acceptor) => {
                            // The handshake gets the same time a client has to send a head.
                            match tokio::time::timeout(head.head_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    let io = Guarded::new(stream, head, on_refusal);
                                    let conn = builder.serve_connection(TokioIo::new(io), service);
                                    watcher.watch(conn.into_owned()).await
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!("TLS handshake with {peer} failed: {e}");
                                    Ok(())
                                }
                                Err(_) => {
                                    tracing::debug!("TLS handshake with {peer} timed out");
                                    Ok(())
                                }
                            }
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!("connection from {peer} ended: {e}");
                    }
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(options.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight requests did not finish within {:?}; closing",
            options.drain
        );
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
