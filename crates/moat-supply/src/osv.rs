//! OSV advisories: loading an export (a directory of OSV JSON files, or an ecosystem's
//! `all.zip`), and matching an SBOM against it with each ecosystem's version ordering.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ecosystem::{EcoVersion, Ecosystem};
use crate::sbom::Sbom;
use crate::severity::{Severity, cvss3_base_score};

/// What went wrong loading advisories.
#[derive(Debug, thiserror::Error)]
pub enum AdvisoryError {
    /// A file or directory could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An archive could not be read.
    #[error("cannot read archive `{path}`: {message}")]
    Zip {
        /// The archive.
        path: String,
        /// The cause.
        message: String,
    },
    /// A record is not valid OSV JSON.
    #[error("`{file}` is not a valid OSV record: {message}")]
    Record {
        /// The file (or `archive!entry`).
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The path is neither a directory, a `.zip`, nor a `.json` file.
    #[error("`{0}` is not a directory of OSV records, an OSV `.zip` export or a `.json` record")]
    UnknownSource(String),
}

/// One advisory that applies to one package of an SBOM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The OSV id (`GHSA-…`, `RUSTSEC-…`, `PYSEC-…`).
    pub id: String,
    /// Other ids of the same advisory (CVEs, GHSAs).
    pub aliases: Vec<String>,
    /// One-line summary, when the advisory has one.
    pub summary: Option<String>,
    /// The package's ecosystem.
    pub ecosystem: Ecosystem,
    /// The affected package.
    pub package: String,
    /// The installed (affected) version.
    pub version: String,
    /// The first fixed version above the installed one, if the advisory names one.
    pub fixed: Option<String>,
    /// The advisory's severity.
    pub severity: Severity,
    /// The CVSS v3 base score, when the advisory carries a vector.
    pub cvss_score: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct SeverityEntry {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<AffectedPackage>,
    #[serde(default)]
    ranges: Vec<OsvRange>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct AffectedPackage {
    ecosystem: String,
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct OsvRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Event {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
}

/// One OSV record of a supported ecosystem, as a node stores it: withdrawn records
/// included, so that a re-import can withdraw what an earlier one added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAdvisory {
    /// The OSV id.
    pub id: String,
    /// The record's `modified` time (RFC 3339), empty if absent.
    pub modified: String,
    /// The record as compact JSON.
    pub json: String,
}

/// Reads an export like [`AdvisoryDb::load`] and returns the records that name a package
/// of a supported ecosystem, each checked to parse as OSV.
pub fn read_records(path: &Path) -> Result<Vec<RawAdvisory>, AdvisoryError> {
    let mut out = Vec::new();
    visit_export(path, &mut |file, text| {
        let bad = |e: serde_json::Error| AdvisoryError::Record {
            file: file.to_string(),
            message: e.to_string(),
        };
        let value: Value = serde_json::from_slice(text).map_err(bad)?;
        let values = match value {
            Value::Array(items) => items,
            one => vec![one],
        };
        for value in values {
            let record: Record = serde_json::from_value(value.clone()).map_err(bad)?;
            let supported = record.affected.iter().any(|a| {
                a.package
                    .as_ref()
                    .is_some_and(|p| Ecosystem::from_osv(&p.ecosystem).is_some())
            });
            if !supported {
                continue;
            }
            let modified = value
                .get("modified")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            out.push(RawAdvisory {
                id: record.id,
                modified,
                json: value.to_string(),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// Called with each file's name and bytes.
type VisitFile<'a> = dyn FnMut(&str, &[u8]) -> Result<(), AdvisoryError> + 'a;

/// Calls `f` with the name and bytes of each JSON file of an export: a directory
/// (searched recursively), an OSV `all.zip`, or one `.json` file.
fn visit_export(path: &Path, f: &mut VisitFile<'_>) -> Result<(), AdvisoryError> {
    let name = path.display().to_string();
    let io = |source| AdvisoryError::Io {
        path: name.clone(),
        source,
    };
    if path.is_dir() {
        let mut files = Vec::new();
        collect_json(path, &mut files)?;
        files.sort();
        for file in files {
            let text = std::fs::read(&file).map_err(|source| AdvisoryError::Io {
                path: file.display().to_string(),
                source,
            })?;
            f(&file.display().to_string(), &text)?;
        }
    } else if name.ends_with(".zip") {
        let file = std::fs::File::open(path).map_err(io)?;
        let zip_err = |e: zip::result::ZipError| AdvisoryError::Zip {
            path: name.clone(),
            message: e.to_string(),
        };
        let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(zip_err)?;
            if !entry.is_file() || !entry.name().ends_with(".json") {
                continue;
            }
            let entry_name = format!("{name}!{}", entry.name());
            let mut text = Vec::new();
            // One OSV record is kilobytes; refuse absurd entries (zip bombs).
            (&mut entry)
                .take(16 << 20)
                .read_to_end(&mut text)
                .map_err(|source| AdvisoryError::Io {
                    path: entry_name.clone(),
                    source,
                })?;
            f(&entry_name, &text)?;
        }
    } else if name.ends_with(".json") {
        let text = std::fs::read(path).map_err(io)?;
        f(&name, &text)?;
    } else {
        return Err(AdvisoryError::UnknownSource(name));
    }
    Ok(())
}

/// A loaded advisory database, indexed by package.
#[derive(Debug, Default)]
pub struct AdvisoryDb {
    records: Vec<Record>,
    /// (ecosystem, canonical name) → (record, affected entry).
    index: HashMap<(Ecosystem, String), Vec<(usize, usize)>>,
}

impl AdvisoryDb {
    /// Loads a directory of OSV JSON files (searched recursively), an OSV `all.zip`
    /// export, or a single `.json` record. Records for other ecosystems and withdrawn
    /// records are ignored; a malformed record is an error naming the file.
    pub fn load(path: &Path) -> Result<AdvisoryDb, AdvisoryError> {
        let mut db = AdvisoryDb::default();
        visit_export(path, &mut |file, text| db.add_json(file, text))?;
        Ok(db)
    }

    /// Builds a database from stored records (each one OSV JSON record).
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a str>,
    ) -> Result<AdvisoryDb, AdvisoryError> {
        let mut db = AdvisoryDb::default();
        for (i, text) in records.into_iter().enumerate() {
            db.add_json(&format!("stored record {i}"), text.as_bytes())?;
        }
        Ok(db)
    }

    /// Adds one OSV record (or a JSON array of records).
    pub fn add_json(&mut self, file: &str, text: &[u8]) -> Result<(), AdvisoryError> {
        let bad = |e: serde_json::Error| AdvisoryError::Record {
            file: file.to_string(),
            message: e.to_string(),
        };
        let value: Value = serde_json::from_slice(text).map_err(bad)?;
        let records: Vec<Record> = if value.is_array() {
            serde_json::from_value(value).map_err(bad)?
        } else {
            vec![serde_json::from_value(value).map_err(bad)?]
        };
        for record in records {
            if record.withdrawn.is_some() {
                continue;
            }
            let idx = self.records.len();
            let mut used = false;
            for (a, affected) in record.affected.iter().enumerate() {
                let Some(pkg) = &affected.package else {
                    continue;
                };
                // OSV ecosystems may carry a suffix (`Debian:11`); ours never do.
                let Some(eco) = Ecosystem::from_osv(&pkg.ecosystem) else {
                    continue;
                };
                self.index
                    .entry((eco, eco.canonical_name(&pkg.name)))
                    .or_default()
                    .push((idx, a));
                used = true;
            }
            if used {
                self.records.push(record);
            }
        }
        Ok(())
    }

    /// Number of advisories loaded (for the supported ecosystems).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no advisory is loaded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The advisories that affect the SBOM's packages, most severe first.
    pub fn scan(&self, sbom: &Sbom) -> Vec<Finding> {
        let mut findings = Vec::new();
        for pkg in &sbom.components {
            let key = (pkg.ecosystem, pkg.ecosystem.canonical_name(&pkg.name));
            let Some(hits) = self.index.get(&key) else {
                continue;
            };
            let mut seen: Vec<usize> = Vec::new();
            for &(r, a) in hits {
                if seen.contains(&r) {
                    continue;
                }
                let record = &self.records[r];
                let affected = &record.affected[a];
                if let Some(fixed) = affects(pkg.ecosystem, affected, &pkg.version) {
                    seen.push(r);
                    let (severity, cvss_score) = severity_of(record, affected);
                    findings.push(Finding {
                        id: record.id.clone(),
                        aliases: record.aliases.clone(),
                        summary: record.summary.clone(),
                        ecosystem: pkg.ecosystem,
                        package: pkg.name.clone(),
                        version: pkg.version.clone(),
                        fixed,
                        severity,
                        cvss_score,
                    });
                }
            }
        }
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.package.cmp(&b.package))
                .then_with(|| a.id.cmp(&b.id))
        });
        findings
    }
}

fn collect_json(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), AdvisoryError> {
    let entries = std::fs::read_dir(dir).map_err(|source| AdvisoryError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| AdvisoryError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// GitHub's `database_specific.severity` label first (it is what GHSA shows), then the
/// CVSS v3 vector's base score. CVSS v4 vectors are not scored.
fn severity_of(record: &Record, affected: &Affected) -> (Severity, Option<f64>) {
    let score = record
        .severity
        .iter()
        .chain(&affected.severity)
        .filter(|s| s.kind == "CVSS_V3")
        .find_map(|s| cvss3_base_score(&s.score).ok());
    let label = record
        .database_specific
        .as_ref()
        .and_then(|d| d.get("severity"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Severity>().ok());
    match (label, score) {
        (Some(label), score) => (label, score),
        (None, Some(score)) => (Severity::from_score(score), Some(score)),
        (None, None) => (Severity::None, None),
    }
}

/// `Some(fixed)` when `version` is affected by this entry.
fn affects(eco: Ecosystem, affected: &Affected, version: &str) -> Option<Option<String>> {
    let mut hit = affected.versions.iter().any(|v| {
        v == version
            || (eco == Ecosystem::PyPI
                && matches!(
                    (eco.parse_version(v), eco.parse_version(version)),
                    (Some(a), Some(b)) if a.compare(&b) == Some(Ordering::Equal)
                ))
    });
    let mut fixed: Option<(EcoVersion, String)> = None;
    for range in &affected.ranges {
        let ordering = match range.kind.as_str() {
            // SEMVER ranges are SemVer 2.0 precedence; node-semver's ordering is that for
            // npm, the `semver` crate's for the rest.
            "SEMVER" if eco == Ecosystem::Npm => Ecosystem::Npm,
            "SEMVER" => Ecosystem::CratesIo,
            "ECOSYSTEM" => eco,
            _ => continue,
        };
        let Some(v) = ordering.parse_version(version) else {
            continue;
        };
        if let Some(range_fixed) = range_affects(ordering, &range.events, &v) {
            hit = true;
            if let Some((fv, text)) = range_fixed {
                let better = fixed
                    .as_ref()
                    .is_none_or(|(cur, _)| fv.compare(cur) == Some(Ordering::Less));
                if better {
                    fixed = Some((fv, text));
                }
            }
        }
    }
    hit.then(|| fixed.map(|(_, text)| text))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Introduced,
    Fixed,
    LastAffected,
}

/// OSV's range evaluation: events sorted by version (`introduced: "0"` first); walking up
/// to `v`, `introduced <= v` opens, `fixed <= v` closes, `last_affected < v` closes.
/// Returns `Some(first fixed above v)` when `v` is inside.
fn range_affects(
    eco: Ecosystem,
    events: &[Event],
    v: &EcoVersion,
) -> Option<Option<(EcoVersion, String)>> {
    // `None` version = "0", below everything.
    let mut evs: Vec<(Kind, Option<EcoVersion>, String)> = Vec::new();
    for e in events {
        for (kind, text) in [
            (Kind::Introduced, &e.introduced),
            (Kind::Fixed, &e.fixed),
            (Kind::LastAffected, &e.last_affected),
        ] {
            let Some(text) = text else { continue };
            if kind == Kind::Introduced && text == "0" {
                evs.push((kind, None, text.clone()));
            } else if let Some(parsed) = eco.parse_version(text) {
                evs.push((kind, Some(parsed), text.clone()));
            }
            // An event whose version does not parse in this ecosystem cannot be placed;
            // it is skipped rather than guessed.
        }
    }
    let cmp = |a: &Option<EcoVersion>, b: &Option<EcoVersion>| match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.compare(y).unwrap_or(Ordering::Equal),
    };
    evs.sort_by(|a, b| cmp(&a.1, &b.1));
    let ge = |ev: &Option<EcoVersion>| match ev {
        None => true,
        Some(e) => v.compare(e) != Some(Ordering::Less),
    };
    let mut affected = false;
    for (kind, ev, _) in &evs {
        match kind {
            Kind::Introduced if ge(ev) => affected = true,
            Kind::Fixed if ge(ev) => affected = false,
            Kind::LastAffected
                if ev
                    .as_ref()
                    .is_some_and(|e| v.compare(e) == Some(Ordering::Greater)) =>
            {
                affected = false
            }
            _ => {}
        }
    }
    if !affected {
        return None;
    }
    let fixed = evs
        .into_iter()
        .find(|(kind, ev, _)| *kind == Kind::Fixed && !ge(ev))
        .and_then(|(_, ev, text)| ev.map(|e| (e, text)));
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::Package;

    fn db(json: &str) -> AdvisoryDb {
        let mut db = AdvisoryDb::default();
        db.add_json("test.json", json.as_bytes()).unwrap();
        db
    }

    fn sbom(eco: Ecosystem, name: &str, version: &str) -> Sbom {
        Sbom {
            components: vec![Package {
                ecosystem: eco,
                name: name.into(),
                version: version.into(),
            }],
            unpinned: vec![],
        }
    }

    #[test]
    fn multiple_introduced_fixed_pairs() {
        let db = db(
            r#"{"id":"X-1","affected":[{"package":{"ecosystem":"crates.io","name":"c"},
            "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"},
            {"introduced":"2.0.0"},{"fixed":"2.0.5"}]}]}]}"#,
        );
        let hit = |v| db.scan(&sbom(Ecosystem::CratesIo, "c", v));
        assert_eq!(hit("1.0.0")[0].fixed.as_deref(), Some("1.2.3"));
        assert!(hit("1.2.3").is_empty());
        assert!(hit("1.9.0").is_empty());
        assert_eq!(hit("2.0.4")[0].fixed.as_deref(), Some("2.0.5"));
        assert!(hit("2.0.5").is_empty());
        // A pre-release of the fixed version is below it (SemVer), so still affected.
        assert_eq!(hit("2.0.5-rc.1").len(), 1);
    }

    #[test]
    fn last_affected_and_explicit_versions() {
        let db = db(
            r#"[{"id":"P-1","affected":[{"package":{"ecosystem":"PyPI","name":"Foo_Bar"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.0"},{"last_affected":"1.4"}]}],
            "versions":["0.9"]}]}]"#,
        );
        let hit = |v| db.scan(&sbom(Ecosystem::PyPI, "foo-bar", v));
        assert_eq!(hit("1.4").len(), 1);
        assert_eq!(hit("1.4.0").len(), 1);
        assert!(hit("1.4.post1").is_empty());
        assert!(hit("1.0rc1").is_empty());
        assert_eq!(hit("0.9.0")[0].fixed, None);
        assert!(hit("0.8").is_empty());
    }

    #[test]
    fn withdrawn_and_other_ecosystems_are_ignored() {
        let db = db(
            r#"[{"id":"W","withdrawn":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"versions":["1.0.0"]}]},
            {"id":"D","affected":[{"package":{"ecosystem":"Debian:11","name":"a"},"versions":["1.0.0"]}]}]"#,
        );
        assert!(db.is_empty());
    }

    #[test]
    fn malformed_record_is_an_error() {
        let mut db = AdvisoryDb::default();
        let e = db.add_json("bad.json", b"{\"affected\": 3}").unwrap_err();
        assert!(e.to_string().contains("`bad.json`"), "{e}");
    }
}
