//! `GET /v1/events`: the event hub as server-sent events.
//!
//! Each stream is a task that moves events from its broadcast receiver into the response
//! body through a small channel. When the client reads slowly, that task waits, its
//! receiver falls behind the ring, and the client gets a `lagged` event saying how many it
//! missed; the node and other subscribers never wait for it. A comment every
//! [`KEEP_ALIVE`] keeps proxies from closing an idle stream and notices a vanished client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moat_gateway::GatewayBody;
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};

use crate::events::{Event, Hub, KINDS};

pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a running stream's caller is judged again.
pub const RECHECK: Duration = Duration::from_secs(2);
/// Open streams per node at most (each is a task and a connection).
pub const MAX_STREAMS: usize = 64;

/// Parses `?types=a,b`: `None` (all kinds) when absent or empty, an error naming an
/// unknown kind.
pub fn parse_types(query: Option<&str>) -> Result<Option<Vec<&'static str>>, String> {
    let Some(list) = query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "types")
        .map(|(_, v)| v.replace("%2C", ",").replace("%2c", ","))
    else {
        return Ok(None);
    };
    let mut kinds = Vec::new();
    for name in list.split(',').filter(|s| !s.is_empty()) {
        match KINDS.iter().find(|k| **k == name) {
            Some(k) => kinds.push(*k),
            None => {
                return Err(format!(
                    "unknown event type `{name}`; expected some of {}",
                    KINDS.join(", ")
                ));
            }
        }
    }
    Ok((!kinds.is_empty()).then_some(kinds))
}

fn frame(event: &Event) -> Bytes {
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.id, event.kind, event.json
    ))
}

/// Whether the stream's caller may still read it.
pub type StillAllowed = Box<dyn Fn() -> bool + Send + Sync>;

/// Starts a stream over `hub`, limited to `kinds`; `permit` is held while it runs. Every
/// [`RECHECK`] the caller is judged again (`still_allowed`), and the stream ends when it
/// may no longer read.
pub fn open(
    hub: &Arc<Hub>,
    kinds: Option<Vec<&'static str>>,
    permit: OwnedSemaphorePermit,
    still_allowed: StillAllowed,
) -> GatewayBody {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let mut events = hub.subscribe();
    let mut stopping = hub.stopping();
    tokio::spawn(async move {
        let _permit = permit;
        if tx
            .send(Bytes::from_static(b"retry: 3000\n: connected\n\n"))
            .await
            .is_err()
        {
            return;
        }
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep_alive.tick().await;
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        loop {
            let chunk = tokio::select! {
                got = events.rx.recv() => match got {
                    Ok(ev) if kinds.as_ref().is_none_or(|k| k.contains(&ev.kind)) => frame(&ev),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => Bytes::from(format!(
                        "event: lagged\ndata: {{\"missed\":{n}}}\n\n"
                    )),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
                _ = recheck.tick() => {
                    if still_allowed() {
                        continue;
                    }
                    break;
                }
                _ = stopping.wait_for(|stop| *stop) => break,
                () = tx.closed() => break,
            };
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    crate::admin::channel_body(rx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn types_are_checked() {
        assert_eq!(parse_types(None).unwrap(), None);
        assert_eq!(parse_types(Some("x=1")).unwrap(), None);
        assert_eq!(
            parse_types(Some("types=audit%2Cdeploy")).unwrap(),
            Some(vec!["audit", "deploy"])
        );
        assert!(parse_types(Some("types=audit,secrets")).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_says_it_is_alive_every_15_seconds() {
        let hub = Arc::new(Hub::default());
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        let mut body = open(&hub, None, permit, Box::new(|| true));
        body.frame().await.unwrap().unwrap();
        let start = tokio::time::Instant::now();
        for n in 1..=2 {
            let chunk = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(&chunk[..], b": keep-alive\n\n");
            assert_eq!(start.elapsed(), KEEP_ALIVE * n);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_ends_once_its_caller_may_no_longer_read_it() {
        let hub = Arc::new(Hub::default());
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        let allowed = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = Arc::clone(&allowed);
        let mut body = open(
            &hub,
            None,
            permit,
            Box::new(move || flag.load(std::sync::atomic::Ordering::Relaxed)),
        );
        body.frame().await.unwrap().unwrap();
        tokio::time::sleep(RECHECK * 3).await;
        allowed.store(false, std::sync::atomic::Ordering::Relaxed);
        let start = tokio::time::Instant::now();
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
        assert!(start.elapsed() <= RECHECK);
    }

    #[tokio::test]
    async fn a_slow_reader_gets_a_lag_count_and_the_stream_ends_with_the_node() {
        let hub = Arc::new(Hub::default());
        let permits = Arc::new(tokio::sync::Semaphore::new(1));
        let permit = Arc::clone(&permits).try_acquire_owned().unwrap();
        let mut body = open(&hub, Some(vec!["deploy"]), permit, Box::new(|| true));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(first.starts_with(b"retry:"));
        // The reader is not reading: the feeding task fills its channel, then its receiver
        // falls behind the ring.
        tokio::task::yield_now().await;
        for i in 0..3000 {
            hub.deploy("deploy", "f", Some(i));
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let mut text = String::new();
        while !text.contains("event: lagged") {
            let chunk = body.frame().await.unwrap().unwrap().into_data().unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert!(text.contains("event: deploy\ndata: {"), "{text}");
        hub.close();
        while let Some(f) = body.frame().await {
            f.unwrap();
        }
        // The task has ended and given its slot back.
        tokio::time::timeout(Duration::from_secs(5), permits.acquire())
            .await
            .unwrap()
            .unwrap()
            .forget();
    }
}
