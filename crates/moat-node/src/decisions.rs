//! `moat_policy_decisions_total{function, decision}`: the gateway's answer to "may this caller
//! invoke this token route?" (SPEC §5, policy decisions by outcome).
//!
//! `decision` is `allowed`, `denied` (a live token policy does not let call the function:
//! `403`) or `unauthenticated` (no, an unknown, an expired or a revoked token: `401`). Only
//! token routes are decided: public routes ask no one and are not counted here (their traffic
//! is in `moat_gateway_responses_total`). Labels are bounded: the function is a route's, never
//! the caller's path, and the decisions are fixed.
//!
//! Every request to a token route is counted, so the common case (a function seen before)
//! is a shared read lock and an atomic add: no allocation and no exclusive lock. A function's
//! counters are made under the write lock the first time it is decided.

use crate::histogram::ByLabel;
use std::fmt::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use moat_gateway::AuthDecision;

/// The `decision` label of each counter, in index order.
const DECISIONS: [&str; 3] = ["allowed", "denied", "unauthenticated"];

#[derive(Default)]
pub struct PolicyDecisions {
    by_function: RwLock<ByLabel<[AtomicU64; 3]>>,
}

impl PolicyDecisions {
    pub fn count(&self, function: &str, decision: &AuthDecision) {
        let i = match decision {
            AuthDecision::Allowed => 0,
            AuthDecision::Forbidden { .. } => 1,
            AuthDecision::Unauthenticated => 2,
        };
        if let Ok(m) = self.by_function.read()
            && let Some(counters) = m.get(function)
        {
            counters[i].fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Ok(mut m) = self.by_function.write() {
            m.entry(function.to_string()).or_default()[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP moat_policy_decisions_total Invocations of token routes by the gateway's decision (public routes are not decided and not counted).\n\
             # TYPE moat_policy_decisions_total counter"
        );
        let Ok(m) = self.by_function.read() else {
            return;
        };
        let mut functions: Vec<_> = m.iter().collect();
        functions.sort_by(|a, b| a.0.cmp(b.0));
        for (f, counters) in functions {
            for (d, n) in DECISIONS.iter().zip(counters) {
                let _ = writeln!(
                    out,
                    "moat_policy_decisions_total{{function=\"{f}\",decision=\"{d}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_decision_is_counted_under_its_function() {
        let d = PolicyDecisions::default();
        for _ in 0..3 {
            d.count("a", &AuthDecision::Allowed);
        }
        d.count("a", &AuthDecision::Unauthenticated);
        d.count(
            "b",
            &AuthDecision::Forbidden {
                token_id: "tok_1".into(),
            },
        );
        let mut out = String::new();
        d.render(&mut out);
        for line in [
            "moat_policy_decisions_total{function=\"a\",decision=\"allowed\"} 3",
            "moat_policy_decisions_total{function=\"a\",decision=\"denied\"} 0",
            "moat_policy_decisions_total{function=\"a\",decision=\"unauthenticated\"} 1",
            "moat_policy_decisions_total{function=\"b\",decision=\"denied\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in {out}");
        }
        // The token id is the audit record's business, never a label.
        assert!(!out.contains("tok_1"));
    }
}
