//! The audit trail: security events and admin actions go into the store's hash chain,
//! batched and off the request path, with signed checkpoints written outside the store.
//!
//! `record` never blocks and never fails the caller: events wait in a bounded queue; if the
//! queue is full the event is counted as overflow (`moat_audit_overflow_total`) and logged,
//! never dropped silently. A store write that fails is retried with the same batch.
//!
//! Trouble with the trail itself is an event too, so that alert rules and `/v1/events` see it
//! (not only `/metrics`): at most once a second, a synthetic `audit.overflow` (`details`:
//! `{"aggregated": true, "count": n, "dropped": n, "first_ms", "last_ms"}`) and
//! `audit.write_failed` (`{"aggregated": true, "count": n, "failures": n, "first_ms",
//! "last_ms", "error"}`), actor `node`, outcome `failed`, counting what happened since the
//! last one. They are judged and published but not chained: the queue is full or the store
//! failing when they happen. The chain learns of a loss instead once the writer has room
//! again: it appends a record `audit.overflow` with `{"dropped": n, "first_ms", "last_ms"}`
//! after the events it was holding, so a verifier reading the chain sees that events are
//! missing there and how many. (A write failure loses nothing, as the batch is retried.)
//!
//! Every [`CHECKPOINT_EVERY`] the writer signs the chain head with the node's checkpoint key
//! (`<data-dir>/audit.key`, ed25519) and writes the checkpoint line to the node's log, to
//! `<data-dir>/audit-checkpoints.log` and to every export sink configured ([`Outside`]: the
//! OTLP collector as a log record, `--log-export` as a JSON line). Someone who can rewrite the database cannot forge
//! those, so `moat audit-log verify --checkpoint` detects a truncated or recomputed chain.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moat_store::Store;
use moat_telemetry::audit::{AuditEvent, Checkpoint, CheckpointKey, Outcome, actor, now_ms};
use tokio::sync::{Notify, mpsc};

/// Events per store transaction at most.
const BATCH: usize = 512;
/// How often a checkpoint of the head is signed and exported (if the chain grew).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);
/// Trouble with the trail is reported to alert rules and subscribers at most this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Occurrences of one kind of trouble not reported yet, folded into one report per
/// [`REPORT_EVERY`]: the first at the next check, later ones when the interval has passed.
#[derive(Debug, Default)]
struct Fold {
    count: u64,
    first_ms: i64,
    last_ms: i64,
    last_error: Option<String>,
    reported: Option<Instant>,
}

/// What a [`Fold`] had to say: how many, when, and the last error if any.
#[derive(Debug, PartialEq)]
struct Report {
    count: u64,
    first_ms: i64,
    last_ms: i64,
    error: Option<String>,
}

impl Fold {
    fn note(&mut self, at_ms: i64, error: Option<String>) {
        if self.count == 0 {
            self.first_ms = at_ms;
        }
        self.count += 1;
        self.last_ms = at_ms;
        self.last_error = error;
    }

    /// What to report at `now`, if anything is waiting and the last report is old enough.
    fn due(&mut self, now: Instant) -> Option<Report> {
        if self.count == 0
            || self
                .reported
                .is_some_and(|at| now.duration_since(at) < REPORT_EVERY)
        {
            return None;
        }
        self.reported = Some(now);
        let count = std::mem::take(&mut self.count);
        Some(Report {
            count,
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            error: self.last_error.take(),
        })
    }
}

/// An event about the trail itself (`audit.overflow`, `audit.write_failed`), now.
fn trail_event(action: &'static str, details: serde_json::Value) -> AuditEvent {
    AuditEvent::new(now_ms(), actor::NODE, action, "audit", Outcome::Failed).with_details(details)
}

/// Events lost to a full queue that the chain does not mention yet.
#[derive(Debug, Clone, Copy)]
struct Gap {
    dropped: u64,
    first_ms: i64,
    last_ms: i64,
}

impl Gap {
    /// The chain's record of the loss.
    fn record(self) -> AuditEvent {
        trail_event(
            "audit.overflow",
            serde_json::json!({
                "dropped": self.dropped,
                "first_ms": self.first_ms,
                "last_ms": self.last_ms,
            }),
        )
    }
}

/// Trouble with the trail itself, shared by `record`, the writer and the reporting task.
#[derive(Default)]
struct Trouble {
    gap: Mutex<Option<Gap>>,
    /// Wakes an idle writer to chain a gap that no later event would bring it to.
    gap_noticed: Notify,
    overflow: Mutex<Fold>,
    write_failed: Mutex<Fold>,
}

impl Trouble {
    fn dropped(&self, at_ms: i64) {
        if let Ok(mut gap) = self.gap.lock() {
            let g = gap.get_or_insert(Gap {
                dropped: 0,
                first_ms: at_ms,
                last_ms: at_ms,
            });
            g.dropped += 1;
            g.last_ms = at_ms;
        }
        if let Ok(mut f) = self.overflow.lock() {
            f.note(at_ms, None);
        }
        self.gap_noticed.notify_one();
    }

    fn write_failed(&self, at_ms: i64, error: String) {
        if let Ok(mut f) = self.write_failed.lock() {
            f.note(at_ms, Some(error));
        }
    }

    fn take_gap(&self) -> Option<Gap> {
        self.gap.lock().ok()?.take()
    }
}

/// Export sinks that also get each checkpoint (set once the node has made them).
#[derive(Default)]
pub struct CheckpointSinks {
    pub otlp: Option<Arc<crate::otlp::Exporter>>,
    pub lines: Option<Arc<crate::export::LineExport>>,
}

/// Everywhere a checkpoint is written outside the store.
struct Outside {
    /// `<data-dir>/audit-checkpoints.log`.
    file: PathBuf,
    sinks: std::sync::OnceLock<CheckpointSinks>,
}

impl Outside {
    fn export(&self, cp: &Checkpoint) {
        let line = cp.to_line();
        tracing::info!(checkpoint = %line, "audit checkpoint");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::error!(
                "cannot write audit checkpoint to {}: {e}",
                self.file.display()
            );
        }
        if let Some(sinks) = self.sinks.get() {
            if let Some(otlp) = &sinks.otlp {
                otlp.checkpoint(cp.at_ms, &line);
            }
            if let Some(lines) = &sinks.lines {
                lines.checkpoint(cp.at_ms, &line);
            }
        }
    }
}

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
    trouble: Arc<Trouble>,
    outside: Arc<Outside>,
}

impl Audit {
    /// Loads (or creates, mode 0600) the checkpoint key and starts the writer, with room for
    /// `queue` events (at least one) while the store is behind.
    pub fn start(
        store: Arc<dyn Store>,
        data_dir: &Path,
        queue: usize,
    ) -> anyhow::Result<Arc<Audit>> {
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
        let (tx, rx) = mpsc::channel(queue.max(1));
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
            trouble: Arc::default(),
            outside: Arc::new(Outside {
                file: data_dir.join("audit-checkpoints.log"),
                sinks: std::sync::OnceLock::new(),
            }),
        });
        tokio::spawn(writer(
            rx,
            store,
            key,
            Arc::clone(&audit.outside),
            Arc::clone(&audit.written),
            Arc::clone(&audit.write_failures),
            Arc::clone(&audit.metrics),
            Arc::clone(&audit.trouble),
        ));
        let weak = Arc::downgrade(&audit);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REPORT_EVERY / 4);
            loop {
                tick.tick().await;
                let Some(audit) = weak.upgrade() else { return };
                audit.report_trouble(Instant::now());
            }
        });
        Ok(audit)
    }

    /// Tells alert rules and subscribers about overflow and write failures since the last
    /// report (each at most once per [`REPORT_EVERY`]).
    fn report_trouble(&self, now: Instant) {
        let due = |fold: &Mutex<Fold>| fold.lock().ok().and_then(|mut f| f.due(now));
        if let Some(r) = due(&self.trouble.overflow) {
            tracing::error!(
                dropped = r.count,
                "audit queue full: events not recorded in the chain (an `audit.overflow` record will say how many)"
            );
            self.announce(&trail_event(
                "audit.overflow",
                serde_json::json!({
                    "aggregated": true,
                    "count": r.count,
                    "dropped": r.count,
                    "first_ms": r.first_ms,
                    "last_ms": r.last_ms,
                }),
            ));
        }
        if let Some(r) = due(&self.trouble.write_failed) {
            self.announce(&trail_event(
                "audit.write_failed",
                serde_json::json!({
                    "aggregated": true,
                    "count": r.count,
                    "failures": r.count,
                    "first_ms": r.first_ms,
                    "last_ms": r.last_ms,
                    "error": r.error,
                }),
            ));
        }
    }

    /// Judges and publishes an event without queueing it for the chain.
    fn announce(&self, event: &AuditEvent) {
        if let Some(alerts) = self.alerts.get() {
            alerts.observe(event);
        }
        if let Some(events) = self.events.get() {
            events.audit(event);
        }
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
        self.announce(&event);
        if let Err(e) = self.tx.try_send(event) {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            self.trouble.dropped(now_ms());
            let event = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            // Debug only: the error is logged once a second with the count (`report_trouble`),
            // so a flood does not become a flood of log lines.
            tracing::debug!(
                action = %event.action, target = %event.target,
                "audit queue full: event not recorded in the chain"
            );
        }
    }

    /// Events waiting to be written.
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
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

    /// Signs the current head now (for `moat audit-log checkpoint`), and writes it where
    /// the periodic ones go.
    pub async fn checkpoint_now(&self) -> anyhow::Result<Option<Checkpoint>> {
        let head = last_record(&*self.store).await?;
        let cp = head.map(|(seq, hash)| Checkpoint::sign(seq, hash, now_ms(), &self.key));
        if let Some(cp) = &cp {
            self.outside.export(cp);
        }
        Ok(cp)
    }

    /// Export sinks that also get every checkpoint from now on.
    pub fn set_checkpoint_sinks(&self, sinks: CheckpointSinks) {
        let _ = self.outside.sinks.set(sinks);
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

#[expect(
    clippy::too_many_arguments,
    reason = "the task's own handles on what it shares with `Audit`; a struct would only rename them"
)]
async fn writer(
    mut rx: mpsc::Receiver<AuditEvent>,
    store: Arc<dyn Store>,
    key: Arc<CheckpointKey>,
    outside: Arc<Outside>,
    written: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    metrics: Arc<std::sync::OnceLock<Arc<crate::metrics::Metrics>>>,
    trouble: Arc<Trouble>,
) {
    let mut head: Option<(u64, [u8; 32])> = last_record(&*store).await.ok().flatten();
    let mut checkpointed = head.map(|(s, _)| s);
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<AuditEvent> = Vec::new();
    loop {
        // A batch that failed to write is retried before anything else is taken.
        if batch.is_empty() {
            tokio::select! {
                // In this order, so a steady stream of events cannot starve checkpoints.
                biased;
                _ = tick.tick() => {
                    if let Some((seq, hash)) = head
                        && checkpointed != Some(seq)
                    {
                        let cp = Checkpoint::sign(seq, hash, now_ms(), &key);
                        outside.export(&cp);
                        checkpointed = Some(seq);
                    }
                }
                got = rx.recv_many(&mut batch, BATCH) => {
                    if got == 0 {
                        break; // every sender is gone: the node is stopping
                    }
                }
                () = trouble.gap_noticed.notified() => {}
            }
            // Once what the queue held is taken, it has room again: the chain says what it
            // lost, after the events queued before the loss.
            if rx.is_empty()
                && let Some(gap) = trouble.take_gap()
            {
                batch.push(gap.record());
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
                trouble.write_failed(now_ms(), e.to_string());
                tracing::error!("cannot write the audit log (will retry): {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;

    #[test]
    fn trouble_is_reported_at_most_once_per_interval_and_the_counts_add_up() {
        let t0 = Instant::now();
        let mut fold = Fold::default();
        assert_eq!(fold.due(t0), None);
        for at in 1..=3 {
            fold.note(at, None);
        }
        let first = fold.due(t0).unwrap();
        assert_eq!((first.count, first.first_ms, first.last_ms), (3, 1, 3));
        fold.note(4, Some("database is locked".into()));
        fold.note(5, Some("disk full".into()));
        // Within the interval: held back, not lost.
        assert_eq!(fold.due(t0 + REPORT_EVERY / 2), None);
        let second = fold.due(t0 + REPORT_EVERY).unwrap();
        assert_eq!(
            second,
            Report {
                count: 2,
                first_ms: 4,
                last_ms: 5,
                error: Some("disk full".into())
            }
        );
        // Nothing new: nothing to say, however long it has been.
        assert_eq!(fold.due(t0 + REPORT_EVERY * 10), None);
    }

    /// Issue #6: events lost to a full queue are announced to alert rules and subscribers,
    /// then recorded in the chain itself once the writer has room.
    #[tokio::test]
    async fn events_lost_to_a_full_queue_are_announced_and_then_chained() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(moat_store::SqliteStore::open_in_memory().unwrap());
        let audit = Audit::start(Arc::clone(&store), dir.path(), 2).unwrap();
        let hub = Arc::new(crate::events::Hub::default());
        audit.set_events(Arc::clone(&hub));
        let mut sub = hub.subscribe();
        let event = |i| AuditEvent::new(i, actor::NODE, "test.event", "x", Outcome::Succeeded);
        // This runtime has one thread and the test has not yielded, so the writer has taken
        // nothing yet: two events fit in the queue, eight are lost.
        for i in 0..10 {
            audit.record(event(i));
        }
        assert_eq!(audit.overflow.load(Ordering::Relaxed), 8);
        let announced = |sub: &mut crate::events::Subscription| {
            let mut actions = Vec::new();
            while let Ok(e) = sub.rx.try_recv() {
                let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
                actions.push((
                    v["action"].as_str().unwrap().to_string(),
                    v["details"].clone(),
                ));
            }
            actions
        };
        assert_eq!(
            announced(&mut sub).len(),
            10,
            "every event is still published"
        );
        let now = Instant::now();
        audit.report_trouble(now);
        let reports = announced(&mut sub);
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].0, "audit.overflow");
        assert_eq!(reports[0].1["count"], 8);
        assert_eq!(reports[0].1["aggregated"], true);
        // One more lost: not announced again within the interval, but with the next report.
        audit.record(event(10));
        audit.report_trouble(now);
        assert_eq!(announced(&mut sub).len(), 1, "only the event itself");
        audit.report_trouble(now + REPORT_EVERY);
        let reports = announced(&mut sub);
        assert_eq!(
            (reports[0].0.as_str(), &reports[0].1["count"]),
            ("audit.overflow", &1.into())
        );

        // The writer runs: the two queued events, then the chain's record of the nine lost.
        let deadline = Instant::now() + Duration::from_secs(10);
        let records = loop {
            let records = store
                .audit_records(moat_store::AuditQuery {
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap();
            if records.len() >= 3 || Instant::now() > deadline {
                break records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let actions: Vec<_> = records.iter().map(|r| r.event.action.as_str()).collect();
        assert_eq!(actions, ["test.event", "test.event", "audit.overflow"]);
        let gap = &records[2].event.details;
        assert_eq!(gap["dropped"], 9, "{gap}");
        assert!(gap["first_ms"].as_i64() <= gap["last_ms"].as_i64(), "{gap}");
        assert_eq!(audit.written.load(Ordering::Relaxed), 3);
    }
}
