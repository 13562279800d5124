//! `moat-bench-baseline`: the "bare" baseline of `bench/run.sh`.
//!
//! Serves ONE wasi:http component with plain `wasmtime-wasi-http` (hyper HTTP/1 server,
//! `ProxyPre`, a fresh instance per request, default-deny `WasiCtx`), but on **Moat's engine
//! settings**: `moat_runtime::engine::serving_engine` (pooling allocator, copy-on-write
//! images, epoch interruption) with one `EpochTicker`, and every store set to yield at each
//! epoch tick as Moat's runtime does. No routing, no auth, no limits, no logs, no metrics:
//! the difference between this and Moat is what Moat's gateway and bookkeeping cost.
//!
//! Usage: `moat-bench-baseline [--listen ADDR] COMPONENT.wasm` (default `127.0.0.1:0`).
//! Prints `listening on http://ADDR` on stdout once it accepts connections.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

const USAGE: &str = "usage: moat-bench-baseline [--listen ADDR] COMPONENT.wasm";

/// The command line: one component, one address.
struct Args {
    listen: SocketAddr,
    component: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut component = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            let value = args.next().context(USAGE)?;
            listen = value
                .parse()
                .with_context(|| format!("bad --listen address `{value}`"))?;
        } else if let Some(value) = arg.strip_prefix("--listen=") {
            listen = value
                .parse()
                .with_context(|| format!("bad --listen address `{value}`"))?;
        } else if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        } else if arg.starts_with('-') || component.is_some() {
            bail!("unexpected argument `{arg}`\n{USAGE}");
        } else {
            component = Some(arg);
        }
    }
    Ok(Args {
        listen,
        component: component.context(USAGE)?,
    })
}

/// wasmtime's error type is its own; keep its full chain when turning it into anyhow's.
fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow!("{e:#}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let engine =
        moat_runtime::engine::serving_engine(&moat_runtime::PoolSettings::default()).map_err(wt)?;
    let _ticker = moat_runtime::engine::EpochTicker::start(&engine)?;

    let component = Component::from_file(&engine, &args.component)
        .map_err(wt)
        .with_context(|| format!("cannot compile `{}`", args.component))?;
    let mut linker = Linker::<State>::new(&engine);
    // Rust's wasm32-wasip2 std imports wasi:cli and friends, outside wasi:http/proxy.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wt)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wt)?;
    let pre = ProxyPre::new(linker.instantiate_pre(&component).map_err(wt)?).map_err(wt)?;

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
    stdout.flush()?;

    let pre = Arc::new(pre);
    loop {
        let (client, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Running out of file descriptors under load is not a reason to stop.
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let pre = Arc::clone(&pre);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let pre = Arc::clone(&pre);
                async move { handle(&pre, req).await }
            });
            // Connection errors (a client that went away) are not the benchmark's business.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(client), service)
                .await;
        });
    }
}

/// One request, one fresh instance, as in wasmtime-wasi-http's own serving example.
async fn handle(
    pre: &ProxyPre<State>,
    req: hyper::Request<hyper::body::Incoming>,
) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
    let mut store = Store::new(
        pre.engine(),
        State {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        },
    );
    // Like Moat's runtime: a guest that computes yields to tokio at every epoch tick.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));

    let (sender, receiver) = tokio::sync::oneshot::channel();
    let req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    let pre = pre.clone();
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(store, req, out)
            .await
    });

    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(code.into()),
        Err(_) => {
            let e = match task.await {
                Ok(Ok(())) => wasmtime::format_err!("guest never set a response"),
                Ok(Err(e)) => e,
                Err(e) => e.into(),
            };
            Err(e)
        }
    }
}

/// `T` of every store: WASI with wasmtime's defaults (nothing granted) and wasi:http.
struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}
