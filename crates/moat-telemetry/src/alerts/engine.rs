//! The alert engine: sliding windows per rule and group, deduplicated by a quiet period.
//!
//! Pure and deterministic: the caller passes the time with each event. The node feeds it
//! every audit event it chains and, if it wants ratio rules over invocations, synthetic
//! `invocation` events that are not chained (SPEC: allowed uses are aggregated, not chained).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::json;

use crate::alerts::rule::{
    AlertError, AlertRule, Condition, GroupBy, Sink, Threshold, check_unique,
};
use crate::audit::{AuditEvent, canonical_json};

/// Most distinct groups one rule tracks. Group values such as a client address are chosen by
/// whoever sends requests; past this, idle groups are dropped, and if none is idle the
/// event is counted in the group named [`OVERFLOW_GROUP`] so that nothing goes uncounted.
pub const MAX_GROUPS_PER_RULE: usize = 1024;

/// The group that events of new groups share once a rule tracks [`MAX_GROUPS_PER_RULE`].
pub const OVERFLOW_GROUP: &str = "*";

/// A window is kept as at most this many buckets (plus one), so memory per group is bounded
/// whatever the event rate. The price: an event may stay counted up to `window / 1024`
/// longer than the window (never shorter, so alerts err on the side of firing).
const BUCKETS_PER_WINDOW: u64 = 1024;

/// A rule whose condition held, outside its quiet period.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// The rule's name.
    pub rule: String,
    /// The rule's grouping field, if it groups.
    pub group_by: Option<GroupBy>,
    /// The group's value (`None` also when the event lacked the field; [`OVERFLOW_GROUP`]
    /// when too many groups were tracked).
    pub group: Option<String>,
    /// Matching events in the window.
    pub count: u64,
    /// Ratio rules: denominator events in the window.
    pub total: Option<u64>,
    /// The rule's threshold.
    pub threshold: Threshold,
    /// The rule's window.
    pub window: Duration,
    /// `at_ms` of the earliest event counted in the window.
    pub first_event_ms: i64,
    /// `at_ms` of the latest event counted in the window.
    pub last_event_ms: i64,
    /// The `now` at which it fired.
    pub fired_at_ms: i64,
    /// Times the condition held during the quiet period since this rule and group last fired.
    pub suppressed: u64,
    /// Where to send it.
    pub sinks: Vec<Sink>,
}

impl Firing {
    /// The JSON sent to webhooks and written to the log. Holds no sink URLs or secret names.
    pub fn payload(&self) -> serde_json::Value {
        let mut payload = json!({
            "alert": self.rule,
            "group": self.group_by.map(|by| json!({ by.as_str(): self.group })),
            "count": self.count,
            "threshold": self.threshold,
            "window_ms": u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX),
            "first_event_ms": self.first_event_ms,
            "last_event_ms": self.last_event_ms,
            "fired_at_ms": self.fired_at_ms,
            "suppressed": self.suppressed,
        });
        if let (Some(total), Some(map)) = (self.total, payload.as_object_mut()) {
            map.insert("total".into(), total.into());
        }
        payload
    }

    /// The payload as bytes, in canonical JSON, ready to sign with
    /// [`crate::alerts::sign_webhook`] and send.
    pub fn body(&self) -> Vec<u8> {
        canonical_json(&self.payload()).into_bytes()
    }
}

/// Evaluates alert rules against a stream of events.
#[derive(Debug)]
pub struct AlertEngine {
    rules: Vec<RuleState>,
    suppressed_total: u64,
}

#[derive(Debug)]
struct RuleState {
    rule: AlertRule,
    window_ms: i64,
    quiet_ms: i64,
    bucket_ms: i64,
    groups: HashMap<Option<String>, GroupState>,
}

#[derive(Debug, Default)]
struct GroupState {
    buckets: VecDeque<Bucket>,
    num: u64,
    den: u64,
    last_fired_ms: Option<i64>,
    suppressed: u64,
}

#[derive(Debug)]
struct Bucket {
    /// `now` of the first event in it: a bucket takes events for `bucket_ms` from here.
    start_ms: i64,
    /// `now` of the last event in it: the bucket leaves the window `window` after this.
    last_ms: i64,
    num: u64,
    den: u64,
    first_event_ms: i64,
    last_event_ms: i64,
}

impl AlertEngine {
    /// An engine for `rules`, whose names must be unique.
    pub fn new(rules: Vec<AlertRule>) -> Result<Self, AlertError> {
        check_unique(&rules)?;
        Ok(AlertEngine {
            rules: rules.into_iter().map(RuleState::new).collect(),
            suppressed_total: 0,
        })
    }

    /// Replaces the rules. A rule whose name and definition are unchanged keeps its windows
    /// and quiet periods, so editing one rule does not re-fire the others.
    pub fn set_rules(&mut self, rules: Vec<AlertRule>) -> Result<(), AlertError> {
        check_unique(&rules)?;
        let mut old: HashMap<String, RuleState> = self
            .rules
            .drain(..)
            .map(|s| (s.rule.name.clone(), s))
            .collect();
        self.rules = rules
            .into_iter()
            .map(|rule| match old.remove(&rule.name) {
                Some(state) if state.rule == rule => state,
                _ => RuleState::new(rule),
            })
            .collect();
        Ok(())
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> impl Iterator<Item = &AlertRule> {
        self.rules.iter().map(|s| &s.rule)
    }

    /// Firings held back by quiet periods since the engine started (for `/metrics`).
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }

    /// Counts `event`, observed at `now_ms` (Unix milliseconds), and returns the rules that
    /// fire because of it.
    ///
    /// Windows slide on `now_ms`, not on the event's `at_ms`, so a late or back-dated event
    /// still counts as happening now.
    pub fn observe(&mut self, event: &AuditEvent, now_ms: i64) -> Vec<Firing> {
        let mut firings = Vec::new();
        for state in &mut self.rules {
            let (num, den) = state.rule.when.classify(event);
            if !num && !den {
                continue;
            }
            let key = state.group_key(event, now_ms);
            let (window_ms, quiet_ms, bucket_ms) =
                (state.window_ms, state.quiet_ms, state.bucket_ms);
            let group = state.groups.entry(key.clone()).or_default();
            group.evict(now_ms, window_ms);
            let n = occurrences(event);
            group.add(
                now_ms,
                bucket_ms,
                n * u64::from(num),
                n * u64::from(den),
                event.at_ms,
            );
            if !holds(&state.rule, group) {
                continue;
            }
            if group
                .last_fired_ms
                .is_some_and(|last| now_ms < last.saturating_add(quiet_ms))
            {
                group.suppressed += 1;
                self.suppressed_total += 1;
                continue;
            }
            let (first_event_ms, last_event_ms) = group.event_span();
            firings.push(Firing {
                rule: state.rule.name.clone(),
                group_by: state.rule.group_by,
                group: key,
                count: group.num,
                total: matches!(state.rule.when, Condition::Ratio { .. }).then_some(group.den),
                threshold: state.rule.threshold,
                window: state.rule.window,
                first_event_ms,
                last_event_ms,
                fired_at_ms: now_ms,
                suppressed: group.suppressed,
                sinks: state.rule.sinks.clone(),
            });
            group.last_fired_ms = Some(now_ms);
            group.suppressed = 0;
        }
        firings
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl RuleState {
    fn new(rule: AlertRule) -> Self {
        let window_ms = millis(rule.window).max(1);
        RuleState {
            window_ms,
            quiet_ms: millis(rule.quiet),
            bucket_ms: (window_ms / BUCKETS_PER_WINDOW as i64).max(1),
            groups: HashMap::new(),
            rule,
        }
    }

    fn group_key(&mut self, event: &AuditEvent, now_ms: i64) -> Option<String> {
        let by = self.rule.group_by?;
        let value = by.value_of(event).map(str::to_owned);
        if self.groups.len() < MAX_GROUPS_PER_RULE || self.groups.contains_key(&value) {
            return value;
        }
        // Full: forget groups with nothing in their window and no quiet period running.
        let (window_ms, quiet_ms) = (self.window_ms, self.quiet_ms);
        self.groups.retain(|_, g| {
            g.evict(now_ms, window_ms);
            !g.buckets.is_empty()
                || g.last_fired_ms
                    .is_some_and(|last| now_ms < last.saturating_add(quiet_ms))
        });
        if self.groups.len() < MAX_GROUPS_PER_RULE {
            value
        } else {
            Some(OVERFLOW_GROUP.to_owned())
        }
    }
}

impl GroupState {
    /// Drops buckets whose last event is `window` or more before `now`: the window is
    /// `(now - window, now]`.
    fn evict(&mut self, now_ms: i64, window_ms: i64) {
        let cutoff = now_ms.saturating_sub(window_ms);
        while let Some(front) = self.buckets.front() {
            if front.last_ms > cutoff {
                break;
            }
            self.num -= front.num;
            self.den -= front.den;
            self.buckets.pop_front();
        }
    }

    fn add(&mut self, now_ms: i64, bucket_ms: i64, num: u64, den: u64, at_ms: i64) {
        self.num += num;
        self.den += den;
        if let Some(b) = self
            .buckets
            .back_mut()
            .filter(|b| now_ms >= b.start_ms && now_ms - b.start_ms < bucket_ms)
        {
            b.last_ms = b.last_ms.max(now_ms);
            b.num += num;
            b.den += den;
            b.first_event_ms = b.first_event_ms.min(at_ms);
            b.last_event_ms = b.last_event_ms.max(at_ms);
            return;
        }
        self.buckets.push_back(Bucket {
            start_ms: now_ms,
            last_ms: now_ms,
            num,
            den,
            first_event_ms: at_ms,
            last_event_ms: at_ms,
        });
    }

    fn event_span(&self) -> (i64, i64) {
        let first = self.buckets.iter().map(|b| b.first_event_ms).min();
        let last = self.buckets.iter().map(|b| b.last_event_ms).max();
        (first.unwrap_or_default(), last.unwrap_or_default())
    }
}

/// How many occurrences one record stands for: an aggregated record (a burst of limit hits
/// folded into one, `details: {"aggregated": true, "count": n}`) counts `n`, any other 1.
fn occurrences(event: &AuditEvent) -> u64 {
    if event.details.get("aggregated") != Some(&serde_json::Value::Bool(true)) {
        return 1;
    }
    event
        .details
        .get("count")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1)
        .max(1)
}

fn holds(rule: &AlertRule, g: &GroupState) -> bool {
    match (&rule.when, rule.threshold) {
        (Condition::Ratio { min_total, .. }, Threshold::Ratio(t)) => {
            g.den >= (*min_total).max(1) && (g.num as f64) > t * (g.den as f64)
        }
        (_, Threshold::Count(t)) => g.num > t,
        // Validation pairs ratio thresholds only with ratio rules.
        (_, Threshold::Ratio(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rule::parse_rules_toml;
    use crate::audit::Outcome;

    const S: i64 = 1000;

    fn engine(toml: &str) -> AlertEngine {
        let rules = parse_rules_toml(toml).unwrap_or_else(|e| panic!("{e}"));
        AlertEngine::new(rules).unwrap_or_else(|e| panic!("{e}"))
    }

    fn denied(function: &str) -> AuditEvent {
        AuditEvent::new(0, "token:t", "policy.denied", "x", Outcome::Denied).with_function(function)
    }

    /// Observes `event` at `now`, with `at_ms` set to `now` too.
    fn at(e: &mut AlertEngine, event: &AuditEvent, now: i64) -> Vec<Firing> {
        let event = AuditEvent {
            at_ms: now,
            ..event.clone()
        };
        e.observe(&event, now)
    }

    const COUNT: &str = r#"[[alert]]
name = "denials"
when = { kind = "event_count", action = "policy.*", outcome = "denied" }
window = "60s"
threshold = 3
quiet = "0s"
"#;

    #[test]
    fn fires_only_when_the_count_exceeds_the_threshold() {
        let mut e = engine(COUNT);
        for i in 0..3 {
            assert!(at(&mut e, &denied("f"), i * S).is_empty(), "event {i}");
        }
        let fired = at(&mut e, &denied("f"), 3 * S);
        assert_eq!(fired.len(), 1);
        let f = &fired[0];
        assert_eq!(
            (f.rule.as_str(), f.count, f.group.as_deref()),
            ("denials", 4, None)
        );
        assert_eq!(
            (f.first_event_ms, f.last_event_ms, f.fired_at_ms),
            (0, 3 * S, 3 * S)
        );
        assert_eq!(f.sinks, vec![Sink::Log {}]);
    }

    #[test]
    fn an_aggregated_record_counts_as_its_count() {
        let mut e = engine(COUNT);
        let folded =
            |n: u64| denied("f").with_details(serde_json::json!({"aggregated": true, "count": n}));
        assert!(at(&mut e, &folded(3), 0).is_empty(), "3 is not past 3");
        let fired = at(&mut e, &folded(2), S);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].count, 5);
        // A `count` that is not marked aggregated is just a detail.
        let mut e = engine(COUNT);
        let plain = denied("f").with_details(serde_json::json!({"count": 50}));
        assert!(at(&mut e, &plain, 0).is_empty());
    }

    #[test]
    fn events_that_do_not_match_are_not_counted() {
        let mut e = engine(COUNT);
        let allowed = AuditEvent::new(0, "t", "policy.denied", "x", Outcome::Allowed);
        let other = AuditEvent::new(0, "t", "function.deploy", "x", Outcome::Denied);
        for i in 0..10 {
            assert!(at(&mut e, &allowed, i).is_empty());
            assert!(at(&mut e, &other, i).is_empty());
        }
    }

    #[test]
    fn events_slide_out_of_the_window() {
        let mut e = engine(COUNT);
        for t in [0, 10 * S, 20 * S] {
            assert!(at(&mut e, &denied("f"), t).is_empty());
        }
        // At exactly 60 s the event from 0 s has left the window (now - 60 s, now].
        assert!(at(&mut e, &denied("f"), 60 * S).is_empty(), "10, 20, 60 s");
        assert!(at(&mut e, &denied("f"), 70 * S).is_empty(), "20, 60, 70 s");
        let fired = at(&mut e, &denied("f"), 80 * S - 1);
        assert_eq!(fired.len(), 1, "20, 60, 70, 79.999 s: four in the window");
        assert_eq!(fired[0].count, 4);
        assert_eq!(fired[0].first_event_ms, 20 * S);
    }

    #[test]
    fn a_flood_keeps_memory_bounded_and_still_slides() {
        let mut e = engine(&COUNT.replace("threshold = 3", "threshold = 100000"));
        for i in 0..50_000 {
            at(&mut e, &denied("f"), i);
        }
        let g = &e.rules[0].groups[&None];
        assert!(
            g.buckets.len() <= BUCKETS_PER_WINDOW as usize + 1,
            "{}",
            g.buckets.len()
        );
        assert_eq!(g.num, 50_000);
        at(&mut e, &denied("f"), 50_000 + 60 * S);
        assert_eq!(e.rules[0].groups[&None].num, 1);
    }

    #[test]
    fn groups_are_counted_apart() {
        let mut e = engine(&format!("{COUNT}group_by = \"function\"\n"));
        let mut fired = Vec::new();
        for i in 0..4 {
            fired.extend(at(&mut e, &denied("a"), i * S));
            fired.extend(at(&mut e, &denied("b"), i * S));
            if i < 3 {
                fired.extend(at(&mut e, &denied("c"), i * S));
            }
        }
        let groups: Vec<_> = fired.iter().map(|f| f.group.as_deref()).collect();
        assert_eq!(groups, vec![Some("a"), Some("b")]);
        // An event without the field is its own group.
        let no_fn = AuditEvent::new(0, "t", "policy.denied", "x", Outcome::Denied);
        let fired: Vec<_> = (0..4).flat_map(|i| at(&mut e, &no_fn, i)).collect();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].group, None);
        assert_eq!(fired[0].payload()["group"], json!({"function": null}));
    }

    #[test]
    fn too_many_groups_share_the_overflow_group() {
        let mut e = engine(&format!(
            "{}group_by = \"source\"\n",
            COUNT.replace("threshold = 3", "threshold = 1")
        ));
        let from = |i: usize| denied("f").with_source(format!("10.0.{}.{}", i / 256, i % 256));
        for i in 0..MAX_GROUPS_PER_RULE {
            assert!(at(&mut e, &from(i), 0).is_empty());
        }
        assert!(at(&mut e, &from(5000), S).is_empty());
        let fired = at(&mut e, &from(5001), S);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].group.as_deref(), Some(OVERFLOW_GROUP));
        // Once the old groups are idle they are forgotten and new ones get their own.
        assert!(at(&mut e, &from(6000), 61 * S).is_empty());
        assert_eq!(
            at(&mut e, &from(6000), 61 * S)[0].group.as_deref(),
            Some("10.0.23.112")
        );
    }

    const ANY: &str = r#"[[alert]]
name = "dlp"
when = { kind = "any", action = "dlp.finding" }
window = "10s"
quiet = "60s"
"#;

    fn dlp() -> AuditEvent {
        AuditEvent::new(0, "function:f", "dlp.finding", "f", Outcome::Detected)
    }

    #[test]
    fn the_quiet_period_deduplicates_and_counts_what_it_held_back() {
        let mut e = engine(ANY);
        assert_eq!(at(&mut e, &dlp(), 0).len(), 1);
        assert!(at(&mut e, &dlp(), 10 * S).is_empty());
        assert!(at(&mut e, &dlp(), 59 * S).is_empty());
        assert_eq!(e.suppressed_total(), 2);
        let fired = at(&mut e, &dlp(), 60 * S);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].suppressed, 2);
        assert_eq!(fired[0].count, 2, "59 s and 60 s are in the 10 s window");
        assert_eq!(at(&mut e, &dlp(), 200 * S)[0].suppressed, 0);
    }

    #[test]
    fn without_a_quiet_period_every_event_over_the_threshold_fires() {
        let mut e = engine(&ANY.replace("quiet = \"60s\"", "quiet = \"0s\""));
        let fired: Vec<_> = (0..5).flat_map(|i| at(&mut e, &dlp(), i)).collect();
        assert_eq!(fired.len(), 5);
    }

    #[test]
    fn quiet_periods_are_per_group() {
        let mut e = engine(&format!("{ANY}group_by = \"function\"\n"));
        assert_eq!(at(&mut e, &dlp().with_function("a"), 0).len(), 1);
        assert_eq!(at(&mut e, &dlp().with_function("b"), 1).len(), 1);
        assert!(at(&mut e, &dlp().with_function("a"), 2).is_empty());
    }

    const RATIO: &str = r#"[[alert]]
name = "errors"
when = { kind = "ratio", action = "invocation", outcome = "failed", of = "invocation", min_total = 4 }
window = "60s"
threshold = 0.5
"#;

    fn invocation(outcome: Outcome) -> AuditEvent {
        AuditEvent::new(0, "node", "invocation", "f", outcome)
    }

    #[test]
    fn ratio_rules_wait_for_min_total_and_compare_strictly() {
        let mut e = engine(RATIO);
        // 2 of 3 failed, but fewer than min_total.
        assert!(at(&mut e, &invocation(Outcome::Failed), 0).is_empty());
        assert!(at(&mut e, &invocation(Outcome::Failed), 1).is_empty());
        assert!(at(&mut e, &invocation(Outcome::Succeeded), 2).is_empty());
        // 2 of 4: exactly 0.5 is not above it.
        assert!(at(&mut e, &invocation(Outcome::Succeeded), 3).is_empty());
        let fired = at(&mut e, &invocation(Outcome::Failed), 4);
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].count, fired[0].total), (3, Some(5)));
        assert_eq!(fired[0].payload()["total"], 5);
        assert_eq!(fired[0].payload()["threshold"], 0.5);
    }

    #[test]
    fn set_rules_keeps_the_state_of_unchanged_rules() {
        let both = format!("{COUNT}\n{ANY}");
        let mut e = engine(&both);
        for i in 0..3 {
            at(&mut e, &denied("f"), i);
        }
        assert_eq!(at(&mut e, &dlp(), 0).len(), 1);
        let edited = both.replace("window = \"10s\"", "window = \"20s\"");
        e.set_rules(parse_rules_toml(&edited).unwrap_or_default())
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            at(&mut e, &denied("f"), 4).len(),
            1,
            "denials kept its three events"
        );
        assert_eq!(
            at(&mut e, &dlp(), 1).len(),
            1,
            "dlp changed, so its quiet period reset"
        );
    }

    #[test]
    fn the_payload_carries_no_sink_details() {
        let mut e = engine(
            r#"[[alert]]
name = "dlp"
when = { kind = "any", action = "dlp.*" }
window = "1m"
group_by = "function"
sinks = [{ kind = "webhook", url = "https://hooks.example/secret-path", secret_name = "hook" }]
"#,
        );
        let fired = at(&mut e, &dlp().with_function("orders"), 5);
        let body = String::from_utf8(fired[0].body()).unwrap_or_default();
        assert_eq!(
            body,
            r#"{"alert":"dlp","count":1,"fired_at_ms":5,"first_event_ms":5,"group":{"function":"orders"},"last_event_ms":5,"suppressed":0,"threshold":0,"window_ms":60000}"#
        );
    }

    #[test]
    fn duplicate_rule_names_are_refused() {
        let rules = parse_rules_toml(COUNT).unwrap_or_default();
        let twice = [rules.clone(), rules].concat();
        assert!(
            matches!(AlertEngine::new(twice), Err(AlertError::DuplicateName(n)) if n == "denials")
        );
    }
}
