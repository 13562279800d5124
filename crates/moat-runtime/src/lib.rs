//! The wasmtime host: where untrusted code runs.
//!
//! - [`inspect`] looks at a component's structure before anything compiles it.
//! - [`compile`] compiles it in a jailed child process (`moat __compile`).
//! - [`artifact`] seals compiled code with a MAC and holds Moat's only `unsafe` block.
//! - [`Runtime::prepare`] type-checks a component against the linker once per deploy
//!   (`InstancePre`), and [`Runtime::invoke`] runs each request in a **fresh instance**
//!   from the pooling allocator, under a wall-clock deadline and memory limits.
//!
//! Architecture invariant: this crate never reads manifests, tokens or the store; it gets
//! validated bytes and limits, and reports what happened.

pub mod artifact;
pub mod compile;
pub mod config;
pub mod egress;
pub mod engine;
mod host;
pub mod inspect;
pub mod kv;
pub mod ssrf;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub use engine::PoolSettings;
pub use host::{Host, LogBuffer};

/// A component ready to serve: compiled, linked and type-checked.
pub type Prepared = ProxyPre<Host>;

/// Why a compiled component cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PrepareError(String);

/// Per-invocation limits, resolved from the manifest and the node defaults.
#[derive(Debug, Clone, Copy)]
pub struct InvokeOptions {
    pub timeout: Duration,
    pub memory_bytes: usize,
    /// Bytes of stdout and of stderr kept per invocation.
    pub log_bytes: usize,
}

/// Supplies what a function may read through `wasi:config/store`, fresh for each
/// invocation (so a new secret version is served at once).
pub trait ConfigSource: Send + Sync {
    fn view(&self) -> config::ConfigView;
}

/// What a function has been granted, beyond what every function gets.
#[derive(Clone, Default)]
pub struct Grants {
    /// Outbound HTTP; `None` refuses every outbound request.
    pub egress: Option<Arc<egress::EgressPolicy>>,
    /// `wasi:config` values; `None` is an empty store.
    pub config: Option<Arc<dyn ConfigSource>>,
    /// Key-value buckets; `None` opens none.
    pub kv: Option<Arc<kv::KvAccess>>,
}

/// How an invocation ended, for logs and metrics. Never shown to a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// The guest trapped or panicked; the text is for the function's log only.
    Trapped(String),
    TimedOut,
}

/// What the runtime reports when an invocation has finished (body included).
#[derive(Debug)]
pub struct Report {
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub dropped_log_bytes: u64,
    pub instantiate: Duration,
    pub total: Duration,
    /// The guest asked for more memory than its `memory_mb` allows.
    pub memory_limit_hit: bool,
}

/// Why there is no response to send. Maps to SPEC §4 codes in the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// Trap, panic, or the guest set an error response: `500 function_failed`.
    Failed,
    /// `timeout_ms` passed before the response started: `504 timeout`.
    TimedOut,
    /// Every instance slot of the node is in use: `503 overloaded`.
    Overloaded,
    /// The host could not even set up the request: `500`.
    Internal(String),
}

/// The engine, the linker and the epoch ticker of a node.
pub struct Runtime {
    engine: Engine,
    /// One per pool slot, so a full pool refuses with `Overloaded` instead of failing to
    /// instantiate.
    slots: Arc<tokio::sync::Semaphore>,
    linker: Arc<Linker<Host>>,
    _ticker: engine::EpochTicker,
}

impl Runtime {
    pub fn new(pool: &PoolSettings) -> anyhow::Result<Self> {
        let engine = engine::serving_engine(pool).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut linker = Linker::<Host>::new(&engine);
        // All of WASI 0.2, because ordinary toolchains import it; `Host` denies what is
        // not granted at call time.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        // Capabilities: each checks its grant when called.
        config::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        kv::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let ticker = engine::EpochTicker::start(&engine)?;
        Ok(Runtime {
            slots: Arc::new(tokio::sync::Semaphore::new(pool.max_instances as usize)),
            engine,
            linker: Arc::new(linker),
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_id(&self) -> String {
        engine::engine_id(&self.engine)
    }

    /// Links and type-checks a component once, so each request only instantiates.
    pub fn prepare(&self, component: &Component) -> Result<Prepared, PrepareError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| PrepareError(first_line(&e)))?;
        ProxyPre::new(pre).map_err(|e| {
            PrepareError(format!(
                "the component does not export a usable `wasi:http/incoming-handler`: {}",
                first_line(&e)
            ))
        })
    }

    /// Runs one request in a fresh instance.
    ///
    /// Returns as soon as the guest has set its response (or failed); the guest keeps
    /// running while the body streams, and `report` is called once everything has ended.
    /// The deadline covers all of it: a guest that computes is stopped at the next epoch
    /// tick, one that waits in a host call is stopped when the timer fires, and a body
    /// still streaming at the deadline is cut off.
    pub async fn invoke<B>(
        &self,
        prepared: &Prepared,
        request: hyper::Request<B>,
        options: InvokeOptions,
        grants: &Grants,
        report: impl FnOnce(Report) + Send + 'static,
    ) -> Result<hyper::Response<HyperOutgoingBody>, InvokeError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        use http_body_util::BodyExt;
        // The caller's body failing (cut off, too large, too slow) is, to the guest, a broken
        // connection; the gateway decides what the caller is told.
        let request =
            request.map(|body| body.map_err(|_| wasmtime_wasi_http::Error::ConnectionTerminated));
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            return Err(InvokeError::Overloaded);
        };
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + options.timeout;
        let (stdout, stderr) = (
            LogBuffer::new(options.log_bytes),
            LogBuffer::new(options.log_bytes),
        );
        let config = match &grants.config {
            Some(source) => source.view(),
            None => Default::default(),
        };
        let host = Host::new(
            stdout.clone(),
            stderr.clone(),
            options.memory_bytes,
            grants.egress.clone(),
            config,
            grants.kv.clone(),
        );
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));

        let (response_tx, response_rx) = tokio::sync::oneshot::channel();
        let internal = |e: wasmtime::Error| InvokeError::Internal(first_line(&e));
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(internal)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(response_tx)
            .map_err(internal)?;
        let prepared = prepared.clone();
        let (outcome_tx, outcome_rx) = tokio::sync::oneshot::channel();

        tokio::spawn(async move {
            let mut instantiate = Duration::ZERO;
            let run = async {
                let t = Instant::now();
                let proxy = prepared.instantiate_async(&mut store).await?;
                instantiate = t.elapsed();
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            let outcome = match tokio::time::timeout_at(deadline, run).await {
                Ok(Ok(())) => Outcome::Completed,
                Ok(Err(e)) => Outcome::Trapped(format!("{e:#}")),
                Err(_) => Outcome::TimedOut,
            };
            // Dropping the store drops the instance and every host resource it held,
            // including an in-flight response body, which the gateway then cuts off.
            let memory_limit_hit = store.data().limits.hit();
            drop(store);
            drop(slot);
            let _ = outcome_tx.send(outcome.clone());
            let (out, out_dropped) = stdout.take();
            let (err, err_dropped) = stderr.take();
            report(Report {
                outcome,
                stdout: out,
                stderr: err,
                dropped_log_bytes: out_dropped + err_dropped,
                instantiate,
                total: started.elapsed(),
                memory_limit_hit,
            });
        });

        match response_rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_guest_error_code)) => Err(InvokeError::Failed),
            Err(_) => match outcome_rx.await {
                Ok(Outcome::TimedOut) => Err(InvokeError::TimedOut),
                _ => Err(InvokeError::Failed),
            },
        }
    }
}

fn first_line(e: &wasmtime::Error) -> String {
    let s = format!("{e:#}");
    s.lines().next().unwrap_or_default().to_string()
}
