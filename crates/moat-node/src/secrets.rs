//! Secrets as a function sees them: only those its manifest grants, through `wasi:config`.
//!
//! Values are written by administrators (`moat secrets set`), never read back by any
//! endpoint or command, and held here for the config capability. (Encryption at rest and
//! per-read audit records come with the secrets-manager work.)

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use std::collections::BTreeSet;

use moat_runtime::ConfigSource;
use moat_runtime::config::{ConfigView, UsageObserver};
use moat_store::Store;

/// Current secret values, reloaded whenever one changes.
#[derive(Default)]
pub struct Vault {
    values: RwLock<HashMap<String, Arc<str>>>,
}

impl Vault {
    pub async fn reload(&self, store: &Arc<dyn Store>) -> anyhow::Result<()> {
        let values = store
            .secret_values()
            .await?
            .into_iter()
            .map(|(k, v)| (k, Arc::from(v)))
            .collect();
        if let Ok(mut m) = self.values.write() {
            *m = values;
        }
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        self.values.read().is_ok_and(|m| m.contains_key(name))
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<str>> {
        self.values.read().ok()?.get(name).cloned()
    }
}

/// What one function may read: its `[config]` table and its granted secrets.
pub struct FunctionConfig {
    pub function: String,
    pub config: Vec<(String, String)>,
    pub secrets: Vec<String>,
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
            if let Some(value) = self.vault.get(name) {
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
