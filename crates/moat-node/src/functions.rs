//! Deploys, rollbacks and the route table: turning stored versions into serving routes.
//!
//! A deploy is: validate the spec → inspect the component → compile it in the jailed child
//! (or load its sealed artifact) → link and type-check it → one store transaction that
//! creates the version and points the route at it → swap the gateway's route table. Any
//! failure before the transaction changes nothing, so the previous version keeps serving.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moat_gateway::limits::Concurrency;
use moat_gateway::validate::{InputRules, Schema};
use moat_gateway::{Gateway, Match, Route, RouteTable};
use moat_manifest::{FunctionSpec, HostPattern, RouteMatch};
use moat_runtime::artifact::{self, ArtifactError, ArtifactStore};
use moat_runtime::compile::{CompileLimits, compile_in_child};
use moat_runtime::egress::{EgressObserver, EgressPolicy, HostGrant, Resolver};
use moat_runtime::inspect::{ComponentInfo, inspect};
use moat_runtime::{InvokeOptions, Prepared, Runtime};
use moat_store::{NewVersion, Store, StoreError, VersionRecord, sha256_hex};

use crate::defaults;
use crate::metrics::Metrics;
use crate::policy::{Policies, grants_of};
use crate::secrets::{FunctionConfig, Vault};

/// Why a deploy (or rollback) failed. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("invalid component: {0}")]
    Component(String),
    #[error("compilation failed: {0}")]
    Compile(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("store error: {0}")]
    Store(String),
}

impl From<StoreError> for DeployError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RouteTaken { .. } => DeployError::Conflict(e.to_string()),
            StoreError::NotFound(_) => DeployError::NotFound(e.to_string()),
            other => DeployError::Store(other.to_string()),
        }
    }
}

pub struct Functions {
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    artifacts: ArtifactStore,
    compile_limits: CompileLimits,
    exe: PathBuf,
    gateway: Arc<Gateway>,
    metrics: Arc<Metrics>,
    /// Prepared components by digest, so a rollback or a restart of the route table
    /// never recompiles.
    prepared: Mutex<HashMap<String, Prepared>>,
    /// Routes by (function, version), so a refresh keeps each serving route's state
    /// (its concurrency slots) and never recompiles its schema.
    routes: Mutex<HashMap<(String, i64), Arc<Route>>>,
    /// One deploy, rollback or delete at a time on this node.
    changes: tokio::sync::Mutex<()>,
    egress: Mutex<EgressSettings>,
    vault: Arc<Vault>,
    policies: Policies,
    usage: Arc<dyn moat_runtime::config::UsageObserver>,
    kv_backend: Arc<dyn moat_runtime::kv::KvBackend>,
    kv_authorizer: Arc<dyn moat_runtime::kv::KvAuthorizer>,
    kv_observer: Arc<dyn moat_runtime::kv::KvObserver>,
    audit: Arc<crate::audit::Audit>,
}

/// Node-wide inputs of every function's egress policy.
#[derive(Clone)]
pub struct EgressSettings {
    pub resolver: Arc<dyn Resolver>,
    pub timeout: Duration,
    /// The node's own listeners, never reachable by a function.
    pub listeners: Vec<std::net::SocketAddr>,
    pub observer: Arc<dyn EgressObserver>,
}

/// What the capabilities of every function are built from.
pub struct CapabilitySetup {
    pub egress: EgressSettings,
    pub vault: Arc<Vault>,
    pub policies: Policies,
    pub usage: Arc<dyn moat_runtime::config::UsageObserver>,
    pub kv_backend: Arc<dyn moat_runtime::kv::KvBackend>,
    pub kv_authorizer: Arc<dyn moat_runtime::kv::KvAuthorizer>,
    pub kv_observer: Arc<dyn moat_runtime::kv::KvObserver>,
    pub audit: Arc<crate::audit::Audit>,
}

/// How components are compiled and where their sealed artifacts live.
pub struct CompileSetup {
    pub artifacts: ArtifactStore,
    pub limits: CompileLimits,
    /// The `moat` binary, started as `moat __compile`.
    pub exe: PathBuf,
}

impl Functions {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        compile: CompileSetup,
        gateway: Arc<Gateway>,
        metrics: Arc<Metrics>,
        capabilities: CapabilitySetup,
    ) -> Self {
        let CapabilitySetup {
            egress,
            vault,
            policies,
            usage,
            kv_backend,
            kv_authorizer,
            kv_observer,
            audit,
        } = capabilities;
        let CompileSetup {
            artifacts,
            limits: compile_limits,
            exe,
        } = compile;
        Functions {
            store,
            runtime,
            artifacts,
            compile_limits,
            exe,
            gateway,
            metrics,
            prepared: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
            egress: Mutex::new(egress),
            vault,
            policies,
            usage,
            kv_backend,
            kv_authorizer,
            kv_observer,
            audit,
        }
    }

    /// Forgets every built route, so the next refresh re-judges grants (after a guardrail
    /// change).
    pub fn invalidate_routes(&self) {
        if let Ok(mut m) = self.routes.lock() {
            m.clear();
        }
    }

    /// Records the addresses the node listens on, once bound.
    pub fn set_listeners(&self, listeners: Vec<std::net::SocketAddr>) {
        if let Ok(mut e) = self.egress.lock() {
            e.listeners = listeners;
        }
    }

    fn egress_policy(
        &self,
        spec: &FunctionSpec,
        dlp: Option<&Arc<moat_gateway::dlp::RouteDlp>>,
    ) -> Result<Option<Arc<EgressPolicy>>, DeployError> {
        // Even with no grants there is a policy: its refusals are recorded like any other.
        let grants = spec
            .permissions
            .outbound_hosts
            .iter()
            .map(|h| {
                let p: HostPattern = h.parse().map_err(DeployError::Manifest)?;
                Ok(HostGrant {
                    https: p.https,
                    host: p.host,
                    port: p.port,
                })
            })
            .collect::<Result<Vec<_>, DeployError>>()?;
        let settings = self
            .egress
            .lock()
            .map_err(|_| DeployError::Store("egress settings poisoned".into()))?
            .clone();
        Ok(Some(Arc::new(EgressPolicy {
            function: spec.name.clone(),
            grants,
            resolver: settings.resolver,
            timeout: settings.timeout,
            slots: Arc::new(tokio::sync::Semaphore::new(defaults::EGRESS_CONCURRENCY)),
            listeners: settings.listeners,
            observer: settings.observer,
            authorizer: Some(Arc::new(self.policies.clone())),
            usage: Some(self.usage.clone()),
            dlp: dlp.map(|d| {
                let (audit, metrics, function) = (
                    Arc::clone(&self.audit),
                    Arc::clone(&self.metrics),
                    spec.name.clone(),
                );
                moat_runtime::egress::EgressDlp {
                    scanner: Arc::clone(&d.scanner),
                    mode: d.mode,
                    report: Arc::new(move |channel, finding| {
                        crate::logs::record_dlp_finding(
                            &audit,
                            &metrics,
                            &function,
                            channel.as_str(),
                            finding.detector.as_str(),
                            "-",
                        );
                    }),
                }
            }),
        })))
    }

    /// Checks and stores an uploaded component.
    pub async fn upload(&self, digest: &str, bytes: &[u8]) -> Result<ComponentInfo, DeployError> {
        let actual = sha256_hex(bytes);
        if actual != digest {
            return Err(DeployError::Component(format!(
                "the upload hashes to `{actual}`, not `{digest}`"
            )));
        }
        let info = inspect(bytes).map_err(|e| DeployError::Component(e.to_string()))?;
        self.store.put_blob(digest, bytes).await?;
        Ok(info)
    }

    /// Deploys a new version of a function.
    pub async fn deploy(
        &self,
        spec: FunctionSpec,
        digest: &str,
        supply: Option<moat_store::SupplyRecord>,
    ) -> Result<VersionRecord, DeployError> {
        spec.validate()
            .map_err(|e| DeployError::Manifest(e.to_string()))?;
        if let Some(schema) = &spec.input.schema {
            Schema::compile(schema)
                .map_err(|e| DeployError::Manifest(format!("`input.schema`: {e}")))?;
        }
        let _guard = self.changes.lock().await;
        // A pinned secret version must exist now, and cannot be deleted while this
        // version serves (`delete_secret` takes the same lock).
        self.vault
            .check_pins(&spec)
            .map_err(DeployError::Manifest)?;
        let bytes = self.store.get_blob(digest).await?.ok_or_else(|| {
            DeployError::Component(format!("component `{digest}` has not been uploaded"))
        })?;
        inspect(&bytes).map_err(|e| DeployError::Component(e.to_string()))?;
        self.prepare(digest).await?;
        let spec_json =
            serde_json::to_string(&spec).map_err(|e| DeployError::Store(e.to_string()))?;
        let record = self
            .store
            .deploy_version(NewVersion {
                function: spec.name.clone(),
                route: spec.route.clone(),
                component_digest: digest.to_string(),
                spec_json,
                supply,
            })
            .await?;
        self.refresh_routes().await?;
        Ok(record)
    }

    /// Switches a function back to an earlier version (by default the one before the
    /// serving one).
    /// The version a rollback would serve: `to`, or by default the one before the serving
    /// one.
    pub async fn rollback_target(
        &self,
        name: &str,
        to: Option<i64>,
    ) -> Result<VersionRecord, DeployError> {
        let f = self
            .store
            .get_function(name)
            .await?
            .ok_or_else(|| DeployError::NotFound(format!("function `{name}` not found")))?;
        let versions = self.store.versions(name).await?;
        let target = match to {
            Some(v) => versions.into_iter().find(|r| r.version == v),
            None => versions
                .into_iter()
                .rev()
                .find(|r| r.version < f.active_version),
        };
        target.ok_or_else(|| match to {
            Some(v) => DeployError::NotFound(format!("`{name}` has no version {v}")),
            None => DeployError::NotFound(format!(
                "`{name}` has no version before {}",
                f.active_version
            )),
        })
    }

    /// Serves an existing version again (see [`Functions::rollback_target`]).
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<i64>,
    ) -> Result<VersionRecord, DeployError> {
        let _guard = self.changes.lock().await;
        let target = self.rollback_target(name, to).await?;
        if let Ok(spec) = serde_json::from_str::<FunctionSpec>(&target.spec_json) {
            self.vault.check_pins(&spec).map_err(|e| {
                DeployError::Conflict(format!("version {} of `{name}`: {e}", target.version))
            })?;
        }
        self.prepare(&target.component_digest).await?;
        let record = self.store.activate_version(name, target.version).await?;
        self.refresh_routes().await?;
        Ok(record)
    }

    /// Holds off deploys, rollbacks and deletes while held: for a change that must not race
    /// one (deleting a secret version that a deploy could pin, `secrets::delete`).
    pub async fn hold_changes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    pub async fn delete(&self, name: &str) -> Result<bool, DeployError> {
        let _guard = self.changes.lock().await;
        let existed = self.store.delete_function(name).await?;
        self.refresh_routes().await?;
        Ok(existed)
    }

    /// Rebuilds the gateway's route table from the store's serving versions. A version
    /// that cannot be prepared is logged and left out; the others keep serving.
    pub async fn refresh_routes(&self) -> Result<usize, DeployError> {
        let active = self.store.active_versions().await?;
        let mut routes = Vec::with_capacity(active.len());
        for v in active {
            let key = (v.function.clone(), v.version);
            let cached = self.routes.lock().ok().and_then(|m| m.get(&key).cloned());
            if let Some(route) = cached {
                routes.push(route);
                continue;
            }
            match self.route_for(&v).await {
                Ok(route) => {
                    let route = Arc::new(route);
                    if let Ok(mut m) = self.routes.lock() {
                        m.insert(key, Arc::clone(&route));
                    }
                    routes.push(route)
                }
                Err(e) => tracing::error!(
                    function = %v.function, version = v.version,
                    "cannot serve this version: {e}"
                ),
            }
        }
        let n = routes.len();
        if let Ok(mut m) = self.routes.lock() {
            m.retain(|_, r| routes.iter().any(|live| Arc::ptr_eq(live, r)));
        }
        // A deleted function's grants go with it.
        {
            let mut engine = self.policies.write();
            for gone in engine
                .functions()
                .into_iter()
                .filter(|f| !routes.iter().any(|r| r.function == *f))
            {
                engine.remove_function(&gone);
            }
        }
        self.gateway.set_routes(RouteTable::new(routes));
        Ok(n)
    }

    async fn route_for(&self, v: &VersionRecord) -> Result<Route, DeployError> {
        let spec: FunctionSpec = serde_json::from_str(&v.spec_json)
            .map_err(|e| DeployError::Store(format!("stored spec is unreadable: {e}")))?;
        let prepared = self.prepare(&v.component_digest).await?;
        let limits = &spec.limits;
        let schema = match &spec.input.schema {
            Some(s) => Some(Schema::compile(s).map_err(DeployError::Manifest)?),
            None => None,
        };
        let methods = spec
            .input
            .methods
            .iter()
            .map(|m| http::Method::from_bytes(m.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DeployError::Manifest(format!("`input.methods`: {e}")))?;
        let rate_limit = match &limits.rate_limit {
            Some(r) => {
                let r: moat_manifest::RateLimit = r.parse().map_err(DeployError::Manifest)?;
                Some((r.count, r.per_secs))
            }
            None => None,
        };
        let max_concurrency = limits.max_concurrency.unwrap_or(defaults::MAX_CONCURRENCY) as usize;
        self.policies
            .write()
            .set_grants(&spec.name, grants_of(&spec))
            .map_err(|e| DeployError::Manifest(e.to_string()))?;
        // Secrets are judged now (grant and guardrails are fixed until the next change, which
        // rebuilds this route); a forbidden one is simply absent to the function.
        let mut secrets = Vec::new();
        for name in &spec.permissions.secrets {
            if self.policies.read().may_read_secret(&spec.name, name) {
                secrets.push(name.clone());
            } else {
                self.metrics.limit_hit(&spec.name, "secret_denied");
                tracing::warn!(function = %spec.name, secret = %name, "secret read forbidden by policy");
                self.audit.denied(
                    &spec.name,
                    "secret:read",
                    &format!("secret:{name}"),
                    "forbidden by a guardrail",
                );
            }
        }
        // DLP looks for the values of exactly the secrets the function may read, in its
        // responses, logs and outbound requests.
        let dlp = self.route_dlp(&spec, &secrets)?;
        let egress = self.egress_policy(&spec, dlp.as_ref())?;
        // Always present, even with nothing granted: asking for a secret by name is then
        // recorded as a denial.
        let config: Option<Arc<dyn moat_runtime::ConfigSource>> = {
            {
                Some(Arc::new(FunctionConfig {
                    function: spec.name.clone(),
                    usage: self.usage.clone(),
                    config: spec
                        .config
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    secrets,
                    pins: spec.permissions.secret_versions.clone(),
                    vault: Arc::clone(&self.vault),
                    denials: Arc::new(crate::secrets::SecretDenials {
                        vault: Arc::clone(&self.vault),
                        audit: Arc::clone(&self.audit),
                        metrics: Arc::clone(&self.metrics),
                    }),
                }))
            }
        };
        Ok(Route {
            stats: self.metrics.function(&v.function).for_route(),
            function: v.function.clone(),
            version: v.version,
            matcher: match spec.route_match() {
                RouteMatch::Exact(p) => Match::Exact(p),
                RouteMatch::Prefix(p) => Match::Prefix(p),
            },
            public: spec.auth == moat_manifest::Auth::Public,
            prepared,
            options: InvokeOptions {
                timeout: Duration::from_millis(limits.timeout_ms.unwrap_or(defaults::TIMEOUT_MS)),
                memory_bytes: (limits.memory_mb.unwrap_or(defaults::MEMORY_MB) as usize) << 20,
                log_bytes: defaults::LOG_BYTES_PER_STREAM,
            },
            input: InputRules {
                methods,
                content_types: spec
                    .input
                    .content_types
                    .iter()
                    .map(|c| c.to_ascii_lowercase())
                    .collect(),
                schema,
            },
            max_body_bytes: limits.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES),
            max_response_bytes: limits
                .max_response_bytes
                .unwrap_or(defaults::MAX_RESPONSE_BYTES),
            rate_limit,
            concurrency: Concurrency::new(
                max_concurrency,
                max_concurrency,
                Duration::from_millis(defaults::QUEUE_WAIT_MS),
            ),
            dlp,
            grants: moat_runtime::Grants {
                egress,
                config,
                // Always present: a function with no bucket granted is refused (and the
                // refusal recorded) per call, like any other.
                kv: Some(Arc::new(moat_runtime::kv::KvAccess {
                    function: spec.name.clone(),
                    backend: Arc::clone(&self.kv_backend),
                    authorizer: Arc::clone(&self.kv_authorizer),
                    observer: Arc::clone(&self.kv_observer),
                })),
            },
        })
    }

    /// The function's DLP scanner: the values of every kept version of the secrets it may
    /// read, pinned or not (in every encoding the scanner knows), and the detectors its
    /// `[dlp]` names. `None` when there is nothing to look for. Rebuilt with the route
    /// whenever a secret changes.
    fn route_dlp(
        &self,
        spec: &FunctionSpec,
        readable: &[String],
    ) -> Result<Option<Arc<moat_gateway::dlp::RouteDlp>>, DeployError> {
        let names: Vec<String> = spec
            .dlp
            .detectors
            .iter()
            .filter_map(|d| serde_json::to_value(d).ok()?.as_str().map(str::to_string))
            .collect();
        let detectors = moat_dlp::DetectorSet::from_names(&names)
            .map_err(|e| DeployError::Manifest(format!("`dlp.detectors`: {e}")))?;
        let mut builder = moat_dlp::Scanner::builder().detectors(detectors);
        let mut any_secret = false;
        for name in readable {
            for value in self.vault.all_versions(name) {
                builder = builder.secret(name.clone(), value.as_bytes());
                any_secret = true;
            }
        }
        if !any_secret && detectors == moat_dlp::DetectorSet::secrets_only() {
            return Ok(None);
        }
        let scanner = builder
            .build()
            .map_err(|e| DeployError::Manifest(format!("`dlp`: {e}")))?;
        for name in scanner.unscanned_secrets() {
            tracing::warn!(function = %spec.name, secret = %name, "secret too short for data-loss prevention to look for");
        }
        let mode = match spec.dlp.mode {
            moat_manifest::DlpMode::Block => moat_dlp::Mode::Block,
            moat_manifest::DlpMode::Redact => moat_dlp::Mode::Redact,
            moat_manifest::DlpMode::Alert => moat_dlp::Mode::Alert,
        };
        Ok(Some(Arc::new(moat_gateway::dlp::RouteDlp {
            scanner: Arc::new(scanner),
            mode,
        })))
    }

    /// A prepared component for `digest`: from memory, else from its sealed artifact,
    /// else compiled now in the jailed child from the stored component.
    async fn prepare(&self, digest: &str) -> Result<Prepared, DeployError> {
        if let Some(p) = self
            .prepared
            .lock()
            .ok()
            .and_then(|m| m.get(digest).cloned())
        {
            return Ok(p);
        }
        let verified = match self.artifacts.read_verified(digest) {
            Ok(found) => found,
            Err(ArtifactError::Tampered(path)) => {
                self.metrics
                    .artifact_rejections
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    artifact = %path.display(),
                    "compiled artifact failed its integrity check; refusing it and recompiling from the stored component"
                );
                self.artifacts.remove(digest);
                None
            }
            Err(e) => return Err(DeployError::Store(e.to_string())),
        };
        let verified = match verified {
            Some(v) => v,
            None => {
                let bytes = self.store.get_blob(digest).await?.ok_or_else(|| {
                    DeployError::Component(format!("component `{digest}` is not in the store"))
                })?;
                if sha256_hex(&bytes) != digest {
                    return Err(DeployError::Store(format!(
                        "stored component `{digest}` is corrupt"
                    )));
                }
                let compiled = compile_in_child(&self.exe, &bytes, self.compile_limits)
                    .await
                    .map_err(|e| DeployError::Compile(e.to_string()))?;
                self.metrics.compilations.fetch_add(1, Ordering::Relaxed);
                self.artifacts
                    .write(digest, &compiled)
                    .map_err(|e| DeployError::Store(e.to_string()))?;
                self.artifacts
                    .read_verified(digest)
                    .map_err(|e| DeployError::Store(e.to_string()))?
                    .ok_or_else(|| DeployError::Store("compiled artifact vanished".into()))?
            }
        };
        let component = artifact::load(self.runtime.engine(), &verified)
            .map_err(|e| DeployError::Compile(format!("cannot load the compiled artifact: {e}")))?;
        self.metrics
            .artifacts_loaded
            .fetch_add(1, Ordering::Relaxed);
        let prepared = self
            .runtime
            .prepare(&component)
            .map_err(|e| DeployError::Component(e.to_string()))?;
        if let Ok(mut m) = self.prepared.lock() {
            m.insert(digest.to_string(), prepared.clone());
        }
        Ok(prepared)
    }
}
