//! [`RecordStore`] on SQLite: the audit chain, function logs and permission use.

use super::*;

#[async_trait]
impl RecordStore for SqliteStore {
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<ChainedRecord>> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let head: Option<(i64, Vec<u8>)> = tx
                .query_row(
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            let head = match head {
                None => None,
                Some((seq, hash)) => Some((
                    seq as u64,
                    <[u8; 32]>::try_from(hash.as_slice())
                        .map_err(|_| backend("the audit head's hash is malformed"))?,
                )),
            };
            let mut chain = Chain::new(head);
            let mut out = Vec::with_capacity(events.len());
            for e in events {
                let r = chain.append(e);
                let details = serde_json::to_string(&r.event.details).map_err(backend)?;
                tx.execute(
                    "INSERT INTO audit_log (seq, prev_hash, hash, at_ms, actor, action, target,
                        outcome, source, request_id, function, details)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        r.seq as i64,
                        r.prev_hash.as_slice(),
                        r.hash.as_slice(),
                        r.event.at_ms,
                        r.event.actor,
                        r.event.action,
                        r.event.target,
                        r.event.outcome.as_str(),
                        r.event.source,
                        r.event.request_id,
                        r.event.function,
                        details
                    ],
                )
                .map_err(backend)?;
                out.push(r);
            }
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }

    async fn audit_records(&self, query: AuditQuery) -> Result<Vec<ChainedRecord>> {
        self.with(move |c| {
            let mut sql = String::from(
                "SELECT seq, prev_hash, hash, at_ms, actor, action, target, outcome, source,
                        request_id, function, details FROM audit_log WHERE seq > ?1",
            );
            let mut args: Vec<rusqlite::types::Value> = vec![(query.after_seq as i64).into()];
            if let Some(since) = query.since_ms {
                args.push(since.into());
                sql.push_str(&format!(" AND at_ms >= ?{}", args.len()));
            }
            if let Some(f) = &query.function {
                args.push(f.clone().into());
                sql.push_str(&format!(" AND function = ?{}", args.len()));
            }
            if let Some(a) = &query.action {
                match a.strip_suffix('*') {
                    Some(prefix) => {
                        args.push(format!("{}%", prefix.replace(['%', '_'], "")).into());
                        sql.push_str(&format!(" AND action LIKE ?{}", args.len()));
                    }
                    None => {
                        args.push(a.clone().into());
                        sql.push_str(&format!(" AND action = ?{}", args.len()));
                    }
                }
            }
            let limit = if query.limit == 0 { 1000 } else { query.limit };
            sql.push_str(&format!(" ORDER BY seq LIMIT {limit}"));
            let mut stmt = c.prepare(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), audit_row)
                .map_err(backend)?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(backend)
        })
        .await
    }

    async fn record_usage(&self, records: Vec<UsageRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            for r in &records {
                tx.execute(
                    "INSERT INTO permission_usage (function, action, resource, count, first_seen_ms, last_seen_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (function, action, resource) DO UPDATE SET
                         count = permission_usage.count + excluded.count,
                         first_seen_ms = MIN(permission_usage.first_seen_ms, excluded.first_seen_ms),
                         last_seen_ms = MAX(permission_usage.last_seen_ms, excluded.last_seen_ms)",
                    params![r.function, r.action, r.resource, r.count as i64, r.first_seen_ms, r.last_seen_ms],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn usage(&self, function: Option<&str>, since_ms: i64) -> Result<Vec<UsageRecord>> {
        let function = function.map(str::to_string);
        self.with(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT function, action, resource, count, first_seen_ms, last_seen_ms
                     FROM permission_usage
                     WHERE (?1 IS NULL OR function = ?1) AND last_seen_ms >= ?2
                     ORDER BY function, action, resource",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![function, since_ms], |r| {
                    Ok(UsageRecord {
                        function: r.get(0)?,
                        action: r.get(1)?,
                        resource: r.get(2)?,
                        count: r.get::<_, i64>(3)? as u64,
                        first_seen_ms: r.get(4)?,
                        last_seen_ms: r.get(5)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn append_logs(&self, records: Vec<LogRecord>) -> Result<Vec<StoredLog>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let mut stored = Vec::with_capacity(records.len());
            {
                let mut stmt = tx
                    .prepare(
                        "INSERT INTO function_logs (function, version, request_id, stream, at_ms, text)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(backend)?;
                for r in records {
                    stmt.execute(params![
                        r.function,
                        r.version,
                        r.request_id,
                        r.stream,
                        r.at_ms,
                        r.text
                    ])
                    .map_err(backend)?;
                    stored.push(StoredLog {
                        id: tx.last_insert_rowid(),
                        record: r,
                    });
                }
            }
            tx.commit().map_err(backend)?;
            Ok(stored)
        })
        .await
    }

    async fn logs(&self, q: LogQuery) -> Result<Vec<StoredLog>> {
        self.with(move |c| {
            let row = |r: &rusqlite::Row<'_>| {
                Ok(StoredLog {
                    id: r.get(0)?,
                    record: LogRecord {
                        function: r.get(1)?,
                        version: r.get(2)?,
                        request_id: r.get(3)?,
                        stream: r.get(4)?,
                        at_ms: r.get(5)?,
                        text: r.get(6)?,
                    },
                })
            };
            let filter = "function = ?1
                AND (?2 IS NULL OR request_id = ?2)
                AND (?3 IS NULL OR at_ms >= ?3)";
            let rows = match q.after_id {
                // Paging forward: the oldest records after the cursor.
                Some(after) => c
                    .prepare(&format!(
                        "SELECT id, function, version, request_id, stream, at_ms, text
                         FROM function_logs WHERE {filter} AND id > ?5
                         ORDER BY id LIMIT ?4"
                    ))
                    .and_then(|mut stmt| {
                        stmt.query_map(
                            params![q.function, q.request_id, q.since_ms, q.limit, after],
                            row,
                        )?
                        .collect::<rusqlite::Result<Vec<_>>>()
                    }),
                None => c
                    .prepare(&format!(
                        "SELECT id, function, version, request_id, stream, at_ms, text FROM (
                            SELECT * FROM function_logs WHERE {filter}
                            ORDER BY id DESC LIMIT ?4
                         ) ORDER BY id"
                    ))
                    .and_then(|mut stmt| {
                        stmt.query_map(params![q.function, q.request_id, q.since_ms, q.limit], row)?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    }),
            };
            rows.map_err(backend)
        })
        .await
    }

    async fn prune_logs(&self, function: &str, keep: u32) -> Result<u64> {
        let function = function.to_string();
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM function_logs WHERE function = ?1 AND id <= (
                        SELECT id FROM function_logs WHERE function = ?1
                        ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                    params![function, keep],
                )
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn prune_logs_before(&self, before_ms: i64) -> Result<u64> {
        self.with(move |c| {
            c.execute(
                "DELETE FROM function_logs WHERE at_ms < ?1",
                params![before_ms],
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }
}
