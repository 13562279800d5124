//! Row mapping and the multi-statement steps shared by several operations (key-value
//! quota checks and writes, audit records), kept apart from the `Store` impl.

use moat_telemetry::audit::{AuditEvent, ChainedRecord, Outcome};
use rusqlite::{Connection, OptionalExtension, params};

use super::backend;
use crate::crypto::{Keyring, kv_aad};
use crate::{BucketQuota, BucketRecord, MAX_KV_KEY_BYTES, Result, StoreError};

pub(super) const BUCKET_SELECT: &str = "SELECT name, max_value_bytes, max_keys, max_total_bytes, keys, bytes, created_at_ms FROM kv_buckets";

pub(super) fn bucket_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BucketRecord> {
    Ok(BucketRecord {
        name: r.get(0)?,
        quota: BucketQuota {
            max_value_bytes: r.get::<_, i64>(1)? as u64,
            max_keys: r.get::<_, i64>(2)? as u64,
            max_total_bytes: r.get::<_, i64>(3)? as u64,
        },
        keys: r.get::<_, i64>(4)? as u64,
        bytes: r.get::<_, i64>(5)? as u64,
        created_at_ms: r.get(6)?,
    })
}

pub(super) fn bucket_exists(c: &Connection, bucket: &str) -> Result<()> {
    c.query_row(
        "SELECT 1 FROM kv_buckets WHERE name = ?1",
        params![bucket],
        |_| Ok(()),
    )
    .optional()
    .map_err(backend)?
    .ok_or_else(|| StoreError::NotFound(format!("bucket `{bucket}`")))
}

/// Writes one entry inside the caller's transaction, enforcing the bucket's quota.
pub(super) fn put_entry(
    tx: &rusqlite::Transaction<'_>,
    sealer: &Keyring,
    bucket: &str,
    key: &str,
    value: &[u8],
) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KV_KEY_BYTES {
        return Err(StoreError::Quota(format!(
            "keys must be 1 to {MAX_KV_KEY_BYTES} bytes"
        )));
    }
    let Some(b) = tx
        .query_row(
            &format!("{BUCKET_SELECT} WHERE name = ?1"),
            params![bucket],
            bucket_row,
        )
        .optional()
        .map_err(backend)?
    else {
        return Err(StoreError::NotFound(format!("bucket `{bucket}`")));
    };
    let size = (key.len() + value.len()) as u64;
    if value.len() as u64 > b.quota.max_value_bytes {
        return Err(StoreError::Quota(format!(
            "a value of {} bytes is over bucket `{bucket}`'s limit of {} bytes",
            value.len(),
            b.quota.max_value_bytes
        )));
    }
    let old: Option<i64> = tx
        .query_row(
            "SELECT size FROM kv_entries WHERE bucket = ?1 AND key = ?2",
            params![bucket, key],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    let (keys, bytes) = match old {
        Some(old) => (b.keys, b.bytes - (old as u64).min(b.bytes) + size),
        None => (b.keys + 1, b.bytes + size),
    };
    if keys > b.quota.max_keys {
        return Err(StoreError::Quota(format!(
            "bucket `{bucket}` holds its limit of {} keys",
            b.quota.max_keys
        )));
    }
    if bytes > b.quota.max_total_bytes {
        return Err(StoreError::Quota(format!(
            "bucket `{bucket}` would hold {bytes} bytes, over its limit of {}",
            b.quota.max_total_bytes
        )));
    }
    let sealed = sealer.seal(&kv_aad(bucket, key), value);
    tx.execute(
        "INSERT INTO kv_entries (bucket, key, sealed, size) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (bucket, key) DO UPDATE SET sealed = excluded.sealed, size = excluded.size",
        params![bucket, key, sealed, size as i64],
    )
    .map_err(backend)?;
    tx.execute(
        "UPDATE kv_buckets SET keys = ?2, bytes = ?3 WHERE name = ?1",
        params![bucket, keys as i64, bytes as i64],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChainedRecord> {
    let hash32 = |i: usize| -> rusqlite::Result<[u8; 32]> {
        let v: Vec<u8> = r.get(i)?;
        // A malformed stored hash is kept visible as all-ones, which can never verify.
        Ok(<[u8; 32]>::try_from(v.as_slice()).unwrap_or([0xff; 32]))
    };
    let outcome: String = r.get(7)?;
    let details: String = r.get(11)?;
    Ok(ChainedRecord {
        seq: r.get::<_, i64>(0)? as u64,
        prev_hash: hash32(1)?,
        hash: hash32(2)?,
        event: AuditEvent {
            at_ms: r.get(3)?,
            actor: r.get(4)?,
            action: r.get(5)?,
            target: r.get(6)?,
            // An unknown stored outcome cannot hash to the stored hash either.
            outcome: Outcome::from_name(&outcome).unwrap_or(Outcome::Failed),
            source: r.get(8)?,
            request_id: r.get(9)?,
            function: r.get(10)?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        },
    })
}

/// Every row of a query, mapped.
pub(super) fn query_all<T, P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = c.prepare(sql).map_err(backend)?;
    stmt.query_map(params, map)
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)
}
