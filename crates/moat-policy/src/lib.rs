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
fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
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

fn action_uid(action: &str) -> Result<EntityUid, PolicyError> {
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
fn fold_forbids(action: &str, policies: &[Policy]) -> Option<Policy> {
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
fn scope_may_match(policy: &Policy, principal: &EntityUid, action: &EntityUid) -> bool {
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
fn quote(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn engine_with_orders() -> PolicyEngine {
        let mut e = PolicyEngine::new().unwrap();
        e.set_grants(
            "orders",
            FunctionGrants {
                hosts: vec![
                    (true, "api.stripe.com".into(), 443),
                    (false, "*.internal.example".into(), 8080),
                ],
                secrets: vec!["stripe-key".into(), "root-db".into()],
                buckets: vec!["orders".into()],
            },
        )
        .unwrap();
        e
    }

    fn host(https: bool, name: &str, port: u16) -> HostRequest<'_> {
        HostRequest { https, name, port }
    }

    #[test]
    fn grants_become_permits_for_their_function_only() {
        let e = engine_with_orders();
        assert!(e.may_request("orders", &host(true, "api.stripe.com", 443)));
        assert!(!e.may_request("orders", &host(false, "api.stripe.com", 443)));
        assert!(!e.may_request("orders", &host(true, "api.stripe.com", 8443)));
        assert!(e.may_request("orders", &host(false, "a.internal.example", 8080)));
        assert!(!e.may_request("orders", &host(false, "internal.example", 8080)));
        assert!(!e.may_request("other", &host(true, "api.stripe.com", 443)));
        assert!(e.may_read_secret("orders", "stripe-key"));
        assert!(!e.may_read_secret("orders", "other-key"));
        assert!(!e.may_read_secret("other", "stripe-key"));
    }

    #[test]
    fn guardrails_forbid_and_forbid_wins() {
        let mut e = engine_with_orders();
        let plain_http = r#"forbid(principal, action == Action::"http:request", resource) when { resource.scheme == "http" };"#;
        // `like` applies to strings, not entities: a bad policy is rejected with Cedar's message.
        let bad = r#"forbid(principal, action == Action::"secret:read", resource) when { resource like Secret::"root-*" };"#;
        assert!(e.check_guardrail(bad).is_err());
        assert!(
            e.check_guardrail("permit(principal, action, resource);")
                .is_err(),
            "permits are not guardrails"
        );
        assert!(
            e.check_guardrail("forbid(principal, action == Action::\"no:such\", resource);")
                .is_err()
        );
        assert!(e.check_guardrail("this is not cedar").is_err());
        e.check_guardrail(plain_http).unwrap();
        e.set_guardrails(vec![("no-plain-http".into(), plain_http.into())])
            .unwrap();
        assert!(!e.may_request("orders", &host(false, "a.internal.example", 8080)));
        assert!(e.may_request("orders", &host(true, "api.stripe.com", 443)));
        let no_root = r#"forbid(principal, action == Action::"secret:read", resource) when { resource.name like "root-*" };"#;
        e.check_guardrail(no_root).unwrap();
        e.set_guardrails(vec![("no-root".into(), no_root.into())])
            .unwrap();
        assert!(!e.may_read_secret("orders", "root-db"));
        assert!(e.may_read_secret("orders", "stripe-key"));
    }

    #[test]
    fn roles_and_scopes() {
        let e = PolicyEngine::new().unwrap();
        assert!(e.token_may("t1", "admin", None, "tokens:manage", None));
        assert!(e.token_may("t1", "deployer", None, "function:deploy", None));
        assert!(!e.token_may("t1", "deployer", None, "tokens:manage", None));
        assert!(!e.token_may("t1", "deployer", None, "function:delete", None));
        assert!(e.token_may("t1", "auditor", None, "iam:review", None));
        assert!(!e.token_may("t1", "auditor", None, "function:read", None));
        assert!(e.token_may("t1", "invoker", None, "function:invoke", Some("a")));
        assert!(e.token_may("t1", "invoker", Some("a"), "function:invoke", Some("a")));
        assert!(!e.token_may("t1", "invoker", Some("a"), "function:invoke", Some("b")));
        assert!(!e.token_may("t1", "invoker", None, "function:read", None));
        assert!(!e.token_may("t1", "none", None, "function:invoke", Some("a")));
    }

    #[test]
    fn names_are_quoted_not_injected() {
        let e = engine_with_orders();
        assert!(!e.may_read_secret("orders\" || true || \"", "stripe-key"));
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    fn engine(guardrail: &str) -> PolicyEngine {
        let mut e = PolicyEngine::new().unwrap();
        for f in ["orders", "billing"] {
            e.set_grants(
                f,
                FunctionGrants {
                    hosts: vec![(true, "api.example.com".into(), 443)],
                    secrets: vec!["key".into()],
                    buckets: vec!["shared".into()],
                },
            )
            .unwrap();
        }
        if !guardrail.is_empty() {
            e.set_guardrails(vec![("g".into(), guardrail.into())])
                .unwrap();
        }
        e
    }

    #[test]
    fn buckets_are_granted_per_function_and_forbidden_by_guardrails() {
        let e = engine("");
        assert!(e.may_use_bucket("orders", "shared", false));
        assert!(e.may_use_bucket("orders", "shared", true));
        assert!(!e.may_use_bucket("orders", "other", false));
        assert!(!e.may_use_bucket("nobody", "shared", false));
        let e = engine(r#"forbid(principal, action == Action::"kv:write", resource);"#);
        assert!(e.may_use_bucket("orders", "shared", false));
        assert!(!e.may_use_bucket("orders", "shared", true));
    }

    #[test]
    fn guardrails_apply_by_their_principal_and_action_scope() {
        // Each scope form the split by function and action must honour.
        let cases = [
            (
                r#"forbid(principal == Function::"orders", action, resource);"#,
                [false, true],
            ),
            (
                r#"forbid(principal in Function::"orders", action, resource);"#,
                [false, true],
            ),
            (
                r#"forbid(principal is Function, action, resource);"#,
                [false, false],
            ),
            (
                r#"forbid(principal is Function in Function::"billing", action, resource);"#,
                [true, false],
            ),
            (
                r#"forbid(principal, action in [Action::"kv:read", Action::"http:request"], resource);"#,
                [false, false],
            ),
            (
                r#"forbid(principal, action == Action::"secret:read", resource);"#,
                [true, true],
            ),
        ];
        for (rail, [orders, billing]) in cases {
            let e = engine(rail);
            let req = HostRequest {
                https: true,
                name: "api.example.com",
                port: 443,
            };
            assert_eq!(e.may_request("orders", &req), orders, "{rail}");
            assert_eq!(e.may_request("billing", &req), billing, "{rail}");
            // The secret is only forbidden by rails that name secret:read or any action.
            let any_action = !rail.contains("Action::");
            let secret_forbidden = rail.contains("secret:read");
            assert_eq!(
                e.may_read_secret("orders", "key"),
                !(secret_forbidden || (any_action && !orders)),
                "{rail}"
            );
        }
    }
}

#[cfg(test)]
mod kv_only_tests {
    use super::*;

    #[test]
    fn a_function_granted_only_buckets_may_use_them() {
        let mut e = PolicyEngine::new().unwrap();
        e.set_guardrails(vec![]).unwrap();
        e.set_grants(
            "shop",
            FunctionGrants {
                hosts: vec![],
                secrets: vec![],
                buckets: vec!["orders".into(), "ghost".into()],
            },
        )
        .unwrap();
        assert!(e.may_use_bucket("shop", "orders", false));
        assert!(e.may_use_bucket("shop", "orders", true));
    }
}

#[cfg(test)]
mod differential_tests {
    //! Native guardrail judging against Cedar's, over generated guardrails and requests.
    use super::*;

    const RAILS: &[&str] = &[
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.name like "*.blocked.example" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.name like "api*" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.name like "*a*b*" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.scheme == "http" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.port != 443 };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.port == 8080 && resource.name like "*.internal" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.name == "a.example" || resource.scheme == "http" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) unless { resource.name like "*.ok.example" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { !(resource.port == 443) };"#,
        r#"forbid(principal == Function::"f1", action, resource);"#,
        r#"forbid(principal in Function::"f2", action == Action::"http:request", resource) when { resource.name like "*.example" };"#,
        r#"forbid(principal is Function in Function::"f3", action, resource);"#,
        r#"forbid(principal is Function, action == Action::"kv:write", resource);"#,
        r#"forbid(principal, action in [Action::"kv:read", Action::"secret:read"], resource) when { resource.name like "root-*" };"#,
        r#"forbid(principal, action == Action::"secret:read", resource == Secret::"s1");"#,
        r#"forbid(principal, action, resource is Secret) when { resource.name == "s2" };"#,
        r#"forbid(principal, action == Action::"http:request", resource in Host::"https://x.example:443");"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { principal == Function::"f4" && resource.port == 443 };"#,
        // Outside the native subset: the action falls back to Cedar.
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.port > 8000 };"#,
        r#"forbid(principal, action == Action::"kv:read", resource) when { resource.name like "a\*b" };"#,
    ];

    const HOSTS: &[(bool, &str, u16)] = &[
        (true, "api.example.com", 443),
        (true, "x.blocked.example", 443),
        (false, "a.example", 80),
        (true, "a.example", 443),
        (true, "svc.internal", 8080),
        (true, "good.ok.example", 443),
        (true, "ab.example", 8443),
        (true, "x.example", 443),
        (false, "apiary.test", 9000),
        (true, "zzz", 443),
    ];
    const NAMES: &[&str] = &["s1", "s2", "root-db", "app", "a*b", "axb"];

    fn engine(rails: &[&str], native: bool) -> PolicyEngine {
        let mut e = PolicyEngine::new().unwrap();
        e.cache = false;
        let text = rails.join("\n");
        e.set_guardrails(vec![("g".into(), text)]).unwrap();
        e.set_native_guardrails(native).unwrap();
        for f in 0..5 {
            e.set_grants(
                &format!("f{f}"),
                FunctionGrants {
                    hosts: HOSTS
                        .iter()
                        .map(|(h, n, p)| (*h, n.to_string(), *p))
                        .chain([(true, "*.example".to_string(), 8443)])
                        .filter(|(_, n, _)| f != 0 || n != "zzz")
                        .collect(),
                    secrets: NAMES.iter().map(|s| s.to_string()).collect(),
                    buckets: NAMES.iter().map(|s| s.to_string()).collect(),
                },
            )
            .unwrap();
        }
        e
    }

    #[test]
    fn native_guardrails_decide_exactly_as_cedar() {
        let mut seed = 0x5eed_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut decisions = 0;
        let mut native_actions = 0;
        for case in 0..120 {
            let k = 1 + (next() % 5) as usize;
            let rails: Vec<&str> = (0..k)
                .map(|_| RAILS[(next() % RAILS.len() as u64) as usize])
                .collect();
            let (a, b) = (engine(&rails, true), engine(&rails, false));
            native_actions += a.native.len();
            assert!(b.native_permits.values().all(|m| m.is_empty()));
            native_actions += a.native_permits.values().map(|m| m.len()).sum::<usize>();
            assert!(b.native.is_empty());
            for f in 0..5 {
                let f = format!("f{f}");
                for (https, name, port) in HOSTS {
                    let h = HostRequest {
                        https: *https,
                        name,
                        port: *port,
                    };
                    assert_eq!(
                        a.may_request(&f, &h),
                        b.may_request(&f, &h),
                        "case {case} {rails:?} {f} {name}"
                    );
                    decisions += 1;
                }
                for n in NAMES {
                    assert_eq!(
                        a.may_read_secret(&f, n),
                        b.may_read_secret(&f, n),
                        "case {case} {rails:?} {f} {n}"
                    );
                    for w in [false, true] {
                        assert_eq!(
                            a.may_use_bucket(&f, n, w),
                            b.may_use_bucket(&f, n, w),
                            "case {case} {rails:?} {f} {n} {w}"
                        );
                    }
                    decisions += 3;
                }
            }
        }
        // The generated guardrails exercised both paths.
        assert!(native_actions > 200, "{native_actions}");
        assert!(decisions > 10_000);
    }

    #[test]
    fn like_matches_cedar_globs() {
        use native::Pat::{Any, Lit};
        let cases: &[(&str, &[native::Pat], bool)] = &[
            ("a.example", &[Any, Lit(".example".into())], true),
            ("example", &[Any, Lit(".example".into())], false),
            (
                "aXbYb",
                &[Any, Lit("a".into()), Any, Lit("b".into()), Any],
                true,
            ),
            ("", &[Any], true),
            ("abc", &[Lit("abc".into())], true),
            ("abcd", &[Lit("abc".into())], false),
        ];
        for (text, pattern, want) in cases {
            let g = native::Guard::Like(
                native::Operand::Lit(native::Val::Str(text.to_string())),
                native::compile_pattern(pattern),
            );
            let p = uid("Function", "f").unwrap();
            let facts = native::Facts {
                principal: &p,
                resource: &p,
                attrs: &[],
            };
            assert_eq!(native::forbidden(&[g], &facts), *want, "{text}");
        }
    }
}
