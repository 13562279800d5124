//! The node's own outbound HTTP (alert webhooks): one request per connection, `https://`
//! verified against the public web roots, a 10 s limit. Functions never use this; their
//! egress goes through `moat-runtime`'s guarded path.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Sends `req` and returns the response status (the body is read and dropped).
pub async fn request(mut req: http::Request<Full<Bytes>>) -> anyhow::Result<http::StatusCode> {
    tokio::time::timeout(Duration::from_secs(10), async move {
        let uri = req.uri().clone();
        let host = uri
            .host()
            .context("no host in the URL")?
            .trim_matches(['[', ']'])
            .to_string();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if let Some(authority) = uri.authority() {
            req.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_str(authority.as_str())?,
            );
        }
        *req.uri_mut() = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let status = if https {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.clone())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await?;
            send(hyper_util::rt::TokioIo::new(tls), req).await?
        } else {
            send(hyper_util::rt::TokioIo::new(tcp), req).await?
        };
        Ok(status)
    })
    .await
    .context("timed out")?
}

async fn send<I>(io: I, req: http::Request<Full<Bytes>>) -> anyhow::Result<http::StatusCode>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender.send_request(req).await?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    Ok(status)
}
