//! The state each sandbox gets: WASI with everything denied, wasi:http without egress,
//! bounded log capture, and memory limits.
//!
//! Deny-by-default, as wasmtime's `WasiCtxBuilder` documents its own defaults:
//! - no preopened directories (every filesystem call fails: there is nothing to open);
//! - empty environment, no arguments, closed stdin;
//! - TCP, UDP and name lookup off, and every socket address refused;
//! - `wasi:http/outgoing-handler` refuses every request unless the function has an egress
//!   policy (`permissions.outbound_hosts`), which then checks each one ([`crate::egress`]);
//! - stdout and stderr go to bounded in-memory buffers, never to the host terminal.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::config::ConfigView;
use crate::egress::EgressPolicy;

/// `T` of every `Store<T>`: one per request, dropped with the instance.
pub struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Egress,
    /// The `[config]` values and granted secrets: all `wasi:config/store` can see.
    config: ConfigView,
    /// Key-value buckets (`permissions.kv`), judged per call.
    pub(crate) kv: Option<Arc<crate::kv::KvAccess>>,
    pub(crate) limits: Limits,
}

impl Host {
    pub(crate) fn new(
        stdout: LogBuffer,
        stderr: LogBuffer,
        memory_bytes: usize,
        egress: Option<Arc<EgressPolicy>>,
        config: ConfigView,
        kv: Option<Arc<crate::kv::KvAccess>>,
    ) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(stdout)
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: Egress(egress),
            config,
            kv,
            limits: Limits {
                memory_bytes,
                memory_used: 0,
                table_elements: 1 << 20,
                hit: false,
            },
        }
    }
}

impl Host {
    pub(crate) fn config_view(&self) -> &ConfigView {
        &self.config
    }

    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Memory and table caps for one instance, remembering whether the guest ran into them.
pub(crate) struct Limits {
    /// Cap on all linear memories of the instance together.
    memory_bytes: usize,
    /// Bytes of linear memory the instance holds now, across all its memories.
    memory_used: usize,
    table_elements: usize,
    hit: bool,
}

impl Limits {
    pub(crate) fn hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Refusing makes `memory.grow` return -1; the guest's allocator then fails, which
        // for ordinary toolchains is a trap. Either way the host's memory stays bounded.
        let total = self.memory_used - current.min(self.memory_used) + desired;
        let allowed = total <= self.memory_bytes;
        if allowed {
            self.memory_used = total;
        }
        self.hit |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.table_elements;
        self.hit |= !allowed;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        16
    }
}

/// wasi:http hooks: every outgoing request goes through the function's egress policy, and
/// a function without one (no `outbound_hosts`) is refused outright.
struct Egress(Option<Arc<EgressPolicy>>);

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
)>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let policy = self.0.clone();
        Box::new(async move {
            let Some(policy) = policy else {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            };
            let response = policy.send(request).await?;
            let done: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// A bounded capture of one output stream of one invocation. Writes past the bound are
/// counted and dropped; the guest never blocks or fails on logging.
#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<LogInner>>,
}

struct LogInner {
    buf: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl LogBuffer {
    pub fn new(cap: usize) -> Self {
        LogBuffer {
            inner: Arc::new(Mutex::new(LogInner {
                buf: Vec::new(),
                cap,
                dropped: 0,
            })),
        }
    }

    fn append(&self, bytes: &[u8]) {
        if let Ok(mut inner) = self.inner.lock() {
            let room = inner.cap.saturating_sub(inner.buf.len());
            let take = room.min(bytes.len());
            inner.buf.extend_from_slice(&bytes[..take]);
            inner.dropped += (bytes.len() - take) as u64;
        }
    }

    /// The captured bytes and the number of bytes dropped.
    pub fn take(&self) -> (Vec<u8>, u64) {
        match self.inner.lock() {
            Ok(mut inner) => (std::mem::take(&mut inner.buf), inner.dropped),
            Err(_) => (Vec::new(), 0),
        }
    }
}

impl IsTerminal for LogBuffer {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogBuffer {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogBuffer {
    async fn ready(&mut self) {}
}

impl OutputStream for LogBuffer {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_buffer_is_bounded_and_counts_the_rest() {
        let mut log = LogBuffer::new(8);
        log.write(Bytes::from_static(b"hello ")).unwrap();
        log.write(Bytes::from_static(b"world")).unwrap();
        assert_eq!(log.take(), (b"hello wo".to_vec(), 3));
    }
}
