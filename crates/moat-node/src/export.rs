//! `moat up --log-export PATH` (or `-` for standard output): every function log record as
//! stored — redacted, with its id, function, version, request id, stream and time — also
//! written as one JSON line (the shape `moat logs --output json` prints), for a log shipper
//! to collect from a file or the node's standard output. Each audit checkpoint (the chain's
//! signed head) goes there too, as `{"audit_checkpoint": LINE, "at_ms": …}`: a copy outside
//! the store for `moat audit-log verify --checkpoint`.
//!
//! Off the request path and off the store's: the log writer hands over each batch once it
//! is stored, and a thread of its own serializes and writes it, so a slow disk or a blocked
//! pipe never holds the writer up. Batches it cannot keep up with are dropped and counted
//! (`moat_log_export_dropped_total`); a failed write is counted and logged at most every
//! [`LOG_EVERY`]. The file is opened for appending (created with mode 0600) when the node
//! starts, so a path it cannot write stops the start with the reason.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use anyhow::Context;
use moat_store::StoredLog;

/// Stored batches waiting to be written before new ones are dropped (a batch is at most
/// the log writer's 1,000 records).
const QUEUE: usize = 256;
/// How often a failed write is logged (every failure is counted).
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// What the writing thread is handed.
enum Item {
    Logs(Vec<StoredLog>),
    Checkpoint { at_ms: i64, line: String },
}

pub struct LineExport {
    tx: SyncSender<Item>,
    counters: Arc<Counters>,
}

impl LineExport {
    /// Opens `target` (`-` is standard output) and starts the writing thread.
    pub fn open(target: &str) -> anyhow::Result<LineExport> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(std::io::stdout())
        } else {
            use std::os::unix::fs::OpenOptionsExt;
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(target)
                    .with_context(|| format!("--log-export: cannot open `{target}` to append"))?,
            )
        };
        let (tx, rx) = sync_channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("moat-log-export".into())
            .spawn(move || write_lines(rx, out, &c))
            .context("--log-export: cannot start its thread")?;
        Ok(LineExport { tx, counters })
    }

    /// Queues a stored batch; never waits.
    pub fn send(&self, batch: &[StoredLog]) {
        if batch.is_empty() {
            return;
        }
        self.queue(Item::Logs(batch.to_vec()));
    }

    /// Queues an audit checkpoint's line; never waits.
    pub fn checkpoint(&self, at_ms: i64, line: &str) {
        self.queue(Item::Checkpoint {
            at_ms,
            line: line.to_string(),
        });
    }

    fn queue(&self, item: Item) {
        if let Err(TrySendError::Full(item) | TrySendError::Disconnected(item)) =
            self.tx.try_send(item)
        {
            let n = match item {
                Item::Logs(b) => b.len() as u64,
                Item::Checkpoint { .. } => 1,
            };
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn render(&self, out: &mut String) {
        for (name, help, n) in [
            (
                "moat_log_export_written_total",
                "Function log records and audit checkpoints written to --log-export.",
                &self.counters.written,
            ),
            (
                "moat_log_export_dropped_total",
                "Function log records and audit checkpoints not written to --log-export because it was behind.",
                &self.counters.dropped,
            ),
            (
                "moat_log_export_failures_total",
                "Failed writes to --log-export (the records are lost to it).",
                &self.counters.failed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

fn write_lines(rx: Receiver<Item>, out: Box<dyn Write + Send>, c: &Counters) {
    let mut out = std::io::BufWriter::new(out);
    let mut last_logged: Option<Instant> = None;
    let mut line = Vec::new();
    for item in rx {
        let values: Vec<serde_json::Value> = match item {
            Item::Logs(batch) => batch
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect(),
            Item::Checkpoint { at_ms, line } => {
                vec![serde_json::json!({ "audit_checkpoint": line, "at_ms": at_ms })]
            }
        };
        let mut wrote = 0;
        let mut result = Ok(());
        for value in &values {
            line.clear();
            if serde_json::to_writer(&mut line, value).is_err() {
                continue;
            }
            line.push(b'\n');
            result = out.write_all(&line);
            if result.is_err() {
                break;
            }
            wrote += 1;
        }
        // Each batch reaches the file (or pipe) before the next is waited for.
        let result = result.and_then(|()| out.flush());
        c.written.fetch_add(wrote, Ordering::Relaxed);
        if let Err(e) = result {
            c.failed.fetch_add(1, Ordering::Relaxed);
            if last_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                last_logged = Some(Instant::now());
                tracing::warn!(
                    "--log-export: write failed ({} records lost to it; counted in moat_log_export_failures_total): {e}",
                    values.len() as u64 - wrote
                );
            }
        }
    }
}
