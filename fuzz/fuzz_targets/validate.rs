//! Fuzzes `Schema::check`, which validates every caller's request body against a route's
//! `[input]` schema before any guest code runs: never a panic, a verdict that agrees with a
//! hand-written validator of the same schema, and violations that point into the body.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use moat_input::validate::{MAX_JSON_DEPTH, Schema, json_depth};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};

/// A realistic order schema: required integer, string, enum and pattern properties, arrays,
/// a nested object with arbitrary keys (so pointers need escaping) and a local `$ref`.
static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    let schema = json!({
        "type": "object",
        "required": ["id", "qty", "sku", "status"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "qty": {"type": "integer", "minimum": 1, "maximum": 100},
            "sku": {"type": "string", "pattern": "^SKU-[0-9]{4}$"},
            "status": {"enum": ["new", "paid", "shipped"]},
            "note": {"type": "string", "maxLength": 140},
            "tags": {
                "type": "array",
                "items": {"enum": ["gift", "rush"]},
                "maxItems": 4,
                "uniqueItems": true
            },
            "meta": {"type": "object", "additionalProperties": {"type": "string"}},
            "lines": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["sku", "qty"],
                    "additionalProperties": false,
                    "properties": {
                        "sku": {"$ref": "#/properties/sku"},
                        "qty": {"$ref": "#/properties/qty"}
                    }
                }
            }
        }
    });
    match Schema::compile(&schema) {
        Ok(s) => s,
        Err(e) => panic!("the fixed order schema does not compile: {e}"),
    }
});

/// Every message `check` may give; anything else would be schema text leaking out.
const MESSAGES: &[&str] = &[
    "the body is nested too deeply",
    "the body is not valid JSON",
    "has the wrong type",
    "is missing a required property",
    "has a property that is not allowed",
    "has an item that is not allowed",
    "is not an allowed value",
    "does not match the required pattern",
    "does not have the required format",
    "is out of range",
    "has a length that is not allowed",
    "has items that are not allowed",
    "has a number of properties that is not allowed",
    "is not valid",
];

fuzz_target!(|data: &[u8]| {
    let verdict = SCHEMA.check(data);
    let parsed: Option<Value> = serde_json::from_slice(data).ok();

    // Counted on the token stream, not on `parsed`: a `Value` keeps only the last of
    // duplicate keys, while every one of them is nesting the body really has.
    if let Ok(Depth(d)) = serde_json::from_slice::<Depth>(data) {
        assert_eq!(json_depth(data), d, "json_depth disagrees");
    }

    let expected_ok = json_depth(data) <= MAX_JSON_DEPTH && parsed.as_ref().is_some_and(order_ok);
    assert_eq!(
        verdict.is_ok(),
        expected_ok,
        "check and the reference validator disagree: {verdict:?}"
    );

    if let Err(violations) = &verdict {
        assert!(!violations.is_empty() && violations.len() <= 20);
        for v in violations {
            assert!(MESSAGES.contains(&v.message), "unexpected message {v:?}");
        }
        match &parsed {
            Some(value) if json_depth(data) <= MAX_JSON_DEPTH => {
                // Each pointer must lead to a place in the caller's body.
                for v in violations {
                    assert!(
                        value.pointer(&v.pointer).is_some(),
                        "pointer {:?} is not in the body",
                        v.pointer
                    );
                }
            }
            _ => {
                assert_eq!(violations.len(), 1);
                assert_eq!(violations[0].pointer, "");
            }
        }
    }
});

/// Nesting depth of arrays and objects, counted recursively as serde_json parses the body
/// (every entry of an object counts, duplicates too).
struct Depth(usize);

impl<'de> Deserialize<'de> for Depth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DepthVisitor)
    }
}

struct DepthVisitor;

impl<'de> Visitor<'de> for DepthVisitor {
    type Value = Depth;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_str<E>(self, _: &str) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_unit<E>(self) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Depth, A::Error> {
        let mut max = 0;
        while let Some(Depth(d)) = seq.next_element()? {
            max = max.max(d);
        }
        Ok(Depth(max + 1))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Depth, A::Error> {
        let mut max = 0;
        while let Some((IgnoredAny, Depth(d))) = map.next_entry()? {
            max = max.max(d);
        }
        Ok(Depth(max + 1))
    }
}

/// The order schema, by hand.
fn order_ok(v: &Value) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    let allowed = [
        "id", "qty", "sku", "status", "note", "tags", "meta", "lines",
    ];
    if !o.keys().all(|k| allowed.contains(&k.as_str())) {
        return false;
    }
    let required = ["id", "qty", "sku", "status"];
    if !required.iter().all(|k| o.contains_key(*k)) {
        return false;
    }
    o.iter().all(|(k, v)| match k.as_str() {
        "id" => integer_in(v, 1.0, f64::INFINITY),
        "qty" => qty_ok(v),
        "sku" => sku_ok(v),
        "status" => v
            .as_str()
            .is_some_and(|s| ["new", "paid", "shipped"].contains(&s)),
        "note" => v.as_str().is_some_and(|s| s.chars().count() <= 140),
        "tags" => v.as_array().is_some_and(|a| {
            a.len() <= 4
                && a.iter()
                    .all(|t| t.as_str().is_some_and(|s| s == "gift" || s == "rush"))
                && (0..a.len()).all(|i| (i + 1..a.len()).all(|j| a[i] != a[j]))
        }),
        "meta" => v
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string)),
        "lines" => v.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.iter().all(|line| {
                    line.as_object().is_some_and(|l| {
                        l.keys().all(|k| k == "sku" || k == "qty")
                            && l.get("sku").is_some_and(sku_ok)
                            && l.get("qty").is_some_and(qty_ok)
                    })
                })
        }),
        _ => false,
    })
}

fn qty_ok(v: &Value) -> bool {
    integer_in(v, 1.0, 100.0)
}

fn sku_ok(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 8 && s.starts_with("SKU-") && s[4..].bytes().all(|b| b.is_ascii_digit())
    })
}

/// JSON Schema's `integer` is any number with no fractional part (2020-12 §6.1.1).
fn integer_in(v: &Value, min: f64, max: f64) -> bool {
    let Some(n) = v.as_number() else {
        return false;
    };
    if let Some(i) = n.as_i64() {
        return (min..=max).contains(&(i as f64));
    }
    if let Some(u) = n.as_u64() {
        return (min..=max).contains(&(u as f64));
    }
    n.as_f64()
        .is_some_and(|f| f.fract() == 0.0 && (min..=max).contains(&f))
}
