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

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, Policy, PolicyId, PolicySet,
    Request, RestrictedExpression, Schema, ValidationMode, Validator,
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
       "logs:read", "tokens:manage", "secrets:manage", "policy:manage",
       "audit:read", "iam:review"
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
    grants: HashMap<String, FunctionGrants>,
    function_sets: HashMap<String, PolicySet>,
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

/// Cached decisions before the cache is cleared (guests choose hosts; keep memory bounded).
const MAX_CACHED_DECISIONS: usize = 100_000;

impl PolicyEngine {
    pub fn new() -> Result<Self, PolicyError> {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).map_err(invalid)?;
        let mut engine = PolicyEngine {
            schema,
            guardrails: Vec::new(),
            guardrail_set: PolicySet::new(),
            grants: HashMap::new(),
            function_sets: HashMap::new(),
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
        let set = self.function_set(function)?;
        self.function_sets.insert(function.to_string(), set);
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

    fn recompile(&mut self) -> Result<(), PolicyError> {
        self.guardrail_set = self.compile_guardrails()?;
        let mut token_set = self.guardrail_set.clone();
        let roles = PolicySet::from_str(ROLE_POLICIES).map_err(|e| invalid(format!("{e:?}")))?;
        for (i, p) in roles.policies().enumerate() {
            token_set
                .add(p.new_id(PolicyId::new(format!("role:{i}"))))
                .map_err(invalid)?;
        }
        self.validate(&token_set)?;
        let mut function_sets = HashMap::new();
        for f in self.grants.keys() {
            function_sets.insert(f.clone(), self.function_set(f)?);
        }
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
        let Ok(action) = EntityUid::from_str(&format!("Action::{}", quote(action))) else {
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
        self.authorizer
            .is_authorized(&request, set, &entities)
            .decision()
            == Decision::Allow
    }

    fn function_policies(&self, function: &str) -> &PolicySet {
        self.function_sets.get(function).unwrap_or(&self.empty)
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
        self.decide(
            self.function_policies(function),
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
        let attrs = HashMap::from([(
            "name".to_string(),
            RestrictedExpression::new_string(secret.to_string()),
        )]);
        let Ok(entity) = Entity::new(resource.clone(), attrs, HashSet::new()) else {
            return false;
        };
        self.decide(
            self.function_policies(function),
            principal,
            "secret:read",
            resource,
            vec![entity],
        )
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

fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    EntityUid::from_str(&format!("{kind}::{}", quote(id))).map_err(|e| invalid(format!("{e:?}")))
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
