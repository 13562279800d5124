//! Secrets as a function sees them: only those its manifest grants, through `wasi:config`,
//! at the version it pins or else the current one.
//!
//! Values are written by administrators (`moat secrets set`), never read back by any
//! endpoint or command, and held here for the config capability and the DLP scanners.
//! Every kept version is held: a pinned function reads an old one, and DLP looks for all
//! of them (an old version leaking is still a leak).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use moat_manifest::FunctionSpec;

use moat_runtime::ConfigSource;
use moat_runtime::config::{ConfigView, UsageObserver};
use moat_store::{Store, StoreError};

use crate::functions::DeployError;

/// Every kept version of every secret, reloaded whenever one changes.
#[derive(Default)]
pub struct Vault {
    /// By name, by version; the highest version is the current one.
    values: RwLock<HashMap<String, BTreeMap<i64, Arc<str>>>>,
}

impl Vault {
    pub async fn reload(&self, store: &Arc<dyn Store>) -> anyhow::Result<()> {
        let mut values: HashMap<String, BTreeMap<i64, Arc<str>>> = HashMap::new();
        for v in store.secret_values().await? {
            values
                .entry(v.name.clone())
                .or_default()
                .insert(v.version, Arc::from(v.value.as_str()));
        }
        if let Ok(mut m) = self.values.write() {
            *m = values;
        }
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        self.values.read().is_ok_and(|m| m.contains_key(name))
    }

    /// The current version's value.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<str>> {
        self.read(name, None)
    }

    /// The value a grant reads: the pinned version, or the current one.
    pub(crate) fn read(&self, name: &str, pin: Option<i64>) -> Option<Arc<str>> {
        let m = self.values.read().ok()?;
        let versions = m.get(name)?;
        match pin {
            Some(v) => versions.get(&v).cloned(),
            None => versions.values().next_back().cloned(),
        }
    }

    /// Every kept version's value, oldest first: what DLP looks for.
    pub(crate) fn all_versions(&self, name: &str) -> Vec<Arc<str>> {
        self.values
            .read()
            .ok()
            .and_then(|m| m.get(name).map(|v| v.values().cloned().collect()))
            .unwrap_or_default()
    }

    /// Refuses a spec that pins a version that is not kept, naming it.
    pub(crate) fn check_pins(&self, spec: &FunctionSpec) -> Result<(), String> {
        let m = self
            .values
            .read()
            .map_err(|_| "the secret vault is unavailable".to_string())?;
        for (name, version) in &spec.permissions.secret_versions {
            let Some(versions) = m.get(name) else {
                return Err(format!(
                    "`permissions.secrets`: `{name}@{version}` pins a secret that does not exist (set it with `moat secrets set {name}`)"
                ));
            };
            if !versions.contains_key(version) {
                let kept: Vec<String> = versions.keys().map(i64::to_string).collect();
                return Err(format!(
                    "`permissions.secrets`: secret `{name}` has no version {version} (kept: {})",
                    kept.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Deletes a secret (every version, or one), refused while a serving function pins what
/// would go. Deploys wait meanwhile, so none can pin it between the check and the delete.
pub(crate) async fn delete(
    functions: &crate::functions::Functions,
    store: &Arc<dyn Store>,
    name: &str,
    version: Option<i64>,
) -> Result<bool, DeployError> {
    let _held = functions.hold_changes().await;
    let active = store.active_versions().await?;
    let pinned = pinned_by(&active, name, version);
    if !pinned.is_empty() {
        let what = match version {
            Some(v) => format!("version {v} of secret `{name}`"),
            None => format!("secret `{name}`"),
        };
        let one = pinned.len() == 1;
        return Err(DeployError::Conflict(format!(
            "{what} is pinned by serving function{} `{}`; deploy {} without the pin first",
            if one { "" } else { "s" },
            pinned.join("`, `"),
            if one { "it" } else { "them" },
        )));
    }
    Ok(match version {
        Some(v) => store
            .delete_secret_version(name, v)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => DeployError::Conflict(m),
                other => other.into(),
            })?,
        None => store.delete_secret(name).await?,
    })
}

/// The serving functions whose spec pins `name` (at `version`, or at any version).
pub(crate) fn pinned_by(
    active: &[moat_store::VersionRecord],
    name: &str,
    version: Option<i64>,
) -> Vec<String> {
    active
        .iter()
        .filter(|v| {
            serde_json::from_str::<FunctionSpec>(&v.spec_json).is_ok_and(|spec| {
                spec.permissions
                    .secret_version(name)
                    .is_some_and(|p| version.is_none_or(|v| v == p))
            })
        })
        .map(|v| v.function.clone())
        .collect()
}

/// What one function may read: its `[config]` table and its granted secrets.
pub struct FunctionConfig {
    pub function: String,
    pub config: Vec<(String, String)>,
    pub secrets: Vec<String>,
    /// Pinned versions by name (the others read the current version).
    pub pins: BTreeMap<String, i64>,
    pub vault: Arc<Vault>,
    pub usage: Arc<dyn UsageObserver>,
    pub denials: Arc<SecretDenials>,
}

/// Records a function asking by name for an existing secret it may not read.
pub struct SecretDenials {
    pub vault: Arc<Vault>,
    pub audit: Arc<crate::audit::Audit>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl moat_runtime::config::AbsentKeyObserver for SecretDenials {
    fn absent(&self, function: &str, key: &str) {
        if self.vault.exists(key) {
            self.metrics.limit_hit(function, "secret_denied");
            self.audit.denied(
                function,
                "secret:read",
                &format!("secret:{key}"),
                "not granted or forbidden",
            );
        }
    }
}

impl ConfigSource for FunctionConfig {
    fn view(&self) -> ConfigView {
        let mut variables = self.config.clone();
        let mut secrets = BTreeSet::new();
        for name in &self.secrets {
            // A granted secret that does not exist (yet) is simply absent.
            if let Some(value) = self.vault.read(name, self.pins.get(name).copied()) {
                variables.push((name.clone(), value.to_string()));
                secrets.insert(name.clone());
            }
        }
        ConfigView {
            variables,
            secrets,
            function: self.function.clone(),
            usage: Some(Arc::clone(&self.usage)),
            absent: Some(self.denials.clone() as Arc<dyn moat_runtime::config::AbsentKeyObserver>),
        }
    }
}
