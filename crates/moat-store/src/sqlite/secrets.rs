//! Secrets in SQLite: every version kept and sealed on its own (`secret_versions`), and the
//! highest version each name ever had (`secret_names`), so numbers are never reused.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use zeroize::Zeroizing;

use super::backend;
use crate::crypto::Keyring;
use crate::{Result, SecretMeta, SecretValue, SecretVersionMeta, StoreError, now_ms};

/// The associated data of a sealed secret: its name and version, so a sealed value copied
/// to another secret's row, or to another version's, does not open.
pub(super) fn secret_aad(name: &str, version: i64) -> Vec<u8> {
    let mut aad = b"secret\0".to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Seals values a store older than sealing kept in plaintext, in the caller's transaction.
pub(super) fn seal_legacy(tx: &Transaction<'_>, keys: &Keyring) -> Result<()> {
    let legacy: Vec<(String, i64, Zeroizing<String>)> = {
        let mut stmt = tx
            .prepare(
                "SELECT name, version, legacy_value FROM secret_versions
                 WHERE sealed IS NULL AND legacy_value IS NOT NULL",
            )
            .map_err(backend)?;
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, Zeroizing::new(r.get::<_, String>(2)?)))
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?
    };
    for (name, version, value) in legacy {
        let sealed = keys.seal(&secret_aad(&name, version), value.as_bytes());
        tx.execute(
            "UPDATE secret_versions SET sealed = ?3, legacy_value = NULL
             WHERE name = ?1 AND version = ?2",
            params![name, version, sealed],
        )
        .map_err(backend)?;
    }
    Ok(())
}

/// Re-wraps up to `limit` secret versions not sealed under the primary key `id`.
pub(super) fn rewrap(tx: &Transaction<'_>, keys: &Keyring, id: &[u8], limit: u32) -> Result<u64> {
    let rows: Vec<(String, i64, Vec<u8>)> = {
        let mut stmt = tx
            .prepare(
                "SELECT name, version, sealed FROM secret_versions
                 WHERE sealed IS NOT NULL AND substr(sealed, 4, 8) != ?1 LIMIT ?2",
            )
            .map_err(backend)?;
        stmt.query_map(params![id, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?
    };
    let mut done = 0;
    for (name, version, sealed) in rows {
        if let Some(moved) = keys
            .rewrap(&secret_aad(&name, version), &sealed)
            .map_err(|e| StoreError::Sealed(format!("secret `{name}` version {version}: {e}")))?
        {
            tx.execute(
                "UPDATE secret_versions SET sealed = ?3 WHERE name = ?1 AND version = ?2",
                params![name, version, moved],
            )
            .map_err(backend)?;
            done += 1;
        }
    }
    Ok(done)
}

pub(super) fn put(tx: &Transaction<'_>, keys: &Keyring, name: &str, value: &str) -> Result<i64> {
    let last: i64 = tx
        .query_row(
            "SELECT MAX(
                COALESCE((SELECT last_version FROM secret_names WHERE name = ?1), 0),
                COALESCE((SELECT MAX(version) FROM secret_versions WHERE name = ?1), 0))",
            params![name],
            |r| r.get(0),
        )
        .map_err(backend)?;
    let version = last + 1;
    // The version is part of the record's identity: a sealed value copied over another
    // version's row does not open.
    let sealed = keys.seal(&secret_aad(name, version), value.as_bytes());
    tx.execute(
        "INSERT INTO secret_versions (name, version, sealed, created_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
        params![name, version, sealed, now_ms()],
    )
    .map_err(backend)?;
    tx.execute(
        "INSERT INTO secret_names (name, last_version) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version",
        params![name, version],
    )
    .map_err(backend)?;
    Ok(version)
}

pub(super) fn delete(c: &Connection, name: &str) -> Result<bool> {
    let n = c
        .execute("DELETE FROM secret_versions WHERE name = ?1", params![name])
        .map_err(backend)?;
    Ok(n > 0)
}

pub(super) fn delete_version(tx: &Transaction<'_>, name: &str, version: i64) -> Result<bool> {
    let current: Option<i64> = tx
        .query_row(
            "SELECT MAX(version) FROM secret_versions WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .flatten();
    if current == Some(version) {
        return Err(StoreError::Conflict(format!(
            "version {version} is the current version of secret `{name}`; set a new version first, or delete the whole secret"
        )));
    }
    let n = tx
        .execute(
            "DELETE FROM secret_versions WHERE name = ?1 AND version = ?2",
            params![name, version],
        )
        .map_err(backend)?;
    Ok(n > 0)
}

pub(super) fn list(c: &Connection) -> Result<Vec<SecretMeta>> {
    let mut stmt = c
        .prepare("SELECT name, version, created_at_ms FROM secret_versions ORDER BY name, version")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                SecretVersionMeta {
                    version: r.get(1)?,
                    created_at_ms: r.get(2)?,
                },
            ))
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    let mut out: Vec<SecretMeta> = Vec::new();
    for (name, v) in rows {
        match out.last_mut() {
            Some(m) if m.name == name => {
                m.version = v.version;
                m.updated_at_ms = v.created_at_ms;
                m.versions.push(v);
            }
            _ => out.push(SecretMeta {
                name,
                version: v.version,
                updated_at_ms: v.created_at_ms,
                versions: vec![v],
            }),
        }
    }
    Ok(out)
}

pub(super) fn values(c: &Connection, keys: &Keyring) -> Result<Vec<SecretValue>> {
    let mut stmt = c
        .prepare("SELECT name, version, sealed FROM secret_versions ORDER BY name, version")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, version, sealed) in rows {
        let what = || format!("secret `{name}` version {version}");
        let sealed =
            sealed.ok_or_else(|| StoreError::Sealed(format!("{} is not sealed", what())))?;
        let plain = keys
            .open(&secret_aad(&name, version), &sealed)
            .map_err(|e| StoreError::Sealed(format!("{}: {e}", what())))?;
        let value = String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Sealed(format!("{} is not text", what())))?;
        out.push(SecretValue {
            name,
            version,
            value: Zeroizing::new(value),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Sealer;
    use crate::sqlite::migrations::MIGRATIONS;
    use crate::{SqliteStore, Store};

    fn values(store_values: Vec<SecretValue>) -> Vec<(String, i64, String)> {
        store_values
            .into_iter()
            .map(|v| (v.name, v.version, v.value.to_string()))
            .collect()
    }

    /// A store at schema 8 (one row per secret: a sealed one and a plaintext one from before
    /// sealing) is migrated to kept versions without losing either value.
    #[tokio::test]
    async fn migration_9_keeps_existing_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moat.db");
        let key = Sealer::new([5; 32]);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
            )
            .unwrap();
            for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 8) {
                c.execute_batch(sql).unwrap();
                c.execute("INSERT INTO schema_migrations VALUES (?1, 0)", params![v])
                    .unwrap();
            }
            let sealed = key.seal(&secret_aad("sealed-one", 3), b"value-three");
            c.execute(
                "INSERT INTO secrets (name, value, sealed, version, updated_at_ms)
                 VALUES ('sealed-one', '', ?1, 3, 10), ('plain-one', 'old-plain', NULL, 2, 20)",
                params![sealed],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        store.set_sealer(Sealer::new([5; 32])).unwrap();
        assert_eq!(
            values(store.secret_values().await.unwrap()),
            vec![
                ("plain-one".to_string(), 2, "old-plain".to_string()),
                ("sealed-one".to_string(), 3, "value-three".to_string()),
            ]
        );
        let meta = store.list_secrets().await.unwrap();
        assert_eq!(
            meta.iter()
                .map(|m| (m.name.as_str(), m.version, m.updated_at_ms))
                .collect::<Vec<_>>(),
            vec![("plain-one", 2, 20), ("sealed-one", 3, 10)]
        );
        // Numbering goes on from the migrated version.
        assert_eq!(store.put_secret("sealed-one", "four").await.unwrap(), 4);
        drop(store);
        let raw = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.path().join("moat.db-wal")).unwrap_or_default();
        // The legacy plaintext was sealed at start: no longer in a live row.
        let c = Connection::open(&path).unwrap();
        let plain: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM secret_versions WHERE legacy_value IS NOT NULL OR sealed IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(plain, 0);
        for bytes in [raw, wal] {
            assert!(!bytes.windows(11).any(|w| w == b"value-three"));
        }
    }

    /// Rotation re-wraps every kept version, not only the current one; a version's sealed
    /// value copied to another version's row does not open.
    #[tokio::test]
    async fn old_versions_are_rewrapped_and_bound_to_their_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moat.db");
        let store = SqliteStore::open(&path).unwrap();
        store.set_sealer(Sealer::new([1; 32])).unwrap();
        for v in ["one", "two", "three"] {
            store.put_secret("k", v).await.unwrap();
        }
        store
            .set_keys(Keyring::new(
                Sealer::new([2; 32]),
                vec![Sealer::new([1; 32])],
            ))
            .unwrap();
        let mut moved = 0;
        loop {
            let n = store.rewrap_sealed(1).await.unwrap();
            if n == 0 {
                break;
            }
            moved += n;
        }
        assert_eq!(moved, 3);
        // Only the new key now: every version still opens.
        store.set_sealer(Sealer::new([2; 32])).unwrap();
        assert_eq!(store.secret_values().await.unwrap().len(), 3);
        drop(store);
        let c = Connection::open(&path).unwrap();
        c.execute(
            "UPDATE secret_versions SET sealed = (SELECT sealed FROM secret_versions WHERE version = 3)
             WHERE version = 1",
            [],
        )
        .unwrap();
        drop(c);
        let store = SqliteStore::open(&path).unwrap();
        store.set_sealer(Sealer::new([2; 32])).unwrap();
        assert!(matches!(
            store.secret_values().await,
            Err(StoreError::Sealed(_))
        ));
    }
}
