//! Package ecosystems and their version orderings, the common ground of SBOMs and OSV.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{npm, pep440};

/// A package ecosystem Moat understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    /// Rust crates (`crates.io` in OSV, `pkg:cargo` in purls).
    CratesIo,
    /// JavaScript packages (`npm`).
    Npm,
    /// Python packages (`PyPI`, `pkg:pypi`).
    PyPI,
}

impl Ecosystem {
    /// The ecosystem's name in OSV records.
    pub fn osv_name(self) -> &'static str {
        match self {
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Npm => "npm",
            Ecosystem::PyPI => "PyPI",
        }
    }

    /// The ecosystem for an OSV `affected[].package.ecosystem` value, if supported.
    pub fn from_osv(name: &str) -> Option<Ecosystem> {
        match name {
            "crates.io" => Some(Ecosystem::CratesIo),
            "npm" => Some(Ecosystem::Npm),
            "PyPI" => Some(Ecosystem::PyPI),
            _ => None,
        }
    }

    /// The purl type (`cargo`, `npm`, `pypi`).
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::CratesIo => "cargo",
            Ecosystem::Npm => "npm",
            Ecosystem::PyPI => "pypi",
        }
    }

    /// The ecosystem for a purl type.
    pub fn from_purl_type(ty: &str) -> Option<Ecosystem> {
        match ty.to_ascii_lowercase().as_str() {
            "cargo" => Some(Ecosystem::CratesIo),
            "npm" => Some(Ecosystem::Npm),
            "pypi" => Some(Ecosystem::PyPI),
            _ => None,
        }
    }

    /// The name under which two spellings of a package are the same package:
    /// PEP 503 normalization for PyPI, the name as is elsewhere.
    pub fn canonical_name(self, name: &str) -> String {
        match self {
            Ecosystem::PyPI => pep440::normalize_name(name),
            Ecosystem::CratesIo | Ecosystem::Npm => name.to_string(),
        }
    }

    /// Parses a version in this ecosystem's syntax.
    pub fn parse_version(self, text: &str) -> Option<EcoVersion> {
        match self {
            Ecosystem::CratesIo => semver::Version::parse(text.trim())
                .ok()
                .map(EcoVersion::Cargo),
            Ecosystem::Npm => npm::Version::parse(text).ok().map(EcoVersion::Npm),
            Ecosystem::PyPI => pep440::Version::parse(text).ok().map(EcoVersion::PyPI),
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.osv_name())
    }
}

/// A version parsed by its ecosystem's rules.
#[derive(Debug, Clone)]
pub enum EcoVersion {
    /// SemVer 2.0 (the `semver` crate, as Cargo uses).
    Cargo(semver::Version),
    /// node-semver.
    Npm(npm::Version),
    /// PEP 440.
    PyPI(pep440::Version),
}

impl EcoVersion {
    /// Compares two versions of the same ecosystem; `None` across ecosystems.
    pub fn compare(&self, other: &EcoVersion) -> Option<Ordering> {
        match (self, other) {
            // SemVer precedence ignores build metadata; `semver::Version`'s `Ord` does not.
            (EcoVersion::Cargo(a), EcoVersion::Cargo(b)) => Some(a.cmp_precedence(b)),
            (EcoVersion::Npm(a), EcoVersion::Npm(b)) => Some(a.compare(b)),
            (EcoVersion::PyPI(a), EcoVersion::PyPI(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_prerelease_ordering() {
        let e = Ecosystem::CratesIo;
        let a = e.parse_version("1.0.0-alpha.2").unwrap();
        let b = e.parse_version("1.0.0-alpha.10").unwrap();
        let c = e.parse_version("1.0.0").unwrap();
        let d = e.parse_version("1.0.0+build").unwrap();
        assert_eq!(a.compare(&b), Some(Ordering::Less));
        assert_eq!(b.compare(&c), Some(Ordering::Less));
        assert_eq!(c.compare(&d), Some(Ordering::Equal));
    }
}
