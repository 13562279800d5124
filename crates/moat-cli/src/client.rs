//! A small HTTP client for the admin API and the gateway.

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
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
        if url.starts_with("https://") {
            bail!("https URLs are not supported by this build of the CLI yet: `{url}`");
        }
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
        let resp =
            self.client.request(req).await.map_err(|e| {
                anyhow!("cannot reach `{url}`: {e}; is the node running (`moat up`)?")
            })?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
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
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
        let code = value["error"]["code"].as_str().unwrap_or("error");
        if reply.status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            bail!(
                "{message} ({code}); pass --token, set MOAT_TOKEN, or point --data-dir at the node's data dir"
            );
        }
        bail!("{message} ({code})")
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
