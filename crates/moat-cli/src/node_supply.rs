//! Commands for a node's supply-chain state — trusted signing keys (`moat trust`), node
//! settings (`moat settings`), the advisory database and its exceptions
//! (`moat advisories`) — plus what `moat deploy` sends with a component (its signature
//! and the dependency list found beside the manifest) and the supply-chain part of
//! `moat functions show`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Subcommand;
use http::Method;
use moat_supply::{Sbom, SbomSource};
use serde_json::{Value, json};

use crate::Output;
use crate::client::Admin;
use crate::commands::print;

#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trust a public key (minisign format, from `moat signing-key generate`).
    Add {
        /// The public key file (`.pub`).
        key: PathBuf,
        /// A name for the key (`[a-z0-9-]`), shown as the signer of what it signed.
        #[arg(long)]
        name: String,
    },
    /// List trusted keys.
    List,
    /// Stop trusting a key.
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// Every node setting, its value and what it accepts.
    List,
    /// Change a setting (audited).
    Set { key: String, value: String },
    /// Return a setting to its default.
    Unset { key: String },
}

#[derive(Subcommand)]
pub enum AdvisoriesCommand {
    /// Load OSV advisories (a directory of OSV JSON, an ecosystem's `all.zip`, or one
    /// `.json`) into the node; every deployed version is re-scanned.
    Import { path: PathBuf },
    /// Accept an advisory until a date: its findings stop blocking deploys until then.
    Ignore {
        /// The advisory id (or an alias, such as a CVE).
        id: String,
        #[arg(long)]
        reason: String,
        /// RFC 3339 time (`2027-01-31T00:00:00Z`), a date (`2027-01-31`, through that day,
        /// UTC), or a duration from now (`90d`).
        #[arg(long)]
        until: String,
    },
    /// Remove an exception.
    Unignore { id: String },
    /// How many advisories the node holds, and the exceptions.
    List,
}

pub async fn trust(admin: &Admin, command: TrustCommand, out: Output) -> anyhow::Result<()> {
    match command {
        TrustCommand::Add { key, name } => {
            let text = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read the public key `{}`", key.display()))?;
            let v = admin
                .json(
                    Method::POST,
                    "/v1/trust",
                    &json!({ "name": name, "public_key": text }),
                )
                .await?;
            print(out, &v, || {
                format!(
                    "trusting key {} as {name}",
                    v["key_id"].as_str().unwrap_or("")
                )
            });
        }
        TrustCommand::List => {
            let v = admin.call(Method::GET, "/v1/trust", None).await?;
            print(out, &v, || {
                let mut s = String::from("NAME  KEY-ID");
                for k in v["keys"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "\n{}  {}",
                        k["name"].as_str().unwrap_or(""),
                        k["key_id"].as_str().unwrap_or("")
                    ));
                }
                s
            });
        }
        TrustCommand::Remove { name } => {
            let v = admin
                .call(Method::DELETE, &format!("/v1/trust/{name}"), None)
                .await?;
            print(out, &v, || format!("no longer trusting {name}"));
        }
    }
    Ok(())
}

pub async fn settings(admin: &Admin, command: SettingsCommand, out: Output) -> anyhow::Result<()> {
    match command {
        SettingsCommand::List => {
            let v = admin.call(Method::GET, "/v1/settings", None).await?;
            print(out, &v, || {
                let mut s = String::new();
                for item in v["settings"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "{} = {}\n    {}\n",
                        item["key"].as_str().unwrap_or(""),
                        item["value"].as_str().unwrap_or("(default)"),
                        item["accepts"].as_str().unwrap_or("")
                    ));
                }
                s.trim_end().to_string()
            });
        }
        SettingsCommand::Set { key, value } => {
            let v = admin
                .json(
                    Method::PUT,
                    &format!("/v1/settings/{key}"),
                    &json!({ "value": value }),
                )
                .await?;
            print(out, &v, || {
                format!("{key} = {}", v["value"].as_str().unwrap_or(""))
            });
        }
        SettingsCommand::Unset { key } => {
            let v = admin
                .call(Method::DELETE, &format!("/v1/settings/{key}"), None)
                .await?;
            print(out, &v, || format!("{key} = (default)"));
        }
    }
    Ok(())
}

pub async fn advisories(
    admin: &Admin,
    command: AdvisoriesCommand,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        AdvisoriesCommand::Import { path } => {
            let records = moat_supply::read_records(&path)
                .with_context(|| format!("cannot import `{}`", path.display()))?;
            let mut body = Vec::new();
            for r in &records {
                body.extend_from_slice(r.json.as_bytes());
                body.push(b'\n');
            }
            let v = admin
                .call(
                    Method::POST,
                    "/v1/advisories",
                    Some(("application/x-ndjson", Bytes::from(body))),
                )
                .await?;
            print(out, &v, || {
                let i = &v["imported"];
                let mut s = format!(
                    "imported {} records from {} ({} new, {} updated, {} unchanged); the node holds {} advisories",
                    records.len(),
                    path.display(),
                    i["added"],
                    i["updated"],
                    i["unchanged"],
                    v["advisories"]
                );
                let new = v["new_findings"].as_array().cloned().unwrap_or_default();
                if new.is_empty() {
                    s.push_str("\nno new findings in deployed functions");
                }
                for f in new {
                    s.push_str(&format!(
                        "\nNEW  {} version {}: {} ({}) in {} {}",
                        f["function"].as_str().unwrap_or(""),
                        f["function_version"],
                        f["id"].as_str().unwrap_or(""),
                        f["severity"].as_str().unwrap_or(""),
                        f["package"].as_str().unwrap_or(""),
                        f["version"].as_str().unwrap_or(""),
                    ));
                }
                s
            });
        }
        AdvisoriesCommand::Ignore { id, reason, until } => {
            let until_ms = parse_until(&until, now_ms())?;
            let v = admin
                .json(
                    Method::PUT,
                    &format!("/v1/advisories/ignores/{id}"),
                    &json!({ "reason": reason, "until_ms": until_ms }),
                )
                .await?;
            print(out, &v, || {
                format!(
                    "ignoring {id} until {}",
                    format_ms(v["until_ms"].as_i64().unwrap_or(0))
                )
            });
        }
        AdvisoriesCommand::Unignore { id } => {
            let v = admin
                .call(
                    Method::DELETE,
                    &format!("/v1/advisories/ignores/{id}"),
                    None,
                )
                .await?;
            print(out, &v, || format!("{id} is no longer ignored"));
        }
        AdvisoriesCommand::List => {
            let v = admin.call(Method::GET, "/v1/advisories", None).await?;
            print(out, &v, || {
                let mut s = format!("{} advisories loaded", v["advisories"]);
                for i in v["ignores"].as_array().into_iter().flatten() {
                    let until = i["until_ms"].as_i64().unwrap_or(0);
                    s.push_str(&format!(
                        "\nignored {} until {}{}: {}",
                        i["id"].as_str().unwrap_or(""),
                        format_ms(until),
                        if until <= now_ms() { " (expired)" } else { "" },
                        i["reason"].as_str().unwrap_or("")
                    ));
                }
                s
            });
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    moat_telemetry::audit::now_ms()
}

fn format_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `--until`: an RFC 3339 time, a date (through the end of that day, UTC), or a duration
/// from `now_ms`.
fn parse_until(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    let to_ms = |t: std::time::SystemTime| -> i64 {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(to_ms(t));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{text}T00:00:00")) {
        return Ok(to_ms(t) + 24 * 3600 * 1000);
    }
    if let Ok(d) = humantime::parse_duration(text) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_add(ms));
    }
    bail!("`--until {text}`: expected an RFC 3339 time, a date (YYYY-MM-DD) or a duration (90d)")
}

/// What `moat deploy` sends beside the component: the signature `moat sign` wrote
/// (`--signature FILE`, else `COMPONENT.minisig` when present), and, when the component
/// has no `cargo auditable` data, the dependencies from the SBOM the manifest names or
/// the lockfiles beside it.
pub fn deploy_extras(
    component_path: &Path,
    component: &[u8],
    manifest_dir: &Path,
    sbom_file: Option<&str>,
    signature: Option<&Path>,
) -> anyhow::Result<(Option<String>, Option<Value>)> {
    let default_sig = PathBuf::from(format!("{}.minisig", component_path.display()));
    let sig_path = match signature {
        Some(p) => Some(p.to_path_buf()),
        None => default_sig.is_file().then_some(default_sig),
    };
    let sig = match sig_path {
        Some(p) => Some(
            std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read the signature `{}`", p.display()))?,
        ),
        None => None,
    };
    let resolved = match sbom_file {
        Some(f) => Sbom::resolve(Some(component), Some(&manifest_dir.join(f)), &[]),
        None => Sbom::discover(Some(component), manifest_dir),
    }
    .context("cannot build the bill of materials")?;
    let sbom = match resolved {
        // The node reads `cargo auditable` data from the component itself.
        (_, SbomSource::CargoAuditable | SbomSource::None) => None,
        (sbom, source) => Some(json!({ "source": source, "sbom": sbom })),
    };
    Ok((sig, sbom))
}

/// The supply-chain lines of `moat functions show`.
pub fn show_supply(v: &Value) -> String {
    let mut s = String::new();
    let c = &v["component"];
    if c.is_object() {
        let list = |key: &str| {
            c[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            "\n  component: {} bytes ({})",
            c["size"],
            c["kind"].as_str().unwrap_or("component")
        ));
        s.push_str(&format!("\n  imports:  {}", list("imports")));
        s.push_str(&format!("\n  exports:  {}", list("exports")));
        let producers: Vec<String> = c["producers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{} {} {}",
                    p["field"].as_str().unwrap_or(""),
                    p["name"].as_str().unwrap_or(""),
                    p["version"].as_str().unwrap_or("")
                )
                .trim()
                .to_string()
            })
            .collect();
        if !producers.is_empty() {
            s.push_str(&format!("\n  producers: {}", producers.join(", ")));
        }
    }
    let sup = &v["supply"];
    if sup.is_object() {
        s.push_str(&format!(
            "\n  signer:   {}",
            sup["signer"].as_str().unwrap_or("unsigned")
        ));
        s.push_str(&format!(
            "\n  sbom:     {} packages from {}",
            sup["packages"], sup["sbom_source"]
        ));
        let findings = sup["findings"].as_array().cloned().unwrap_or_default();
        s.push_str(&format!("\n  findings: {}", findings.len()));
        for f in findings {
            s.push_str(&format!(
                "\n    {} {} {} {}{}",
                f["severity"].as_str().unwrap_or(""),
                f["id"].as_str().unwrap_or(""),
                f["package"].as_str().unwrap_or(""),
                f["version"].as_str().unwrap_or(""),
                f["fixed"]
                    .as_str()
                    .map(|v| format!(" (fixed in {v})"))
                    .unwrap_or_default()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_accepts_times_dates_and_durations() {
        let day = 24 * 3600 * 1000;
        assert_eq!(parse_until("1970-01-02T00:00:00Z", 0).unwrap(), day);
        assert_eq!(parse_until("1970-01-02", 0).unwrap(), 2 * day);
        assert_eq!(parse_until("90d", 5).unwrap(), 5 + 90 * day);
        assert!(parse_until("next tuesday", 0).is_err());
    }
}
