//! The locked function spec: what a deploy sends to the node and what the node stores.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A validated function: everything the node needs except the component bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub name: String,
    pub route: String,
    pub auth: Auth,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub input: Input,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub dlp: Dlp,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// A bearer token is required (the default: nothing is public unless said so).
    #[default]
    Token,
    Public,
}

/// `[limits]`: every key optional; the node's defaults fill the gaps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub memory_mb: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<u32>,
    pub max_body_bytes: Option<u64>,
    pub max_response_bytes: Option<u64>,
    /// `"N/s"`, `"N/m"` or `"N/h"`.
    pub rate_limit: Option<String>,
}

/// A parsed `rate_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per_secs: u32,
}

impl FromStr for RateLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = || format!("expected `N/s`, `N/m` or `N/h` (e.g. \"100/s\"), found `{s}`");
        let (count, unit) = s.split_once('/').ok_or_else(expected)?;
        let count: u32 = count.trim().parse().map_err(|_| expected())?;
        let per_secs = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(expected()),
        };
        if count == 0 {
            return Err("a rate limit of 0 would refuse every request".into());
        }
        Ok(RateLimit { count, per_secs })
    }
}

/// `[input]`, with the schema file already read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub content_types: Vec<String>,
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
}

/// `[permissions]`: each entry is a grant; nothing else is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    #[serde(default)]
    pub outbound_hosts: Vec<String>,
    #[serde(default)]
    pub kv: Vec<String>,
    /// Secret names. A version pinned in the manifest (`"stripe-key@3"`) is kept apart in
    /// `secret_versions`, so grants, policy and review see only the name.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Pinned versions by secret name; a granted secret not named here reads its current
    /// version. Every key is also in `secrets`. Absent from the JSON when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_versions: BTreeMap<String, i64>,
}

/// One `permissions.secrets` entry as written in a manifest: `NAME` or `NAME@VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretGrant {
    pub name: String,
    pub version: Option<i64>,
}

impl FromStr for SecretGrant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "expected a secret name of [a-z0-9-], optionally pinned to a version (\"stripe-key@3\"), found `{s}`"
            )
        };
        let (name, version) = match s.split_once('@') {
            None => (s, None),
            Some((name, text)) => {
                let v: i64 = match text.parse() {
                    Ok(v) if v >= 1 && text.bytes().all(|b| b.is_ascii_digit()) => v,
                    _ => return Err(expected()),
                };
                (name, Some(v))
            }
        };
        if !is_name(name, 128) {
            return Err(expected());
        }
        Ok(SecretGrant {
            name: name.to_string(),
            version,
        })
    }
}

impl Permissions {
    /// The grants of a manifest's `permissions.secrets` list: names, and pins kept apart.
    pub fn with_secret_grants(
        outbound_hosts: Vec<String>,
        kv: Vec<String>,
        entries: &[String],
    ) -> Result<Self, SpecError> {
        let mut p = Permissions {
            outbound_hosts,
            kv,
            ..Permissions::default()
        };
        for entry in entries {
            let g: SecretGrant = entry.parse().map_err(|message| SpecError {
                key: "permissions.secrets".into(),
                message,
            })?;
            if p.secrets.contains(&g.name) {
                return Err(SpecError {
                    key: "permissions.secrets".into(),
                    message: format!("`{}` is granted more than once", g.name),
                });
            }
            if let Some(v) = g.version {
                p.secret_versions.insert(g.name.clone(), v);
            }
            p.secrets.push(g.name);
        }
        Ok(p)
    }

    /// The version a granted secret is pinned to, if any.
    pub fn secret_version(&self, name: &str) -> Option<i64> {
        self.secret_versions.get(name).copied()
    }
}

/// `[dlp]`: what happens when something sensitive tries to leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dlp {
    #[serde(default)]
    pub mode: DlpMode,
    #[serde(default = "default_detectors")]
    pub detectors: Vec<Detector>,
}

impl Default for Dlp {
    fn default() -> Self {
        Dlp {
            mode: DlpMode::default(),
            detectors: default_detectors(),
        }
    }
}

fn default_detectors() -> Vec<Detector> {
    vec![Detector::Secrets]
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DlpMode {
    #[default]
    Block,
    Redact,
    Alert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    Secrets,
    CreditCard,
    PrivateKey,
    AwsKey,
    Jwt,
    HighEntropy,
}

/// A spec that failed validation: the dotted key and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// Upper bounds that keep a manifest from asking for more than a node could give.
const MAX_MEMORY_MB: u32 = 4096;
const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
const MAX_CONCURRENCY: u32 = 10_000;
const MAX_BODY_BYTES: u64 = 1 << 30;

impl FunctionSpec {
    /// Checks every value. Called by the CLI before upload and by the node on receipt.
    pub fn validate(&self) -> Result<(), SpecError> {
        let fail = |key: &str, message: String| {
            Err(SpecError {
                key: key.to_string(),
                message,
            })
        };
        if !is_name(&self.name, 63) {
            return fail(
                "function.name",
                format!(
                    "expected 1-63 characters of [a-z0-9-], found `{}`",
                    self.name
                ),
            );
        }
        if let Err(m) = check_route(&self.route) {
            return fail("function.route", m);
        }
        let l = &self.limits;
        if let Some(v) = l.memory_mb
            && !(1..=MAX_MEMORY_MB).contains(&v)
        {
            return fail(
                "limits.memory_mb",
                format!("expected 1 to {MAX_MEMORY_MB}, found {v}"),
            );
        }
        if let Some(v) = l.timeout_ms
            && !(1..=MAX_TIMEOUT_MS).contains(&v)
        {
            return fail(
                "limits.timeout_ms",
                format!("expected 1 to {MAX_TIMEOUT_MS}, found {v}"),
            );
        }
        if let Some(v) = l.max_concurrency
            && !(1..=MAX_CONCURRENCY).contains(&v)
        {
            return fail(
                "limits.max_concurrency",
                format!("expected 1 to {MAX_CONCURRENCY}, found {v}"),
            );
        }
        for (key, v) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_response_bytes", l.max_response_bytes),
        ] {
            if let Some(v) = v
                && !(1..=MAX_BODY_BYTES).contains(&v)
            {
                return fail(key, format!("expected 1 to {MAX_BODY_BYTES}, found {v}"));
            }
        }
        if let Some(r) = &l.rate_limit
            && let Err(m) = r.parse::<RateLimit>()
        {
            return fail("limits.rate_limit", m);
        }
        for m in &self.input.methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                return fail(
                    "input.methods",
                    format!("expected an upper-case HTTP method such as \"POST\", found `{m}`"),
                );
            }
        }
        for ct in &self.input.content_types {
            if !is_media_type(ct) {
                return fail(
                    "input.content_types",
                    format!("expected a media type such as \"application/json\", found `{ct}`"),
                );
            }
        }
        if let Some(schema) = &self.input.schema
            && !(schema.is_object() || schema.is_boolean())
        {
            return fail(
                "input.schema",
                "expected a JSON Schema (an object or a boolean)".into(),
            );
        }
        for h in &self.permissions.outbound_hosts {
            if let Err(m) = check_host_pattern(h) {
                return fail("permissions.outbound_hosts", m);
            }
        }
        for b in &self.permissions.kv {
            if !is_name(b, 63) {
                return fail(
                    "permissions.kv",
                    format!("expected a bucket name of [a-z0-9-], found `{b}`"),
                );
            }
        }
        for (i, s) in self.permissions.secrets.iter().enumerate() {
            if !is_name(s, 128) {
                return fail(
                    "permissions.secrets",
                    format!("expected a secret name of [a-z0-9-], found `{s}`"),
                );
            }
            if self.permissions.secrets[..i].contains(s) {
                return fail(
                    "permissions.secrets",
                    format!("`{s}` is granted more than once"),
                );
            }
        }
        for (name, version) in &self.permissions.secret_versions {
            if !self.permissions.secrets.contains(name) {
                return fail(
                    "permissions.secret_versions",
                    format!("`{name}` is pinned but not granted in `permissions.secrets`"),
                );
            }
            if *version < 1 {
                return fail(
                    "permissions.secrets",
                    format!("`{name}@{version}`: versions start at 1"),
                );
            }
        }
        for key in self.config.keys() {
            if key.is_empty() || key.len() > 128 || key.chars().any(char::is_control) {
                return fail(
                    "config",
                    format!("expected a key of 1-128 printable characters, found `{key}`"),
                );
            }
            if self.permissions.secrets.contains(key) {
                return fail(
                    &format!("config.{key}"),
                    format!("`{key}` is also a granted secret; a name can be one or the other"),
                );
            }
        }
        Ok(())
    }

    /// The route's matching rule.
    pub fn route_match(&self) -> RouteMatch {
        route_match(&self.route)
    }
}

/// How a route matches request paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// Only this path.
    Exact(String),
    /// This path and everything below it (`"/orders/..."` → `Prefix("/orders")`).
    Prefix(String),
}

/// Parses a route string (assumed valid).
pub fn route_match(route: &str) -> RouteMatch {
    match route.strip_suffix("/...") {
        Some(base) => RouteMatch::Prefix(base.to_string()),
        None => RouteMatch::Exact(route.to_string()),
    }
}

pub fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_route(route: &str) -> Result<(), String> {
    let expected = || {
        format!("expected an absolute path such as \"/orders\" or \"/orders/...\", found `{route}`")
    };
    if !route.starts_with('/') || route.len() > 1024 {
        return Err(expected());
    }
    let base = route.strip_suffix("/...").unwrap_or(route);
    if base.is_empty() {
        return Ok(()); // "/..." serves every path
    }
    if base != "/" && base.ends_with('/') {
        return Err(format!("{}; drop the trailing `/`", expected()));
    }
    for segment in base.split('/').skip(1) {
        if base == "/" {
            break;
        }
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(expected());
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(format!(
                "{}; segments may use only letters, digits and `-._~`",
                expected()
            ));
        }
    }
    Ok(())
}

fn is_media_type(ct: &str) -> bool {
    let Some((t, sub)) = ct.split_once('/') else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&-^_.+*".contains(&b))
    };
    token(t) && token(sub)
}

/// A parsed `permissions.outbound_hosts` entry: `scheme://host[:port]`, with `*.` allowed
/// only as the whole leftmost label and IPv6 addresses in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    pub https: bool,
    /// Lower-case host: a name, `*.suffix`, or an IP address (IPv6 without brackets).
    pub host: String,
    /// `None`: the scheme's default port only.
    pub port: Option<u16>,
}

impl FromStr for HostPattern {
    type Err = String;
    fn from_str(p: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "expected `https://host[:port]` or `http://host[:port]` (`*.` allowed as the leftmost label), found `{p}`"
            )
        };
        let (scheme, rest) = p.split_once("://").ok_or_else(expected)?;
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => return Err(expected()),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (v6, after) = inner.split_once(']').ok_or_else(expected)?;
            v6.parse::<std::net::Ipv6Addr>().map_err(|_| expected())?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(expected)?),
            };
            (v6.to_ascii_lowercase(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, port)) => (h.to_string(), Some(port)),
                None => (rest.to_string(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && !p.starts_with('+') => Some(n),
                _ => return Err(expected()),
            },
        };
        if !host.contains(':') {
            let labels: Vec<&str> = host.split('.').collect();
            for (i, label) in labels.iter().enumerate() {
                if *label == "*" && i == 0 && labels.len() > 1 {
                    continue;
                }
                let ok = !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-');
                if !ok {
                    return Err(expected());
                }
            }
        }
        Ok(HostPattern { https, host, port })
    }
}

fn check_host_pattern(p: &str) -> Result<(), String> {
    p.parse::<HostPattern>().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        for ok in ["/", "/...", "/hello", "/echo/...", "/a/b-c_d.e~f"] {
            assert!(check_route(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "hello", "/a/", "//a", "/a//b", "/a/./b", "/a/%2e", "/a?b", "/a b",
        ] {
            assert!(check_route(bad).is_err(), "{bad}");
        }
        assert_eq!(route_match("/echo/..."), RouteMatch::Prefix("/echo".into()));
        assert_eq!(route_match("/..."), RouteMatch::Prefix("".into()));
        assert_eq!(route_match("/hello"), RouteMatch::Exact("/hello".into()));
    }

    #[test]
    fn host_patterns() {
        for ok in [
            "https://api.stripe.com",
            "http://example.com:8080",
            "https://*.example.com",
            "https://10.0.0.1",
            "https://[::1]:443",
            "https://[::1]",
        ] {
            assert!(check_host_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "api.stripe.com",
            "ftp://x.com",
            "https://",
            "https://*",
            "https://a.*.com",
            "https://x.com:0",
            "https://x.com/path",
            "https://UPPER.com",
            "https://x.com:99999",
            "https://[::1",
            "https://[nope]",
            "https://[::1]x",
        ] {
            assert!(check_host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_round_trips_as_json_and_refuses_unknown_fields() {
        let spec = FunctionSpec {
            name: "a".into(),
            route: "/a".into(),
            auth: Auth::Public,
            limits: Limits::default(),
            input: Input::default(),
            permissions: Permissions::default(),
            config: BTreeMap::new(),
            dlp: Dlp::default(),
        };
        let json = serde_json::to_value(&spec).unwrap();
        let back: FunctionSpec = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, spec);
        let mut extra = json;
        extra["sneaky"] = serde_json::json!(true);
        assert!(serde_json::from_value::<FunctionSpec>(extra).is_err());
    }
}
