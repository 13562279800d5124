//! Alerts: rules (`moat alerts add FILE.toml`, kept in the store) judged against every audit
//! event as it is recorded; a firing goes to its sinks — the node's log, or a webhook POST of
//! the firing's JSON signed with `x-moat-signature: sha256=<HMAC>` (SPEC §4; the key is the
//! Moat secret the sink names), retried with backoff. Deduplication and quiet periods are
//! the engine's (`moat-telemetry::alerts`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use moat_telemetry::alerts::{AlertEngine, AlertRule, Firing, RetrySchedule, Sink, sign_webhook};
use moat_telemetry::audit::AuditEvent;

use crate::secrets::Vault;

pub struct Alerts {
    engine: Mutex<AlertEngine>,
    vault: Arc<Vault>,
    pub fired: std::sync::atomic::AtomicU64,
    pub delivery_failures: std::sync::atomic::AtomicU64,
}

impl Alerts {
    pub fn new(rules: Vec<AlertRule>, vault: Arc<Vault>) -> anyhow::Result<Arc<Alerts>> {
        Ok(Arc::new(Alerts {
            engine: Mutex::new(AlertEngine::new(rules)?),
            vault,
            fired: Default::default(),
            delivery_failures: Default::default(),
        }))
    }

    /// Replaces the rules (those unchanged keep their windows and quiet periods).
    pub fn set_rules(&self, rules: Vec<AlertRule>) -> anyhow::Result<()> {
        let mut e = self
            .engine
            .lock()
            .map_err(|_| anyhow::anyhow!("alert engine poisoned"))?;
        e.set_rules(rules)?;
        Ok(())
    }

    /// Judges one event; delivers what fires in the background.
    pub fn observe(self: &Arc<Self>, event: &AuditEvent) {
        let firings = match self.engine.lock() {
            Ok(mut e) => e.observe(event, moat_telemetry::audit::now_ms()),
            Err(_) => return,
        };
        for firing in firings {
            self.deliver(firing);
        }
    }

    /// Sends a firing to each of its sinks (used by `moat alerts test` too).
    pub fn deliver(self: &Arc<Self>, firing: Firing) {
        self.fired
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = firing.body();
        for sink in firing.sinks.clone() {
            match sink {
                Sink::Log {} => {
                    tracing::warn!(
                        alert = %firing.rule,
                        payload = %String::from_utf8_lossy(&body),
                        "alert fired"
                    );
                }
                Sink::Webhook { url, secret_name } => {
                    let key = secret_name.as_deref().and_then(|n| self.vault.get(n));
                    let (me, body, rule) = (Arc::clone(self), body.clone(), firing.rule.clone());
                    tokio::spawn(async move {
                        me.post_with_retries(&rule, &url, key.as_deref(), body)
                            .await;
                    });
                }
            }
        }
    }

    async fn post_with_retries(&self, rule: &str, url: &str, key: Option<&str>, body: Vec<u8>) {
        let schedule = RetrySchedule::default();
        let mut retry = 0;
        loop {
            match post(url, key, &body).await {
                Ok(()) => return,
                Err(e) => {
                    let Some(delay) = schedule.delay_with_jitter(retry, rand_u64()) else {
                        self.delivery_failures
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!(alert = rule, url, "alert webhook failed for good: {e:#}");
                        return;
                    };
                    tracing::warn!(
                        alert = rule,
                        url,
                        retry,
                        "alert webhook failed, retrying: {e:#}"
                    );
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
            }
        }
    }
}

/// The rules kept in the store.
pub async fn load_rules(store: &dyn moat_store::Store) -> anyhow::Result<Vec<AlertRule>> {
    store
        .alert_rules()
        .await?
        .into_iter()
        .map(|(name, json)| {
            moat_telemetry::alerts::parse_rule_json(&json)
                .map_err(|e| anyhow::anyhow!("stored alert rule `{name}`: {e}"))
        })
        .collect()
}

/// Parses a rules file (TOML `[[alert]]` tables) and checks what the node needs beyond the
/// format: every webhook names the secret that keys its signature, and that secret exists.
pub fn parse_rules(text: &str, vault: &Vault) -> Result<Vec<AlertRule>, String> {
    let rules = moat_telemetry::alerts::parse_rules_toml(text).map_err(|e| e.to_string())?;
    for rule in &rules {
        for sink in &rule.sinks {
            if let Sink::Webhook { secret_name, .. } = sink {
                match secret_name {
                    None => {
                        return Err(format!(
                            "alert `{}`: a webhook sink needs `secret_name`, the Moat secret whose value signs it (x-moat-signature)",
                            rule.name
                        ));
                    }
                    Some(n) if vault.get(n).is_none() => {
                        return Err(format!(
                            "alert `{}`: secret `{n}` does not exist",
                            rule.name
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    Ok(rules)
}

impl Alerts {
    /// A firing of `rule` made up for `moat alerts test`, sent to its sinks.
    pub fn test(self: &Arc<Self>, name: &str) -> Result<(), String> {
        let rule = self
            .engine
            .lock()
            .map_err(|_| "alert engine poisoned".to_string())?
            .rules()
            .find(|r| r.name == name)
            .cloned()
            .ok_or_else(|| format!("alert `{name}` not found"))?;
        let now = moat_telemetry::audit::now_ms();
        self.deliver(Firing {
            rule: rule.name.clone(),
            group_by: rule.group_by,
            group: Some("test".into()),
            count: 0,
            total: None,
            threshold: rule.threshold,
            window: rule.window,
            first_event_ms: now,
            last_event_ms: now,
            fired_at_ms: now,
            suppressed: 0,
            sinks: rule.sinks.clone(),
        });
        Ok(())
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// One POST of the alert JSON; any status but 2xx is a failure.
async fn post(url: &str, key: Option<&str>, body: &[u8]) -> anyhow::Result<()> {
    let mut req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "moat-alerts");
    if let Some(key) = key {
        req = req.header("x-moat-signature", sign_webhook(body, key.as_bytes()));
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body)))?;
    let status = crate::outbound::request(req).await?;
    if !status.is_success() {
        anyhow::bail!("the webhook answered {status}");
    }
    Ok(())
}
