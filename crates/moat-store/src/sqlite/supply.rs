//! [`SupplyStore`] on SQLite: trusted keys, settings, advisories, exceptions and each
//! version's supply-chain record.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::rows::query_all;
use super::{SqliteStore, backend};
use crate::supply::{
    AdvisoryIgnore, AdvisoryRow, ImportCounts, SupplyRecord, SupplyStore, TrustedKey,
};
use crate::{Result, StoreError, now_ms};

/// Writes a version's record inside the deploy's transaction.
pub(super) fn insert_version_supply(
    tx: &Transaction<'_>,
    function: &str,
    version: i64,
    s: &SupplyRecord,
) -> Result<()> {
    tx.execute(
        "INSERT INTO version_supply (function, version, signer, sbom_source, sbom_json, findings_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![function, version, s.signer, s.sbom_source, s.sbom_json, s.findings_json],
    )
    .map_err(backend)?;
    Ok(())
}

fn supply_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<SupplyRecord> {
    Ok(SupplyRecord {
        signer: r.get(at)?,
        sbom_source: r.get(at + 1)?,
        sbom_json: r.get(at + 2)?,
        findings_json: r.get(at + 3)?,
    })
}

#[async_trait]
impl SupplyStore for SqliteStore {
    async fn put_trusted_key(&self, key: TrustedKey) -> Result<()> {
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT INTO trusted_keys (name, key_id, public_key, added_at_ms)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
                    params![key.name, key.key_id, key.public_key, key.added_at_ms],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(format!(
                    "trusted key `{}`",
                    key.name
                )));
            }
            Ok(())
        })
        .await
    }

    async fn delete_trusted_key(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM trusted_keys WHERE name = ?1", params![name])
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn trusted_keys(&self) -> Result<Vec<TrustedKey>> {
        self.with(|c| {
            query_all(
                c,
                "SELECT name, key_id, public_key, added_at_ms FROM trusted_keys ORDER BY name",
                [],
                |r| {
                    Ok(TrustedKey {
                        name: r.get(0)?,
                        key_id: r.get(1)?,
                        public_key: r.get(2)?,
                        added_at_ms: r.get(3)?,
                    })
                },
            )
        })
        .await
    }

    async fn put_setting(&self, key: &str, value: Option<String>) -> Result<()> {
        let key = key.to_string();
        self.with(move |c| {
            match value {
                Some(v) => c.execute(
                    "INSERT INTO settings (key, value, updated_at_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                         updated_at_ms = excluded.updated_at_ms",
                    params![key, v, now_ms()],
                ),
                None => c.execute("DELETE FROM settings WHERE key = ?1", params![key]),
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn settings(&self) -> Result<Vec<(String, String)>> {
        self.with(|c| {
            query_all(c, "SELECT key, value FROM settings ORDER BY key", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .await
    }

    async fn import_advisories(&self, rows: Vec<AdvisoryRow>) -> Result<ImportCounts> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let mut counts = ImportCounts::default();
            {
                let mut get = tx
                    .prepare("SELECT modified, json FROM advisories WHERE id = ?1")
                    .map_err(backend)?;
                let mut put = tx
                    .prepare(
                        "INSERT INTO advisories (id, modified, json) VALUES (?1, ?2, ?3)
                         ON CONFLICT (id) DO UPDATE SET modified = excluded.modified,
                             json = excluded.json",
                    )
                    .map_err(backend)?;
                for row in rows {
                    let stored: Option<(String, String)> = get
                        .query_row(params![row.id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                        .map_err(backend)?;
                    match stored {
                        // RFC 3339 in UTC (as OSV writes it) orders as text.
                        Some((modified, json)) if modified > row.modified || json == row.json => {
                            counts.unchanged += 1;
                            continue;
                        }
                        Some(_) => counts.updated += 1,
                        None => counts.added += 1,
                    }
                    put.execute(params![row.id, row.modified, row.json])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)?;
            Ok(counts)
        })
        .await
    }

    async fn advisories(&self) -> Result<Vec<String>> {
        self.with(|c| {
            query_all(c, "SELECT json FROM advisories ORDER BY id", [], |r| {
                r.get(0)
            })
        })
        .await
    }

    async fn put_advisory_ignore(&self, i: AdvisoryIgnore) -> Result<()> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO advisory_ignores (id, reason, until_ms, created_by, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET reason = excluded.reason,
                     until_ms = excluded.until_ms, created_by = excluded.created_by,
                     created_at_ms = excluded.created_at_ms",
                params![i.id, i.reason, i.until_ms, i.created_by, i.created_at_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_advisory_ignore(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM advisory_ignores WHERE id = ?1", params![id])
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn advisory_ignores(&self) -> Result<Vec<AdvisoryIgnore>> {
        self.with(|c| {
            query_all(
                c,
                "SELECT id, reason, until_ms, created_by, created_at_ms
                     FROM advisory_ignores ORDER BY id",
                [],
                |r| {
                    Ok(AdvisoryIgnore {
                        id: r.get(0)?,
                        reason: r.get(1)?,
                        until_ms: r.get(2)?,
                        created_by: r.get(3)?,
                        created_at_ms: r.get(4)?,
                    })
                },
            )
        })
        .await
    }

    async fn version_supply(&self, function: &str, version: i64) -> Result<Option<SupplyRecord>> {
        let function = function.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT signer, sbom_source, sbom_json, findings_json FROM version_supply
                 WHERE function = ?1 AND version = ?2",
                params![function, version],
                |r| supply_row(r, 0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn all_version_supply(&self) -> Result<Vec<(String, i64, SupplyRecord)>> {
        self.with(|c| {
            query_all(
                c,
                "SELECT function, version, signer, sbom_source, sbom_json, findings_json
                     FROM version_supply ORDER BY function, version",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, supply_row(r, 2)?)),
            )
        })
        .await
    }

    async fn set_version_findings(
        &self,
        function: &str,
        version: i64,
        findings_json: &str,
    ) -> Result<()> {
        let (function, findings) = (function.to_string(), findings_json.to_string());
        self.with(move |c| {
            c.execute(
                "UPDATE version_supply SET findings_json = ?3 WHERE function = ?1 AND version = ?2",
                params![function, version, findings],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
