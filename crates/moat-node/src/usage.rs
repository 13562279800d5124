//! Allowed uses of permissions, aggregated (function, action, resource → count, first and
//! last seen) off the request path, and `moat iam review`: granted against used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moat_manifest::{FunctionSpec, HostPattern};
use moat_runtime::config::UsageObserver;
use moat_runtime::egress::HostGrant;
use moat_store::{Store, UsageRecord, now_ms};
use serde_json::{Value, json};

type Key = (String, &'static str, String);

/// Counts uses in memory; [`Usage::flush`] adds them to the store.
#[derive(Default)]
pub struct Usage {
    pending: Mutex<HashMap<Key, (u64, i64, i64)>>,
}

impl UsageObserver for Usage {
    fn used(&self, function: &str, action: &'static str, resource: &str) {
        let now = now_ms();
        if let Ok(mut m) = self.pending.lock() {
            let key = (function.to_string(), action, resource.to_string());
            let e = m.entry(key).or_insert((0, now, now));
            e.0 += 1;
            e.2 = now;
        }
    }
}

impl Usage {
    pub async fn flush(&self, store: &Arc<dyn Store>) -> anyhow::Result<()> {
        let drained: Vec<UsageRecord> = match self.pending.lock() {
            Ok(mut m) => m
                .drain()
                .map(
                    |((function, action, resource), (count, first, last))| UsageRecord {
                        function,
                        action: action.to_string(),
                        resource,
                        count,
                        first_seen_ms: first,
                        last_seen_ms: last,
                    },
                )
                .collect(),
            Err(_) => Vec::new(),
        };
        store.record_usage(drained).await?;
        Ok(())
    }

    /// Flushes every few seconds for the life of the node.
    pub fn start_flushing(self: &Arc<Self>, store: Arc<dyn Store>) {
        let usage = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Err(e) = usage.flush(&store).await {
                    tracing::error!("cannot record permission usage: {e}");
                }
            }
        });
    }
}

/// A manifest host grant in the form usage is recorded under.
fn grant_key(pattern: &str) -> String {
    match pattern.parse::<HostPattern>() {
        Ok(p) => HostGrant {
            https: p.https,
            host: p.host,
            port: p.port,
        }
        .to_string(),
        Err(_) => pattern.to_string(),
    }
}

/// One function's review: what is granted, what was used since `since_ms`, what was not,
/// and the least-privilege `[permissions]` block.
pub fn review(spec: &FunctionSpec, used: &[UsageRecord]) -> Value {
    let used_by = |action: &str| -> Vec<&str> {
        used.iter()
            .filter(|u| u.function == spec.name && u.action == action)
            .map(|u| u.resource.as_str())
            .collect()
    };
    let used_hosts = used_by("http:request");
    let used_secrets = used_by("secret:read");
    let p = &spec.permissions;
    let (hosts_used, hosts_unused): (Vec<&String>, Vec<&String>) = p
        .outbound_hosts
        .iter()
        .partition(|h| used_hosts.contains(&grant_key(h).as_str()));
    let (secrets_used, secrets_unused): (Vec<&String>, Vec<&String>) = p
        .secrets
        .iter()
        .partition(|s| used_secrets.contains(&s.as_str()));
    // A bucket counts as used if it was read or written.
    let used_buckets: Vec<&str> = used_by("kv:read")
        .into_iter()
        .chain(used_by("kv:write"))
        .collect();
    let (kv_used, kv_unused): (Vec<&String>, Vec<&String>) =
        p.kv.iter()
            .partition(|b| used_buckets.contains(&b.as_str()));
    let list = |items: &[&String]| {
        items
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let suggested = format!(
        "[permissions]\noutbound_hosts = [{}]\nsecrets = [{}]\nkv = [{}]\n",
        list(&hosts_used),
        list(&secrets_used),
        list(&kv_used)
    );
    json!({
        "function": spec.name,
        "granted": { "outbound_hosts": p.outbound_hosts, "secrets": p.secrets, "kv": p.kv },
        "used": used.iter().filter(|u| u.function == spec.name).collect::<Vec<_>>(),
        "unused": { "outbound_hosts": hosts_unused, "secrets": secrets_unused, "kv": kv_unused },
        "suggested": suggested,
    })
}
