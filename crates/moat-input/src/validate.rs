//! Input validation from `[input]`: methods, content types and a JSON Schema (2020-12),
//! all checked before any guest code runs.
//!
//! The validator never fetches anything: `jsonschema` is built without its HTTP and file
//! resolvers, so a `$ref` to anything outside the schema fails the deploy. Violations are
//! reported as JSON pointers into the caller's body with fixed messages — never a schema
//! value, pattern or path, which would leak the schema's internals.

use http::{HeaderMap, Method, header};
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// Deepest nesting of arrays and objects a body may have; deeper is bad input, refused
/// before parsing so no parser recursion ever depends on the caller.
pub const MAX_JSON_DEPTH: usize = 64;
/// Violations reported per request.
const MAX_VIOLATIONS: usize = 20;

/// The `[input]` rules of one route.
#[derive(Default)]
pub struct InputRules {
    /// Allowed methods; empty means any.
    pub methods: Vec<Method>,
    /// Allowed media types (lower case, without parameters); empty means any.
    pub content_types: Vec<String>,
    pub schema: Option<Schema>,
}

/// A compiled JSON Schema.
pub struct Schema {
    validator: jsonschema::Validator,
}

/// One violation: where in the body, and a fixed description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub pointer: String,
    pub message: &'static str,
}

impl Schema {
    /// Compiles a schema as Draft 2020-12. Fails for an invalid schema or one that refers
    /// to anything outside itself.
    pub fn compile(schema: &Value) -> Result<Schema, String> {
        // `pattern` runs on the `regex` engine: linear time whatever the input, so a caller
        // cannot make a deployer's pattern backtrack for seconds (fancy-regex, the crate's
        // default, backtracks). Patterns needing lookaround fail the deploy instead.
        let validator = jsonschema::draft202012::options()
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(schema)
            .map_err(|e| format!("invalid JSON Schema: {e}"))?;
        Ok(Schema { validator })
    }

    /// Checks a body: well-formed JSON, not too deep, valid against the schema.
    pub fn check(&self, body: &[u8]) -> Result<(), Vec<Violation>> {
        let whole = |message| {
            vec![Violation {
                pointer: String::new(),
                message,
            }]
        };
        if json_depth(body) > MAX_JSON_DEPTH {
            return Err(whole("the body is nested too deeply"));
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|_| whole("the body is not valid JSON"))?;
        // The common case, a valid body, skips collecting error locations.
        if self.validator.is_valid(&value) {
            return Ok(());
        }
        let violations: Vec<Violation> = self
            .validator
            .iter_errors(&value)
            .take(MAX_VIOLATIONS)
            .map(|e| Violation {
                pointer: e.instance_path().as_str().to_string(),
                message: describe(e.kind()),
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }
}

/// A caller-facing description of a violation, with no value taken from the schema.
fn describe(kind: &ValidationErrorKind) -> &'static str {
    use ValidationErrorKind as K;
    match kind {
        K::Type { .. } => "has the wrong type",
        K::Required { .. } => "is missing a required property",
        K::AdditionalProperties { .. }
        | K::UnevaluatedProperties { .. }
        | K::PropertyNames { .. } => "has a property that is not allowed",
        K::AdditionalItems { .. } | K::UnevaluatedItems { .. } => "has an item that is not allowed",
        K::Enum { .. } | K::Constant { .. } => "is not an allowed value",
        K::Pattern { .. } | K::BacktrackLimitExceeded { .. } => {
            "does not match the required pattern"
        }
        K::Format { .. } => "does not have the required format",
        K::Minimum { .. }
        | K::Maximum { .. }
        | K::ExclusiveMinimum { .. }
        | K::ExclusiveMaximum { .. }
        | K::MultipleOf { .. } => "is out of range",
        K::MinLength { .. } | K::MaxLength { .. } => "has a length that is not allowed",
        K::MinItems { .. } | K::MaxItems { .. } | K::UniqueItems | K::Contains => {
            "has items that are not allowed"
        }
        K::MinProperties { .. } | K::MaxProperties { .. } => {
            "has a number of properties that is not allowed"
        }
        _ => "is not valid",
    }
}

/// The maximum nesting depth of arrays and objects in `body`, ignoring brackets in strings.
/// Linear, no recursion: safe on any input.
pub fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Why a request fails the method or content-type rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleFailure {
    Method,
    ContentType,
}

impl InputRules {
    /// Checks the method and, for a request with a body, its content type.
    pub fn check_head(&self, method: &Method, headers: &HeaderMap) -> Result<(), RuleFailure> {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return Err(RuleFailure::Method);
        }
        if self.content_types.is_empty() || !has_body(method, headers) {
            return Ok(());
        }
        let media = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        match media {
            Some(m) if self.content_types.contains(&m) => Ok(()),
            _ => Err(RuleFailure::ContentType),
        }
    }

    /// Whether the schema applies to this request: every request that carries a body, and
    /// every POST, PUT or PATCH (an empty body is then not valid JSON).
    pub fn wants_validation(&self, method: &Method, headers: &HeaderMap) -> bool {
        self.schema.is_some()
            && (has_body(method, headers)
                || [Method::POST, Method::PUT, Method::PATCH].contains(method))
    }

    /// The `allow` header value for a 405.
    pub fn allow_header(&self) -> String {
        self.methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn has_body(_method: &Method, headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_schema() -> Schema {
        Schema::compile(&json!({
            "type": "object",
            "required": ["qty", "sku"],
            "additionalProperties": false,
            "properties": {
                "qty": {"type": "integer", "minimum": 1, "maximum": 100},
                "sku": {"type": "string", "pattern": "^SKU-[0-9]{4}$"},
                "tags": {"type": "array", "items": {"enum": ["gift", "rush"]}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn valid_bodies_pass() {
        let s = order_schema();
        assert!(
            s.check(br#"{"qty": 2, "sku": "SKU-0001", "tags": ["gift"]}"#)
                .is_ok()
        );
    }

    #[test]
    fn violations_name_pointers_and_never_schema_internals() {
        let s = order_schema();
        let v = s
            .check(br#"{"qty": 0, "sku": "nope", "tags": ["free"], "x": 1}"#)
            .unwrap_err();
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        for p in ["/qty", "/sku", "/tags/0"] {
            assert!(pointers.contains(&p), "{p} missing from {pointers:?}");
        }
        let text = format!("{v:?}");
        for internal in ["SKU-", "[0-9]", "gift", "rush", "100", "minimum"] {
            assert!(!text.contains(internal), "`{internal}` leaked: {text}");
        }
    }

    #[test]
    fn bad_json_deep_json_and_huge_numbers_are_violations_not_crashes() {
        let s = order_schema();
        assert_eq!(
            s.check(b"{not json").unwrap_err()[0].message,
            "the body is not valid JSON"
        );
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            s.check(deep.as_bytes()).unwrap_err()[0].message,
            "the body is nested too deeply"
        );
        let huge = format!(r#"{{"qty": 1{}, "sku": "SKU-0001"}}"#, "0".repeat(400));
        assert!(s.check(huge.as_bytes()).is_err());
        assert!(s.check(br#"{"qty": 1e999, "sku": "SKU-0001"}"#).is_err());
        assert!(s.check(b"").is_err());
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a": "[[[[\"[[["}"#), 1);
        assert_eq!(json_depth(br#"[[{"a": [1]}]]"#), 4);
    }

    #[test]
    fn schemas_that_refer_outside_themselves_do_not_compile() {
        for r in [
            "http://127.0.0.1:9/schema.json",
            "https://example.com/schema.json",
            "file:///etc/passwd",
            "other.json",
        ] {
            let e = Schema::compile(&json!({"$ref": r})).err();
            assert!(e.is_some(), "`{r}` was accepted");
        }
        // Local references still work.
        let s = Schema::compile(&json!({
            "$defs": {"n": {"type": "integer"}},
            "type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}
        }))
        .unwrap();
        assert!(s.check(br#"{"n": 1}"#).is_ok());
        assert!(s.check(br#"{"n": "x"}"#).is_err());
    }

    #[test]
    fn patterns_run_on_a_linear_time_engine() {
        // Backtracking-only syntax is refused at deploy: the engine that would run it could
        // be driven into exponential time by a caller's string.
        for pattern in ["^(?=a)a$", "^(a)\\1$"] {
            let err = Schema::compile(&json!({"type": "string", "pattern": pattern}));
            assert!(err.is_err(), "{pattern} compiled");
        }
        // The classic catastrophic pattern stays a plain, quick answer.
        let s = Schema::compile(&json!({"type": "string", "pattern": "^(a+)+$"})).unwrap();
        let mut evil = "\"".to_string() + &"a".repeat(50_000);
        evil.push_str("!\"");
        assert!(s.check(evil.as_bytes()).is_err());
    }

    #[test]
    fn invalid_schemas_do_not_compile() {
        assert!(Schema::compile(&json!({"type": "no-such-type"})).is_err());
        assert!(Schema::compile(&json!({"minimum": "ten"})).is_err());
    }

    #[test]
    fn methods_and_content_types() {
        let rules = InputRules {
            methods: vec![Method::POST],
            content_types: vec!["application/json".into()],
            schema: None,
        };
        let mut h = HeaderMap::new();
        assert_eq!(rules.check_head(&Method::GET, &h), Err(RuleFailure::Method));
        h.insert(header::CONTENT_LENGTH, "5".parse().unwrap());
        assert_eq!(
            rules.check_head(&Method::POST, &h),
            Err(RuleFailure::ContentType)
        );
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            rules.check_head(&Method::POST, &h),
            Err(RuleFailure::ContentType)
        );
        h.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(rules.check_head(&Method::POST, &h), Ok(()));
        assert_eq!(rules.allow_header(), "POST");
    }
}
