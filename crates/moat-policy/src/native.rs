//! Guardrails judged without Cedar's evaluator, for the forms guardrails take: scope
//! constraints and conditions over the resource's attributes (`==`, `!=`, `like`, `&&`, `||`,
//! `!`, `is`, `in`). A decision takes Cedar's evaluator about 0.7 µs per condition; with 20
//! guardrails that alone was over the 20 µs budget. A policy with any other form is not
//! compiled here, and that action's guardrails stay with Cedar (see `PolicyEngine`).
//!
//! The semantics follow Cedar's for this subset: `==` across types is false; `like` on a
//! non-string, a missing attribute, or anything else Cedar would call an error is an error,
//! and an error denies (as `PolicyEngine::decide` fails closed). `differential_tests` checks
//! the two against each other over generated guardrails and requests.

use cedar_policy::{EntityUid, Policy};
use serde_json::Value as Json;

/// An attribute or literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    Long(i64),
    Bool(bool),
    Entity(EntityUid),
}

/// One condition tree.
#[derive(Debug, Clone)]
pub enum Guard {
    Const(bool),
    And(Box<Guard>, Box<Guard>),
    Or(Box<Guard>, Box<Guard>),
    Not(Box<Guard>),
    Eq(Operand, Operand, bool),
    /// The pattern compiled to bytes, `None` for a wildcard.
    Like(Operand, Vec<Option<u8>>),
    /// `var is Type [in entity]`.
    Is(Var, String, Option<EntityUid>),
    /// `var in entity` (Moat's schema has no hierarchy: the same as `==`).
    In(Var, EntityUid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Principal,
    Resource,
}

#[derive(Debug, Clone)]
pub enum Operand {
    Var(Var),
    Attr(String),
    Lit(Val),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Pat {
    Any,
    Lit(String),
}

/// What a request offers a guard: its principal, its resource and the resource's attributes.
pub struct Facts<'a> {
    pub principal: &'a EntityUid,
    pub resource: &'a EntityUid,
    pub attrs: &'a [(&'a str, Val)],
}

struct Error;

fn uid(v: &Json) -> Option<EntityUid> {
    let e = v.get("__entity").unwrap_or(v);
    let ty = e.get("type")?.as_str()?;
    let id = e.get("id")?.as_str()?;
    let ty: cedar_policy::EntityTypeName = ty.parse().ok()?;
    Some(EntityUid::from_type_name_and_id(
        ty,
        cedar_policy::EntityId::new(id),
    ))
}

fn var(v: &Json) -> Option<Var> {
    match v.get("Var")?.as_str()? {
        "principal" => Some(Var::Principal),
        "resource" => Some(Var::Resource),
        _ => None, // `context` and `action` are not in this subset
    }
}

fn operand(e: &Json) -> Option<Operand> {
    if let Some(v) = var(e) {
        return Some(Operand::Var(v));
    }
    if let Some(dot) = e.get(".") {
        if var(dot.get("left")?)? != Var::Resource {
            return None;
        }
        return Some(Operand::Attr(dot.get("attr")?.as_str()?.to_string()));
    }
    let v = e.get("Value")?;
    Some(Operand::Lit(match v {
        Json::String(s) => Val::Str(s.clone()),
        Json::Bool(b) => Val::Bool(*b),
        Json::Number(n) => Val::Long(n.as_i64()?),
        Json::Object(_) => Val::Entity(uid(v)?),
        _ => return None,
    }))
}

fn expr(e: &Json) -> Option<Guard> {
    let obj = e.as_object()?;
    let (op, arg) = obj.iter().next()?;
    if obj.len() != 1 {
        return None;
    }
    let bin = |f: fn(Box<Guard>, Box<Guard>) -> Guard| -> Option<Guard> {
        Some(f(
            Box::new(expr(arg.get("left")?)?),
            Box::new(expr(arg.get("right")?)?),
        ))
    };
    match op.as_str() {
        "Value" => Some(Guard::Const(arg.as_bool()?)),
        "&&" => bin(Guard::And),
        "||" => bin(Guard::Or),
        "!" => Some(Guard::Not(Box::new(expr(arg.get("arg")?)?))),
        "==" | "!=" => Some(Guard::Eq(
            operand(arg.get("left")?)?,
            operand(arg.get("right")?)?,
            op == "==",
        )),
        "like" => {
            let pattern = arg
                .get("pattern")?
                .as_array()?
                .iter()
                .map(|p| match p {
                    Json::String(s) if s == "Wildcard" => Some(Pat::Any),
                    other => Some(Pat::Lit(other.get("Literal")?.as_str()?.to_string())),
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Guard::Like(
                operand(arg.get("left")?)?,
                compile_pattern(&pattern),
            ))
        }
        "is" => Some(Guard::Is(
            var(arg.get("left")?)?,
            arg.get("entity_type")?.as_str()?.to_string(),
            match arg.get("in") {
                Some(i) => Some(uid(i.get("Value")?)?),
                None => None,
            },
        )),
        "in" => Some(Guard::In(
            var(arg.get("left")?)?,
            uid(arg.get("right")?.get("Value")?)?,
        )),
        _ => None,
    }
}

fn scope(v: Var, c: &Json) -> Option<Option<Guard>> {
    let entity = |c: &Json| uid(c.get("entity")?);
    Some(match c.get("op")?.as_str()? {
        "All" => None,
        "==" => Some(Guard::Eq(
            Operand::Var(v),
            Operand::Lit(Val::Entity(entity(c)?)),
            true,
        )),
        "in" => Some(Guard::In(v, entity(c)?)),
        "is" => Some(Guard::Is(
            v,
            c.get("entity_type")?.as_str()?.to_string(),
            match c.get("in") {
                Some(i) => Some(uid(i.get("entity")?)?),
                None => None,
            },
        )),
        _ => return None,
    })
}

/// A policy (permit or forbid) as one guard — true when the policy applies — with its
/// action scope left to the caller, or `None` when it uses anything outside the subset.
pub fn compile(policy: &Policy) -> Option<Guard> {
    let est = policy.to_json().ok()?;
    let mut parts: Vec<Guard> = Vec::new();
    parts.extend(scope(Var::Principal, est.get("principal")?)?);
    parts.extend(scope(Var::Resource, est.get("resource")?)?);
    for c in est.get("conditions")?.as_array()? {
        let body = expr(c.get("body")?)?;
        parts.push(match c.get("kind")?.as_str()? {
            "when" => body,
            "unless" => Guard::Not(Box::new(body)),
            _ => return None,
        });
    }
    Some(
        parts
            .into_iter()
            .reduce(|a, b| Guard::And(Box::new(a), Box::new(b)))
            .unwrap_or(Guard::Const(true)),
    )
}

/// An operand's value, borrowed (a decision allocates nothing).
#[derive(PartialEq)]
enum Ref<'a> {
    Val(&'a Val),
    Entity(&'a EntityUid),
}

impl<'a> Ref<'a> {
    fn same(&self, other: &Ref<'a>) -> bool {
        match (self, other) {
            (Ref::Val(Val::Entity(a)), Ref::Entity(b))
            | (Ref::Entity(b), Ref::Val(Val::Entity(a))) => a == *b,
            (a, b) => a == b,
        }
    }
}

fn value<'a>(o: &'a Operand, f: &'a Facts<'a>) -> Result<Ref<'a>, Error> {
    Ok(match o {
        Operand::Var(Var::Principal) => Ref::Entity(f.principal),
        Operand::Var(Var::Resource) => Ref::Entity(f.resource),
        Operand::Attr(a) => f
            .attrs
            .iter()
            .find(|(k, _)| k == a)
            .map(|(_, v)| Ref::Val(v))
            .ok_or(Error)?,
        Operand::Lit(v) => Ref::Val(v),
    })
}

pub fn compile_pattern(pattern: &[Pat]) -> Vec<Option<u8>> {
    let mut chars = Vec::new();
    for part in pattern {
        match part {
            Pat::Any => chars.push(None),
            Pat::Lit(s) => chars.extend(s.bytes().map(Some)),
        }
    }
    chars
}

fn like(text: &str, chars: &[Option<u8>]) -> bool {
    // Classic glob with one backtrack point per `*`: linear in practice.
    let t = text.as_bytes();
    let (mut ti, mut pi) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    while ti < t.len() {
        if pi < chars.len() && chars[pi] == Some(t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < chars.len() && chars[pi].is_none() {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < chars.len() && chars[pi].is_none() {
        pi += 1;
    }
    pi == chars.len()
}

fn eval(g: &Guard, f: &Facts<'_>) -> Result<bool, Error> {
    Ok(match g {
        Guard::Const(b) => *b,
        // Cedar's `&&` and `||` short-circuit, and only a reached error is an error.
        Guard::And(a, b) => eval(a, f)? && eval(b, f)?,
        Guard::Or(a, b) => eval(a, f)? || eval(b, f)?,
        Guard::Not(a) => !eval(a, f)?,
        Guard::Eq(a, b, eq) => value(a, f)?.same(&value(b, f)?) == *eq,
        Guard::Like(a, pattern) => match value(a, f)? {
            Ref::Val(Val::Str(s)) => like(s, pattern),
            _ => return Err(Error),
        },
        Guard::Is(v, ty, within) => {
            let u = if *v == Var::Principal {
                f.principal
            } else {
                f.resource
            };
            u.type_name().to_string() == *ty && within.as_ref().is_none_or(|w| w == u)
        }
        Guard::In(v, e) => {
            let u = if *v == Var::Principal {
                f.principal
            } else {
                f.resource
            };
            u == e
        }
    })
}

/// Whether any guard forbids the request; an evaluation error forbids too.
pub fn forbidden(guards: &[Guard], facts: &Facts<'_>) -> bool {
    guards.iter().any(|g| eval(g, facts).unwrap_or(true))
}

/// Cedar's decision, failing closed as `PolicyEngine::decide` does: allowed when some permit
/// applies and no forbid does, and no policy's evaluation errs.
pub fn allowed(permits: &[Guard], forbids: &[Guard], facts: &Facts<'_>) -> bool {
    let mut permitted = false;
    for g in permits {
        match eval(g, facts) {
            Ok(applies) => permitted |= applies,
            Err(Error) => return false,
        }
    }
    permitted && !forbidden(forbids, facts)
}
