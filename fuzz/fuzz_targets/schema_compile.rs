//! Fuzzes `Schema::compile` on arbitrary JSON, as the node does with the schema a deploy
//! uploads: it must never panic, a compiled schema must check bodies without panicking, and a
//! reference to an outside document must fail to compile (there is nothing to fetch it with).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_input::validate::Schema;
use serde_json::Value;

/// Bodies every compiled schema is tried on, besides the schema's own text.
const BODIES: &[&[u8]] = &[
    b"null",
    b"true",
    b"0",
    b"-1.5",
    b"\"x\"",
    b"[]",
    b"{}",
    br#"[1, "a", [null], {"b": {}}]"#,
    br#"{"a": 1, "b": [true, "x"], "c": {"d": null}}"#,
    b"not json",
];

fuzz_target!(|data: &[u8]| {
    let Ok(schema) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let compiled = Schema::compile(&schema);
    if let Some(uri) = external_root_ref(&schema) {
        assert!(
            compiled.is_err(),
            "a schema referring to `{uri}` compiled: where did that document come from?"
        );
    }
    let Ok(compiled) = compiled else {
        return;
    };
    for body in BODIES.iter().copied().chain([data]) {
        let _ = compiled.check(body);
    }
});

/// A top-level `$ref` to a document that only a resolver could bring, in a schema that
/// declares no base URI or anchor of its own (which could make that URI internal).
fn external_root_ref(schema: &Value) -> Option<&str> {
    let uri = schema.get("$ref")?.as_str()?;
    let external = ["http://", "https://", "file:"]
        .iter()
        .any(|s| uri.starts_with(s))
        // The draft meta-schemas are bundled with the validator.
        && !uri.contains("json-schema.org");
    (external && !declares_identity(schema)).then_some(uri)
}

fn declares_identity(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(k, v)| {
            ["$id", "id", "$anchor", "$dynamicAnchor"].contains(&k.as_str()) || declares_identity(v)
        }),
        Value::Array(items) => items.iter().any(declares_identity),
        _ => false,
    }
}
