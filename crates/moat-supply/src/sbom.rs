//! Software bills of materials: what a component is built from, read from the component's
//! own `cargo auditable` data, an SBOM file (CycloneDX or SPDX JSON), or lockfiles, and
//! written as CycloneDX 1.5 JSON.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Ecosystem;

/// One third-party package at one version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Package {
    /// Where the package comes from.
    pub ecosystem: Ecosystem,
    /// Its name in that ecosystem (npm scopes included: `@scope/name`).
    pub name: String,
    /// The exact version.
    pub version: String,
}

impl Package {
    /// The package URL (`pkg:cargo/serde@1.0.0`, `pkg:npm/%40scope/name@1.0.0`).
    pub fn purl(&self) -> String {
        let name = match self.ecosystem {
            Ecosystem::Npm => match self.name.strip_prefix('@') {
                Some(scoped) => format!("%40{}", purl_escape(scoped, true)),
                None => purl_escape(&self.name, false),
            },
            Ecosystem::PyPI => purl_escape(&crate::pep440::normalize_name(&self.name), false),
            Ecosystem::CratesIo => purl_escape(&self.name, false),
        };
        format!(
            "pkg:{}/{}@{}",
            self.ecosystem.purl_type(),
            name,
            purl_escape(&self.version, false)
        )
    }
}

fn purl_escape(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a purl of a supported type into a package; `None` for other types or a purl
/// without a version.
pub fn parse_purl(purl: &str) -> Option<Package> {
    let rest = purl.trim().strip_prefix("pkg:")?;
    let rest = rest.split('#').next()?.split('?').next()?;
    let (ty, path) = rest.trim_start_matches('/').split_once('/')?;
    let ecosystem = Ecosystem::from_purl_type(ty)?;
    let (path, version) = path.rsplit_once('@')?;
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let name = match ecosystem {
        Ecosystem::Npm => segments.join("/"),
        _ => segments.last()?.clone(),
    };
    let version = percent_decode(version);
    if name.is_empty() || version.is_empty() {
        return None;
    }
    Some(Package {
        ecosystem,
        name,
        version,
    })
}

/// A requirement that names no exact version, so no advisory can be matched to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpinned {
    /// The ecosystem.
    pub ecosystem: Ecosystem,
    /// The file it was read from.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// The requirement as written.
    pub requirement: String,
}

/// Where an SBOM's contents came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SbomSource {
    /// The component's `cargo auditable` section (`.dep-v0`).
    CargoAuditable,
    /// An SBOM file.
    SbomFile(String),
    /// Lockfiles.
    Lockfiles(Vec<String>),
    /// Nothing was found.
    None,
}

/// A bill of materials: the packages a component is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sbom {
    /// The packages, sorted and deduplicated.
    pub components: Vec<Package>,
    /// Requirements without an exact version (from `requirements.txt`), reported, not
    /// guessed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpinned: Vec<Unpinned>,
}

/// What was wrong with an SBOM source.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid JSON or TOML.
    #[error("`{file}` is not valid {format}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// `JSON` or `TOML`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A JSON SBOM is neither CycloneDX nor SPDX.
    #[error("`{0}` is neither a CycloneDX nor an SPDX JSON document")]
    UnknownSbomFormat(String),
    /// A lockfile of a kind Moat does not read.
    #[error(
        "`{0}` is not a supported lockfile (Cargo.lock, package-lock.json, poetry.lock, requirements.txt)"
    )]
    UnknownLockfile(String),
    /// The component's `cargo auditable` data is damaged.
    #[error("the component's `.dep-v0` section is damaged: {0}")]
    Auditable(String),
    /// The component is not WebAssembly.
    #[error("the component is not valid WebAssembly: {0}")]
    Wasm(String),
}

impl Sbom {
    fn from_packages(packages: impl IntoIterator<Item = Package>) -> Sbom {
        let set: BTreeSet<Package> = packages.into_iter().collect();
        Sbom {
            components: set.into_iter().collect(),
            unpinned: Vec::new(),
        }
    }

    /// Whether no package and no unpinned requirement is known.
    pub fn is_empty(&self) -> bool {
        self.components.is_empty() && self.unpinned.is_empty()
    }

    /// Reads the `cargo auditable` data of a Wasm module or component: the `.dep-v0`
    /// custom section, zlib-compressed JSON. Crates from crates.io are listed; path, git
    /// and the root crates are not (no advisory can name them). `Ok(None)` when the
    /// section is absent.
    pub fn from_cargo_auditable(wasm: &[u8]) -> Result<Option<Sbom>, SbomError> {
        let Some(data) = crate::inspect::custom_section(wasm, ".dep-v0")
            .map_err(|e| SbomError::Wasm(e.to_string()))?
        else {
            return Ok(None);
        };
        // Cap the inflated size: the section is untrusted input.
        let json = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&data, 8 << 20)
            .map_err(|e| SbomError::Auditable(format!("cannot decompress: {e:?}")))?;
        #[derive(Deserialize)]
        struct Audit {
            packages: Vec<AuditPackage>,
        }
        #[derive(Deserialize)]
        struct AuditPackage {
            name: String,
            version: String,
            #[serde(default)]
            source: String,
        }
        let audit: Audit = serde_json::from_slice(&json)
            .map_err(|e| SbomError::Auditable(format!("invalid JSON: {e}")))?;
        Ok(Some(Sbom::from_packages(
            audit
                .packages
                .into_iter()
                .filter(|p| p.source == "crates.io")
                .map(|p| Package {
                    ecosystem: Ecosystem::CratesIo,
                    name: p.name,
                    version: p.version,
                }),
        )))
    }

    /// Reads a CycloneDX or SPDX JSON document; packages are taken from their purls
    /// (`pkg:cargo`, `pkg:npm`, `pkg:pypi`), others are skipped.
    pub fn from_sbom_json(file: &str, text: &str) -> Result<Sbom, SbomError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| SbomError::Syntax {
            file: file.to_string(),
            format: "JSON",
            message: e.to_string(),
        })?;
        let mut purls = Vec::new();
        if doc.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
            fn walk(components: Option<&Value>, purls: &mut Vec<String>) {
                for c in components.and_then(Value::as_array).into_iter().flatten() {
                    if let Some(p) = c.get("purl").and_then(Value::as_str) {
                        purls.push(p.to_string());
                    }
                    walk(c.get("components"), purls);
                }
            }
            walk(doc.get("components"), &mut purls);
        } else if doc.get("spdxVersion").is_some() {
            for p in doc
                .get("packages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for r in p
                    .get("externalRefs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if r.get("referenceType").and_then(Value::as_str) == Some("purl")
                        && let Some(loc) = r.get("referenceLocator").and_then(Value::as_str)
                    {
                        purls.push(loc.to_string());
                    }
                }
            }
        } else {
            return Err(SbomError::UnknownSbomFormat(file.to_string()));
        }
        Ok(Sbom::from_packages(
            purls.iter().filter_map(|p| parse_purl(p)),
        ))
    }

    /// Reads a lockfile, choosing the parser by file name.
    pub fn from_lockfile(file: &str, text: &str) -> Result<Sbom, SbomError> {
        let name = Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(file);
        match name {
            "Cargo.lock" => crate::lockfile::cargo_lock(file, text),
            "package-lock.json" | "npm-shrinkwrap.json" => {
                crate::lockfile::package_lock(file, text)
            }
            "poetry.lock" => crate::lockfile::poetry_lock(file, text),
            n if n.ends_with(".txt") && n.starts_with("requirements") => {
                Ok(crate::lockfile::requirements_txt(file, text))
            }
            _ => Err(SbomError::UnknownLockfile(file.to_string())),
        }
    }

    /// Builds the SBOM of a component by precedence: its `cargo auditable` data, else
    /// the SBOM file, else the lockfiles (merged). Returns where it came from.
    pub fn resolve(
        component: Option<&[u8]>,
        sbom_file: Option<&Path>,
        lockfiles: &[&Path],
    ) -> Result<(Sbom, SbomSource), SbomError> {
        if let Some(wasm) = component
            && let Some(sbom) = Sbom::from_cargo_auditable(wasm)?
        {
            return Ok((sbom, SbomSource::CargoAuditable));
        }
        if let Some(path) = sbom_file {
            let name = path.display().to_string();
            let text = read(path)?;
            return Ok((
                Sbom::from_sbom_json(&name, &text)?,
                SbomSource::SbomFile(name),
            ));
        }
        if !lockfiles.is_empty() {
            let mut components = Vec::new();
            let mut unpinned = Vec::new();
            let mut names = Vec::new();
            for path in lockfiles {
                let name = path.display().to_string();
                let sbom = Sbom::from_lockfile(&name, &read(path)?)?;
                components.extend(sbom.components);
                unpinned.extend(sbom.unpinned);
                names.push(name);
            }
            let mut sbom = Sbom::from_packages(components);
            sbom.unpinned = unpinned;
            return Ok((sbom, SbomSource::Lockfiles(names)));
        }
        Ok((Sbom::from_packages([]), SbomSource::None))
    }

    /// Looks in `dir` (a function's directory) for an SBOM file (`*.cdx.json`,
    /// `bom.json`, `sbom.json`, `*.spdx.json`) and lockfiles, then applies
    /// [`Sbom::resolve`].
    pub fn discover(component: Option<&[u8]>, dir: &Path) -> Result<(Sbom, SbomSource), SbomError> {
        let mut sbom_file = None;
        let mut lockfiles = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| SbomError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let mut names: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for path in names {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".cdx.json")
                || name.ends_with(".spdx.json")
                || name == "bom.json"
                || name == "sbom.json"
            {
                sbom_file.get_or_insert(path.clone());
            } else if matches!(
                name,
                "Cargo.lock" | "package-lock.json" | "npm-shrinkwrap.json" | "poetry.lock"
            ) || (name.starts_with("requirements") && name.ends_with(".txt"))
            {
                lockfiles.push(path.clone());
            }
        }
        let refs: Vec<&Path> = lockfiles.iter().map(|p| p.as_path()).collect();
        Sbom::resolve(component, sbom_file.as_deref(), &refs)
    }

    /// CycloneDX 1.5 JSON with a purl for every component.
    pub fn to_cyclonedx_json(&self) -> Value {
        let components: Vec<Value> = self
            .components
            .iter()
            .map(|p| {
                json!({
                    "type": "library",
                    "bom-ref": p.purl(),
                    "name": p.name,
                    "version": p.version,
                    "purl": p.purl(),
                })
            })
            .collect();
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "metadata": { "tools": [ { "name": "moat" } ] },
            "components": components,
        })
    }
}

fn read(path: &Path) -> Result<String, SbomError> {
    std::fs::read_to_string(path).map_err(|source| SbomError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_round_trip() {
        let p = parse_purl("pkg:npm/%40babel/core@7.0.0").unwrap();
        assert_eq!(p.name, "@babel/core");
        assert_eq!(p.purl(), "pkg:npm/%40babel/core@7.0.0");
        let p = parse_purl("pkg:cargo/regex@1.5.4?foo=bar").unwrap();
        assert_eq!(
            (p.ecosystem, p.name.as_str()),
            (Ecosystem::CratesIo, "regex")
        );
        let p = parse_purl("pkg:pypi/Jinja2@2.11.2").unwrap();
        assert_eq!(p.purl(), "pkg:pypi/jinja2@2.11.2");
        assert!(parse_purl("pkg:maven/org.x/y@1").is_none());
        assert!(parse_purl("pkg:npm/lodash").is_none());
    }

    #[test]
    fn cyclonedx_and_spdx() {
        let cdx = r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
            {"type":"library","name":"lodash","purl":"pkg:npm/lodash@4.17.20",
             "components":[{"name":"x","purl":"pkg:pypi/requests@2.30.0"}]},
            {"type":"library","name":"nopurl"}]}"#;
        let s = Sbom::from_sbom_json("bom.json", cdx).unwrap();
        assert_eq!(s.components.len(), 2);
        let spdx = r#"{"spdxVersion":"SPDX-2.3","packages":[{"name":"regex","externalRefs":[
            {"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:cargo/regex@1.5.4"}]}]}"#;
        let s = Sbom::from_sbom_json("x.spdx.json", spdx).unwrap();
        assert_eq!(s.components[0].name, "regex");
        assert!(matches!(
            Sbom::from_sbom_json("x.json", "{}"),
            Err(SbomError::UnknownSbomFormat(_))
        ));
        let out = s.to_cyclonedx_json();
        assert_eq!(out["specVersion"], "1.5");
        assert_eq!(out["components"][0]["purl"], "pkg:cargo/regex@1.5.4");
    }
}
