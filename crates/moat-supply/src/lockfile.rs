//! Lockfile readers: `Cargo.lock`, `package-lock.json` (v1–v3), `poetry.lock`, and
//! `requirements.txt` (exact `==` pins only).

use serde_json::Value;

use crate::Ecosystem;
use crate::sbom::{Package, Sbom, SbomError, Unpinned};

fn toml_doc(file: &str, text: &str) -> Result<toml::Table, SbomError> {
    text.parse::<toml::Table>().map_err(|e| SbomError::Syntax {
        file: file.to_string(),
        format: "TOML",
        message: e.message().to_string(),
    })
}

fn packages_of(doc: &toml::Table) -> impl Iterator<Item = &toml::Table> {
    doc.get("package")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_table)
}

fn str_of<'a>(t: &'a toml::Table, key: &str) -> Option<&'a str> {
    t.get(key).and_then(toml::Value::as_str)
}

fn sbom(packages: Vec<Package>, unpinned: Vec<Unpinned>) -> Sbom {
    let mut components = packages;
    components.sort();
    components.dedup();
    Sbom {
        components,
        unpinned,
    }
}

/// `Cargo.lock`: packages from a registry source (crates.io or a mirror); workspace and
/// path crates (no `source`) and git dependencies are not published versions and are left
/// out.
pub fn cargo_lock(file: &str, text: &str) -> Result<Sbom, SbomError> {
    let doc = toml_doc(file, text)?;
    let packages = packages_of(&doc)
        .filter(|p| {
            str_of(p, "source")
                .is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
        })
        .filter_map(|p| {
            Some(Package {
                ecosystem: Ecosystem::CratesIo,
                name: str_of(p, "name")?.to_string(),
                version: str_of(p, "version")?.to_string(),
            })
        })
        .collect();
    Ok(sbom(packages, Vec::new()))
}

/// `poetry.lock`: every `[[package]]`.
pub fn poetry_lock(file: &str, text: &str) -> Result<Sbom, SbomError> {
    let doc = toml_doc(file, text)?;
    let packages = packages_of(&doc)
        .filter_map(|p| {
            Some(Package {
                ecosystem: Ecosystem::PyPI,
                name: str_of(p, "name")?.to_string(),
                version: str_of(p, "version")?.to_string(),
            })
        })
        .collect();
    Ok(sbom(packages, Vec::new()))
}

/// `package-lock.json`: the `packages` map of lockfile v2/v3 (keys
/// `node_modules/a/node_modules/@s/b`; the root `""` and workspace links are skipped), or
/// the nested `dependencies` of v1.
pub fn package_lock(file: &str, text: &str) -> Result<Sbom, SbomError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| SbomError::Syntax {
        file: file.to_string(),
        format: "JSON",
        message: e.to_string(),
    })?;
    let mut packages = Vec::new();
    if let Some(map) = doc.get("packages").and_then(Value::as_object) {
        for (key, entry) in map {
            if key.is_empty() || entry.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let Some(idx) = key.rfind("node_modules/") else {
                // A workspace package (`packages/foo`), not from the registry.
                continue;
            };
            let name = entry
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&key[idx + "node_modules/".len()..]);
            if let Some(version) = entry.get("version").and_then(Value::as_str) {
                packages.push(Package {
                    ecosystem: Ecosystem::Npm,
                    name: name.to_string(),
                    version: version.to_string(),
                });
            }
        }
    } else {
        fn walk(deps: Option<&Value>, out: &mut Vec<Package>) {
            for (name, entry) in deps.and_then(Value::as_object).into_iter().flatten() {
                if let Some(version) = entry.get("version").and_then(Value::as_str) {
                    // v1 records aliased and linked packages as `npm:` / `file:` specs.
                    if !version.contains(':') {
                        out.push(Package {
                            ecosystem: Ecosystem::Npm,
                            name: name.clone(),
                            version: version.to_string(),
                        });
                    }
                }
                walk(entry.get("dependencies"), out);
            }
        }
        walk(doc.get("dependencies"), &mut packages);
    }
    Ok(sbom(packages, Vec::new()))
}

/// `requirements.txt`: `name[extras]==version` pins (markers and `--hash` options
/// allowed). Anything else that names a requirement is reported as unpinned; options
/// (`-r`, `-e`, `--index-url`), URLs and comments are skipped.
pub fn requirements_txt(file: &str, text: &str) -> Sbom {
    let mut packages = Vec::new();
    let mut unpinned = Vec::new();
    // Join continuation lines, remembering where each logical line started.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(stripped) = raw.strip_suffix('\\') {
            acc.push_str(stripped);
            acc.push(' ');
            pending = Some((start, acc));
        } else {
            acc.push_str(raw);
            logical.push((start, acc));
        }
    }
    if let Some(p) = pending {
        logical.push(p);
    }
    for (line_no, line) in logical {
        // A comment starts at `#` at the line start or after white space.
        let mut content = line.as_str();
        if let Some(pos) = line
            .char_indices()
            .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)))
            .map(|(i, _)| i)
        {
            content = &line[..pos];
        }
        let content = content.trim();
        if content.is_empty() || content.starts_with('-') || content.contains("://") {
            continue;
        }
        // Drop per-requirement options (`--hash=...`) and the environment marker.
        let requirement = content
            .split(" --")
            .next()
            .unwrap_or(content)
            .split(';')
            .next()
            .unwrap_or(content)
            .trim();
        let name_end = requirement
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(requirement.len());
        let name = &requirement[..name_end];
        if name.is_empty() {
            continue;
        }
        let mut rest = requirement[name_end..].trim_start();
        if rest.starts_with('[') {
            rest = rest
                .find(']')
                .map_or("", |end| rest[end + 1..].trim_start());
        }
        let pin = rest
            .strip_prefix("===")
            .or_else(|| rest.strip_prefix("=="))
            .map(str::trim)
            .filter(|v| !v.is_empty() && !v.contains([',', '*', ' ', '<', '>', '!', '~', '=']));
        match pin {
            Some(version) => packages.push(Package {
                ecosystem: Ecosystem::PyPI,
                name: name.to_string(),
                version: version.to_string(),
            }),
            None => unpinned.push(Unpinned {
                ecosystem: Ecosystem::PyPI,
                file: file.to_string(),
                line: line_no,
                requirement: content.to_string(),
            }),
        }
    }
    sbom(packages, unpinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_lock_keeps_registry_crates() {
        let text = r#"
version = 4
[[package]]
name = "app"
version = "0.1.0"
dependencies = ["regex"]

[[package]]
name = "regex"
version = "1.5.4"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "00"

[[package]]
name = "forked"
version = "0.1.0"
source = "git+https://example.com/x#abc"
"#;
        let s = cargo_lock("Cargo.lock", text).unwrap();
        assert_eq!(s.components.len(), 1);
        assert_eq!(s.components[0].name, "regex");
        assert!(cargo_lock("Cargo.lock", "[[package").is_err());
    }

    #[test]
    fn package_lock_v3_and_v1() {
        let v3 = r#"{"lockfileVersion":3,"packages":{
            "":{"name":"app","version":"1.0.0"},
            "node_modules/lodash":{"version":"4.17.20"},
            "node_modules/a/node_modules/@scope/b":{"version":"1.0.0"},
            "node_modules/linked":{"link":true,"resolved":"packages/linked"},
            "packages/linked":{"version":"0.0.1"}}}"#;
        let s = package_lock("package-lock.json", v3).unwrap();
        let names: Vec<_> = s.components.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["@scope/b", "lodash"]);
        let v1 = r#"{"lockfileVersion":1,"dependencies":{"minimist":{"version":"1.2.0",
            "dependencies":{"x":{"version":"2.0.0"}}},"y":{"version":"file:../y"}}}"#;
        let s = package_lock("package-lock.json", v1).unwrap();
        assert_eq!(s.components.len(), 2);
    }

    #[test]
    fn poetry() {
        let text = "[[package]]\nname = \"Jinja2\"\nversion = \"2.11.2\"\n\n[[package]]\nname = \"urllib3\"\nversion = \"1.26.4\"\n";
        assert_eq!(
            poetry_lock("poetry.lock", text).unwrap().components.len(),
            2
        );
    }

    #[test]
    fn requirements_pins_and_unpinned() {
        let text = "# comment\nrequests==2.30.0 # pinned\nJinja2[i18n] == 2.11.2 ; python_version > '3'\n\
                    urllib3>=1.26\nflask\n-r other.txt\n--index-url https://x\n\
                    numpy==1.* \nsix==1.16.0 \\\n    --hash=sha256:abc\n";
        let s = requirements_txt("requirements.txt", text);
        let pins: Vec<_> = s
            .components
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect();
        assert_eq!(
            pins,
            vec!["Jinja2==2.11.2", "requests==2.30.0", "six==1.16.0"]
        );
        let unpinned: Vec<_> = s
            .unpinned
            .iter()
            .map(|u| (u.line, u.requirement.as_str()))
            .collect();
        assert_eq!(
            unpinned,
            vec![(4, "urllib3>=1.26"), (5, "flask"), (8, "numpy==1.*")]
        );
    }
}
