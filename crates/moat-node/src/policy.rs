//! The node's handle on the policy engine: loading guardrails, and answering the runtime's
//! and the admin API's questions.

use std::sync::{Arc, RwLock};

use moat_manifest::{FunctionSpec, HostPattern};
use moat_policy::{FunctionGrants, HostRequest, PolicyEngine};
use moat_runtime::egress::EgressAuthorizer;
use moat_runtime::ssrf::parse_numeric_host;

/// Shared, swapped under a lock only when policies change.
#[derive(Clone)]
pub struct Policies(pub Arc<RwLock<PolicyEngine>>);

impl Policies {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Policies(Arc::new(RwLock::new(PolicyEngine::new()?))))
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, PolicyEngine> {
        match self.0.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, PolicyEngine> {
        match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether a token may perform an admin action (`function` for `function:invoke`).
    pub fn token_may(
        &self,
        token: &moat_store::TokenRecord,
        action: &str,
        function: Option<&str>,
    ) -> bool {
        self.read().token_may(
            &token.id,
            &token.role,
            token.function.as_deref(),
            action,
            function,
        )
    }
}

/// A manifest's grants in the policy engine's terms.
pub fn grants_of(spec: &FunctionSpec) -> FunctionGrants {
    let hosts = spec
        .permissions
        .outbound_hosts
        .iter()
        .filter_map(|h| h.parse::<HostPattern>().ok())
        .map(|p| {
            let port = p.port.unwrap_or(if p.https { 443 } else { 80 });
            let host = parse_numeric_host(&p.host)
                .map(|ip| ip.to_string())
                .unwrap_or(p.host);
            (p.https, host, port)
        })
        .collect();
    FunctionGrants {
        hosts,
        secrets: spec.permissions.secrets.clone(),
        buckets: spec.permissions.kv.clone(),
    }
}

impl EgressAuthorizer for Policies {
    fn may_request(&self, function: &str, https: bool, host: &str, port: u16) -> bool {
        self.read().may_request(
            function,
            &HostRequest {
                https,
                name: host,
                port,
            },
        )
    }
}
