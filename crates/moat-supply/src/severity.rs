//! Advisory severity: GitHub's labels, CVSS v3.x base scores and their qualitative ratings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Qualitative severity, ordered from `None` to `Critical` (CVSS v3.x rating scale).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// No rating given, or CVSS 0.0.
    #[default]
    None,
    /// CVSS 0.1–3.9, GitHub LOW.
    Low,
    /// CVSS 4.0–6.9, GitHub MODERATE.
    Medium,
    /// CVSS 7.0–8.9, GitHub HIGH.
    High,
    /// CVSS 9.0–10.0, GitHub CRITICAL.
    Critical,
}

/// A severity name that is not one of `none`, `low`, `medium`, `high`, `critical`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity `{0}`; expected one of none, low, medium, high, critical")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    /// Case-insensitive; GitHub's `moderate` is accepted as `medium`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Severity::None),
            "low" => Ok(Severity::Low),
            "medium" | "moderate" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(UnknownSeverity(s.to_string())),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

impl Severity {
    /// The rating of a CVSS v3.x base score.
    pub fn from_score(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else if score > 0.0 {
            Severity::Low
        } else {
            Severity::None
        }
    }
}

/// What was wrong with a CVSS vector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CvssError {
    /// Not a `CVSS:3.0/` or `CVSS:3.1/` vector.
    #[error("unsupported CVSS vector `{0}`; expected CVSS:3.0 or CVSS:3.1")]
    Unsupported(String),
    /// A base metric is missing or has an unknown value.
    #[error("CVSS vector `{vector}` has a missing or invalid `{metric}` metric")]
    Metric {
        /// The vector.
        vector: String,
        /// The metric.
        metric: &'static str,
    },
}

/// CVSS v3.1 `Roundup`: the smallest number with one decimal that is >= the input,
/// computed on integers to avoid floating-point surprises (spec, Appendix A).
fn roundup(x: f64) -> f64 {
    let int_input = (x * 100_000.0).round() as i64;
    if int_input % 10_000 == 0 {
        int_input as f64 / 100_000.0
    } else {
        ((int_input / 10_000) as f64 + 1.0) / 10.0
    }
}

/// The CVSS v3.x base score of a vector such as
/// `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H` (9.8). Temporal and environmental
/// metrics, if present, are ignored.
pub fn cvss3_base_score(vector: &str) -> Result<f64, CvssError> {
    let v = vector.trim();
    let rest = v
        .strip_prefix("CVSS:3.1/")
        .or_else(|| v.strip_prefix("CVSS:3.0/"))
        .ok_or_else(|| CvssError::Unsupported(v.to_string()))?;
    let metric = |name: &'static str| -> Result<&str, CvssError> {
        rest.split('/')
            .find_map(|part| part.strip_prefix(name).and_then(|p| p.strip_prefix(':')))
            .ok_or(CvssError::Metric {
                vector: v.to_string(),
                metric: name,
            })
    };
    let bad = |metric: &'static str| CvssError::Metric {
        vector: v.to_string(),
        metric,
    };
    let changed = match metric("S")? {
        "U" => false,
        "C" => true,
        _ => return Err(bad("S")),
    };
    let av = match metric("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return Err(bad("AV")),
    };
    let ac = match metric("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return Err(bad("AC")),
    };
    let pr = match (metric("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return Err(bad("PR")),
    };
    let ui = match metric("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return Err(bad("UI")),
    };
    let cia = |name: &'static str| -> Result<f64, CvssError> {
        match metric(name)? {
            "H" => Ok(0.56),
            "L" => Ok(0.22),
            "N" => Ok(0.0),
            _ => Err(bad(name)),
        }
    };
    let (c, i, a) = (cia("C")?, cia("I")?, cia("A")?);
    let iss = 1.0 - ((1.0 - c) * (1.0 - i) * (1.0 - a));
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Ok(0.0);
    }
    Ok(if changed {
        roundup(f64::min(1.08 * (impact + exploitability), 10.0))
    } else {
        roundup(f64::min(impact + exploitability, 10.0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_scores_match_the_first_calculator() {
        let cases = [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
            ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N", 0.0),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:L/E:P", 7.3),
        ];
        for (v, want) in cases {
            assert_eq!(cvss3_base_score(v).unwrap(), want, "{v}");
        }
        assert!(cvss3_base_score("CVSS:4.0/AV:N").is_err());
        assert!(cvss3_base_score("CVSS:3.1/AV:N/AC:L").is_err());
    }

    #[test]
    fn ratings_and_names() {
        assert_eq!(Severity::from_score(9.8), Severity::Critical);
        assert_eq!(Severity::from_score(7.5), Severity::High);
        assert_eq!(Severity::from_score(6.1), Severity::Medium);
        assert_eq!(Severity::from_score(0.0), Severity::None);
        assert_eq!("MODERATE".parse::<Severity>().unwrap(), Severity::Medium);
        assert_eq!("high".parse::<Severity>().unwrap(), Severity::High);
        assert!("severe".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::High);
    }
}
