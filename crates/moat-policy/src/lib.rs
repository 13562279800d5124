//! Who may do what, decided by Cedar.
//!
//! Three kinds of policy, judged together:
//! - **roles**: fixed permits for token roles (`admin`, `deployer`, `auditor`, `invoker`);
//! - **grants**: a deploy turns a manifest's `[permissions]` into permits for that function;
//! - **guardrails**: organization-wide `forbid` policies added by admins
//!   (`moat policy add`). In Cedar, a matching forbid always wins over any permit.
//!
//! Policy sets are compiled when they change (a deploy, a guardrail added or removed) and
//! never per request: a request builds only its small entity set and is judged against its
//! principal's precompiled set.
//!
//! Architecture invariant: this crate does no IO.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Mutex;

pub mod native;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, Request, RestrictedExpression,
    Schema, ValidationMode, Validator,
};

/// The Cedar schema of Moat's principals, actions and resources.
pub const SCHEMA: &str = r#"
entity Role;
entity Node;
entity Function;
entity Token in [Role] { function?: Function };
entity Host { scheme: String, name: String, port: Long };
entity Secret { name: String };
entity Bucket { name: String };

action "http:request" appliesTo { principal: [Function], resource: [Host] };
action "secret:read" appliesTo { principal: [Function], resource: [Secret] };
action "config:read" appliesTo { principal: [Function], resource: [Function] };
action "kv:read", "kv:write" appliesTo { principal: [Function], resource: [Bucket] };
action "function:invoke" appliesTo { principal: [Token], resource: [Function] };
action "function:read", "function:deploy", "function:rollback", "function:delete",
       "logs:read", "tokens:manage", "secrets:manage", "policy:manage", "kv:manage", "keys:manage", "alerts:manage",
       "supply:manage", "settings:manage", "audit:read", "iam:review"
    appliesTo { principal: [Token], resource: [Node] };
"#;

/// The fixed role permits.
const ROLE_POLICIES: &str = r#"
permit(principal in Role::"admin", action, resource);
permit(
    principal in Role::"deployer",
    action in [Action::"function:read", Action::"function:deploy",
               Action::"function:rollback", Action::"logs:read"],
    resource
);
permit(principal in Role::"auditor", action in [Action::"audit:read", Action::"iam:review"], resource);
permit(principal in Role::"invoker", action == Action::"function:invoke", resource)
    unless { principal has function };
permit(principal in Role::"invoker", action == Action::"function:invoke", resource)
    when { principal has function && principal.function == resource };
"#;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Invalid(e.to_string())
}

/// A function's grants, as the manifest states them.
#[derive(Debug, Clone, Default)]
pub struct FunctionGrants {
    /// `(https, host or *.suffix or canonical IP, port)`.
    pub hosts: Vec<(bool, String, u16)>,
    pub secrets: Vec<String>,
    pub buckets: Vec<String>,
}

/// An outbound request, as Cedar sees it.
#[derive(Debug, Clone)]
pub struct HostRequest<'a> {
    pub https: bool,
    /// Lower case; an IP address in canonical form.
    pub name: &'a str,
    pub port: u16,
}

/// Compiled policies: one set per function (its grants plus every guardrail) and one for
/// tokens (the roles plus every guardrail).
pub struct PolicyEngine {
    schema: Schema,
    guardrails: Vec<(String, String)>,
    /// The guardrails compiled once; every other set starts from a copy.
    guardrail_set: PolicySet,
    /// Per function action, the guardrails that can apply to it, folded into one forbid (see
    /// [`fold_forbids`]), or as they are if folding failed.
    guardrails_by_action: HashMap<&'static str, Vec<Policy>>,
    /// Per function action whose every guardrail compiled to a [`native::Guard`]: those
    /// guards, judged before Cedar (which then sees only the function's permits).
    native: HashMap<&'static str, Vec<native::Guard>>,
    /// Whether to judge guardrails natively where they compile (off: Cedar judges all).
    native_guardrails: bool,
    grants: HashMap<String, FunctionGrants>,
    /// Per function, per action: only the policies whose scope can match that function and
    /// action. Cedar evaluates every policy in the set it is given, so judging a request
    /// against this slice instead of the function's whole set is what keeps a decision
    /// cheap with many guardrails (the result is the same: a policy whose scope cannot
    /// match never applies).
    function_sets: HashMap<String, ActionSets>,
    /// Per function, per action: its permits as native guards, when they all compile and
    /// the action's guardrails do too. Then the whole decision is native (see [`native`]).
    native_permits: HashMap<String, HashMap<&'static str, Vec<native::Guard>>>,
    token_set: PolicySet,
    empty: PolicySet,
    authorizer: Authorizer,
    /// Decisions already made since the last change. Policies are fixed between changes, so
    /// a decision is a pure function of its inputs; any change clears this.
    decisions: Mutex<HashMap<DecisionKey, bool>>,
    /// Whether to use `decisions` (off to measure the uncached cost).
    pub cache: bool,
}

type DecisionKey = (String, &'static str, String);

/// A function's policies, split by the action they can apply to.
type ActionSets = HashMap<&'static str, PolicySet>;

/// The actions whose principal is a function.
const FUNCTION_ACTIONS: [&str; 5] = [
    "http:request",
    "secret:read",
    "config:read",
    "kv:read",
    "kv:write",
];

/// Cached decisions before the cache is cleared (guests choose hosts; keep memory bounded).
const MAX_CACHED_DECISIONS: usize = 100_000;

impl PolicyEngine {
    pub fn new() -> Result<Self, PolicyError> {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).map_err(invalid)?;
        let mut engine = PolicyEngine {
            schema,
            guardrails: Vec::new(),
            guardrail_set: PolicySet::new(),
            guardrails_by_action: HashMap::new(),
            native: HashMap::new(),
            native_guardrails: true,
            grants: HashMap::new(),
            function_sets: HashMap::new(),
            native_permits: HashMap::new(),
            token_set: PolicySet::new(),
            empty: PolicySet::new(),
            authorizer: Authorizer::new(),
            decisions: Mutex::new(HashMap::new()),
            cache: true,
        };
        engine.recompile()?;
        Ok(engine)
    }

    /// Checks a guardrail file: it parses, every policy is a `forbid`, and it validates
    /// against the schema. Returns Cedar's message otherwise.
    pub fn check_guardrail(&self, text: &str) -> Result<usize, PolicyError> {
        let set = PolicySet::from_str(text).map_err(|e| {
            // Cedar's message and its cause (the offending token, what was expected).
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                msg.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            invalid(msg)
        })?;
        let mut n = 0;
        for p in set.policies() {
            if p.effect() != cedar_policy::Effect::Forbid {
                return Err(invalid(format!(
                    "policy `{}` is a permit; guardrails may only forbid (grants come from manifests)",
                    p.id()
                )));
            }
            n += 1;
        }
        if n == 0 {
            return Err(invalid("the file holds no policy"));
        }
        self.validate(&set)?;
        Ok(n)
    }

    fn validate(&self, set: &PolicySet) -> Result<(), PolicyError> {
        let result = Validator::new(self.schema.clone()).validate(set, ValidationMode::Strict);
        if result.validation_passed() {
            Ok(())
        } else {
            let errors: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
            Err(invalid(errors.join("; ")))
        }
    }

    /// Replaces every guardrail (`(name, text)` pairs) and recompiles.
    pub fn set_guardrails(&mut self, guardrails: Vec<(String, String)>) -> Result<(), PolicyError> {
        self.forget_decisions();
        self.guardrails = guardrails;
        self.recompile()
    }

    /// Sets one function's grants (at deploy) and recompiles its set.
    pub fn set_grants(
        &mut self,
        function: &str,
        grants: FunctionGrants,
    ) -> Result<(), PolicyError> {
        self.forget_decisions();
        self.grants.insert(function.to_string(), grants);
        let sets = self.function_action_sets(function)?;
        self.native_permits
            .insert(function.to_string(), self.native_permits_of(&sets));
        self.function_sets.insert(function.to_string(), sets);
        Ok(())
    }

    /// The functions that have grants compiled.
    pub fn functions(&self) -> Vec<String> {
        self.grants.keys().cloned().collect()
    }

    pub fn remove_function(&mut self, function: &str) {
        self.forget_decisions();
        self.grants.remove(function);
        self.function_sets.remove(function);
        self.native_permits.remove(function);
    }

    fn compile_guardrails(&self) -> Result<PolicySet, PolicyError> {
        let mut set = PolicySet::new();
        for (name, text) in &self.guardrails {
            let parsed = PolicySet::from_str(text).map_err(|e| invalid(format!("{e:?}")))?;
            for (i, p) in parsed.policies().enumerate() {
                let id = PolicyId::new(format!("guardrail:{name}:{i}"));
                set.add(p.new_id(id)).map_err(invalid)?;
            }
        }
        Ok(set)
    }

    fn function_set(&self, function: &str) -> Result<PolicySet, PolicyError> {
        let mut set = self.guardrail_set.clone();
        let Some(grants) = self.grants.get(function) else {
            return Ok(set);
        };
        let principal = format!("Function::{}", quote(function));
        let mut n = 0;
        let mut add = |text: String, set: &mut PolicySet| -> Result<(), PolicyError> {
            n += 1;
            let policy = Policy::parse(Some(PolicyId::new(format!("grant:{function}:{n}"))), text)
                .map_err(|e| invalid(format!("{e:?}")))?;
            set.add(policy).map_err(invalid)
        };
        for (https, host, port) in &grants.hosts {
            let scheme = if *https { "https" } else { "http" };
            let name_test = match host.strip_prefix("*.") {
                // `like` treats only `*` as special; host names contain no `*` or `\`.
                Some(suffix) => format!("resource.name like \"*.{suffix}\""),
                None => format!("resource.name == {}", quote(host)),
            };
            add(
                format!(
                    "permit(principal == {principal}, action == Action::\"http:request\", resource) \
                     when {{ resource.scheme == \"{scheme}\" && {name_test} && resource.port == {port} }};"
                ),
                &mut set,
            )?;
        }
        for s in &grants.secrets {
            add(
                format!(
                    "permit(principal == {principal}, action == Action::\"secret:read\", resource == Secret::{});",
                    quote(s)
                ),
                &mut set,
            )?;
        }
        for b in &grants.buckets {
            add(
                format!(
                    "permit(principal == {principal}, action in [Action::\"kv:read\", Action::\"kv:write\"], resource == Bucket::{});",
                    quote(b)
                ),
                &mut set,
            )?;
        }
        self.validate(&set)?;
        Ok(set)
    }

    /// The function's set (validated whole), split by action: its own permits that can
    /// apply to the action, plus the guardrails for that action.
    fn function_action_sets(&self, function: &str) -> Result<ActionSets, PolicyError> {
        let whole = self.function_set(function)?;
        let principal = uid("Function", function)?;
        let mut sets = HashMap::new();
        for action in FUNCTION_ACTIONS {
            let action_uid = action_uid(action)?;
            let mut set = PolicySet::new();
            for p in whole.policies() {
                if p.effect() == cedar_policy::Effect::Permit
                    && scope_may_match(p, &principal, &action_uid)
                {
                    set.add(p.clone()).map_err(invalid)?;
                }
            }
            if !self.native.contains_key(action) {
                for p in self.guardrails_by_action.get(action).into_iter().flatten() {
                    set.add(p.clone()).map_err(invalid)?;
                }
            }
            sets.insert(action, set);
        }
        Ok(sets)
    }

    /// For each function action, the guardrails whose action scope includes it, folded
    /// into one policy when that validates.
    fn guardrails_by_action(&self) -> Result<HashMap<&'static str, Vec<Policy>>, PolicyError> {
        let mut by_action = HashMap::new();
        for action in FUNCTION_ACTIONS {
            let action_uid = action_uid(action)?;
            let rails: Vec<Policy> = self
                .guardrail_set
                .policies()
                .filter(|p| match p.action_constraint() {
                    ActionConstraint::Any => true,
                    ActionConstraint::Eq(a) => a == action_uid,
                    ActionConstraint::In(list) => list.contains(&action_uid),
                })
                .cloned()
                .collect();
            let folded = (rails.len() > 1)
                .then(|| fold_forbids(action, &rails))
                .flatten()
                .filter(|p| {
                    let mut set = PolicySet::new();
                    set.add(p.clone()).is_ok() && self.validate(&set).is_ok()
                });
            by_action.insert(action, folded.map_or(rails, |p| vec![p]));
        }
        Ok(by_action)
    }

    /// For each function action, its guardrails as native guards, if every one compiles.
    fn native_guards(&self) -> Result<HashMap<&'static str, Vec<native::Guard>>, PolicyError> {
        let mut out = HashMap::new();
        if !self.native_guardrails {
            return Ok(out);
        }
        for action in FUNCTION_ACTIONS {
            let action_uid = action_uid(action)?;
            let guards: Option<Vec<native::Guard>> = self
                .guardrail_set
                .policies()
                .filter(|p| match p.action_constraint() {
                    ActionConstraint::Any => true,
                    ActionConstraint::Eq(a) => a == action_uid,
                    ActionConstraint::In(list) => list.contains(&action_uid),
                })
                .map(native::compile)
                .collect();
            if let Some(guards) = guards {
                out.insert(action, guards);
            }
        }
        Ok(out)
    }

    /// For each action whose guardrails are native, the function's permits in that action's
    /// set as native guards, if they all compile (the set then holds only permits).
    fn native_permits_of(&self, sets: &ActionSets) -> HashMap<&'static str, Vec<native::Guard>> {
        let mut out = HashMap::new();
        for (action, set) in sets {
            if !self.native.contains_key(action) {
                continue;
            }
            let permits: Option<Vec<native::Guard>> = set
                .policies()
                .map(|p| {
                    (p.effect() == cedar_policy::Effect::Permit).then(|| native::compile(p))?
                })
                .collect();
            if let Some(permits) = permits {
                out.insert(*action, permits);
            }
        }
        out
    }

    /// The whole decision, natively, when the function's permits and the action's
    /// guardrails all compiled; `None` sends it to Cedar.
    fn native_decision(
        &self,
        function: &str,
        action: &str,
        principal: &EntityUid,
        resource: &EntityUid,
        attrs: &[(&str, native::Val)],
    ) -> Option<bool> {
        let permits = self.native_permits.get(function)?.get(action)?;
        let forbids = self.native.get(action)?;
        Some(native::allowed(
            permits,
            forbids,
            &native::Facts {
                principal,
                resource,
                attrs,
            },
        ))
    }

    /// Judge guardrails natively where they compile (the default), or all with Cedar.
    pub fn set_native_guardrails(&mut self, on: bool) -> Result<(), PolicyError> {
        self.native_guardrails = on;
        self.forget_decisions();
        self.recompile()
    }

    /// Whether the native guards of `action` forbid this request (`false` when the action's
    /// guardrails are judged by Cedar instead).
    fn natively_forbidden(
        &self,
        action: &str,
        principal: &EntityUid,
        resource: &EntityUid,
        attrs: &[(&str, native::Val)],
    ) -> bool {
        self.native.get(action).is_some_and(|guards| {
            native::forbidden(
                guards,
                &native::Facts {
                    principal,
                    resource,
                    attrs,
                },
            )
        })
    }

    fn recompile(&mut self) -> Result<(), PolicyError> {
        self.guardrail_set = self.compile_guardrails()?;
        self.guardrails_by_action = self.guardrails_by_action()?;
        self.native = self.native_guards()?;
        let mut token_set = self.guardrail_set.clone();
        let roles = PolicySet::from_str(ROLE_POLICIES).map_err(|e| invalid(format!("{e:?}")))?;
        for (i, p) in roles.policies().enumerate() {
            token_set
                .add(p.new_id(PolicyId::new(format!("role:{i}"))))
                .map_err(invalid)?;
        }
        self.validate(&token_set)?;
        let mut function_sets = HashMap::new();
        let mut native_permits = HashMap::new();
        for f in self.grants.keys() {
            let sets = self.function_action_sets(f)?;
            native_permits.insert(f.clone(), self.native_permits_of(&sets));
            function_sets.insert(f.clone(), sets);
        }
        self.native_permits = native_permits;
        self.token_set = token_set;
        self.function_sets = function_sets;
        Ok(())
    }

    fn decide(
        &self,
        set: &PolicySet,
        principal: EntityUid,
        action: &str,
        resource: EntityUid,
        entities: Vec<Entity>,
    ) -> bool {
        let Ok(action) = action_uid(action) else {
            return false;
        };
        // No schema check per request: the policies were validated against the schema when
        // compiled, and the entities here are built by this crate in the schema's shape.
        let Ok(request) = Request::new(principal, action, resource, Context::empty(), None) else {
            return false;
        };
        let Ok(entities) = Entities::from_entities(entities, None) else {
            return false;
        };
        let response = self.authorizer.is_authorized(&request, set, &entities);
        // Fail closed: Cedar skips a policy whose evaluation errors, which for a guardrail
        // (a forbid) would let the request through. Validated policies over entities of the
        // schema's shape should not error; if one does, the answer is no.
        response.decision() == Decision::Allow && response.diagnostics().errors().next().is_none()
    }

    fn function_policies(&self, function: &str, action: &str) -> &PolicySet {
        self.function_sets
            .get(function)
            .and_then(|sets| sets.get(action))
            .unwrap_or(&self.empty)
    }

    fn forget_decisions(&self) {
        if let Ok(mut d) = self.decisions.lock() {
            d.clear();
        }
    }

    /// A decision from the cache, or made by `decide` and remembered.
    fn cached(&self, key: DecisionKey, decide: impl FnOnce() -> bool) -> bool {
        if !self.cache {
            return decide();
        }
        if let Some(d) = self
            .decisions
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied())
        {
            return d;
        }
        let d = decide();
        if let Ok(mut m) = self.decisions.lock() {
            if m.len() >= MAX_CACHED_DECISIONS {
                m.clear();
            }
            m.insert(key, d);
        }
        d
    }

    /// May `function` send a request to this host?
    pub fn may_request(&self, function: &str, host: &HostRequest<'_>) -> bool {
        let scheme = if host.https { "https" } else { "http" };
        let key = (
            function.to_string(),
            "http:request",
            format!("{scheme}://{}:{}", host.name, host.port),
        );
        self.cached(key, || self.decide_request(function, host))
    }

    fn decide_request(&self, function: &str, host: &HostRequest<'_>) -> bool {
        let (Ok(principal), Ok(resource)) = (
            uid("Function", function),
            uid(
                "Host",
                &format!(
                    "{}://{}:{}",
                    if host.https { "https" } else { "http" },
                    host.name,
                    host.port
                ),
            ),
        ) else {
            return false;
        };
        let facts = [
            (
                "scheme",
                native::Val::Str(if host.https { "https" } else { "http" }.into()),
            ),
            ("name", native::Val::Str(host.name.to_string())),
            ("port", native::Val::Long(i64::from(host.port))),
        ];
        if let Some(d) =
            self.native_decision(function, "http:request", &principal, &resource, &facts)
        {
            return d;
        }
        let attrs = HashMap::from([
            (
                "scheme".to_string(),
                RestrictedExpression::new_string(if host.https { "https" } else { "http" }.into()),
            ),
            (
                "name".to_string(),
                RestrictedExpression::new_string(host.name.to_string()),
            ),
            (
                "port".to_string(),
                RestrictedExpression::new_long(i64::from(host.port)),
            ),
        ]);
        let Ok(entity) = Entity::new(resource.clone(), attrs, HashSet::new()) else {
            return false;
        };
        if self.natively_forbidden("http:request", &principal, &resource, &facts) {
            return false;
        }
        self.decide(
            self.function_policies(function, "http:request"),
            principal,
            "http:request",
            resource,
            vec![entity],
        )
    }

    /// May `function` read this secret?
    pub fn may_read_secret(&self, function: &str, secret: &str) -> bool {
        let (Ok(principal), Ok(resource)) = (uid("Function", function), uid("Secret", secret))
        else {
            return false;
        };
        let facts = [("name", native::Val::Str(secret.to_string()))];
        if let Some(d) =
            self.native_decision(function, "secret:read", &principal, &resource, &facts)
        {
            return d;
        }
        let attrs = HashMap::from([(
            "name".to_string(),
            RestrictedExpression::new_string(secret.to_string()),
        )]);
        let Ok(entity) = Entity::new(resource.clone(), attrs, HashSet::new()) else {
            return false;
        };
        if self.natively_forbidden("secret:read", &principal, &resource, &facts) {
            return false;
        }
        self.decide(
            self.function_policies(function, "secret:read"),
            principal,
            "secret:read",
            resource,
            vec![entity],
        )
    }

    /// May `function` read (or, with `write`, change) this key-value bucket?
    ///
    /// Like every decision here, call it on a thread's own stack, not on a wasmtime fiber:
    /// Cedar bounds its recursion by the remaining stack, which it cannot measure on a
    /// fiber, and then refuses everything (fail closed, but wrong).
    pub fn may_use_bucket(&self, function: &str, bucket: &str, write: bool) -> bool {
        let action = if write { "kv:write" } else { "kv:read" };
        let key = (function.to_string(), action, bucket.to_string());
        self.cached(key, || {
            let (Ok(principal), Ok(resource)) = (uid("Function", function), uid("Bucket", bucket))
            else {
                return false;
            };
            let facts = [("name", native::Val::Str(bucket.to_string()))];
            if let Some(d) = self.native_decision(function, action, &principal, &resource, &facts) {
                return d;
            }
            let attrs = HashMap::from([(
                "name".to_string(),
                RestrictedExpression::new_string(bucket.to_string()),
            )]);
            let Ok(entity) = Entity::new(resource.clone(), attrs, HashSet::new()) else {
                return false;
            };
            if self.natively_forbidden(action, &principal, &resource, &facts) {
                return false;
            }
            self.decide(
                self.function_policies(function, action),
                principal,
                action,
                resource,
                vec![entity],
            )
        })
    }

    /// May this token (its id, role and optional function scope) perform `action`?
    /// `resource` is a function name for `function:invoke`, else ignored (the node).
    pub fn token_may(
        &self,
        token_id: &str,
        role: &str,
        scope: Option<&str>,
        action: &str,
        function: Option<&str>,
    ) -> bool {
        // Break glass: no guardrail may lock admins out of managing guardrails.
        if role == "admin" && action == "policy:manage" {
            return true;
        }
        let (Ok(principal), Ok(role_uid)) = (uid("Token", token_id), uid("Role", role)) else {
            return false;
        };
        let mut attrs = HashMap::new();
        if let Some(f) = scope {
            let Ok(f_uid) = uid("Function", f) else {
                return false;
            };
            attrs.insert(
                "function".to_string(),
                RestrictedExpression::new_entity_uid(f_uid),
            );
        }
        let Ok(token) = Entity::new(principal.clone(), attrs, HashSet::from([role_uid.clone()]))
        else {
            return false;
        };
        let role_entity = Entity::new_no_attrs(role_uid, HashSet::new());
        let resource = match function {
            Some(f) => uid("Function", f),
            None => uid("Node", "local"),
        };
        let Ok(resource) = resource else {
            return false;
        };
        self.decide(
            &self.token_set,
            principal,
            action,
            resource,
            vec![token, role_entity],
        )
    }
}

/// An entity id of one of the schema's types. Built without parsing: the type names are
/// parsed once, and the id is taken as it is (any string is a valid Cedar id).
mod cedar;
use cedar::{action_uid, fold_forbids, quote, scope_may_match, uid};

#[cfg(test)]
mod tests;
