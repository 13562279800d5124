//! A running node: the data dir, the keys, the admin API and deploys, wired to the store,
//! the runtime and the gateway.
//!
//! [`run`] is `moat up`: lock the data dir, load or create the master key, open and check
//! the store, bootstrap the admin token, load every serving version (from sealed artifacts,
//! never recompiling what is already compiled), then serve until SIGINT/SIGTERM and drain.

mod admin;
mod alerts;
mod audit;
mod dashboard;
mod datadir;
mod decisions;
pub mod defaults;
mod events;
mod export;
mod follow;
mod functions;
mod gauges;
mod histogram;
mod kv;
mod limits_audit;
mod logs;
mod metrics;
mod otlp;
mod outbound;
mod policy;
mod quiet;
mod rotate;
mod secrets;
mod supply;
mod tokens;
mod usage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use moat_gateway::Gateway;
use moat_runtime::artifact::ArtifactStore;
use moat_runtime::compile::CompileLimits;
use moat_runtime::{PoolSettings, Runtime};
use moat_store::{SqliteStore, Store, TokenRecord, now_ms, sha256_hex};
use tokio::net::TcpListener;

pub use datadir::KeySource;

/// Settings of the local process (`moat up` flags). Settings shared by a cluster live in
/// the store instead.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// `sqlite://PATH` or a plain path; default `<data-dir>/moat.db`.
    pub store: Option<String>,
    pub master_key_cmd: Option<String>,
    pub compile_limits: CompileLimits,
    pub pool: PoolSettings,
    /// The `moat` binary, started in compile mode for each compilation.
    pub exe: PathBuf,
    /// How long a caller may take to send a request head, or pause while sending a body.
    pub client_timeout: Duration,
    /// Open connections per listener.
    pub max_connections: usize,
    /// Peers whose `x-forwarded-for` identifies the client (for rate limits).
    pub trusted_proxies: Vec<moat_gateway::limits::IpNet>,
    /// Fixed DNS answers for outbound requests (`NAME=IP[,IP][;IP]`), for tests.
    pub egress_resolve: Vec<String>,
    pub egress_timeout: Duration,
    pub tls: TlsSettings,
    /// OTLP/HTTP collector base URL (`--otlp-endpoint`): traces and function logs go there.
    pub otlp_endpoint: Option<String>,
    /// `--log-export PATH|-`: every stored function log record as a JSON line there too.
    pub log_export: Option<String>,
    /// Benchmarking only (`--telemetry-off`): the gateway reports nothing; see `quiet`.
    pub telemetry_off: bool,
    /// Audit events queued for the writer before overflow (`defaults::AUDIT_QUEUE`).
    pub audit_queue: usize,
}

/// How the listeners speak: HTTPS with given files, HTTPS with a generated certificate, or
/// plain HTTP (which needs `insecure_http` unless both addresses are loopback).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub self_signed: bool,
    pub insecure_http: bool,
}

/// Shared state of a running node.
pub struct Node {
    store: Arc<dyn Store>,
    usage: Arc<usage::Usage>,
    vault: Arc<secrets::Vault>,
    policies: policy::Policies,
    tokens: Arc<tokens::Tokens>,
    functions: functions::Functions,
    metrics: Arc<metrics::Metrics>,
    audit: Arc<audit::Audit>,
    /// Folds floods of refusals into counted records before they reach `audit`.
    limits: Arc<limits_audit::LimitAudit>,
    alerts: Arc<alerts::Alerts>,
    events: Arc<events::Hub>,
    log_feed: Arc<follow::LogFeed>,
    dashboard: dashboard::Dashboard,
    supply: Arc<supply::Supply>,
    keys: rotate::KeyState,
    ready: AtomicBool,
}

/// Runs a node until SIGINT or SIGTERM; returns once in-flight requests have drained.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    // Handlers first: a signal that arrives while starting must drain, not kill.
    let signals = Signals::install()?;
    let _lock = datadir::lock(&config.data_dir)?;
    let dir = &config.data_dir;

    let key_file = dir.join("master.key");
    let source = match (&config.master_key_cmd, std::env::var("MOAT_MASTER_KEY")) {
        (Some(cmd), _) => KeySource::Command(cmd.clone()),
        (None, Ok(v)) if !v.is_empty() => KeySource::Env(v),
        _ => KeySource::File(key_file.clone()),
    };
    let from_file = matches!(source, KeySource::File(_));
    let (mut master, created_key) = datadir::master_key(source)?;
    if created_key {
        println!(
            "moat: created master key {} (mode 0600); back it up: it seals compiled code and checks this store",
            key_file.display()
        );
    }

    let sqlite = open_store(&config)?;
    let store: Arc<dyn Store> = Arc::new(sqlite);
    let check = master.check_value();
    let stored = store.init_meta("master_key_check", &check).await?;
    if stored != check {
        // A rotation that switched the store to the new key and stopped before renaming the
        // new key file over the old one: finish it.
        match rotate::finish_interrupted(dir, &stored, from_file)? {
            Some(next) => master = next,
            None => bail!(
                "the master key does not match this store (its key-check value differs); start with the key this store was created with"
            ),
        }
    }
    // Values at rest (secrets, key-value entries) are sealed under a key derived from the
    // master key (and, while a rotation is unfinished, opened with either key); secrets an
    // older version stored in plaintext are sealed now.
    let next = rotate::pending_key(dir, &*store).await?;
    store.set_keys(rotate::keyring(&master, next.as_ref()))?;
    let data_key = master.derive(rotate::DATA_KEY_PURPOSE);

    let policies = policy::Policies::new()?;
    let guardrails = store.policies().await?;
    policies.write().set_guardrails(guardrails)?;
    let tokens = tokens::Tokens::load(&store, policies.clone()).await?;
    let token_file = dir.join("admin.token");
    if tokens.is_empty() {
        let token = datadir::new_token()?;
        // File first, then the hash: a crash in between leaves no token in the store, so
        // the next start simply makes a new one.
        datadir::write_secret_file(&token_file, token.as_bytes())?;
        store
            .insert_token(TokenRecord {
                id: moat_gateway::new_request_id(),
                name: "bootstrap-admin".into(),
                role: tokens::ADMIN_ROLE.into(),
                hash: sha256_hex(token.as_bytes()),
                created_at_ms: now_ms(),
                expires_at_ms: None,
                revoked: false,
                function: None,
            })
            .await?;
        println!(
            "moat: created admin token in {} (mode 0600; only its hash is stored)",
            token_file.display()
        );
    } else {
        println!("moat: admin token in {}", token_file.display());
    }
    let tokens = Arc::new(tokens::Tokens::load(&store, policies.clone()).await?);

    let runtime = Arc::new(Runtime::new(&config.pool)?);
    let artifacts = ArtifactStore::new(
        dir.join("compiled"),
        master.derive("artifact-mac/v1"),
        runtime.engine_id(),
    );
    drop(master);
    let metrics = Arc::new(metrics::Metrics::default());
    let audit = audit::Audit::start(Arc::clone(&store), dir, config.audit_queue)?;
    let events = Arc::new(events::Hub::default());
    audit.set_events(Arc::clone(&events));
    let log_feed = Arc::new(follow::LogFeed::default());
    let line_export = match &config.log_export {
        Some(target) => Some(Arc::new(export::LineExport::open(target)?)),
        None => None,
    };
    let observer = Arc::new(logs::InvocationLog::start(
        Arc::clone(&store),
        Arc::clone(&metrics),
        Arc::clone(&audit),
        Arc::clone(&log_feed),
        line_export.clone(),
    ));
    let limit_audit = limits_audit::LimitAudit::start(Arc::clone(&audit));
    let otlp = match &config.otlp_endpoint {
        Some(url) => Some(otlp::Exporter::start(url)?),
        None => None,
    };
    audit.set_checkpoint_sinks(audit::CheckpointSinks {
        otlp: otlp.clone(),
        lines: line_export.clone(),
    });
    observer.set_exports(logs::Exports {
        limits: Arc::clone(&limit_audit),
        otlp: otlp.clone(),
    });
    audit.set_metrics(Arc::clone(&metrics));
    let gateway_observer: Arc<dyn moat_gateway::Observer> = if config.telemetry_off {
        println!(
            "moat: telemetry is OFF (--telemetry-off, for benchmarks only): no metrics, function logs, traces, or audit records of limit hits and refused invocations"
        );
        audit.record(moat_telemetry::audit::AuditEvent::new(
            now_ms(),
            moat_telemetry::audit::actor::NODE,
            "node.telemetry_off",
            "gateway",
            moat_telemetry::audit::Outcome::Succeeded,
        ));
        Arc::new(quiet::Quiet)
    } else {
        observer.clone()
    };
    let gateway = Gateway::new(Arc::clone(&runtime), tokens.clone(), gateway_observer);
    metrics.set_sources(gauges::Sources {
        gateway: Arc::downgrade(&gateway),
        compiled: dir.join("compiled"),
        otlp,
        line_export,
        limits: Arc::downgrade(&limit_audit),
    });
    let limits = Arc::clone(&limit_audit);
    let system: Arc<dyn moat_runtime::egress::Resolver> =
        Arc::new(moat_runtime::egress::SystemResolver);
    let resolver: Arc<dyn moat_runtime::egress::Resolver> = if config.egress_resolve.is_empty() {
        system
    } else {
        Arc::new(
            moat_runtime::egress::StaticResolver::parse(&config.egress_resolve, system)
                .map_err(|e| anyhow::anyhow!("--egress-resolve: {e}"))?,
        )
    };
    gateway.set_config(moat_gateway::GatewayConfig {
        body_idle: config.client_timeout,
        trusted_proxies: config.trusted_proxies.clone(),
    });
    let usage = Arc::new(usage::Usage::default());
    usage.start_flushing(Arc::clone(&store));
    let vault = Arc::new(secrets::Vault::default());
    vault.reload(&store).await?;
    let alerts = alerts::Alerts::new(alerts::load_rules(&*store).await?, Arc::clone(&vault))?;
    audit.set_alerts(Arc::clone(&alerts));
    let supply = Arc::new(supply::Supply::load(Arc::clone(&store), Arc::clone(&audit)).await?);
    let functions = functions::Functions::new(
        Arc::clone(&store),
        runtime,
        functions::CompileSetup {
            artifacts,
            limits: config.compile_limits,
            exe: config.exe.clone(),
        },
        Arc::clone(&gateway),
        Arc::clone(&metrics),
        functions::CapabilitySetup {
            egress: functions::EgressSettings {
                resolver,
                timeout: config.egress_timeout,
                listeners: Vec::new(),
                observer,
            },
            vault: Arc::clone(&vault),
            policies: policies.clone(),
            usage: usage.clone(),
            kv_backend: Arc::new(kv::StoreKv(Arc::clone(&store), Arc::clone(&metrics))),
            kv_authorizer: Arc::new(kv::PolicyKv(policies.clone())),
            kv_observer: Arc::new(kv::KvEvents {
                usage: usage.clone(),
                audit: Arc::clone(&audit),
                metrics: Arc::clone(&metrics),
            }),
            audit: Arc::clone(&audit),
        },
    );
    let node = Arc::new(Node {
        store,
        usage,
        vault,
        policies,
        tokens,
        functions,
        metrics,
        audit,
        limits,
        alerts,
        events: Arc::clone(&events),
        log_feed,
        dashboard: dashboard::Dashboard::new(),
        supply,
        keys: rotate::KeyState::new(dir.clone(), from_file.then(|| key_file.clone()), data_key),
        ready: AtomicBool::new(false),
    });

    let tls = tls_setup(&config)?;
    node.dashboard.set_secure(tls.is_some());
    let gateway_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.admin_listen))?;

    node.functions.set_listeners(vec![
        gateway_listener.local_addr()?,
        admin_listener.local_addr()?,
    ]);
    let served = node.functions.refresh_routes().await?;
    node.ready.store(true, Ordering::Release);
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "moat: gateway listening on {scheme}://{}",
        gateway_listener.local_addr()?
    );
    println!(
        "moat: admin API listening on {scheme}://{}",
        admin_listener.local_addr()?
    );
    println!("moat: serving {served} function(s); stop with Ctrl-C");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tls_config = match &tls {
        Some(store) => Some(store.server_config()?),
        None => None,
    };
    let serve_options = |metrics: Arc<metrics::Metrics>| moat_gateway::ServeOptions {
        tls: tls_config.clone(),
        head: moat_gateway::frontdoor::HeadLimits {
            head_timeout: config.client_timeout,
            ..Default::default()
        },
        max_connections: config.max_connections,
        drain: Duration::from_secs(defaults::DRAIN_SECS),
        on_refusal: Arc::new({
            let limit_audit = Arc::clone(&limit_audit);
            move |code| {
                metrics.limit_hit("", code.as_str());
                limit_audit.hit("", code.as_str(), "-");
            }
        }),
    };
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let gw = tokio::spawn(moat_gateway::serve(
        gateway_listener,
        move |req, peer| events::observed(Arc::clone(&gateway), Arc::clone(&events), req, peer),
        stopped(stop_rx.clone()),
        serve_options(Arc::clone(&node.metrics)),
    ));
    let admin_node = Arc::clone(&node);
    let adm = tokio::spawn(moat_gateway::serve(
        admin_listener,
        move |req, peer| admin::handle(Arc::clone(&admin_node), req, peer),
        stopped(stop_rx),
        serve_options(Arc::clone(&node.metrics)),
    ));

    if let Some(store) = tls.clone() {
        // SIGHUP: read the certificate and key files again (a failure keeps the old ones).
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                match store.reload() {
                    Ok(fp) => println!("moat: reloaded TLS certificate (SHA-256 {fp})"),
                    Err(e) => eprintln!("moat: TLS certificate not reloaded: {e}"),
                }
            }
        });
    }
    signals.wait().await;
    println!("moat: stopping; draining in-flight requests");
    node.events.close();
    // Hits still folding into a window go to the audit queue now rather than never.
    limit_audit.close_windows(true);
    let _ = stop_tx.send(true);
    let _ = tokio::join!(gw, adm);
    println!("moat: stopped");
    Ok(())
}

impl Node {
    /// Recompiles the guardrails from the store and re-judges every serving route.
    async fn reload_guardrails(&self) -> anyhow::Result<()> {
        let guardrails = self.store.policies().await?;
        self.policies.write().set_guardrails(guardrails)?;
        self.functions.invalidate_routes();
        self.functions.refresh_routes().await?;
        Ok(())
    }
}

/// Loads (or, with `--tls-self-signed`, creates once and keeps) the certificate, and refuses
/// plain HTTP on a non-loopback address unless `--insecure-http` says so.
fn tls_setup(config: &NodeConfig) -> anyhow::Result<Option<Arc<moat_gateway::tls::CertStore>>> {
    let t = &config.tls;
    let (cert, key) = match (&t.cert, &t.key, t.self_signed) {
        (Some(c), Some(k), false) => (c.clone(), k.clone()),
        (None, None, true) => {
            let dir = config.data_dir.join("tls");
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !cert.exists() {
                std::fs::create_dir_all(&dir)?;
                let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
                for addr in [config.listen, config.admin_listen] {
                    if !addr.ip().is_unspecified() {
                        names.push(addr.ip().to_string());
                    }
                }
                names.sort();
                names.dedup();
                moat_gateway::tls::write_self_signed(&names, &cert, &key)?;
            }
            (cert, key)
        }
        (None, None, false) => {
            let loopback =
                config.listen.ip().is_loopback() && config.admin_listen.ip().is_loopback();
            if !loopback && !t.insecure_http {
                bail!(
                    "refusing plain HTTP on a non-loopback address; give --tls-cert and --tls-key, or --tls-self-signed, or accept the risk with --insecure-http"
                );
            }
            return Ok(None);
        }
        _ => bail!("give --tls-cert and --tls-key together, or --tls-self-signed alone"),
    };
    let (store, fingerprint) = moat_gateway::tls::CertStore::open(&cert, &key)?;
    println!(
        "moat: TLS certificate {} (SHA-256 fingerprint {fingerprint})",
        cert.display()
    );
    Ok(Some(store))
}

fn open_store(config: &NodeConfig) -> anyhow::Result<SqliteStore> {
    let path = match &config.store {
        None => config.data_dir.join("moat.db"),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            bail!("the PostgreSQL store is not available in this build; use SQLite (the default)")
        }
        Some(url) => PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)),
    };
    SqliteStore::open(&path)
        .with_context(|| format!("cannot open the store at `{}`", path.display()))
}

/// SIGTERM and SIGINT, caught from the start of `run`.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
