//! Supply-chain checks at deploy and after: signatures against trusted keys, the
//! component's bill of materials, and advisory findings, under the node settings
//! `require_signature` and `block_severity` (kept in the store, shared by a cluster).
//!
//! At deploy, [`Supply::check`] judges a component before anything is stored: a refusal
//! leaves the serving version serving. After an advisory import, [`Supply::import`]
//! re-scans every stored version and records each finding that was not there before as
//! an audit event (`advisory.found.<severity>`), which alert rules can watch.

use std::sync::{Arc, RwLock};

use moat_store::{AdvisoryRow, ImportCounts, Store, SupplyRecord};
use moat_supply::{AdvisoryDb, Finding, PublicKeyText, Sbom, SbomSource, Severity};
use moat_telemetry::audit::{AuditEvent, Outcome, actor, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::Audit;

/// The node settings this module reads, with what each accepts.
pub const SETTINGS: &[(&str, &str)] = &[
    (
        "require_signature",
        "`false` (default), `true` (every function), or comma-separated function name patterns (`*` matches any run of characters), e.g. `prod-*,payments`",
    ),
    (
        "block_severity",
        "`none` (default: findings are reported, never block), `low`, `medium`, `high` or `critical`: a deploy with an unignored finding at least this severe fails",
    ),
];

/// Why a deploy was refused on supply-chain grounds.
#[derive(Debug, thiserror::Error)]
pub enum SupplyError {
    #[error("signature required for `{function}` (node setting `require_signature`): {reason}")]
    Signature { function: String, reason: String },
    #[error(
        "`{function}` depends on packages with advisories at or above `{threshold}` (node setting `block_severity`): {list}"
    )]
    Vulnerable {
        function: String,
        threshold: Severity,
        list: String,
        findings: Vec<Finding>,
    },
    #[error("invalid component: {0}")]
    Component(String),
    #[error("store error: {0}")]
    Store(String),
}

impl From<moat_store::StoreError> for SupplyError {
    fn from(e: moat_store::StoreError) -> Self {
        SupplyError::Store(e.to_string())
    }
}

/// The dependency list a client read beside the manifest (an SBOM file or lockfiles),
/// sent with the deploy. A component's own `cargo auditable` data takes precedence.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSbom {
    pub source: SbomSource,
    pub sbom: Sbom,
}

/// Parsed node settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Function name patterns that must be signed; `["*"]` for all.
    pub require_signature: Vec<String>,
    pub block_severity: Option<Severity>,
}

impl Settings {
    fn from_rows(rows: &[(String, String)]) -> Settings {
        let mut s = Settings::default();
        for (key, value) in rows {
            match key.as_str() {
                "require_signature" => s.require_signature = signature_patterns(value),
                "block_severity" => {
                    s.block_severity = value.parse().ok().filter(|v| *v != Severity::None)
                }
                _ => {}
            }
        }
        s
    }

    fn signature_required(&self, function: &str) -> bool {
        self.require_signature
            .iter()
            .any(|p| glob_match(p.as_bytes(), function.as_bytes()))
    }
}

fn signature_patterns(value: &str) -> Vec<String> {
    match value.trim() {
        "false" | "" => Vec::new(),
        "true" => vec!["*".into()],
        list => list.split(',').map(|p| p.trim().to_string()).collect(),
    }
}

/// Checks a setting's value; returns it normalized, or what was expected.
pub fn check_setting(key: &str, value: &str) -> Result<String, String> {
    let expected = SETTINGS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, e)| *e)
        .ok_or_else(|| {
            let known: Vec<String> = SETTINGS.iter().map(|(k, _)| format!("`{k}`")).collect();
            format!("unknown setting `{key}`; known: {}", known.join(", "))
        })?;
    let bad = || format!("`{key}`: expected {expected}; found `{value}`");
    match key {
        "require_signature" => {
            let v = value.trim();
            if v == "true" || v == "false" {
                return Ok(v.to_string());
            }
            let patterns = signature_patterns(v);
            let valid = |p: &String| {
                !p.is_empty()
                    && p.len() <= 63
                    && p.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'*'
                    })
            };
            if patterns.is_empty() || !patterns.iter().all(valid) {
                return Err(bad());
            }
            Ok(patterns.join(","))
        }
        "block_severity" => value
            .parse::<Severity>()
            .map(|s| s.to_string())
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, tr)| t == c && glob_match(rest, tr)),
    }
}

/// `GHSA-… (high, regex 1.5.4, fixed in 1.5.5); …`
fn describe(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} ({}, {} {}{})",
                f.id,
                f.severity,
                f.package,
                f.version,
                f.fixed
                    .as_deref()
                    .map(|v| format!(", fixed in {v}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a deploy's checks found, to store with the version.
pub struct Checked {
    pub record: SupplyRecord,
    /// Findings that are not covered by an unexpired exception.
    pub findings: Vec<Finding>,
    /// Findings covered by an exception (reported, never blocking).
    pub ignored: Vec<Finding>,
}

/// A finding that a re-scan found for the first time.
#[derive(Debug, Clone, Serialize)]
pub struct NewFinding {
    pub function: String,
    /// The function's version (the finding's own `version` is the package's).
    pub function_version: i64,
    #[serde(flatten)]
    pub finding: Finding,
}

pub struct Supply {
    store: Arc<dyn Store>,
    audit: Arc<Audit>,
    db: RwLock<Arc<AdvisoryDb>>,
    /// One import (and re-scan) at a time.
    importing: tokio::sync::Mutex<()>,
}

impl Supply {
    /// Loads the stored advisory database.
    pub async fn load(store: Arc<dyn Store>, audit: Arc<Audit>) -> anyhow::Result<Supply> {
        let rows = store.advisories().await?;
        let db = AdvisoryDb::from_records(rows.iter().map(String::as_str))?;
        Ok(Supply {
            store,
            audit,
            db: RwLock::new(Arc::new(db)),
            importing: tokio::sync::Mutex::new(()),
        })
    }

    fn db(&self) -> Arc<AdvisoryDb> {
        match self.db.read() {
            Ok(db) => Arc::clone(&db),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Advisories loaded.
    pub fn advisory_count(&self) -> usize {
        self.db().len()
    }

    pub async fn settings(&self) -> Result<Settings, SupplyError> {
        Ok(Settings::from_rows(&self.store.settings().await?))
    }

    /// Judges a component for `function`: its signature (required or not, a signature that
    /// is sent must verify), its bill of materials, and its findings.
    pub async fn check(
        &self,
        function: &str,
        component: &[u8],
        signature: Option<&str>,
        client_sbom: Option<ClientSbom>,
    ) -> Result<Checked, SupplyError> {
        let settings = self.settings().await?;
        let signer = self
            .check_signature(function, component, signature, &settings)
            .await?;
        let (sbom, source) = match Sbom::from_cargo_auditable(component)
            .map_err(|e| SupplyError::Component(e.to_string()))?
        {
            Some(sbom) => (sbom, SbomSource::CargoAuditable),
            None => match client_sbom {
                Some(c) => (c.sbom, c.source),
                None => (
                    Sbom {
                        components: Vec::new(),
                        unpinned: Vec::new(),
                    },
                    SbomSource::None,
                ),
            },
        };
        let (findings, ignored) = self.judge(self.db().scan(&sbom)).await?;
        if let Some(threshold) = settings.block_severity {
            let blocking: Vec<Finding> = findings
                .iter()
                .filter(|f| f.severity >= threshold)
                .cloned()
                .collect();
            if !blocking.is_empty() {
                return Err(SupplyError::Vulnerable {
                    function: function.to_string(),
                    threshold,
                    list: describe(&blocking),
                    findings: blocking,
                });
            }
        }
        let to_json = |v: &serde_json::Value| v.to_string();
        Ok(Checked {
            record: SupplyRecord {
                signer,
                sbom_source: to_json(&json!(source)),
                sbom_json: to_json(&json!(sbom)),
                findings_json: to_json(&json!(findings)),
            },
            findings,
            ignored,
        })
    }

    /// Judges a stored version under today's settings, exceptions and advisories (before a
    /// rollback serves it again): unsigned where a signature is now required, or with a
    /// finding at or above `block_severity`, it is refused like a deploy.
    pub async fn check_stored(&self, function: &str, version: i64) -> Result<(), SupplyError> {
        let settings = self.settings().await?;
        let record = self.store.version_supply(function, version).await?;
        let signer = record.as_ref().and_then(|r| r.signer.as_ref());
        if settings.signature_required(function) && signer.is_none() {
            return Err(SupplyError::Signature {
                function: function.to_string(),
                reason: format!("version {version} was deployed without a trusted signature"),
            });
        }
        let Some(threshold) = settings.block_severity else {
            return Ok(());
        };
        let sbom = record
            .and_then(|r| serde_json::from_str::<Sbom>(&r.sbom_json).ok())
            .unwrap_or(Sbom {
                components: Vec::new(),
                unpinned: Vec::new(),
            });
        let (findings, _) = self.judge(self.db().scan(&sbom)).await?;
        let blocking: Vec<Finding> = findings
            .into_iter()
            .filter(|f| f.severity >= threshold)
            .collect();
        if blocking.is_empty() {
            return Ok(());
        }
        Err(SupplyError::Vulnerable {
            function: function.to_string(),
            threshold,
            list: describe(&blocking),
            findings: blocking,
        })
    }

    async fn check_signature(
        &self,
        function: &str,
        component: &[u8],
        signature: Option<&str>,
        settings: &Settings,
    ) -> Result<Option<String>, SupplyError> {
        let required = settings.signature_required(function);
        if signature.is_none() && !required {
            return Ok(None);
        }
        let keys = self.store.trusted_keys().await?;
        let trusted: Vec<(String, PublicKeyText)> = keys
            .iter()
            .map(|k| (k.name.clone(), PublicKeyText(k.public_key.clone())))
            .collect();
        match moat_supply::verify(component, signature, &trusted) {
            Ok(name) => {
                let id = keys
                    .iter()
                    .find(|k| k.name == name)
                    .map(|k| k.key_id.as_str())
                    .unwrap_or_default();
                Ok(Some(format!("{name} ({id})")))
            }
            Err(moat_supply::SignatureError::UntrustedKey { .. }) if !required => Ok(None),
            Err(e) => Err(SupplyError::Signature {
                function: function.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Splits findings into (counted, covered by an unexpired exception).
    async fn judge(
        &self,
        findings: Vec<Finding>,
    ) -> Result<(Vec<Finding>, Vec<Finding>), SupplyError> {
        let now = now_ms();
        let ignores = self.store.advisory_ignores().await?;
        let covered = |f: &Finding| {
            ignores
                .iter()
                .any(|i| i.until_ms > now && (i.id == f.id || f.aliases.contains(&i.id)))
        };
        Ok(findings.into_iter().partition(|f| !covered(f)))
    }

    /// Stores advisories, reloads the database, and re-scans every stored version. Each
    /// finding not recorded before is an audit event (so alert rules see it).
    pub async fn import(
        &self,
        rows: Vec<AdvisoryRow>,
    ) -> Result<(ImportCounts, Vec<NewFinding>), SupplyError> {
        let _one = self.importing.lock().await;
        let counts = self.store.import_advisories(rows).await?;
        let stored = self.store.advisories().await?;
        let db = AdvisoryDb::from_records(stored.iter().map(String::as_str))
            .map_err(|e| SupplyError::Store(e.to_string()))?;
        let db = Arc::new(db);
        match self.db.write() {
            Ok(mut slot) => *slot = Arc::clone(&db),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&db),
        }
        let mut new = Vec::new();
        for (function, version, record) in self.store.all_version_supply().await? {
            let Ok(sbom) = serde_json::from_str::<Sbom>(&record.sbom_json) else {
                tracing::warn!(%function, version, "stored bill of materials unreadable; not re-scanned");
                continue;
            };
            let before: Vec<Finding> =
                serde_json::from_str(&record.findings_json).unwrap_or_default();
            let (findings, _) = self.judge(db.scan(&sbom)).await?;
            let known = |f: &Finding| {
                before
                    .iter()
                    .any(|b| b.id == f.id && b.package == f.package && b.version == f.version)
            };
            for f in findings.iter().filter(|f| !known(f)) {
                self.audit.record(
                    AuditEvent::new(
                        now_ms(),
                        actor::NODE,
                        format!("advisory.found.{}", f.severity),
                        format!("{function}@{version}"),
                        Outcome::Detected,
                    )
                    .with_function(&function)
                    .with_details(json!({
                        "version": version, "advisory": f.id, "package": f.package,
                        "installed": f.version, "fixed": f.fixed, "severity": f.severity,
                    })),
                );
                new.push(NewFinding {
                    function: function.clone(),
                    function_version: version,
                    finding: f.clone(),
                });
            }
            let json = json!(findings).to_string();
            if json != record.findings_json {
                self.store
                    .set_version_findings(&function, version, &json)
                    .await?;
            }
        }
        Ok((counts, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_normalized() {
        assert_eq!(check_setting("block_severity", "HIGH").unwrap(), "high");
        assert_eq!(
            check_setting("block_severity", "moderate").unwrap(),
            "medium"
        );
        assert!(check_setting("block_severity", "severe").is_err());
        assert_eq!(check_setting("require_signature", "true").unwrap(), "true");
        assert_eq!(
            check_setting("require_signature", "prod-*, payments").unwrap(),
            "prod-*,payments"
        );
        assert!(check_setting("require_signature", "Prod").is_err());
        assert!(check_setting("require_signature", ",").is_err());
        let e = check_setting("retention", "1d").unwrap_err();
        assert!(e.contains("`require_signature`"), "{e}");
    }

    #[test]
    fn signature_patterns_match_names() {
        let s = Settings::from_rows(&[("require_signature".into(), "prod-*,payments".into())]);
        assert!(s.signature_required("prod-api"));
        assert!(s.signature_required("payments"));
        assert!(!s.signature_required("payments-v2"));
        assert!(!s.signature_required("dev-api"));
        let all = Settings::from_rows(&[("require_signature".into(), "true".into())]);
        assert!(all.signature_required("anything"));
        let off = Settings::from_rows(&[("require_signature".into(), "false".into())]);
        assert!(!off.signature_required("anything"));
        let none = Settings::from_rows(&[("block_severity".into(), "none".into())]);
        assert_eq!(none.block_severity, None);
    }
}
