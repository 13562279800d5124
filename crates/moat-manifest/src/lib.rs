//! `moat.toml` in, a validated [`FunctionSpec`] out.
//!
//! This is the only crate that reads TOML. The CLI parses the manifest with [`Manifest::parse`],
//! resolves its files with [`Manifest::lock`], and sends the resulting [`FunctionSpec`] (JSON)
//! to the node, which validates it again with [`FunctionSpec::validate`]: the admin API is a
//! trust boundary too. The gateway and runtime only ever see a validated spec.
//!
//! Strictness is the point: an unknown key or a wrong type is an error that names the file,
//! the key and what was expected, never a silently ignored setting.

mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use spec::*;

/// A manifest error: which file, which key, what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{message}", key_prefix(.key))]
pub struct ManifestError {
    pub file: String,
    /// Dotted path of the offending key, when there is one.
    pub key: Option<String>,
    pub message: String,
}

fn key_prefix(key: &Option<String>) -> String {
    match key {
        Some(k) => format!("`{k}`: "),
        None => String::new(),
    }
}

/// `moat.toml` as written, before its files are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub function: FunctionSection,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub input: InputSection,
    #[serde(default)]
    pub permissions: PermissionsSection,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub dlp: Dlp,
}

/// `[permissions]` as written: `secrets` entries may pin a version (`"stripe-key@3"`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsSection {
    #[serde(default)]
    pub outbound_hosts: Vec<String>,
    #[serde(default)]
    pub kv: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl PermissionsSection {
    /// The grants as the locked spec holds them: names, with pins kept apart.
    pub fn to_permissions(&self) -> Result<Permissions, SpecError> {
        Permissions::with_secret_grants(self.outbound_hosts.clone(), self.kv.clone(), &self.secrets)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSection {
    pub name: String,
    /// Path of the `.wasm` component, relative to the manifest.
    pub component: String,
    pub route: String,
    #[serde(default)]
    pub auth: Auth,
    /// A CycloneDX or SPDX JSON SBOM of the component, relative to the manifest (read by
    /// `moat scan` and `moat deploy`; the component's own `cargo auditable` data takes precedence).
    #[serde(default)]
    pub sbom: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub content_types: Vec<String>,
    /// Path of a JSON Schema file, relative to the manifest.
    pub schema: Option<String>,
}

/// A manifest whose files have been read: ready to upload.
#[derive(Debug, Clone)]
pub struct Locked {
    pub spec: FunctionSpec,
    pub component_path: PathBuf,
    pub component: Vec<u8>,
}

impl Manifest {
    /// Parses manifest text. `file` is how errors name the file.
    pub fn parse(file: &str, text: &str) -> Result<Self, ManifestError> {
        let err = |key: Option<String>, message: String| ManifestError {
            file: file.to_string(),
            key,
            message,
        };
        let de = toml::Deserializer::parse(text).map_err(|e| err(None, toml_message(&e, text)))?;
        let manifest: Manifest = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let key = (path != "." && !path.is_empty()).then_some(path);
            err(key, toml_message(e.inner(), text))
        })?;
        manifest
            .to_spec(None)
            .and_then(|spec| spec.validate())
            .map_err(|e| ManifestError {
                file: file.to_string(),
                key: Some(e.key),
                message: e.message,
            })?;
        Ok(manifest)
    }

    /// Reads and parses the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: file.clone(),
            key: None,
            message: format!("cannot read the manifest: {e}"),
        })?;
        Self::parse(&file, &text)
    }

    /// Reads the files the manifest names (component, schema), relative to `base_dir`.
    pub fn lock(&self, file: &str, base_dir: &Path) -> Result<Locked, ManifestError> {
        let err = |key: &str, message: String| ManifestError {
            file: file.to_string(),
            key: Some(key.to_string()),
            message,
        };
        let component_path = base_dir.join(&self.function.component);
        let component = std::fs::read(&component_path).map_err(|e| {
            err(
                "function.component",
                format!("cannot read `{}`: {e}", component_path.display()),
            )
        })?;
        let schema = match &self.input.schema {
            None => None,
            Some(rel) => {
                let path = base_dir.join(rel);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    err(
                        "input.schema",
                        format!("cannot read `{}`: {e}", path.display()),
                    )
                })?;
                let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    err(
                        "input.schema",
                        format!("`{}` is not valid JSON: {e}", path.display()),
                    )
                })?;
                Some(value)
            }
        };
        let spec = self
            .to_spec(schema)
            .map_err(|e| err(&e.key, e.message.clone()))?;
        spec.validate()
            .map_err(|e| err(&e.key, e.message.clone()))?;
        Ok(Locked {
            spec,
            component_path,
            component,
        })
    }

    fn to_spec(&self, schema: Option<serde_json::Value>) -> Result<FunctionSpec, SpecError> {
        Ok(FunctionSpec {
            name: self.function.name.clone(),
            route: self.function.route.clone(),
            auth: self.function.auth,
            limits: self.limits.clone(),
            input: Input {
                methods: self.input.methods.clone(),
                content_types: self.input.content_types.clone(),
                schema,
            },
            permissions: self.permissions.to_permissions()?,
            config: self.config.clone(),
            dlp: {
                // The secrets detector is always on, whatever the manifest lists.
                let mut dlp = self.dlp.clone();
                if !dlp.detectors.contains(&Detector::Secrets) {
                    dlp.detectors.insert(0, Detector::Secrets);
                }
                dlp
            },
        })
    }
}

/// toml's message without its source excerpt, plus the line number.
fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{msg} (line {line})")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[function]
name = "orders"
component = "orders.wasm"
route = "/orders/..."

[limits]
memory_mb = 64
timeout_ms = 1000
rate_limit = "100/s"

[input]
methods = ["POST"]
content_types = ["application/json"]

[permissions]
outbound_hosts = ["https://api.stripe.com", "https://*.example.com:8443"]
kv = ["orders"]
secrets = ["stripe-key"]

[config]
currency = "EUR"

[dlp]
mode = "redact"
detectors = ["secrets", "credit-card"]
"#;

    fn parse_err(text: &str) -> ManifestError {
        Manifest::parse("moat.toml", text).unwrap_err()
    }

    #[test]
    fn parses_the_spec_example() {
        let m = Manifest::parse("moat.toml", GOOD).unwrap();
        assert_eq!(m.function.auth, Auth::Token, "auth defaults to token");
        assert_eq!(m.limits.memory_mb, Some(64));
        assert_eq!(
            m.limits.rate_limit.as_ref().map(|r| r.parse().unwrap()),
            Some(RateLimit {
                count: 100,
                per_secs: 1
            })
        );
        assert_eq!(m.dlp.mode, DlpMode::Redact);
    }

    #[test]
    fn unknown_key_names_file_key_and_expected() {
        let e = parse_err(&GOOD.replace("memory_mb = 64", "memory_mib = 64"));
        assert_eq!(e.file, "moat.toml");
        assert_eq!(e.key.as_deref(), Some("limits.memory_mib"));
        assert!(e.message.contains("unknown field `memory_mib`"), "{e}");
        assert!(e.message.contains("memory_mb"), "lists expected keys: {e}");
        let e = parse_err(&format!("{GOOD}\n[extra]\nx = 1\n"));
        assert!(e.message.contains("unknown field `extra`"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = parse_err(&GOOD.replace("memory_mb = 64", "memory_mb = \"lots\""));
        assert_eq!(e.key.as_deref(), Some("limits.memory_mb"));
        assert!(e.message.contains("expected"), "{e}");
        assert!(
            e.to_string().starts_with("moat.toml: `limits.memory_mb`: "),
            "{e}"
        );
        let e = parse_err(&GOOD.replace("currency = \"EUR\"", "currency = 3"));
        assert_eq!(e.key.as_deref(), Some("config.currency"));
    }

    #[test]
    fn invalid_values_are_refused() {
        let cases = [
            ("name = \"orders\"", "name = \"Orders!\"", "function.name"),
            (
                "route = \"/orders/...\"",
                "route = \"orders\"",
                "function.route",
            ),
            (
                "route = \"/orders/...\"",
                "route = \"/a/../b\"",
                "function.route",
            ),
            ("memory_mb = 64", "memory_mb = 0", "limits.memory_mb"),
            (
                "rate_limit = \"100/s\"",
                "rate_limit = \"fast\"",
                "limits.rate_limit",
            ),
            (
                "methods = [\"POST\"]",
                "methods = [\"P OST\"]",
                "input.methods",
            ),
            (
                "\"https://api.stripe.com\"",
                "\"ftp://api.stripe.com\"",
                "permissions.outbound_hosts",
            ),
            (
                "\"https://api.stripe.com\"",
                "\"https://a.*.com\"",
                "permissions.outbound_hosts",
            ),
            ("kv = [\"orders\"]", "kv = [\"../x\"]", "permissions.kv"),
        ];
        for (from, to, key) in cases {
            let e = parse_err(&GOOD.replace(from, to));
            assert_eq!(e.key.as_deref(), Some(key), "{to}: {e}");
        }
        let e = parse_err(&GOOD.replace("mode = \"redact\"", "mode = \"loud\""));
        assert_eq!(e.key.as_deref(), Some("dlp.mode"));
        assert!(e.message.contains("block"), "{e}");
    }

    #[test]
    fn config_key_clashing_with_a_secret_is_an_error() {
        let e = parse_err(&GOOD.replace("currency = \"EUR\"", "stripe-key = \"x\""));
        assert_eq!(e.key.as_deref(), Some("config.stripe-key"));
    }

    #[test]
    fn a_secret_may_be_pinned_to_a_version() {
        let m = Manifest::parse(
            "moat.toml",
            &GOOD.replace(
                "secrets = [\"stripe-key\"]",
                "secrets = [\"stripe-key@3\", \"db\"]",
            ),
        )
        .unwrap();
        let spec = m.to_spec(None).unwrap();
        // The name alone is the grant; the pin is kept apart.
        assert_eq!(spec.permissions.secrets, vec!["stripe-key", "db"]);
        assert_eq!(spec.permissions.secret_version("stripe-key"), Some(3));
        assert_eq!(spec.permissions.secret_version("db"), None);
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["permissions"]["secret_versions"]["stripe-key"], 3);
        // Unpinned specs serialize as before.
        let plain = Manifest::parse("moat.toml", GOOD)
            .unwrap()
            .to_spec(None)
            .unwrap();
        let json = serde_json::to_value(&plain).unwrap();
        assert!(
            json["permissions"].get("secret_versions").is_none(),
            "{json}"
        );

        for bad in [
            "stripe-key@0",
            "stripe-key@",
            "stripe-key@x",
            "stripe-key@-1",
            "stripe-key@+3",
            "@3",
            "stripe-key@1@2",
            "Stripe@1",
        ] {
            let e = parse_err(&GOOD.replace(
                "secrets = [\"stripe-key\"]",
                &format!("secrets = [\"{bad}\"]"),
            ));
            assert_eq!(e.key.as_deref(), Some("permissions.secrets"), "{bad}: {e}");
            assert!(e.message.contains("stripe-key@3"), "{bad}: {e}");
        }
        let e = parse_err(&GOOD.replace(
            "secrets = [\"stripe-key\"]",
            "secrets = [\"stripe-key@2\", \"stripe-key@3\"]",
        ));
        assert!(e.message.contains("more than once"), "{e}");
        // A pinned secret still clashes with a config key of its name.
        let e = parse_err(
            &GOOD
                .replace("secrets = [\"stripe-key\"]", "secrets = [\"stripe-key@2\"]")
                .replace("currency = \"EUR\"", "stripe-key = \"x\""),
        );
        assert_eq!(e.key.as_deref(), Some("config.stripe-key"));
        // A spec sent straight to the node cannot pin what it does not grant.
        let mut spec = plain;
        spec.permissions.secret_versions.insert("other".into(), 1);
        assert_eq!(
            spec.validate().unwrap_err().key,
            "permissions.secret_versions"
        );
    }

    #[test]
    fn malformed_toml_is_an_error_with_a_line() {
        let e = parse_err("[function\nname = 1");
        assert!(e.message.contains("line"), "{e}");
    }

    #[test]
    fn lock_reads_component_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders.wasm"), b"\0asm").unwrap();
        let m = Manifest::parse("moat.toml", GOOD).unwrap();
        let locked = m.lock("moat.toml", dir.path()).unwrap();
        assert_eq!(locked.component, b"\0asm");

        let m = Manifest::parse(
            "moat.toml",
            &GOOD.replace(
                "methods = [\"POST\"]",
                "methods = [\"POST\"]\nschema = \"s.json\"",
            ),
        )
        .unwrap();
        let e = m.lock("moat.toml", dir.path()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("input.schema"));
        std::fs::write(dir.path().join("s.json"), "{not json").unwrap();
        let e = m.lock("moat.toml", dir.path()).unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{e}");
        std::fs::write(dir.path().join("s.json"), r#"{"type":"object"}"#).unwrap();
        let locked = m.lock("moat.toml", dir.path()).unwrap();
        assert!(locked.spec.input.schema.is_some());
    }
}
