//! [`KvStore`] on SQLite.

use super::*;

#[async_trait]
impl KvStore for SqliteStore {
    async fn create_bucket(&self, name: &str, quota: BucketQuota) -> Result<()> {
        let name = name.to_string();
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT INTO kv_buckets (name, max_value_bytes, max_keys, max_total_bytes, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
                    params![
                        name,
                        quota.max_value_bytes as i64,
                        quota.max_keys as i64,
                        quota.max_total_bytes as i64,
                        now_ms()
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(format!("bucket `{name}`")));
            }
            Ok(())
        })
        .await
    }

    async fn delete_bucket(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute("DELETE FROM kv_entries WHERE bucket = ?1", params![name])
                .map_err(backend)?;
            let n = tx
                .execute("DELETE FROM kv_buckets WHERE name = ?1", params![name])
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        self.with(|c| {
            let mut stmt = c
                .prepare(&format!("{BUCKET_SELECT} ORDER BY name"))
                .map_err(backend)?;
            let rows = stmt.query_map([], bucket_row).map_err(backend)?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(backend)
        })
        .await
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>> {
        let name = name.to_string();
        self.with(move |c| {
            c.query_row(
                &format!("{BUCKET_SELECT} WHERE name = ?1"),
                params![name],
                bucket_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn kv_get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let sealer = self.sealer()?;
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.with(move |c| {
            bucket_exists(c, &bucket)?;
            let sealed: Option<Vec<u8>> = c
                .query_row(
                    "SELECT sealed FROM kv_entries WHERE bucket = ?1 AND key = ?2",
                    params![bucket, key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            match sealed {
                None => Ok(None),
                Some(sealed) => {
                    let value = sealer
                        .open(&kv_aad(&bucket, &key), &sealed)
                        .map_err(|e| StoreError::Sealed(format!("`{bucket}`/`{key}`: {e}")))?;
                    Ok(Some(value.to_vec()))
                }
            }
        })
        .await
    }

    async fn kv_set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<()> {
        let sealer = self.sealer()?;
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            put_entry(&tx, &sealer, &bucket, &key, &value)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn kv_delete(&self, bucket: &str, key: &str) -> Result<()> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            bucket_exists(&tx, &bucket)?;
            let size: Option<i64> = tx
                .query_row(
                    "DELETE FROM kv_entries WHERE bucket = ?1 AND key = ?2 RETURNING size",
                    params![bucket, key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(size) = size {
                tx.execute(
                    "UPDATE kv_buckets SET keys = keys - 1, bytes = bytes - ?2 WHERE name = ?1",
                    params![bucket, size],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn kv_exists(&self, bucket: &str, key: &str) -> Result<bool> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.with(move |c| {
            bucket_exists(c, &bucket)?;
            c.query_row(
                "SELECT 1 FROM kv_entries WHERE bucket = ?1 AND key = ?2",
                params![bucket, key],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(backend)
        })
        .await
    }

    async fn kv_keys(&self, bucket: &str, cursor: u64) -> Result<(Vec<String>, Option<u64>)> {
        let bucket = bucket.to_string();
        self.with(move |c| {
            bucket_exists(c, &bucket)?;
            let mut stmt = c
                .prepare(
                    "SELECT key FROM kv_entries WHERE bucket = ?1 ORDER BY key LIMIT ?2 OFFSET ?3",
                )
                .map_err(backend)?;
            let keys = stmt
                .query_map(params![bucket, KV_PAGE as i64 + 1, cursor as i64], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(backend)?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(backend)?;
            let mut keys = keys;
            let next = if keys.len() > KV_PAGE {
                keys.truncate(KV_PAGE);
                Some(cursor + KV_PAGE as u64)
            } else {
                None
            };
            Ok((keys, next))
        })
        .await
    }

    async fn kv_increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64> {
        let sealer = self.sealer()?;
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            bucket_exists(&tx, &bucket)?;
            let sealed: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT sealed FROM kv_entries WHERE bucket = ?1 AND key = ?2",
                    params![bucket, key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let current = match sealed {
                None => 0,
                Some(sealed) => {
                    let v = sealer
                        .open(&kv_aad(&bucket, &key), &sealed)
                        .map_err(|e| StoreError::Sealed(format!("`{bucket}`/`{key}`: {e}")))?;
                    std::str::from_utf8(&v)
                        .ok()
                        .and_then(|t| t.parse::<u64>().ok())
                        .ok_or_else(|| {
                            StoreError::Quota(format!("`{key}` does not hold a decimal counter"))
                        })?
                }
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| StoreError::Quota(format!("counter `{key}` would overflow")))?;
            put_entry(&tx, &sealer, &bucket, &key, next.to_string().as_bytes())?;
            tx.commit().map_err(backend)?;
            Ok(next)
        })
        .await
    }
}
