//! Alerts: rules over the stream of audit events, and delivering what fires.

mod engine;
mod rule;
mod webhook;

pub use engine::{AlertEngine, Firing, MAX_GROUPS_PER_RULE, OVERFLOW_GROUP};
pub use rule::{
    AlertError, AlertRule, Condition, DEFAULT_MIN_TOTAL, GroupBy, MAX_WINDOW, Pattern, Sink,
    Threshold, check_unique, format_duration, parse_duration, parse_rule_json, parse_rules_json,
    parse_rules_toml,
};
pub use webhook::{
    RetrySchedule, SIGNATURE_HEADER, backoff, backoff_with_jitter, sign_webhook, verify_webhook,
};
