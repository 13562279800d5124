//! The outbound-HTTP capability (`wasi:http/outgoing-handler`), granted by
//! `permissions.outbound_hosts` and checked at call time, every call.
//!
//! The SSRF guard, in order: the URL's scheme, host and port must match a grant (plain
//! `http` only where granted with that scheme); the host is resolved **once**; every
//! resolved address is checked (loopback, private, link-local, unique-local, metadata,
//! IPv4-mapped and NAT64 forms of those are refused unless a grant names that exact
//! address; the node's own listeners are refused always); then the connection goes to the
//! address that was checked — there is no second lookup for DNS rebinding to change.
//! wasi:http never follows redirects itself, so a redirect the guest chooses to follow is a
//! new request that passes the same guard.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error, WasiBody};

use crate::ssrf::{canonical, parse_numeric_host, refused_kind};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Turns a host name into addresses. Injectable, so tests can make any name resolve to
/// anything (loopback, or one answer now and another later).
pub trait Resolver: Send + Sync {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<io::Result<Vec<IpAddr>>>;
}

/// The system resolver.
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<io::Result<Vec<IpAddr>>> {
        let target = format!("{host}:{port}");
        Box::pin(async move {
            Ok(tokio::net::lookup_host(target)
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// How many lookups of a name were answered, and its answers in order.
type Answers = (usize, Vec<Vec<IpAddr>>);

/// A resolver with fixed answers, falling back to another. Each name has a list of
/// answers, one per lookup, the last repeated: `a.test=198.51.100.1;127.0.0.1` answers the
/// first lookup with a public address and every later one with loopback (DNS rebinding).
pub struct StaticResolver {
    answers: Mutex<HashMap<String, Answers>>,
    fallback: Arc<dyn Resolver>,
}

impl StaticResolver {
    /// Parses `NAME=IP[,IP...][;IP...]` entries.
    pub fn parse(entries: &[String], fallback: Arc<dyn Resolver>) -> Result<Self, String> {
        let mut answers = HashMap::new();
        for e in entries {
            let (name, rest) = e
                .split_once('=')
                .ok_or_else(|| format!("expected NAME=IP[,IP][;IP], found `{e}`"))?;
            let mut seq = Vec::new();
            for answer in rest.split(';') {
                let ips = answer
                    .split(',')
                    .map(|ip| {
                        ip.trim()
                            .parse::<IpAddr>()
                            .map_err(|_| format!("`{ip}` is not an IP address"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                seq.push(ips);
            }
            answers.insert(name.to_ascii_lowercase(), (0, seq));
        }
        Ok(StaticResolver {
            answers: Mutex::new(answers),
            fallback,
        })
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<io::Result<Vec<IpAddr>>> {
        let fixed = self.answers.lock().ok().and_then(|mut m| {
            let (used, seq) = m.get_mut(host)?;
            let answer = seq.get(*used).or(seq.last()).cloned();
            *used += 1;
            answer
        });
        match fixed {
            Some(ips) => Box::pin(async move { Ok(ips) }),
            None => self.fallback.resolve(host, port),
        }
    }
}

/// One granted `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGrant {
    pub https: bool,
    /// A name, `*.suffix`, or an IP address.
    pub host: String,
    pub port: Option<u16>,
}

impl std::fmt::Display for HostGrant {
    /// The grant as a manifest writes it: `scheme://host[:port]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => write!(f, "{scheme}://{host}:{p}"),
            None => write!(f, "{scheme}://{host}"),
        }
    }
}

impl HostGrant {
    fn port(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }

    fn matches_host(&self, host: &str) -> bool {
        if let Some(suffix) = self.host.strip_prefix("*.") {
            return host
                .strip_suffix(suffix)
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty());
        }
        match (parse_numeric_host(&self.host), parse_numeric_host(host)) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.host == host,
            _ => false,
        }
    }

    /// The exact address this grant names, if it names one.
    fn exact_ip(&self) -> Option<IpAddr> {
        parse_numeric_host(&self.host)
    }
}

/// The policy engine's say on an outbound request (grants as permits, guardrails as
/// forbids). Called with the canonical host: lower case, or an IP address's canonical text.
pub trait EgressAuthorizer: Send + Sync {
    fn may_request(&self, function: &str, https: bool, host: &str, port: u16) -> bool;
}

/// Records each egress decision (allowed uses are aggregated; denials are security events).
pub trait EgressObserver: Send + Sync {
    /// `granted` is the grant that allowed the request (as the manifest wrote it, so a
    /// bounded label), `None` when it was refused for `reason`.
    fn decided(&self, function: &str, target: &str, granted: Option<&str>, reason: &str);
}

/// A function's egress grants and the node-wide guard settings.
pub struct EgressPolicy {
    pub function: String,
    pub grants: Vec<HostGrant>,
    pub resolver: Arc<dyn Resolver>,
    /// For the whole outbound request: connect, TLS, and the response head.
    pub timeout: Duration,
    /// Concurrent outbound requests of this function.
    pub slots: Arc<Semaphore>,
    /// The node's own listeners: never reachable, whatever is granted.
    pub listeners: Vec<SocketAddr>,
    pub observer: Arc<dyn EgressObserver>,
    /// Judged after the grant matches; a forbid here refuses what a grant allows.
    pub authorizer: Option<Arc<dyn EgressAuthorizer>>,
    /// Told which grant each allowed request used (for `moat iam review`).
    pub usage: Option<Arc<dyn crate::config::UsageObserver>>,
    /// Data-loss prevention on what the function sends out: URL, headers and body.
    pub dlp: Option<EgressDlp>,
}

/// Told about each finding on a function's outbound requests.
pub type FindingReport = Arc<dyn Fn(moat_dlp::Channel, &moat_dlp::Finding) + Send + Sync>;

/// What a function's outbound requests are scanned for, and what a finding does: `block`
/// refuses the request (a finding in the body aborts it before the matched bytes are sent),
/// `redact` masks, `alert` passes. Findings go to `report` (channel and detector only).
///
/// A body sent with a `content-encoding` is decoded (gzip, deflate, br, stacked; at most
/// [`moat_dlp::decode::DEFAULT_DECODED_LIMIT`] decoded bytes) and the decoded bytes judged:
/// an unknown coding refuses the request, a bomb or corrupt data aborts it in every mode;
/// `block` and `alert` send the compressed bytes as written (in `block`, each chunk only
/// once what it decodes to is judged), `redact` sends the body decoded and masked, without
/// `content-encoding`.
#[derive(Clone)]
pub struct EgressDlp {
    pub scanner: Arc<moat_dlp::Scanner>,
    pub mode: moat_dlp::Mode,
    pub report: FindingReport,
}

impl EgressDlp {
    /// Judges the URL and headers; in redact mode masks them in place.
    fn head(&self, request: &mut http::Request<WasiBody>) -> Result<(), Denied> {
        use moat_dlp::{Channel, Mode};
        let url = request.uri().to_string();
        let findings = self.scanner.scan(url.as_bytes());
        for f in &findings {
            (self.report)(Channel::EgressUrl, f);
        }
        if !findings.is_empty() {
            match self.mode {
                Mode::Block => {
                    return Err(Denied(
                        "data-loss prevention: the URL holds a finding".into(),
                    ));
                }
                Mode::Redact => {
                    let (masked, _) = self.scanner.redact(url.as_bytes());
                    let masked = String::from_utf8_lossy(&masked).into_owned();
                    *request.uri_mut() = masked.parse().map_err(|_| {
                        Denied("data-loss prevention: the masked URL is invalid".into())
                    })?;
                }
                Mode::Alert => {}
            }
        }
        for value in request.headers_mut().values_mut() {
            let findings = self.scanner.scan(value.as_bytes());
            if findings.is_empty() {
                continue;
            }
            for f in &findings {
                (self.report)(Channel::EgressHeader, f);
            }
            match self.mode {
                Mode::Block => {
                    return Err(Denied(
                        "data-loss prevention: a header holds a finding".into(),
                    ));
                }
                Mode::Redact => {
                    let (masked, _) = self.scanner.redact(value.as_bytes());
                    *value = http::HeaderValue::from_bytes(&masked)
                        .unwrap_or_else(|_| http::HeaderValue::from_static(""));
                }
                Mode::Alert => {}
            }
        }
        // After the values are judged, so a finding in the header itself is reported.
        let mut codings = Vec::new();
        for value in request.headers().get_all(http::header::CONTENT_ENCODING) {
            codings.extend(
                moat_dlp::decode::parse_content_encoding(value.as_bytes())
                    .map_err(|e| Denied(format!("data-loss prevention: {e}")))?,
            );
        }
        if !codings.is_empty() && self.mode == Mode::Redact {
            // The body goes out decoded and masked (`body`): say so.
            request.headers_mut().remove(http::header::CONTENT_ENCODING);
            request.headers_mut().remove(http::header::CONTENT_LENGTH);
        }
        Ok(())
    }

    /// Wraps the request body so it streams through the scanner (decoded first, for the
    /// `codings` it was sent with).
    fn body(&self, body: WasiBody, codings: &[moat_dlp::decode::Coding]) -> WasiBody {
        use http_body_util::BodyExt;
        if !codings.is_empty() {
            return DecodedBody {
                inner: body,
                judged: moat_dlp::DecodedStream::new(
                    &self.scanner,
                    codings,
                    moat_dlp::decode::DEFAULT_DECODED_LIMIT,
                    self.mode,
                ),
                dlp: self.clone(),
                done: false,
            }
            .boxed_unsync();
        }
        ScannedBody {
            inner: body,
            scan: self.scanner.stream(),
            dlp: self.clone(),
            done: false,
        }
        .boxed_unsync()
    }
}

/// An outbound body sent compressed, judged decoded.
struct DecodedBody {
    inner: WasiBody,
    judged: moat_dlp::DecodedStream,
    dlp: EgressDlp,
    done: bool,
}

impl hyper::body::Body for DecodedBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Error>>> {
        use moat_dlp::{Channel, Mode};
        use std::task::Poll;
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let step = match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.judged.feed(&data),
                    Err(_) => continue, // trailers are not forwarded
                },
                Poll::Ready(None) => {
                    self.done = true;
                    self.judged.finish()
                }
            };
            let step = match step {
                Ok(step) => step,
                Err(e) => {
                    // A bomb, corrupt data, or a body cut short: it cannot be judged.
                    tracing::warn!("outbound request body refused by data-loss prevention: {e}");
                    self.done = true;
                    return Poll::Ready(Some(Err(Error::HttpRequestDenied)));
                }
            };
            for f in &step.findings {
                (self.dlp.report)(Channel::EgressBody, f);
            }
            if self.dlp.mode == Mode::Block && !step.findings.is_empty() {
                self.done = true;
                // The chunks carrying the match were never released; the request is aborted.
                return Poll::Ready(Some(Err(Error::HttpRequestDenied)));
            }
            if step.bytes.is_empty() {
                continue;
            }
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(step.bytes.into()))));
        }
    }
}

struct ScannedBody {
    inner: WasiBody,
    scan: moat_dlp::StreamScanner,
    dlp: EgressDlp,
    done: bool,
}

impl hyper::body::Body for ScannedBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Error>>> {
        use moat_dlp::{Channel, Mode};
        use std::task::Poll;
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let released = match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if self.dlp.mode == Mode::Alert => {
                        for f in self.scan.feed(&data) {
                            (self.dlp.report)(Channel::EgressBody, &f);
                        }
                        return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
                    }
                    Ok(data) => self.scan.feed_release(&data),
                    Err(_) => continue, // trailers are not forwarded
                },
                Poll::Ready(None) => {
                    self.done = true;
                    if self.dlp.mode == Mode::Alert {
                        for f in self.scan.finish() {
                            (self.dlp.report)(Channel::EgressBody, &f);
                        }
                        return Poll::Ready(None);
                    }
                    self.scan.finish_release()
                }
            };
            for f in &released.findings {
                (self.dlp.report)(Channel::EgressBody, f);
            }
            if self.dlp.mode == Mode::Block && !released.findings.is_empty() {
                self.done = true;
                // The matched bytes were never released; the request is aborted.
                return Poll::Ready(Some(Err(Error::HttpRequestDenied)));
            }
            if released.bytes.is_empty() {
                if self.done {
                    return Poll::Ready(None);
                }
                continue;
            }
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(released.bytes.into()))));
        }
    }
}

/// Why a request was refused, for the function's log and the audit event. The guest sees
/// only `HTTP-request-denied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl EgressPolicy {
    /// Decides where a request may connect: the checked address, or why not.
    pub async fn check(&self, uri: &http::Uri) -> Result<SocketAddr, Denied> {
        self.check_grant(uri).await.map(|(addr, _)| addr)
    }

    /// Like [`EgressPolicy::check`], also returning the grant that allowed the request.
    async fn check_grant(&self, uri: &http::Uri) -> Result<(SocketAddr, &HostGrant), Denied> {
        let deny = |why: String| Err(Denied(why));
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => return deny(format!("scheme `{}` is not allowed", other.unwrap_or(""))),
        };
        let Some(host) = uri.host() else {
            return deny("the URL has no host".into());
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() || host.contains('%') {
            return deny(format!("host `{host}` is not allowed"));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let scheme = if https { "https" } else { "http" };
        let Some(grant) = self
            .grants
            .iter()
            .find(|g| g.https == https && g.port() == port && g.matches_host(&host))
        else {
            return deny(format!("no grant for {scheme}://{host}:{port}"));
        };
        if let Some(authorizer) = &self.authorizer {
            let canonical_host = parse_numeric_host(&host)
                .map(|ip| ip.to_string())
                .unwrap_or_else(|| host.clone());
            if !authorizer.may_request(&self.function, https, &canonical_host, port) {
                return deny(format!("{scheme}://{host}:{port} is forbidden by policy"));
            }
        }
        let addresses = match parse_numeric_host(&host) {
            Some(ip) => vec![ip],
            None => {
                match tokio::time::timeout(self.timeout, self.resolver.resolve(&host, port)).await {
                    Ok(Ok(ips)) if !ips.is_empty() => ips,
                    Ok(Ok(_)) | Ok(Err(_)) => return deny(format!("`{host}` does not resolve")),
                    Err(_) => return deny(format!("resolving `{host}` timed out")),
                }
            }
        };
        // Every address must pass, so a name cannot hide one bad answer among good ones.
        for ip in &addresses {
            let ip = canonical(*ip);
            if self.is_listener(ip, port) {
                return deny(format!("{ip}:{port} is this node's own listener"));
            }
            if let Some(kind) = refused_kind(ip)
                && grant.exact_ip().map(canonical) != Some(ip)
            {
                return deny(format!("`{host}` resolves to {ip} ({kind})"));
            }
        }
        Ok((SocketAddr::new(canonical(addresses[0]), port), grant))
    }

    fn is_listener(&self, ip: IpAddr, port: u16) -> bool {
        self.listeners.iter().any(|l| {
            l.port() == port
                && (canonical(l.ip()) == ip
                    || (l.ip().is_unspecified() && refused_kind(ip).is_some()))
        })
    }

    /// Sends a request the guard allowed, to the address it checked.
    pub async fn send(
        self: Arc<Self>,
        mut request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let target = format!(
            "{}://{}",
            request.uri().scheme_str().unwrap_or(""),
            request.uri().authority().map(|a| a.as_str()).unwrap_or("")
        );
        let (addr, grant) = match self.check_grant(request.uri()).await {
            Ok((addr, grant)) => {
                let grant = grant.to_string();
                if let Some(usage) = &self.usage {
                    usage.used(&self.function, "http:request", &grant);
                }
                (addr, grant)
            }
            Err(Denied(why)) => {
                self.observer.decided(&self.function, &target, None, &why);
                return Err(Error::HttpRequestDenied);
            }
        };
        if let Some(dlp) = &self.dlp {
            // Read before `head`, which drops the header in redact mode (the body then
            // goes out decoded).
            let codings: Vec<moat_dlp::decode::Coding> = request
                .headers()
                .get_all(http::header::CONTENT_ENCODING)
                .iter()
                .filter_map(|v| moat_dlp::decode::parse_content_encoding(v.as_bytes()).ok())
                .flatten()
                .collect();
            if let Err(Denied(why)) = dlp.head(&mut request) {
                self.observer.decided(&self.function, &target, None, &why);
                return Err(Error::HttpRequestDenied);
            }
            let body = std::mem::take(request.body_mut());
            *request.body_mut() = dlp.body(body, &codings);
        }
        let Ok(_slot) =
            tokio::time::timeout(self.timeout, Arc::clone(&self.slots).acquire_owned()).await
        else {
            self.observer.decided(
                &self.function,
                &target,
                None,
                "too many concurrent outbound requests",
            );
            return Err(Error::ConnectionLimitReached);
        };
        self.observer
            .decided(&self.function, &target, Some(&grant), "granted");
        let https = request.uri().scheme_str() == Some("https");
        let host = request
            .uri()
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
        if let Ok(v) = http::HeaderValue::from_str(&authority) {
            request.headers_mut().insert(http::header::HOST, v);
        }
        let exchange = async move {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(Error::Connect)?;
            let io: Box<dyn Io> = if https {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.into(),
                };
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = rustls::pki_types::ServerName::try_from(host)
                    .map_err(|_| Error::HttpRequestUriInvalid)?;
                let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, tcp)
                    .await
                    .map_err(Error::Tls)?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(conn);
            let response = sender.send_request(request).await?;
            Ok::<_, Error>(response.map(|b| b.map_err(Error::from).boxed_unsync()))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::ConnectionTimeout),
        }
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoObserver;
    impl EgressObserver for NoObserver {
        fn decided(&self, _: &str, _: &str, _: Option<&str>, _: &str) {}
    }

    fn policy(grants: &[&str], answers: &[&str]) -> EgressPolicy {
        let answers: Vec<String> = answers.iter().map(|s| s.to_string()).collect();
        EgressPolicy {
            function: "f".into(),
            grants: grants
                .iter()
                .map(|g| {
                    let (scheme, rest) = g.split_once("://").unwrap();
                    let (host, port) = match rest.rsplit_once(':') {
                        Some((h, p)) if !h.ends_with(':') && !rest.starts_with('[') => {
                            (h.to_string(), Some(p.parse().unwrap()))
                        }
                        _ => (
                            rest.trim_start_matches('[')
                                .trim_end_matches(']')
                                .to_string(),
                            None,
                        ),
                    };
                    HostGrant {
                        https: scheme == "https",
                        host,
                        port,
                    }
                })
                .collect(),
            resolver: Arc::new(StaticResolver::parse(&answers, Arc::new(SystemResolver)).unwrap()),
            timeout: Duration::from_secs(2),
            slots: Arc::new(Semaphore::new(4)),
            listeners: vec!["127.0.0.1:8081".parse().unwrap()],
            observer: Arc::new(NoObserver),
            authorizer: None,
            usage: None,
            dlp: None,
        }
    }

    async fn check(p: &EgressPolicy, url: &str) -> Result<SocketAddr, Denied> {
        p.check(&url.parse().unwrap()).await
    }

    #[tokio::test]
    async fn grants_match_scheme_host_and_port() {
        let p = policy(
            &[
                "https://api.example.com",
                "https://*.svc.example.com:8443",
                "http://plain.example.com",
            ],
            &[
                "api.example.com=93.184.216.34",
                "a.svc.example.com=93.184.216.35",
                "plain.example.com=93.184.216.36",
            ],
        );
        assert!(check(&p, "https://api.example.com/x").await.is_ok());
        assert!(check(&p, "https://API.example.com/x").await.is_ok());
        assert!(
            check(&p, "http://api.example.com/x").await.is_err(),
            "plain http not granted"
        );
        assert!(
            check(&p, "https://api.example.com:444/").await.is_err(),
            "other port"
        );
        assert!(check(&p, "https://evil.com/").await.is_err());
        assert!(
            check(&p, "https://api.example.com.evil.com/")
                .await
                .is_err()
        );
        assert!(check(&p, "https://a.svc.example.com:8443/").await.is_ok());
        assert!(
            check(&p, "https://svc.example.com:8443/").await.is_err(),
            "the wildcard needs a label"
        );
        assert!(check(&p, "http://plain.example.com/").await.is_ok());
        assert!(check(&p, "ftp://api.example.com/").await.is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
        ] {
            let p = policy(
                &["https://api.example.com"],
                &[&format!("api.example.com={ip}")],
            );
            let e = check(&p, "https://api.example.com/").await.unwrap_err();
            assert!(e.0.contains("resolves to"), "{ip}: {e:?}");
        }
        // One bad answer among good ones is enough.
        let p = policy(
            &["https://api.example.com"],
            &["api.example.com=93.184.216.34,10.1.1.1"],
        );
        assert!(check(&p, "https://api.example.com/").await.is_err());
    }

    #[tokio::test]
    async fn numeric_hosts_are_normalized_and_need_an_exact_grant() {
        let p = policy(&["http://10.0.0.1"], &[]);
        for spelling in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(check(&p, spelling).await.is_err(), "{spelling}");
        }
        assert!(
            check(&p, "http://10.0.0.1/").await.is_ok(),
            "an exact grant"
        );
        assert!(
            check(&p, "http://012.0.0.1/").await.is_ok(),
            "the same address, spelled in octal"
        );
        assert!(check(&p, "http://10.0.0.2/").await.is_err());
    }

    #[tokio::test]
    async fn the_nodes_own_listeners_are_never_reachable() {
        let p = policy(&["http://127.0.0.1:8081", "http://127.0.0.1:9000"], &[]);
        assert!(
            check(&p, "http://127.0.0.1:8081/v1/functions")
                .await
                .is_err()
        );
        assert!(check(&p, "http://127.0.0.1:9000/").await.is_ok());
    }

    #[tokio::test]
    async fn one_lookup_decides_so_rebinding_cannot_switch_the_target() {
        let p = policy(
            &["https://rebind.example.com"],
            &["rebind.example.com=93.184.216.34;127.0.0.1"],
        );
        let addr = check(&p, "https://rebind.example.com/").await.unwrap();
        assert_eq!(addr.ip(), "93.184.216.34".parse::<IpAddr>().unwrap());
        // A second request gets the second answer, and is judged on it.
        assert!(check(&p, "https://rebind.example.com/").await.is_err());
    }
}
