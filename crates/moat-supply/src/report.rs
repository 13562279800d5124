//! Scan reports: findings of one scanned artifact, as a text table, JSON, or SARIF 2.1.0
//! (for code-scanning dashboards).

use serde::Serialize;
use serde_json::{Value, json};

use crate::osv::Finding;
use crate::sbom::{Sbom, SbomSource, Unpinned};
use crate::severity::Severity;

/// The result of scanning one artifact.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scanned file, as the user named it (SARIF locations point here).
    pub target: String,
    /// Where the package list came from.
    pub source: SbomSource,
    /// How many packages were checked.
    pub packages: usize,
    /// Advisories that apply, most severe first.
    pub findings: Vec<Finding>,
    /// Requirements without exact versions, which could not be checked.
    pub unpinned: Vec<Unpinned>,
}

impl Report {
    /// Builds a report from a scan.
    pub fn new(target: &str, source: SbomSource, sbom: &Sbom, findings: Vec<Finding>) -> Report {
        Report {
            target: target.to_string(),
            source,
            packages: sbom.components.len(),
            findings,
            unpinned: sbom.unpinned.clone(),
        }
    }

    /// The highest severity found, if any finding.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Whether any finding is at or above `threshold` (a node's `block_severity`).
    pub fn blocks(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= threshold)
    }

    /// A plain-text table.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}: {} package(s) checked, {} finding(s)\n",
            self.target,
            self.packages,
            self.findings.len()
        );
        if !self.findings.is_empty() {
            let rows: Vec<[String; 6]> = self
                .findings
                .iter()
                .map(|f| {
                    [
                        f.severity.to_string(),
                        f.id.clone(),
                        f.ecosystem.to_string(),
                        f.package.clone(),
                        f.version.clone(),
                        f.fixed.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let header = ["SEVERITY", "ID", "ECOSYSTEM", "PACKAGE", "VERSION", "FIXED"];
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |cells: &[String]| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                format!("{}\n", padded.join("  ").trim_end())
            };
            out.push_str(&line(&header.map(String::from)));
            for row in &rows {
                out.push_str(&line(row));
            }
        }
        for u in &self.unpinned {
            out.push_str(&format!(
                "unpinned: {}:{}: `{}` names no exact version; not checked\n",
                u.file, u.line, u.requirement
            ));
        }
        out
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// SARIF 2.1.0: one run of tool `moat`, one rule per advisory, one result per finding
    /// located at the scanned file.
    pub fn to_sarif(&self) -> Value {
        let mut rule_ids: Vec<&str> = Vec::new();
        let mut rules = Vec::new();
        for f in &self.findings {
            if rule_ids.contains(&f.id.as_str()) {
                continue;
            }
            rule_ids.push(&f.id);
            let summary = f.summary.clone().unwrap_or_else(|| f.id.clone());
            let mut properties =
                json!({ "tags": ["security", "vulnerability", f.ecosystem.to_string()] });
            if let Some(score) = f.cvss_score.or_else(|| nominal_score(f.severity)) {
                // GitHub code scanning reads this to rank security results.
                properties["security-severity"] = json!(format!("{score:.1}"));
            }
            rules.push(json!({
                "id": f.id,
                "name": f.id,
                "shortDescription": { "text": summary },
                "fullDescription": { "text": summary },
                "helpUri": format!("https://osv.dev/vulnerability/{}", f.id),
                "help": { "text": format!("See https://osv.dev/vulnerability/{}", f.id) },
                "defaultConfiguration": { "level": level(f.severity) },
                "properties": properties,
            }));
        }
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let fix = match &f.fixed {
                    Some(v) => format!("; fixed in {v}"),
                    None => "; no fixed version".to_string(),
                };
                let index = rule_ids.iter().position(|id| *id == f.id).unwrap_or(0);
                json!({
                    "ruleId": f.id,
                    "ruleIndex": index,
                    "level": level(f.severity),
                    "message": { "text": format!(
                        "{} {} {} is affected by {} ({} severity){}",
                        f.ecosystem, f.package, f.version, f.id, f.severity, fix
                    ) },
                    "locations": [ {
                        "physicalLocation": { "artifactLocation": { "uri": file_uri(&self.target) } }
                    } ],
                    "partialFingerprints": {
                        "moat/v1": format!("{}:{}:{}:{}", f.id, f.ecosystem, f.package, f.version)
                    },
                    "properties": { "severity": f.severity, "aliases": f.aliases },
                })
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [ {
                "tool": { "driver": {
                    "name": "moat",
                    "informationUri": "https://osv.dev",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                } },
                "results": results,
            } ],
        })
    }
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::None => "note",
    }
}

/// A representative score for a label without a CVSS vector.
fn nominal_score(severity: Severity) -> Option<f64> {
    match severity {
        Severity::Critical => Some(9.0),
        Severity::High => Some(7.0),
        Severity::Medium => Some(4.0),
        Severity::Low => Some(0.1),
        Severity::None => None,
    }
}

/// A relative URI reference for the scanned file (SARIF wants URIs, not paths).
fn file_uri(path: &str) -> String {
    let mut out = String::new();
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
