//! Helpers over Cedar's types: entity and action ids, folding guardrails into one
//! `forbid`, scope pre-checks and quoting names into policy text.

use super::*;

pub(crate) fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    static TYPES: std::sync::OnceLock<HashMap<&'static str, EntityTypeName>> =
        std::sync::OnceLock::new();
    let types = TYPES.get_or_init(|| {
        [
            "Role", "Node", "Function", "Token", "Host", "Secret", "Bucket", "Action",
        ]
        .into_iter()
        .filter_map(|t| Some((t, EntityTypeName::from_str(t).ok()?)))
        .collect()
    });
    let ty = types
        .get(kind)
        .ok_or_else(|| invalid(format!("unknown entity type `{kind}`")))?;
    Ok(EntityUid::from_type_name_and_id(
        ty.clone(),
        EntityId::new(id),
    ))
}

pub(crate) fn action_uid(action: &str) -> Result<EntityUid, PolicyError> {
    uid("Action", action)
}

/// Folds forbid policies that all can apply to `action` into one equivalent forbid:
/// `forbid(principal, action == A, resource) when { g1 || g2 || ... }`, where each `gi` is
/// policy i's principal and resource scope and its `when`/`unless` conditions as one
/// expression (its action scope is implied by `A`). Cedar pays a fixed cost per policy it
/// evaluates, so one folded policy judges 20 guardrails in about the time of two.
///
/// The one difference from separate policies: an evaluation error in any `gi` now errors
/// the folded policy, which [`PolicyEngine::decide`] treats as a denial (fail closed), as
/// it treats an erroring guardrail anyway. Returns `None` if any policy cannot be folded;
/// the caller then keeps them separate.
pub(crate) fn fold_forbids(action: &str, policies: &[Policy]) -> Option<Policy> {
    use serde_json::{Value, json};
    fn scope(var: &str, c: &Value) -> Option<Option<Value>> {
        let entity = |e: &Value| json!({"Value": {"__entity": e}});
        let v = json!({"Var": var});
        Some(match c.get("op")?.as_str()? {
            "All" => None,
            "==" => Some(json!({"==": {"left": v, "right": entity(c.get("entity")?)}})),
            "in" => Some(json!({"in": {"left": v, "right": entity(c.get("entity")?)}})),
            "is" => {
                let mut is = json!({"left": v, "entity_type": c.get("entity_type")?});
                if let Some(inner) = c.get("in") {
                    is["in"] = entity(inner.get("entity")?);
                }
                Some(json!({"is": is}))
            }
            _ => return None, // a template slot, or a form this code does not know
        })
    }
    let mut disjuncts = Vec::new();
    for p in policies {
        if p.effect() != cedar_policy::Effect::Forbid {
            return None;
        }
        let est = p.to_json().ok()?;
        let mut parts: Vec<Value> = Vec::new();
        parts.extend(scope("principal", est.get("principal")?)?);
        parts.extend(scope("resource", est.get("resource")?)?);
        for c in est.get("conditions")?.as_array()? {
            let body = c.get("body")?.clone();
            parts.push(match c.get("kind")?.as_str()? {
                "when" => body,
                "unless" => json!({"!": {"arg": body}}),
                _ => return None,
            });
        }
        let conj = parts
            .into_iter()
            .reduce(|l, r| json!({"&&": {"left": l, "right": r}}))
            .unwrap_or(json!({"Value": true}));
        disjuncts.push(conj);
    }
    let body = disjuncts
        .into_iter()
        .reduce(|l, r| json!({"||": {"left": l, "right": r}}))?;
    let folded = json!({
        "effect": "forbid",
        "principal": {"op": "All"},
        "action": {"op": "==", "entity": {"type": "Action", "id": action}},
        "resource": {"op": "All"},
        "conditions": [{"kind": "when", "body": body}],
    });
    Policy::from_json(Some(PolicyId::new(format!("guardrails:{action}"))), folded).ok()
}

/// Whether a policy's principal and action scope can match this function principal (which
/// has no parents in Moat's schema) and action (there are no action groups).
pub(crate) fn scope_may_match(policy: &Policy, principal: &EntityUid, action: &EntityUid) -> bool {
    let principal_ok = match policy.principal_constraint() {
        PrincipalConstraint::Any => true,
        PrincipalConstraint::Eq(u) | PrincipalConstraint::In(u) => u == *principal,
        PrincipalConstraint::Is(t) => t == *principal.type_name(),
        PrincipalConstraint::IsIn(t, u) => t == *principal.type_name() && u == *principal,
    };
    let action_ok = match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => a == *action,
        ActionConstraint::In(list) => list.contains(action),
    };
    principal_ok && action_ok
}

/// A Cedar string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
