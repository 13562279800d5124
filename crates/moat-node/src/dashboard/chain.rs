//! The node verifying its own stored audit chain for the dashboard, and finding its newest
//! records.
//!
//! Verifying walks every record from seq 1 (`moat_telemetry::audit::verify`), so the result
//! is kept for [`FRESH`] and shared by every page that shows it. Without a checkpoint the
//! walk catches changed, removed, inserted and reordered records, not a truncated or
//! wholly recomputed chain: the page says so and points at `moat audit-log verify
//! --checkpoint`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use moat_store::{AuditQuery, Store};
use moat_telemetry::audit::ChainedRecord;

/// How long a verification result is shown before the chain is walked again.
pub const FRESH: Duration = Duration::from_secs(15);
const PAGE: u32 = 10_000;
/// Windows of [`PAGE`] records searched back for [`newest`].
const BACK_WINDOWS: usize = 5;

/// What the last walk found.
#[derive(Debug, Clone)]
pub struct Status {
    /// Records verified from seq 1.
    pub records: u64,
    /// The newest seq seen (verified or not).
    pub last_seq: u64,
    /// The first problem, in words; `None` when the chain verified.
    pub finding: Option<String>,
    pub checked_at_ms: i64,
}

#[derive(Default)]
pub struct Verifier {
    last: Mutex<Option<(Instant, Status)>>,
    /// One walk at a time; callers that arrive meanwhile wait for its result.
    walking: tokio::sync::Mutex<()>,
}

impl Verifier {
    pub async fn status(&self, store: &dyn Store) -> Result<Status, moat_store::StoreError> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let _walk = self.walking.lock().await;
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let mut records: Vec<ChainedRecord> = Vec::new();
        loop {
            let page = store
                .audit_records(AuditQuery {
                    after_seq: records.last().map_or(0, |r| r.seq),
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
            let done = page.len() < PAGE as usize;
            records.extend(page);
            if done {
                break;
            }
        }
        let last_seq = records.last().map_or(0, |r| r.seq);
        // Hashing every record is CPU work: off the async workers that serve requests.
        let report =
            tokio::task::spawn_blocking(move || moat_telemetry::audit::verify(records, None))
                .await
                .map_err(|e| {
                    moat_store::StoreError::Backend(format!("audit verification stopped: {e}"))
                })?;
        let status = Status {
            records: report.records,
            last_seq,
            finding: report.finding.map(|f| f.to_string()),
            checked_at_ms: moat_telemetry::audit::now_ms(),
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), status.clone()));
        }
        Ok(status)
    }

    fn cached(&self) -> Option<Status> {
        let last = self.last.lock().ok()?;
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH)
            .map(|(_, s)| s.clone())
    }
}

/// The newest `n` records that `keep` accepts, newest first: those after the newest seq the
/// last walk saw, then windows further back (at most [`BACK_WINDOWS`] of them).
pub async fn newest(
    store: &dyn Store,
    last_seq: u64,
    n: usize,
    keep: impl Fn(&ChainedRecord) -> bool,
) -> Result<Vec<ChainedRecord>, moat_store::StoreError> {
    let mut out = Vec::new();
    // Newer records than the walk saw come first; then windows further back.
    let mut after = last_seq;
    let mut upto: Option<u64> = None;
    for _ in 0..=BACK_WINDOWS {
        let page = store
            .audit_records(AuditQuery {
                after_seq: after,
                limit: PAGE,
                ..Default::default()
            })
            .await?;
        let mut window: Vec<ChainedRecord> = page
            .into_iter()
            .filter(|r| upto.is_none_or(|u| r.seq <= u))
            .filter(|r| keep(r))
            .collect();
        window.reverse();
        out.extend(window);
        if out.len() >= n || after == 0 {
            break;
        }
        upto = Some(after);
        after = after.saturating_sub(PAGE as u64);
    }
    out.truncate(n);
    Ok(out)
}
