//! Alert rules: what to watch for, over which window, and where to send it.
//!
//! Rules come from a TOML file of `[[alert]]` tables or, one at a time, as JSON from the
//! admin API. Both are strict: an unknown key, a wrong type or an impossible value is an
//! error naming the rule and the field, never a silently ignored setting.
//!
//! ```toml
//! [[alert]]
//! name = "policy-denials"
//! when = { kind = "event_count", action = "policy.*", outcome = "denied" }
//! window = "5m"          # sliding window; units ms, s, m, h, d; at most 7d
//! threshold = 10         # fires when the count in the window exceeds this
//! group_by = "function"  # optional: "function", "actor" or "source"
//! quiet = "15m"          # after firing, the same rule and group stays quiet this long
//!                        # (default: the window)
//! sinks = [{ kind = "webhook", url = "https://hooks.example/moat", secret_name = "hook-key" },
//!          { kind = "log" }]   # default: [{ kind = "log" }]
//!
//! [[alert]]
//! name = "error-ratio"
//! when = { kind = "ratio", action = "invocation", outcome = "failed", of = "invocation", min_total = 20 }
//! window = "10m"
//! threshold = 0.05       # fires when matching / total exceeds this (0 to below 1)
//!
//! [[alert]]
//! name = "any-dlp"
//! when = { kind = "any", action = "dlp.finding" }
//! window = "1m"          # threshold must be absent or 0
//! ```

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, Outcome};

/// Longest window (and quiet period) a rule may ask for: a typo like `"30d"` for `"30s"` is
/// refused rather than kept in memory for a month.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default `min_total` of a ratio rule: a ratio over a handful of events is noise.
pub const DEFAULT_MIN_TOTAL: u64 = 10;

const MAX_NAME_LEN: usize = 64;
const MAX_PATTERN_LEN: usize = 128;

/// A validated alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRule", into = "RawRule")]
pub struct AlertRule {
    /// Unique name: ASCII letters, digits, `-`, `_`, `.`; at most 64 characters.
    pub name: String,
    /// Which events count.
    pub when: Condition,
    /// The sliding window counted over.
    pub window: Duration,
    /// What the count or ratio must exceed.
    pub threshold: Threshold,
    /// Counted separately per value of this event field, when set.
    pub group_by: Option<GroupBy>,
    /// After firing, the same rule and group does not fire again until this has passed.
    pub quiet: Duration,
    /// Where a firing goes.
    pub sinks: Vec<Sink>,
}

/// Which events a rule counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The number of events matching `action` (and `outcome`, if given) in the window exceeds
    /// the threshold.
    EventCount {
        /// Glob over the event's action; `*` matches any run of characters.
        action: Pattern,
        /// Only events with this outcome, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<Outcome>,
    },
    /// Matching events divided by events matching `of` (and `of_outcome`) exceeds the
    /// threshold, once at least `min_total` such events are in the window.
    Ratio {
        /// Glob over the event's action, for the numerator.
        action: Pattern,
        /// Numerator outcome, if restricted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<Outcome>,
        /// Glob over the event's action, for the denominator.
        of: Pattern,
        /// Denominator outcome, if restricted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of_outcome: Option<Outcome>,
        /// Fewest denominator events before the ratio is judged.
        #[serde(default = "default_min_total")]
        min_total: u64,
    },
    /// Every matching event (threshold 0).
    Any {
        /// Glob over the event's action.
        action: Pattern,
        /// Only events with this outcome, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<Outcome>,
    },
}

fn default_min_total() -> u64 {
    DEFAULT_MIN_TOTAL
}

impl Condition {
    /// Whether `event` counts towards the numerator (the count) and towards the denominator
    /// (ratio rules only).
    pub fn classify(&self, event: &AuditEvent) -> (bool, bool) {
        let hit = |action: &Pattern, outcome: &Option<Outcome>| {
            action.matches(&event.action) && outcome.is_none_or(|o| o == event.outcome)
        };
        match self {
            Condition::EventCount { action, outcome } | Condition::Any { action, outcome } => {
                (hit(action, outcome), false)
            }
            Condition::Ratio {
                action,
                outcome,
                of,
                of_outcome,
                ..
            } => (hit(action, outcome), hit(of, of_outcome)),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Condition::EventCount { .. } => "event_count",
            Condition::Ratio { .. } => "ratio",
            Condition::Any { .. } => "any",
        }
    }
}

/// What a rule's count or ratio must exceed to fire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// For `event_count` and `any` (always 0) rules.
    Count(u64),
    /// For `ratio` rules: from 0 up to, not including, 1.
    Ratio(f64),
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Threshold::Count(n) => s.serialize_u64(*n),
            Threshold::Ratio(r) => s.serialize_f64(*r),
        }
    }
}

/// A threshold as written: any non-negative number, judged against the rule's kind later.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RawThreshold(Threshold);

impl<'de> Deserialize<'de> for RawThreshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawThreshold;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawThreshold, E> {
                Ok(RawThreshold(Threshold::Count(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawThreshold, E> {
                u64::try_from(v)
                    .map(|v| RawThreshold(Threshold::Count(v)))
                    .map_err(|_| E::custom(format!("threshold `{v}` is negative")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawThreshold, E> {
                if v.is_finite() && v >= 0.0 {
                    Ok(RawThreshold(Threshold::Ratio(v)))
                } else {
                    Err(E::custom(format!(
                        "threshold `{v}` is not a non-negative number"
                    )))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for RawThreshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The event field a rule counts separately by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// `AuditEvent::function`.
    Function,
    /// `AuditEvent::actor`.
    Actor,
    /// `AuditEvent::source` (the client address): e.g. failed logins per client.
    Source,
}

impl GroupBy {
    /// The field's name in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Function => "function",
            GroupBy::Actor => "actor",
            GroupBy::Source => "source",
        }
    }

    /// The event's value for this field.
    pub fn value_of(self, event: &AuditEvent) -> Option<&str> {
        match self {
            GroupBy::Function => event.function.as_deref(),
            GroupBy::Actor => Some(&event.actor),
            GroupBy::Source => event.source.as_deref(),
        }
    }
}

/// Where a firing is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sink {
    /// POST the firing's payload as JSON, signed with `x-moat-signature` when a secret is
    /// named (the HMAC key is that Moat secret's value).
    Webhook {
        /// `https://` (or `http://`) URL.
        url: String,
        /// The Moat secret holding the HMAC key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_name: Option<String>,
    },
    /// Write the firing to the node's log. (A struct variant, not a unit one: serde ignores
    /// unknown fields beside the tag of a unit variant, and this format refuses them.)
    Log {},
}

/// A glob over event actions: `*` matches any run of characters (dots included), every
/// other character matches itself. Letters, digits, `.`, `_`, `-`, `:` (Cedar action names,
/// as in `kv:read.denied`) and `*` only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern(String);

impl Pattern {
    /// A validated pattern.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an action pattern must not be empty".into());
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "action pattern is longer than {MAX_PATTERN_LEN} characters"
            ));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '*')))
        {
            return Err(format!(
                "action pattern `{text}` has `{c}`: only letters, digits, `.`, `_`, `-`, `:` and `*` are allowed"
            ));
        }
        Ok(Pattern(text.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` matches. Linear-time glob matching with one backtrack point, so a
    /// pattern like `*a*a*a*b` cannot blow up.
    pub fn matches(&self, text: &str) -> bool {
        let (p, t) = (self.0.as_bytes(), text.as_bytes());
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, ti));
                pi += 1;
            } else if pi < p.len() && p[pi] == t[ti] {
                pi += 1;
                ti += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Pattern::new(&text)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.0
    }
}

/// Why alert rules could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// The TOML file is malformed or a rule in it is invalid (the message has the line).
    #[error("alert rules: {0}")]
    Toml(String),
    /// A JSON rule is malformed or invalid.
    #[error("alert rule: {0}")]
    Json(String),
    /// Two rules share a name.
    #[error("alert `{0}` is defined more than once")]
    DuplicateName(String),
}

/// Reads a TOML file of `[[alert]]` tables.
pub fn parse_rules_toml(text: &str) -> Result<Vec<AlertRule>, AlertError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        alert: Vec<AlertRule>,
    }
    let file: File = toml::from_str(text).map_err(|e| AlertError::Toml(e.to_string()))?;
    check_unique(&file.alert)?;
    Ok(file.alert)
}

/// Reads one rule sent as JSON (the admin API). Errors name the path of the bad field.
pub fn parse_rule_json(text: &str) -> Result<AlertRule, AlertError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let rule: AlertRule = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| AlertError::Json(e.to_string()))?;
    Ok(rule)
}

/// Reads a JSON array of rules.
pub fn parse_rules_json(text: &str) -> Result<Vec<AlertRule>, AlertError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let rules: Vec<AlertRule> = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| AlertError::Json(e.to_string()))?;
    check_unique(&rules)?;
    Ok(rules)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> AlertError {
    let path = e.path().to_string();
    if path == "." || path.is_empty() {
        AlertError::Json(e.into_inner().to_string())
    } else {
        AlertError::Json(format!("at `{path}`: {}", e.into_inner()))
    }
}

/// Refuses two rules with one name (the engine keys its state by name).
pub fn check_unique(rules: &[AlertRule]) -> Result<(), AlertError> {
    let mut seen = HashSet::new();
    for rule in rules {
        if !seen.insert(rule.name.as_str()) {
            return Err(AlertError::DuplicateName(rule.name.clone()));
        }
    }
    Ok(())
}

/// A rule as written, before its fields are judged together.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    when: Condition,
    window: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<RawThreshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_by: Option<GroupBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quiet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sinks: Option<Vec<Sink>>,
}

impl TryFrom<RawRule> for AlertRule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        validate_name(&raw.name)?;
        let name = raw.name;
        let err = |m: String| format!("alert `{name}`: {m}");
        let window = parse_duration(&raw.window).map_err(|m| err(format!("`window`: {m}")))?;
        if window.is_zero() {
            return Err(err("`window` must be longer than 0".into()));
        }
        let quiet = match &raw.quiet {
            Some(q) => parse_duration(q).map_err(|m| err(format!("`quiet`: {m}")))?,
            None => window,
        };
        let kind = raw.when.kind();
        let threshold = match (&raw.when, raw.threshold.map(|t| t.0)) {
            (Condition::EventCount { .. }, Some(Threshold::Count(n))) => Threshold::Count(n),
            (Condition::EventCount { .. }, Some(Threshold::Ratio(_))) => {
                return Err(err(
                    "`threshold` of an `event_count` alert must be a whole number".into(),
                ));
            }
            (Condition::Ratio { .. }, Some(t)) => {
                let r = match t {
                    Threshold::Count(n) => n as f64,
                    Threshold::Ratio(r) => r,
                };
                if !(0.0..1.0).contains(&r) {
                    return Err(err(format!(
                        "`threshold` of a `ratio` alert must be from 0 up to, not including, 1; \
                         found `{r}`"
                    )));
                }
                Threshold::Ratio(r)
            }
            (Condition::Any { .. }, None | Some(Threshold::Count(0))) => Threshold::Count(0),
            (Condition::Any { .. }, Some(_)) => {
                return Err(err(
                    "an `any` alert fires on every event: leave out `threshold` or set it to 0"
                        .into(),
                ));
            }
            (_, None) => return Err(err(format!("`threshold` is required for `{kind}` alerts"))),
        };
        let sinks = raw.sinks.unwrap_or_else(|| vec![Sink::Log {}]);
        if sinks.is_empty() {
            return Err(err(
                "`sinks` is empty: leave it out for the log, or name a sink".into(),
            ));
        }
        for sink in &sinks {
            if let Sink::Webhook { url, secret_name } = sink {
                validate_url(url).map_err(err)?;
                if let Some(s) = secret_name {
                    validate_name(s).map_err(|m| err(format!("`secret_name`: {m}")))?;
                }
            }
        }
        Ok(AlertRule {
            name,
            when: raw.when,
            window,
            threshold,
            group_by: raw.group_by,
            quiet,
            sinks,
        })
    }
}

impl From<AlertRule> for RawRule {
    fn from(rule: AlertRule) -> RawRule {
        RawRule {
            name: rule.name,
            threshold: match (&rule.when, rule.threshold) {
                (Condition::Any { .. }, _) => None,
                (_, t) => Some(RawThreshold(t)),
            },
            when: rule.when,
            window: format_duration(rule.window),
            group_by: rule.group_by,
            quiet: Some(format_duration(rule.quiet)),
            sinks: Some(rule.sinks),
        }
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name `{name}` must be 1 to {MAX_NAME_LEN} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "name `{name}` may hold only letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

/// Enough to catch mistakes; the node's egress rules decide where a webhook may really go.
fn validate_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("webhook url `{url}` must start with `https://` or `http://`"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(format!(
            "webhook url `{url}` needs a host (and no user name or password)"
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("webhook url `{url}` contains whitespace"));
    }
    Ok(())
}

/// `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`: a whole number and one unit, at most 7 days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let bad =
        || format!("`{text}` is not a duration like `30s`, `5m`, `2h` (units: ms, s, m, h, d)");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let d = n
        .checked_mul(unit_ms)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_WINDOW)
        .ok_or_else(|| format!("`{text}` is longer than 7 days"))?;
    Ok(d)
}

/// The inverse of [`parse_duration`], in the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<AlertRule, AlertError> {
        parse_rules_toml(text).map(|mut v| v.remove(0))
    }

    fn err(text: &str) -> String {
        match parse_rules_toml(text) {
            Err(e) => e.to_string(),
            Ok(r) => panic!("accepted: {r:?}"),
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let text = r#"
[[alert]]
name = "policy-denials"
when = { kind = "event_count", action = "policy.*", outcome = "denied" }
window = "5m"
threshold = 10
group_by = "function"
quiet = "15m"
sinks = [{ kind = "webhook", url = "https://hooks.example/moat", secret_name = "hook-key" },
         { kind = "log" }]

[[alert]]
name = "error-ratio"
when = { kind = "ratio", action = "invocation", outcome = "failed", of = "invocation", min_total = 20 }
window = "10m"
threshold = 0.05

[[alert]]
name = "any-dlp"
window = "1m"
[alert.when]
kind = "any"
action = "dlp.finding"
"#;
        let rules = parse_rules_toml(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].window, Duration::from_secs(300));
        assert_eq!(rules[0].quiet, Duration::from_secs(900));
        assert_eq!(rules[0].threshold, Threshold::Count(10));
        assert_eq!(rules[0].group_by, Some(GroupBy::Function));
        assert_eq!(rules[0].sinks.len(), 2);
        assert_eq!(rules[1].threshold, Threshold::Ratio(0.05));
        assert!(matches!(
            rules[1].when,
            Condition::Ratio { min_total: 20, .. }
        ));
        assert_eq!(
            rules[1].quiet, rules[1].window,
            "quiet defaults to the window"
        );
        assert_eq!(rules[1].sinks, vec![Sink::Log {}]);
        assert_eq!(rules[2].threshold, Threshold::Count(0));
        assert!(parse_rules_toml("").is_ok_and(|r| r.is_empty()));
    }

    #[test]
    fn json_round_trips_and_matches_toml() {
        let rule = one(r#"[[alert]]
name = "r"
when = { kind = "ratio", action = "invocation", outcome = "failed", of = "invocation" }
window = "90s"
threshold = 0.5
sinks = [{ kind = "webhook", url = "https://h.example/x" }]"#)
        .unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_string(&rule).unwrap_or_default();
        assert!(json.contains(r#""window":"90s""#), "{json}");
        assert!(json.contains(r#""min_total":10"#), "{json}");
        assert_eq!(parse_rule_json(&json), Ok(rule.clone()));
        assert_eq!(parse_rules_json(&format!("[{json}]")), Ok(vec![rule]));
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let base = "[[alert]]\nname = \"r\"\nwindow = \"1m\"\nthreshold = 1\n";
        let e = err(&format!(
            "{base}when = {{ kind = \"event_count\", action = \"a\", colour = 1 }}"
        ));
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = err(&format!(
            "{base}when = {{ kind = \"count\", action = \"a\" }}"
        ));
        assert!(e.contains("unknown variant `count`"), "{e}");
        let e = err(&format!(
            "{base}when = {{ kind = \"any\", action = \"a\" }}\nextra = 1"
        ));
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = err("[[alerts]]\nname = \"r\"");
        assert!(e.contains("unknown field `alerts`"), "{e}");
        let e = err(&format!(
            "{base}when = {{ kind = \"any\", action = \"a\" }}\nsinks = [{{ kind = \"email\" }}]"
        ));
        assert!(e.contains("unknown variant `email`"), "{e}");
        assert!(e.contains("line"), "toml errors say where: {e}");
    }

    #[test]
    fn impossible_values_are_refused_with_the_rule_name() {
        let rule =
            |when: &str, rest: &str| format!("[[alert]]\nname = \"r1\"\nwhen = {when}\n{rest}");
        let count = "{ kind = \"event_count\", action = \"auth.failed\" }";
        let ratio = "{ kind = \"ratio\", action = \"a\", of = \"b\" }";
        let any = "{ kind = \"any\", action = \"a\" }";
        let cases = [
            (rule(count, "window = \"1m\""), "alert `r1`: `threshold` is required for `event_count` alerts"),
            (rule(count, "window = \"1m\"\nthreshold = 0.5"), "must be a whole number"),
            (rule(count, "window = \"1m\"\nthreshold = -1"), "threshold `-1` is negative"),
            (rule(count, "window = \"1m\"\nthreshold = \"5\""), "expected a non-negative number"),
            (rule(ratio, "window = \"1m\"\nthreshold = 1"), "not including, 1; found `1`"),
            (rule(ratio, "window = \"1m\"\nthreshold = 1.5"), "found `1.5`"),
            (rule(any, "window = \"1m\"\nthreshold = 3"), "leave out `threshold`"),
            (rule(count, "window = \"5 minutes\"\nthreshold = 1"), "`window`: `5 minutes` is not a duration"),
            (rule(count, "window = \"0s\"\nthreshold = 1"), "`window` must be longer than 0"),
            (rule(count, "window = \"8d\"\nthreshold = 1"), "`8d` is longer than 7 days"),
            (rule(count, "window = \"1m\"\nquiet = \"-1s\"\nthreshold = 1"), "`quiet`: `-1s`"),
            (rule(count, "window = \"1m\"\nthreshold = 1\nsinks = []"), "`sinks` is empty"),
            (rule(count, "window = \"1m\"\nthreshold = 1\ngroup_by = \"tenant\""), "unknown variant `tenant`"),
            (
                rule(count, "window = \"1m\"\nthreshold = 1\nsinks = [{ kind = \"webhook\", url = \"ftp://x\" }]"),
                "webhook url `ftp://x` must start with",
            ),
            (
                rule(count, "window = \"1m\"\nthreshold = 1\nsinks = [{ kind = \"webhook\", url = \"https://u:p@x/\" }]"),
                "no user name or password",
            ),
            (rule("{ kind = \"any\", action = \"a b\" }", "window = \"1m\""), "action pattern `a b` has ` `"),
            (rule("{ kind = \"any\", action = \"\" }", "window = \"1m\""), "must not be empty"),
            (
                "[[alert]]\nname = \"bad name\"\nwhen = { kind = \"any\", action = \"a\" }\nwindow = \"1m\"".into(),
                "name `bad name` may hold only",
            ),
        ];
        for (text, want) in cases {
            let e = err(&text);
            assert!(e.contains(want), "{text}\n=> {e}\nwanted {want}");
        }
    }

    #[test]
    fn duplicate_names_are_refused() {
        let r = "[[alert]]\nname = \"same\"\nwhen = { kind = \"any\", action = \"a\" }\nwindow = \"1m\"\n";
        assert_eq!(
            parse_rules_toml(&format!("{r}{r}")),
            Err(AlertError::DuplicateName("same".into()))
        );
    }

    #[test]
    fn json_errors_name_the_path() {
        let e = parse_rule_json(
            r#"{"name":"r","when":{"kind":"any","action":"a"},"window":"1m","sinks":[{"kind":"log","x":1}]}"#,
        );
        let e = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("alert rule: at `sinks[0]"), "{e}");
        assert!(e.contains("unknown field `x`"), "{e}");
        let e =
            parse_rule_json(r#"{"name":"r","when":{"kind":"any","action":"a"},"window":"1m"} x"#);
        assert!(e.is_err());
    }

    #[test]
    fn globs_match_as_documented() {
        let m = |p: &str, t: &str| Pattern::new(p).is_ok_and(|p| p.matches(t));
        assert!(m("policy.*", "policy.denied"));
        assert!(m("policy.*", "policy."));
        assert!(!m("policy.*", "policy"));
        assert!(!m("policy.*", "xpolicy.denied"));
        assert!(m("*", ""));
        assert!(m("*.failed", "auth.failed"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXbY"));
        assert!(m("auth.failed", "auth.failed"));
        assert!(!m("auth.failed", "auth.failedx"));
        assert!(m("*a*a*a*b", &format!("{}b", "a".repeat(5000))));
        assert!(!m("*a*a*a*b", &"a".repeat(5000)));
    }

    #[test]
    fn durations_parse_and_format() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("0s", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(ms)));
        }
        for bad in [
            "",
            "5",
            "m",
            "5 m",
            "+5m",
            "5M",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
    }
}
