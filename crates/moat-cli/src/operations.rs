//! Commands for what a running node keeps about security: key-value buckets, alert rules
//! and the audit log (its records, checkpoints and verification).

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::client::Admin;
use crate::commands::print;
use crate::{AlertsCommand, AuditLogCommand, KvCommand, Output};

pub(crate) async fn kv(admin: &Admin, command: KvCommand, out: Output) -> anyhow::Result<()> {
    match command {
        KvCommand::Create {
            name,
            max_value_bytes,
            max_keys,
            max_total_bytes,
        } => {
            let mut body = json!({ "name": name });
            for (k, v) in [
                ("max_value_bytes", max_value_bytes),
                ("max_keys", max_keys),
                ("max_total_bytes", max_total_bytes),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let v = admin.json(Method::POST, "/v1/kv", &body).await?;
            print(out, &v, || {
                let q = &v["quota"];
                format!(
                    "created bucket {name} (values up to {} bytes, {} keys, {} bytes in all)",
                    q["max_value_bytes"], q["max_keys"], q["max_total_bytes"]
                )
            });
        }
        KvCommand::List => {
            let v = admin.call(Method::GET, "/v1/kv", None).await?;
            print(out, &v, || {
                let mut s = String::from("BUCKET  KEYS  BYTES  MAX-KEYS  MAX-BYTES  MAX-VALUE\n");
                for b in v["buckets"].as_array().into_iter().flatten() {
                    let q = &b["quota"];
                    s.push_str(&format!(
                        "{}  {}  {}  {}  {}  {}\n",
                        b["name"].as_str().unwrap_or(""),
                        b["keys"],
                        b["bytes"],
                        q["max_keys"],
                        q["max_total_bytes"],
                        q["max_value_bytes"]
                    ));
                }
                s.trim_end().to_string()
            });
        }
        KvCommand::Delete { name } => {
            let v = admin
                .call(Method::DELETE, &format!("/v1/kv/{name}"), None)
                .await?;
            print(out, &v, || format!("deleted bucket {name}"));
        }
    }
    Ok(())
}

pub(crate) async fn alerts(
    admin: &Admin,
    command: AlertsCommand,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        AlertsCommand::Add { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            let v = admin
                .call(
                    Method::POST,
                    "/v1/alerts",
                    Some(("application/toml", Bytes::from(text))),
                )
                .await
                .with_context(|| format!("`{}` was refused", file.display()))?;
            print(out, &v, || format!("added alerts: {}", v["added"]));
        }
        AlertsCommand::List => {
            let v = admin.call(Method::GET, "/v1/alerts", None).await?;
            print(out, &v, || {
                let rules = v["alerts"].as_array().cloned().unwrap_or_default();
                if rules.is_empty() {
                    return "no alert rules".to_string();
                }
                rules
                    .iter()
                    .map(|r| format!("{}: {}", r["name"].as_str().unwrap_or(""), r["when"]))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AlertsCommand::Test { name } => {
            let v = admin
                .call(Method::POST, &format!("/v1/alerts/{name}/test"), None)
                .await?;
            print(out, &v, || format!("sent a test firing of {name}"));
        }
        AlertsCommand::Delete { name } => {
            let v = admin
                .call(Method::DELETE, &format!("/v1/alerts/{name}"), None)
                .await?;
            print(out, &v, || format!("deleted alert {name}"));
        }
    }
    Ok(())
}

/// Every record of the chain, page by page.
async fn audit_records(admin: &Admin, filter: &str) -> anyhow::Result<(Vec<Value>, String)> {
    let mut after = 0u64;
    let mut all = Vec::new();
    let mut key = String::new();
    loop {
        let v = admin
            .call(
                Method::GET,
                &format!("/v1/audit?after_seq={after}&limit=10000{filter}"),
                None,
            )
            .await?;
        key = v["public_key"].as_str().unwrap_or(&key).to_string();
        let page = v["records"].as_array().cloned().unwrap_or_default();
        let Some(last) = page.last().and_then(|r| r["seq"].as_u64()) else {
            return Ok((all, key));
        };
        after = last;
        all.extend(page);
    }
}

pub(crate) async fn audit_log(
    admin: &Admin,
    command: AuditLogCommand,
    out: Output,
) -> anyhow::Result<()> {
    use moat_telemetry::audit::{ChainedRecord, Checkpoint, public_key_from_base64, verify};
    match command {
        AuditLogCommand::Show {
            since,
            function,
            action,
        } => {
            let mut filter = String::new();
            if let Some(since) = since {
                let d = humantime::parse_duration(&since)
                    .with_context(|| format!("`--since {since}` is not a duration"))?;
                let since_ms = moat_store::now_ms() - d.as_millis() as i64;
                filter.push_str(&format!("&since_ms={since_ms}"));
            }
            for (k, v) in [("function", function), ("action", action)] {
                if let Some(v) = v {
                    filter.push_str(&format!("&{k}={}", urlencode(&v)));
                }
            }
            let (records, _) = audit_records(admin, &filter).await?;
            let v = json!({ "records": records });
            print(out, &v, || {
                let mut s = String::new();
                for r in &records {
                    let e = &r["event"];
                    s.push_str(&format!(
                        "{:>6}  {}  {:<10} {:<22} {:<28} {} {}\n",
                        r["seq"],
                        humantime::format_rfc3339_millis(
                            std::time::UNIX_EPOCH
                                + Duration::from_millis(e["at_ms"].as_u64().unwrap_or(0))
                        ),
                        e["outcome"].as_str().unwrap_or(""),
                        e["action"].as_str().unwrap_or(""),
                        e["target"].as_str().unwrap_or(""),
                        e["actor"].as_str().unwrap_or(""),
                        e["source"].as_str().unwrap_or(""),
                    ));
                }
                if s.is_empty() {
                    "no audit records".into()
                } else {
                    s.trim_end().to_string()
                }
            });
        }
        AuditLogCommand::Checkpoint => {
            let v = admin
                .call(Method::GET, "/v1/audit/checkpoint", None)
                .await?;
            match v["checkpoint"].as_str() {
                Some(line) => println!("{line}"),
                None => bail!("the audit log is empty; there is nothing to checkpoint"),
            }
        }
        AuditLogCommand::Verify {
            checkpoint,
            public_key,
        } => {
            let (records, node_key) = audit_records(admin, "").await?;
            let records: Vec<ChainedRecord> = records
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .context("the node sent an unreadable audit record")?;
            let key_text = public_key.unwrap_or(node_key);
            let key = public_key_from_base64(&key_text)
                .map_err(|e| anyhow::anyhow!("checkpoint public key: {e}"))?;
            let cp = match &checkpoint {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read `{}`", path.display()))?;
                    // The newest checkpoint in the file (one per line).
                    let line = text
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .context("the checkpoint file is empty")?;
                    Some(
                        Checkpoint::parse_line(line.trim())
                            .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?,
                    )
                }
                None => None,
            };
            let report = verify(records, cp.as_ref().map(|c| (c, &key)));
            let v = serde_json::to_value(&report).unwrap_or(Value::Null);
            match &report.finding {
                None => print(out, &v, || {
                    format!(
                        "audit log intact: {} records{}",
                        report.records,
                        if cp.is_some() {
                            ", matches the checkpoint"
                        } else {
                            ""
                        }
                    )
                }),
                Some(f) => {
                    print(out, &v, || format!("audit log TAMPERED: {f}"));
                    std::process::exit(1);
                }
            }
        }
    }
    Ok(())
}

/// Percent-encodes a query value.
pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
