//! Following a function's logs (`GET /v1/functions/NAME/logs?follow=true`): records reach a
//! follower as soon as the log writer has stored them, as newline-delimited JSON.
//!
//! The writer publishes each batch after its store transaction, with the ids the store gave,
//! into a bounded broadcast ring per followed function; when no one follows, publishing is
//! one atomic load. A follower subscribes *before* it reads the stored backlog, so no record
//! falls between the two, and sends a record only if its id is past the last one it sent, so
//! none is sent twice. Ids grow in the order records are stored, and the writer publishes in
//! that order, so records go out in order. A follower that falls behind its ring (a slow
//! client) reads the store from its last id instead: it loses nothing, and the node never
//! waits for it nor holds more than the ring for it.
//!
//! Followers see exactly what the store keeps: records are published after they are redacted
//! and stored, never before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use moat_gateway::GatewayBody;
use moat_store::{LogQuery, LogRecord, Store, StoredLog};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, watch};

/// Records kept per followed function for followers that are behind; past it they read the
/// store instead. With records of at most 64 KiB this bounds a ring to 32 MiB, and the
/// per-function log budget (1 MiB/s) makes that a ring of at least half a minute of output.
const RING: usize = 512;
/// Open follow streams per node at most (each is a task and a connection).
pub const MAX_FOLLOWERS: usize = 64;
/// An idle stream writes an empty line this often, so proxies keep it open and a vanished
/// client is noticed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a running stream's caller is judged again.
pub const RECHECK: Duration = Duration::from_secs(2);
/// Records read from the store at a time when a follower catches up.
const PAGE: u32 = 1000;

/// The live feed of stored log records, by function.
pub struct LogFeed {
    /// Live subscriptions, checked on every batch before the lock is taken.
    listening: AtomicUsize,
    channels: Mutex<Channels>,
    followers: Arc<Semaphore>,
}

#[derive(Default)]
struct Channels {
    by_function: HashMap<String, Channel>,
    /// Tells a function's channel from a later one of the same name (after a delete).
    next_generation: u64,
}

struct Channel {
    tx: broadcast::Sender<Arc<StoredLog>>,
    generation: u64,
}

impl Default for LogFeed {
    fn default() -> Self {
        LogFeed {
            listening: AtomicUsize::new(0),
            channels: Mutex::default(),
            followers: Arc::new(Semaphore::new(MAX_FOLLOWERS)),
        }
    }
}

impl LogFeed {
    /// A place for one more follow stream, if the node has one.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.followers).try_acquire_owned().ok()
    }

    /// Subscribes to `function`'s records published from now on.
    pub fn subscribe(self: &Arc<Self>, function: &str) -> Subscription {
        // Counted before the channel exists: a batch stored after this subscription sees it.
        self.listening.fetch_add(1, Ordering::SeqCst);
        let (rx, generation) = match self.channels.lock() {
            Ok(mut channels) => {
                let channels = &mut *channels;
                let generation = channels.next_generation;
                let channel = channels
                    .by_function
                    .entry(function.to_string())
                    .or_insert_with(|| Channel {
                        tx: broadcast::channel(RING).0,
                        generation,
                    });
                if channel.generation == generation {
                    channels.next_generation += 1;
                }
                (channel.tx.subscribe(), channel.generation)
            }
            // A poisoned map: a receiver of a channel no one sends on, which ends the
            // stream at once as if the function had been deleted.
            Err(_) => (broadcast::channel(1).1, u64::MAX),
        };
        Subscription {
            rx,
            feed: Arc::clone(self),
            function: function.to_string(),
            generation,
        }
    }

    /// Hands stored records to their functions' followers. Called by the log writer after
    /// each store write, in id order; never waits.
    pub fn publish(&self, stored: Vec<StoredLog>) {
        if self.listening.load(Ordering::SeqCst) == 0 {
            return;
        }
        let Ok(channels) = self.channels.lock() else {
            return;
        };
        for record in stored {
            if let Some(channel) = channels.by_function.get(&record.record.function) {
                // An error only means every follower left meanwhile.
                let _ = channel.tx.send(Arc::new(record));
            }
        }
    }

    /// Ends every stream following `function` (it was deleted), once each has sent what
    /// was published before.
    pub fn function_deleted(&self, function: &str) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.by_function.remove(function);
        }
    }
}

/// A receiver of one function's records, counted while it lives.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<StoredLog>>,
    feed: Arc<LogFeed>,
    function: String,
    generation: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed.listening.fetch_sub(1, Ordering::SeqCst);
        // The last follower of a function takes its channel away; this receiver still
        // counts here.
        if let Ok(mut channels) = self.feed.channels.lock()
            && channels
                .by_function
                .get(&self.function)
                .is_some_and(|c| c.generation == self.generation && c.tx.receiver_count() <= 1)
        {
            channels.by_function.remove(&self.function);
        }
    }
}

/// What a follower asked for: the same filters as a read of the stored logs.
#[derive(Debug, Clone)]
pub struct Filter {
    pub function: String,
    pub request_id: Option<String>,
    pub since_ms: Option<i64>,
}

impl Filter {
    fn matches(&self, r: &LogRecord) -> bool {
        r.function == self.function
            && self
                .request_id
                .as_ref()
                .is_none_or(|id| *id == r.request_id)
            && self.since_ms.is_none_or(|since| r.at_ms >= since)
    }

    /// The stored records that match, after `after_id` (oldest first) or the newest.
    pub fn query(&self, after_id: Option<i64>, limit: u32) -> LogQuery {
        LogQuery {
            function: self.function.clone(),
            request_id: self.request_id.clone(),
            since_ms: self.since_ms,
            after_id,
            limit,
        }
    }
}

/// Whether the stream's caller may still read it.
pub type StillAllowed = Box<dyn Fn() -> bool + Send + Sync>;

/// A follow stream, ready to start: subscribed first, then the backlog read.
pub struct Follow {
    pub store: Arc<dyn Store>,
    pub subscription: Subscription,
    pub filter: Filter,
    /// Stored records that match, read after subscribing; sent first.
    pub backlog: Vec<StoredLog>,
    /// Held while the stream runs.
    pub permit: OwnedSemaphorePermit,
    /// Judged every [`RECHECK`]; the stream ends when the caller may no longer read.
    pub still_allowed: StillAllowed,
    /// Becomes `true` when the node stops.
    pub stopping: watch::Receiver<bool>,
}

/// Why a stream ended, as its last line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Deleted,
    Stopping,
    Forbidden,
    StoreUnavailable,
}

impl End {
    fn line(self, function: &str) -> Bytes {
        let (end, message) = match self {
            End::Deleted => ("deleted", format!("function `{function}` was deleted")),
            End::Stopping => ("stopping", "the node is stopping".to_string()),
            End::Forbidden => (
                "forbidden",
                "the token may no longer read logs (revoked, expired or its role changed)"
                    .to_string(),
            ),
            End::StoreUnavailable => (
                "store_unavailable",
                "the node cannot read stored logs".to_string(),
            ),
        };
        Bytes::from(format!("{}\n", json!({ "end": end, "message": message })))
    }
}

/// The client went away (or the node is stopping while the client is not reading).
struct Gone;

/// One record as a line of the stream.
fn line(record: &StoredLog) -> Bytes {
    let mut text = serde_json::to_string(record).unwrap_or_default();
    text.push('\n');
    Bytes::from(text)
}

/// Starts the stream: the backlog, then each record as it is stored, until the function is
/// deleted, the node stops, the caller may no longer read, or the client leaves.
pub fn open(follow: Follow) -> GatewayBody {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut stream = Stream {
            last_id: follow.backlog.last().map_or(0, |r| r.id),
            tx,
            stopping: follow.stopping,
        };
        let _permit = follow.permit;
        let function = follow.filter.function.clone();
        let ended = stream
            .run(
                follow.store,
                follow.subscription,
                &follow.filter,
                follow.backlog,
                follow.still_allowed,
            )
            .await;
        if let Ok(end) = ended {
            // The last line gets a moment even when the node is stopping; a client that
            // does not read it sees the stream end without it.
            let last = stream.tx.send(end.line(&function));
            let _ = tokio::time::timeout(Duration::from_secs(1), last).await;
        }
    });
    crate::admin::channel_body(rx)
}

struct Stream {
    tx: mpsc::Sender<Bytes>,
    stopping: watch::Receiver<bool>,
    /// The id of the last record sent or passed over; records at or before it are not sent.
    last_id: i64,
}

impl Stream {
    async fn run(
        &mut self,
        store: Arc<dyn Store>,
        mut subscription: Subscription,
        filter: &Filter,
        backlog: Vec<StoredLog>,
        still_allowed: StillAllowed,
    ) -> Result<End, Gone> {
        for record in &backlog {
            self.send(line(record)).await?;
        }
        drop(backlog);
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep_alive.tick().await;
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        loop {
            let got = tokio::select! {
                got = subscription.rx.recv() => Some(got),
                _ = keep_alive.tick() => None,
                _ = recheck.tick() => {
                    if still_allowed() {
                        continue;
                    }
                    return Ok(End::Forbidden);
                }
                _ = self.stopping.wait_for(|stop| *stop) => return Ok(End::Stopping),
                () = self.tx.closed() => return Err(Gone),
            };
            let Some(got) = got else {
                self.send(Bytes::from_static(b"\n")).await?;
                continue;
            };
            match got {
                Ok(record) => {
                    if record.id > self.last_id {
                        self.last_id = record.id;
                        if filter.matches(&record.record) {
                            self.send(line(&record)).await?;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !self.catch_up(&*store, filter).await? {
                        return Ok(End::StoreUnavailable);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(End::Deleted),
            }
        }
    }

    /// Sends what the store holds after the last id sent, page by page, until it is all
    /// sent; the ring's copies of these records are then passed over by id. `false` if
    /// the store cannot be read.
    async fn catch_up(&mut self, store: &dyn Store, filter: &Filter) -> Result<bool, Gone> {
        loop {
            let page = match store.logs(filter.query(Some(self.last_id), PAGE)).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(function = %filter.function, "a log follower cannot read the store: {e}");
                    return Ok(false);
                }
            };
            for record in &page {
                self.last_id = record.id;
                self.send(line(record)).await?;
            }
            if page.len() < PAGE as usize {
                return Ok(true);
            }
        }
    }

    /// Waits for room in the body, unless the client leaves or the node stops meanwhile.
    async fn send(&mut self, chunk: Bytes) -> Result<(), Gone> {
        tokio::select! {
            sent = self.tx.send(chunk) => sent.map_err(|_| Gone),
            _ = self.stopping.wait_for(|stop| *stop) => Err(Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;
    use http_body_util::BodyExt;
    use moat_store::SqliteStore;

    fn record(function: &str, i: i64) -> LogRecord {
        LogRecord {
            function: function.into(),
            version: 1,
            request_id: format!("r{i}"),
            stream: "stdout".into(),
            at_ms: i,
            text: format!("line {i}"),
        }
    }

    /// Stores records `range` of `f` and publishes them, as the log writer does.
    async fn write(store: &dyn Store, feed: &LogFeed, range: std::ops::Range<i64>) {
        let stored = store
            .append_logs(range.map(|i| record("f", i)).collect())
            .await
            .unwrap();
        feed.publish(stored);
    }

    fn filter() -> Filter {
        Filter {
            function: "f".into(),
            request_id: None,
            since_ms: None,
        }
    }

    /// Subscribes, runs `between` (records stored while the backlog is being read), reads
    /// the backlog and starts the stream.
    async fn follow(
        feed: &Arc<LogFeed>,
        store: &Arc<dyn Store>,
        stopping: watch::Receiver<bool>,
        between: impl AsyncFnOnce(),
    ) -> GatewayBody {
        let subscription = feed.subscribe("f");
        between().await;
        let backlog = store.logs(filter().query(None, 1000)).await.unwrap();
        open(Follow {
            store: Arc::clone(store),
            subscription,
            filter: filter(),
            backlog,
            permit: feed.admit().unwrap(),
            still_allowed: Box::new(|| true),
            stopping,
        })
    }

    /// Reads lines until one satisfies `last`; returns them all.
    async fn lines_until(
        body: &mut GatewayBody,
        last: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let mut text = String::new();
        let mut lines = Vec::new();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("a line within 10 s")
                .expect("the stream goes on")
                .unwrap();
            text.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
            while let Some(at) = text.find('\n') {
                let line: String = text.drain(..=at).collect();
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let done = last(&v);
                lines.push(v);
                if done {
                    return lines;
                }
            }
        }
    }

    fn at_ms(lines: &[serde_json::Value]) -> Vec<i64> {
        lines.iter().filter_map(|l| l["at_ms"].as_i64()).collect()
    }

    #[tokio::test]
    async fn backlog_then_live_records_each_once_in_order() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let feed = Arc::new(LogFeed::default());
        // Stored before anyone follows: not published, only in the backlog.
        write(&*store, &feed, 0..5).await;
        let (_stop, stopping) = watch::channel(false);
        // Stored after the subscription but before the backlog read: both in the backlog
        // and published, so sent from one and passed over in the other.
        let mut body = follow(&feed, &store, stopping, async || {
            write(&*store, &feed, 5..8).await;
        })
        .await;
        write(&*store, &feed, 8..10).await;
        let lines = lines_until(&mut body, |v| v["at_ms"] == 9).await;
        assert_eq!(at_ms(&lines), (0..10).collect::<Vec<_>>());
        let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(lines[0]["text"], "line 0");
        // Another function's records do not reach this follower.
        feed.publish(store.append_logs(vec![record("g", 100)]).await.unwrap());
        write(&*store, &feed, 10..11).await;
        let lines = lines_until(&mut body, |v| v["at_ms"] == 10).await;
        assert_eq!(at_ms(&lines), vec![10]);
    }

    #[tokio::test]
    async fn a_follower_that_falls_behind_reads_the_store_and_loses_nothing() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let feed = Arc::new(LogFeed::default());
        let (_stop, stopping) = watch::channel(false);
        let mut body = follow(&feed, &store, stopping, async || {}).await;
        // Nobody reads the body: the stream's task waits, and its ring overflows.
        let total = (RING * 4) as i64;
        for start in (0..total).step_by(100) {
            write(&*store, &feed, start..(start + 100).min(total)).await;
            tokio::task::yield_now().await;
        }
        let lines = lines_until(&mut body, |v| v["at_ms"] == total - 1).await;
        assert_eq!(at_ms(&lines), (0..total).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn streams_end_when_the_function_is_deleted_or_the_node_stops() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let feed = Arc::new(LogFeed::default());
        let (stop, stopping) = watch::channel(false);
        let mut deleted = follow(&feed, &store, stopping.clone(), async || {}).await;
        write(&*store, &feed, 0..1).await;
        feed.function_deleted("f");
        // What was published before the delete still arrives, then the end.
        let lines = lines_until(&mut deleted, |v| v.get("end").is_some()).await;
        assert_eq!(at_ms(&lines), vec![0]);
        assert_eq!(lines[1]["end"], "deleted");
        assert!(deleted.frame().await.is_none());

        let mut stopped = follow(&feed, &store, stopping, async || {}).await;
        lines_until(&mut stopped, |v| v["at_ms"] == 0).await;
        stop.send(true).unwrap();
        let lines = lines_until(&mut stopped, |v| v.get("end").is_some()).await;
        assert_eq!(lines[0]["end"], "stopping");
        assert!(stopped.frame().await.is_none());
    }

    #[tokio::test]
    async fn no_channel_is_kept_without_followers() {
        let feed = Arc::new(LogFeed::default());
        let a = feed.subscribe("f");
        let b = feed.subscribe("f");
        drop(a);
        assert_eq!(feed.channels.lock().unwrap().by_function.len(), 1);
        drop(b);
        assert!(feed.channels.lock().unwrap().by_function.is_empty());
        assert_eq!(feed.listening.load(Ordering::SeqCst), 0);
        // A follower of a deleted function, gone after the function came back, leaves the
        // new channel alone.
        let old = feed.subscribe("f");
        feed.function_deleted("f");
        let new = feed.subscribe("f");
        drop(old);
        assert_eq!(feed.channels.lock().unwrap().by_function.len(), 1);
        drop(new);
        assert!(feed.channels.lock().unwrap().by_function.is_empty());
    }
}
