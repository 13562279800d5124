//! The embedded back end: one SQLite database in WAL mode.
//!
//! rusqlite is synchronous, so each operation runs on tokio's blocking pool while holding the
//! one connection. Control-plane writes are rare; the request path never touches the store.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use moat_telemetry::audit::{AuditEvent, Chain, ChainedRecord};

use crate::crypto::{Keyring, Sealer, kv_aad};
use crate::{
    AuditQuery, BucketQuota, BucketRecord, FunctionRecord, KV_PAGE, KvStore, LogQuery, LogRecord,
    NewVersion, RecordStore, Result, SecretMeta, SecretValue, Store, StoreError, StoredLog,
    TokenRecord, UsageRecord, VersionRecord, now_ms, sha256_hex,
};

mod kv;
mod migrations;
mod records;
mod rows;
mod secrets;
mod supply;

use migrations::MIGRATIONS;
pub use migrations::SCHEMA_VERSION;
use rows::{BUCKET_SELECT, audit_row, bucket_exists, bucket_row, put_entry};

/// A [`Store`] on an embedded SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Seals key-value values; set by the node once its master key is known.
    sealer: Arc<std::sync::RwLock<Option<Arc<Keyring>>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(backend)?;
        Self::init(conn)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        // WAL: readers never block the writer, and a crash mid-transaction rolls back on the
        // next open. synchronous=FULL: a committed deploy survives power loss.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            sealer: Arc::default(),
        })
    }

    /// Sets the master key that seals values at rest (see [`Store::set_keys`]).
    pub fn set_sealer(&self, sealer: Sealer) -> Result<()> {
        self.set_keys(Keyring::new(sealer, Vec::new()))
    }

    fn install_keys(&self, keys: Keyring) -> Result<()> {
        let sealer = Arc::new(keys);
        {
            let mut guard = self
                .conn
                .lock()
                .map_err(|_| StoreError::Backend("store connection poisoned".into()))?;
            let tx = guard
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            secrets::seal_legacy(&tx, &sealer)?;
            tx.commit().map_err(backend)?;
        }
        if let Ok(mut s) = self.sealer.write() {
            *s = Some(sealer);
        }
        Ok(())
    }

    fn sealer(&self) -> Result<Arc<Keyring>> {
        self.sealer
            .read()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| StoreError::Sealed("no master key is set".into()))
    }

    async fn with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Backend("store connection poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
    )
    .map_err(backend)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    // Every migration not yet applied, in order — not only those above the highest applied:
    // migrations numbered on different branches may land in either order.
    let applied: std::collections::BTreeSet<i64> = {
        let mut stmt = conn
            .prepare("SELECT version FROM schema_migrations")
            .map_err(backend)?;
        stmt.query_map([], |r| r.get(0))
            .map_err(backend)?
            .collect::<rusqlite::Result<_>>()
            .map_err(backend)?
    };
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, ?2)",
            params![version, now_ms()],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

const VERSION_COLUMNS: &str =
    "function, version, route, component_digest, spec_json, created_at_ms";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        function: r.get(0)?,
        version: r.get(1)?,
        route: r.get(2)?,
        component_digest: r.get(3)?,
        spec_json: r.get(4)?,
        created_at_ms: r.get(5)?,
    })
}

const FUNCTION_SELECT: &str = "SELECT f.name, f.route, f.active_version,
        (SELECT MAX(v.version) FROM versions v WHERE v.function = f.name),
        f.created_at_ms, f.updated_at_ms
     FROM functions f";

fn function_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FunctionRecord> {
    Ok(FunctionRecord {
        name: r.get(0)?,
        route: r.get(1)?,
        active_version: r.get(2)?,
        latest_version: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
        created_at_ms: r.get(4)?,
        updated_at_ms: r.get(5)?,
    })
}

/// Maps a UNIQUE violation on `functions.route` to [`StoreError::RouteTaken`].
fn route_owner(tx: &rusqlite::Transaction<'_>, route: &str, function: &str) -> Result<()> {
    let owner: Option<String> = tx
        .query_row(
            "SELECT name FROM functions WHERE route = ?1 AND name <> ?2",
            params![route, function],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    match owner {
        Some(owner) => Err(StoreError::RouteTaken {
            route: route.to_string(),
            function: owner,
        }),
        None => Ok(()),
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn set_keys(&self, keys: Keyring) -> Result<()> {
        self.install_keys(keys)
    }

    async fn rewrap_sealed(&self, limit: u32) -> Result<u64> {
        let keys = self.sealer()?;
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let id = keys.primary_id().to_vec();
            let mut done = 0u64;
            let kv: Vec<(String, String, Vec<u8>)> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT bucket, key, sealed FROM kv_entries WHERE substr(sealed, 4, 8) != ?1 LIMIT ?2",
                    )
                    .map_err(backend)?;
                stmt.query_map(params![id, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?
            };
            for (bucket, key, sealed) in kv {
                if let Some(moved) = keys
                    .rewrap(&kv_aad(&bucket, &key), &sealed)
                    .map_err(|e| StoreError::Sealed(format!("`{bucket}`/`{key}`: {e}")))?
                {
                    tx.execute(
                        "UPDATE kv_entries SET sealed = ?3 WHERE bucket = ?1 AND key = ?2",
                        params![bucket, key, moved],
                    )
                    .map_err(backend)?;
                    done += 1;
                }
            }
            done += secrets::rewrap(&tx, &keys, &id, limit)?;
            tx.commit().map_err(backend)?;
            Ok(done)
        })
        .await
    }

    async fn put_alert_rules(&self, rules: Vec<(String, String)>) -> Result<()> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            for (name, rule) in rules {
                tx.execute(
                    "INSERT INTO alert_rules (name, rule, created_at_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET rule = excluded.rule",
                    params![name, rule, now_ms()],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn delete_alert_rule(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM alert_rules WHERE name = ?1", params![name])
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn alert_rules(&self) -> Result<Vec<(String, String)>> {
        self.with(|c| {
            let mut stmt = c
                .prepare("SELECT name, rule FROM alert_rules ORDER BY name")
                .map_err(backend)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)
        })
        .await
    }

    async fn update_meta(&self, changes: Vec<(String, Option<String>)>) -> Result<()> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            for (key, value) in changes {
                match value {
                    Some(v) => tx.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        params![key, v],
                    ),
                    None => tx.execute("DELETE FROM meta WHERE key = ?1", params![key]),
                }
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let actual = sha256_hex(bytes);
        if actual != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        let bytes = bytes.to_vec();
        self.with(move |c| {
            c.execute(
                "INSERT INTO blobs (digest, bytes, created_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (digest) DO NOTHING",
                params![actual, bytes, now_ms()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_blob(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let digest = digest.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT bytes FROM blobs WHERE digest = ?1",
                params![digest],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn has_blob(&self, digest: &str) -> Result<bool> {
        let digest = digest.to_string();
        self.with(move |c| {
            let n: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM blobs WHERE digest = ?1",
                    params![digest],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn deploy_version(&self, new: NewVersion) -> Result<VersionRecord> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            route_owner(&tx, &new.route, &new.function)?;
            let has_blob: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM blobs WHERE digest = ?1",
                    params![new.component_digest],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if has_blob == 0 {
                return Err(StoreError::NotFound(format!(
                    "component `{}`",
                    new.component_digest
                )));
            }
            let next: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE function = ?1",
                    params![new.function],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO versions (function, version, route, component_digest, spec_json, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![new.function, next, new.route, new.component_digest, new.spec_json, now],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO functions (name, route, active_version, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (name) DO UPDATE SET route = excluded.route,
                     active_version = excluded.active_version, updated_at_ms = excluded.updated_at_ms",
                params![new.function, new.route, next, now],
            )
            .map_err(backend)?;
            if let Some(supply) = &new.supply {
                supply::insert_version_supply(&tx, &new.function, next, supply)?;
            }
            tx.commit().map_err(backend)?;
            Ok(VersionRecord {
                function: new.function,
                version: next,
                route: new.route,
                component_digest: new.component_digest,
                spec_json: new.spec_json,
                created_at_ms: now,
            })
        })
        .await
    }

    async fn activate_version(&self, function: &str, version: i64) -> Result<VersionRecord> {
        let function = function.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let record = tx
                .query_row(
                    &format!(
                        "SELECT {VERSION_COLUMNS} FROM versions WHERE function = ?1 AND version = ?2"
                    ),
                    params![function, version],
                    version_row,
                )
                .optional()
                .map_err(backend)?
                .ok_or_else(|| StoreError::NotFound(format!("version {version} of `{function}`")))?;
            route_owner(&tx, &record.route, &function)?;
            let changed = tx
                .execute(
                    "UPDATE functions SET active_version = ?2, route = ?3, updated_at_ms = ?4
                     WHERE name = ?1",
                    params![function, version, record.route, now_ms()],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("function `{function}`")));
            }
            tx.commit().map_err(backend)?;
            Ok(record)
        })
        .await
    }

    async fn delete_function(&self, function: &str) -> Result<bool> {
        let function = function.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let n = tx
                .execute("DELETE FROM functions WHERE name = ?1", params![function])
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM versions WHERE function = ?1",
                params![function],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        self.with(|c| {
            let mut stmt = c
                .prepare(&format!("{FUNCTION_SELECT} ORDER BY f.name"))
                .map_err(backend)?;
            let rows = stmt.query_map([], function_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn get_function(&self, function: &str) -> Result<Option<FunctionRecord>> {
        let function = function.to_string();
        self.with(move |c| {
            c.query_row(
                &format!("{FUNCTION_SELECT} WHERE f.name = ?1"),
                params![function],
                function_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn versions(&self, function: &str) -> Result<Vec<VersionRecord>> {
        let function = function.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {VERSION_COLUMNS} FROM versions WHERE function = ?1 ORDER BY version"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![function], version_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn active_versions(&self) -> Result<Vec<VersionRecord>> {
        self.with(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT v.function, v.version, v.route, v.component_digest, v.spec_json, v.created_at_ms
                     FROM functions f JOIN versions v
                       ON v.function = f.name AND v.version = f.active_version
                     ORDER BY f.name",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([], version_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.with(move |c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn init_meta(&self, key: &str, value: &str) -> Result<String> {
        let (key, value) = (key.to_string(), value.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )
            .map_err(backend)?;
            let stored: String = tx
                .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                    r.get(0)
                })
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(stored)
        })
        .await
    }

    async fn insert_token(&self, t: TokenRecord) -> Result<()> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO tokens (id, name, role, hash, created_at_ms, expires_at_ms, revoked, function)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    t.id,
                    t.name,
                    t.role,
                    t.hash,
                    t.created_at_ms,
                    t.expires_at_ms,
                    t.revoked,
                    t.function
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.with(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, name, role, hash, created_at_ms, expires_at_ms, revoked, function
                     FROM tokens ORDER BY created_at_ms, id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(TokenRecord {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: r.get(2)?,
                        hash: r.get(3)?,
                        created_at_ms: r.get(4)?,
                        expires_at_ms: r.get(5)?,
                        revoked: r.get(6)?,
                        function: r.get(7)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.with(move |c| {
            let n = c
                .execute("UPDATE tokens SET revoked = 1 WHERE id = ?1", params![id])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<i64> {
        let sealer = self.sealer()?;
        let name = name.to_string();
        let value = zeroize::Zeroizing::new(value.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let version = secrets::put(&tx, &sealer, &name, &value)?;
            tx.commit().map_err(backend)?;
            Ok(version)
        })
        .await
    }

    async fn delete_secret(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.with(move |c| secrets::delete(c, &name)).await
    }

    async fn delete_secret_version(&self, name: &str, version: i64) -> Result<bool> {
        let name = name.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let deleted = secrets::delete_version(&tx, &name, version)?;
            tx.commit().map_err(backend)?;
            Ok(deleted)
        })
        .await
    }

    async fn list_secrets(&self) -> Result<Vec<SecretMeta>> {
        self.with(|c| secrets::list(c)).await
    }

    async fn secret_values(&self) -> Result<Vec<SecretValue>> {
        let sealer = self.sealer()?;
        self.with(move |c| secrets::values(c, &sealer)).await
    }

    async fn put_policy(&self, name: &str, text: &str) -> Result<()> {
        let (name, text) = (name.to_string(), text.to_string());
        self.with(move |c| {
            c.execute(
                "INSERT INTO policies (name, text, created_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET text = excluded.text",
                params![name, text, now_ms()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_policy(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.with(move |c| {
            let n = c
                .execute("DELETE FROM policies WHERE name = ?1", params![name])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn policies(&self) -> Result<Vec<(String, String)>> {
        self.with(|c| {
            let mut stmt = c
                .prepare("SELECT name, text FROM policies ORDER BY name")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
