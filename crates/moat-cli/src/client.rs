//! A small HTTP client for the admin API and the gateway.

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A response, fully read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new() -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        headers: &[(String, String)],
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<Reply> {
        let resp = self.open(method, url, token, headers, body).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and returns once the response head has come; the body is read as
    /// the caller goes.
    pub async fn open(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        headers: &[(String, String)],
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<hyper::Response<Incoming>> {
        let mut req = Request::builder().method(method).uri(url);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(body)).context("invalid request")?;
        if url.starts_with("https://") {
            https_request(req).await.map_err(|e| {
                anyhow!("cannot reach `{url}`: {e:#}; is the node running (`moat up`)?")
            })
        } else {
            self.client
                .request(req)
                .await
                .map_err(|e| anyhow!("cannot reach `{url}`: {e}; is the node running (`moat up`)?"))
        }
    }
}

/// What `https://` URLs are checked against: `--ca-cert`, `--tls-pin`, else the public
/// web roots.
static TRUST: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();

use std::sync::Arc;

pub fn set_trust(ca_cert: Option<std::path::PathBuf>, pin: Option<String>) -> anyhow::Result<()> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?;
    let config = match (ca_cert, pin) {
        (_, Some(pin)) => {
            let pin = hex::decode(pin.trim().replace(':', ""))
                .ok()
                .filter(|p| p.len() == 32)
                .context("--tls-pin must be a SHA-256 fingerprint: 64 hex digits")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider }))
                .with_no_client_auth()
        }
        (Some(path), None) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&path)
                .with_context(|| format!("cannot read `{}`", path.display()))?
            {
                roots
                    .add(cert.with_context(|| format!("`{}`", path.display()))?)
                    .with_context(|| {
                        format!("`{}` holds an unusable certificate", path.display())
                    })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (None, None) => {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    let _ = TRUST.set(Arc::new(config));
    Ok(())
}

/// Accepts exactly one certificate, by the SHA-256 of its DER, and checks the handshake
/// signature with it (so the peer must hold its key).
#[derive(Debug)]
struct Pinned {
    pin: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        if sha2::Sha256::digest(end_entity.as_ref()).as_slice() == self.pin.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate does not match --tls-pin".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One request over a fresh TLS connection (the CLI makes few requests).
async fn https_request(mut req: Request<Full<Bytes>>) -> anyhow::Result<hyper::Response<Incoming>> {
    let uri = req.uri().clone();
    // HTTP/1.1 on one connection: origin-form target and a Host header.
    if let Some(authority) = uri.authority() {
        let host = header::HeaderValue::from_str(authority.as_str()).context("bad host")?;
        req.headers_mut().insert(header::HOST, host);
    }
    *req.uri_mut() = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .context("bad path")?;
    let host = uri.host().context("no host in the URL")?.to_string();
    let port = uri.port_u16().unwrap_or(443);
    let config = match TRUST.get() {
        Some(c) => Arc::clone(c),
        None => {
            set_trust(None, None)?;
            Arc::clone(TRUST.get().context("TLS trust not set")?)
        }
    };
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .context("not a valid TLS server name")?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .context("TLS handshake failed")?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(req).await?)
}

/// The admin API of one node, with its token.
pub struct Admin {
    http: Http,
    base: String,
    token: Option<String>,
}

impl Admin {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Admin {
            http: Http::new(),
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// Calls the admin API; a non-2xx answer becomes an error carrying the API's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let reply = self
            .http
            .send(method, &url, self.token.as_deref(), &[], body)
            .await?;
        let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if reply.status.is_success() {
            return Ok(value);
        }
        Err(self.refusal(reply.status, &reply.body))
    }

    /// A `GET` whose answer is a stream: returns its body once the node has accepted the
    /// request; a non-2xx answer becomes an error carrying the API's message.
    pub async fn stream(&self, path: &str) -> anyhow::Result<Incoming> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .open(Method::GET, &url, self.token.as_deref(), &[], None)
            .await?;
        if resp.status().is_success() {
            return Ok(resp.into_body());
        }
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Err(self.refusal(status, &body))
    }

    /// The error for a non-2xx answer: the API's message and code.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> anyhow::Error {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        let code = value["error"]["code"].as_str().unwrap_or("error");
        if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            return anyhow!(
                "{message} ({code}); pass --token, set MOAT_TOKEN, or point --data-dir at the node's data dir"
            );
        }
        anyhow!("{message} ({code})")
    }

    pub async fn json(&self, method: Method, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(
            method,
            path,
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await
    }
}
