//! The audit trail: security events and admin actions go into the store's hash chain,
//! batched and off the request path, with signed checkpoints written outside the store.
//!
//! `record` never blocks and never fails the caller: events wait in a bounded queue; if the
//! queue is full the event is counted as overflow (`moat_audit_overflow_total`) and logged,
//! never dropped silently. A store write that fails is retried with the same batch.
//!
//! Every [`CHECKPOINT_EVERY`] the writer signs the chain head with the node's checkpoint key
//! (`<data-dir>/audit.key`, ed25519) and writes the checkpoint line to the node's log and to
//! `<data-dir>/audit-checkpoints.log`. Someone who can rewrite the database cannot forge
//! those, so `moat audit-log verify --checkpoint` detects a truncated or recomputed chain.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moat_store::Store;
use moat_telemetry::audit::{AuditEvent, Checkpoint, CheckpointKey, Outcome, now_ms};
use tokio::sync::mpsc;

/// Queue length before events count as overflow.
const QUEUE: usize = 65_536;
/// Events per store transaction at most.
const BATCH: usize = 512;
/// How often a checkpoint of the head is signed and exported (if the chain grew).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

pub struct Audit {
    tx: mpsc::Sender<AuditEvent>,
    pub overflow: AtomicU64,
    pub written: Arc<AtomicU64>,
    pub write_failures: Arc<AtomicU64>,
    key: Arc<CheckpointKey>,
    store: Arc<dyn Store>,
    /// Judges each event as it is recorded (set once the rules are loaded).
    alerts: std::sync::OnceLock<Arc<crate::alerts::Alerts>>,
    /// Live subscribers (`/v1/events`) see each event as it is recorded.
    events: std::sync::OnceLock<Arc<crate::events::Hub>>,
    /// Times the writer's store appends (set once metrics exist).
    metrics: Arc<std::sync::OnceLock<Arc<crate::metrics::Metrics>>>,
}

impl Audit {
    /// Loads (or creates, mode 0600) the checkpoint key and starts the writer.
    pub fn start(store: Arc<dyn Store>, data_dir: &Path) -> anyhow::Result<Arc<Audit>> {
        let key_path = data_dir.join("audit.key");
        let key = if key_path.exists() {
            CheckpointKey::load(&key_path)?
        } else {
            let key = CheckpointKey::generate()?;
            let mut buf = Vec::new();
            key.write_to(&mut buf)?;
            crate::datadir::write_secret_file(&key_path, &buf)?;
            key
        };
        let key = Arc::new(key);
        let (tx, rx) = mpsc::channel(QUEUE);
        let audit = Arc::new(Audit {
            tx,
            overflow: AtomicU64::new(0),
            written: Arc::default(),
            write_failures: Arc::default(),
            key: Arc::clone(&key),
            store: Arc::clone(&store),
            alerts: std::sync::OnceLock::new(),
            events: std::sync::OnceLock::new(),
            metrics: Arc::default(),
        });
        tokio::spawn(writer(
            rx,
            store,
            key,
            data_dir.join("audit-checkpoints.log"),
            Arc::clone(&audit.written),
            Arc::clone(&audit.write_failures),
            Arc::clone(&audit.metrics),
        ));
        Ok(audit)
    }

    /// Starts judging events against alert rules.
    pub fn set_alerts(&self, alerts: Arc<crate::alerts::Alerts>) {
        let _ = self.alerts.set(alerts);
    }

    /// Publishes every event to live subscribers from now on.
    pub fn set_events(&self, events: Arc<crate::events::Hub>) {
        let _ = self.events.set(events);
    }

    /// Times the writer's store appends in `/metrics` from now on.
    pub fn set_metrics(&self, metrics: Arc<crate::metrics::Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// Queues an event; never blocks.
    pub fn record(&self, event: AuditEvent) {
        if let Some(alerts) = self.alerts.get() {
            alerts.observe(&event);
        }
        if let Some(events) = self.events.get() {
            events.audit(&event);
        }
        if let Err(e) = self.tx.try_send(event) {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            let event = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            tracing::error!(
                action = %event.action, target = %event.target,
                "audit queue full: event not recorded in the chain"
            );
        }
    }

    /// Events waiting to be written.
    pub fn backlog(&self) -> usize {
        QUEUE - self.tx.capacity()
    }

    /// A capability or policy denial by a function.
    pub fn denied(&self, function: &str, action: &str, resource: &str, reason: &str) {
        self.record(
            AuditEvent::new(
                now_ms(),
                moat_telemetry::audit::actor::function(function),
                format!("{action}.denied"),
                resource,
                Outcome::Denied,
            )
            .with_function(function)
            .with_details(serde_json::json!({ "reason": reason })),
        );
    }

    /// The checkpoint key's public half (base64), for verifiers.
    pub fn public_key(&self) -> String {
        self.key.public_base64()
    }

    /// Signs the current head now (for `moat audit-log checkpoint`).
    pub async fn checkpoint_now(&self) -> anyhow::Result<Option<Checkpoint>> {
        let head = last_record(&*self.store).await?;
        Ok(head.map(|(seq, hash)| Checkpoint::sign(seq, hash, now_ms(), &self.key)))
    }
}

async fn last_record(store: &dyn Store) -> anyhow::Result<Option<(u64, [u8; 32])>> {
    // Walk pages from the start; the chain is read rarely (checkpoints), not per request.
    let mut after = 0;
    let mut head = None;
    loop {
        let page = store
            .audit_records(moat_store::AuditQuery {
                after_seq: after,
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else {
            return Ok(head);
        };
        after = last.seq;
        head = Some((last.seq, last.hash));
    }
}

async fn writer(
    mut rx: mpsc::Receiver<AuditEvent>,
    store: Arc<dyn Store>,
    key: Arc<CheckpointKey>,
    checkpoints: PathBuf,
    written: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    metrics: Arc<std::sync::OnceLock<Arc<crate::metrics::Metrics>>>,
) {
    let mut head: Option<(u64, [u8; 32])> = last_record(&*store).await.ok().flatten();
    let mut checkpointed = head.map(|(s, _)| s);
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<AuditEvent> = Vec::new();
    loop {
        tokio::select! {
            got = rx.recv_many(&mut batch, BATCH), if batch.is_empty() => {
                if got == 0 {
                    break; // every sender is gone: the node is stopping
                }
            }
            _ = tick.tick() => {
                if let Some((seq, hash)) = head
                    && checkpointed != Some(seq)
                {
                    let cp = Checkpoint::sign(seq, hash, now_ms(), &key);
                    export_checkpoint(&checkpoints, &cp);
                    checkpointed = Some(seq);
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let appended = match metrics.get() {
            Some(m) => {
                m.store_op("append_audit", store.append_audit(batch.clone()))
                    .await
            }
            None => store.append_audit(batch.clone()).await,
        };
        match appended {
            Ok(records) => {
                written.fetch_add(records.len() as u64, Ordering::Relaxed);
                if let Some(last) = records.last() {
                    head = Some((last.seq, last.hash));
                }
                batch.clear();
            }
            Err(e) => {
                failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!("cannot write the audit log (will retry): {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn export_checkpoint(path: &Path, cp: &Checkpoint) {
    let line = cp.to_line();
    tracing::info!(checkpoint = %line, "audit checkpoint");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        tracing::error!("cannot write audit checkpoint to {}: {e}", path.display());
    }
}
